"""`jupyter jobs`: against a running server, and embedded when there is none."""
import getpass
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import UV_CACHE

from jupyter_jobs.pyenv.cache import EnvironmentCache
from jupyter_jobs.pyenv.lock import Lock, Pin

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
JUPYTER = str(Path(sys.executable).parent / "jupyter")


def jobs(*args, env, cwd=None, check=None, timeout=60):
    result = subprocess.run([JUPYTER, "jobs", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check is not None:
        assert result.returncode == check, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture
def fresh_env(tmp_path):
    """A machine with nothing configured and no server running."""
    home = tmp_path / "home"
    home.mkdir()
    return {**os.environ, "JUPYTER_DATA_DIR": str(home / "data"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "JUPYTER_CONFIG_DIR": str(home / "config"), "HOME": str(home)}


def test_embedded_run_of_the_example_on_a_fresh_install(fresh_env, tmp_path):
    example = tmp_path / "hello"
    shutil.copytree(REPO / "examples" / "hello", example)
    result = jobs("run", str(example / "job.yaml"), "--follow", env=fresh_env, check=0)
    assert "step 3/3" in result.stdout and "done" in result.stdout
    assert "Succeeded" in result.stderr
    # The record and its outputs stay in the data dir, for `list`, `show` and a later server.
    listing = jobs("list", env=fresh_env, check=0).stdout
    assert "hello" in listing and "Succeeded" in listing
    report = Path(fresh_env["JUPYTER_DATA_DIR"]) / "jupyter_jobs" / "jobs" / "1" / "outputs" / "report.json"
    assert '"steps": 3' in report.read_text()


def test_embedded_exit_status_follows_the_job(fresh_env, tmp_path):
    spec = tmp_path / "fail.yaml"
    spec.write_text("cmd: echo oops; exit 7\n")
    result = jobs("run", str(spec), env=fresh_env, check=7)
    assert "oops" in result.stdout
    assert "exited with code 7" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("cmd: x\nretries: many\n")
    result = jobs("run", str(bad), env=fresh_env, check=2)
    assert "retries: expected a whole number" in result.stderr


def test_cli_against_a_running_server(server_process):
    env = {**server_process.env, "JUPYTER_JOBS_URL": server_process.url, "JUPYTER_JOBS_TOKEN": server_process.token}
    project = server_process.root / "proj"
    project.mkdir()
    (project / "say.sh").write_text("echo saying $1\n")
    (project / "job.yaml").write_text("name: say\ncmd: sh say.sh ${word}\nargs: {word: hi}\ninputs: [say.sh]\n")

    result = jobs("run", str(project / "job.yaml"), "--follow", env=env, check=0)
    assert "saying hi" in result.stdout
    job_id = result.stderr.split()[1]
    job = server_process.request("GET", f"jobs/{job_id}")  # the server has it: it was not run embedded
    assert (job["name"], job["command"], job["status"]) == ("say", "sh say.sh hi", "Succeeded")

    shown = jobs("show", job_id, env=env, check=0).stdout
    assert "status: Succeeded" in shown and "command: sh say.sh hi" in shown
    assert "saying hi" in jobs("logs", job_id, env=env, check=0).stdout

    rerun = jobs("rerun", job_id, "--set", "args.word=again", "--follow", env=env, check=0)
    assert "saying again" in rerun.stdout

    sleeper = jobs("run", str(project / "job.yaml"), "--set", "cmd=sleep 60", env=env, check=0).stdout.strip()
    server_process.wait(int(sleeper), ("Running",))
    assert "Cancelled" in jobs("cancel", sleeper, env=env, check=0).stdout
    listing = jobs("list", "--status", "cancelled", env=env, check=0).stdout
    assert listing.splitlines()[1].split()[:2] == [sleeper, "Cancelled"]

    assert "not found" in jobs("show", "9999", env=env, check=2).stderr
    assert "deleted" in jobs("delete", sleeper, env=env, check=0).stdout


def test_cli_lists_by_group_and_all_users(server_process):
    env = {**server_process.env, "JUPYTER_JOBS_URL": server_process.url, "JUPYTER_JOBS_TOKEN": server_process.token}
    lab = server_process.request("POST", "jobs", {"name": "in-lab", "cmd": "true", "group": "lab"})
    alone = server_process.request("POST", "jobs", {"name": "alone", "cmd": "true"})
    rows = jobs("list", "--group", "lab", env=env, check=0).stdout.splitlines()
    assert rows[0].split()[4:6] == ["OWNER", "GROUP"]
    assert [r.split()[0] for r in rows[1:]] == [str(lab["id"])] and rows[1].split()[5] == "lab"
    # A single-user server's user is every job's owner: --all-users is theirs to ask.
    rows = jobs("list", "--all-users", env=env, check=0).stdout.splitlines()
    assert [r.split()[0] for r in rows[1:]] == [str(alone["id"]), str(lab["id"])]


def test_cli_finds_the_server_from_its_runtime_file(server_process):
    (server_process.root / "job.yaml").write_text("cmd: echo found the server\n")
    env = {k: v for k, v in server_process.env.items() if not k.startswith("JUPYTER_JOBS_")}
    result = jobs("run", str(server_process.root / "job.yaml"), "--follow", env=env, check=0)
    assert "found the server" in result.stdout
    # It went through the server: the server lists the job the CLI named, with its log (an embedded
    # run would have kept both in the default data dir, which stays empty).
    job_id = int(result.stderr.split()[1])
    assert [(j["id"], j["status"]) for j in server_process.request("GET", "jobs")["jobs"]] == [(job_id, "Succeeded")]
    assert "found the server" in server_process.request("GET", f"jobs/{job_id}/logs").decode()
    assert not (Path(env["JUPYTER_DATA_DIR"]) / "jupyter_jobs").exists()


def test_a_spec_outside_the_server_root_ships_its_files_and_gets_its_outputs_back(server_process, tmp_path):
    """--url against a server that cannot see the spec's folder: the files it names travel as blobs (an unchanged
    one is not sent again) and the declared outputs come back beside the spec, never over newer local files."""
    outside = tmp_path / "elsewhere"
    (outside / "lib").mkdir(parents=True)
    (outside / "data").mkdir()
    (outside / "train.py").write_text("import helper\nhelper.run()\n")
    (outside / "helper.py").write_text("import os\nfrom lib import words\ndef run():\n"
                                       "    os.makedirs('out/ckpt', exist_ok=True)\n"
                                       "    text = open('data/a.txt').read().strip() + ' ' + words.WORD\n"
                                       "    open(os.environ['JOB_OUTPUTS'] + '/metrics.txt', 'w').write(text)\n"
                                       "    os.makedirs(os.environ['JOB_OUTPUTS'] + '/ckpt', exist_ok=True)\n"
                                       "    open(os.environ['JOB_OUTPUTS'] + '/ckpt/w.bin', 'wb').write(b'w' * 1000)\n"
                                       "    print('TRAINED', text)\n")
    (outside / "lib" / "__init__.py").write_text("")
    (outside / "lib" / "words.py").write_text("WORD = 'from-a-module'\n")
    (outside / "data" / "a.txt").write_text("data-ok\n")
    (outside / "unrelated.bin").write_bytes(b"u" * 100)
    (outside / "job.yaml").write_text("cmd: python train.py\ninputs: [data]\noutputs: [metrics.txt, ckpt]\n")
    env = {k: v for k, v in server_process.env.items() if not k.startswith("JUPYTER_JOBS_")}
    url = ["--url", server_process.url, "--token", server_process.token]

    result = jobs(*url, "run", str(outside / "job.yaml"), "--follow", env=env, cwd=tmp_path, check=0)
    assert "TRAINED data-ok from-a-module" in result.stdout, result.stderr
    assert "5 files shipped" in result.stderr  # train.py, helper.py, lib/ (2) and data/a.txt; not unrelated.bin
    assert (outside / "metrics.txt").read_text() == "data-ok from-a-module"
    assert (outside / "ckpt" / "w.bin").read_bytes() == b"w" * 1000
    blobs = sorted((server_process.data / "blobs").rglob("*"))
    stamps = {p: p.stat().st_mtime_ns for p in blobs if p.is_file()}

    # Again, the local result edited while the job runs: nothing re-sent, the edit kept (and said), exit 1.
    second = subprocess.Popen([JUPYTER, "jobs", *url, "run", str(outside / "job.yaml"), "--follow", "--set",
                               "cmd=sleep 2 && python train.py"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    while not any(j["status"] == "Running" for j in server_process.request("GET", "jobs")["jobs"]):
        assert second.poll() is None, second.communicate()
        time.sleep(0.05)
    (outside / "metrics.txt").write_text("my notes")
    _, stderr = second.communicate(timeout=60)
    assert second.returncode == 1, stderr
    assert "kept 1 local file changed since the job was submitted: metrics.txt (--force overwrites them)" in stderr
    assert (outside / "metrics.txt").read_text() == "my notes"
    assert (outside / "ckpt" / "w.bin").stat().st_mtime == server_process.request("GET", "jobs/2")["finished_at"]
    assert {p: p.stat().st_mtime_ns for p in blobs if p.is_file()} == stamps
    job_id = "2"
    jobs(*url, "outputs", job_id, "metrics.txt", "--to", str(outside), "--force", env=env, check=0)
    assert (outside / "metrics.txt").read_text() == "data-ok from-a-module"

    # Any job's outputs, a folder included, anywhere.
    fetched = tmp_path / "fetched"
    jobs(*url, "outputs", job_id, "ckpt", "--to", str(fetched), env=env, check=0)
    assert [p.relative_to(fetched).as_posix() for p in fetched.rglob("*") if p.is_file()] == ["ckpt/w.bin"]
    missing = jobs(*url, "outputs", job_id, "nope", env=env, check=2)
    assert "has no output nope" in missing.stderr


def test_cli_sends_its_own_environment_for_env_python_auto(server_process, tmp_path):
    """The CLI's Python is the job's (here the server's too: the job runs with that interpreter, no build)."""
    env = {**server_process.env, "JUPYTER_JOBS_URL": server_process.url, "JUPYTER_JOBS_TOKEN": server_process.token}
    project = server_process.root / "envproj"
    project.mkdir()
    (project / "job.yaml").write_text("name: env\ncmd: python -c 'import sys, yaml; print(\"PY\", sys.executable)'\n"
                                      "env: {python: auto}\n")
    result = jobs("run", str(project / "job.yaml"), "--follow", env=env, check=0)
    assert f"PY {sys.executable}" in result.stdout, result.stdout + result.stderr
    job = server_process.request("GET", f"jobs/{result.stderr.split()[1]}")
    environment = job["environment"]
    assert (environment["source"], environment["python"], environment["where"]) == (
        "auto", "%d.%d" % sys.version_info[:2], "interpreter")
    assert environment["packages"] > 20 and "interpreter" not in environment
    rerun = jobs("rerun", str(job["id"]), "--follow", env=env, check=0)
    again = server_process.request("GET", f"jobs/{rerun.stderr.split()[1]}")["environment"]
    assert (again["hash"], again["where"]) == (environment["hash"], "interpreter")  # its job's lock and interpreter


PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.mark.index
@pytest.mark.parametrize("server_args", [  # the CLI's user is an admin of jobs; builds share one uv cache
    [f"--JobManager.admin_users={getpass.getuser()}", f"--Environments.uv_cache_dir={UV_CACHE}"]])
def test_env_list_and_prune_against_a_running_server(server_process):
    env = {**server_process.env, "JUPYTER_JOBS_URL": server_process.url, "JUPYTER_JOBS_TOKEN": server_process.token}
    empty = jobs("env", "list", env=env, check=0).stdout.splitlines()
    assert empty[-1] == "0 environments, 0.0 MiB (limit 20480.0 MiB)"
    # Built where the server keeps its environments, as a job's Preparing builds one.
    lock = Lock(PYTHON, (Pin("six", "1.16.0"),))
    cache = EnvironmentCache(server_process.data / "environments", uv_cache=UV_CACHE)
    path = cache.prepare_sync(lock).path
    listing = jobs("env", "list", env=env, check=0).stdout.splitlines()
    assert listing[0].split() == ["HASH", "KIND", "PYTHON", "PACKAGES", "SIZE", "MIB", "LAST", "USED", "IN", "USE"]
    row = listing[1].split()
    assert row[:4] == [lock.hash[:12], "venv", PYTHON, "1"] and row[-1] == "no"
    assert float(row[4]) == round(cache.list()[0].size_bytes / 2**20, 1) > 0
    assert listing[2].startswith("1 environment, ")
    assert jobs("env", "list", "--json", env=env, check=0).stdout.count(lock.hash) == 1

    kept = jobs("env", "prune", "--max-size", "1T", env=env, check=0)
    assert kept.stdout.splitlines()[0] == "removed 0 environments" and path.is_dir()
    assert "is not a size" in jobs("env", "prune", "--max-size", "lots", env=env, check=2).stderr
    assert "not allowed with argument" in jobs("env", "prune", "--max-bytes", "0", "--max-size", "1G", env=env,
                                                check=2).stderr
    pruned = jobs("env", "prune", "--max-bytes", "0", env=env, check=0).stdout.splitlines()
    assert pruned == [f"removed 1 environment: {lock.hash[:12]}", "the cache holds 0.0 MiB (limit 20480.0 MiB)"]
    assert not path.exists()
    assert "0 environments" in jobs("env", "list", env=env, check=0).stdout


def test_env_prune_on_a_single_user_server_is_its_users(server_process):
    """The cache is the server's: its own user may prune it (others need to be admins: test_environments_api)."""
    env = {**server_process.env, "JUPYTER_JOBS_URL": server_process.url, "JUPYTER_JOBS_TOKEN": server_process.token}
    assert jobs("env", "prune", "--max-bytes", "0", env=env, check=0).stdout.startswith("removed 0 environments")
    assert "check the token" in jobs("env", "list", env={**env, "JUPYTER_JOBS_TOKEN": "wrong"}, check=2).stderr


def test_env_list_and_prune_embedded(fresh_env):
    """No server: the CLI reads and prunes the cache of the data dir itself (no admin to ask)."""
    lock = Lock(PYTHON, ())  # an empty venv: no package index needed
    cache = EnvironmentCache(Path(fresh_env["JUPYTER_DATA_DIR"]) / "jupyter_jobs" / "environments", uv_cache=UV_CACHE)
    path = cache.prepare_sync(lock).path
    assert jobs("env", "list", env=fresh_env, check=0).stdout.splitlines()[1].split()[:4] == [
        lock.hash[:12], "venv", PYTHON, "0"]
    result = jobs("env", "prune", env=fresh_env, check=0)  # the default limit, 20 GiB: nothing to remove
    assert result.stdout.startswith("removed 0 environments") and path.is_dir()
    assert jobs("env", "prune", "--max-size", "0", env=fresh_env, check=0).stdout.startswith(
        f"removed 1 environment: {lock.hash[:12]}")
    assert not path.exists()


def test_secrets_from_stdin_never_shown(server_process, tmp_path):
    env = {**server_process.env, "JUPYTER_JOBS_URL": server_process.url, "JUPYTER_JOBS_TOKEN": server_process.token}
    value = "cli-secret-value-4711"
    result = subprocess.run([JUPYTER, "jobs", "secret", "set", "DB_PASS"], input=value + "\n", env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    listing = jobs("secret", "list", env=env, check=0).stdout
    assert listing.split()[:2] == ["DB_PASS", "set"] and value not in listing
    spec = tmp_path / "job.yaml"
    spec.write_text("name: uses-db\ncmd: echo pass=$DB_PASS\nenv:\n  vars:\n    DB_PASS: {secret: DB_PASS}\n")
    run = jobs("run", str(spec), "--follow", env=env, check=0)
    job_id = run.stderr.split()[1]
    assert "pass=*********************" in run.stdout and value not in run.stdout + run.stderr
    shown = jobs("show", job_id, env=env, check=0).stdout
    assert "secret: DB_PASS" in shown and value not in shown
    assert value not in jobs("logs", job_id, env=env, check=0).stdout
    assert "deleted" in jobs("secret", "delete", "DB_PASS", env=env, check=0).stderr
    assert "not set" in jobs("secret", "delete", "DB_PASS", env=env, check=2).stderr
    assert "not a secret name" in jobs("secret", "delete", "../x", env=env, check=2).stderr

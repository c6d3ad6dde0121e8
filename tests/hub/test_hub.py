"""A team on one machine: a real JupyterHub, real system users and their own single-user servers, and
ONE jupyter-jobs service holding the runner pool (2 fake GPUs, the local backend, team-a's quota of
1 GPU). Everything goes through what users use: their server's jobs API (forwarded to the service),
the CLI in a shell as the user, and the Hub's tokens.

Needs root (system users, jobs run as them); skips with the reason elsewhere, fails in CI
(JUPYTER_JOBS_TEST_HUB=1) when it cannot run.
"""
from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from hubfixture import ADMIN, SERVICE, Hub, ensure_users, ensure_venv, log_tail, missing, remove_users, request, start_hub

pytestmark = [pytest.mark.hub, pytest.mark.timeout(300)]

ALICE, BOB, CAROL = "jjh-alice", "jjh-bob", "jjh-carol"


def _need_hub() -> None:
    reason = missing()
    if reason and os.environ.get("JUPYTER_JOBS_TEST_HUB") == "1":
        pytest.fail(f"JUPYTER_JOBS_TEST_HUB=1 (CI) runs the Hub tests, but {reason}", pytrace=False)
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def hub() -> Hub:
    yield from _running_hub("local", (ALICE, BOB, CAROL, ADMIN))


@pytest.fixture(scope="module")
def docker_hub() -> Hub:
    yield from _running_hub("docker", (ALICE,))


def _running_hub(backend: str, users: tuple[str, ...]):
    _need_hub()
    venv = ensure_venv()
    ensure_users()
    # Not under pytest's 0700 tmp: jobs run as the users, who must reach their own job folders.
    folder = Path(tempfile.mkdtemp(prefix=f"jj-hub-{backend}-"))
    hub = start_hub(folder, venv, backend=backend)
    try:
        for user in users:
            hub.start_server(user)
        for user in users:
            hub.wait_server(user)
        yield hub
    except BaseException:
        print(log_tail(hub.folder))
        raise
    finally:
        hub.stop()
        remove_users()
        shutil.rmtree(folder, ignore_errors=True)


def submit(hub: Hub, user: str, spec: dict, **kwargs) -> dict:
    status, job = hub.jobs(user, "POST", "jobs", spec, **kwargs)
    assert status == 201, job
    return job


def wait_status(hub: Hub, user: str, job_id: int, statuses: tuple[str, ...], timeout: float = 60) -> dict:
    return hub.wait_job(user, job_id, statuses, timeout)


def log(hub: Hub, user: str, job_id: int) -> str:
    status, text = hub.jobs(user, "GET", f"jobs/{job_id}/logs", raw=True)
    assert status == 200, text
    return text.decode()


def test_the_config_says_who_calls_and_forwarded_answers_are_the_services(hub):
    status, config = hub.jobs(ALICE, "GET", "config")
    assert status == 200, config
    assert (config["user"], config["admin"]) == (ALICE, False)
    assert [g["index"] for g in config["capacity"]["gpus"]] == [0, 1]
    status, config = hub.jobs(ADMIN, "GET", "config", via="service")
    assert status == 200 and config["admin"] is True, config
    # The service itself is not a Jupyter server: no kernels, no contents.
    for path in ("api/kernels", "api/contents", "api/terminals", "lab"):
        status, _ = request("GET", f"{hub.url}/services/{SERVICE}/{path}", token=hub.token(ALICE))
        assert status == 404, path


def test_one_pool_for_every_user_never_double_books_a_gpu(hub):
    stamp = 'date +%s.%N; sleep 2; date +%s.%N'
    first = submit(hub, ALICE, {"name": "a-train", "cmd": stamp, "instance-type": "gpu"})
    wait_status(hub, ALICE, first["id"], ("Running",))
    second = submit(hub, BOB, {"name": "b-train", "cmd": stamp, "instance-type": "gpu-x2"})
    status, pending = hub.jobs(BOB, "GET", f"jobs/{second['id']}")
    assert pending["status"] == "Pending", pending
    assert f"{first['id']}" in pending["message"], pending["message"]  # names what it waits for
    a = wait_status(hub, ALICE, first["id"], ("Succeeded", "Failed"))
    b = wait_status(hub, BOB, second["id"], ("Succeeded", "Failed"))
    assert (a["status"], b["status"]) == ("Succeeded", "Succeeded"), (a["message"], b["message"])
    a_start, a_end = map(float, log_lines(log(hub, ALICE, first["id"])))
    b_start, b_end = map(float, log_lines(log(hub, BOB, second["id"])))
    assert a_end <= b_start, "the two jobs held GPU 0 at the same time"
    assert a["id"] != b["id"]


def log_lines(text: str) -> list[str]:
    """The job's own lines (not the service's)."""
    return [line for line in text.splitlines() if not line.startswith("[jupyter-jobs]")]


def test_a_user_never_sees_another_users_job_and_admins_see_all(hub):
    job = submit(hub, ALICE, {"name": "private", "cmd": "echo s3cret > out.txt; sleep 30", "outputs": ["out.txt"]})
    wait_status(hub, ALICE, job["id"], ("Running",))
    jid = job["id"]
    for method, path in [("GET", f"jobs/{jid}"), ("GET", f"jobs/{jid}/logs"), ("GET", f"jobs/{jid}/outputs"),
                         ("GET", f"jobs/{jid}/outputs/out.txt"), ("POST", f"jobs/{jid}/cancel"),
                         ("POST", f"jobs/{jid}/rerun"), ("DELETE", f"jobs/{jid}")]:
        status, answer = hub.jobs(BOB, method, path)
        assert status == 404, (method, path, answer)
    status, listed = hub.jobs(BOB, "GET", "jobs")
    assert jid not in [row["id"] for row in listed["jobs"]]
    status, listed = hub.jobs(ADMIN, "GET", "jobs", via="service")
    assert jid in [row["id"] for row in listed["jobs"]]
    # The admin, through their own server (its token carries the admin scope), sees and cancels it.
    status, everyone = hub.jobs(ADMIN, "GET", "jobs?all_users=1")
    assert status == 200 and jid in [row["id"] for row in everyone["jobs"]], everyone
    status, cancelled = hub.jobs(ADMIN, "POST", f"jobs/{jid}/cancel")
    assert status == 200 and cancelled["status"] == "Cancelled", cancelled
    # Links in answers lead back through the caller's own server, where its browser is logged in.
    assert cancelled["url"] == f"/user/{ADMIN}/jupyter-jobs/api/jobs/{jid}"


def test_a_culled_server_does_not_stop_its_users_jobs(hub):
    job = submit(hub, ALICE, {"name": "long", "cmd": "echo begin; sleep 4; echo end"})
    wait_status(hub, ALICE, job["id"], ("Running",))
    hub.stop_server(ALICE)  # as the idle culler does
    try:
        done = wait_status(hub, ALICE, job["id"], ("Succeeded", "Failed"), timeout=60)  # asked of the service
        assert done["status"] == "Succeeded", done["message"]
    finally:
        hub.start_server(ALICE)
        hub.wait_server(ALICE)
    status, back = hub.jobs(ALICE, "GET", f"jobs/{job['id']}")  # through the server again
    assert status == 200 and back["status"] == "Succeeded"
    assert log_lines(log(hub, ALICE, job["id"])) == ["begin", "end"]


def test_inputs_from_the_users_home_reach_the_service(hub):
    home = Path(pwd.getpwnam(ALICE).pw_dir)
    project = home / "proj"
    project.mkdir(exist_ok=True)
    (project / "data.txt").write_text("from alice's home\n")
    subprocess.run(["chown", "-R", f"{ALICE}:", str(project)], check=True)
    # The Lab panel's New job form sends base_dir: the forwarder uploads the inputs it names.
    status, job = hub.jobs(ALICE, "POST", "jobs?base_dir=proj", {"name": "reads", "cmd": "cat data.txt",
                                                                 "inputs": ["data.txt"]})
    assert status == 201, job
    done = wait_status(hub, ALICE, job["id"], ("Succeeded", "Failed"))
    assert done["status"] == "Succeeded", done["message"]
    assert log_lines(log(hub, ALICE, job["id"])) == ["from alice's home"]
    # Straight to the service, base_dir is refused: it reads no one's files.
    status, answer = hub.jobs(ALICE, "POST", "jobs?base_dir=proj", {"cmd": "cat data.txt", "inputs": ["data.txt"]},
                              via="service")
    assert status == 400 and answer["errors"][0]["field"] == "inputs", answer


def test_the_cli_in_a_users_shell_runs_a_job_with_its_files(hub):
    home = Path(pwd.getpwnam(BOB).pw_dir)
    project = home / "cli-proj"
    project.mkdir(exist_ok=True)
    (project / "train.py").write_text("import os\nprint('trained on', open('data.csv').read().strip())\n"
                                      "open('model.txt', 'w').write('weights')\n")
    (project / "data.csv").write_bytes(b"x" * (3 << 20))  # a few MiB: streamed through the forwarder
    (project / "job.yaml").write_text("name: cli\ncmd: python3 train.py > /dev/null && wc -c < data.csv\n"
                                      "inputs: [data.csv]\noutputs: [model.txt]\n")
    subprocess.run(["chown", "-R", f"{BOB}:", str(project)], check=True)
    venv = Path(os.environ.get("JUPYTER_JOBS_HUB_VENV", "/var/cache/jupyter-jobs/hub-venv"))
    command = (f"cd {shlex.quote(str(project))} && JUPYTER_JOBS_URL={hub.url}/user/{BOB}/ "
               f"JUPYTER_JOBS_TOKEN={hub.token(BOB)} {venv}/bin/jupyter-jobs run job.yaml --follow")
    result = subprocess.run(["su", "-s", "/bin/sh", BOB, "-c", command], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(3 << 20) in result.stdout
    assert (project / "model.txt").read_text() == "weights"  # the declared output came back beside the spec
    assert (project / "model.txt").stat().st_uid == pwd.getpwnam(BOB).pw_uid


def test_the_cli_on_the_box_logs_in_to_the_service_and_never_runs_jobs_itself(hub):
    venv = Path(os.environ.get("JUPYTER_JOBS_HUB_VENV", "/var/cache/jupyter-jobs/hub-venv"))
    system_config = venv / "etc" / "jupyter" / "jupyter_jobs_service.json"  # as /etc/jupyter/ would hold it
    system_config.write_text(json.dumps({"url": f"{hub.url}/services/{SERVICE}/"}))
    cli = f"{venv}/bin/jupyter-jobs"

    def as_carol(command: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run(["su", "-l", "-s", "/bin/sh", CAROL, "-c", command], input=stdin,
                              capture_output=True, text=True, timeout=120)

    try:
        refused = as_carol(f"{cli} list")  # an SSH session with no token yet
        assert refused.returncode == 2 and "jupyter jobs login" in refused.stderr, refused.stderr
        local = as_carol(f"{cli} --local list")  # no second pool beside the team's
        assert local.returncode == 2 and "run by the team's service" in local.stderr, local.stderr
        kept = Path(pwd.getpwnam(CAROL).pw_dir) / ".local/share/jupyter/jupyter_jobs/service-token"
        wrong = as_carol(f"{cli} login", stdin="not-a-token\n")
        assert wrong.returncode != 0 and not kept.exists()
        logged = as_carol(f"{cli} login", stdin=hub.token(CAROL) + "\n")
        assert logged.returncode == 0 and f"as {CAROL}" in logged.stdout, logged.stdout + logged.stderr
        assert kept.stat().st_mode & 0o777 == 0o600 and kept.stat().st_uid == pwd.getpwnam(CAROL).pw_uid
        ran = as_carol(f"printf 'name: ssh\\ncmd: echo from-ssh\\n' > ssh.yaml && {cli} run ssh.yaml --follow")
        assert ran.returncode == 0 and "from-ssh" in ran.stdout, ran.stdout + ran.stderr
        listed = as_carol(f"{cli} list --mine --json")
        rows = json.loads(listed.stdout)
        assert [row["owner"] for row in rows] and {row["owner"] for row in rows} == {CAROL}
    finally:
        system_config.unlink()


def test_following_a_log_through_the_users_server_streams_until_the_job_ends(hub):
    import http.client
    import urllib.parse

    go = Path(tempfile.mkdtemp(prefix="jj-go-")) / "go"
    go.parent.chmod(0o777)
    job = submit(hub, BOB, {"name": "talks", "cmd": f"echo line-1; while [ ! -e {go} ]; do sleep 0.1; done; echo line-2"})
    wait_status(hub, BOB, job["id"], ("Running",))
    url = urllib.parse.urlsplit(f"{hub.url}/user/{BOB}/jupyter-jobs/api/jobs/{job['id']}/logs?follow=1")
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    conn.request("GET", f"{url.path}?{url.query}", headers={"Authorization": f"token {hub.token(BOB)}"})
    response = conn.getresponse()
    assert response.status == 200
    seen = b""
    while b"line-1" not in seen:  # arrives while the job still runs: streamed, not buffered till the end
        seen += response.read1(65536)
    status, running = hub.jobs(BOB, "GET", f"jobs/{job['id']}")
    assert running["status"] == "Running"
    go.touch()
    seen += response.read()
    conn.close()
    shutil.rmtree(go.parent, ignore_errors=True)
    assert log_lines(seen.decode()) == ["line-1", "line-2"]  # all of it: it ended with the job
    status, done = hub.jobs(BOB, "GET", f"jobs/{job['id']}")
    assert done["status"] == "Succeeded"


def test_a_job_cell_in_a_users_kernel_runs_in_the_service(hub):
    """%%job in a real kernel of alice's server: the kernel finds its server, the server forwards."""
    import asyncio
    import uuid

    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    status, kernel = request("POST", f"{hub.url}/user/{ALICE}/api/kernels", {"name": "python3"}, hub.token(ALICE))
    assert status == 201, kernel
    marker = uuid.uuid4().hex[:8]
    code = "%load_ext jupyter_jobs\n"
    cell = f"%%job --name kernel-{marker}\nprint('from the kernel', 6 * 7)\n"

    async def run(source: str) -> list[dict]:
        url = f"{hub.url.replace('http', 'ws')}/user/{ALICE}/api/kernels/{kernel['id']}/channels"
        conn = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {hub.token(ALICE)}"}))
        msg_id = uuid.uuid4().hex
        conn.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": ALICE, "session": uuid.uuid4().hex,
                       "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": source, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        seen = []
        while True:
            message = json.loads(await asyncio.wait_for(conn.read_message(), 120))
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            seen.append(message)
            if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                conn.close()
                return seen

    try:
        loaded = asyncio.run(run(code))
        assert not [m for m in loaded if m["msg_type"] == "error"], loaded
        shown = asyncio.run(run(cell))
        errors = [m["content"] for m in shown if m["msg_type"] == "error"]
        assert not errors, errors
        bundles = [m["content"]["data"] for m in shown if m["msg_type"] in ("display_data", "execute_result")]
        views = [b["application/vnd.jupyter-jobs.job+json"] for b in bundles if "application/vnd.jupyter-jobs.job+json" in b]
        assert views, shown
        job_id = views[0]["id"]
        done = wait_status(hub, ALICE, job_id, ("Succeeded", "Failed"))
        assert done["status"] == "Succeeded" and done["owner"] == ALICE, done["message"]
        assert "from the kernel 42" in log(hub, ALICE, job_id)
    finally:
        request("DELETE", f"{hub.url}/user/{ALICE}/api/kernels/{kernel['id']}", token=hub.token(ALICE))


def test_jobs_run_as_their_user_with_their_group_and_files_only_they_read(hub):
    alice = pwd.getpwnam(ALICE)
    job = submit(hub, ALICE, {"name": "whoami", "cmd": 'id -u; id -g; echo "$JOB_USER $JOB_GROUP"; '
                                                       'echo result > out.txt; cat /root/.bashrc || echo no-root-files',
                              "outputs": ["out.txt"]})
    done = wait_status(hub, ALICE, job["id"], ("Succeeded", "Failed"))
    assert done["status"] == "Succeeded", done["message"]
    lines = log_lines(log(hub, ALICE, job["id"]))
    assert lines[:3] == [str(alice.pw_uid), str(alice.pw_gid), f"{ALICE} team-a"], lines
    assert lines[-1] == "no-root-files"
    outputs = next(hub.service_data.glob(f"jobs/{job['id']}/outputs"))
    produced = outputs / "out.txt"
    assert produced.stat().st_uid == alice.pw_uid
    assert outputs.stat().st_mode & 0o077 == 0, oct(outputs.stat().st_mode)  # no one else reads them
    # bob, as himself on the box, cannot read alice's outputs either
    peek = subprocess.run(["su", "-s", "/bin/sh", BOB, "-c", f"cat {shlex.quote(str(produced))}"],
                          capture_output=True, text=True)
    assert peek.returncode != 0 and "result" not in peek.stdout
    # An admin's rerun is still alice's job: her code never runs under the admin's account.
    status, rerun = hub.jobs(ADMIN, "POST", f"jobs/{job['id']}/rerun", via="service")
    assert status == 201 and rerun["owner"] == ALICE, rerun
    again = wait_status(hub, ALICE, rerun["id"], ("Succeeded", "Failed"))
    assert again["status"] == "Succeeded", again["message"]
    text = log(hub, ALICE, rerun["id"])
    assert log_lines(text)[0] == str(alice.pw_uid) and f"rerun by {ADMIN}" in text


def test_group_members_see_but_do_not_act_and_a_group_quota_holds_jobs_back(hub):
    first = submit(hub, ALICE, {"name": "a-1", "cmd": "sleep 60", "instance-type": "gpu"})
    wait_status(hub, ALICE, first["id"], ("Running",))
    # carol is in team-a too: she sees alice's job, may not cancel it
    status, seen = hub.jobs(CAROL, "GET", f"jobs/{first['id']}")
    assert status == 200 and seen["owner"] == ALICE and seen["group"] == "team-a", seen
    status, refused = hub.jobs(CAROL, "POST", f"jobs/{first['id']}/cancel")
    assert status == 403, refused
    status, mine = hub.jobs(CAROL, "GET", "jobs?owner=me")
    assert first["id"] not in [row["id"] for row in mine["jobs"]]  # "Submitted by me"
    # team-a holds 1 GPU (its quota) with one GPU still free: a second team-a job waits, a team-b job starts
    second = submit(hub, CAROL, {"name": "a-2", "cmd": "true", "instance-type": "gpu"})
    third = submit(hub, BOB, {"name": "b-1", "cmd": "sleep 1", "instance-type": "gpu"})
    wait_status(hub, BOB, third["id"], ("Running", "Succeeded"))
    status, waiting = hub.jobs(CAROL, "GET", f"jobs/{second['id']}")
    assert waiting["status"] == "Pending" and "team-a" in waiting["message"], waiting["message"]
    hub.jobs(ALICE, "POST", f"jobs/{first['id']}/cancel")  # team-a's GPU is free again: carol's job runs
    assert wait_status(hub, CAROL, second["id"], ("Succeeded", "Failed"))["status"] == "Succeeded"


@pytest.mark.docker
def test_docker_jobs_of_the_service_run_as_their_user(docker_hub):
    alice = pwd.getpwnam(ALICE)
    job = submit(docker_hub, ALICE, {"name": "in-a-container", "cmd": "id -u; id -g; echo weights > model.bin",
                                     "outputs": ["model.bin"]})
    done = wait_status(docker_hub, ALICE, job["id"], ("Succeeded", "Failed"), timeout=120)
    assert done["status"] == "Succeeded", done["message"]
    assert log_lines(log(docker_hub, ALICE, job["id"]))[:2] == [str(alice.pw_uid), str(alice.pw_gid)]
    status, body = docker_hub.jobs(ALICE, "GET", f"jobs/{job['id']}/outputs/model.bin", raw=True)
    assert (status, body) == (200, b"weights\n")
    produced = docker_hub.service_data / "jobs" / str(job["id"]) / "outputs" / "model.bin"
    assert produced.stat().st_uid == alice.pw_uid

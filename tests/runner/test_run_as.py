"""Jobs run as the user who submits them (``JobManager.run_as_owner``, issue 13): real system users made
for the test, a real server running as root, real processes, containers and Slurm jobs.

They need root (useradd, setpriv) and skip with the reason elsewhere; with JUPYTER_JOBS_TEST_CGROUPS=1, as
in CI (which runs as root), they fail instead. The Docker and Slurm ones also need their engine (see
conftest).
"""
from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import As, HeaderIdentity

from jupyter_jobs.runner.identity import NoAccount, RunAs

REQUIRED = os.environ.get("JUPYTER_JOBS_TEST_CGROUPS") == "1"
pytestmark = pytest.mark.integration


def _need_root() -> None:
    why = "" if os.geteuid() == 0 else "the tests do not run as root"
    why = why or ("" if shutil.which("useradd") and shutil.which("setpriv") else "useradd or setpriv is missing")
    if why and REQUIRED:
        pytest.fail(f"CI tests jobs that run as their users but this machine cannot: {why}")
    if why:
        pytest.skip(f"jobs that run as their users cannot be tested here: {why}")


TEAM = f"jj-team-{secrets.token_hex(3)}"


@pytest.fixture(scope="module")
def accounts():
    """Two throwaway system accounts (no home, no login shell), removed at the end; alice is in the group
    TEAM from the start (slurmd keeps a user's groups for minutes: a group joined later is not seen there)."""
    _need_root()
    made = []
    subprocess.run(["groupadd", TEAM], check=True, capture_output=True)
    try:
        for who in ("alice", "bob"):
            name = f"jj-{who}-{secrets.token_hex(3)}"
            groups = ["-G", TEAM] if who == "alice" else []
            subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", *groups, name], check=True, capture_output=True)
            made.append(name)
        yield [pwd.getpwnam(name) for name in made]
    finally:
        for name in made:
            _end_processes_of(pwd.getpwnam(name).pw_uid)  # jobs outlive their server: a failed test may leave one
            removed = subprocess.run(["userdel", name], check=False, capture_output=True, text=True)
            assert removed.returncode == 0, f"userdel {name}: {removed.stderr}"
        subprocess.run(["groupdel", TEAM], check=False, capture_output=True)


def _end_processes_of(uid: int) -> None:
    """SIGKILL, by pid, every process of a throwaway account (only this module's jobs run as it), and wait
    until they are gone (userdel refuses an account that still has a process)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = []
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                if entry.name.isdigit() and entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


@pytest.fixture
def alice_account(accounts):
    return accounts[0]


@pytest.fixture
def bob_account(accounts):
    return accounts[1]


@pytest.fixture
def shared_dir():
    """A folder every account may enter (pytest's own tmp folders are root's alone, 0700)."""
    path = Path(tempfile.mkdtemp(prefix="jj-runas-", dir="/tmp"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def jobs_data_dir(shared_dir):
    return shared_dir / "jobs-data"


@pytest.fixture
def jobs_config():
    return {"ServerApp": {"identity_provider_class": HeaderIdentity},
            "JobManager": {"run_as_owner": True}}


@pytest.fixture
def alice(jp_fetch, jobs_app, alice_account):
    return As(jp_fetch, alice_account.pw_name)


async def wait(user: As, job_id: int, statuses=("Succeeded", "Failed", "Cancelled", "Unknown"), timeout=60.0) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        job = await user.call("GET", "jobs", str(job_id))
        if job["status"] in statuses:
            return job
        assert loop.time() < deadline, f"job {job_id} still {job['status']}: {job['message']}"
        await asyncio.sleep(0.05)


def as_account(account, *argv: str) -> subprocess.CompletedProcess:
    """Run ``argv`` as another account (as the tests check what it may read)."""
    return subprocess.run(["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups",
                           "--", *argv], capture_output=True, text=True, timeout=30)


def mode_and_owner(path: Path) -> tuple[str, int]:
    info = os.lstat(path)
    return oct(stat.S_IMODE(info.st_mode)), info.st_uid


WHO = "id -u; id -g; echo $HOME $USER $LOGNAME; env | grep -c JJ_SERVER_SECRET || true"


def test_an_owner_is_a_system_account_never_root(accounts):
    account = accounts[0]
    run_as = RunAs.of(account.pw_name)
    assert (run_as.uid, run_as.gid, run_as.name) == (account.pw_uid, account.pw_gid, account.pw_name)
    assert account.pw_gid in run_as.groups
    argv = run_as.setpriv()
    assert f"--reuid={account.pw_uid}" in argv and "--inh-caps=-all" in argv and argv[-1] == "--"
    with pytest.raises(NoAccount, match="root"):
        RunAs.of("root")
    with pytest.raises(NoAccount, match="no system account"):
        RunAs.of("jj-nobody-" + secrets.token_hex(4))


async def test_a_local_job_runs_as_its_owner_with_its_files_the_owners(
        alice, alice_account, bob_account, jobs_data_dir, shared_dir, monkeypatch):
    secret = shared_dir / "root-only"
    secret.write_text("root's\n")
    secret.chmod(0o600)
    monkeypatch.setenv("JJ_SERVER_SECRET", "the service's token")  # the server's own: never the job's
    job = await alice.call("POST", "jobs", body={
        "cmd": f"{{ {WHO}; }} > who.txt; cat {secret} > read.txt 2>&1 || echo denied >> who.txt; echo logged",
        "outputs": ["who.txt"]})
    done = await wait(alice, job["id"])
    assert done["status"] == "Succeeded", done["message"]
    who = (await alice.call("GET", "jobs", str(job["id"]), "outputs", "who.txt", raw=True)).body.decode().split("\n")
    uid, gid = alice_account.pw_uid, alice_account.pw_gid
    assert who[:5] == [str(uid), str(gid), f"{alice_account.pw_dir} {alice_account.pw_name} {alice_account.pw_name}",
                       "0", "denied"], who
    folder = jobs_data_dir / "jobs" / str(job["id"])
    # The user's own files, which other users cannot read; the folder and run/ stay the server's.
    assert mode_and_owner(folder) == ("0o711", 0)
    assert mode_and_owner(folder / "run") == ("0o700", 0)
    assert mode_and_owner(folder / "outputs") == ("0o700", uid)
    assert mode_and_owner(folder / "job.log") == ("0o600", uid)
    assert mode_and_owner(folder / "displays.jsonl") == ("0o600", uid)
    assert os.lstat(folder / "outputs" / "who.txt").st_uid == uid
    assert "logged" in as_account(alice_account, "cat", str(folder / "job.log")).stdout
    assert as_account(alice_account, "cat", str(folder / "outputs" / "who.txt")).returncode == 0
    for path in ("job.log", "outputs/who.txt", "run/handle.json"):
        assert as_account(bob_account, "cat", str(folder / path)).returncode != 0, path
    assert as_account(bob_account, "ls", str(folder)).returncode != 0
    assert as_account(alice_account, "ls", str(folder / "run")).returncode != 0


async def test_cancel_ends_a_job_that_runs_as_its_owner(alice, alice_account, jobs_data_dir):
    job = await alice.call("POST", "jobs", body={"cmd": "sleep 300"})
    await wait(alice, job["id"], ("Running",))
    pid_file = jobs_data_dir / "jobs" / str(job["id"]) / "run" / "exit-status.pid"
    for _ in range(200):  # the wrapper (root) runs the job's shell as its owner
        if pid_file.exists() and _child_uids(int(pid_file.read_text())) == [alice_account.pw_uid]:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the job's command never ran as its owner")
    await alice.call("POST", "jobs", str(job["id"]), "cancel")
    done = await wait(alice, job["id"])
    assert (done["status"], done["exit_code"]) == ("Cancelled", 143), done["message"]


def _child_uids(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [int(next(line for line in Path(f"/proc/{c}/status").read_text().splitlines()
                          if line.startswith("Uid:")).split()[1]) for c in children]
    except (OSError, StopIteration):
        return []


async def test_a_dataset_is_read_only_for_a_job_that_runs_as_its_owner(alice, alice_account, manager, shared_dir):
    # Mounted read-only by the wrapper as root, then read as the owner (the mount before setpriv).
    data = shared_dir / "mnist"
    data.mkdir(mode=0o777)  # writable by anyone on the host: only the mount keeps the job from writing
    data.chmod(0o777)
    (data / "x.txt").write_text("pixels")
    manager.cluster.datasets = {"mnist": str(data)}
    manager.cluster.load()
    job = await alice.call("POST", "jobs", body={
        "cmd": "id -u; cat $DATA/x.txt && echo new > $DATA/new.txt", "datasets": [{"mnist": "DATA"}]})
    done = await wait(alice, job["id"])
    log = (await alice.call("GET", "jobs", str(job["id"]), "logs", raw=True)).body.decode()
    assert f"\n{alice_account.pw_uid}\n" in log and "pixels" in log and "Read-only file system" in log, log
    assert done["status"] == "Failed" and not (data / "new.txt").exists()


async def test_an_owner_without_an_account_or_root_cannot_submit(jp_fetch, jobs_app, jobs_data_dir):
    stranger = "jj-nobody-" + secrets.token_hex(3)
    code, body = await As(jp_fetch, stranger).error("POST", "jobs", body={"cmd": "true"})
    assert code == 400 and stranger in body["message"] and "useradd" in body["message"], body
    code, body = await As(jp_fetch, "root").error("POST", "jobs", body={"cmd": "true"})
    assert code == 400 and "never run as root" in body["message"], body
    assert not [p for p in (jobs_data_dir / "jobs").iterdir() if p.name.isdigit()]


def test_the_data_dir_is_entered_not_listed_by_the_jobs_accounts(jobs_app, jobs_data_dir):
    assert mode_and_owner(jobs_data_dir)[0] == "0o711"
    assert mode_and_owner(jobs_data_dir / "jobs")[0] == "0o711"
    assert mode_and_owner(jobs_data_dir / "blobs")[0] == "0o700"
    assert mode_and_owner(jobs_data_dir / "environments" / "wheels")[0] == "0o700"
    assert mode_and_owner(jobs_data_dir / "jobs.sqlite")[0] == "0o600"


# -- Docker ------------------------------------------------------------------------------------------
@pytest.mark.docker
@pytest.mark.parametrize("jobs_config", [{
    "ServerApp": {"identity_provider_class": HeaderIdentity},
    "JobManager": {"run_as_owner": True, "backend": "docker"},
    "Cluster": {"instance_types": [{"name": "cpu", "cpus": 0.5, "memory": "256MiB"}]}}])
async def test_a_container_runs_as_its_owner_and_writes_its_outputs(alice, alice_account, jobs_data_dir):
    job = await alice.call("POST", "jobs", body={"cmd": "id -u > who.txt; id -g >> who.txt; id -G >> who.txt",
                                                 "outputs": ["who.txt"]})
    done = await wait(alice, job["id"], timeout=120)
    assert done["status"] == "Succeeded", done["message"]
    who = (await alice.call("GET", "jobs", str(job["id"]), "outputs", "who.txt", raw=True)).body.decode().split()
    assert who[:2] == [str(alice_account.pw_uid), str(alice_account.pw_gid)], who
    folder = jobs_data_dir / "jobs" / str(job["id"])
    assert os.lstat(folder / "outputs" / "who.txt").st_uid == alice_account.pw_uid
    # Docker gave neither of the job's writable folders the owner of the image's folder (root).
    assert mode_and_owner(folder / "code") == ("0o700", alice_account.pw_uid)


# -- Slurm -------------------------------------------------------------------------------------------
@pytest.mark.slurm
@pytest.mark.parametrize("jobs_config", [{
    "ServerApp": {"identity_provider_class": HeaderIdentity},
    "JobManager": {"run_as_owner": True, "backend": "slurm"}, "SlurmBackend": {"poll_seconds": 0.3},
    "Cluster": {"instance_types": [{"name": "cpu", "cpus": 1, "memory": 100}]}}])
async def test_a_slurm_job_runs_as_its_owner(alice, alice_account, jobs_data_dir, monkeypatch):
    monkeypatch.setenv("JJ_SERVER_SECRET", "the service's token")
    job = await alice.call("POST", "jobs", body={"cmd": f"{{ {WHO}; }} > who.txt; echo logged", "outputs": ["who.txt"]})
    done = await wait(alice, job["id"], timeout=90)
    assert done["status"] == "Succeeded", done["message"]
    who = (await alice.call("GET", "jobs", str(job["id"]), "outputs", "who.txt", raw=True)).body.decode().split("\n")
    assert who[:4] == [str(alice_account.pw_uid), str(alice_account.pw_gid),
                       f"{alice_account.pw_dir} {alice_account.pw_name} {alice_account.pw_name}", "0"], who
    folder = jobs_data_dir / "jobs" / str(job["id"])
    assert mode_and_owner(folder / "job.log") == ("0o600", alice_account.pw_uid)
    assert "logged" in (await alice.call("GET", "jobs", str(job["id"]), "logs", raw=True)).body.decode()
    failed = await wait(alice, (await alice.call("POST", "jobs", body={"cmd": "exit 3"}))["id"], timeout=90)
    assert (failed["status"], failed["exit_code"]) == ("Failed", 3), failed["message"]


def test_who_a_container_runs_as(monkeypatch):
    from jupyter_jobs.runner.docker import container_user

    owner = RunAs(1234, 2345, (2345, 27), "alice", "/home/alice")
    assert container_user("", owner) == ("1234:2345", ["27"])
    assert container_user("nobody", owner) == ("1234:2345", ["27"])  # the owner, whatever the setting says
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert container_user("", None) == (None, [])  # a root server: the image's user
    assert container_user("1000:1000", None) == ("1000:1000", [])
    # A server that is not root (a JupyterHub single-user server): its own uid, so jobs can write its folders.
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getegid", lambda: 100)
    monkeypatch.setattr(os, "getgroups", lambda: [100, 44])
    assert container_user("", None) == ("1000:100", ["44"])


@pytest.mark.docker
async def test_a_container_of_a_server_that_is_not_root_writes_its_outputs(alice_account, shared_dir, monkeypatch):
    """A JupyterHub single-user server runs as its user, and its job folders are that user's (0700). Its
    containers run as that uid:gid: root there, with every capability dropped, could not write them."""
    from jupyter_jobs.jobdir import JobDir
    from jupyter_jobs.models import InstanceType, JobRecord, JobSpec
    from jupyter_jobs.runner.backend import Launch
    from jupyter_jobs.runner.docker import DockerBackend

    uid, gid = alice_account.pw_uid, alice_account.pw_gid
    folder = JobDir(shared_dir / "jobs" / "7")
    folder.create()
    for path in (folder.root, folder.code, folder.outputs, folder.run, folder.log, folder.displays):
        os.chown(path, uid, gid)
        path.chmod(0o700 if path.is_dir() else 0o600)
    backend = DockerBackend(server_id=f"jj-runas-{secrets.token_hex(3)}")
    spec = JobSpec(cmd="id -u > $JOB_OUTPUTS/who.txt; echo in-code > here.txt")
    job = JobRecord(id=7, name="job", owner="alice", spec=spec, image="jupyter-jobs/base:bookworm")
    monkeypatch.setattr(os, "geteuid", lambda: uid)  # the server, as the container's user is chosen
    monkeypatch.setattr(os, "getegid", lambda: gid)
    monkeypatch.setattr(os, "getgroups", lambda: [gid])
    try:
        handle = await backend.start(Launch(job, folder, [], InstanceType("cpu", cpus=0.5, memory_mib=256)))
        monkeypatch.undo()
        end = await asyncio.wait_for(backend.wait(job, handle), 90)
        await backend.collect(JobRecord(id=7, name="job", owner="alice", spec=spec, handle=handle), folder)
    finally:
        monkeypatch.undo()
        backend.close()
    assert end.code == 0, folder.log.read_text()
    assert (folder.outputs / "who.txt").read_text().strip() == str(uid)
    assert os.lstat(folder.code / "here.txt").st_uid == uid
    assert mode_and_owner(folder.code) == ("0o700", uid)


# -- writable volumes ----------------------------------------------------------------------------------
_OWNERS = {"ServerApp": {"identity_provider_class": HeaderIdentity}}
RUN_AS_BACKENDS = [
    pytest.param({**_OWNERS, "JobManager": {"run_as_owner": True}}, id="local"),
    pytest.param({**_OWNERS, "JobManager": {"run_as_owner": True, "backend": "docker"}}, id="docker",
                 marks=pytest.mark.docker),
    pytest.param({**_OWNERS, "JobManager": {"run_as_owner": True, "backend": "slurm"},
                  "SlurmBackend": {"poll_seconds": 0.3},
                  "Cluster": {"instance_types": [{"name": "cpu", "cpus": 1, "memory": 100}]}}, id="slurm",
                 marks=pytest.mark.slurm),
]


@pytest.fixture
def team(alice_account):
    """A throwaway system group with alice in it (the admin's way of sharing a volume)."""
    return grp.getgrnam(TEAM)


@pytest.mark.parametrize("jobs_config", RUN_AS_BACKENDS)
async def test_a_job_that_runs_as_its_owner_writes_a_volume_its_group_may_write(
        jp_fetch, jobs_app, manager, alice_account, team, shared_dir):
    # The admin owns the permissions: a volume of the group alice is in (setgid, so files stay the group's),
    # and one only root may write. jupyter-jobs changes neither.
    shared, private = shared_dir / "research", shared_dir / "private"
    shared.mkdir()
    os.chown(shared, 0, team.gr_gid)
    shared.chmod(0o2770)
    private.mkdir(mode=0o755)
    manager.cluster.volumes = {"research": str(shared), "private": str(private)}
    manager.cluster.load()
    alice = As(jp_fetch, alice_account.pw_name)
    job = await alice.call("POST", "jobs", body={"cmd": "cd $PROJECT && echo w > model.bin && id -u",
                                                 "volumes": [{"name": "research", "var": "PROJECT"}]})
    done = await wait(alice, job["id"], timeout=90)
    assert done["status"] == "Succeeded", done["message"]
    assert os.stat(shared / "model.bin").st_uid == alice_account.pw_uid
    assert os.stat(shared / "model.bin").st_gid == team.gr_gid
    refused = await alice.call("POST", "jobs", body={"cmd": "echo w > $JOB_VOLUME_PRIVATE/x", "volumes": ["private"]})
    done = await wait(alice, refused["id"], timeout=90)
    log = (await alice.call("GET", "jobs", str(refused["id"]), "logs", raw=True)).body.decode()
    assert done["status"] == "Failed" and "Permission denied" in log, log
    assert mode_and_owner(private) == ("0o755", 0) and mode_and_owner(shared) == ("0o2770", 0)

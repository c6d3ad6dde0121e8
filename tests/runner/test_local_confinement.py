"""The local backend confines jobs: a cgroup with memory and pids limits, killed whole at the job's
end, and a private /dev/shm. Real processes, real cgroups, through a real server.

They need root (writable cgroups, mount namespaces) and skip with the reason elsewhere; with
JUPYTER_JOBS_TEST_CGROUPS=1, as in CI (which runs as root), they fail instead.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from jupyter_jobs.runner.cgroups import Cgroups

REQUIRED = os.environ.get("JUPYTER_JOBS_TEST_CGROUPS") == "1"


def _need(what: str, why: str) -> None:
    if why:
        if REQUIRED:
            pytest.fail(f"CI tests {what} but this machine cannot: {why}")
        pytest.skip(f"{what} not possible here: {why}")


@pytest.fixture
def cgroups() -> Cgroups:
    found = Cgroups.detect()
    _need("cgroup confinement", found.reason)
    return found


@pytest.fixture
def private_shm() -> None:
    if os.geteuid() != 0:
        _need("a private /dev/shm", "not root")
    probe = subprocess.run(["unshare", "--mount", "true"], check=False, capture_output=True, text=True)
    _need("a private /dev/shm", probe.stderr.strip() if probe.returncode else "")


DAEMON = """\
import os, sys, time
# A daemon as daemons are made: fork, new session, fork again; the grandchild outlives the job.
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open(sys.argv[1] + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(sys.argv[1] + ".tmp", sys.argv[1])
        os.execvp("sleep", ["sleep", "1000"])
    os._exit(0)
os.wait()
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
"""


def _ticks(pid: int) -> tuple[str, int] | None:
    """(state, start time) of a process, or None when there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _alive(pid: int) -> bool:
    # A killed orphan may stay a zombie when PID 1 does not reap (as in some sandboxes): dead.
    found = _ticks(pid)
    return found is not None and found[0] not in "ZX"


def _handle(data_dir: Path, job_id: int) -> dict:
    return json.loads((data_dir / "jobs" / str(job_id) / "run" / "handle.json").read_text())


def _reap(pids: list[int]) -> None:
    """Never leave a process behind, whatever the test found."""
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


async def _pid_from(path: Path, timeout: float = 20.0) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not path.exists():
        assert loop.time() < deadline, f"the job did not write {path}"
        await asyncio.sleep(0.05)
    return int(path.read_text())


@pytest.fixture
def daemon_script(tmp_path: Path) -> Path:
    script = tmp_path / "daemon.py"
    script.write_text(DAEMON)
    return script


@pytest.mark.parametrize("end, status", [("exit 0", "Succeeded"), ("exit 3", "Failed")])
async def test_daemon_is_killed_when_the_job_ends(api, cgroups, daemon_script, tmp_path, jobs_data_dir, end, status):
    pidfile = tmp_path / "daemon.pid"
    job = await api.submit({"cmd": f"{sys.executable} {daemon_script} {pidfile}; {end}"})
    done = await api.wait(job["id"])
    daemon = int(pidfile.read_text())
    try:
        assert done["status"] == status, done["message"]
        assert not _alive(daemon), f"the job's daemon {daemon} outlived it: {_ticks(daemon)}"
        dirs = _handle(jobs_data_dir, job["id"])["cgroup"]
        assert dirs and not [d for d in dirs if Path(d).exists()], "its cgroup was not removed"
    finally:
        _reap([daemon])


@pytest.mark.parametrize("how", ["cancel", "max-runtime"])
async def test_daemon_is_killed_when_the_job_is_stopped(api, cgroups, daemon_script, tmp_path, how):
    pidfile = tmp_path / "daemon.pid"
    spec = {"cmd": f"{sys.executable} {daemon_script} {pidfile}; sleep 1000"}
    if how == "max-runtime":
        spec["max-runtime"] = "2s"
    job = await api.submit(spec)
    daemon = await _pid_from(pidfile)
    try:
        if how == "cancel":
            await api.call("POST", "jobs", str(job["id"]), "cancel")
        done = await api.wait(job["id"])
        assert done["status"] == ("Cancelled" if how == "cancel" else "Failed"), done["message"]
        assert not _alive(daemon), f"the job's daemon {daemon} outlived it: {_ticks(daemon)}"
    finally:
        _reap([daemon])


@pytest.mark.parametrize("jobs_config", [{"Cluster": {"instance_types": [
    {"name": "small", "cpus": 1, "memory": "64MiB"}]}}])
async def test_job_over_its_memory_limit_is_killed(api, cgroups):
    # 256 MiB, touched page by page (b"x" * n writes them all), against a 64 MiB instance type.
    job = await api.submit({"cmd": f"{sys.executable} -c 'x = b\"x\" * (256 << 20); print(len(x))'",
                            "instance-type": "small"})
    done = await api.wait(job["id"], timeout=60)
    assert done["status"] == "Failed"
    assert "out of memory" in done["message"] and "64 MiB" in done["message"], done["message"]


FORK_BOMB = """\
import subprocess, sys
started, refused = [], 0
for _ in range(200):
    try:
        started.append(subprocess.Popen(["sleep", "1000"]))
    except OSError:  # EAGAIN: the pids limit
        refused += 1
open(sys.argv[1], "w").write(" ".join(str(p.pid) for p in started))
print(f"started {len(started)}, refused {refused}")
sys.exit(0 if refused else 1)
"""


@pytest.mark.parametrize("jobs_config", [{"LocalBackend": {"pids_limit": 50}}])
async def test_pids_limit_bounds_a_fork_bomb(api, cgroups, tmp_path):
    script, pidfile = tmp_path / "bomb.py", tmp_path / "sleeps"
    script.write_text(FORK_BOMB)
    job = await api.submit({"cmd": f"{sys.executable} {script} {pidfile}"})
    done = await api.wait(job["id"], timeout=60)
    sleeps = [int(p) for p in pidfile.read_text().split()]
    try:
        log = await api.log(job["id"])
        assert done["status"] == "Succeeded", f"{done['message']}\n{log}"
        assert 0 < len(sleeps) < 50, log
        assert not [p for p in sleeps if _alive(p)], "the job's processes outlived it"
    finally:
        _reap(sleeps)


async def test_dev_shm_is_private(api, private_shm):
    name = f"jupyter-jobs-test-{uuid.uuid4().hex}"
    try:
        job = await api.submit({"cmd": f"echo hi > /dev/shm/{name} && test -f /dev/shm/{name} && df /dev/shm"})
        done = await api.wait(job["id"])
        assert done["status"] == "Succeeded", await api.log(job["id"])
        # Half the 'cpu' type's memory (the test cluster: 4096 MiB over 2 CPUs) = 1 GiB.
        assert "1048576" in await api.log(job["id"])
        assert not Path("/dev/shm", name).exists(), "the job wrote the host's /dev/shm"
    finally:
        Path("/dev/shm", name).unlink(missing_ok=True)


@pytest.mark.parametrize("jobs_config", [{"LocalBackend": {"cgroups": False, "private_shm": False}}])
async def test_unconfined_jobs_still_run_and_config_says_so(api, jobs_data_dir):
    confinement = (await api.call("GET", "config"))["backend_info"]["confinement"]
    assert confinement["cgroup"] is None and confinement["reason"] == "LocalBackend.cgroups is False"
    assert confinement["private_shm"] is False
    done = await api.wait((await api.submit({"cmd": "echo ran"}))["id"])
    assert done["status"] == "Succeeded" and _handle(jobs_data_dir, done["id"])["cgroup"] == []


async def test_config_tells_the_confinement(api, cgroups):
    confinement = (await api.call("GET", "config"))["backend_info"]["confinement"]
    assert confinement["cgroup"] == [str(b) for b in cgroups.bases]
    assert confinement["limits"] == ["memory", "pids"] and confinement["pids_limit"] == 4096


@pytest.mark.parametrize("tree", ["v2", "v1"], ids=["cgroup.kill", "freezer"])
def test_kill_all_ends_every_member(tree):
    """Both ways of killing a cgroup (v2's cgroup.kill; v1's freezer) end forks and daemons."""
    found = Cgroups.detect(tree=tree)
    _need("cgroup confinement", found.reason)
    way = "cgroup.kill" if tree == "v2" else "freezer.state"
    if not any((base / way).exists() for base in found.bases):
        _need(f"killing through {way}", f"no writable cgroup tree offers it ({found.bases})")
    cgroup = found.create(f"test-{uuid.uuid4().hex[:8]}", 0, 100)
    join = "for f; do echo 0 > $f; done; setsid sleep 1000 & (sleep 1000 &); sleep 1000"
    proc = subprocess.Popen(["/bin/sh", "-c", join, "sh", *cgroup.join_files()], start_new_session=True)
    try:
        for _ in range(500):
            if len(cgroup.members()) >= 4:
                break
            time.sleep(0.01)
        members = cgroup.members()
        assert len(members) >= 4, members
        assert cgroup.kill_all(timeout=10)
        proc.wait(timeout=10)
        assert not [p for p in members if _alive(p)]
    finally:
        _reap([*cgroup.members(), proc.pid])
        cgroup.remove()
    assert not [d for d in cgroup.dirs if Path(d).exists()]


def test_restarted_server_kills_the_cgroup_of_a_job_it_adopts(server_process, cgroups, daemon_script, tmp_path):
    pidfile = tmp_path / "daemon.pid"
    job = server_process.request("POST", "jobs", {"cmd": f"{sys.executable} {daemon_script} {pidfile}; sleep 1000"})
    server_process.wait(job["id"], ("Running",))
    handle = _handle(server_process.data, job["id"])
    for _ in range(400):
        if pidfile.exists():
            break
        time.sleep(0.05)
    daemon = int(pidfile.read_text())
    try:
        server_process.kill(signal.SIGKILL)
        server_process.start()
        server_process.request("POST", f"jobs/{job['id']}/cancel")
        done = server_process.wait(job["id"])
        assert done["status"] == "Cancelled", done["message"]
        assert not _alive(daemon), f"the job's daemon {daemon} outlived it: {_ticks(daemon)}"
        assert handle["cgroup"] and not [d for d in handle["cgroup"] if Path(d).exists()]
    finally:
        _reap([daemon])


def test_restarted_server_removes_cgroups_of_jobs_that_are_gone(server_process, cgroups):
    """A cgroup left by a crash (its job ended or was deleted meanwhile) is killed and removed at
    start, and so are empty ones of any server, once an hour old (a job ended with its server down)."""
    server_id = (server_process.data / "server-id").read_text().strip()
    leftover = cgroups.create(f"{server_id}-99-1", 0, 0)
    empty, young = (cgroups.create(f"other-{uuid.uuid4().hex[:8]}-1-1", 0, 0) for _ in range(2))
    for d in empty.dirs:
        os.utime(d, (time.time() - 3600, time.time() - 3600))
    proc = subprocess.Popen(["/bin/sh", "-c", 'for f; do echo $$ > "$f"; done; exec sleep 1000', "sh",
                             *leftover.procs_files()], start_new_session=True)
    try:
        for _ in range(400):
            if proc.pid in leftover.members():
                break
            time.sleep(0.01)
        assert proc.pid in leftover.members()
        server_process.kill(signal.SIGKILL)
        server_process.start()
        assert proc.wait(timeout=10) == -signal.SIGKILL
        for _ in range(1000):  # removed just after the kill (the empty ones in the same tidy-up)
            if not [d for d in (*leftover.dirs, *empty.dirs) if Path(d).exists()]:
                break
            time.sleep(0.01)
        assert not [d for d in leftover.dirs if Path(d).exists()]
        assert not [d for d in empty.dirs if Path(d).exists()], "an empty cgroup of an hour ago was kept"
        assert all(Path(d).exists() for d in young.dirs), "a cgroup just made (its job not yet in it) was removed"
    finally:
        _reap([proc.pid])
        for cgroup in (leftover, empty, young):
            cgroup.kill_all()
            cgroup.remove()


@pytest.mark.parametrize("own, base", [
    ("/system.slice/jupyter.service", "system.slice/jupyter-jobs"),  # beside the server's own cgroup
    ("/", "jupyter-jobs"),                                           # the server at the root
])
def test_where_job_cgroups_go_on_a_unified_host(tmp_path, own, base):
    """Pure logic of the layout (this machine is hybrid): a v2 cgroup holding processes cannot
    have limited children, so job cgroups go beside the server's, with memory and pids enabled."""
    tree = tmp_path / "cgroup"
    # The kernel makes these files in each new folder; here they are made beforehand.
    for folder in (tree, tree / "system.slice", tree / "system.slice" / "jupyter.service", tree / base):
        folder.mkdir(exist_ok=True)
        (folder / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
        (folder / "cgroup.subtree_control").write_text("")
    mountinfo, own_cgroup = tmp_path / "mountinfo", tmp_path / "cgroup-of-self"
    mountinfo.write_text(f"30 23 0:26 / {tree} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n")
    own_cgroup.write_text(f"0::{own}\n")
    found = Cgroups.detect(mountinfo=str(mountinfo), own_cgroup=str(own_cgroup))
    assert found.bases == [tree / base] and found.limits == {"memory", "pids"} and not found.reason


@pytest.mark.parametrize("jobs_config", [{"LocalBackend": {"cgroups": False, "private_shm": False}}])
async def test_the_wrapper_leaves_the_jobs_environment_alone(api, monkeypatch):
    # Names a wrapper might use for its own variables, set in the server's environment.
    for name in ("cmd", "status", "shm", "stop", "join"):
        monkeypatch.setenv(name, f"server-{name}")
    job = await api.submit({"cmd": "echo $cmd $status $shm $stop $join"})
    done = await api.wait(job["id"])
    assert done["status"] == "Succeeded", done["message"]
    assert "server-cmd server-status server-shm server-stop server-join" in (await api.log(job["id"])).splitlines()

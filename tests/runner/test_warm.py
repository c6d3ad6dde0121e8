"""Warm interpreters of the local backend: a job-side entry point runs in one started ahead, and the job
cannot tell: same environment, folder, log, session, cgroup and exit status as a cold start. Real
processes through a real server; no timings (speed is measured in bench/).
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from jupyter_jobs.runner.warm import entry_point

CELL = "python -m jupyter_jobs_jobside.cell"
COLD_CELL = f"exec {CELL}"  # the same process, but not a command a warm interpreter runs

PROBE = """\
import json, os, resource, signal, sys
info = {
    "env": dict(os.environ), "cwd": os.getcwd(), "path": sys.path, "argv": sys.argv[1:], "main": __name__,
    "uid": os.getuid(), "gid": os.getgid(), "umask": os.umask(0o022), "nice": os.nice(0),
    "session_leader_is_group_leader": os.getsid(0) == os.getpgid(0), "own_group": os.getpgid(0) == os.getpid(),
    "cgroup": open("/proc/self/cgroup").read(),
    "shm": sorted(l.split(" - ")[1] for l in open("/proc/self/mountinfo") if l.split()[4] == "/dev/shm"),
    "fds": sorted(os.readlink(f"/proc/self/fd/{fd}").split(":[")[0] for fd in os.listdir("/proc/self/fd")
                  if os.path.lexists(f"/proc/self/fd/{fd}") and "/.ipython/" not in os.readlink(f"/proc/self/fd/{fd}")),
    "stdin": os.readlink("/proc/self/fd/0"),
    "stdout_is_log": os.readlink("/proc/self/fd/1").endswith("/job.log"),
    "rlimits": [resource.getrlimit(getattr(resource, n)) for n in ("RLIMIT_NOFILE", "RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_CORE")],
    "sigterm": str(signal.getsignal(signal.SIGTERM)), "sigint": str(signal.getsignal(signal.SIGINT)),
    "cuda_imported": sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "cupy", "jax", "tensorflow")),
}
print("probe to stdout", flush=True)
print("probe to stderr", file=sys.stderr, flush=True)
json.dump(info, open(os.path.join(os.environ["JOB_OUTPUTS"], "probe.json"), "w"))
sys.exit(3)
"""


def _handle(data_dir: Path, job_id: int) -> dict:
    return json.loads((data_dir / "jobs" / str(job_id) / "run" / "handle.json").read_text())


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in "ZX"


def _warm_pids(manager) -> list[int]:
    return manager.engine._warm.idle_pids()


async def _warm_ready(manager, timeout: float = 60.0) -> None:
    """Until a warm interpreter is done importing (a cell job never waits for one: it would start cold)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not manager.engine._warm.idle_pids(ready=True):
        assert loop.time() < deadline, "no warm interpreter got ready"
        await asyncio.sleep(0.05)


async def _run(api, manager, root_dir: Path, cmd: str, cell: str, **spec) -> dict:
    await _warm_ready(manager)
    folder = root_dir / "cell"
    folder.mkdir(exist_ok=True)
    (folder / "_jj_cell.py").write_text(cell)
    job = await api.submit({"name": "probe", "cmd": cmd, "inputs": ["_jj_cell.py"], "env": {"python": "auto"}, **spec},
                           params={"base_dir": "cell"})
    return job


def _normalised(info: dict, folder: Path, job_id: int) -> dict:
    text = json.dumps(info).replace(str(folder), "<job>").replace(f"-{job_id}-", "-<id>-")
    info = json.loads(text)
    info["env"].pop("JOB_ID")
    return info


def test_only_job_side_entry_points_run_warm():
    env = {"JOB_OUTPUTS": "/jobs/7/outputs"}
    assert entry_point(CELL, env) == ("jupyter_jobs_jobside.cell", [])
    assert entry_point("python -m jupyter_jobs_jobside.notebook 'my nb.ipynb' \"$JOB_OUTPUTS/nb.executed.ipynb\" "
                       "-p 'msg=it'\"'\"'s' -p n=3", env) == (
        "jupyter_jobs_jobside.notebook", ["my nb.ipynb", "/jobs/7/outputs/nb.executed.ipynb", "-p", "msg=it's", "-p", "n=3"])
    for cmd in (COLD_CELL, f"{CELL} extra", f"{CELL}; rm -rf x", "python3 -m jupyter_jobs_jobside.cell",
                "python -m jupyter_jobs_jobside.notebook a.ipynb \"$(id)\"", "python -m jupyter_jobs_jobside.notebook *.ipynb o",
                "python -m jupyter_jobs_jobside.notebook a.ipynb o > x", "python -m jupyter_jobs_jobside.warm 3"):
        assert entry_point(cmd, env) is None, cmd


async def test_a_warm_job_sees_what_a_cold_one_sees(api, manager, root_dir, jobs_data_dir):
    secret = {"env": {"vars": {"MY_TOKEN": "s3cret-value"}, "python": "auto"}}
    seen = {}
    for kind, cmd in (("cold", COLD_CELL), ("warm", CELL)):
        job = await _run(api, manager, root_dir, cmd, PROBE, **secret)
        done = await api.wait(job["id"])
        log = await api.log(job["id"])
        assert done["status"] == "Failed" and done["exit_code"] == 3, f"{kind}: {done['message']}\n{log}"
        assert "probe to stdout\nprobe to stderr\n" in log, log
        seen[f"{kind} log"] = [line for line in log.splitlines() if not line.startswith("[jupyter-jobs]")]
        assert _handle(jobs_data_dir, job["id"])["warm"] is (kind == "warm")
        folder = jobs_data_dir / "jobs" / str(job["id"])
        seen[kind] = _normalised(json.loads((folder / "outputs" / "probe.json").read_text()), folder, job["id"])
    assert seen["warm log"] == seen["cold log"]  # the job's own lines: nothing more, nothing less
    assert seen["warm"]["env"] == seen["cold"]["env"]
    assert seen["warm"] == seen["cold"]
    assert seen["warm"]["cuda_imported"] == [] and seen["warm"]["stdout_is_log"]
    confinement = manager.engine.confinement()
    if confinement.cgroups.available:  # where the host confines jobs, both were: the same way
        assert "-<id>-1" in seen["warm"]["cgroup"]
    if confinement.unshare:
        assert any(m.startswith("tmpfs jupyter-job-shm ") for m in seen["warm"]["shm"]), seen["warm"]["shm"]
    # The one waiting for the next job holds no job's variables.
    for pid in _warm_pids(manager):
        assert b"s3cret-value" not in Path(f"/proc/{pid}/environ").read_bytes()


async def test_one_warm_interpreter_serves_one_job_and_is_replaced(api, manager, root_dir, jobs_data_dir):
    pids = []
    for _ in range(2):
        before = _warm_pids(manager)
        assert len(before) == 1 and all(_alive(p) for p in before)
        job = await _run(api, manager, root_dir, CELL, "print('done')")
        done = await api.wait(job["id"])
        assert done["status"] == "Succeeded", done["message"]
        handle = _handle(jobs_data_dir, job["id"])
        assert handle["warm"] and handle["pid"] in before
        assert not _alive(handle["pid"]), "a warm interpreter outlived its job"
        after = _warm_pids(manager)
        assert len(after) == 1 and handle["pid"] not in after
        pids.append(handle["pid"])
    assert pids[0] != pids[1]


@pytest.mark.parametrize("how", ["cancel", "max-runtime"])
async def test_cancel_and_max_runtime_stop_a_warm_job(api, manager, root_dir, jobs_data_dir, how):
    cell = "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(600)"
    job = await _run(api, manager, root_dir, CELL, cell, **({"max-runtime": "2s"} if how == "max-runtime" else {}))
    await api.wait(job["id"], statuses=("Running",))
    lines: list[str] = []
    while not lines or not lines[-1].isdigit():  # until the job printed its pid
        await asyncio.sleep(0.05)
        lines = (await api.log(job["id"])).strip().splitlines()
    child = int(lines[-1])
    if how == "cancel":
        await api.call("POST", "jobs", str(job["id"]), "cancel")
    done = await api.wait(job["id"], timeout=30)
    assert _handle(jobs_data_dir, job["id"])["warm"]
    assert done["status"] == ("Cancelled" if how == "cancel" else "Failed"), done["message"]
    assert not _alive(child) and not _alive(_handle(jobs_data_dir, job["id"])["pid"])


async def test_a_job_that_sets_how_python_starts_runs_cold(api, manager, root_dir, jobs_data_dir):
    job = await _run(api, manager, root_dir, CELL, "import os\nprint(os.environ['PYTHONHASHSEED'])",
                     env={"vars": {"PYTHONHASHSEED": "7"}, "python": "auto"})
    done = await api.wait(job["id"])
    assert done["status"] == "Succeeded" and "7" in await api.log(job["id"])
    assert _handle(jobs_data_dir, job["id"])["warm"] is False


async def test_a_job_with_a_dataset_runs_cold_where_the_dataset_is_read_only(api, manager, root_dir, jobs_data_dir,
                                                                             tmp_path):
    (tmp_path / "mnist").mkdir()
    manager.cluster.datasets = {"mnist": str(tmp_path / "mnist")}
    manager.cluster.load()
    job = await _run(api, manager, root_dir, CELL, "import os\nopen(os.environ['DATA'] + '/x', 'w')",
                     datasets=[{"mnist": "DATA"}])
    done = await api.wait(job["id"])
    assert done["status"] == "Failed" and "Read-only file system" in await api.log(job["id"])
    assert _handle(jobs_data_dir, job["id"])["warm"] is False and not (tmp_path / "mnist" / "x").exists()


@pytest.mark.parametrize("jobs_config", [{"Cluster": {"instance_types": [
    {"name": "small", "cpus": 1, "memory": "128MiB"}, {"name": "big", "cpus": 1, "memory": "1GiB"}]}}])
async def test_a_confined_job_whose_limit_a_warm_interpreter_would_blur_runs_cold(api, manager, root_dir, jobs_data_dir):
    from jupyter_jobs.runner.cgroups import Cgroups

    if Cgroups.detect().reason:
        pytest.skip(f"no cgroups here: {Cgroups.detect().reason}")
    for kind, warm in (("small", False), ("big", True)):
        job = await _run(api, manager, root_dir, CELL, "print(open('/proc/self/cgroup').read())", **{"instance-type": kind})
        done = await api.wait(job["id"])
        assert done["status"] == "Succeeded", done["message"]
        assert _handle(jobs_data_dir, job["id"])["warm"] is warm, kind
        assert f"-{job['id']}-1" in await api.log(job["id"])  # in its own cgroup either way


async def test_a_notebook_job_runs_in_process_with_its_outputs_and_parameters(api, root_dir, jobs_data_dir):
    folder = root_dir / "nb"
    folder.mkdir()
    nb = new_notebook(cells=[
        new_code_cell("n = 1", metadata={"tags": ["parameters"]}),
        new_code_cell("print('n is', n)\nfrom IPython.display import display, HTML\ndisplay(HTML('<b>bold</b>'))\nn * 10"),
        new_code_cell("!echo from-a-shell"),
        new_code_cell("raise ValueError('boom')"),
        new_code_cell("print('never runs')"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, folder / "nb.ipynb")
    job = await api.submit({
        "name": "nb", "cmd": 'python -m jupyter_jobs_jobside.notebook nb.ipynb "$JOB_OUTPUTS/nb.executed.ipynb" -p n=4',
        "inputs": ["nb.ipynb"], "outputs": ["nb.executed.ipynb"], "env": {"python": "auto"}}, params={"base_dir": "nb"})
    done = await api.wait(job["id"], timeout=60)
    log = await api.log(job["id"])
    assert done["status"] == "Failed" and done["exit_code"] == 1, log
    assert _handle(jobs_data_dir, job["id"])["warm"]
    assert "in-process IPython" in log and "An error occurred while executing the following cell" in log
    executed = nbformat.read(jobs_data_dir / "jobs" / str(job["id"]) / "outputs" / "nb.executed.ipynb", as_version=4)
    nbformat.validate(executed)
    cells = executed.cells
    assert cells[1].metadata["tags"] == ["injected-parameters"] and "n = 4" in cells[1].source
    assert [c.execution_count for c in cells] == [1, 2, 3, 4, 5, None]
    out = cells[2].outputs
    assert [o.output_type for o in out] == ["stream", "display_data", "execute_result"]
    assert out[0].text == "n is 4\n" and out[1].data["text/html"] == "<b>bold</b>" and out[2].data["text/plain"] == "40"
    assert out[2].execution_count == 3
    assert "from-a-shell" in cells[3].outputs[0].text
    assert cells[4].outputs[0].output_type == "error" and cells[4].outputs[0].ename == "ValueError"
    assert cells[5].outputs == [] and executed.metadata.language_info.name == "python"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_the_servers_end_ends_its_warm_interpreters(server_process, sig):
    def warm_children() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"jupyter_jobs_jobside.warm" in cmdline and int(stat.rsplit(")", 1)[1].split()[1]) == server_process.proc.pid:
                found.append(int(entry.name))
        return found

    deadline = time.monotonic() + 30
    while not (pids := warm_children()):
        assert time.monotonic() < deadline, "the server started no warm interpreter"
        time.sleep(0.05)
    if sig == signal.SIGTERM:
        server_process.stop()
    else:
        server_process.kill(sig)
    deadline = time.monotonic() + 30
    try:
        while [p for p in pids if _alive(p)]:
            assert time.monotonic() < deadline, f"warm interpreters {pids} outlived the server"
            time.sleep(0.05)
    finally:
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

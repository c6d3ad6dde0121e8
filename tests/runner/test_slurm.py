"""The Slurm backend against real Slurm daemons (slurmctld and two slurmd nodes with one fake GPU each,
started by .ci/slurm-engine.sh; with JUPYTER_JOBS_TEST_SLURM=1, as in CI, these fail rather than skip
when Slurm is missing)."""
import asyncio
import os
import shutil
import signal
import subprocess
import time

import pytest

REQUIRED = os.environ.get("JUPYTER_JOBS_TEST_SLURM") == "1"
pytestmark = [pytest.mark.integration, pytest.mark.slurm]


def _slurm_answers() -> bool:
    if not shutil.which("sinfo") or not os.environ.get("SLURM_CONF"):
        return False
    result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
    return result.returncode == 0 and any(s in result.stdout for s in ("idle", "mixed", "allocated"))


@pytest.fixture
def slurm():
    if not _slurm_answers():
        message = "no Slurm answers (export SLURM_CONF=$(bash .ci/slurm-engine.sh))"
        if REQUIRED:
            pytest.fail("CI runs the Slurm tests but " + message)
        pytest.skip(message)


@pytest.fixture
def jobs_config(slurm):
    return {"JobManager": {"backend": "slurm"}, "SlurmBackend": {"poll_seconds": 0.3}, "Cluster": {"instance_types": [
        {"name": "cpu", "cpus": 1, "memory": 100},
        {"name": "gpu", "cpus": 1, "memory": 100, "gpus": 1},
    ]}}


async def test_success_with_log_and_outputs_and_failure_with_exit_code(api):
    assert (await api.call("GET", "config"))["backend"] == "slurm"
    job = await api.submit({"cmd": "echo on $SLURM_JOB_NODELIST; echo weights > $MODEL", "outputs": [{"m.bin": "MODEL"}]})
    done = await api.wait(job["id"], timeout=60)
    assert done["status"] == "Succeeded", done["message"]
    assert "on jj" in await api.log(job["id"])
    assert done["outputs"] == [{"path": "m.bin", "size": 8}]
    failed = await api.wait((await api.submit({"cmd": "echo boom; exit 3"}))["id"], timeout=60)
    assert (failed["status"], failed["exit_code"]) == ("Failed", 3)
    assert "exited with code 3; last line: boom" in failed["message"]


async def test_gpus_are_exclusive_and_a_third_job_waits_with_slurms_reason(api):
    cmd = "echo GPU=$CUDA_VISIBLE_DEVICES NODE=$SLURMD_NODENAME; sleep 4"
    jobs = [await api.submit({"cmd": cmd, "instance-type": "gpu"}) for _ in range(3)]
    await api.wait(jobs[0]["id"], ("Running",), timeout=60)
    await api.wait(jobs[1]["id"], ("Running",), timeout=60)
    waiting = await api.wait(jobs[2]["id"], ("Pending",), timeout=5)
    deadline = time.monotonic() + 10
    while "Resources" not in waiting["message"] and time.monotonic() < deadline:
        waiting = await api.job(jobs[2]["id"])
    assert waiting["status"] == "Pending"
    assert waiting["message"].startswith("waiting for resources: the CPUs, memory or GPUs it asks for are in use")
    assert "Resources]" in waiting["message"]
    done = [await api.wait(j["id"], timeout=90) for j in jobs]
    assert [d["status"] for d in done] == ["Succeeded"] * 3
    assert done[2]["started_at"] >= min(done[0]["finished_at"], done[1]["finished_at"]) - 1
    nodes = set()
    for job in jobs[:2]:
        line = [l for l in (await api.log(job["id"])).splitlines() if l.startswith("GPU=")][0]
        assert line.startswith("GPU=0 ")  # each node's one GPU, as Slurm hands it out
        nodes.add(line.split("NODE=")[1])
    assert nodes == {"jj1", "jj2"}


async def test_cancel_running_and_slurm_pending_jobs(api, manager):
    blockers = [await api.submit({"cmd": "sleep 300", "instance-type": "gpu"}) for _ in range(2)]
    queued = await api.submit({"cmd": "echo never", "instance-type": "gpu"})
    for job in blockers:
        await api.wait(job["id"], ("Running",), timeout=60)
    pending = await api.wait(queued["id"], ("Pending",), timeout=10)
    while "Slurm job" not in pending["message"]:
        pending = await api.job(queued["id"])
    cancelled = await api.call("POST", "jobs", str(queued["id"]), "cancel")
    assert cancelled["status"] == "Cancelled" and cancelled["started_at"] is None
    started = time.monotonic()
    for job in blockers:
        assert (await api.call("POST", "jobs", str(job["id"]), "cancel"))["status"] == "Cancelled"
    assert time.monotonic() - started < 20
    slurm_ids = {manager.get(j["id"]).handle["slurm_id"] for j in [*blockers, queued]}
    squeue = subprocess.run(["squeue", "-h", "-t", "running,pending", "-o", "%i"], capture_output=True, text=True)
    assert not slurm_ids & set(squeue.stdout.split()), "cancelled jobs must be gone from Slurm"


async def test_max_runtime(api):
    job = await api.submit({"cmd": "sleep 120", "max-runtime": "2s"})
    done = await api.wait(job["id"], timeout=60)
    assert done["status"] == "Failed" and "max-runtime of 2s" in done["message"]
    assert done["durations"]["running"] < 15


async def test_two_node_job_sees_its_ranks(api):
    job = await api.submit({"cmd": "echo rank $RANK local $LOCAL_RANK of $WORLD_SIZE master $MASTER_ADDR:$MASTER_PORT",
                            "replicas": 2})
    done = await api.wait(job["id"], timeout=60)
    assert done["status"] == "Succeeded", done["message"]
    lines = sorted(l for l in (await api.log(job["id"])).splitlines() if l.startswith("rank"))
    assert [l.split(" master ")[0] for l in lines] == ["rank 0 local 0 of 2", "rank 1 local 0 of 2"]
    assert all(" master 127.0.0.1:" in l for l in lines)


async def test_replicas_need_a_cluster_backend_and_slurm_refusals_are_explained(api):
    job = await api.submit({"cmd": "true", "replicas": 8})  # 8 nodes: Slurm has 2
    done = await api.wait(job["id"], timeout=30)
    assert done["status"] == "Failed"
    assert "Slurm cannot run it" in done["message"] or "Slurm refused the job" in done["message"]


@pytest.fixture
def server_args(slurm):
    return ["--JobManager.backend=slurm", "--SlurmBackend.poll_seconds=0.3", "--Cluster.cpus=2",
            "--Cluster.memory_mib=400"]


def test_server_killed_mid_job_finds_its_slurm_jobs_again(server_process):
    job = server_process.request("POST", "jobs", {"cmd": "for i in $(seq 1 20); do echo tick $i; sleep 0.2; done"})
    server_process.wait(job["id"], ("Running",), timeout=60)
    server_process.kill(signal.SIGKILL)
    time.sleep(1.0)
    server_process.start()
    done = server_process.wait(job["id"], timeout=60)
    assert done["status"] == "Succeeded", done["message"]
    log = server_process.request("GET", f"jobs/{job['id']}/logs").decode()
    assert [l for l in log.splitlines() if l.startswith("tick")] == [f"tick {i}" for i in range(1, 21)]
    # A job Slurm forgot ends as Unknown: pretend with a Slurm id it never had.
    forgotten = server_process.request("POST", "jobs", {"cmd": "sleep 60"})
    server_process.wait(forgotten["id"], ("Running",), timeout=60)
    server_process.kill(signal.SIGKILL)
    handle = server_process.data / "jobs" / str(forgotten["id"]) / "run" / "handle.json"
    slurm_id = __import__("json").loads(handle.read_text())["slurm_id"]
    subprocess.run(["scancel", slurm_id], check=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and subprocess.run(
            ["squeue", "-h", "-t", "running,completing", "-j", slurm_id], capture_output=True, text=True).stdout.strip():
        time.sleep(0.2)
    # The scenario: the job vanished (a node crash, a purged record) without leaving an exit status.
    (handle.parent / "exit-status").unlink(missing_ok=True)
    import sqlite3

    db = sqlite3.connect(server_process.data / "jobs.sqlite")
    db.execute("UPDATE jobs SET handle = json_set(handle, '$.slurm_id', '999999') WHERE id = ?", (forgotten["id"],))
    db.commit()
    db.close()
    server_process.start()
    lost = server_process.wait(forgotten["id"], timeout=60)
    assert lost["status"] == "Unknown" and "Slurm no longer knows job 999999" in lost["message"]


@pytest.mark.skipif(not os.environ.get("DOCKER_HOST"), reason="container mode needs the dockerd of .ci/docker-engine.sh")
@pytest.mark.parametrize("jobs_config", [{
    "JobManager": {"backend": "slurm"}, "SlurmBackend": {"poll_seconds": 0.3, "container": True},
    "Cluster": {"instance_types": [{"name": "cpu", "cpus": 1, "memory": 100}]}}])
async def test_container_mode_runs_in_the_image_and_cancel_ends_the_container(api, slurm):
    import docker

    job = await api.submit({"cmd": "echo in $(cat /proc/1/comm) as $(id -u) at $PWD; echo out > $JOB_OUTPUTS/o.txt",
                            "outputs": ["o.txt"]})
    done = await api.wait(job["id"], timeout=90)
    assert done["status"] == "Succeeded", done["message"]
    assert "in docker-init as 0 at /code" in await api.log(job["id"])
    assert done["outputs"] == [{"path": "o.txt", "size": 4}]
    sleeper = await api.submit({"cmd": "echo started; sleep 300"})
    await api.wait(sleeper["id"], ("Running",), timeout=90)
    while "started" not in await api.log(sleeper["id"]):
        await asyncio.sleep(0.1)
    assert (await api.call("POST", "jobs", str(sleeper["id"]), "cancel"))["status"] == "Cancelled"
    client = docker.from_env()
    deadline = time.monotonic() + 15
    while [c for c in client.containers.list() if c.name.startswith("jj-")] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [c.name for c in client.containers.list() if c.name.startswith("jj-")] == []

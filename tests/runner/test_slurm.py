"""The Slurm backend against real Slurm daemons (slurmctld and two slurmd nodes with one fake GPU each,
started by .ci/slurm-engine.sh). The `slurm` marker skips these when Slurm is missing, or fails them
with JUPYTER_JOBS_TEST_SLURM=1, as in CI (tests/conftest.py)."""
import asyncio
import os
import secrets
import signal
import subprocess
import time

import pytest

from jupyter_jobs.jobdir import JobDir
from jupyter_jobs.models import Dataset, DatasetRef, InstanceType, JobRecord, JobSpec
from jupyter_jobs.runner.backend import Launch
from jupyter_jobs.runner.slurm import SlurmBackend

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


def squeue(*args: str) -> str:
    return subprocess.run(["squeue", "-h", *args], capture_output=True, text=True, timeout=30).stdout


@pytest.fixture
def jobs_config():
    return {"JobManager": {"backend": "slurm"}, "SlurmBackend": {"poll_seconds": 0.3}, "Cluster": {"instance_types": [
        {"name": "cpu", "cpus": 1, "memory": 100},
        {"name": "gpu", "cpus": 1, "memory": 100, "gpus": 1},
    ]}}


async def test_success_with_log_and_outputs_and_failure_with_exit_code(api):
    assert (await api.call("GET", "config"))["backend"] == "slurm"
    shown = '{"output_type": "display_data", "data": {"text/plain": "shown"}, "metadata": {}}'
    job = await api.submit({"cmd": f"echo on $SLURM_JOB_NODELIST; echo weights > $MODEL; echo '{shown}' >> $JOB_DISPLAYS",
                            "outputs": [{"m.bin": "MODEL"}]})
    done = await api.wait(job["id"], timeout=60)
    assert done["status"] == "Succeeded", done["message"]
    assert "on jj" in await api.log(job["id"])
    displays = await api.call("GET", "jobs", str(job["id"]), "displays", raw=True)
    assert displays.body.decode().strip() == shown
    assert done["outputs"] == [{"path": "m.bin", "size": 8}]
    failed = await api.wait((await api.submit({"cmd": "echo boom; exit 3"}))["id"], timeout=60)
    assert (failed["status"], failed["exit_code"]) == ("Failed", 3)
    assert "exited with code 3; last line: boom" in failed["message"]


async def test_gpus_are_exclusive_and_a_third_job_waits_with_slurms_reason(api):
    cmd = "echo GPU=$CUDA_VISIBLE_DEVICES NODE=$SLURMD_NODENAME; sleep 8"
    jobs = [await api.submit({"cmd": cmd, "instance-type": "gpu"}) for _ in range(3)]
    # Slurm starts two of the three (which two is Slurm's choice: they reach it at about the same time),
    # and the third waits with Slurm's own reason.
    deadline = time.monotonic() + 60
    while True:
        states = [await api.job(j["id"]) for j in jobs]
        running = [s for s in states if s["status"] == "Running"]
        waiting = [s for s in states if s["status"] == "Pending" and "Resources" in s["message"]]
        if len(running) == 2 and len(waiting) == 1:
            break
        assert time.monotonic() < deadline, [(s["id"], s["status"], s["message"]) for s in states]
        assert not [s for s in states if s["status"] in ("Succeeded", "Failed")], "a job ended before the third waited"
        await asyncio.sleep(0.1)
    (waiting,) = waiting
    assert waiting["message"].startswith("waiting for resources: the CPUs, memory or GPUs it asks for are in use")
    assert "Resources]" in waiting["message"]
    done = [await api.wait(j["id"], timeout=90) for j in jobs]
    assert [d["status"] for d in done] == ["Succeeded"] * 3
    first = [d for d in done if d["id"] != waiting["id"]]
    third = next(d for d in done if d["id"] == waiting["id"])
    assert third["started_at"] >= min(d["finished_at"] for d in first) - 1
    nodes = set()
    for job in first:
        line = [l for l in (await api.log(job["id"])).splitlines() if l.startswith("GPU=")][0]
        assert line.startswith("GPU=0 ")  # each node's one GPU, as Slurm hands it out
        nodes.add(line.split("NODE=")[1])
    assert nodes == {"jj1", "jj2"}


async def test_cancel_running_and_slurm_pending_jobs(api, manager):
    blockers = [await api.submit({"cmd": "sleep 300", "instance-type": "gpu"}) for _ in range(2)]
    for job in blockers:  # both GPUs taken before the third job reaches Slurm (submissions run concurrently)
        await api.wait(job["id"], ("Running",), timeout=60)
    queued = await api.submit({"cmd": "echo never", "instance-type": "gpu"})
    pending = await api.wait(queued["id"], ("Pending",), timeout=10)
    deadline = time.monotonic() + 10
    while "Slurm job" not in pending["message"] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        pending = await api.job(queued["id"])
    assert "Slurm job" in pending["message"], pending["message"]
    cancelled = await api.call("POST", "jobs", str(queued["id"]), "cancel")
    assert cancelled["status"] == "Cancelled" and cancelled["started_at"] is None
    started = time.monotonic()
    for job in blockers:
        assert (await api.call("POST", "jobs", str(job["id"]), "cancel"))["status"] == "Cancelled"
    assert time.monotonic() - started < 20
    slurm_ids = {manager.get(j["id"]).handle["slurm_id"] for j in [*blockers, queued]}
    left = await asyncio.to_thread(squeue, "-t", "running,pending", "-o", "%i")
    assert not slurm_ids & set(left.split()), "cancelled jobs must be gone from Slurm"


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
def server_args():
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
    while time.monotonic() < deadline and squeue("-t", "running,completing", "-j", slurm_id).strip():
        time.sleep(0.2)
    # The scenario: the job vanished (a node crash, a purged record) without leaving an exit status.
    (handle.parent / "exit-status").unlink(missing_ok=True)
    server_process.edit_db("UPDATE jobs SET handle = json_set(handle, '$.slurm_id', '999999') WHERE id = ?",
                           forgotten["id"])
    server_process.start()
    lost = server_process.wait(forgotten["id"], timeout=60)
    assert lost["status"] == "Unknown" and "Slurm no longer knows job 999999" in lost["message"]


def test_a_job_submitted_just_before_a_kill_is_found_not_submitted_twice(server_process):
    """The server died after sbatch accepted the job but before its handle was written anywhere."""
    server = server_process
    job = server.request("POST", "jobs", {"cmd": "echo once-$JOB_ID; sleep 1"})
    handle = server.data / "jobs" / str(job["id"]) / "run" / "handle.json"
    deadline = time.monotonic() + 30
    while not handle.exists():
        assert time.monotonic() < deadline, "never submitted"
        time.sleep(0.05)
    server.kill(signal.SIGKILL)
    handle.unlink()
    server.edit_db("UPDATE jobs SET handle = '{}', status = 'Pending', preparing_at = NULL, started_at = NULL "
                   "WHERE id = ?", job["id"])
    server.start()
    done = server.wait(job["id"], timeout=60)
    assert done["status"] == "Succeeded", done["message"]
    log = server.request("GET", f"jobs/{job['id']}/logs").decode()
    assert log.splitlines().count(f"once-{job['id']}") == 1, log
    assert "found its Slurm job" in log


@pytest.mark.docker  # container mode: the nodes run `docker run`
@pytest.mark.parametrize("jobs_config", [{
    "JobManager": {"backend": "slurm"}, "SlurmBackend": {"poll_seconds": 0.3, "container": True},
    "Cluster": {"instance_types": [{"name": "cpu", "cpus": 1, "memory": 100}]}}])
async def test_container_mode_runs_in_the_image_and_cancel_ends_the_container(api, manager):
    import docker

    job = await api.submit({"cmd": "echo in $(cat /proc/1/comm) as $(id -u) at $PWD; echo out > $JOB_OUTPUTS/o.txt",
                            "outputs": ["o.txt"]})
    done = await api.wait(job["id"], timeout=90)
    assert done["status"] == "Succeeded", done["message"]
    assert "in docker-init as 0 at /code" in await api.log(job["id"])
    assert done["outputs"] == [{"path": "o.txt", "size": 4}]
    # A setuid file the container leaves would hold on the shared file system: its bit is cleared.
    suid = await api.submit({"cmd": "cp /bin/true $JOB_OUTPUTS/t && chmod 4755 $JOB_OUTPUTS/t && ls -l $JOB_OUTPUTS/t",
                             "outputs": ["t"]})
    assert (await api.wait(suid["id"], timeout=90))["status"] == "Succeeded"
    log = await api.log(suid["id"])
    assert "-rwsr-xr-x" in log and "cleared the setuid/setgid bits of 1 output(s): t" in log, log
    assert os.stat(manager.folder(suid["id"]).outputs / "t").st_mode & 0o6000 == 0
    sleeper = await api.submit({"cmd": "echo started; sleep 300"})
    await api.wait(sleeper["id"], ("Running",), timeout=90)
    while "started" not in await api.log(sleeper["id"]):
        await asyncio.sleep(0.1)
    assert (await api.call("POST", "jobs", str(sleeper["id"]), "cancel"))["status"] == "Cancelled"
    client = docker.from_env()

    def ours():
        return [c.name for c in client.containers.list() if c.name.startswith("jj-")]

    deadline = time.monotonic() + 15
    while await asyncio.to_thread(ours) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert await asyncio.to_thread(ours) == []
    client.close()


# -- the batch script takes nothing of the user's as Slurm options or shell code --------------------
# The JobRecord is built directly, as a stored record or another client could hold it: the backend
# must be safe on its own, whatever the spec parser lets through.

def hostile_launch(tmp_path, *, owner: str, working_dir: str = ".", env=None, cmd: str, datasets=()):
    # An admin's data dir with what sbatch reads specially: blanks, '#', quotes, %j.
    folder = JobDir(tmp_path / "jobs data #1 'q\" %j" / "jobs" / "7")
    folder.create()
    (folder.code / working_dir).mkdir(parents=True, exist_ok=True)
    spec = JobSpec(cmd=cmd, name="n$(touch /tmp/x)", working_dir=working_dir, env=dict(env or {}),
                   datasets=tuple(DatasetRef(name, var) for name, var, _ in datasets))
    job = JobRecord(id=7, name=spec.name, owner=owner, spec=spec)
    return Launch(job, folder, [Dataset(name, str(path)) for name, _, path in datasets],
                  InstanceType("cpu", cpus=1, memory_mib=100))


async def run_to_the_end(backend, launch):
    handle = await backend.start(launch)
    end = await asyncio.wait_for(backend.wait(launch.job, handle), 90)
    info = await asyncio.to_thread(
        subprocess.run, ["scontrol", "show", "job", handle["slurm_id"]], capture_output=True, text=True, timeout=30)
    return end, info.stdout


async def test_owner_working_dir_and_values_cannot_inject_into_the_batch_script(tmp_path):
    marker = f"/tmp/pwned-{secrets.token_hex(8)}"
    elsewhere = tmp_path / "elsewhere.log"
    working_dir = f"w\n#SBATCH --gres=gpu:2\n#SBATCH --output={elsewhere}\n$(touch {marker})"
    launch = hostile_launch(
        tmp_path, owner=f"x$(touch {marker})", working_dir=working_dir,
        env={"V": f"'$(touch {marker})`touch {marker}`\n#SBATCH --gres=gpu:2"},
        cmd='pwd; printf "V=%s|\\n" "$V"; echo "name=$JOB_NAME"')
    backend = SlurmBackend(poll_seconds=0.3)
    end, info = await run_to_the_end(backend, launch)
    log = launch.folder.log.read_text()
    assert end.code == 0, (end, log)
    assert not os.path.exists(marker), "a value of the user's ran as a command on the node"
    # The job ran in its working-dir, newline and all, and printed into its own log file.
    assert f"{launch.folder.code / working_dir}\n" in log
    assert f"V='$(touch {marker})`touch {marker}`\n#SBATCH --gres=gpu:2|" in log
    assert "name=n$(touch /tmp/x)" in log
    assert not elsewhere.exists()
    # sbatch took only our directives: one CPU, 100M, no GPU; the job's name and folder are ours.
    assert "TRES=cpu=1,mem=100M,node=1" in info, info
    assert "gpu" not in info, info
    assert f"JobName={backend.job_name(launch.job)}\n" in info and f"WorkDir={launch.folder.code}\n" in info, info


@pytest.mark.docker  # container mode: the nodes run `docker run`
async def test_container_mode_owner_names_one_folder_and_runs_nothing(tmp_path):
    marker = f"/tmp/pwned-{secrets.token_hex(8)}"
    data = tmp_path / "data set"
    data.mkdir()
    (data / "f.txt").write_text("dataset file\n")
    for owner, folder in [(f"x$(touch {marker})", f"x__touch__tmp_pwned-{marker[11:]}_"), ("..", "__")]:
        launch = hostile_launch(tmp_path / folder, owner=owner, datasets=[("mnist", "DATA", data)],
                                cmd='echo "DATA=$DATA"; cat "$DATA/f.txt"; ls /data')
        end, _ = await run_to_the_end(SlurmBackend(poll_seconds=0.3, container=True), launch)
        log = launch.folder.log.read_text()
        assert end.code == 0, (end, log)
        assert not os.path.exists(marker), "the owner's name ran as a command on the node"
        assert f"DATA=/data/{folder}/mnist\ndataset file\n{folder}\n" in log

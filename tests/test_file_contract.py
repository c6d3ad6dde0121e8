"""One file contract on every backend (issue 12): the same spec, the same results, on local, Docker and Slurm.

The job starts in a writable working dir holding its files; declared outputs written relative to it, to
$JOB_OUTPUTS or to their $VAR come back (parents made first, folders included); what it wrote elsewhere is
named in its log; JOB_CODE, JOB_USER and JOB_GROUP are set; a rerun gets the files as shipped, not as the job left them."""
import pytest

pytestmark = pytest.mark.integration

LOCAL = {"JobManager": {"backend": "local"}}
DOCKER = {"JobManager": {"backend": "docker"}, "Cluster": {"gpus": 0}}
SLURM = {"JobManager": {"backend": "slurm"}, "SlurmBackend": {"poll_seconds": 0.3},
         "Cluster": {"instance_types": [{"name": "cpu", "cpus": 1, "memory": 100}]}}
BACKENDS = [pytest.param(LOCAL, id="local"), pytest.param(DOCKER, id="docker", marks=pytest.mark.docker),
            pytest.param(SLURM, id="slurm", marks=pytest.mark.slurm)]

SPEC = {
    "name": "contract",
    "cmd": "cat in.txt && echo changed >> in.txt && echo m > metrics.txt && echo w > $MODEL && "
           "echo l > runs/a/log.txt && mkdir ckpt && echo c > ckpt/c.bin && head -c 5000 /dev/zero > stray.bin && "
           "echo \"CODE=$JOB_CODE USER=$JOB_USER GROUP=$JOB_GROUP PWD=$(pwd)\"",
    "group": "lab",
    "inputs": ["in.txt"],
    "outputs": ["metrics.txt", {"data/model.bin": "MODEL"}, "runs/a/log.txt", "ckpt"],
}


@pytest.mark.parametrize("jobs_config", BACKENDS)
async def test_the_same_spec_gives_the_same_files_on_every_backend(api, root_dir, jobs_data_dir, jobs_config):
    (root_dir / "in.txt").write_text("shipped\n")
    job = await api.submit(SPEC)
    done = await api.wait(job["id"], timeout=90)
    assert done["status"] == "Succeeded", done["message"] + await api.log(job["id"])
    assert sorted(o["path"] for o in done["outputs"]) == ["ckpt/c.bin", "data/model.bin", "metrics.txt", "runs/a/log.txt"]
    log = await api.log(job["id"])
    code = "/code" if jobs_config is DOCKER else str(jobs_data_dir / "jobs" / str(job["id"]) / "code")
    assert f"CODE={code} USER={done['owner']} GROUP=lab PWD={code}" in log, log
    assert "wrote 1 file outside its declared outputs" in log and "stray.bin (4.9 KiB)" in log, log
    for path, text in {"metrics.txt": b"m\n", "data/model.bin": b"w\n", "ckpt/c.bin": b"c\n"}.items():
        assert (await api.call("GET", "jobs", str(job["id"]), "outputs", path, raw=True)).body == text

    # A rerun gets in.txt as it was shipped, not as the job left it.
    rerun = await api.call("POST", "jobs", str(job["id"]), "rerun", body={"overrides": {}})
    again = await api.wait(rerun["id"], timeout=90)
    assert again["status"] == "Succeeded", again["message"]
    rerun_lines = (await api.log(rerun["id"])).splitlines()
    assert "shipped" in rerun_lines and "changed" not in rerun_lines, rerun_lines


@pytest.mark.parametrize("jobs_config", BACKENDS)
async def test_datasets_are_read_only_on_every_backend(api, manager, tmp_path, jobs_config):
    data = tmp_path / "mnist"
    data.mkdir()
    (data / "x.txt").write_text("pixels")
    manager.cluster.datasets = {"mnist": str(data)}
    manager.cluster.load()
    job = await api.submit({"cmd": "cat $DATA/x.txt && echo new > $DATA/new.txt", "datasets": [{"mnist": "DATA"}]})
    done = await api.wait(job["id"], timeout=90)
    log = await api.log(job["id"])
    assert "pixels" in log and "Read-only file system" in log, log
    assert done["status"] == "Failed" and not (data / "new.txt").exists()
    (data / "x.txt").write_text("changed by the admin")  # read-only for the job, not for the host
    assert (data / "x.txt").read_text() == "changed by the admin"


async def test_a_job_with_a_read_only_dataset_is_still_the_process_cancel_signals(api, manager, tmp_path):
    """Nothing of ours stays between the job and the signals: a job that ignores SIGTERM is killed after the grace."""
    import asyncio
    import time

    (tmp_path / "mnist").mkdir()
    manager.cluster.datasets = {"mnist": str(tmp_path / "mnist")}
    manager.cluster.load()
    job = await api.submit({"cmd": "trap '' TERM; echo ready; while true; do sleep 0.1; done", "datasets": ["mnist"]})
    await api.wait(job["id"], ("Running",))
    while "ready" not in (await api.log(job["id"])).splitlines():
        await asyncio.sleep(0.05)
    started = time.monotonic()
    assert (await api.call("POST", "jobs", str(job["id"]), "cancel"))["status"] == "Cancelled"
    assert 2.5 < time.monotonic() - started < 6

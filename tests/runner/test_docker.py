"""The Docker backend against a real dockerd (started by .ci/run, which sets JUPYTER_JOBS_TEST_DOCKER=1:
there these tests fail, never skip, when the daemon is missing)."""
import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

docker = pytest.importorskip("docker")

REQUIRED = os.environ.get("JUPYTER_JOBS_TEST_DOCKER") == "1"
IMAGE = "jupyter-jobs/base:bookworm"
pytestmark = [pytest.mark.integration, pytest.mark.docker]


def _client():
    try:
        client = docker.from_env(timeout=30)
        client.ping()
        client.images.get(IMAGE)
        return client
    except Exception as exc:
        if REQUIRED:
            pytest.fail(f"CI runs the Docker tests but the daemon or {IMAGE} is missing: {exc}")
        pytest.skip(f"no Docker daemon with {IMAGE} (run .ci/docker-engine.sh): {exc}")


@pytest.fixture
def client():
    client = _client()
    yield client
    client.close()


@pytest.fixture
def jobs_config(client):
    return {"JobManager": {"backend": "docker"}, "Cluster": {"gpus": 1, "instance_types": [
        {"name": "cpu", "cpus": 0.5, "memory": "256MiB"},
        {"name": "gpu", "cpus": 0.5, "memory": "256MiB", "gpus": 1},
    ]}}


def containers_of(client, job_id, server_id):
    labels = [f"jupyter_jobs.job_id={job_id}", f"jupyter_jobs.server={server_id}"]
    return client.containers.list(all=True, filters={"label": labels})


@pytest.fixture
def server_id(manager, client):
    """This test's server id; its containers are removed afterwards (jobs outlive a stopped server)."""
    server_id = manager.engine.server_id
    yield server_id
    for container in client.containers.list(all=True, filters={"label": f"jupyter_jobs.server={server_id}"}):
        container.remove(force=True)


async def test_job_succeeds_with_env_workdir_and_outputs(api, root_dir, manager, server_id):
    assert (await api.call("GET", "config"))["backend"] == "docker"
    (root_dir / "src").mkdir()
    (root_dir / "src" / "train.py").write_text(
        "import os\n"
        "print('cwd', os.getcwd(), 'job', os.environ['JOB_ID'], os.environ['JOB_NAME'], 'seed', os.environ['SEED'])\n"
        "print('gpus', repr(os.environ['CUDA_VISIBLE_DEVICES']), 'uid', os.getuid())\n"
        "open(os.environ['MODEL'], 'w').write('weights')\n"
    )
    job = await api.submit({"name": "train", "cmd": "python train.py", "inputs": ["src/train.py"],
                            "outputs": [{"model.bin": "MODEL"}], "env": {"vars": {"SEED": "42"}}, "working-dir": "src"})
    done = await api.wait(job["id"], timeout=60)
    assert done["status"] == "Succeeded", done["message"]
    assert done["image"] == IMAGE and done["backend"] == "docker"
    log = await api.log(job["id"])
    assert f"cwd /code/src job {job['id']} train seed 42" in log
    assert "gpus ''" in log
    assert (await api.call("GET", "jobs", str(job["id"]), "outputs", "model.bin", raw=True)).body == b"weights"


@pytest.mark.parametrize("jobs_config", [{"JobManager": {"backend": "docker"}, "Cluster": {"gpus": 0}}])
async def test_datasets_are_read_only(api, manager, tmp_path, client, server_id):
    data = tmp_path / "mnist"
    data.mkdir()
    (data / "x.txt").write_text("pixels")
    manager.cluster.datasets = {"mnist": str(data)}
    manager.cluster.load()
    job = await api.submit({"cmd": "cat $DATA/x.txt && ls -d /data/*/mnist && echo new > $DATA/new.txt",
                            "datasets": [{"mnist": "DATA"}]})
    done = await api.wait(job["id"], timeout=60)
    log = await api.log(job["id"])
    assert "pixels" in log
    assert done["status"] == "Failed" and done["exit_code"] != 0
    assert "Read-only file system" in log
    assert not (data / "new.txt").exists()


async def test_failing_job_exit_code_and_message(api, server_id):
    job = await api.submit({"cmd": "echo 'RuntimeError: CUDA out of memory' >&2; exit 5"})
    done = await api.wait(job["id"], timeout=60)
    assert (done["status"], done["exit_code"]) == ("Failed", 5)
    assert done["message"] == "Failed: exited with code 5; last line: RuntimeError: CUDA out of memory"


async def test_cancel_and_max_runtime_end_the_container_within_seconds(api, client, server_id):
    sleeper = await api.submit({"cmd": "echo started; sleep 300"})
    await api.wait(sleeper["id"], ("Running",), timeout=60)
    started = time.monotonic()
    cancelled = await api.call("POST", "jobs", str(sleeper["id"]), "cancel")
    assert cancelled["status"] == "Cancelled"
    assert time.monotonic() - started < 5
    assert containers_of(client, sleeper["id"], server_id) == []

    limited = await api.submit({"cmd": "sleep 300", "max-runtime": "2s"})
    done = await api.wait(limited["id"], timeout=60)
    assert done["status"] == "Failed" and "max-runtime of 2s" in done["message"]
    assert done["durations"]["running"] < 6
    assert containers_of(client, limited["id"], server_id) == []


async def test_the_only_gpu_goes_to_one_job_at_a_time(api, server_id):
    cmd = "echo GPU=$CUDA_VISIBLE_DEVICES NV=$NVIDIA_VISIBLE_DEVICES HOST=$JOB_GPUS; sleep 1"
    first = await api.submit({"cmd": cmd, "instance-type": "gpu"})
    second = await api.submit({"cmd": cmd, "instance-type": "gpu"})
    await api.wait(first["id"], ("Running",), timeout=60)
    waiting = await api.job(second["id"])
    assert waiting["status"] == "Pending"
    assert waiting["message"] == f"waiting for 1 GPU: 1 of 1 in use by job {first['id']}"
    one, two = await api.wait(first["id"], timeout=60), await api.wait(second["id"], timeout=60)
    assert (one["status"], two["status"]) == ("Succeeded", "Succeeded")
    assert two["started_at"] >= one["finished_at"]
    for job in (first, second):
        lines = [line for line in (await api.log(job["id"])).splitlines() if line.startswith("GPU=")]
        assert lines == ["GPU=0 NV=0 HOST=0"]


async def test_docker_inspect_shows_limits_labels_mounts_and_isolation(api, client, manager, tmp_path, server_id):
    data = tmp_path / "ds"
    data.mkdir()
    manager.cluster.datasets = {"ds": str(data)}
    manager.cluster.load()
    job = await api.submit({"cmd": "sleep 60", "datasets": ["ds"]})
    await api.wait(job["id"], ("Running",), timeout=60)
    (container,) = containers_of(client, job["id"], server_id)
    attrs = client.api.inspect_container(container.id)
    host = attrs["HostConfig"]
    assert host["NanoCpus"] == 500_000_000 and host["Memory"] == 256 * 2**20
    assert host["PidsLimit"] == 4096 and host["ShmSize"] == 2**30
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Init"] is True and host["NetworkMode"] == "none"
    mounts = {m["Destination"]: m["RW"] for m in attrs["Mounts"]}
    owner = (await api.job(job["id"]))["owner"]
    assert mounts == {"/code": False, "/outputs": True, f"/data/{owner}/ds": False}
    labels = attrs["Config"]["Labels"]
    assert labels["jupyter_jobs.job_id"] == str(job["id"])
    assert labels["jupyter_jobs.server"] == manager.engine.server_id
    assert attrs["NetworkSettings"]["Networks"].keys() == {"none"}
    await api.call("POST", "jobs", str(job["id"]), "cancel")


async def test_an_image_that_cannot_be_had_fails_the_job_naming_it(api, server_id):
    job = await api.submit({"cmd": "true", "image": "jupyter-jobs/does-not-exist:1"})
    done = await api.wait(job["id"], timeout=60)
    assert done["status"] == "Failed"
    assert "image 'jupyter-jobs/does-not-exist:1' is not on this server and could not be pulled" in done["message"]
    assert "pulling jupyter-jobs/does-not-exist:1" in await api.log(job["id"])


@pytest.mark.parametrize("jobs_config", [{"JobManager": {"backend": "docker"}, "DockerBackend": {"user": "65534:65534"},
                                          "Cluster": {"gpus": 0}}])
async def test_non_root_user_option(api, server_id):
    job = await api.submit({"cmd": "id -u; echo ok > $JOB_OUTPUTS/o.txt", "outputs": ["o.txt"]})
    done = await api.wait(job["id"], timeout=60)
    assert done["status"] == "Succeeded", done["message"]
    assert "65534" in (await api.log(job["id"])).splitlines()


@pytest.fixture
def server_args(client):
    return ["--JobManager.backend=docker"]


def test_server_killed_mid_job_restarts_follows_logs_and_removes_orphans(server_process, client):
    job = server_process.request("POST", "jobs", {
        "cmd": "for i in $(seq 1 40); do echo tick $i; sleep 0.1; done; echo done > $JOB_OUTPUTS/r.txt",
        "outputs": ["r.txt"]})
    quick = server_process.request("POST", "jobs", {"cmd": "sleep 1; echo quick; echo out > $JOB_OUTPUTS/q.txt; exit 3"})
    server_process.wait(job["id"], ("Running",), timeout=60)
    server_process.wait(quick["id"], ("Running",), timeout=60)
    time.sleep(0.5)  # some lines are in the log file before the crash
    server_process.kill(signal.SIGKILL)
    server_id = (server_process.data / "server-id").read_text().strip()
    orphan = client.containers.create(IMAGE, ["true"], labels={
        "jupyter_jobs.server": server_id, "jupyter_jobs.job_id": "9999", "jupyter_jobs.attempt": "1"})
    time.sleep(1.5)  # more lines are written, and `quick` ends, while the server is down
    server_process.start()
    try:
        done = server_process.wait(job["id"], timeout=60)
        assert done["status"] == "Succeeded", done["message"]
        log = server_process.request("GET", f"jobs/{job['id']}/logs").decode()
        ticks = [line for line in log.splitlines() if line.startswith("tick")]
        assert ticks == [f"tick {i}" for i in range(1, 41)], "no gap and no duplicate line"
        ended = server_process.wait(quick["id"], timeout=30)
        assert (ended["status"], ended["exit_code"]) == ("Failed", 3)
        assert ended["outputs"] == [{"path": "q.txt", "size": 4}]
        assert "quick" in server_process.request("GET", f"jobs/{quick['id']}/logs").decode().splitlines()
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(orphan.id)
        assert containers_of(client, job["id"], server_id) == []
    finally:
        server_process.stop()
        for leftover in client.containers.list(all=True, filters={"label": f"jupyter_jobs.server={server_id}"}):
            leftover.remove(force=True)


@pytest.mark.skipif(not os.environ.get("JJ_DOCKER_DIR"), reason="restarts the dockerd that .ci/docker-engine.sh started")
async def test_dockerd_restart_ends_running_jobs_with_a_message(api, client, server_id):
    job = await api.submit({"cmd": "echo before; sleep 300"})
    await api.wait(job["id"], ("Running",), timeout=60)
    while "before" not in await api.log(job["id"]):
        await asyncio.sleep(0.05)
    home = os.environ["JJ_DOCKER_DIR"]
    pid = int(open(f"{home}/docker.pid").read())
    os.kill(pid, signal.SIGTERM)
    while os.path.exists(f"/proc/{pid}"):
        await asyncio.sleep(0.2)
    subprocess.run(["bash", os.path.join(os.path.dirname(__file__), "..", "..", ".ci", "docker-engine.sh")],
                   check=True, capture_output=True, env={**os.environ, "PYTHON": sys.executable})
    done = await api.wait(job["id"], timeout=60)
    assert done["status"] in ("Failed", "Unknown")
    assert any(reason in done["message"] for reason in ("Docker daemon", "is gone")), done["message"]
    assert "before" in await api.log(job["id"])


@pytest.mark.parametrize("jobs_config", [{"JobManager": {"backend": "docker"}, "DockerBackend": {"gpu_mode": "device-request"},
                                          "Cluster": {"gpus": 2, "instance_types": [
                                              {"name": "gpu", "cpus": 0.5, "memory": "256MiB", "gpus": 1}]}}])
async def test_device_request_names_exactly_the_jobs_gpus(api, manager, server_id, monkeypatch):
    sent = []
    real = manager.engine._create_and_start

    def spy(image, kwargs):
        sent.append(kwargs)
        return real(image, kwargs)

    monkeypatch.setattr(manager.engine, "_create_and_start", spy)
    holder = await api.submit({"cmd": "true", "instance-type": "gpu"})
    await api.wait(holder["id"], timeout=60)
    second = await api.submit({"cmd": "true", "instance-type": "gpu"})
    done = await api.wait(second["id"], timeout=60)
    (first_request,), (second_request,) = sent[0]["device_requests"], sent[1]["device_requests"]
    assert first_request["DeviceIDs"] == ["0"] and first_request["Capabilities"] == [["gpu"]]
    assert second_request["DeviceIDs"] == ["0"]  # GPU 0 was free again
    assert sent[0]["environment"]["CUDA_VISIBLE_DEVICES"] == "0"  # numbered from 0 inside
    assert sent[0]["environment"]["JOB_GPUS"] == "0"
    # This host has no NVIDIA toolkit: the real engine refuses the request, and the job says so.
    assert done["status"] == "Failed"
    assert "Docker could not start the container" in done["message"] and "device driver" in done["message"]

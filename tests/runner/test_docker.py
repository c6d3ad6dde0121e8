"""The Docker backend against a real dockerd (started by .ci/run, which sets JUPYTER_JOBS_TEST_DOCKER=1:
there these tests fail, never skip, when the daemon is missing)."""
import asyncio
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest
from tornado.httpclient import HTTPClientError

docker = pytest.importorskip("docker")

from jupyter_jobs.runner.docker import LOG_IN_CONTAINER  # noqa: E402
from jupyter_jobs.runner.environment import DISPLAYS_IN_CONTAINER  # noqa: E402

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
    assert waiting["message"].startswith(f"1st in line for a GPU: 1 of 1 in use by job {first['id']}")
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
    mounts = {m["Destination"]: (m["Type"], m["RW"]) for m in attrs["Mounts"]}
    owner = (await api.job(job["id"]))["owner"]
    assert mounts == {"/code": ("volume", True), "/outputs": ("volume", True), LOG_IN_CONTAINER: ("bind", True),
                      DISPLAYS_IN_CONTAINER: ("bind", True), f"/data/{owner}/ds": ("bind", False),
                      "/opt/jupyter-jobs/jobside": ("bind", False)}
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
    shown = '{"output_type": "display_data", "data": {"text/plain": "shown"}, "metadata": {}}'
    job = await api.submit({"cmd": f"id -u; echo ok > $JOB_OUTPUTS/o.txt; echo '{shown}' >> \"$JOB_DISPLAYS\"",
                            "outputs": ["o.txt"]})
    done = await api.wait(job["id"], timeout=60)
    assert done["status"] == "Succeeded", done["message"]
    assert "65534" in (await api.log(job["id"])).splitlines()
    # What a job cell displays reaches the server from a container that is not root too.
    displays = await api.call("GET", "jobs", str(job["id"]), "displays", raw=True)
    assert json.loads(displays.body)["data"] == {"text/plain": "shown"}


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


@pytest.mark.parametrize("jobs_config", [{"JobManager": {"backend": "docker"}, "DockerBackend": {"gpu_mode": "device-request"},
                                          "Cluster": {"gpus": 2, "instance_types": [
                                              {"name": "gpu", "cpus": 0.5, "memory": "256MiB", "gpus": 1}]}}])
async def test_device_request_names_exactly_the_jobs_gpus(api, manager, server_id, monkeypatch):
    sent = []
    real = manager.engine._create

    def spy(image, kwargs):
        sent.append(kwargs)
        return real(image, kwargs)

    monkeypatch.setattr(manager.engine, "_create", spy)
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


# -- the job's log: written by the job itself, so complete and in order ---------------------------


async def test_a_burst_on_stdout_and_stderr_keeps_every_line_once_in_order(api, server_id):
    job = await api.submit({"cmd": "for i in $(seq 1 60); do echo out $i; echo err $i >&2; done; exit 7"})
    done = await api.wait(job["id"], timeout=60)
    lines = [line for line in (await api.log(job["id"])).splitlines() if line.split(" ")[0] in ("out", "err")]
    assert lines == [f"{stream} {i}" for i in range(1, 61) for stream in ("out", "err")]
    assert done["message"] == "Failed: exited with code 7; last line: err 60"


async def test_200_mb_of_output_all_reach_the_log(api, manager, server_id):
    line = b"0123456789" * 9 + b"abcdefghi\n"  # 100 bytes
    job = await api.submit({"cmd": f"yes {line.decode().strip()} | head -c 200000000"})
    done = await api.wait(job["id"], timeout=120)
    assert done["status"] == "Succeeded", done["message"]
    data = manager.folder(job["id"]).log.read_bytes()
    # Our own lines are appended beside the job's writes (O_APPEND), which `yes` makes in
    # blocks, not lines: one may land inside a line of the job. Without them, the job's bytes:
    ours = re.compile(rb"\[jupyter-jobs\] [^\n]*\n")
    job_bytes = ours.sub(b"", data)
    assert len(job_bytes) == 200_000_000 and job_bytes == line * 2_000_000


# -- containers: never a false success, nothing left behind, /outputs nosuid,nodev ----------------


async def test_a_container_created_but_never_started_runs_after_a_restart(api, manager, jobs_app, client,
                                                                           server_id, monkeypatch):
    from jupyter_jobs.manager import JobManager

    server_died = threading.Event()

    def start_never_returns(*args, **kwargs):
        server_died.wait(60)  # the server dies here, between creating the container and starting it
        raise RuntimeError("the server is gone")

    monkeypatch.setattr(manager.engine.client.api, "start", start_never_returns)
    job = await api.submit({"cmd": "echo it ran; echo out > $JOB_OUTPUTS/r.txt", "outputs": ["r.txt"]})
    labels = [f"jupyter_jobs.job_id={job['id']}", f"jupyter_jobs.server={server_id}"]
    while not client.api.containers(all=True, filters={"label": labels}):
        await asyncio.sleep(0.05)
    (container,) = client.api.containers(all=True, filters={"label": labels})
    assert container["State"] == "created"
    await manager.stop()
    server_died.set()

    again = JobManager(parent=jobs_app, log=jobs_app.log, root_dir=manager.root_dir)
    assert again.get(job["id"]).status.value == "Preparing"
    await again.start()
    try:
        done = await again.wait_until_done(job["id"], timeout=60)
        assert done.status.value == "Succeeded", done.message
        folder = again.folder(job["id"])
        assert "it ran" in folder.log.read_text().splitlines()
        assert (folder.outputs / "r.txt").read_text() == "out\n"
    finally:
        await again.stop()


@pytest.fixture
def volume_image(client):
    """A tiny image with a VOLUME (built without network: no RUN step)."""
    tag = "jupyter-jobs/test-volume:1"
    client.images.build(fileobj=io.BytesIO(f"FROM {IMAGE}\nVOLUME /cache\n".encode()), tag=tag,
                        network_mode="none", rm=True)
    return tag


async def test_anonymous_volumes_go_with_the_container(api, client, volume_image, server_id):
    job = await api.submit({"cmd": "echo x > /cache/x; sleep 1", "image": volume_image})
    await api.wait(job["id"], ("Running",), timeout=60)
    (container,) = containers_of(client, job["id"], server_id)
    volumes = {m["Destination"]: m["Name"] for m in container.attrs["Mounts"] if m["Type"] == "volume"}
    assert "/cache" in volumes
    done = await api.wait(job["id"], timeout=60)
    assert done["status"] == "Succeeded", done["message"]
    for name in volumes.values():
        with pytest.raises(docker.errors.NotFound):
            client.volumes.get(name)


async def test_outputs_are_nosuid_nodev_and_lose_set_id_bits(api, manager, server_id):
    job = await api.submit({"cmd": "grep ' /outputs ' /proc/mounts; echo o > $JOB_OUTPUTS/o.txt; "
                                   "cp /bin/true $JOB_OUTPUTS/t; chmod u+s,g+s $JOB_OUTPUTS/t; test -u $JOB_OUTPUTS/t",
                            "outputs": ["o.txt"]})
    done = await api.wait(job["id"], timeout=60)
    assert done["status"] == "Succeeded", done["message"]
    assert [o["path"] for o in done["outputs"]] == ["o.txt", "t"]
    log = await api.log(job["id"])
    (mount,) = [line for line in log.splitlines() if " /outputs " in line and not line.startswith("[jupyter-jobs]")]
    assert {"nosuid", "nodev", "rw"} <= set(mount.split()[3].split(",")), mount
    # Inside, no-new-privileges and nosuid make the bit idle; on the host it is cleared.
    assert os.stat(manager.folder(job["id"]).outputs / "t").st_mode & 0o6000 == 0
    assert "cleared the setuid/setgid bits of 1 output(s): t" in log


# -- the Docker daemon crashes: a dockerd of the test's own, killed and started again -------------


class OwnDockerd:
    """A dockerd of this test's own (data, exec root, socket, pidfile in a temporary folder),
    with live-restore, so containers outlive it; the test may kill it."""

    def __init__(self, live_restore: bool = True) -> None:
        self.live_restore = live_restore
        # Short: the daemon's and containerd's sockets live under it (108 bytes at most).
        self.home = tempfile.mkdtemp(prefix="jjd-", dir="/tmp")
        self.host = f"unix://{self.home}/docker.sock"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start it; a dockerd that gives up (on a loaded machine it can time out waiting for the
        containerd a killed daemon left) is started again, up to three times."""
        for attempt in range(3):
            try:
                self._start_once()
                return
            except RuntimeError:
                if attempt == 2 or self.proc is None or self.proc.poll() is None:
                    raise

    def _start_once(self) -> None:
        with open(f"{self.home}/dockerd.log", "ab") as log:
            self.proc = subprocess.Popen(
                ["dockerd", "--host", self.host, "--data-root", f"{self.home}/data", "--exec-root", f"{self.home}/exec",
                 "--pidfile", f"{self.home}/docker.pid", "--bridge=none", "--iptables=false", "--ip6tables=false",
                 *(["--live-restore"] if self.live_restore else [])],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        # Restarted beside the containerd a killed daemon left (live-restore), a loaded machine
        # may take it a minute to reconnect.
        deadline = time.monotonic() + 120
        while True:
            try:
                with contextlib.closing(docker.DockerClient(base_url=self.host, timeout=5)) as client:
                    client.ping()
                return
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dockerd did not start: {open(f'{self.home}/dockerd.log').read()[-2000:]}")
                time.sleep(0.1)

    def kill(self) -> None:
        """kill -9, as a crash: no chance to stop anything."""
        self.proc.kill()
        self.proc.wait(timeout=30)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception), contextlib.closing(docker.DockerClient(base_url=self.host)) as client:
                for container in client.containers.list(all=True):
                    container.remove(force=True, v=True)
            self.proc.terminate()
            self.proc.wait(timeout=60)
        # The containerd it started, had it survived the daemon (it stops with it otherwise).
        with contextlib.suppress(OSError, ValueError):
            pid = int(open(f"{self.home}/exec/containerd/containerd.pid").read())
            if open(f"/proc/{pid}/comm").read().strip() == "containerd":
                os.kill(pid, signal.SIGTERM)
        # dockerd leaves its data root bind-mounted on itself.
        mounts = [line.split()[1] for line in open("/proc/mounts") if line.split()[1].startswith(self.home + "/")]
        for path in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", path], check=False)
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
def live_restore():
    return True


@pytest.fixture
def own_dockerd(client, monkeypatch, live_restore):
    if not shutil.which("dockerd") or os.geteuid() != 0:
        reason = "a dockerd of the test's own needs the dockerd binary and root"
        pytest.fail(reason) if REQUIRED else pytest.skip(reason)
    daemon = OwnDockerd(live_restore)
    try:
        daemon.start()
        with contextlib.closing(docker.DockerClient(base_url=daemon.host, timeout=120)) as own:
            own.api.load_image(client.api.get_image(IMAGE))
        monkeypatch.setenv("DOCKER_HOST", daemon.host)  # for the server under test
        yield daemon
    finally:
        daemon.close()


@pytest.mark.timeout(400)
class TestDockerdCrash:
    @pytest.fixture
    def jobs_config(self, own_dockerd):
        return {"JobManager": {"backend": "docker"}, "Cluster": {"gpus": 1, "instance_types": [
            {"name": "gpu", "cpus": 0.5, "memory": "256MiB", "gpus": 1}]}}

    async def test_running_jobs_keep_their_gpu_and_finish_with_their_whole_log(self, own_dockerd, api, manager):
        ticks = await api.submit({"cmd": "for i in $(seq 1 80); do echo tick $i; sleep 0.1; done",
                                  "instance-type": "gpu"})
        second = await api.submit({"cmd": "echo second ran", "instance-type": "gpu"})
        await api.wait(ticks["id"], ("Running",), timeout=60)
        while "tick 5" not in await api.log(ticks["id"]):
            await asyncio.sleep(0.05)

        own_dockerd.kill()
        config = await api.call("GET", "config")
        for _ in range(100):
            if not config["available"]:
                break
            await asyncio.sleep(0.1)
            config = await api.call("GET", "config")
        assert config["available"] is False and "the Docker daemon does not answer" in config["unavailable_reason"]
        with pytest.raises(HTTPClientError) as refused:
            await api.submit({"cmd": "true"})
        assert refused.value.code == 503
        await asyncio.sleep(1.5)  # long enough for the supervisor to have lost its connection
        assert (await api.job(ticks["id"]))["status"] == "Running"
        waiting = await api.job(second["id"])
        assert waiting["status"] == "Pending", "the GPU of the running job must stay held"
        assert waiting["message"].startswith("waiting: the Docker daemon does not answer"), waiting["message"]

        await asyncio.to_thread(own_dockerd.start)
        done = await api.wait(ticks["id"], timeout=60)
        assert done["status"] == "Succeeded", done["message"]
        log = await api.log(ticks["id"])
        assert [line for line in log.splitlines() if line.startswith("tick")] == [f"tick {i}" for i in range(1, 81)]
        assert "lost the connection to the Docker daemon" in log and "the Docker daemon answers again" in log
        after = await api.wait(second["id"], timeout=60)
        assert after["status"] == "Succeeded", after["message"]
        assert after["started_at"] >= done["finished_at"]
        assert (await api.call("GET", "config"))["available"] is True

    @pytest.mark.parametrize("live_restore", [False])
    async def test_without_live_restore_a_daemon_restart_ends_jobs_with_a_message(self, own_dockerd, api):
        job = await api.submit({"cmd": "echo before; sleep 300"})
        await api.wait(job["id"], ("Running",), timeout=60)
        while "before" not in await api.log(job["id"]):
            await asyncio.sleep(0.05)
        own_dockerd.proc.terminate()  # it stops its containers on the way down
        await asyncio.to_thread(own_dockerd.proc.wait, 60)
        await asyncio.to_thread(own_dockerd.start)
        done = await api.wait(job["id"], timeout=60)
        assert done["status"] == "Failed", (done["message"], await api.log(job["id"]))
        assert "the Docker daemon" in done["message"], done["message"]
        assert "before" in await api.log(job["id"])

"""The outputs race of a container against the server that serves its outputs, on a real dockerd
(CI sets JUPYTER_JOBS_TEST_DOCKER=1: there this fails, never skips, without a daemon)."""
import asyncio
import os

import pytest
from tornado.httpclient import HTTPClientError

docker = pytest.importorskip("docker")

REQUIRED = os.environ.get("JUPYTER_JOBS_TEST_DOCKER") == "1"
IMAGE = "jupyter-jobs/base:bookworm"
SECRET = "host-secret-7c1e"
pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.usefixtures("jobs_app")]

# In the container: swap /outputs/d between a folder holding f and a link to a HOST path, which
# the server, reading the bind mount on the host, would follow into the host.
SWAPPER = """
import os, sys, time
os.makedirs("/outputs/real")
open("/outputs/real/f", "w").write("public")
os.symlink(sys.argv[1], "/outputs/link")
open("/outputs/ready", "w").close()
deadline = time.time() + 60
while time.time() < deadline and not os.path.exists("/outputs/stop"):
    os.rename("/outputs/real", "/outputs/d"); os.rename("/outputs/d", "/outputs/real")
    os.rename("/outputs/link", "/outputs/d"); os.rename("/outputs/d", "/outputs/link")
"""


@pytest.fixture
def client():
    try:
        client = docker.from_env(timeout=30)
        client.ping()
        client.images.get(IMAGE)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the daemon means no Docker here
        if REQUIRED:
            pytest.fail(f"CI runs the Docker tests but the daemon or {IMAGE} is missing: {exc}")
        pytest.skip(f"no Docker daemon with {IMAGE} (run .ci/docker-engine.sh): {exc}")
    yield client
    client.close()


@pytest.fixture
def jobs_config(client):
    cpu = {"name": "cpu", "cpus": 0.5, "memory": "256MiB"}
    return {"JobManager": {"backend": "docker"}, "Cluster": {"instance_types": [cpu]}}


@pytest.fixture
def containers(manager, client):
    """Removes this test's containers afterwards (jobs outlive a stopped server)."""
    yield
    label = f"jupyter_jobs.server={manager.engine.server_id}"
    for container in client.containers.list(all=True, filters={"label": label}):
        container.remove(force=True)


async def test_a_container_swapping_outputs_for_a_host_link_never_gets_a_host_file(
    api, manager, root_dir, tmp_path, containers,
):
    host = tmp_path / "host"
    host.mkdir()
    (host / "f").write_text(SECRET)
    (root_dir / "swap.py").write_text(SWAPPER)
    job = await api.submit({"cmd": f"python3 swap.py {host}", "inputs": ["swap.py"]})
    outputs = manager.folder(job["id"]).outputs
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while not (outputs / "ready").exists():
        current = await api.job(job["id"])
        assert current["status"] in ("Pending", "Preparing", "Running"), current["message"]
        assert loop.time() < deadline, "the container never started swapping"
        await asyncio.sleep(0.1)
    deadline = loop.time() + 20
    served = refused = 0
    try:
        for _ in range(3000):
            try:
                body = (await api.call("GET", "jobs", str(job["id"]), "outputs", "d", "f", raw=True)).body
                served += 1
                assert body == b"public", f"served {body[:40]!r}"
            except HTTPClientError as exc:
                assert exc.code in (403, 404), exc
                assert SECRET.encode() not in (exc.response.body if exc.response else b"")
                refused += 1
            if loop.time() > deadline:
                break
    finally:
        # A file put in the outputs from the host may not be seen through the container's overlay
        # of them: stop it by cancelling.
        await api.call("POST", "jobs", str(job["id"]), "cancel")
        await api.wait(job["id"], timeout=30)
    print(f"docker race: {served} served, {refused} refused")
    assert served and refused, "the container did not swap the folder while we downloaded"

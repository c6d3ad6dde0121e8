"""When jobs cannot run (backend down, data dir held elsewhere) the API says why, as a 503."""
import json

import pytest
from tornado.httpclient import HTTPClientError

from conftest import Api

#: The daemon CI started, read before any fixture points DOCKER_HOST elsewhere.
DOCKER_HOST = __import__("os").environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


@pytest.fixture
def jobs_config(monkeypatch, tmp_path):
    # Given: the admin chose Docker, and no daemon answers.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    return {"JobManager": {"backend": "docker"}}


async def test_backend_down_is_503_with_the_reason(jp_fetch, jp_serverapp):
    await jp_serverapp.extension_manager.start_all_extensions()
    api = Api(jp_fetch)
    config = await api.call("GET", "config")
    assert config["available"] is False
    assert "the Docker daemon does not answer" in config["unavailable_reason"]
    with pytest.raises(HTTPClientError) as info:
        await api.submit({"cmd": "true"})
    assert info.value.code == 503
    assert "jobs cannot run here now: the Docker daemon does not answer" in json.loads(info.value.response.body)["message"]
    assert (await api.call("GET", "jobs"))["jobs"] == []


@pytest.fixture
def held_data_dir(jobs_data_dir):
    """Another runner holds the data dir's lock."""
    import fcntl

    jobs_data_dir.mkdir(parents=True)
    lock = open(jobs_data_dir / "runner.lock", "a+")
    lock.write("pid 4242")
    lock.flush()
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    yield
    lock.close()


@pytest.mark.parametrize("jobs_config", [{}])
async def test_data_dir_held_by_another_runner_is_503(held_data_dir, jp_fetch, jp_serverapp):
    await jp_serverapp.extension_manager.start_all_extensions()
    with pytest.raises(HTTPClientError) as info:
        await Api(jp_fetch).submit({"cmd": "true"})
    assert info.value.code == 503
    assert "another jupyter-jobs runner (pid 4242)" in json.loads(info.value.response.body)["message"]


def test_auto_never_runs_docker_jobs_as_host_processes(server_process, tmp_path):
    """backend = auto picked Docker, jobs are queued or running there, and at the next start the
    daemon does not answer: the server must not fall back to running them on the host."""
    server = server_process
    server.stop()
    (server.data / "backend").write_text("docker")
    from jupyter_jobs.models import JobRecord, JobSpec
    from jupyter_jobs.store import JobStore

    store = JobStore(server.data / "jobs.sqlite")
    queued = store.create(JobRecord(id=0, name="for-docker", owner="root", spec=JobSpec(cmd="touch ran-on-host"),
                                    command="touch ran-on-host", image="jupyter-jobs/base:bookworm"))
    store.close()
    server.extra_args = [a for a in server.extra_args if not a.startswith("--JobManager.backend=")]
    server.extra_args.append("--JobManager.backend=auto")
    server.env["DOCKER_HOST"] = f"unix://{tmp_path}/no-docker.sock"
    server.start()
    config = server.request("GET", "config")
    assert config["available"] is False
    assert "Docker daemon does not answer" in config["unavailable_reason"]
    job = server.request("GET", f"jobs/{queued.id}")
    assert job["status"] == "Pending"
    assert not list(server.data.rglob("ran-on-host"))
    server.stop()
    server.edit_db("DELETE FROM jobs")
    server.start()  # nothing unfinished: auto may choose the host now
    assert server.request("GET", "config")["available"] is True


@pytest.mark.docker
@pytest.mark.timeout(180)
async def test_a_daemon_that_answers_later_is_picked_up_without_a_restart(jp_fetch, jp_serverapp, monkeypatch, tmp_path):
    """The server started while dockerd was down: it must start jobs once the daemon answers."""
    import asyncio

    real = DOCKER_HOST.removeprefix("unix://")  # as CI set it (this module's fixture hides it)
    later = tmp_path / "later.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{later}")
    from jupyter_jobs.manager import JobManager

    jp_serverapp.config.JobManager.backend = "docker"
    await jp_serverapp.extension_manager.start_all_extensions()
    api = Api(jp_fetch)
    manager: JobManager = jp_serverapp.web_app.settings["jupyter_jobs_manager"]
    assert (await api.call("GET", "config"))["available"] is False
    later.symlink_to(real)  # the daemon "starts"
    for _ in range(300):
        if (await api.call("GET", "config"))["available"]:
            break
        await asyncio.sleep(0.1)
    config = await api.call("GET", "config")
    assert config["available"] is True and config["backend"] == "docker", config
    job = await api.submit({"cmd": "echo from-a-container", "instance-type": "cpu"})
    for _ in range(600):
        done = await api.job(job["id"])
        if done["status"] in ("Succeeded", "Failed", "Unknown"):
            break
        await asyncio.sleep(0.1)
    assert done["status"] == "Succeeded", done["message"]
    assert done["backend"] == "docker"
    await manager.stop()
    import docker

    client = docker.DockerClient(base_url=f"unix://{real}")
    for container in client.containers.list(all=True, filters={"label": f"jupyter_jobs.server={manager.engine.server_id}"}):
        container.remove(force=True, v=True)

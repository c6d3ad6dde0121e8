"""When jobs cannot run (backend down, data dir held elsewhere) the API says why, as a 503."""
import json

import pytest
from tornado.httpclient import HTTPClientError

from conftest import Api


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

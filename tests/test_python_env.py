"""``env.python`` through a real server: jobs get the environment they ask for, built once per hash with real
packages from the package index, on the local backend, in Docker images and on Slurm; the cache is bounded."""
from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from conftest import UV_CACHE
from tornado.httpclient import HTTPClientError

pytestmark = [pytest.mark.integration, pytest.mark.index]

SIX = {"version": "3.11", "packages": ["six==1.16.0"]}
SHOW = "python -c 'import six, sys; print(\"six\", six.__version__, \"at\", sys.executable)'"


def config(backend: str = "local", **environments) -> dict:
    return {"JobManager": {"backend": backend}, "Environments": {"uv_cache_dir": str(UV_CACHE), **environments}}


async def run(api, spec: dict, timeout: float = 240) -> dict:
    job = await api.submit(spec)
    return await api.wait(job["id"], timeout=timeout)


@contextlib.contextmanager
def derived_image(tag: str, command: list[str], changes: list[str] | None = None):
    """``tag``: the base image after ``command`` ran in it (committed with ``changes``); removed afterwards,
    with the environment images made on it. Yields the tag and a Docker client."""
    import docker

    client = docker.from_env()
    maker = client.containers.run("jupyter-jobs/base:bookworm", command, detach=True, network_mode="none")
    try:
        maker.wait(timeout=60)
        maker.commit(*tag.split(":"), changes=changes)
        yield tag, client
    finally:
        maker.remove(force=True)
        for image in client.images.list(filters={"label": "jupyter_jobs.env.base=" + tag}):
            client.images.remove(image.id, force=True)
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(tag, force=True)
        client.close()


async def test_bad_env_python_is_a_400_naming_the_field(api):
    for python, field, words in [
        ("sometimes", "env.python", "is not a choice"),
        ({"version": 3.1}, "env.python.version", "quoted string"),
        ({"packages": ["six=="]}, "env.python.packages[0]", "not a requirement"),
        ({"pip-options": ["--target", "/etc"]}, "env.python.pip-options", "not an allowed installer option"),
        ({"version": "3.11", "requirements-file": "missing.txt"}, "env.python.requirements-file", "missing.txt"),
    ]:
        with pytest.raises(HTTPClientError) as info:
            await api.submit({"cmd": "true", "env": {"python": python}})
        body = json.loads(info.value.response.body)
        assert info.value.code == 400, body
        assert any(e["field"] == field and words in e["message"] for e in body["errors"]), body
    assert (await api.call("GET", "jobs"))["jobs"] == []  # nothing was queued


@pytest.mark.parametrize("jobs_config", [config()])
async def test_a_package_the_index_lacks_is_refused_at_submit_with_uvs_words(api, root_dir):
    (root_dir / "requirements.txt").write_text("six==1.16.0\nno-such-package-jupyter-jobs-test==1.0\n")
    with pytest.raises(HTTPClientError) as info:
        await api.submit({"cmd": "true", "inputs": ["requirements.txt"],
                          "env": {"python": {"version": "3.11", "requirements-file": "requirements.txt"}}})
    body = json.loads(info.value.response.body)
    assert info.value.code == 400
    assert "no-such-package-jupyter-jobs-test" in body["message"] and "uv pip compile" in body["message"], body
    assert (await run(api, {"cmd": "true"}))["status"] == "Succeeded"  # nothing else is affected


@pytest.mark.parametrize("jobs_config", [config(same_interpreter=False)])
async def test_local_job_runs_in_its_environment_built_once_and_reused(api, manager):
    first = await run(api, {"cmd": SHOW, "env": {"python": SIX}})
    assert first["status"] == "Succeeded", first["message"]
    env = first["environment"]
    assert (env["python"], env["packages"], env["source"], env["built"], env["where"]) == ("3.11", 1, "custom", True, "venv")
    log = await api.log(first["id"])
    assert "six 1.16.0 at " + str(manager.environments.cache.path(env["hash"]) / "bin" / "python") in log
    assert "+ six==1.16.0" in log and f"built environment {env['hash'][:12]}" in log  # uv's output, then ours
    second = await run(api, {"cmd": SHOW, "env": {"python": SIX}})
    assert second["status"] == "Succeeded"
    assert (second["environment"]["hash"], second["environment"]["built"]) == (env["hash"], False)
    assert "is cached; no build" in await api.log(second["id"])
    rerun = await api.call("POST", "jobs", str(second["id"]), "rerun", body={})
    rerun = await api.wait(rerun["id"], timeout=60)
    assert (rerun["status"], rerun["environment"]["hash"], rerun["environment"]["built"]) == ("Succeeded", env["hash"], False)
    none = await run(api, {"cmd": SHOW, "env": {"python": "none"}})
    assert none["environment"] is None and "six 1.16.0" not in (await api.log(none["id"])).split("Running")[-1]


@pytest.mark.parametrize("jobs_config", [config()])
async def test_two_jobs_wanting_one_new_environment_wait_for_one_build(api, manager):
    spec = {"cmd": "python -c 'import attr; print(attr.__version__)'",
            "env": {"python": {"version": "3.11", "packages": ["attrs==23.2.0"]}}}
    jobs = await asyncio.gather(api.submit(spec), api.submit(spec))
    done = [await api.wait(j["id"], timeout=240) for j in jobs]
    assert [d["status"] for d in done] == ["Succeeded", "Succeeded"]
    assert sorted(d["environment"]["built"] for d in done) == [False, True]
    assert manager.environments.cache.builds == 1
    listed = (await api.call("GET", "environments"))["environments"]
    assert [e["hash"] for e in listed] == [done[0]["environment"]["hash"]]


@pytest.mark.parametrize("jobs_config", [config(max_bytes=1)])
async def test_the_cache_evicts_the_least_recently_used_never_one_in_use(api, manager):
    """max_bytes=1: every build prunes all it may. The environment of the job that is being
    prepared (its job active) is kept; the other goes, and comes back with a build when asked."""
    old = await run(api, {"cmd": SHOW, "env": {"python": SIX}})
    hold = await api.submit({"cmd": "sleep 30", "env": {"python": {"version": "3.11", "packages": ["attrs==23.2.0"]}}})
    await api.wait(hold["id"], ("Running",), timeout=240)
    cache = manager.environments.cache
    for _ in range(300):  # pruned in the background after the build
        if not cache.path(old["environment"]["hash"]).exists():
            break
        await asyncio.sleep(0.1)
    assert not cache.path(old["environment"]["hash"]).exists(), "the least recently used environment was kept"
    running = (await api.job(hold["id"]))["environment"]["hash"]
    assert cache.path(running).exists()
    assert await manager.environments.prune(0) == []  # in use: never removed
    again = await run(api, {"cmd": SHOW, "env": {"python": SIX}})
    assert again["status"] == "Succeeded" and again["environment"]["built"] is True
    await api.call("POST", "jobs", str(hold["id"]), "cancel")


@pytest.mark.docker
@pytest.mark.parametrize("jobs_config", [config("docker")])
async def test_docker_job_runs_in_an_image_with_its_environment(api, manager):
    import docker

    spec = {"cmd": "python -c 'import numpy, six; print(\"numpy\", numpy.__version__, \"six\", six.__version__)'",
            "env": {"python": {"version": "3.11", "packages": ["six==1.16.0", "numpy==1.26.4"]}}}
    first = await run(api, spec)
    assert first["status"] == "Succeeded", first["message"] + await api.log(first["id"])
    assert "numpy 1.26.4 six 1.16.0" in await api.log(first["id"])
    env = first["environment"]
    assert env["built"] is True and env["where"].startswith("jupyter-jobs/env:" + env["hash"][:32])
    client = docker.from_env()
    try:
        image = client.images.get(env["where"])
        assert image.labels["jupyter_jobs.env"] == env["hash"]
        assert image.attrs["Config"]["Cmd"] == ["python3"] and not image.attrs["Config"]["Entrypoint"]  # as the base's
        assert not [c for c in client.containers.list(all=True) if c.image.id == client.images.get(
            "jupyter-jobs/base:bookworm").id and "copy" in (c.attrs["Args"] or [])]  # the copying container is gone
        second = await run(api, spec)
        assert (second["status"], second["environment"]["built"]) == ("Succeeded", False)
        plain = await run(api, {**spec, "env": {"python": "none"}})  # the image as it is: no numpy
        assert plain["status"] == "Failed" and "No module named 'numpy'" in await api.log(plain["id"])
        other = await run(api, {**spec, "env": {"python": {"version": "3.12", "packages": ["six"]}}})
        assert other["status"] == "Failed"
        assert "has Python 3.11, and the job's environment is for Python 3.12" in other["message"]
        assert env["hash"] in await manager.environments.prune(0)  # the cache is emptied: its images go with it
        assert not client.images.list(filters={"label": f"jupyter_jobs.env={env['hash']}"})
    finally:
        if client.images.list(filters={"label": f"jupyter_jobs.env={env['hash']}"}):
            client.images.remove(env["where"], force=True)
        client.close()


@pytest.mark.slurm
@pytest.mark.parametrize("jobs_config", [{
    **config("slurm"), "SlurmBackend": {"poll_seconds": 0.3},
    "Cluster": {"instance_types": [{"name": "cpu", "cpus": 1, "memory": 100}]}}])
async def test_slurm_job_runs_in_a_venv_built_once_on_the_shared_data_dir(api, manager):
    first = await run(api, {"cmd": SHOW, "env": {"python": SIX}})
    assert first["status"] == "Succeeded", first["message"]
    env = first["environment"]
    venv = manager.environments.cache.path(env["hash"])
    assert str(venv).startswith(manager.data_dir) and env["built"] is True
    assert f"six 1.16.0 at {venv}/bin/python" in await api.log(first["id"])
    second = await run(api, {"cmd": SHOW, "env": {"python": SIX}})
    assert (second["status"], second["environment"]["built"]) == ("Succeeded", False)


@pytest.mark.parametrize("jobs_config", [config(same_interpreter=False)])
async def test_a_job_with_an_environment_does_not_see_the_servers_python_path(api, tmp_path, monkeypatch):
    shadow = tmp_path / "server-path"
    shadow.mkdir()
    (shadow / "six.py").write_text("__version__ = 'the server path'\n")
    monkeypatch.setenv("PYTHONPATH", str(shadow))  # as a server started with PYTHONPATH set
    managed = await run(api, {"cmd": SHOW, "env": {"python": SIX}})
    assert "six 1.16.0 at" in await api.log(managed["id"])
    plain = await run(api, {"cmd": SHOW, "env": {"python": "none"}})  # the host as it is: its path too
    assert "six the server path at" in await api.log(plain["id"])


@pytest.mark.docker
@pytest.mark.parametrize("jobs_config", [config("docker")])
async def test_an_image_without_cp_gets_its_environment_as_an_archive(api, manager, monkeypatch):
    """The quick way copies with the image's own cp; an image without it gets the files through Docker's archive API."""
    from jupyter_jobs.runner import docker_env

    copied, archived = [], []
    quick, archive = docker_env.EnvImages._copied_in, docker_env._write_archive
    monkeypatch.setattr(docker_env.EnvImages, "_copied_in", lambda self, *a: copied.append(quick(self, *a)) or copied[-1])
    monkeypatch.setattr(docker_env, "_write_archive", lambda *a: archived.append(1) or archive(*a))

    with derived_image("jupyter-jobs/test-no-cp:1", ["rm", "/bin/cp", "/usr/bin/cp"]) as (tag, _):
        done = await run(api, {"cmd": SHOW, "image": tag, "env": {"python": SIX}})
        assert done["status"] == "Succeeded", done["message"] + await api.log(done["id"])
        assert "six 1.16.0 at" in await api.log(done["id"])
        assert done["environment"]["built"] is True
        assert (copied, archived) == ([None], [1])  # the quick way failed, the archive did it


@pytest.mark.parametrize("jobs_config", [config()])
async def test_the_same_packages_are_not_resolved_again_within_the_ttl(api, manager, monkeypatch):
    first = await run(api, {"cmd": SHOW, "env": {"python": SIX}})
    # The index is out of reach now (a closed port on loopback): only a remembered resolution can answer.
    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("UV_OFFLINE", "1")
    second = await api.submit({"cmd": SHOW, "env": {"python": SIX}})
    assert second["environment"]["hash"] == first["environment"]["hash"]
    with pytest.raises(HTTPClientError) as info:  # what was never resolved needs the index
        await api.submit({"cmd": SHOW, "env": {"python": {"version": "3.11", "packages": ["attrs==23.1.0"]}}})
    assert info.value.code == 400
    assert first["status"] == "Succeeded" and (await api.wait(second["id"], timeout=60))["status"] == "Succeeded"


@pytest.mark.slurm
@pytest.mark.docker  # container mode: the nodes run `docker run`
@pytest.mark.parametrize("jobs_config", [{
    **config("slurm"), "SlurmBackend": {"poll_seconds": 0.3, "container": True},
    "Cluster": {"instance_types": [{"name": "cpu", "cpus": 1, "memory": 100}]}}])
async def test_slurm_container_job_gets_its_packages_mounted_from_the_shared_cache(api, manager):
    done = await run(api, {"cmd": SHOW, "env": {"python": SIX}})
    assert done["status"] == "Succeeded", done["message"] + await api.log(done["id"])
    assert "six 1.16.0 at /usr/bin/python" in await api.log(done["id"])  # the image's python, the job's six
    assert (done["environment"]["built"], done["environment"]["where"]) == (True, "target")


@pytest.mark.docker
# Jobs as root: the image below names a user (nobody), which the environment image must keep as its own.
@pytest.mark.parametrize("jobs_config", [{**config("docker"), "DockerBackend": {"user": "0:0"}}])
async def test_the_jobs_versions_win_over_packages_the_image_has(api, manager):
    own_six = ["sh", "-c", "echo \"__version__ = 'of the image'\" > /usr/lib/python3/dist-packages/six.py"]
    with derived_image("jupyter-jobs/test-own-six:1", own_six, ["USER 65534:65534"]) as (tag, client):  # as nobody
        plain = await run(api, {"cmd": SHOW, "image": tag, "env": {"python": "none"}})
        assert "six of the image at" in await api.log(plain["id"])
        managed = await run(api, {"cmd": SHOW, "image": tag, "env": {"python": SIX}})
        assert "six 1.16.0 at" in await api.log(managed["id"]), await api.log(managed["id"])
        image = client.images.get(managed["environment"]["where"])
        assert image.attrs["Config"]["User"] == "65534:65534"  # its user, not the root that copied the files
        assert not client.containers.list(all=True, filters={"label": "jupyter_jobs.helper"})  # probe, copy: gone

"""GET /environments and POST /environments/prune (issue 10): the cache of jobs' Python environments,
built for real with uv, listed with what they hold and measure, pruned by admins only.

Users come from a header, as in test_access.py; "admin" is named in JobManager.admin_users.
"""
import asyncio
import os
import sys
import time
from pathlib import Path

import pytest
from conftest import UV_CACHE, As, HeaderIdentity

from jupyter_jobs.pyenv.lock import Lock, Pin

PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
@pytest.fixture
def jobs_config():
    return {"ServerApp": {"identity_provider_class": HeaderIdentity},
            "JobManager": {"admin_users": {"admin"}},
            # A job always gets the cached venv (not the server's interpreter, which lacks six==1.16.0 anyway).
            "Environments": {"uv_cache_dir": str(UV_CACHE), "same_interpreter": False}}


pytestmark = pytest.mark.usefixtures("jobs_app")


@pytest.fixture
def alice(jp_fetch):
    return As(jp_fetch, "alice")


@pytest.fixture
def admin(jp_fetch):
    return As(jp_fetch, "admin")


def build(manager, lock):
    """``lock``'s venv, built in the server's cache the way a job's Preparing builds it."""
    return asyncio.to_thread(manager.environments.cache.prepare_sync, lock)


def bytes_on_disk(folder: Path) -> int:
    return sum(os.lstat(os.path.join(top, name)).st_size for top, _, names in os.walk(folder) for name in names
               if os.path.isfile(os.path.join(top, name)) and not os.path.islink(os.path.join(top, name)))


@pytest.mark.index
async def test_an_environment_is_listed_with_its_size_and_pruned_by_an_admin(alice, admin, manager):
    empty = await alice.call("GET", "environments")
    assert empty == {"environments": [], "max_bytes": 20 * 2**30, "total_bytes": 0}
    lock = Lock(PYTHON, (Pin("six", "1.16.0"),))
    before = time.time()
    prepared = await build(manager, lock)
    listed = await alice.call("GET", "environments")
    (env,) = listed["environments"]
    assert {k: env[k] for k in ("hash", "kind", "python", "packages", "in_use")} == {
        "hash": lock.hash, "kind": "venv", "python": PYTHON, "packages": 1, "in_use": False}
    assert env["size_bytes"] == bytes_on_disk(prepared.path) > 10_000  # six.py alone is 34 kB
    assert listed["total_bytes"] == env["size_bytes"]
    assert before - 1 <= env["built_at"] <= env["last_used"] <= time.time() and env["build_seconds"] > 0

    code, error = await alice.error("POST", "environments", "prune", body={"max_bytes": 0})
    assert code == 403 and error["reason"] == "Forbidden"
    assert "only admins may prune the environment cache" in error["message"]
    assert "JobManager.admin_users" in error["message"]
    assert prepared.path.is_dir()
    # No limit given: the configured one (20 GiB), which it is far below.
    kept = await admin.call("POST", "environments", "prune")
    assert kept["removed"] == [] and kept["environments"] == listed["environments"]
    pruned = await admin.call("POST", "environments", "prune", body={"max_bytes": 0})
    assert pruned == {"removed": [lock.hash], "environments": [], "max_bytes": 20 * 2**30, "total_bytes": 0}
    assert not prepared.path.exists()


@pytest.mark.index
async def test_an_environment_an_active_job_uses_is_kept(admin, manager, monkeypatch):
    # pytest-jupyter sets PYTHONPATH to this process's sys.path, which a job inherits: its python would
    # import the test venv's six before its own.
    monkeypatch.delenv("PYTHONPATH")
    job = await admin.call("POST", "jobs", body={
        "name": "uses six", "cmd": "python -c 'import six; print(\"six\", six.__version__)' && sleep 60",
        "env": {"python": {"version": PYTHON, "packages": ["six==1.16.0"]}}})
    job_hash = job["environment"]["hash"]
    other = Lock(PYTHON, ())  # an empty venv no job uses
    await build(manager, other)
    for _ in range(600):  # Preparing builds the job's venv, then it runs with it
        job = await admin.call("GET", "jobs", str(job["id"]))
        if job["status"] not in ("Pending", "Preparing"):
            break
        await asyncio.sleep(0.1)
    assert job["status"] == "Running", job["message"]
    listed = {env["hash"]: env["in_use"] for env in (await admin.call("GET", "environments"))["environments"]}
    assert listed == {job_hash: True, other.hash: False}

    pruned = await admin.call("POST", "environments", "prune", body={"max_bytes": 0})
    assert pruned["removed"] == [other.hash]
    assert [(env["hash"], env["in_use"]) for env in pruned["environments"]] == [(job_hash, True)]
    assert pruned["total_bytes"] > 0  # above the limit it was given: the job's venv stays
    assert manager.environments.cache.path(job_hash).is_dir()
    for _ in range(100):  # the job runs in it
        if b"six 1.16.0" in manager.folder(job["id"]).read_log(0, 1 << 20):
            break
        await asyncio.sleep(0.1)
    assert b"six 1.16.0" in manager.folder(job["id"]).read_log(0, 1 << 20)

    await admin.call("POST", "jobs", str(job["id"]), "cancel")
    gone = await admin.call("POST", "environments", "prune", body={"max_bytes": 0})
    assert gone["removed"] == [job_hash] and gone["environments"] == []


@pytest.mark.parametrize("jobs_config", [
    {"ServerApp": {"identity_provider_class": HeaderIdentity}, "JobManager": {"admin_users": {"admin"}},
     "Environments": {"uv_cache_dir": str(UV_CACHE), "max_bytes": limit}} for limit in (0, 1)])
async def test_prune_without_a_size_uses_the_configured_limit(admin, manager, jobs_config):
    limit = jobs_config["Environments"]["max_bytes"]
    lock = Lock(PYTHON, ())  # an empty venv: no package index needed
    await build(manager, lock)
    pruned = await admin.call("POST", "environments", "prune", body="")
    assert pruned["max_bytes"] == limit
    # 0 is no limit: nothing is removed. 1 byte: everything not in use is.
    assert pruned["removed"] == ([] if limit == 0 else [lock.hash])
    assert len(pruned["environments"]) == (1 if limit == 0 else 0)


@pytest.mark.parametrize("body, field, text", [
    ({"max_bytes": -1}, "max_bytes", "-1 is not a size; give a whole number of bytes >= 0"),
    ({"max_bytes": "10G"}, "max_bytes", '"10G" is not a size'),
    ({"max_bytes": 1.5}, "max_bytes", "1.5 is not a size"),
    ({"max_bytes": True}, "max_bytes", "true is not a size"),
    ({"max_bytes": None}, "max_bytes", "null is not a size"),
    ({"max_size": "10G"}, "body", "unknown key 'max_size'; the only one is max_bytes"),
    ([0], "body", 'expected {"max_bytes": <bytes>}'),
    ("{not json", "body", "not valid JSON"),
])
async def test_bad_prune_requests_are_400_naming_the_field(admin, alice, body, field, text):
    code, error = await admin.error("POST", "environments", "prune", body=body)
    assert code == 400 and error["reason"] == "SpecError", error
    assert error["errors"][0]["field"] == field and text in error["message"], error
    # Someone who may not prune is told that first, whatever they sent.
    assert (await alice.error("POST", "environments", "prune", body=body))[0] == 403

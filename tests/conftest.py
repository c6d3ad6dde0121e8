"""Fixtures: a real Jupyter server (pytest-jupyter) with jupyter-jobs on a temporary data dir."""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

pytest_plugins = ("pytest_jupyter.jupyter_server",)


@pytest.fixture
def jobs_data_dir(tmp_path: Path) -> Path:
    return tmp_path / "jobs-data"


@pytest.fixture
def jobs_config() -> dict:
    """Extra JobManager/Cluster/RunnerPool config a test may override."""
    return {}


@pytest.fixture
def jp_server_config(jobs_data_dir: Path, jobs_config: dict) -> dict:
    config = {
        "ServerApp": {"jpserver_extensions": {"jupyter_jobs": True}},
        "JobManager": {"data_dir": str(jobs_data_dir)},
        "Cluster": {"gpus": 0, "cpus": 2, "memory_mib": 4096},
        "RunnerPool": {"stop_grace_seconds": 3.0},
    }
    for section, values in jobs_config.items():
        config.setdefault(section, {}).update(values)
    return config


class Api:
    """Small helper around jp_fetch for the jobs API."""

    def __init__(self, fetch) -> None:
        self.fetch = fetch

    async def call(self, method: str, *path: str, body=None, params=None, headers=None, raw: bool = False):
        kwargs = {"method": method, "params": params or {}, "headers": headers or {}}
        if body is not None:
            kwargs["body"] = body if isinstance(body, (str, bytes)) else json.dumps(body)
        elif method == "POST":
            kwargs["body"] = b""
            kwargs["allow_nonstandard_methods"] = True
        response = await self.fetch("jupyter-jobs", "api", *path, **kwargs)
        if raw:
            return response
        return json.loads(response.body) if response.body else None

    async def submit(self, spec: dict, **kwargs) -> dict:
        return await self.call("POST", "jobs", body=spec, **kwargs)

    async def job(self, job_id: int) -> dict:
        return await self.call("GET", "jobs", str(job_id))

    async def wait(self, job_id: int, statuses=("Succeeded", "Failed", "Cancelled", "Unknown"), timeout: float = 30.0) -> dict:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            job = await self.job(job_id)
            if job["status"] in statuses:
                return job
            if loop.time() > deadline:
                raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s: {job['message']}")
            await asyncio.sleep(0.05)

    async def log(self, job_id: int, offset: int = 0, follow: bool = False) -> str:
        params = {"offset": str(offset), "follow": "1" if follow else "0"}
        response = await self.call("GET", "jobs", str(job_id), "logs", params=params, raw=True)
        return response.body.decode()


@pytest.fixture
def jobs_app(jp_serverapp, jp_asyncio_loop):
    """The started extension. pytest-jupyter never runs ServerApp._post_start, which is what
    starts extensions in a real server, so do it here on the test's loop."""
    jp_asyncio_loop.run_until_complete(jp_serverapp.extension_manager.start_all_extensions())
    app = jp_serverapp.extension_manager.extension_apps["jupyter_jobs"]
    (app,) = app
    assert app.manager.started, "the jupyter-jobs runner pool did not start"
    return app


@pytest.fixture
def manager(jobs_app):
    return jobs_app.manager


@pytest.fixture
def api(jp_fetch, jobs_app) -> Api:
    return Api(jp_fetch)


@pytest.fixture
def root_dir(jp_root_dir: Path) -> Path:
    return Path(jp_root_dir)

"""Fixtures: a real Jupyter server (pytest-jupyter) with jupyter-jobs on a temporary data dir."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import secrets
import shutil
import signal
import sqlite3
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from jupyter_server.auth.identity import IdentityProvider, User
from jupyter_server.utils import ensure_async
from tornado.httpclient import HTTPClientError

pytest_plugins = ("pytest_jupyter.jupyter_server",)


# -- engines ---------------------------------------------------------------------------------------
# A test marked `docker` or `slurm` needs that engine. When it is missing the test skips with the
# reason, or fails where CI promised the engine (JUPYTER_JOBS_TEST_DOCKER=1 / _SLURM=1). This runs
# before any fixture, so a test that replaces a fixture (a parametrized `jobs_config`) cannot bypass
# it and error instead.
DOCKER_IMAGE = "jupyter-jobs/base:bookworm"


@functools.cache
def docker_missing() -> str | None:
    """Why the Docker tests cannot run here; None when a daemon with the base image answers."""
    import docker

    try:
        with contextlib.closing(docker.from_env(timeout=30)) as client:  # from_env asks the daemon already
            client.images.get(DOCKER_IMAGE)
    except Exception as exc:
        return f"no Docker daemon with {DOCKER_IMAGE} (export DOCKER_HOST=$(bash .ci/docker-engine.sh)): {exc}"
    return None


@functools.cache
def slurm_missing() -> str | None:
    """Why the Slurm tests cannot run here; None when the cluster of SLURM_CONF has a node up."""
    hint = "(export SLURM_CONF=$(bash .ci/slurm-engine.sh))"
    if not shutil.which("sinfo") or not os.environ.get("SLURM_CONF"):
        return f"no Slurm: sinfo or SLURM_CONF is missing {hint}"
    try:
        result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return f"no Slurm answers: sinfo timed out {hint}"
    if result.returncode != 0 or not any(s in result.stdout for s in ("idle", "mixed", "allocated")):
        return f"no Slurm node is up: sinfo said {(result.stdout + result.stderr).strip()!r} {hint}"
    return None


@functools.cache
def index_missing() -> str | None:
    """Why uv cannot install from the package index here, or None when it can."""
    from jupyter_jobs.pyenv.uv import find_uv

    try:
        result = subprocess.run([find_uv(), "pip", "compile", "--no-cache", "--no-header", "-"], input="six\n",
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"uv cannot reach the package index: {exc}"
    if result.returncode != 0:
        return f"uv cannot reach the package index: {result.stderr.strip()[-500:]}"
    return None


ENGINES = {"docker": ("JUPYTER_JOBS_TEST_DOCKER", docker_missing), "slurm": ("JUPYTER_JOBS_TEST_SLURM", slurm_missing),
           "index": ("JUPYTER_JOBS_TEST_INDEX", index_missing)}
#: uv's download cache for the tests' environments: kept between runs (CI caches ~/.cache), shared by all.
UV_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jupyter-jobs" / "test-uv-cache"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker, (required, missing) in ENGINES.items():
        if item.get_closest_marker(marker) is None:
            continue
        reason = missing()
        if reason and os.environ.get(required) == "1":
            pytest.fail(f"{required}=1 (CI) runs the {marker} tests, but {reason}", pytrace=False)
        if reason:
            pytest.skip(reason)


class HeaderIdentity(IdentityProvider):
    """The server's token authenticates the request; ``X-Test-User`` names who is asking (as a proxy in
    front of a shared server would)."""

    async def get_user(self, handler):
        authenticated = await ensure_async(super().get_user(handler))
        name = handler.request.headers.get("X-Test-User")
        return User(username=name) if authenticated and name else None


@dataclasses.dataclass
class GroupUser(User):
    """A user who belongs to groups, as JupyterHub's users do (``JobsAPIHandler.user_groups`` reads them)."""

    groups: tuple[str, ...] = ()


class GroupIdentity(HeaderIdentity):
    """:class:`HeaderIdentity` whose users belong to the comma-separated groups of ``X-Test-Groups``."""

    async def get_user(self, handler):
        user = await super().get_user(handler)
        if user is None:
            return None
        groups = tuple(g for g in handler.request.headers.get("X-Test-Groups", "").split(",") if g)
        return GroupUser(username=user.username, groups=groups)


class As:
    """The jobs API as one user of a server with :class:`HeaderIdentity` (or :class:`GroupIdentity`, in ``groups``)."""

    def __init__(self, fetch, user: str, groups: tuple[str, ...] = ()) -> None:
        self.fetch, self.user, self.groups = fetch, user, groups

    async def call(self, method, *path, body=None, params=None, raw=False, headers=None):
        who = {"X-Test-User": self.user, **({"X-Test-Groups": ",".join(self.groups)} if self.groups else {})}
        kwargs = {"method": method, "headers": {**who, **(headers or {})}, "params": params or {}}
        if body is not None or method in ("POST", "PUT"):
            kwargs["body"] = body if isinstance(body, str) else json.dumps(body if body is not None else {})
        response = await self.fetch("jupyter-jobs", "api", *path, **kwargs)
        return response if raw else (json.loads(response.body) if response.body else None)

    async def status(self, method, *path, **kwargs) -> int:
        """The HTTP status of a call (200 when it succeeds)."""
        try:
            await self.call(method, *path, **kwargs)
        except HTTPClientError as exc:
            return exc.code
        return 200

    async def error(self, method, *path, body=None) -> tuple[int, dict]:
        """The status and JSON body of a call that must fail."""
        with pytest.raises(HTTPClientError) as info:
            await self.call(method, *path, body=body)
        return info.value.code, json.loads(info.value.response.body)


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
        "JobManager": {"data_dir": str(jobs_data_dir), "backend": "local"},
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


# -- a real `jupyter server` in its own process (restarts, the CLI) -------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`jupyter server` with jupyter-jobs, on 127.0.0.1, that a test can kill and start again."""

    def __init__(self, root: Path, data: Path, home: Path, extra_args: list[str] | None = None) -> None:
        self.root, self.data, self.home = root, data, home
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.extra_args = list(extra_args or [])
        if not any(a.startswith("--JobManager.backend=") for a in self.extra_args):
            self.extra_args.append("--JobManager.backend=local")
        self.proc: subprocess.Popen | None = None
        self.env = {
            **os.environ,
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_PLATFORM_DIRS": "0",
        }

    def start(self) -> None:
        log = open(self.home / "server.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={self.root}", f"--JobManager.data_dir={self.data}", "--allow-root",
             "--Cluster.gpus=0", *self.extra_args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.request("GET", "config")
                return
            except (urllib.error.URLError, ConnectionError):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"jupyter server exited: {(self.home / 'server.log').read_text()[-2000:]}")
                time.sleep(0.1)
        self.stop()  # never leave a server behind
        raise RuntimeError("jupyter server did not answer in 30s")

    def request(self, method: str, path: str, body=None, params: str = "") -> dict:
        data = None if body is None else json.dumps(body).encode()
        if method == "POST" and data is None:
            data = b""
        request = urllib.request.Request(f"{self.url}jupyter-jobs/api/{path}{params}", data=data, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
            is_json = response.headers.get("Content-Type", "").startswith("application/json")
        return json.loads(text) if is_json and text else text

    def request_raw(self, method: str, path: str, body=None) -> bytes:
        """Any route of the server (not only the jobs API)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read()

    def wait(self, job_id: int, statuses=("Succeeded", "Failed", "Cancelled", "Unknown"), timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.request("GET", f"jobs/{job_id}")
            if job["status"] in statuses:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {job['status']}: {job['message']}")
            time.sleep(0.05)

    def edit_db(self, sql: str, *params) -> None:
        """Change the stopped server's job database by hand (a crash's or an operator's damage)."""
        assert self.proc is None or self.proc.poll() is not None, "stop or kill the server first"
        conn = sqlite3.connect(self.data / "jobs.sqlite")
        try:
            conn.execute(sql, params)
            conn.commit()
        finally:
            conn.close()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:  # wedged in shutdown: it must not outlive the test
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def server_args() -> list[str]:
    """Extra command-line arguments of `server_process` (a test may override)."""
    return []


@pytest.fixture
def server_process(tmp_path: Path, server_args: list[str]):
    root, data, home = tmp_path / "root", tmp_path / "jobs-data", tmp_path / "home"
    for path in (root, data, home):
        path.mkdir()
    server = ServerProcess(root, data, home, server_args)
    try:
        server.start()
        yield server
    finally:
        server.stop()

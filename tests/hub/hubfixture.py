"""A real JupyterHub on 127.0.0.1 with real system users, and the jupyter-jobs service it manages.

What the Hub tests need, made once per session (docs/jupyterhub.md is the same set-up for people):
- a venv built from Debian's /usr/bin/python3.11 (users cannot run pyenv's Python under /root) with
  JupyterHub and this checkout's dependencies, the checkout itself on its path (a ``.pth``) and the
  extension enabled; kept in /var/cache/jupyter-jobs between runs (CI builds it ahead);
- configurable-http-proxy (npm) on PATH;
- system users ``jjh-alice`` and ``jjh-carol`` (Hub group team-a), ``jjh-bob`` (team-b) and
  ``jjh-admin`` (a Hub admin holding ``custom:jupyter-jobs:admin``), removed at the end;
- the Hub, its proxy and the managed service, ended by the PIDs started here.
"""
from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3.11"
VENV = Path(os.environ.get("JUPYTER_JOBS_HUB_VENV", "/var/cache/jupyter-jobs/hub-venv"))
USERS = {"jjh-alice": ["team-a"], "jjh-carol": ["team-a"], "jjh-bob": ["team-b"]}
ADMIN = "jjh-admin"
SERVICE = "jupyter-jobs"


def missing() -> str | None:
    """Why a Hub cannot be run here; None when it can."""
    if os.geteuid() != 0:
        return "the Hub tests make system users and run the service as root: run them as root"
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} is missing (the users' servers need a Python they may run)"
    if not shutil.which("configurable-http-proxy"):
        return "configurable-http-proxy is missing: npm install -g configurable-http-proxy"
    if not shutil.which("useradd"):
        return "useradd is missing"
    return None


def _dependencies() -> list[str]:
    project = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["project"]
    return ["jupyterhub>=5", *project["dependencies"]]


def ensure_venv() -> Path:
    """The users' venv (built when missing or when the dependencies changed), with this checkout on its path."""
    wanted = "\n".join(_dependencies())
    stamp = VENV / "jupyter-jobs-deps.txt"
    if not stamp.exists() or stamp.read_text() != wanted:
        shutil.rmtree(VENV, ignore_errors=True)
        VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *_dependencies()],
                       check=True)
        stamp.write_text(wanted)
    site = next((VENV / "lib").glob("python3*/site-packages"))
    (site / "jupyter_jobs_checkout.pth").write_text(f"{CHECKOUT}\n")
    script = VENV / "bin" / "jupyter-jobs"  # the console script pip would make for the checkout
    script.write_text(f"#!{VENV / 'bin' / 'python'}\nimport sys\nfrom jupyter_jobs.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    enabled = VENV / "etc" / "jupyter" / "jupyter_server_config.d"
    enabled.mkdir(parents=True, exist_ok=True)
    shutil.copy(CHECKOUT / "jupyter-config" / "server-config" / "jupyter_jobs.json", enabled / "jupyter_jobs.json")
    return VENV


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_users() -> list[str]:
    """Make the test users that do not exist yet; the names made (to remove at the end)."""
    made = []
    for name in [*USERS, ADMIN]:
        try:
            pwd.getpwnam(name)
        except KeyError:
            subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True)
            made.append(name)
    return made


def remove_users() -> None:
    """Remove the test users (made here, or left by a run that was killed), their processes and homes."""
    for name in [*USERS, ADMIN]:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        subprocess.run(["userdel", "-r", name], check=False, capture_output=True)


@dataclass
class Hub:
    url: str
    driver_token: str
    folder: Path
    service_data: Path
    procs: list[subprocess.Popen] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)

    # -- the Hub's REST API, as the driver service ------------------------------------------------
    def api(self, method: str, path: str, body: object = None, token: str | None = None) -> tuple[int, object]:
        return request(method, f"{self.url}/hub/api/{path}", body, token or self.driver_token)

    def token(self, user: str) -> str:
        if user not in self.tokens:
            status, answer = self.api("POST", f"users/{user}/tokens", {"note": "jupyter-jobs tests", "expires_in": 3600})
            assert status in (200, 201), answer
            self.tokens[user] = answer["token"]
        return self.tokens[user]

    def start_server(self, user: str) -> None:
        status, answer = self.api("POST", f"users/{user}/server")
        assert status in (201, 202, 400), answer  # 400: it runs already

    def wait_server(self, user: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, model = self.api("GET", f"users/{user}")
            server = (model or {}).get("servers", {}).get("")
            if server and server.get("ready"):
                return
            time.sleep(0.5)
        raise AssertionError(f"the server of {user} did not start in {timeout:.0f}s; see {self.folder}/hub.log")

    def stop_server(self, user: str, timeout: float = 60) -> None:
        self.api("DELETE", f"users/{user}/server")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, model = self.api("GET", f"users/{user}")
            if not (model or {}).get("servers"):
                return
            time.sleep(0.5)
        raise AssertionError(f"the server of {user} did not stop")

    # -- the jobs API, through a user's own server or straight to the service ---------------------
    def jobs(self, user: str, method: str, path: str, body: object = None, *, via: str = "server",
             raw: bool = False, headers: dict | None = None) -> tuple[int, object]:
        base = f"{self.url}/user/{user}/" if via == "server" else f"{self.url}/services/{SERVICE}/"
        return request(method, f"{base}jupyter-jobs/api/{path}", body, self.token(user), raw=raw, headers=headers)

    def wait_job(self, user: str, job_id: int, statuses: tuple[str, ...] = ("Succeeded", "Failed", "Cancelled"),
                 timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status, job = self.jobs(user, "GET", f"jobs/{job_id}", via="service")
            assert status == 200, job
            if job["status"] in statuses:
                return job
            assert time.monotonic() < deadline, f"job {job_id} is still {job['status']}: {job['message']}"
            time.sleep(0.2)

    def stop(self) -> None:
        """End the Hub (it ends the users' servers, its service and its proxy), then a proxy it left behind."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        with contextlib.suppress(OSError, ValueError):  # the Hub wrote its proxy's pid: ours to end
            os.kill(int((self.folder / "proxy.pid").read_text().strip()), signal.SIGTERM)


def request(method: str, url: str, body: object = None, token: str = "", *, raw: bool = False,
            headers: dict | None = None) -> tuple[int, object]:
    data = None
    all_headers = {"Authorization": f"token {token}", **(headers or {})}
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    elif method in ("POST", "PUT"):
        data = b""
    req = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as response:
            payload = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        payload, status = exc.read(), exc.code
    except (urllib.error.URLError, ConnectionError) as exc:  # nothing listens there (yet)
        return 0, str(exc)
    if raw:
        return status, payload
    try:
        return status, json.loads(payload) if payload else None
    except ValueError:
        return status, payload.decode(errors="replace")


def service_config(data: Path, gpus: int, backend: str) -> str:
    return f"""\
c.JobManager.data_dir = {str(data)!r}
c.JobManager.backend = {backend!r}
c.Cluster.gpus = {gpus}
c.Cluster.cpus = 4
c.Cluster.memory_mib = 8192
c.Cluster.instance_types = [
    {{"name": "cpu", "cpus": 0.5, "memory": 256}},
    {{"name": "gpu", "cpus": 0.5, "memory": 256, "gpus": 1}},
    {{"name": "gpu-x2", "cpus": 0.5, "memory": 256, "gpus": 2}},
]
c.Quotas.groups = {{"team-a": {{"gpus": 1}}}}
"""


def hub_config(folder: Path, venv: Path, ports: dict[str, int], driver_token: str) -> str:
    url = f"http://127.0.0.1:{ports['public']}"
    service_env = {name: os.environ[name] for name in ("DOCKER_HOST", "SLURM_CONF") if name in os.environ}
    return f"""\
c.JupyterHub.bind_url = {url!r}
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{ports['hub']}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{ports['proxy_api']}"
c.ConfigurableHTTPProxy.pid_file = {str(folder / 'proxy.pid')!r}
c.JupyterHub.db_url = "sqlite:///{folder / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = {str(folder / 'cookie_secret')!r}
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {secrets.token_hex(8)!r}
c.Authenticator.allowed_users = {set(USERS)!r}
c.Authenticator.admin_users = {{{ADMIN!r}}}
c.JupyterHub.load_groups = {{"team-a": {{"users": ["jjh-alice", "jjh-carol"]}}, "team-b": {{"users": ["jjh-bob"]}}}}
c.Spawner.cmd = [{str(venv / 'bin' / 'jupyterhub-singleuser')!r}]
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
# -- jupyter-jobs: the part of this file docs/jupyterhub.md explains ---------------------------------
c.JupyterHub.custom_scopes = {{
    "custom:jupyter-jobs:admin": {{"description": "See and act on every user's jupyter-jobs jobs"}},
}}
c.JupyterHub.services = [
    {{"name": "driver", "api_token": {driver_token!r}}},
    {{
        "name": {SERVICE!r},
        "url": "http://127.0.0.1:{ports['service']}",
        "command": [{str(venv / 'bin' / 'python')!r}, "-m", "jupyter_jobs.service"],
        "cwd": {str(folder / 'service')!r},
        "environment": {service_env!r},
        "oauth_no_confirm": True,
    }},
]
c.JupyterHub.load_roles = [
    {{"name": "user", "scopes": ["self", "access:services!service={SERVICE}"]}},
    {{"name": "jupyter-jobs-admin", "users": [{ADMIN!r}], "scopes": ["custom:jupyter-jobs:admin"]}},
    {{"name": "jupyter-jobs-service", "services": [{SERVICE!r}], "scopes": ["read:users:name", "read:users:groups"]}},
    {{"name": "driver", "services": ["driver"], "scopes": [
        "admin:users", "admin:servers", "tokens", "access:servers", "list:users", "read:users", "groups"]}},
]
c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", "access:services!service={SERVICE}",
                                 "custom:jupyter-jobs:admin"]
c.Spawner.environment = {{"JUPYTER_JOBS_SERVICE_URL": "{url}/services/{SERVICE}/"}}
"""


def start_hub(folder: Path, venv: Path, gpus: int = 2, backend: str = "local") -> Hub:
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o755)
    ports = {name: _free_port() for name in ("public", "hub", "proxy_api", "service")}
    driver_token = secrets.token_hex(16)
    (folder / "service").mkdir(exist_ok=True)
    data = folder / "service" / "data"
    (folder / "service" / "jupyter_jobs_service_config.py").write_text(service_config(data, gpus, backend))
    config = folder / "jupyterhub_config.py"
    config.touch(mode=0o600)  # it holds the driver's token: root's only (the users' jobs run on this machine)
    config.write_text(hub_config(folder, venv, ports, driver_token))
    log = open(folder / "hub.log", "ab")
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR",
                 "JUPYTER_PATH", "JUPYTER_CONFIG_PATH"):
        env.pop(name, None)
    proc = subprocess.Popen([str(venv / "bin" / "jupyterhub"), "-f", str(folder / "jupyterhub_config.py")],
                            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    hub = Hub(url=f"http://127.0.0.1:{ports['public']}", driver_token=driver_token, folder=folder,
              service_data=data, procs=[proc])
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, f"the Hub exited ({proc.returncode}); see {folder}/hub.log"
        status, _ = request("GET", f"{hub.url}/services/{SERVICE}/jupyter-jobs/api/config", token=driver_token)
        if status in (200, 403):  # the service answers (the driver is no user of it)
            return hub
        assert time.monotonic() < deadline, f"the Hub or its jupyter-jobs service did not answer; see {folder}/hub.log"
        time.sleep(0.5)


def log_tail(folder: Path, lines: int = 60) -> str:
    with contextlib.suppress(OSError):
        return "\n".join((folder / "hub.log").read_text(errors="replace").splitlines()[-lines:])
    return ""


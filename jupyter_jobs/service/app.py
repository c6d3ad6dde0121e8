"""``python -m jupyter_jobs.service``: ONE runner pool for a machine or cluster, behind JupyterHub.

A small tornado application, not a Jupyter server (no kernels, terminals or contents API). It
serves the REST API of the extension, the very same handlers under the same paths, below the
service's prefix (``/services/jupyter-jobs/jupyter-jobs/api/...``); only who the caller is and
who owns the pool differ:

- every request is authenticated by JupyterHub (:mod:`.auth`), the owner of a job is the Hub user,
  groups come from the Hub, admins hold the ``custom:jupyter-jobs:admin`` scope;
- jobs run as their owner's system account (``JobManager.run_as_owner``), never as the service;
- the service reads no one's files: a job's files are uploaded as content-addressed blobs (the
  per-user extension's forwarder, ``%job run`` and the CLI do), so ``base_dir`` is refused.

Started by JupyterHub as a managed service; docs/jupyterhub.md has a complete ``jupyterhub_config.py``.
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jupyter_core.application import JupyterApp
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.httpserver import HTTPServer
from traitlets import Integer, Type, Unicode, default
from traitlets.config import Application

from .._version import __version__
from ..api import MAX_BODY_BYTES, handlers
from ..errors import BackendUnavailable
from ..manager import JobManager
from .auth import HubJobsAuthorizer, HubJobsIdentity

#: What the service is called in ``c.JupyterHub.services`` unless told otherwise.
DEFAULT_NAME = "jupyter-jobs"


class JobsService(JupyterApp):
    """The shared jupyter-jobs service of a JupyterHub."""

    name = "jupyter-jobs-service"
    description = "One jupyter-jobs runner pool for every user of a JupyterHub"
    version = __version__
    # Its own config file (jupyter_jobs_service_config.py, in the config dirs or the working
    # directory): Cluster, LocalBackend, Quotas, JobManager... as for the extension.
    config_file_name = Unicode("jupyter_jobs_service_config", config=True)

    manager_class = Type(default_value=JobManager, klass=JobManager, config=True, help="The JobManager class to use.")
    ip = Unicode(help="Address to listen on; default: from $JUPYTERHUB_SERVICE_URL, else 127.0.0.1.").tag(config=True)
    port = Integer(help="Port to listen on; default: from $JUPYTERHUB_SERVICE_URL, else 10101.").tag(config=True)
    base_url = Unicode(help="URL prefix; default: $JUPYTERHUB_SERVICE_PREFIX, else /services/jupyter-jobs/.").tag(config=True)

    @default("ip")
    def _default_ip(self) -> str:
        return urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "")).hostname or "127.0.0.1"

    @default("port")
    def _default_port(self) -> int:
        return urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "")).port or 10101

    @default("base_url")
    def _default_base_url(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or f"/services/{DEFAULT_NAME}/"

    def initialize(self, argv: Any = None) -> None:
        super().initialize(argv)
        # The config dirs' file (JupyterApp's), then the working directory's, which wins.
        Application.load_config_file(self, self.config_file_name, path=[os.getcwd()])
        # A shared pool: jobs run as the Hub user who sent them, and read only uploaded files.
        self.config.JobManager.setdefault("run_as_owner", True)
        self.config.JobManager.read_server_files = False
        self.identity = HubJobsIdentity(parent=self, log=self.log)
        self.authorizer = HubJobsAuthorizer(parent=self, log=self.log, identity_provider=self.identity)
        self.manager = self.manager_class(parent=self, log=self.log, root_dir=str(Path.cwd()))
        self.web_app = self.make_app()

    def make_app(self) -> web.Application:
        routes = [(url_path_join(self.base_url, pattern), handler, {"name": "jupyter_jobs"}) for pattern, handler in handlers()]
        routes += [(url_path_join(self.base_url, pattern), *rest) for pattern, *rest in self.identity.get_handlers()]
        settings = {
            "base_url": self.base_url,
            "identity_provider": self.identity,
            "authorizer": self.authorizer,
            "jupyter_jobs_manager": self.manager,
            "jupyter_jobs": self,  # what the handlers' ExtensionHandlerMixin takes for their app (its log)
            "jupyter_jobs_config": {},
            "xsrf_cookies": False,  # JupyterHub's OAuth checks its own XSRF (as jupyterhub-singleuser does)
            "allow_remote_access": True,  # behind the Hub's proxy
            "cookie_secret": os.urandom(32),
            "login_url": self.identity.hub_auth.login_url,
        }
        return web.Application(routes, **settings)

    async def serve(self) -> None:
        try:
            await self.manager.start()
        except BackendUnavailable as exc:  # as the extension: /config says why, submits answer 503
            self.log.error("jupyter-jobs service: jobs cannot run: %s", exc.message)
            self.manager.start_when_available()
        # Bodies are read before a request is authenticated: no more than a spec's. Uploads of files (the
        # one streamed route) raise their own limit once the caller is known (handlers.BlobHandler).
        server = HTTPServer(self.web_app, xheaders=True, max_body_size=MAX_BODY_BYTES + 2**20)
        server.listen(self.port, self.ip)
        self.log.info("jupyter-jobs service: %s backend at http://%s:%d%s", self.manager.engine.name, self.ip,
                      self.port, self.base_url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.stop()
        if self.manager.started or self.manager.engine_down:
            await self.manager.stop()

    def start(self) -> None:
        asyncio.run(self.serve())


def main(argv: list[str] | None = None) -> None:
    JobsService.launch_instance(argv if argv is not None else sys.argv[1:])

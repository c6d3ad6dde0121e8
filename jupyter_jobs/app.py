"""The jupyter-server extension: wires routes, configuration and the JobManager's life cycle."""
from __future__ import annotations

import os
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from traitlets import Type, Unicode, default

from .api import handlers
from .errors import BackendUnavailable
from .manager import JobManager


class JobsApp(ExtensionApp):
    """Job endpoints under /jupyter-jobs/api and the runner pool behind them."""

    name = "jupyter_jobs"
    load_other_extensions = True

    manager_class = Type(
        default_value=JobManager, klass=JobManager, config=True, help="The JobManager class to use."
    )
    service_url = Unicode(
        config=True,
        help="URL of a team's jupyter-jobs service (e.g. http://127.0.0.1:8000/services/jupyter-jobs/), default "
        "$JUPYTER_JOBS_SERVICE_URL: this server then runs no jobs itself and forwards its API there (docs/jupyterhub.md).",
    )
    service_token = Unicode(
        config=True, help="Token sent to the service; default $JUPYTERHUB_API_TOKEN (this server's, owned by its user)."
    )

    @default("service_url")
    def _default_service_url(self) -> str:
        return os.environ.get("JUPYTER_JOBS_SERVICE_URL", "")

    @default("service_token")
    def _default_service_token(self) -> str:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    @property
    def forwarding(self) -> bool:
        return bool(self.service_url)

    def initialize_settings(self) -> None:
        if self.forwarding:
            self.manager = None
            self.settings["jupyter_jobs_service_url"] = self.service_url.rstrip("/") + "/"
            self.settings["jupyter_jobs_service_token"] = self.service_token
            return
        self.manager = self.manager_class(parent=self, log=self.log, root_dir=self.serverapp.root_dir)
        self.settings["jupyter_jobs_manager"] = self.manager
        if not (Path(__file__).parent / "labextension" / "package.json").exists():
            self.log.warning(
                "jupyter-jobs: the JupyterLab panel was not built (Node.js was missing at install); the "
                "API, the CLI and %%job work. For the panel, install Node.js and run pip again.")

    def initialize_handlers(self) -> None:
        if self.forwarding:
            from .service.forward import forward_handlers

            self.handlers.extend(forward_handlers())
            return
        self.handlers.extend(handlers())

    async def _start_jupyter_server_extension(self, serverapp) -> None:  # type: ignore[no-untyped-def]
        if self.forwarding:
            self.log.info("jupyter-jobs: jobs run by the service at %s", self.service_url)
            return
        try:
            await self.manager.start()
        except BackendUnavailable as exc:  # the API answers 503 with this reason
            self.log.error("jupyter-jobs: jobs cannot run: %s", exc.message)
            self.manager.start_when_available()  # a daemon that starts later is picked up
            return
        self.log.info(
            "jupyter-jobs: %s backend, %d instance types, data in %s",
            self.manager.engine.name, len(self.manager.cluster.types), self.manager.data_dir,
        )

    async def stop_extension(self) -> None:
        if self.manager is None:
            return
        if self.manager.started or self.manager.engine_down:
            await self.manager.stop()

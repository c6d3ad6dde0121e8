"""The jupyter-server extension: wires routes, configuration and the JobManager's life cycle."""
from __future__ import annotations

from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from traitlets import Type

from .errors import BackendUnavailable
from .handlers import handlers
from .manager import JobManager


class JobsApp(ExtensionApp):
    """Job endpoints under /jupyter-jobs/api and the runner pool behind them."""

    name = "jupyter_jobs"
    load_other_extensions = True

    manager_class = Type(
        default_value=JobManager, klass=JobManager, config=True, help="The JobManager class to use."
    )

    def initialize_settings(self) -> None:
        self.manager = self.manager_class(parent=self, log=self.log, root_dir=self.serverapp.root_dir)
        self.settings["jupyter_jobs_manager"] = self.manager
        if not (Path(__file__).parent / "labextension" / "package.json").exists():
            self.log.warning(
                "jupyter-jobs: the JupyterLab panel was not built (Node.js was missing at install); the "
                "API, the CLI and %%job work. For the panel, install Node.js and run pip again.")

    def initialize_handlers(self) -> None:
        self.handlers.extend(handlers())

    async def _start_jupyter_server_extension(self, serverapp) -> None:  # type: ignore[no-untyped-def]
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
        if self.manager.started or self.manager.engine_down:
            await self.manager.stop()

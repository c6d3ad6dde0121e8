"""jupyter-jobs: send notebook work to GPU machines as jobs, without leaving Jupyter."""
from ._version import __version__


def _jupyter_server_extension_points() -> list[dict]:
    from .app import JobsApp

    return [{"module": "jupyter_jobs", "app": JobsApp}]


def _jupyter_labextension_paths() -> list[dict]:
    return [{"src": "labextension", "dest": "jupyter-jobs"}]


def load_ipython_extension(ipython) -> None:  # type: ignore[no-untyped-def]
    """``%load_ext jupyter_jobs``: the %%job and %job magics."""
    from .kernel.magics import JobMagics

    ipython.register_magics(JobMagics)


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    # Widgets are imported on demand, so the server never imports ipywidgets.
    if name in ("JobForm", "JobWidget"):
        from .kernel import widgets

        return getattr(widgets, name)
    if name == "JobFailed":
        from .kernel.magics import JobFailed

        return JobFailed
    if name == "OutNotDelivered":
        from .kernel.waiting import OutNotDelivered

        return OutNotDelivered
    raise AttributeError(name)


__all__ = ["__version__", "load_ipython_extension", "JobForm", "JobWidget", "JobFailed", "OutNotDelivered"]

"""jupyter-jobs: send notebook work to GPU machines as jobs, without leaving Jupyter."""
from ._version import __version__


def _jupyter_server_extension_points() -> list[dict]:
    from .app import JobsApp

    return [{"module": "jupyter_jobs", "app": JobsApp}]


__all__ = ["__version__"]

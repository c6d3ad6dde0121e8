"""REST handlers under ``/jupyter-jobs/api``: parse, decide access (``access.py``), call the JobManager,
serialise. One module per resource; errors map to HTTP statuses in one place,
:meth:`~jupyter_jobs.api.base.JobsAPIHandler.write_error`."""
from __future__ import annotations

from .base import API, MAX_BODY_BYTES, PUBLIC_BASE_HEADER, JobsAPIHandler
from .blobs import BlobHandler, BlobsMissingHandler
from .changes import ChangesHandler
from .cluster import ConfigHandler, DatasetsHandler, InstanceTypesHandler, VolumesHandler
from .environments import EnvironmentsHandler, EnvironmentsPruneHandler
from .jobs import GarbageCollectHandler, JobActionHandler, JobHandler, JobPinHandler, JobsHandler, JobUnpinHandler
from .logs import JobDisplaysHandler, JobLogsHandler
from .outputs import OutputFileHandler, OutputsHandler
from .schedules import ROUTES as SCHEDULE_ROUTES
from .secrets import SecretHandler, SecretsHandler

__all__ = ["API", "MAX_BODY_BYTES", "PUBLIC_BASE_HEADER", "ROUTES", "JobsAPIHandler", "handlers"]


_JOB = r"/jobs/([^/]+)"
ROUTES = [
    (r"/jobs/?", JobsHandler),
    (r"/changes", ChangesHandler),
    (_JOB + r"/?", JobHandler),
    (_JOB + r"/(cancel|rerun)", JobActionHandler),
    (_JOB + r"/pin", JobPinHandler),
    (_JOB + r"/unpin", JobUnpinHandler),
    (_JOB + r"/logs", JobLogsHandler),
    (_JOB + r"/displays", JobDisplaysHandler),
    (_JOB + r"/outputs/?", OutputsHandler),
    (_JOB + r"/outputs/(.+)", OutputFileHandler),
    (r"/blobs/missing", BlobsMissingHandler),
    (r"/blobs/([^/]+)", BlobHandler),
    (r"/instance-types", InstanceTypesHandler),
    (r"/datasets", DatasetsHandler),
    (r"/volumes", VolumesHandler),
    (r"/config", ConfigHandler),
    (r"/environments/?", EnvironmentsHandler),
    (r"/environments/prune", EnvironmentsPruneHandler),
    (r"/secrets/?", SecretsHandler),
    (r"/secrets/([^/]+)", SecretHandler),
    (r"/gc", GarbageCollectHandler),
    *SCHEDULE_ROUTES,
]


def handlers() -> list[tuple[str, type]]:
    """Every route under ``/jupyter-jobs/api``, as the server (and the Hub service) mount them."""
    return [(f"/{API}{pattern}", handler) for pattern, handler in ROUTES]

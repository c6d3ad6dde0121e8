"""The small protocol every backend implements; the pool owns queueing and capacity."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..jobdir import JobDir
from ..models import Dataset, JobRecord


@dataclass(frozen=True)
class Exit:
    """How a job's command ended."""

    #: Exit status (128 + N when killed by signal N); None when it could not be learnt.
    code: int | None
    #: Extra words for the job's message when the status alone does not say enough.
    detail: str = ""
    #: The backend lost the job: no exit status will ever come (the job ends as Unknown).
    lost: bool = False


@dataclass
class Launch:
    """Everything a backend needs to start one attempt of a job."""

    job: JobRecord
    folder: JobDir
    datasets: list[Dataset]
    #: Extra environment the pool adds (JOB_ID, GPUs, ...); backends add their own paths.
    env: dict[str, str] = field(default_factory=dict)


class Backend(Protocol):
    """Runs what the pool gives it. Every method may be called after a server restart."""

    #: Short name shown in job records and GET /config.
    name: str

    async def prepare(self, launch: Launch) -> None:
        """Get ready to start (pull an image, ...), writing progress to the job's log."""

    async def start(self, launch: Launch) -> dict[str, Any]:
        """Start the job detached from the server; return a JSON-able handle to find it again."""

    async def wait(self, job: JobRecord, handle: dict[str, Any]) -> Exit:
        """Return when the job's command has ended (also for a handle from before a restart)."""

    async def stop(self, job: JobRecord, handle: dict[str, Any], grace: float) -> None:
        """Ask the job to stop (SIGTERM), and kill it after ``grace`` seconds."""

    async def collect(self, job: JobRecord, folder: JobDir) -> None:
        """Make the job's outputs available under ``folder.outputs`` and clean up after it."""

    async def recover(self, job: JobRecord, folder: JobDir) -> dict[str, Any] | None:
        """Handle of a job that was being started when the server stopped, if it did start."""

    async def remove_orphans(self, known: set[int]) -> list[str]:
        """Remove leftovers of jobs that no longer exist; return what was removed."""

    def describe(self) -> dict[str, Any]:
        """Facts for GET /config (features, versions)."""

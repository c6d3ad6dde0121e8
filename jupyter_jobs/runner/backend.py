"""What every backend implements; the pool owns queueing, capacity, deadlines and retries."""
from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from traitlets import Unicode
from traitlets.config import LoggingConfigurable

from ..jobdir import JobDir
from ..models import Dataset, InstanceType, JobRecord

if TYPE_CHECKING:
    from ..pyenv.environments import Environments
    from ..pyenv.lock import Lock
    from ..volumes import Volume
    from .identity import RunAs


StateCallback = Callable[[str, str], None]


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
    instance_type: InstanceType
    #: Sets the job's message while it is being prepared ("Preparing: pulling IMAGE").
    report: Callable[[str], None] = field(default=lambda message: None)
    #: The job's Python environment (``env.python``), None for the image or host as it is.
    python: Lock | None = None
    #: Where environments are built and cached.
    environments: Environments | None = None
    #: What ``prepare`` found out about the environment (built, how long, where), for the job's record.
    environment_outcome: dict[str, Any] = field(default_factory=dict)
    #: The folder of the ``python`` that runs the job (local and Slurm backends), once prepared.
    python_bin: str = ""
    #: A folder of the job's packages for Linux (``uv pip install --target``), mounted into its container
    #: (Slurm container mode), once prepared.
    python_target: str = ""
    #: The image that runs the job when it is not the job's own (Docker: the image with its environment).
    run_image: str = ""
    #: The system account the job runs as (``JobManager.run_as_owner``); None: as the server runs.
    run_as: RunAs | None = None
    #: The writable volumes it mounts (:mod:`jupyter_jobs.volumes`), read-write.
    volumes: list[Volume] = field(default_factory=list)
    #: The job's secret variables with their values (``secrets.py``): for its process environment only,
    #: never its command, a file or argv.
    secrets: dict[str, str] = field(default_factory=dict)
    #: ``{"username", "password"}`` to pull the job's image with (``registry-auth``), or None.
    registry: dict[str, str] | None = None


class Backend(LoggingConfigurable):
    """Runs what the pool gives it. Every method may be called after a server restart."""

    #: Short name shown in job records and GET /config.
    name = "backend"
    #: True for cluster schedulers (Slurm): they queue jobs and own capacity, so the pool submits
    #: every job at once and keeps it Pending, with the scheduler's reason, until it runs.
    schedules_itself = False
    #: Identifies this server's jobs among those of other servers sharing an engine.
    server_id = Unicode("")
    #: The host folder holding the job-side package (``jupyter_jobs_jobside``), on every job's PYTHONPATH.
    jobside_dir = Unicode("")
    #: Called, from any thread, when ``unavailable()`` changes; the pool sets it to wake itself.
    availability_changed: Callable[[], None] = staticmethod(lambda: None)

    async def prepare(self, launch: Launch) -> None:
        """Get ready to start (pull an image, ...), writing progress to the job's log."""

    async def start(self, launch: Launch) -> dict[str, Any]:
        """Start the job detached from the server; return a JSON-able handle to find it again."""
        raise NotImplementedError

    async def wait(self, job: JobRecord, handle: dict[str, Any], on_state: StateCallback | None = None) -> Exit:
        """Return when the job's command has ended (also for a handle from before a restart).

        Backends that schedule jobs themselves call ``on_state("pending", reason)`` while the job
        waits and ``on_state("running", "")`` once it runs.
        """
        raise NotImplementedError

    async def stop(self, job: JobRecord, handle: dict[str, Any], grace: float) -> None:
        """Ask the job to stop (SIGTERM), and kill it after ``grace`` seconds."""
        raise NotImplementedError

    async def collect(self, job: JobRecord, folder: JobDir) -> None:
        """Make the job's outputs available under ``folder.outputs`` and clean up after it."""

    async def recover(self, job: JobRecord, folder: JobDir) -> dict[str, Any] | None:
        """Handle of a job that was being started when the server stopped, if it did start."""
        return None

    async def remove_orphans(self, active: set[int]) -> list[str]:
        """Remove what is left of jobs that are not active (finished or deleted); say what."""
        return []

    def unavailable(self) -> str | None:
        """Why the engine cannot take jobs right now (its daemon is down), or None.

        Jobs already running keep their resources meanwhile: the pool starts nothing new.
        """
        return None

    def environments_removed(self, hashes: list[str]) -> None:
        """Python environments left the cache: remove what this backend made of them (blocking)."""

    def warm_up(self) -> None:
        """Start what makes jobs start sooner (the local backend's warm interpreters); called once the pool runs."""

    def close(self) -> None:
        """Stop what the backend runs in the background (jobs keep running)."""

    def default_image(self) -> str | None:
        """Image of jobs that name none (container backends)."""
        return None

    def describe(self) -> dict[str, Any]:
        """Facts for GET /config."""
        return {"name": self.name}


def in_thread(fn: Callable[..., Any], *args: Any, name: str | None = None) -> asyncio.Future:
    """Run a blocking call on its own daemon thread; await the result on the loop.

    Unlike ``asyncio.to_thread`` this does not occupy the loop's small default executor for
    as long as a job runs, and a thread still blocked at shutdown does not hold the server up.
    """
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    def deliver(setter: Callable[[Any], None], value: Any) -> None:
        try:
            loop.call_soon_threadsafe(settle, setter, value)
        except RuntimeError:  # the loop closed meanwhile (server stopped): nobody waits any more
            pass

    def target() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting coroutine
            deliver(future.set_exception, exc)
        else:
            deliver(future.set_result, result)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future

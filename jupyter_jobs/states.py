"""The job state machine: statuses, the transitions allowed between them, and ``transition()``.

This module is the only place that decides whether a job may move from one status to
another; the store and the pool go through :func:`transition`.
"""
from __future__ import annotations

from enum import Enum

from .errors import InvalidTransition


class JobStatus(str, Enum):
    """Status of a job, in PrimeHub's vocabulary."""

    #: Queued: waiting for capacity; its message says why.
    PENDING = "Pending"
    #: Resources are allocated and the backend is setting up (copying, pulling an image).
    PREPARING = "Preparing"
    #: The job's command is running.
    RUNNING = "Running"
    #: The command exited 0 and every declared output was collected.
    SUCCEEDED = "Succeeded"
    #: The command failed, ran past max-runtime, or could not be started.
    FAILED = "Failed"
    #: A user cancelled it.
    CANCELLED = "Cancelled"
    #: The backend lost track of it (e.g. its process or container vanished with no exit status).
    UNKNOWN = "Unknown"

    def is_terminal(self) -> bool:
        return self in TERMINAL

    def __str__(self) -> str:
        return self.value


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.UNKNOWN})

#: Allowed moves. Back to PENDING is a retry (or a preparation interrupted by a restart).
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    # Unknown from Pending: a job queued in an external scheduler (Slurm) that it forgot.
    JobStatus.PENDING: frozenset({JobStatus.PREPARING, JobStatus.CANCELLED, JobStatus.FAILED, JobStatus.UNKNOWN}),
    JobStatus.PREPARING: frozenset(
        {JobStatus.RUNNING, JobStatus.PENDING, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.UNKNOWN}
    ),
    JobStatus.RUNNING: frozenset(
        {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.UNKNOWN, JobStatus.PENDING}
    ),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
    JobStatus.UNKNOWN: frozenset(),
}


def parse_status(value: str) -> JobStatus:
    """Parse a status name case-insensitively (``running`` -> ``JobStatus.RUNNING``)."""
    for status in JobStatus:
        if status.value.lower() == str(value).lower():
            return status
    names = ", ".join(s.value for s in JobStatus)
    raise ValueError(f"unknown status {value!r}; use one of {names}")


def check_transition(job_id: int, current: JobStatus, new: JobStatus) -> None:
    """Raise :class:`InvalidTransition` unless ``current -> new`` is allowed."""
    if new not in TRANSITIONS[current]:
        raise InvalidTransition(f"job {job_id} is {current.value} and cannot become {new.value}")

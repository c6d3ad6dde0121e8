"""Typed errors of jupyter-jobs.

Every error a client can cause or observe is a :class:`JobsError`. The REST layer maps
each class to one HTTP status in a single place (``api.base.JobsAPIHandler.write_error``),
so a client mistake is never answered with a 500.
"""
from __future__ import annotations

from dataclasses import dataclass


class JobsError(Exception):
    """Base of all jupyter-jobs errors; catch this to catch them all."""

    #: HTTP status the REST API answers with.
    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict:
        return {"message": self.message, "reason": type(self).__name__}


@dataclass(frozen=True)
class FieldProblem:
    """One problem in a job spec, located by its field path (``outputs[1].path``)."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class SpecError(JobsError):
    """The job spec (or a request body) is invalid. Lists every problem found."""

    status_code = 400

    def __init__(self, problems: list[FieldProblem] | str, field: str = "") -> None:
        if isinstance(problems, str):
            problems = [FieldProblem(field, problems)]
        self.problems = problems
        lines = [str(p) for p in problems]
        if len(lines) == 1:
            message = f"invalid job spec: {lines[0]}"
        else:
            message = "invalid job spec:\n" + "\n".join(f"  - {line}" for line in lines)
        super().__init__(message)

    def to_json(self) -> dict:
        body = super().to_json()
        body["errors"] = [{"field": p.field, "message": p.message} for p in self.problems]
        return body


class ScheduleError(SpecError):
    """A schedule's own field (``cron``, ``timezone``, ``overlap``) is invalid."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message, field)
        self.message = f"invalid schedule: {self.problems[0]}"
        self.args = (self.message,)


class Unschedulable(SpecError):
    """The job asks for more than this server could ever give it."""


class JobNotFound(JobsError):
    status_code = 404

    def __init__(self, job_id: object) -> None:
        super().__init__(f"job {job_id} not found; `jupyter jobs list` shows the jobs there are")
        self.job_id = job_id


class NotFound(JobsError):
    """Some other named thing (an output file, a route argument) does not exist."""

    status_code = 404


class ScheduleNotFound(NotFound):
    def __init__(self, schedule_id: object) -> None:
        super().__init__(f"schedule {schedule_id} not found; `jupyter jobs schedule list` shows the schedules there are")
        self.schedule_id = schedule_id


class Forbidden(JobsError):
    """The thing exists but is not served (an output that is a link, a device, a hard link), or the
    user may not do this (only admins prune the environment cache)."""

    status_code = 403


class InvalidTransition(JobsError):
    """The job is in a state that does not allow this action."""

    status_code = 409


class Conflict(JobsError):
    status_code = 409


class Gone(JobsError):
    """What was asked for existed and was removed for good (retention removed a job's data)."""

    status_code = 410


class TooLarge(JobsError):
    status_code = 413


class ConfigError(JobsError):
    """The admin's configuration is wrong (a server-side problem, named by its setting)."""

    def __init__(self, message: str, setting: str = "") -> None:
        super().__init__(f"jupyter-jobs configuration: {setting + ': ' if setting else ''}{message}")


class BackendUnavailable(JobsError):
    status_code = 503


class InsufficientStorage(JobsError):
    """The server's disk (or the job database's) is full: nothing was changed; try again later."""

    status_code = 507


def storage_error(exc: BaseException) -> InsufficientStorage | None:
    """The :class:`InsufficientStorage` that ``exc`` means (a full disk or quota), or None."""
    import errno
    import sqlite3

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" ({exc.filename})" if exc.filename else ""
        return InsufficientStorage(f"the server's disk is full{where}; nothing was changed. Free space and try again")
    if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
        return InsufficientStorage(f"the job database cannot grow ({exc}); nothing was changed. Free space and try again")
    return None


class BackendError(JobsError):
    """A backend failed to run a job for a reason that is not the client's."""

    status_code = 500


class EnvironmentBuildFailed(JobsError):
    """A job's Python environment could not be built; carries the installer's own message.

    Most often a requirement that the package index does not have, hence 400; ``packages`` names
    the requirements the installer's message mentions, ``stderr`` is that message in full.
    """

    status_code = 400

    def __init__(self, message: str, stderr: str = "", packages: tuple[str, ...] = (), env_hash: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr
        self.packages = packages
        self.env_hash = env_hash

    def to_json(self) -> dict:
        body = super().to_json()
        body["packages"] = list(self.packages)
        return body


class SecretError(SpecError):
    """A request about a secret is wrong (its name, its value); names the field, never the value."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message, field)
        self.message = f"{field}: {message}"
        self.args = (self.message,)

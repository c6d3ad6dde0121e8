"""Who may see and act on a job: the one place that decides it, used by every handler.

A job belongs to the user who submitted it, and to the group it was submitted for (its ``group``,
by default the submitter's first group). Its owner and admins may see it, follow its log,
download its outputs, cancel, rerun and delete it. Members of its group may see it (the job,
its log, displays and outputs) but not act on it: they are answered 403, naming who may, since
its existence is not hidden from them. To anyone else it does not exist (404, the same answer as
for an id that was never used, so its existence does not leak).

An admin is a user named in ``JobManager.admin_users``, or one the server's authorizer allows
``write`` on the resource ``jupyter_jobs:admin`` (a custom ``Authorizer``, or the JupyterHub
service's, which asks for the Hub scope ``custom:jupyter-jobs:admin``; the default one, which
allows everything to everyone, grants no admin role). On a single-user server every
request is the server's own user, so all jobs are theirs.

What belongs to the server rather than to a job (pruning the cache of Python environments) is
for admins only; anyone else is refused with 403, since there is no existence to hide.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from .errors import Forbidden, JobNotFound, ScheduleNotFound, SpecError
from .models import JobRecord

#: The resource an authorizer is asked about to make a user an admin of all jobs.
ADMIN_RESOURCE = "jupyter_jobs:admin"
#: Authorizers that allow every user everything: they cannot tell an admin apart.
_PERMISSIVE = {"AllowAllAuthorizer", "JupyterHubAuthorizer"}


@dataclass(frozen=True)
class Access:
    """What one user may do: their own jobs and, to look at, their groups' jobs; all of them as an admin."""

    user: str
    admin: bool = False
    groups: frozenset[str] = frozenset()

    def can_see(self, job: JobRecord) -> bool:
        return self.sees(job.owner, job.spec.group)

    def sees(self, owner: str, group: str) -> bool:
        """Whether this user may see a job of ``owner`` and ``group`` (also one that is gone: the change feed)."""
        return self.admin or owner == self.user or (bool(group) and group in self.groups)

    def can_act(self, job: JobRecord) -> bool:
        return self.admin or job.owner == self.user

    def visible(self, job: JobRecord) -> JobRecord:
        """``job`` if this user may see it; else :class:`JobNotFound`, as for a missing id."""
        if not self.can_see(job):
            raise JobNotFound(job.id)
        return job

    def acting(self, job: JobRecord, doing: str) -> JobRecord:
        """``job`` if this user may ``doing`` it (cancel, rerun, delete); :class:`Forbidden` saying who may
        when they only see it (a member of its group); :class:`JobNotFound` when they may not see it."""
        if not self.can_act(self.visible(job)):
            raise Forbidden(f"job {job.id} is {job.owner}'s; as a member of its group {job.spec.group} you may "
                            f"see it, but only {job.owner} or an admin may {doing} it")
        return job

    def visible_schedule(self, schedule: Any) -> Any:
        """``schedule`` if this user may see it (as a job: its owner, its group, an admin); else
        :class:`ScheduleNotFound`, as for a missing id."""
        if not (self.admin or schedule.owner == self.user or (schedule.group and schedule.group in self.groups)):
            raise ScheduleNotFound(schedule.id)
        return schedule

    def acting_schedule(self, schedule: Any, doing: str) -> Any:
        """``schedule`` if this user may ``doing`` it (pause, resume, delete, run now): its owner or an admin;
        :class:`Forbidden` for a member of its group, :class:`ScheduleNotFound` for anyone else."""
        self.visible_schedule(schedule)
        if not (self.admin or schedule.owner == self.user):
            raise Forbidden(f"schedule {schedule.id} is {schedule.owner}'s; as a member of its group {schedule.group} "
                            f"you may see it, but only {schedule.owner} or an admin may {doing} it")
        return schedule

    def job_group(self, requested: str, *, server_user: str) -> str:
        """The group a job is submitted for: the one the spec names, else the user's first group
        (alphabetically), else none (""). A named group must be one of the user's, unless they are an
        admin, or on a single-user server, where no groups are known and any name is taken as written."""
        if not requested:
            return min(self.groups) if self.groups else ""
        if self.admin or self._single_user(server_user) or requested in self.groups:
            return requested
        mine = ", ".join(sorted(self.groups)) if self.groups else "none"
        raise SpecError(f"{self.user} is not a member of {requested!r}; your groups: {mine} (leave group out "
                        "for your first one)", "group")

    def may_mount(self, groups: tuple[str, ...] | frozenset[str], *, server_user: str = "") -> bool:
        """Whether this user's jobs may mount a volume reserved to ``groups`` (none: anyone's): as a member
        of one of them, as an admin, or on a single-user server (no groups are known; its user set it up)."""
        return not groups or self.admin or self._single_user(server_user) or bool(self.groups & set(groups))

    def list_scope(self, owner: str | None, all_users: bool = False, *, server_user: str = "") -> dict[str, Any]:
        """The owner filter and visibility of a list (keywords of ``JobStore.list``). ``owner`` ``me``
        is "Submitted by me"; ``all_users`` is an admin's view of everyone's jobs, refused to others
        (on a single-user server, where every job is its user's, it changes nothing). Everyone but an
        admin sees their own jobs and their groups'."""
        if all_users and not self.admin and not self._single_user(server_user):
            raise Forbidden(f"only admins may list every user's jobs, and {self.user} is not one; without "
                            "all-users you see your own jobs and your groups' (see docs/operators.md, "
                            "\"Who sees which jobs\")")
        owner = self.user if owner == "me" else owner or None
        return {"owner": owner, "visible_to": None if self.admin else (self.user, self.groups)}

    def require_admin(self, doing: str) -> None:
        """Nothing if this user is an admin; else :class:`Forbidden` saying who may ``doing``."""
        if not self.admin:
            raise Forbidden(f"only admins may {doing}, and {self.user} is not one; an admin is named in "
                            "JobManager.admin_users (see docs/operators.md, \"Who sees which jobs\")")

    def _single_user(self, server_user: str) -> bool:
        """Whether this is a single-user server's own user: no groups are known, and it runs as them."""
        return not self.groups and self.user == server_user


async def is_admin(handler: Any, user: Any, username: str, admin_users: set[str] | frozenset[str]) -> bool:
    """Whether ``user`` is an admin of jobs: listed in ``admin_users``, or so authorized."""
    if username in admin_users:
        return True
    authorizer = getattr(handler, "authorizer", None)
    if authorizer is None:
        return False
    if not getattr(authorizer, "knows_admins", False) and any(
            klass.__name__ in _PERMISSIVE for klass in type(authorizer).__mro__):
        return False
    allowed = authorizer.is_authorized(handler, user, "write", ADMIN_RESOURCE)
    return bool(await allowed if inspect.isawaitable(allowed) else allowed)

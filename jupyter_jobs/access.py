"""Who may see and act on a job: the one place that decides it, used by every handler.

A job belongs to the user who submitted it. Its owner and admins may see it, follow its log,
download its outputs, cancel, rerun and delete it; to anyone else it does not exist (404, the
same answer as for an id that was never used, so its existence does not leak).

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

from .errors import Forbidden, JobNotFound
from .models import JobRecord

#: The resource an authorizer is asked about to make a user an admin of all jobs.
ADMIN_RESOURCE = "jupyter_jobs:admin"
#: Authorizers that allow every user everything: they cannot tell an admin apart.
_PERMISSIVE = {"AllowAllAuthorizer", "JupyterHubAuthorizer"}


@dataclass(frozen=True)
class Access:
    """What one user may do: their own jobs, or all of them as an admin."""

    user: str
    admin: bool = False

    def can_see(self, job: JobRecord) -> bool:
        return self.admin or job.owner == self.user

    def visible(self, job: JobRecord) -> JobRecord:
        """``job`` if this user may see it; else :class:`JobNotFound`, as for a missing id."""
        if not self.can_see(job):
            raise JobNotFound(job.id)
        return job

    def require_admin(self, doing: str) -> None:
        """Nothing if this user is an admin; else :class:`Forbidden` saying who may ``doing``."""
        if not self.admin:
            raise Forbidden(f"only admins may {doing}, and {self.user} is not one; an admin is named in "
                            "JobManager.admin_users (see docs/operators.md, \"Who sees which jobs\")")

    def list_owner(self, requested: str | None) -> str | None:
        """The owner filter of a list: admins choose (``None``: everyone); others see their own."""
        if requested == "me" or not self.admin:
            return self.user
        return requested or None


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

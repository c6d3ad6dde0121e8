"""Base of every route: errors as JSON with the right status (in one place, ``write_error``), who is
asking and what they may see, request bodies within limits."""
from __future__ import annotations

import asyncio
import json
from typing import Any

from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import url_path_join

from ..access import Access, is_admin
from ..errors import JobNotFound, JobsError, SpecError, TooLarge, storage_error
from ..manager import JobManager, server_user
from ..models import JobRecord
from ..spec import load_json, load_spec_text
from ..store import parse_id

API = "jupyter-jobs/api"
#: The header a forwarding user server sends with its own base URL (see JobsAPIHandler.public_base_url).
PUBLIC_BASE_HEADER = "X-Jupyter-Jobs-Base-Url"
#: Largest request body accepted (a spec or a set of overrides).
MAX_BODY_BYTES = 4 * 1024 * 1024


class JobsAPIHandler(ExtensionHandlerMixin, APIHandler):
    """Base of every route: JSON errors with the right status, the manager, the user."""

    auth_resource = "jobs"

    @property
    def manager(self) -> JobManager:
        return self.settings["jupyter_jobs_manager"]

    @property
    def username(self) -> str:
        """Who is asking: the identity provider's user, or, on a single-user server whose one
        shared token makes every request a new anonymous user, the account running the server."""
        if type(self.identity_provider) in (IdentityProvider, PasswordIdentityProvider):
            return server_user()
        user = self.current_user
        return getattr(user, "username", None) or str(user)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        exc = storage_error(exc) or exc if exc is not None else None
        if isinstance(exc, JobsError):
            self.set_status(exc.status_code)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(exc.to_json()))
            return
        super().write_error(status_code, **kwargs)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        full = storage_error(value) if value is not None else None
        if full is not None:
            self.log.warning("jupyter-jobs %s %s -> 507: %s", self.request.method, self.request.uri, value)
            return
        if isinstance(value, JobsError) and value.status_code < 500:
            self.log.info("jupyter-jobs %s %s -> %s: %s", self.request.method, self.request.uri,
                          value.status_code, value.message.splitlines()[0])
            return
        super().log_exception(typ, value, tb)

    def job_id(self, raw: str) -> int:
        job_id = parse_id(raw)
        if job_id is None:
            raise JobNotFound(raw[:40])
        return job_id

    def user_groups(self) -> tuple[str, ...]:
        """The requesting user's groups: the ``groups`` of the identity provider's user, when it has
        any (none on a plain Jupyter server). An identity provider that knows groups sets them there."""
        groups = getattr(self.current_user, "groups", None) or ()
        return (groups,) if isinstance(groups, str) else tuple(str(g) for g in groups)

    async def access(self) -> Access:
        """What the requesting user may see and do (``access.py`` decides)."""
        if not hasattr(self, "_access"):
            name = self.username
            admin = await is_admin(self, self.current_user, name, self.manager.admin_users)
            self._access = Access(name, admin, frozenset(self.user_groups()))
        return self._access

    async def visible_job(self, raw_id: str) -> JobRecord:
        """The job at ``raw_id`` if the user may see it; 404 otherwise (existence never leaks)."""
        access = await self.access()
        return access.visible(self.manager.get(self.job_id(raw_id)))

    async def acting_job(self, raw_id: str, doing: str) -> JobRecord:
        """The job at ``raw_id`` if the user may ``doing`` it; 403 when they only see it, else 404."""
        access = await self.access()
        return access.acting(self.manager.get(self.job_id(raw_id)), doing)

    def job_url(self, job_id: int) -> str:
        return url_path_join(self.public_base_url, API, "jobs", str(job_id))

    @property
    def public_base_url(self) -> str:
        """Where the caller reaches this API: a forwarding user server says its own base URL (the service's
        links then lead back through it, where the browser is logged in); else this server's."""
        given = self.request.headers.get(PUBLIC_BASE_HEADER, "")
        if given.startswith("/") and not given.startswith("//") and given.isprintable() and "\\" not in given:
            return given
        return self.base_url

    async def body(self, *, allow_yaml: bool = False, default: Any = None) -> Any:
        """The request body as JSON (or YAML), parsed within the spec limits off the event loop."""
        raw = self.request.body or b""
        if len(raw) > MAX_BODY_BYTES:
            raise TooLarge(f"request body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}")
        if not raw.strip():
            if default is not None:
                return default
            raise SpecError("request body is empty; send the job spec as JSON or YAML", "body")
        kind = self.request.headers.get("Content-Type", "")
        if allow_yaml and ("yaml" in kind or "text/plain" in kind):
            return await asyncio.to_thread(load_spec_text, raw.decode("utf-8", "replace"), "body")
        hint = " (send YAML with Content-Type: application/yaml)" if allow_yaml else ""
        return await asyncio.to_thread(load_json, raw, "body", hint)

    def job_json(self, job: Any) -> dict[str, Any]:
        data = self.manager.job_json(job)
        data["url"] = self.job_url(job.id)
        return data

    def write_json(self, data: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

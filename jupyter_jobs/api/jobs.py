"""Jobs: list (or fetch by ids), submit, show, cancel, rerun, delete, pin and garbage-collect."""
from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..errors import JobNotFound, SpecError
from ..manager import server_user
from ..store import MAX_PAGE, parse_id
from .base import JobsAPIHandler


class JobsHandler(JobsAPIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        ids = self.get_argument("ids", None)
        if ids is not None:  # just these jobs (those the caller may see): what the change feed named
            access = await self.access()
            jobs = []
            for job_id in parse_ids(ids):
                try:
                    job = self.manager.get(job_id)
                except JobNotFound:
                    continue
                if access.can_see(job):
                    jobs.append(job)
            self.write_json({"jobs": [list_row(self.job_json(j)) for j in jobs], "next_cursor": None})
            return
        limit = self.get_argument("limit", "50")
        if parse_id(limit) is None:
            raise SpecError(f"{limit[:40]!r} is not a number; use 1 to 500", "limit")
        access = await self.access()
        all_users = self.get_argument("all_users", "0").lower() in ("1", "true", "yes")
        jobs, cursor = self.manager.list(
            status=self.get_argument("status", None),
            **access.list_scope(self.get_argument("owner", None), all_users, server_user=self.manager.single_user()),
            group=self.get_argument("group", None) or None,
            schedule=self.get_argument("schedule", None) or None,
            text=self.get_argument("text", None) or None,
            label=self.get_arguments("label"),
            cursor=self.get_argument("cursor", None) or None,
            limit=int(limit),
        )
        self.write_json({"jobs": [list_row(self.job_json(j)) for j in jobs], "next_cursor": cursor})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = await self.body(allow_yaml=True)
        files, base_dir, environment = None, self.get_argument("base_dir", None), None
        if isinstance(body, dict) and "spec" in body:  # {spec, files, base_dir, environment}: files by content hash
            unknown = set(body) - {"spec", "files", "base_dir", "environment"}
            if unknown:
                raise SpecError(f"unknown key {sorted(unknown)[0]!r}; the envelope has spec, files, base_dir, "
                                "environment", "body")
            environment = body.get("environment")
            body, files, base_dir = body["spec"], body.get("files"), body.get("base_dir", base_dir)
        job, created = await self.manager.submit(
            body, owner=self.username, access=await self.access(), base_dir=base_dir, files=files,
            environment=environment,
            idempotency_key=self.request.headers.get("Idempotency-Key") or None,
        )
        self.set_status(201 if created else 200)
        if not created:
            self.set_header("Idempotent-Replayed", "true")
        self.set_header("Location", self.job_url(job.id))
        self.write_json(self.job_json(job))


def parse_ids(text: str) -> list[int]:
    """The job ids of ``ids=1,2,3`` (each once, in the order given; at most a page of them)."""
    parts = [part.strip() for part in text.split(",")] if text.strip() else []
    if not parts:
        raise SpecError("names no job; give job ids separated by commas, e.g. ids=12,15", "ids")
    if len(parts) > MAX_PAGE:
        raise SpecError(f"names {len(parts)} jobs; ask for at most {MAX_PAGE} at a time", "ids")
    ids: dict[int, None] = {}
    for part in parts:
        job_id = parse_id(part)
        if job_id is None:
            raise SpecError(f"{part[:40]!r} is not a job id; give job ids separated by commas, e.g. ids=12,15", "ids")
        ids[job_id] = None
    return list(ids)


def list_row(job: dict[str, Any]) -> dict[str, Any]:
    """A job as a row of GET /jobs: the number of its outputs instead of the list, which can
    hold thousands of files (GET /jobs/{id} and GET /jobs/{id}/outputs have them)."""
    job["outputs_count"] = len(job.pop("outputs"))
    return job


class JobHandler(JobsAPIHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        self.write_json(self.job_json(await self.visible_job(job_id)))

    @web.authenticated
    @authorized
    async def delete(self, job_id: str) -> None:
        await self.manager.delete((await self.acting_job(job_id, "delete")).id)
        self.set_status(204)
        self.finish()


class JobActionHandler(JobsAPIHandler):
    @web.authenticated
    @authorized
    async def post(self, job_id: str, action: str) -> None:
        job_id_int = (await self.acting_job(job_id, action)).id
        if action == "cancel":
            self.write_json(self.job_json(await self.manager.cancel(job_id_int, by=self.username)))
            return
        body = await self.body(default={})
        overrides = body.get("overrides", body) if isinstance(body, dict) else None
        if not isinstance(overrides, dict):
            raise SpecError("expected {\"overrides\": {\"key\": value}}", "body")
        job = await self.manager.rerun(
            job_id_int, overrides, owner=self.username, access=await self.access(),
            idempotency_key=self.request.headers.get("Idempotency-Key") or None,
        )
        self.set_status(201)
        self.set_header("Location", self.job_url(job.id))
        self.write_json(self.job_json(job))


class JobPinHandler(JobsAPIHandler):
    """Pin a job: retention keeps it (data and record) whatever its age, until it is unpinned."""

    pinned = True

    @web.authenticated
    @authorized
    async def post(self, job_id: str) -> None:
        job = await self.acting_job(job_id, "pin" if self.pinned else "unpin")
        self.write_json(self.job_json(self.manager.pin(job.id, self.pinned)))


class JobUnpinHandler(JobPinHandler):
    """Unpin a job: retention removes it again once it is old enough."""

    pinned = False


class GarbageCollectHandler(JobsAPIHandler):
    """One retention pass now (``dry_run=1``: only say what it would remove). It removes anyone's jobs,
    so the server's own user (on a single-user server: the one user) and admins only."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        access = await self.access()
        if access.user != server_user():
            access.require_admin("run retention (gc)")
        dry_run = self.get_argument("dry_run", "0").lower()
        if dry_run not in ("0", "1", "true", "false", "yes", "no"):
            raise SpecError(f"{dry_run[:20]!r} is not 1 or 0", "dry_run")
        self.write_json(await self.manager.retention.collect(dry_run=dry_run in ("1", "true", "yes")))

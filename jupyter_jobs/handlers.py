"""REST handlers under ``/jupyter-jobs/api``: parse, call the JobManager, serialise.

Errors are mapped to HTTP statuses in one place, :meth:`JobsAPIHandler.write_error`.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
import os
import queue
import threading
import urllib.parse
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.iostream import StreamClosedError

from .access import Access, is_admin
from .blobs import Upload
from .errors import JobNotFound, JobsError, SecretError, SpecError, TooLarge, storage_error
from .jobdir import JobDir
from .manager import JobManager, server_user
from .models import JobRecord
from .spec import load_json, load_spec_text
from .store import MAX_PAGE, parse_id

API = "jupyter-jobs/api"
#: The header a forwarding user server sends with its own base URL (see JobsAPIHandler.public_base_url).
PUBLIC_BASE_HEADER = "X-Jupyter-Jobs-Base-Url"
#: Largest request body accepted (a spec or a set of overrides).
MAX_BODY_BYTES = 4 * 1024 * 1024
#: Bytes of an output file read (off the event loop) and sent at a time.
OUTPUT_CHUNK = 1024 * 1024
#: How far past JobManager.max_input_bytes tornado lets an upload run before cutting it itself.
UPLOAD_SLACK = 16 * 1024 * 1024
#: Longest a /changes request may wait for a change (seconds).
MAX_CHANGES_WAIT = 120


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


class ChangesHandler(JobsAPIHandler):
    """Long-poll the change feed (``changes.py``): the jobs changed after ``cursor`` that the caller may see."""

    _waiting: asyncio.Task | None = None

    @web.authenticated
    @authorized
    async def get(self) -> None:
        raw = self.get_argument("timeout", "30")
        try:
            timeout = float(raw)
        except ValueError:
            timeout = -1.0
        if not 0 <= timeout <= MAX_CHANGES_WAIT:  # also NaN
            raise SpecError(f"{raw[:40]!r} is not a number of seconds from 0 to {MAX_CHANGES_WAIT}", "timeout")
        cursor = self.get_argument("cursor", None) or None
        access = await self.access()
        feed = self.manager.changes
        if cursor is not None:
            feed.parse(cursor)  # a malformed cursor: 400 now
        self._waiting = asyncio.ensure_future(
            feed.wait(cursor, timeout, lambda change: access.sees(change.owner, change.group)))
        try:
            answer = await self._waiting
        except asyncio.CancelledError:
            return  # the client went away (on_connection_close)
        finally:
            self._waiting = None
        self.set_header("Cache-Control", "no-store")
        self.write_json(answer.to_json())

    def on_connection_close(self) -> None:
        super().on_connection_close()
        if self._waiting is not None:  # its waiter leaves the feed now, not at its timeout
            self._waiting.cancel()


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


class JobLogsHandler(JobsAPIHandler):
    """Streams a job's log from a byte offset; with ``follow=1``, until the job ends.

    The body is the raw log bytes from ``offset`` (``X-Log-Offset`` echoes it), so a client that
    reconnects with ``offset + bytes received`` gets no gap and no duplicate.
    """

    stream = "log"
    content_type = "text/plain; charset=utf-8"
    offset_header = "X-Log-Offset"

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        job = await self.visible_job(job_id)
        folder = self.manager.folder(job.id)
        raw_offset = self.get_argument("offset", "0")
        offset = parse_id(raw_offset)
        if offset is None:
            raise SpecError(f"{raw_offset[:40]!r} is not a byte offset (a whole number >= 0)", "offset")
        follow = self.get_argument("follow", "0").lower() in ("1", "true", "yes")
        size = folder.log_size(self.stream)
        if offset > size and job.status.is_terminal():
            raise SpecError(f"offset {offset} is past the end of the {self.stream} ({size} bytes)", "offset")
        self.set_header("Content-Type", self.content_type)
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        self.set_header(self.offset_header, str(offset))
        self.set_header("X-Job-Status", job.status.value)
        try:
            async for chunk in self.manager.follow_log(job.id, offset, follow, self.stream):
                self.write(chunk)
                await self.flush()
        except StreamClosedError:
            return  # the client went away; it comes back with its offset
        self.finish()


class JobDisplaysHandler(JobLogsHandler):
    """What the job displayed (figures, tables, the cell's value, its error), one Jupyter output
    (nbformat v4) a line, streamed like the log. The job wrote it: front ends render it untrusted."""

    stream = "displays"
    content_type = "application/x-ndjson"
    offset_header = "X-Displays-Offset"


class OutputsHandler(JobsAPIHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        job = await self.visible_job(job_id)
        archive = self.get_argument("archive", "")
        if archive:
            if archive != "tar":
                raise SpecError(f"archive={archive[:20]!r}: the one archive format is tar (archive=tar)", "archive")
            await send_archive(self, self.manager.folder(job.id), "")
            return
        files = await asyncio.to_thread(self.manager.folder(job.id).list_outputs)
        for item in files:
            item["url"] = url_path_join(self.job_url(job.id), "outputs", item["path"])
        self.write_json({"outputs": files, "missing": _missing(job, files)})


async def send_archive(handler: JobsAPIHandler, folder: JobDir, path: str) -> None:
    """The folder ``path`` of the outputs ("": all of them) as a tar, made on a thread and handed over a
    few chunks at a time: memory stays small whatever the folder's size, and a client that goes away
    stops the thread."""
    chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=4)
    gone = threading.Event()

    def put(item: bytes | BaseException | None) -> None:
        while not gone.is_set():
            try:
                chunks.put(item, timeout=0.5)
                return
            except queue.Full:
                continue
        raise _ClientGone

    def make() -> None:
        try:
            folder.write_archive(path, put)
        except _ClientGone:
            return
        except BaseException as exc:  # reaches the handler, which answers it (before any byte) or cuts the stream
            with contextlib.suppress(_ClientGone):
                put(exc)
            return
        with contextlib.suppress(_ClientGone):
            put(None)

    maker = threading.Thread(target=make, name=f"jupyter-jobs-archive-{path[:40]}", daemon=True)
    maker.start()
    started = False
    try:
        while True:
            item = await asyncio.to_thread(chunks.get)
            if isinstance(item, BaseException):
                if not started:
                    raise item
                handler.log.warning("jupyter-jobs: the archive of %s was cut: %s", handler.request.path, item)
                handler.request.connection.close()
                return
            if not started:
                attachment(handler, (path.rstrip("/").rsplit("/", 1)[-1] or "outputs") + ".tar", "application/x-tar")
                started = True
            if item is None:
                break
            handler.write(item)
            await handler.flush()
    except StreamClosedError:
        return
    finally:
        gone.set()
    handler.finish()


def attachment(handler: JobsAPIHandler, name: str, kind: str) -> None:
    """Headers of a download named ``name`` (any characters: an ASCII fallback and the UTF-8 name)."""
    handler.set_header("Content-Type", kind)
    plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    quoted = urllib.parse.quote(name)
    handler.set_header("Content-Disposition", f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quoted}")


class _ClientGone(Exception):
    """The client of an archive went away: its maker stops."""


def list_row(job: dict[str, Any]) -> dict[str, Any]:
    """A job as a row of GET /jobs: the number of its outputs instead of the list, which can
    hold thousands of files (GET /jobs/{id} and GET /jobs/{id}/outputs have them)."""
    job["outputs_count"] = len(job.pop("outputs"))
    return job


def _missing(job: Any, files: list[dict]) -> list[str]:
    present = {f["path"] for f in files}
    return [o.path for o in job.spec.outputs if o.path not in present and not any(p.startswith(o.path + "/") for p in present)]


class OutputFileHandler(JobsAPIHandler):
    """Download one output file, read from the very descriptor that was checked: a job that
    swaps a folder for a symbolic link meanwhile gets a refusal, never a file of the host.
    A folder comes as one tar archive, streamed as it is made (see :meth:`JobDir.write_archive`)."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str, path: str) -> None:
        folder = self.manager.folder((await self.visible_job(job_id)).id)
        try:
            fd, info = await asyncio.to_thread(folder.open_output, path)
        except IsADirectoryError:
            await send_archive(self, folder, path)
            return
        try:
            await self._send(fd, info.st_size, path.rsplit("/", 1)[-1])
        finally:
            os.close(fd)

    async def _send(self, fd: int, size: int, name: str) -> None:
        kind, _ = mimetypes.guess_type(name)
        attachment(self, name, kind or "application/octet-stream")
        self.set_header("Content-Length", str(size))
        offset = 0
        try:
            while offset < size:
                chunk = await asyncio.to_thread(os.pread, fd, min(OUTPUT_CHUNK, size - offset), offset)
                if not chunk:  # the file shrank while we sent it: the client must see a cut answer
                    self.log.warning("jupyter-jobs: %s shrank to %d bytes while being sent", self.request.path, offset)
                    self.request.connection.close()
                    return
                self.write(chunk)
                await self.flush()
                offset += len(chunk)
        except StreamClosedError:
            return  # the client went away
        self.finish()


class BlobsMissingHandler(JobsAPIHandler):
    """Which of these file hashes does the server lack? Upload only those."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = await self.body()
        hashes = body.get("hashes") if isinstance(body, dict) else None
        if not isinstance(hashes, list):
            raise SpecError('expected {"hashes": ["<sha256>", ...]}', "hashes")
        self.write_json({"missing": self.manager.blobs.missing(hashes)})


@web.stream_request_body
class BlobHandler(JobsAPIHandler):
    """PUT one file's bytes under its SHA-256.

    The body is streamed to a temporary file beside the store as it arrives (never held in
    memory), hashed on the way, and stored only when it hashes to the digest in the URL. With a
    streamed body tornado calls ``put`` after the body arrived, so who asks, the digest and the
    size are all checked in ``prepare``, before any byte is accepted.
    """

    _upload: Upload | None = None

    async def prepare(self) -> None:
        await super().prepare()
        if self._finished or self.request.method != "PUT":
            return
        if not self.current_user:
            raise web.HTTPError(403)
        if not await ensure_async(self.authorizer.is_authorized(self, self.current_user, "write", self.auth_resource)):
            raise web.HTTPError(403, f"User is not authorized to write on resource: {self.auth_resource}.")
        limit = self.manager.max_input_bytes
        length = self.request.headers.get("Content-Length", "")
        if length and parse_id(length) is None:
            raise SpecError(f"{length[:40]!r} is not a byte count", "Content-Length")
        if length and int(length) > limit:
            raise TooLarge(f"{length} bytes is over the {limit} byte limit (JobManager.max_input_bytes); use a dataset")
        # Raise tornado's server-wide cap (ServerApp.max_body_size) for this request only, with room
        # to spare, so that past the limit the client gets our 413, not tornado's bare 400.
        self.request.connection.set_max_body_size(limit + UPLOAD_SLACK)
        self._upload = await asyncio.to_thread(self.manager.blobs.upload, self.path_args[0], limit)

    async def data_received(self, chunk: bytes) -> None:
        upload = self._upload
        if upload is None:
            return
        try:
            await asyncio.to_thread(upload.write, chunk)
        except (TooLarge, OSError, ValueError) as exc:  # answer now; tornado then closes the connection
            if self._upload is not upload:
                return  # discarded meanwhile: the client went away
            self._discard()
            if isinstance(exc, ValueError):
                raise
            if isinstance(exc, OSError):
                exc = storage_error(exc) or web.HTTPError(500, f"could not store the upload: {exc}")
            self.send_error(exc.status_code, exc_info=(type(exc), exc, None))

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self._discard()  # the client went away mid-upload

    def on_finish(self) -> None:
        self._discard()

    def _discard(self) -> None:
        upload, self._upload = self._upload, None
        if upload is not None:
            upload.discard()

    @web.authenticated
    @authorized
    async def put(self, digest: str) -> None:
        upload, self._upload = self._upload, None
        assert upload is not None, "prepare() starts every upload"
        created = await asyncio.to_thread(upload.commit)
        self.set_status(201 if created else 200)
        self.write_json({"sha256": digest, "size": upload.size, "created": created})


class InstanceTypesHandler(JobsAPIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        cluster = self.manager.cluster
        types = []
        for itype in cluster.types:
            data = itype.to_json()
            data["default"] = itype.name == cluster.default_type
            types.append(data)
        self.write_json({"instance_types": types})


class DatasetsHandler(JobsAPIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json({"datasets": [d.to_json() for d in self.manager.cluster.sets]})


class VolumesHandler(JobsAPIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        """The writable volumes this user's jobs may mount (a volume of groups they are not in is left out)."""
        access = await self.access()
        self.write_json({"volumes": [v.to_json() for v in self.manager.cluster.known_volumes
                                     if access.may_mount(v.groups, server_user=self.manager.single_user())]})


class ConfigHandler(JobsAPIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        access = await self.access()
        self.write_json({**self.manager.describe(), "user": access.user, "admin": access.admin,
                         "groups": sorted(access.groups)})


class EnvironmentsHandler(JobsAPIHandler):
    """The cache of jobs' Python environments (``env.python``): hashes and sizes, no job or owner."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json(await self.manager.environments.report())


class EnvironmentsPruneHandler(JobsAPIHandler):
    """Remove least recently used environments past a size: the cache is the server's, so its own user
    (on a single-user server: the one user) and admins only."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        access = await self.access()
        if access.user != server_user():
            access.require_admin("prune the environment cache")
        limit = prune_limit(await self.body(default={}))
        self.write_json(await self.manager.environments.prune_and_report(limit))


def prune_limit(body: Any) -> int | None:
    """The ``max_bytes`` of a prune request; None when it names none (the configured limit)."""
    if not isinstance(body, dict):
        raise SpecError('expected {"max_bytes": <bytes>}, or no body for the configured limit', "body")
    unknown = sorted(set(body) - {"max_bytes"})
    if unknown:
        raise SpecError(f"unknown key {unknown[0]!r}; the only one is max_bytes", "body")
    if "max_bytes" not in body:
        return None
    value = body["max_bytes"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpecError(f"{json.dumps(value)[:40]} is not a size; give a whole number of bytes >= 0 (0 removes "
                        "every environment no active job uses)", "max_bytes")
    return value


class SecretsHandler(JobsAPIHandler):
    """The requesting user's secrets: names and when each was set, never values."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json({"secrets": await asyncio.to_thread(self.manager.secrets.list, self.username)})


class SecretHandler(JobsAPIHandler):
    """One of the requesting user's secrets: ``PUT`` sets it from ``{"value": ...}``, ``DELETE`` removes it.
    Secrets are always the requester's own (an admin's too): a job uses its owner's."""

    @web.authenticated
    @authorized
    async def put(self, name: str) -> None:
        name = urllib.parse.unquote(name)
        body = await self.body(default={})
        if not isinstance(body, dict) or set(body) != {"value"}:
            raise SecretError('expected {"value": "..."}, the secret\'s value as a string', "body")
        entry, created = await asyncio.to_thread(self.manager.secrets.set, self.username, name, body["value"])
        self.set_status(201 if created else 200)
        self.set_header("Location", url_path_join(self.base_url, API, "secrets", name))
        self.write_json(entry)

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self.manager.secrets.delete, self.username, urllib.parse.unquote(name))
        self.set_status(204)
        self.finish()


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
]


def handlers() -> list[tuple[str, type]]:
    from .schedule_handlers import ROUTES as SCHEDULE_ROUTES

    return [(f"/{API}{pattern}", handler) for pattern, handler in [*ROUTES, *SCHEDULE_ROUTES]]

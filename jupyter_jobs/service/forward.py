"""The per-user extension's forwarder mode: ``/user/<name>/jupyter-jobs/api/...`` answered by the service.

When the extension is told where the team's service is (``JobsApp.service_url``, or
``$JUPYTER_JOBS_SERVICE_URL``, which a Hub sets for every server through ``c.Spawner.environment``),
it starts no pool of its own: every request to its API, once this server has authenticated it, is
sent on to the service with this server's Hub token (``$JUPYTERHUB_API_TOKEN``, owned by the user;
it needs the service's access scope, see docs/jupyterhub.md), and the answer is streamed back as it
comes: status, the headers the API defines, and the body (logs followed for hours, archives of
outputs). Uploads are streamed the other way.

The service reads no one's files, so a submission that asks for files from this server's disk
(``base_dir``, as the Lab panel's New job form and "Run as Job" send) is turned here into an upload
of those files as content-addressed blobs (only those the service lacks) and a submission of their
manifest: inputs from the user's home work unchanged.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

from jupyter_core.utils import ensure_async
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ..api import API, MAX_BODY_BYTES, PUBLIC_BASE_HEADER, JobsAPIHandler
from ..client import RemoteClient
from ..errors import BackendUnavailable, JobNotFound, JobsError, SpecError, TooLarge
from ..shipping import inputs_to_ship
from ..spec import load_json, load_spec_text

#: Headers of the service's answers passed on to the caller (those the API defines, and the body's).
PASSED_BACK = ("Content-Type", "Content-Disposition", "Location", "Retry-After", "Idempotent-Replayed",
               "X-Log-Offset", "X-Displays-Offset", "Cache-Control", "Last-Modified", "ETag")
PASSED_BACK_LOWER = frozenset(name.lower() for name in PASSED_BACK)
#: Headers of the caller's request passed on to the service.
PASSED_ON = ("Content-Type", "Content-Length", "Idempotency-Key", "Accept", "Range", "If-None-Match")
#: Bytes of an upload held between the caller and the service at most (flow control does the rest).
_QUEUED_CHUNKS = 8


@web.stream_request_body
class ForwardHandler(JobsAPIHandler):
    """Every route of the API, answered by the service (errors of its own in the API's JSON)."""

    @property
    def service_url(self) -> str:
        return self.settings["jupyter_jobs_service_url"]

    @property
    def service_token(self) -> str:
        return self.settings["jupyter_jobs_service_token"]

    async def prepare(self) -> None:
        await super().prepare()
        if self._finished:
            return
        if not self.current_user:
            raise web.HTTPError(403)
        action = "read" if self.request.method in ("GET", "HEAD") else "write"
        if not await ensure_async(self.authorizer.is_authorized(self, self.current_user, action, self.auth_resource)):
            raise web.HTTPError(403, f"User is not authorized to {action} on resource: {self.auth_resource}.")
        self._route = self._service_path()
        self._chunks: asyncio.Queue[bytes | None] | None = None
        self._buffer = bytearray()
        self._answer: asyncio.Future | None = None
        if self.request.method == "PUT":  # a blob: streamed to the service as it arrives
            self.request.connection.set_max_body_size(2**40)  # the service applies its own limit
            self._chunks = asyncio.Queue(_QUEUED_CHUNKS)
            self._answer = asyncio.ensure_future(self._forward(self._produce))

    def _service_path(self) -> str:
        """The route below the API, as the caller sent it (still percent-encoded: a file name with a space,
        ``#`` or ``?`` stays one path segment); ``.`` and ``..`` segments never leave the API."""
        prefix = url_path_join(self.base_url, API) + "/"
        raw = self.request.path[len(prefix):] if self.request.path.startswith(prefix) else ""
        if any(unquote(segment) in (".", "..") or "/" in unquote(segment) for segment in raw.split("/")):
            raise JobNotFound(unquote(raw)[:80])
        return raw

    async def data_received(self, chunk: bytes) -> None:
        if self._chunks is not None:
            await self._send(chunk)
        elif len(self._buffer) + len(chunk) > MAX_BODY_BYTES:
            raise TooLarge(f"request body is over {MAX_BODY_BYTES} bytes")
        else:
            self._buffer += chunk

    async def _send(self, chunk: bytes | None) -> None:
        """Queue ``chunk`` for the service; dropped once the service has answered (it refused the upload
        early, or is gone), so the caller's upload runs to its end and gets that answer."""
        assert self._chunks is not None and self._answer is not None
        if self._answer.done():
            return
        put = asyncio.ensure_future(self._chunks.put(chunk))
        await asyncio.wait({put, self._answer}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()

    async def _produce(self, write: Any) -> None:
        assert self._chunks is not None
        while (chunk := await self._chunks.get()) is not None:
            await write(chunk)

    def on_connection_close(self) -> None:
        super().on_connection_close()
        if self._answer is not None and not self._answer.done():
            self._answer.cancel()

    async def _respond(self, *_: str) -> None:
        if self._chunks is not None:
            await self._send(None)
        else:
            body, kind = bytes(self._buffer), self.request.headers.get("Content-Type", "")
            if self.request.method == "POST" and self._route.strip("/") in ("jobs", "schedules"):
                body, kind = await self._with_uploads(body, kind)
            self._answer = asyncio.ensure_future(self._forward(body, kind))
        assert self._answer is not None
        with contextlib.suppress(asyncio.CancelledError):  # the caller went away
            await self._answer

    get = post = put = delete = patch = _respond

    async def _forward(self, body: bytes | Any, kind: str = "") -> None:
        query = self.request.query
        if self.request.method == "POST" and self._route.strip("/") in ("jobs", "schedules"):
            query = urlencode([(k, v) for k, vs in self.request.query_arguments.items() if k != "base_dir"
                               for v in vs], doseq=True)
        url = f"{self.service_url}{API}/{self._route}" + (f"?{query}" if query else "")
        headers = {name: self.request.headers[name] for name in PASSED_ON if name in self.request.headers}
        if not callable(body):  # a body of ours (a submission may be rewritten): its length is tornado's to say
            headers.pop("Content-Length", None)
            if kind:
                headers["Content-Type"] = kind
        headers["Authorization"] = f"token {self.service_token}"
        # The links in the service's answers (a job's url, Location) lead back through this server.
        headers[PUBLIC_BASE_HEADER] = self.base_url
        answer = {"status": 0, "json": True}

        def on_header(line: str) -> None:
            line = line.rstrip("\r\n")
            if line.startswith("HTTP/"):
                answer["status"] = int(line.split(" ", 2)[1])
                self.set_status(answer["status"])
                return
            name, sep, value = line.partition(":")
            name, value = name.strip(), value.strip()
            if name.lower() == "content-type":
                answer["json"] = value.startswith("application/json")
            if sep and name.lower() in PASSED_BACK_LOWER:
                self.set_header(name, value)

        def unreachable() -> bool:
            """The service is not there: the Hub's proxy answers for it with an HTML error page."""
            return answer["status"] in (502, 503, 504) and not answer["json"]

        def on_chunk(chunk: bytes) -> Any:
            if unreachable():
                return None
            self.write(chunk)
            return self.flush()  # awaited by tornado: the service is read only as fast as the caller reads

        request = HTTPRequest(
            url, method=self.request.method, headers=headers,
            body=None if callable(body) or self.request.method in ("GET", "HEAD", "DELETE") else body,
            body_producer=body if callable(body) else None,
            # An upload waits for the service's go-ahead: one it refuses (too large, not allowed) is answered
            # before a byte is sent, instead of cut off mid-body.
            expect_100_continue=callable(body),
            allow_nonstandard_methods=True, header_callback=on_header,
            streaming_callback=on_chunk,
            request_timeout=24 * 3600, connect_timeout=30, follow_redirects=False, decompress_response=False,
        )
        try:
            await AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as exc:  # refused, reset, timed out (599)
            if self._headers_written:
                raise  # part of the answer went out: the connection is cut, as the service's was
            raise BackendUnavailable(f"the jupyter-jobs service at {self.service_url} cannot be reached: {exc}; "
                                     "ask your JupyterHub's admin") from None
        if unreachable():
            raise BackendUnavailable(f"the jupyter-jobs service at {self.service_url} is not answering "
                                     f"({answer['status']}); ask your JupyterHub's admin")
        self.finish()

    async def _with_uploads(self, raw: bytes, kind: str) -> tuple[bytes, str]:
        """A submission (of a job, or a schedule's runs) that names files on this server's disk, as one of
        uploaded blobs (see the module): the body and its content type to send."""
        try:
            body = load_spec_text(raw.decode("utf-8", "replace"), "body") if ("yaml" in kind or "text/plain" in kind) \
                else load_json(raw, "body", "")
        except JobsError:
            return raw, kind  # the service says what is wrong with it
        envelope = body if isinstance(body, dict) and "spec" in body else {"spec": body}
        if envelope.get("files") is not None:
            return raw, kind
        base_dir = envelope.pop("base_dir", None) or self.get_argument("base_dir", None) or ""
        root = Path(self.settings["server_root_dir"]).expanduser().resolve()
        folder = (root / str(base_dir)).resolve()
        if not folder.is_relative_to(root) or not folder.is_dir():
            raise SpecError(f"{str(base_dir)[:200]!r} is not a folder inside {root}", "base_dir")
        try:
            files = await asyncio.to_thread(inputs_to_ship, envelope["spec"], folder)
        except SpecError:
            raise
        except JobsError:
            files = {}  # not a spec the service will take: it says why
        if files:
            client = RemoteClient(self.service_url, self.service_token)
            envelope["files"] = await client.upload(files)
        # YAML may hold dates: as text, as the service would read them from JSON.
        return json.dumps(envelope, default=str).encode(), "application/json"


def forward_handlers() -> list[tuple[str, type]]:
    return [(f"/{API}/(.*)", ForwardHandler)]


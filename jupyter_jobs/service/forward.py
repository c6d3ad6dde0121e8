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
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jupyter_core.utils import ensure_async
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from ..client import RemoteClient
from ..errors import BackendUnavailable, JobsError, SpecError
from ..handlers import API, MAX_BODY_BYTES, JobsAPIHandler
from ..shipping import inputs_to_ship
from ..spec import load_json, load_spec_text

#: Headers of the service's answers passed on to the caller (those the API defines, and the body's).
PASSED_BACK = ("Content-Type", "Content-Disposition", "Location", "Retry-After", "Idempotent-Replayed",
               "X-Log-Offset", "X-Displays-Offset", "Cache-Control", "Last-Modified", "ETag")
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
        self._chunks: asyncio.Queue[bytes | None] | None = None
        self._buffer = bytearray()
        self._answer: asyncio.Future | None = None
        if self.request.method == "PUT":  # a blob: streamed to the service as it arrives
            self.request.connection.set_max_body_size(2**40)  # the service applies its own limit
            self._chunks = asyncio.Queue(_QUEUED_CHUNKS)
            self._answer = asyncio.ensure_future(self._forward(self._produce))

    async def data_received(self, chunk: bytes) -> None:
        if self._chunks is not None:
            await self._chunks.put(chunk)
        elif len(self._buffer) + len(chunk) > MAX_BODY_BYTES:
            raise web.HTTPError(413, f"request body is over {MAX_BODY_BYTES} bytes")
        else:
            self._buffer += chunk

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
            await self._chunks.put(None)
        else:
            body = bytes(self._buffer)
            if self.request.method == "POST" and self.path_args[0].strip("/") == "jobs":
                body = await self._with_uploads(body)
            self._answer = asyncio.ensure_future(self._forward(body))
        try:
            await self._answer
        except asyncio.CancelledError:
            pass

    get = post = put = delete = patch = _respond

    async def _forward(self, body: bytes | Any) -> None:
        path = self.path_args[0]
        query = self.request.query
        if self.request.method == "POST" and path.strip("/") == "jobs":
            query = urlencode([(k, v) for k, vs in self.request.query_arguments.items() if k != "base_dir"
                               for v in vs], doseq=True)
        url = f"{self.service_url}{API}/{path}" + (f"?{query}" if query else "")
        headers = {name: self.request.headers[name] for name in PASSED_ON if name in self.request.headers}
        if not callable(body):  # a body of ours (a submission may be rewritten): its length is tornado's to say
            headers.pop("Content-Length", None)
        headers["Authorization"] = f"token {self.service_token}"

        def on_header(line: str) -> None:
            line = line.rstrip("\r\n")
            if line.startswith("HTTP/"):
                self.set_status(int(line.split(" ", 2)[1]))
                return
            name, sep, value = line.partition(":")
            if sep and name.strip().lower() in {h.lower() for h in PASSED_BACK}:
                self.set_header(name.strip(), value.strip())

        def on_chunk(chunk: bytes) -> Any:
            self.write(chunk)
            return self.flush()  # awaited by tornado: the service is read only as fast as the caller reads

        request = HTTPRequest(
            url, method=self.request.method, headers=headers,
            body=None if callable(body) or self.request.method in ("GET", "HEAD", "DELETE") else body,
            body_producer=body if callable(body) else None,
            allow_nonstandard_methods=True, header_callback=on_header,
            streaming_callback=on_chunk,
            request_timeout=24 * 3600, connect_timeout=30, follow_redirects=False, decompress_response=False,
        )
        try:
            await AsyncHTTPClient().fetch(request, raise_error=False)
        except OSError as exc:
            raise BackendUnavailable(f"the jupyter-jobs service at {self.service_url} cannot be reached: {exc}; "
                                     "ask your JupyterHub's admin") from None
        self.finish()

    async def _with_uploads(self, raw: bytes) -> bytes:
        """A submission that names files on this server's disk, as one of uploaded blobs (see the module)."""
        kind = self.request.headers.get("Content-Type", "")
        try:
            body = load_spec_text(raw.decode("utf-8", "replace"), "body") if ("yaml" in kind or "text/plain" in kind) \
                else load_json(raw, "body", "")
        except JobsError:
            return raw  # the service says what is wrong with it
        envelope = body if isinstance(body, dict) and "spec" in body else {"spec": body}
        if envelope.get("files") is not None:
            return json.dumps(envelope).encode()
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
            return json.dumps(envelope).encode()  # not a spec: the service says why
        if not files:
            return json.dumps(envelope).encode()
        client = RemoteClient(self.service_url, self.service_token)
        envelope["files"] = await client.upload(files)
        self.request.headers["Content-Type"] = "application/json"
        return json.dumps(envelope).encode()


def forward_handlers() -> list[tuple[str, type]]:
    return [(f"/{API}/(.*)", ForwardHandler)]


"""Content-addressed uploads of the files a job ships."""
from __future__ import annotations

import asyncio

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from tornado import web

from ..blobs import Upload
from ..errors import SpecError, TooLarge, storage_error
from ..store import parse_id
from .base import JobsAPIHandler

#: How far past JobManager.max_input_bytes tornado lets an upload run before cutting it itself.
UPLOAD_SLACK = 16 * 1024 * 1024


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

"""A job's outputs: listed, one file at a time (ranges), or all as one archive."""
from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
import queue
import threading
import urllib.parse
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.iostream import StreamClosedError

from ..errors import SpecError
from ..jobdir import JobDir
from .base import JobsAPIHandler

#: Bytes of an output file read (off the event loop) and sent at a time.
OUTPUT_CHUNK = 1024 * 1024


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

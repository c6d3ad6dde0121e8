"""A job's log and displays, streamed from a byte offset."""
from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.iostream import StreamClosedError

from ..errors import SpecError
from ..store import parse_id
from .base import JobsAPIHandler


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

"""The change feed: a long-poll that answers with the jobs changed after a cursor (see :mod:`jupyter_jobs.changes`)."""
from __future__ import annotations

import asyncio

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..errors import SpecError
from .base import JobsAPIHandler

#: Longest a /changes request may wait for a change (seconds).
MAX_CHANGES_WAIT = 120


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

"""The change feed: which jobs changed since a cursor, for front ends that follow the list without polling it.

The store tells the feed of every committed write (``JobStore.listener``), from whichever thread wrote.
The feed keeps a bounded ring of the latest changes, each numbered; a cursor ``<epoch>-<n>`` names the
n-th change of this server's life (``epoch`` is random per life). ``GET /changes?cursor=C`` answers with
the jobs changed after ``C`` that the caller may see, waiting (long-poll) until there is one or the
timeout passes. A cursor of another life, or one older than the ring, answers ``reset``: the client
reloads what it shows.
"""
from __future__ import annotations

import asyncio
import re
import secrets
import threading
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from .errors import SpecError

#: Changes kept; a client further behind than this reloads everything.
RING = 10_000
#: How long a change waits for others of the same burst, so that one answer carries them all (seconds).
COALESCE = 0.03
_CURSOR = re.compile(r"^([0-9a-f]{1,32})-([0-9]{1,19})$")


class Change(NamedTuple):
    seq: int
    job_id: int
    owner: str
    group: str
    deleted: bool


class Answer(NamedTuple):
    cursor: str
    changes: list[Change]
    reset: bool

    def to_json(self) -> dict:
        return {"cursor": self.cursor, "changes": [{"id": c.job_id, "deleted": c.deleted} for c in self.changes],
                "reset": self.reset}


class ChangeFeed:
    """Numbered changes of jobs, and waiting for the next ones. :meth:`notify` may be called from any thread."""

    def __init__(self, size: int = RING, coalesce: float = COALESCE) -> None:
        self.epoch = secrets.token_hex(8)
        self.coalesce = coalesce
        self._lock = threading.Lock()
        self._ring: deque[Change] = deque(maxlen=size)
        self._seq = 0
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = set()

    # -- writers -------------------------------------------------------------------------------
    def notify(self, job_id: int, owner: str, group: str, deleted: bool = False) -> None:
        """Job ``job_id`` (``owner``'s, of ``group``) changed or, ``deleted``, is gone."""
        with self._lock:
            self._seq += 1
            self._ring.append(Change(self._seq, job_id, owner, group, deleted))
            waiters = list(self._waiters)
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_wake, future)
            except RuntimeError:  # that loop is closed: its waiter is gone with it
                pass

    # -- readers -------------------------------------------------------------------------------
    @property
    def cursor(self) -> str:
        with self._lock:
            return self._cursor(self._seq)

    @property
    def waiting(self) -> int:
        """How many callers wait now (for tests: a client that went away leaves none behind)."""
        with self._lock:
            return len(self._waiters)

    def _cursor(self, seq: int) -> str:
        return f"{self.epoch}-{seq}"

    def parse(self, cursor: str) -> int | None:
        """The change number of ``cursor``; None when it is of another server life or from the future (reset).
        A text that is no cursor at all: :class:`SpecError` naming ``cursor``."""
        found = _CURSOR.match(cursor)
        if found is None:
            raise SpecError(f"{cursor[:40]!r} is not a cursor; pass the cursor of a previous answer, or none "
                            "to start", "cursor")
        if found.group(1) != self.epoch:
            return None
        seq = int(found.group(2))
        with self._lock:
            return seq if seq <= self._seq else None

    def since(self, seq: int) -> tuple[int, list[Change]] | None:
        """The latest number and the changes after ``seq``, oldest first; None when the ring no longer
        holds them all (the caller is too far behind)."""
        with self._lock:
            oldest = self._ring[0].seq if self._ring else self._seq + 1
            if seq < oldest - 1:
                return None
            return self._seq, [c for c in self._ring if c.seq > seq]

    async def wait(self, cursor: str | None, timeout: float, sees: Callable[[Change], bool]) -> Answer:
        """The jobs changed after ``cursor`` that ``sees`` lets through, each once (its latest change),
        as soon as there is one (plus a moment for the rest of its burst), or none after ``timeout``
        seconds. No cursor: the current one at once, with no changes."""
        if cursor is None:
            return Answer(self.cursor, [], False)
        seq = self.parse(cursor)
        if seq is None:
            return Answer(self.cursor, [], True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            future = loop.create_future()
            entry = (loop, future)
            with self._lock:
                self._waiters.add(entry)
            try:
                found = self.since(seq)
                if found is None:
                    return Answer(self.cursor, [], True)
                head, changes = found
                if any(sees(c) for c in changes):
                    break
                seq = head  # nothing this caller may see: past it
                left = deadline - loop.time()
                if left <= 0:
                    return Answer(self._cursor(seq), [], False)
                try:
                    await asyncio.wait_for(future, left)
                except asyncio.TimeoutError:
                    pass
            finally:
                with self._lock:
                    self._waiters.discard(entry)
        await asyncio.sleep(self.coalesce)  # the rest of the burst
        found = self.since(seq)
        if found is None:
            return Answer(self.cursor, [], True)
        head, changes = found
        latest: dict[int, Change] = {}
        for change in changes:
            if sees(change):
                latest.pop(change.job_id, None)
                latest[change.job_id] = change
        return Answer(self._cursor(head), list(latest.values()), False)


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)

"""SQLite store of job records (WAL, versioned migrations, keyset pagination)."""
from __future__ import annotations

import base64
import json
import logging
import os
import re
import sqlite3
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple

from .errors import InvalidTransition, JobNotFound, SpecError
from .migrations import migrate
from .models import Allocation, JobRecord
from .rows import allocation_of, to_record
from .spec.parse import parse_duration
from .states import TERMINAL, JobStatus, check_transition

#: Columns ``update()`` may write, with their encoders.
_ENCODERS: dict[str, Any] = {
    "name": str, "message": str, "instance_type": str, "image": lambda v: v, "command": str,
    "exit_code": lambda v: v, "preparing_at": lambda v: v, "started_at": lambda v: v,
    "finished_at": lambda v: v, "attempt": int, "backend": str,
    "allocation": lambda v: json.dumps(asdict(v)), "handle": json.dumps,
    "cancel_requested": lambda v: int(bool(v)), "outputs": json.dumps, "environment": json.dumps,
    "queue_deadline": lambda v: v, "pinned": lambda v: int(bool(v)), "data_removed_at": lambda v: v,
}
MAX_PAGE = 500
#: Largest job id (SQLite's INTEGER is 64-bit); anything past it cannot name a job.
MAX_ID = 2**63 - 1
_ID_TEXT = re.compile(r"^[0-9]{1,19}$")
log = logging.getLogger("jupyter_jobs.store")
#: Told of every committed write: ``(job_id, owner, group, deleted)`` (see :attr:`JobStore.listener`).
Listener = Callable[[int, str, str, bool], None]


def parse_id(text: str) -> int | None:
    """A job id from user text (ASCII digits, within 64 bits), or None."""
    if not _ID_TEXT.match(text):
        return None
    value = int(text)
    return value if value <= MAX_ID else None


def _make_private(path: Path) -> None:
    """The database, and the WAL and shared-memory files beside it, readable by the server alone (0600):
    job specs hold their env vars. SQLite makes those two files with the database's mode."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            info = name.stat()
        except FileNotFoundError:
            continue
        if info.st_uid == os.geteuid() and info.st_mode & 0o077:
            os.chmod(name, info.st_mode & 0o700)


class QueueEntry(NamedTuple):
    id: int
    instance_type: str
    priority: int
    message: str
    owner: str = ""
    group: str = ""
    name: str = ""


class Holding(NamedTuple):
    """A job that holds resources now (Preparing or Running): what quotas count."""

    id: int
    name: str
    owner: str
    group: str
    allocation: Allocation
    #: When it started running (None while Preparing), and its max-runtime in seconds (None: none).
    started_at: float | None = None
    max_runtime: float | None = None


def _encode_cursor(job_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{job_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        job_id = parse_id(value)
        if kind != "id" or job_id is None:
            raise ValueError(kind)
        return job_id
    except (ValueError, UnicodeDecodeError):
        raise SpecError("not a cursor from this server; pass the next_cursor of a previous page", "cursor")


class JobStore:
    """All job records, in one SQLite file.

    Every write is a short transaction; status changes are compare-and-swap on the current
    status, so two writers can never both move a job out of the same state. After each committed
    write the :attr:`listener` (if any) is told which job changed, whose it is and whether it is
    gone (the change feed, ``changes.py``); it may be called from any thread that writes.
    """

    listener: Listener | None = None

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _make_private(self.path)
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        #: Held by every write: a statement from another thread never lands inside a transaction of ours.
        self._writing = threading.RLock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.execute("PRAGMA foreign_keys=ON")
        migrate(self._conn)

    def close(self) -> None:
        self._conn.close()

    # -- reading -------------------------------------------------------------------------
    def get(self, job_id: int) -> JobRecord:
        row = self._conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        return to_record(row)

    def find_idempotent(self, key: str) -> tuple[JobRecord, str | None] | None:
        row = self._conn.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (key,)).fetchone()
        return None if row is None else (to_record(row), row["request_hash"])

    def list(
        self,
        *,
        statuses: Iterable[JobStatus] = (),
        owner: str | None = None,
        text: str | None = None,
        labels: Iterable[tuple[str, str]] = (),
        cursor: str | None = None,
        limit: int = 50,
        group: str | None = None,
        visible_to: tuple[str, Iterable[str]] | None = None,
        schedule: int | None = None,
    ) -> tuple[list[JobRecord], str | None]:
        """One page of jobs, newest first, and the cursor of the next page (``None`` at the end).

        ``visible_to`` is ``(user, groups)``: only the jobs that user submitted or that belong to one of
        those groups (``None``: every job)."""
        if not 1 <= limit <= MAX_PAGE:
            raise SpecError(f"{limit} is out of range; use 1 to {MAX_PAGE}", "limit")
        where, params = [], []
        statuses = list(statuses)
        if statuses:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params += [s.value for s in statuses]
        if owner:
            where.append("owner = ?")
            params.append(owner)
        if group:
            where.append("group_name = ?")
            params.append(group)
        if schedule is not None:
            where.append("schedule_id = ?")
            params.append(schedule)
        if visible_to is not None:
            user, groups = visible_to[0], sorted(visible_to[1])
            where.append(f"(owner = ? OR group_name IN ({', '.join('?' * len(groups))}))" if groups else "owner = ?")
            params += [user, *groups]
        if text:
            pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append("(name LIKE ? ESCAPE '\\' OR command LIKE ? ESCAPE '\\' OR description LIKE ? ESCAPE '\\' "
                         "OR CAST(id AS TEXT) = ?)")
            params += [pattern, pattern, pattern, text]
        for key, value in labels:
            where.append("EXISTS (SELECT 1 FROM json_each(jobs.labels) WHERE key = ? AND CAST(value AS TEXT) = ?)")
            params += [key, value]
        if cursor:
            where.append("id < ?")
            params.append(_decode_cursor(cursor))
        sql = "SELECT * FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        rows = self._conn.execute(sql, [*params, limit + 1]).fetchall()
        records = [to_record(r) for r in rows[:limit]]
        next_cursor = _encode_cursor(records[-1].id) if len(rows) > limit else None
        return records, next_cursor

    def pending(self, limit: int = 1000) -> list[QueueEntry]:
        """The queue: pending jobs by priority, then submission order (only what scheduling needs)."""
        rows = self._conn.execute(
            "SELECT id, instance_type, priority, message, owner, group_name, name FROM jobs WHERE status = 'Pending' "
            "ORDER BY priority DESC, id LIMIT ?", (limit,)
        ).fetchall()
        return [QueueEntry(*row) for row in rows]

    def holding(self) -> list[Holding]:
        """The jobs holding resources (Preparing or Running), oldest first: what quotas are used by."""
        rows = self._conn.execute(
            "SELECT id, name, owner, group_name, allocation, started_at, CASE WHEN json_valid(spec) "
            "THEN json_extract(spec, '$.\"max-runtime\"') END AS max_runtime FROM jobs "
            "WHERE status IN ('Preparing', 'Running') ORDER BY id").fetchall()
        out = []
        for row in rows:
            try:
                allocation = allocation_of(json.loads(row["allocation"]))
            except (TypeError, ValueError, AttributeError):  # a damaged row holds nothing it can show
                allocation = Allocation()
            try:
                max_runtime = None if row["max_runtime"] is None else parse_duration(row["max_runtime"])
            except ValueError:
                max_runtime = None
            started = row["started_at"] if isinstance(row["started_at"], (int, float)) else None
            out.append(Holding(row["id"], row["name"], row["owner"], row["group_name"], allocation, started,
                               max_runtime))
        return out

    def queue_expired(self, now: float) -> list[int]:
        """Pending jobs past their queue deadline (``queue-timeout``), on their first attempt."""
        rows = self._conn.execute(
            "SELECT id FROM jobs WHERE status = 'Pending' AND queue_deadline IS NOT NULL AND queue_deadline <= ? "
            "AND attempt = 1 ORDER BY id", (now,)).fetchall()
        return [row[0] for row in rows]

    def next_queue_deadline(self) -> float | None:
        """The earliest queue deadline of a pending job, or None."""
        row = self._conn.execute(
            "SELECT MIN(queue_deadline) FROM jobs WHERE status = 'Pending' AND attempt = 1").fetchone()
        return row[0]

    def retention_candidates(self, finished_before: float) -> list[JobRecord]:
        """Ended, unpinned jobs that finished before ``finished_before``, oldest first (retention's pass).
        A job that ended with no end time (a damaged row) counts from its last update."""
        marks = ", ".join("?" * len(TERMINAL))
        rows = self._conn.execute(
            f"SELECT * FROM jobs WHERE status IN ({marks}) AND pinned = 0 "
            "AND COALESCE(finished_at, updated_at) < ? ORDER BY id",
            [*(s.value for s in TERMINAL), finished_before],
        ).fetchall()
        return [to_record(r) for r in rows]

    def active(self) -> list[JobRecord]:
        """Jobs that are not finished, oldest first."""
        marks = ", ".join("?" * len(TERMINAL))
        rows = self._conn.execute(
            f"SELECT * FROM jobs WHERE status NOT IN ({marks}) ORDER BY id", [s.value for s in TERMINAL]
        ).fetchall()
        return [to_record(r) for r in rows]

    # -- writing -------------------------------------------------------------------------
    def create(self, record: JobRecord, request_hash: str | None = None,
               before_commit: Callable[[int], None] | None = None) -> JobRecord:
        """Insert a new record (its ``id`` is ignored) and return it with its id. ``before_commit(id)`` runs
        inside the transaction, once the id is known: what it does (putting the job's files in place) is
        done whenever the record exists, and if it raises, the record is never written."""
        now = time.time()
        with self._writing:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                job_id = self._insert(record, request_hash, now)
                if before_commit is not None:
                    before_commit(job_id)
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            created = self.get(job_id)
        self._tell(job_id, created.owner, created.spec.group)
        return created

    def _insert(self, record: JobRecord, request_hash: str | None, now: float) -> int:
        cur = self._conn.execute(
            """INSERT INTO jobs (name, owner, status, message, instance_type, image, command, spec,
                   priority, created_at, attempt, rerun_of, backend, allocation, idempotency_key,
                   request_hash, updated_at, environment, description, labels, queue_deadline, warnings,
                   group_name, schedule_id)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                record.name, record.owner, record.status.value, record.message, record.instance_type,
                record.image, record.command, json.dumps(record.spec.to_dict()), record.spec.priority,
                record.created_at or now, record.attempt, record.rerun_of, record.backend,
                json.dumps(asdict(record.allocation)), record.idempotency_key, request_hash, now,
                json.dumps(record.environment), record.spec.desc, json.dumps(record.spec.labels),
                None if record.spec.queue_timeout is None else (record.created_at or now) + record.spec.queue_timeout,
                json.dumps(record.warnings), record.spec.group, record.schedule_id,
            ),
        )
        return int(cur.lastrowid)

    def update(self, job_id: int, **fields: Any) -> None:
        """Write the given columns (no status change)."""
        if fields:
            sets, params = self._assignments(fields)
            with self._writing:  # fetchall: the statement ends, so the write commits
                row = self._conn.execute(f"UPDATE jobs SET {sets} WHERE id = ? RETURNING owner, group_name",
                                         [*params, job_id]).fetchall()
            if not row:
                raise JobNotFound(job_id)
            self._tell(job_id, row[0][0], row[0][1])

    def set_messages(self, messages: dict[int, str]) -> None:
        """Write the messages of many pending jobs in one transaction (the pool's pending reasons); a
        message that is already the job's is not written again (nothing changed, nobody is told)."""
        if not messages:
            return
        now = time.time()
        changed = []
        with self._writing:
            self._conn.execute("BEGIN")
            try:
                for job_id, message in messages.items():
                    row = self._conn.execute(
                        "UPDATE jobs SET message = ?, updated_at = ? WHERE id = ? AND status = 'Pending' "
                        "AND message != ? RETURNING owner, group_name", (message, now, job_id, message)).fetchall()
                    if row:
                        changed.append((job_id, row[0][0], row[0][1]))
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        for job_id, owner, group in changed:
            self._tell(job_id, owner, group)

    def transition(self, job_id: int, new: JobStatus, **fields: Any) -> JobRecord:
        """Move a job to ``new`` (if the state machine allows it) and write ``fields`` with it."""
        current = self.get(job_id)
        check_transition(job_id, current.status, new)
        sets, params = self._assignments(fields)
        with self._writing:
            cur = self._conn.execute(
                f"UPDATE jobs SET status = ?, {sets} WHERE id = ? AND status = ?",
                [new.value, *params, job_id, current.status.value],
            )
        if cur.rowcount == 0:  # somebody else moved it first
            latest = self.get(job_id)
            raise InvalidTransition(f"job {job_id} is {latest.status.value} and cannot become {new.value}")
        moved = self.get(job_id)
        self._tell(job_id, moved.owner, moved.spec.group)
        return moved

    def reserve_ids_through(self, highest: int) -> bool:
        """Make the next new job's id larger than ``highest``; True when that changed anything."""
        row = self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM jobs").fetchone()
        seq = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'").fetchone()
        current = max(int(row[0]), int(seq[0]) if seq else 0)
        if highest <= current:
            return False
        if seq:
            self._conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'jobs'", (highest,))
        else:
            self._conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('jobs', ?)", (highest,))
        return True

    def delete(self, job_id: int) -> None:
        with self._writing:
            row = self._conn.execute("DELETE FROM jobs WHERE id = ? RETURNING owner, group_name",
                                     (job_id,)).fetchall()
        if row:
            self._tell(job_id, row[0][0], row[0][1], deleted=True)

    def _tell(self, job_id: int, owner: str, group: str | None, deleted: bool = False) -> None:
        """Tell the listener of a committed write; its failure never undoes or fails the write."""
        listener = self.listener
        if listener is None:
            return
        try:
            listener(job_id, owner or "", group or "", deleted)
        except Exception:
            log.exception("jupyter-jobs: the change listener failed on job %s", job_id)

    def _assignments(self, fields: dict[str, Any]) -> tuple[str, list[Any]]:
        unknown = set(fields) - set(_ENCODERS)
        if unknown:
            raise ValueError(f"not writable columns: {sorted(unknown)}")
        fields = {**fields, "updated_at": time.time()}
        names = [f"{name} = ?" for name in fields]
        values = [_ENCODERS.get(name, float)(value) for name, value in fields.items()]
        return ", ".join(names), values

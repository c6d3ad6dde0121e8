"""The ``schedules`` table (migration 5): a schedule's spec, files, cron and the state that outlives restarts."""
from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .errors import ScheduleNotFound

#: Columns ``update()`` may write, with their encoders.
_ENCODERS: dict[str, Any] = {
    "paused": lambda v: int(bool(v)), "last_fire_at": float, "last_job_id": lambda v: v,
    "last_skipped": lambda v: None if v is None else json.dumps(v), "history": json.dumps,
}


@dataclass
class Schedule:
    """A spec fired by a cron expression read in a time zone, and what happened at its fires."""

    id: int
    name: str
    owner: str
    group: str
    #: The native spec (as parsed at creation), submitted as it is at every fire.
    spec: dict[str, Any]
    cron: str
    timezone: str
    #: ``{path in the job: sha256}`` of the blobs every run gets, as a rerun gets its job's.
    files: dict[str, str] = field(default_factory=dict)
    #: What the creating client said of its Python, for a spec with ``env.python``.
    environment: dict[str, Any] | None = None
    #: ``skip``: a fire while a run of this schedule is still active is skipped; ``allow``: it runs.
    overlap: str = "skip"
    paused: bool = False
    created_at: float = 0.0
    #: The latest fire time dealt with (a run, a skip or a missed fire): nothing at or before it fires again.
    last_fire_at: float = 0.0
    last_job_id: int | None = None
    #: ``{at, reason}`` of the latest fire that started no run.
    last_skipped: dict[str, Any] | None = None
    #: The latest notes, oldest first: ``{at, job, note}``.
    history: list[dict[str, Any]] = field(default_factory=list)
    updated_at: float = 0.0


class ScheduleStore:
    """Schedules in the job database (its own connection; the JobStore applied the migrations)."""

    def __init__(self, path: str | Path) -> None:
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA busy_timeout=5000")

    def close(self) -> None:
        self._conn.close()

    def create(self, s: Schedule) -> Schedule:
        now = time.time()
        cur = self._conn.execute(
            """INSERT INTO schedules (name, owner, group_name, spec, files, environment, cron, timezone, overlap,
                   paused, created_at, last_fire_at, history, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '[]', ?)""",
            (s.name, s.owner, s.group, json.dumps(s.spec), json.dumps(s.files),
             None if s.environment is None else json.dumps(s.environment), s.cron, s.timezone, s.overlap,
             int(s.paused), s.created_at or now, s.last_fire_at or s.created_at or now, now),
        )
        return self.get(int(cur.lastrowid))

    def get(self, schedule_id: int) -> Schedule:
        row = self._conn.execute("SELECT * FROM schedules WHERE id = ?", (schedule_id,)).fetchone()
        if row is None:
            raise ScheduleNotFound(schedule_id)
        return _decode(row)

    def list(self, *, owner: str | None = None, visible_to: tuple[str, Iterable[str]] | None = None,
             active_only: bool = False) -> list[Schedule]:
        """Schedules, oldest first; ``visible_to`` (``(user, groups)``) as for jobs; ``active_only``: not paused."""
        where, params = [], []
        if owner:
            where.append("owner = ?")
            params.append(owner)
        if visible_to is not None:
            user, groups = visible_to[0], sorted(visible_to[1])
            where.append(f"(owner = ? OR group_name IN ({', '.join('?' * len(groups))}))" if groups else "owner = ?")
            params += [user, *groups]
        if active_only:
            where.append("paused = 0")
        sql = "SELECT * FROM schedules" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        return [_decode(row) for row in self._conn.execute(sql, params).fetchall()]

    def update(self, schedule_id: int, **fields: Any) -> Schedule:
        unknown = set(fields) - set(_ENCODERS)
        if unknown:
            raise ValueError(f"not writable columns: {sorted(unknown)}")
        sets = ", ".join(f"{name} = ?" for name in fields)
        values = [_ENCODERS[name](value) for name, value in fields.items()]
        cur = self._conn.execute(f"UPDATE schedules SET {sets}, updated_at = ? WHERE id = ?",
                                 [*values, time.time(), schedule_id])
        if cur.rowcount == 0:
            raise ScheduleNotFound(schedule_id)
        return self.get(schedule_id)

    def delete(self, schedule_id: int) -> None:
        self._conn.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,))


def _decode(row: sqlite3.Row) -> Schedule:
    return Schedule(
        id=row["id"], name=row["name"], owner=row["owner"], group=row["group_name"], spec=json.loads(row["spec"]),
        cron=row["cron"], timezone=row["timezone"], files=json.loads(row["files"] or "{}"),
        environment=json.loads(row["environment"]) if row["environment"] else None, overlap=row["overlap"],
        paused=bool(row["paused"]), created_at=row["created_at"], last_fire_at=row["last_fire_at"],
        last_job_id=row["last_job_id"], last_skipped=json.loads(row["last_skipped"]) if row["last_skipped"] else None,
        history=json.loads(row["history"] or "[]"), updated_at=row["updated_at"],
    )

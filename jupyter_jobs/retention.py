"""Retention: what of a finished job is removed when, and never anything of a job still going.

PrimeHub keeps a job's record for 7 days and then lists it without logs; DataSphere removes a job's
data after its TTL (14 days by default). Two settings, both "keep" by default (docs/operators.md)::

    c.Retention.data_days = 7      # a finished job's log, displays, outputs and working dir go after 7 days
    c.Retention.record_days = 90   # the job itself (record and folder) goes after 90 days

Days count from when the job ended. What goes:

- **data** (``data_days``): ``job.log``, ``displays.jsonl``, ``outputs/`` and ``code/`` (the working
  dir). The record stays, listed and shown, with ``data_removed_at``; its log, displays and outputs
  answer **410 Gone**, saying when and why. ``run/`` stays (the manifest of what the job was
  shipped, so it can still be rerun while its files are in the blob store).
- **record** (``record_days``): the job, as ``jupyter jobs delete`` removes it.

Never touched: a job that has not ended (Pending, Preparing, Running: checked when the candidates are
read and again just before each removal), and a **pinned** job (``jupyter jobs pin ID``,
``POST /jobs/{id}/pin``) until it is unpinned. A pass runs when the server starts and then every
``Retention.interval_seconds``; ``jupyter jobs gc [--dry-run]`` (``POST /gc``) runs one now, or
only says what it would remove. Each decision takes ``now`` as an argument, so tests (and the
dry run) can ask about any moment.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from traitlets import Float
from traitlets.config import LoggingConfigurable

from .errors import Gone, JobNotFound
from .jobdir import JobDir
from .models import JobRecord
from .store import JobStore

DAY = 86400.0


@dataclass(frozen=True)
class Removal:
    """One thing a pass removes: a job's ``data``, or its ``record`` (and with it everything)."""

    id: int
    name: str
    owner: str
    what: str
    finished_at: float
    expired_at: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def ended_at(job: JobRecord) -> float:
    """When a job ended: its end time, else (a damaged row) its last update."""
    return job.finished_at if job.finished_at is not None else job.updated_at


class Retention(LoggingConfigurable):
    """Removes finished jobs' data after ``data_days`` and their records after ``record_days``."""

    data_days = Float(
        0.0, min=0.0, config=True,
        help="Days after a job ends when its log, displays, outputs and working dir are removed (the record "
        "stays, listed without them). 0: keep them. Pinned jobs are kept.",
    )
    record_days = Float(
        0.0, min=0.0, config=True,
        help="Days after a job ends when the job itself (record and folder) is removed. 0: keep it. "
        "Pinned jobs are kept.",
    )
    interval_seconds = Float(
        3600.0, min=0.1, config=True,
        help="Seconds between two retention passes of the server (one also runs at start).",
    )

    def setup(self, store: JobStore, jobs_dir: Path, notify: Callable[[int], None]) -> None:
        self.store, self.jobs_dir, self.notify = store, jobs_dir, notify

    # -- decisions ---------------------------------------------------------------------------
    def data_expires_at(self, job: JobRecord) -> float | None:
        """When the job's data will be removed; None when it never will (kept, pinned, not ended, gone already)."""
        if not self.data_days or job.pinned or job.data_removed_at is not None or not job.status.is_terminal():
            return None
        expires = ended_at(job) + self.data_days * DAY
        record = self.record_expires_at(job)
        return expires if record is None else min(expires, record)

    def record_expires_at(self, job: JobRecord) -> float | None:
        """When the job itself will be removed; None when it never will."""
        if not self.record_days or job.pinned or not job.status.is_terminal():
            return None
        return ended_at(job) + self.record_days * DAY

    def decide(self, job: JobRecord, now: float) -> Removal | None:
        """What a pass at ``now`` removes of ``job``: nothing, its data, or its record."""
        for what, expires in (("record", self.record_expires_at(job)), ("data", self.data_expires_at(job))):
            if expires is not None and now >= expires:
                return Removal(job.id, job.name, job.owner, what, ended_at(job), expires)
        return None

    def job_fields(self, job: JobRecord) -> dict[str, float | None]:
        """The expiry fields of a job's REST shape (``pinned`` and ``data_removed_at`` are its record's)."""
        return {"data_expires_at": self.data_expires_at(job), "record_expires_at": self.record_expires_at(job)}

    def check_data(self, job: JobRecord) -> None:
        """Nothing while the job's data is there; :class:`Gone` (410) saying when and why once removed."""
        if job.data_removed_at is None:
            return
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(job.data_removed_at))
        raise Gone(f"the log, displays and outputs of job {job.id} were removed on {when} by the server's retention "
                   "(Retention.data_days); its record is kept. Pin a job (jupyter jobs pin ID) to keep its data.")

    def plan(self, now: float) -> list[Removal]:
        """What a pass at ``now`` removes, oldest job first."""
        days = [d for d in (self.data_days, self.record_days) if d]
        if not days:
            return []
        candidates = self.store.retention_candidates(now - min(days) * DAY)
        return [r for r in (self.decide(job, now) for job in candidates) if r is not None]

    # -- passes ------------------------------------------------------------------------------
    async def collect(self, now: float | None = None, dry_run: bool = False) -> dict[str, Any]:
        """One pass: remove what has expired at ``now`` (default: the clock), or with ``dry_run`` only say
        what would go. The report lists ``data_removed`` and ``records_removed``."""
        now = time.time() if now is None else now
        done: list[Removal] = []
        for removal in self.plan(now):
            if dry_run:
                done.append(removal)
            elif await self._carry_out(removal, now):
                done.append(removal)
        if done and not dry_run:
            self.log.info("jupyter-jobs retention: removed the data of %d job(s) and %d job record(s)",
                          sum(r.what == "data" for r in done), sum(r.what == "record" for r in done))
        return {
            "dry_run": dry_run, "now": now, "data_days": self.data_days or None, "record_days": self.record_days or None,
            "data_removed": [r.to_json() for r in done if r.what == "data"],
            "records_removed": [r.to_json() for r in done if r.what == "record"],
        }

    async def _carry_out(self, removal: Removal, now: float) -> bool:
        """Remove it if, read again now, it still should go (pinned or changed since: kept)."""
        try:
            job = self.store.get(removal.id)
        except JobNotFound:
            return False  # deleted meanwhile
        again = self.decide(job, now)
        if again is None or again.what != removal.what:
            return False
        folder = JobDir(self.jobs_dir / str(job.id))
        if removal.what == "record":
            self.store.delete(job.id)
            await asyncio.to_thread(folder.remove)
        else:
            await asyncio.to_thread(remove_data, folder)
            self.store.update(job.id, data_removed_at=now)
        self.notify(job.id)
        return True

    async def run_periodically(self) -> None:
        """A pass now and then every ``interval_seconds``, until cancelled; a failing pass is logged, not fatal."""
        while True:
            if self.data_days or self.record_days:
                try:
                    await self.collect()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.log.exception("jupyter-jobs retention: a pass failed; the next one is in %ss",
                                       self.interval_seconds)
            await asyncio.sleep(self.interval_seconds)

    def describe(self) -> dict[str, Any]:
        """What ``GET /config`` says of retention."""
        return {"data_days": self.data_days or None, "record_days": self.record_days or None}


def remove_data(folder: JobDir) -> None:
    """A job's log, displays, outputs and working dir (``run/`` stays). Links are removed, never followed."""
    for stream in (folder.log, folder.displays):
        stream.unlink(missing_ok=True)
    for tree in (folder.outputs, folder.code):
        if tree.is_symlink():
            tree.unlink()
        elif tree.exists():
            JobDir(tree).remove()  # no link followed, any depth

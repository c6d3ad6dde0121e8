"""Schedules: a spec (with the files every run gets) fired by a cron expression in an explicit time zone.

Each fire submits an ordinary job through :meth:`JobManager.submit`, recording the schedule on it. The
policies a user expects of cron, decided in one pure function, :func:`plan`:

- **catch-up**: fires that passed while the server was down (older than ``Schedules.grace_seconds`` when it
  looks) start ONE run for all of them, which says so in its log (``Schedules.catch_up = "one"``), or none
  (``"none"``, noted in the schedule's history);
- **no overlap** (a schedule's ``overlap: skip``, the default): a fire while the schedule's previous run is
  still active starts nothing, and ``last_skipped`` says why;
- the next fire times are computed by croniter (``next_runs`` of the schedule's JSON).

The loop sleeps until the earliest next fire of all schedules (or a change: create, resume, delete); its
clock and sleep are attributes, so the policy is tested with a fake clock. Its state is the database's
(``last_fire_at``), so schedules survive restarts; each fire's submission carries an idempotency key made
of the schedule and the fire time, so a server killed between submitting and recording never runs it twice.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter
from traitlets import CaselessStrEnum, Float, Int, Unicode, default
from traitlets.config import LoggingConfigurable

from .access import Access
from .errors import JobsError, ScheduleError, ScheduleNotFound, SpecError
from .jobdir import STAGING_PREFIX, JobDir, copy_inputs, measure_inputs
from .schedule_store import Schedule, ScheduleStore
from .spec import check_manifest
from .spec.foreign import to_native
from .spec.limits import check_short_text
from .states import JobStatus

#: Most missed fires counted one by one (a per-second cron over a week's downtime is not walked).
MAX_COUNTED = 1000
OVERLAP = ("skip", "allow")


# -- cron and time zones (pure) ------------------------------------------------------------------
def check_cron(expr: Any) -> str:
    """``expr`` if croniter reads it (5 fields, or 6 with seconds last, or ``@daily``) and it ever fires."""
    if not isinstance(expr, str) or not expr.strip() or len(expr) > 200:
        raise ScheduleError('expected a cron expression such as "0 3 * * *" (minute hour day month weekday)', "cron")
    expr = " ".join(expr.split())
    if not croniter.is_valid(expr):
        raise ScheduleError(f"{expr!r} is not a cron expression; use 5 fields (minute hour day month weekday), "
                            'e.g. "0 3 * * *", or 6 with seconds last', "cron")
    try:
        croniter(expr, datetime.now(ZoneInfo("UTC"))).get_next(float)
    except (CroniterError, ValueError) as exc:
        raise ScheduleError(f"{expr!r} never fires ({exc})", "cron") from None
    return expr


def check_timezone(name: Any) -> str:
    """``name`` if it is an IANA time zone this machine knows (``Europe/Paris``, ``UTC``)."""
    if not isinstance(name, str) or not name or len(name) > 100:
        raise ScheduleError('expected an IANA time zone name such as "Europe/Paris" or "UTC"', "timezone")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(f"{name!r} is not an IANA time zone this server knows; use a name such as "
                            '"Europe/Paris" or "UTC"', "timezone") from None
    return name


def local_timezone() -> str:
    """The IANA name of this machine's zone ($TZ, /etc/timezone, the /etc/localtime link), else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text().strip())
    with contextlib.suppress(OSError):
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    for name in candidates:
        with contextlib.suppress(ScheduleError):
            return check_timezone(name)
    return "UTC"


def _at(epoch: float, tz: str) -> datetime:
    return datetime.fromtimestamp(epoch, ZoneInfo(tz))


def next_runs(cron: str, tz: str, after: float, count: int) -> list[float]:
    """The first ``count`` fire times strictly after ``after`` (epoch seconds)."""
    it = croniter(cron, _at(after, tz))
    return [it.get_next(float) for _ in range(count)]


def due_fires(cron: str, tz: str, after: float, now: float) -> tuple[int, float | None]:
    """How many fires fall in ``(after, now]`` (at most :data:`MAX_COUNTED`) and the latest of them."""
    it = croniter(cron, _at(after, tz))
    count = 0
    while count < MAX_COUNTED:
        if it.get_next(float) > now:
            break
        count += 1
    if not count:
        return 0, None
    # The latest fire at or before now: croniter's get_prev from just past it (it is strictly before its start).
    return count, croniter(cron, _at(now + 0.001, tz)).get_prev(float)


def iso(epoch: float, tz: str) -> str:
    return _at(epoch, tz).isoformat()


@dataclass(frozen=True)
class Plan:
    """What to do with one schedule at ``now``."""

    #: The latest due fire time (None: nothing is due); it becomes the schedule's ``last_fire_at``.
    fire_at: float | None
    run: bool = False
    #: Why this run (a catch-up says so in its log) or why no run (the history note).
    note: str = ""
    #: The first fire time after now: when to look again.
    next_at: float | None = None


def plan(s: Schedule, now: float, *, active_job: int | None, catch_up: str, grace: float) -> Plan:
    """The policy: catch-up of fires missed while the server was down, and overlap with an active run."""
    next_at = next_runs(s.cron, s.timezone, max(now, s.last_fire_at), 1)[0]
    count, latest = due_fires(s.cron, s.timezone, s.last_fire_at, now)
    if latest is None:
        return Plan(None, next_at=next_at)
    on_time = now - latest <= grace
    missed = count - 1 if on_time else count
    many = f"{missed}{'+' if count >= MAX_COUNTED else ''} fire{'s' * (missed != 1)}"
    if missed and not on_time and catch_up == "none":
        return Plan(latest, note=f"missed {many} while the server was not running (the last at "
                    f"{iso(latest, s.timezone)}); no catch-up run (Schedules.catch_up = 'none')", next_at=next_at)
    if missed and catch_up == "one":
        note = (f"catch-up run for {many} missed while the server was not running (the last due at "
                f"{iso(latest, s.timezone)}): one run for all of them")
    else:
        note = f"fire at {iso(latest, s.timezone)}"
        if missed:  # catch_up == "none", but this fire is on time: it runs, the missed ones do not
            note += f" (missed {many} before it: no catch-up run, Schedules.catch_up = 'none')"
    if active_job is not None and s.overlap == "skip":
        return Plan(latest, note=f"skipped the fire at {iso(latest, s.timezone)}: job {active_job} of this "
                    "schedule is still active (overlap: skip)", next_at=next_at)
    return Plan(latest, run=True, note=note, next_at=next_at)


async def _sleep(delay: float, wake: asyncio.Event) -> None:
    """Sleep ``delay`` seconds, or until ``wake`` is set (a schedule changed)."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(wake.wait(), delay)


class Schedules(LoggingConfigurable):
    """Creates, lists and fires schedules; the JobManager starts and stops its loop."""

    catch_up = CaselessStrEnum(
        ["one", "none"], "one", config=True,
        help="Fires missed while the server was not running: 'one' starts one run for all of them (its log "
        "says so), 'none' starts none (the schedule's history says so).",
    )
    grace_seconds = Float(
        60.0, config=True,
        help="A fire found due at most this many seconds late runs as on time; older ones count as missed "
        "(the server was down) and follow catch_up.",
    )
    max_sleep_seconds = Float(
        300.0, config=True,
        help="Longest the loop sleeps between looks, in seconds: a guard against the wall clock being set "
        "(the loop sleeps on a monotonic clock); it otherwise wakes at the next fire time.",
    )
    default_timezone = Unicode(
        config=True, help="Time zone of a schedule created without one (default: this machine's, e.g. 'UTC').")
    next_count = Int(5, config=True, help="How many next fire times a schedule's JSON shows (next_runs).")
    history_size = Int(20, config=True, help="How many notes (runs, skips, missed fires) a schedule keeps.")

    @default("default_timezone")
    def _default_timezone(self) -> str:
        return local_timezone()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: The clock (epoch seconds) and the sleep of the loop: tests put fakes here.
        self.clock: Callable[[], float] = time.time
        self.sleep: Callable[[float, asyncio.Event], Awaitable[None]] = _sleep
        self.manager: Any = None
        #: False in a manager that is not a server (the CLI's embedded one): it keeps schedules but fires none.
        self.firing = True
        self.store: ScheduleStore | None = None
        self._changed: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    def setup(self, manager: Any) -> None:
        self.manager = manager
        self.store = ScheduleStore(manager.db_path)

    # -- create, show, act ---------------------------------------------------------------------
    async def create(self, body: Any, *, owner: str, access: Access | None = None) -> Schedule:
        """A schedule from ``{spec, cron, timezone?, files?, base_dir?, environment?, name?, overlap?}``."""
        if not isinstance(body, Mapping) or "spec" not in body:
            raise SpecError('expected {"spec": {...}, "cron": "0 3 * * *", "timezone": "Europe/Paris"}', "body")
        unknown = sorted(set(body) - {"spec", "cron", "timezone", "files", "base_dir", "environment", "name", "overlap"})
        if unknown:
            raise SpecError(f"unknown key {unknown[0]!r}; a schedule has spec, cron, timezone, files, base_dir, "
                            "environment, name, overlap", "body")
        cron = check_cron(body.get("cron"))
        tz = check_timezone(body.get("timezone") or self.default_timezone)
        overlap = body.get("overlap") or "skip"
        if overlap not in OVERLAP:
            raise ScheduleError(f"{str(overlap)[:40]!r}: use 'skip' (a fire while a run is active starts nothing) "
                                "or 'allow'", "overlap")
        environment = body.get("environment")
        if environment is not None and not isinstance(environment, Mapping):
            raise SpecError("must be a mapping with lock, interpreter and wheels", "environment")
        check_short_text(body.get("base_dir"), "base_dir")
        translation = await asyncio.to_thread(to_native, body["spec"], self.manager.cluster.site())
        spec = await asyncio.to_thread(translation.parse)
        access = access or Access(owner)
        from .manager import server_user

        spec = replace(spec, group=access.job_group(spec.group, server_user=server_user()))
        name = body.get("name") or spec.name
        check_short_text(name, "name")
        files = await self._files(spec, body.get("files"), body.get("base_dir"))
        schedule = self.store.create(Schedule(
            id=0, name=name, owner=owner, group=spec.group, spec=spec.to_dict(), cron=cron, timezone=tz,
            files=files, environment=dict(environment) if environment is not None else None, overlap=overlap,
            created_at=self.clock(),
        ))
        self._wake()
        return schedule

    async def _files(self, spec: Any, files: Any, base_dir: str | None) -> dict[str, str]:
        """The manifest every run gets: the uploaded one (its blobs must be here), else the spec's inputs read
        now from ``base_dir``, kept as blobs (a schedule runs what it was given, as a rerun does)."""
        manager = self.manager
        if files is not None:
            files = await asyncio.to_thread(check_manifest, files)
            absent = sorted(path for path, digest in files.items() if not manager.blobs.has(digest))
            if absent:
                raise SpecError(f"{absent[0]!r} was not uploaded (PUT /blobs/{{sha256}} first)", "files")
            names = set(files)
            for index, item in enumerate(spec.inputs):
                if item.path not in names and not any(n.startswith(item.path + "/") for n in names):
                    raise SpecError(f"{item.path!r} is not among the uploaded files", f"inputs[{index}].path")
            return files
        if not spec.inputs:
            return {}
        if not manager.read_server_files:
            raise SpecError("this jupyter-jobs service reads no one's files: upload them (jupyter jobs schedule "
                            "create does), or leave inputs out", "inputs")
        base = manager.resolve_base_dir(base_dir)
        entries = [(f"inputs[{i}].path", item.path) for i, item in enumerate(spec.inputs)]
        return await asyncio.to_thread(self._keep_inputs, base, entries)

    def _keep_inputs(self, base: Path, entries: list[tuple[str, str]]) -> dict[str, str]:
        measure_inputs(base, entries, self.manager.max_input_bytes)
        with tempfile.TemporaryDirectory(prefix=STAGING_PREFIX, dir=self.manager.jobs_dir) as tmp:
            copy_inputs(base, [path for _, path in entries], Path(tmp))
            manifest: dict[str, str] = {}
            for path in sorted(Path(tmp).rglob("*")):
                if path.is_symlink() or (not path.is_file() and not path.is_dir()):
                    raise SpecError(f"{path.relative_to(tmp)} is a link or a special file; a schedule keeps "
                                    "regular files only", "inputs")
                if path.is_file():
                    manifest[path.relative_to(tmp).as_posix()] = self.manager.blobs.add_file(path)
            return manifest

    def get(self, schedule_id: int) -> Schedule:
        return self.store.get(schedule_id)

    def list(self, *, owner: str | None = None, visible_to: Any = None) -> list[Schedule]:
        return self.store.list(owner=owner, visible_to=visible_to)

    def pause(self, schedule_id: int) -> Schedule:
        return self.store.update(schedule_id, paused=True)

    def resume(self, schedule_id: int) -> Schedule:
        """Fires from now on; those that fell while it was paused were not wanted, so none catches up."""
        schedule = self.store.get(schedule_id)
        if not schedule.paused:
            return schedule
        schedule = self.store.update(schedule_id, paused=False, last_fire_at=max(self.clock(), schedule.last_fire_at))
        self._wake()
        return schedule

    def delete(self, schedule_id: int) -> None:
        """Remove the schedule; its jobs stay (with their ``schedule_id``), an active run keeps running."""
        self.store.get(schedule_id)
        self.store.delete(schedule_id)
        self._wake()

    async def run_now(self, schedule_id: int, by: str) -> Any:
        """Submit a run now, outside the cron (no overlap check: it was asked for); the job."""
        schedule = self.store.get(schedule_id)
        job = await self._submit(schedule, f"run now by {by}, outside the schedule", key=None)
        self._note(schedule, self.clock(), job.id, f"run now by {by}: job {job.id}")
        return job

    def to_json(self, s: Schedule) -> dict[str, Any]:
        """The REST shape of a schedule."""
        upcoming = [] if s.paused else next_runs(s.cron, s.timezone, max(self.clock(), s.last_fire_at), self.next_count)
        return {
            "id": s.id, "name": s.name, "owner": s.owner, "group": s.group, "cron": s.cron, "timezone": s.timezone,
            "overlap": s.overlap, "paused": s.paused, "created_at": s.created_at, "updated_at": s.updated_at,
            "last_fire_at": s.last_fire_at, "last_job_id": s.last_job_id, "last_skipped": s.last_skipped,
            "next_runs": [iso(t, s.timezone) for t in upcoming], "history": s.history,
            "spec": s.spec, "files": s.files,
        }

    # -- the loop --------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None and self.firing:
            self._changed = asyncio.Event()
            self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.store is not None:
            self.store.close()
            self.store = None

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def _loop(self) -> None:
        assert self._changed is not None
        while True:
            self._changed.clear()  # before looking: a change made while we look wakes the next sleep
            try:
                wake_at = await self.tick()
            except Exception:  # a surprise must not end the schedules silently: look again later
                self.log.exception("jupyter-jobs: the schedules could not be looked at")
                wake_at = None
            delay = self.max_sleep_seconds if wake_at is None else max(0.0, wake_at - self.clock())
            await self.sleep(min(delay, self.max_sleep_seconds), self._changed)

    async def tick(self) -> float | None:
        """Fire every due schedule (at ``self.clock()``); the earliest next fire time, or None."""
        assert self.store is not None
        earliest = None
        for schedule in self.store.list(active_only=True):
            next_at = await self._step(schedule, self.clock())
            if next_at is not None and (earliest is None or next_at < earliest):
                earliest = next_at
        return earliest

    async def _step(self, s: Schedule, now: float) -> float | None:
        try:
            decision = plan(s, now, active_job=self._active_job(s), catch_up=self.catch_up, grace=self.grace_seconds)
        except (CroniterError, ValueError, KeyError) as exc:  # an expression this croniter reads no more
            self.log.error("jupyter-jobs: schedule %d cannot be fired: %s", s.id, exc)
            return None
        if decision.fire_at is None:
            return decision.next_at
        job_id, note = None, decision.note
        if decision.run:
            key = f"schedule {s.id} fire {decision.fire_at:.0f}"
            try:
                job_id = (await self._submit(s, decision.note, key)).id
                note = f"{note}: job {job_id}"
            except JobsError as exc:
                note = f"{note}: no run, the job could not be submitted: {exc.message}"
        with contextlib.suppress(ScheduleNotFound):  # deleted while its run was being submitted
            self._note(s, decision.fire_at, job_id, note, last_fire_at=decision.fire_at)
        return decision.next_at

    def _active_job(self, s: Schedule) -> int | None:
        active = [x for x in JobStatus if not x.is_terminal()]
        jobs, _ = self.manager.store.list(statuses=active, schedule=s.id, limit=1)
        return jobs[0].id if jobs else None

    async def _submit(self, s: Schedule, note: str, key: str | None) -> Any:
        access = Access(s.owner, groups=frozenset({s.group}) if s.group else frozenset())
        job, created = await self.manager.submit(
            s.spec, owner=s.owner, files=s.files, environment=s.environment, access=access,
            idempotency_key=key, schedule_id=s.id)
        if created:
            JobDir(self.manager.jobs_dir / str(job.id)).say(f"schedule {s.id} {s.name!r}: {note}")
        return job

    def _note(self, s: Schedule, at: float, job_id: int | None, note: str, **fields: Any) -> None:
        history = [*s.history, {"at": at, "job": job_id, "note": note}][-self.history_size:]
        if job_id is None:
            fields["last_skipped"] = {"at": at, "reason": note}
        else:
            fields["last_job_id"] = job_id
        self.store.update(s.id, history=history, **fields)

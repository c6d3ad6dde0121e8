"""The schedule policies (catch-up, overlap, next fire times) and the loop's sleeping, on a fake clock."""
from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from jupyter_jobs.errors import ScheduleError
from jupyter_jobs.schedule_store import Schedule
from jupyter_jobs.schedules import Schedules, check_cron, check_timezone, due_fires, next_runs, plan

UTC = ZoneInfo("UTC")


def at(hour: int, minute: int = 0, second: int = 0, day: int = 2, tz: ZoneInfo = UTC) -> float:
    return datetime(2026, 12, day, hour, minute, second, tzinfo=tz).timestamp()


def schedule(cron: str = "0 3 * * *", tz: str = "UTC", last: float = 0.0, overlap: str = "skip") -> Schedule:
    return Schedule(id=7, name="nightly", owner="ann", group="", spec={"cmd": "true"}, cron=cron, timezone=tz,
                    overlap=overlap, last_fire_at=last or at(0))


def test_nothing_due_says_when_next():
    decision = plan(schedule(), at(2, 59), active_job=None, catch_up="one", grace=60)
    assert decision.fire_at is None and not decision.run
    assert decision.next_at == at(3)


def test_a_fire_on_time_runs():
    decision = plan(schedule(), at(3, 0, 2), active_job=None, catch_up="one", grace=60)
    assert decision.run and decision.fire_at == at(3)
    assert "catch-up" not in decision.note
    assert decision.next_at == at(3, day=3)


def test_missed_fires_catch_up_once():
    # The server was down from day 2 00:00 to day 5 10:00: four 03:00 fires missed, one run for all.
    s = schedule()
    decision = plan(s, at(10, day=5), active_job=None, catch_up="one", grace=60)
    assert decision.run and decision.fire_at == at(3, day=5)
    assert "catch-up run for 4 fires missed" in decision.note and "one run for all" in decision.note
    s.last_fire_at = decision.fire_at  # recorded: nothing more is due until the next 03:00
    assert plan(s, at(10, 1, day=5), active_job=None, catch_up="one", grace=60).fire_at is None


def test_missed_fires_with_catch_up_none_start_nothing():
    decision = plan(schedule(), at(10, day=5), active_job=None, catch_up="none", grace=60)
    assert not decision.run and decision.fire_at == at(3, day=5)
    assert "missed 4 fires" in decision.note and "catch_up = 'none'" in decision.note


def test_a_late_single_fire_counts_as_missed():
    decision = plan(schedule(), at(3, 5), active_job=None, catch_up="none", grace=60)
    assert not decision.run and "missed 1 fire " in decision.note


def test_overlap_skips_while_a_run_is_active_and_says_why():
    decision = plan(schedule(), at(3, 0, 1), active_job=41, catch_up="one", grace=60)
    assert not decision.run and decision.fire_at == at(3)
    assert "job 41 of this schedule is still active" in decision.note
    allowed = plan(schedule(overlap="allow"), at(3, 0, 1), active_job=41, catch_up="one", grace=60)
    assert allowed.run


def test_time_zone_is_the_schedules_own():
    paris = ZoneInfo("Europe/Paris")
    s = schedule(tz="Europe/Paris")
    assert next_runs(s.cron, s.timezone, at(0), 2) == [at(3, tz=paris), at(3, day=3, tz=paris)]
    assert next_runs(s.cron, s.timezone, at(0), 1)[0] == at(2)  # 03:00 in Paris is 02:00 UTC in December


def test_seconds_field_and_counting():
    count, latest = due_fires("* * * * * */10", "UTC", at(3), at(3, 0, 35))
    assert (count, latest) == (3, at(3, 0, 30))


def test_bad_cron_and_timezone_name_the_field():
    for bad in ("", "0 3 * *", "61 * * * *", "every day", 5):
        with pytest.raises(ScheduleError) as info:
            check_cron(bad)
        assert info.value.problems[0].field == "cron"
    with pytest.raises(ScheduleError, match="never fires"):
        check_cron("0 0 31 2 *")
    for bad in ("Mars/Olympus", "../etc/passwd", "", None):
        with pytest.raises(ScheduleError) as info:
            check_timezone(bad)
        assert info.value.problems[0].field == "timezone"
    assert check_cron(" 0  3 * * * ") == "0 3 * * *"


class FakeStore:
    def __init__(self, schedules: list[Schedule]) -> None:
        self.schedules = schedules
        self.updates: list[dict] = []

    def list(self, active_only: bool = False, **_):
        return [s for s in self.schedules if not (active_only and s.paused)]

    def update(self, schedule_id: int, **fields):
        self.updates.append(fields)
        for s in self.schedules:
            if s.id == schedule_id:
                for name, value in fields.items():
                    setattr(s, name, value)


def test_the_loop_sleeps_until_the_next_fire_and_fires_on_the_fake_clock():
    now = [at(2, 59, 30)]
    slept: list[float] = []
    fired: list[tuple[int, str]] = []
    s = schedule()
    service = Schedules()
    service.store = FakeStore([s])
    service.clock = lambda: now[0]
    service._active_job = lambda _s: None

    async def submit(sched, note, key):
        fired.append((sched.id, key))
        return type("Job", (), {"id": 100 + len(fired)})()

    service._submit = submit

    async def sleep(delay, _event):
        slept.append(delay)
        now[0] += delay
        if len(slept) == 3:
            raise asyncio.CancelledError

    service.sleep = sleep

    async def main():
        service._changed = asyncio.Event()
        with pytest.raises(asyncio.CancelledError):
            await service._loop()

    service.max_sleep_seconds = 1e9
    asyncio.run(main())
    assert slept == [30.0, 86400.0, 86400.0]  # wakes at each fire time: no polling in between
    assert fired == [(7, f"schedule 7 fire {at(3):.0f}"), (7, f"schedule 7 fire {at(3, day=3):.0f}")]
    assert s.last_fire_at == at(3, day=3) and s.last_job_id == 102
    assert [h["job"] for h in s.history] == [101, 102]

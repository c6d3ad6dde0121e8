"""The SQLite store: migrations, compare-and-swap transitions, filters and keyset pages."""
import sqlite3

import pytest

from jupyter_jobs.errors import InvalidTransition, JobNotFound, SpecError
from jupyter_jobs.migrations import MIGRATIONS, DatabaseTooNew, Migration, current_version, migrate
from jupyter_jobs.models import Allocation, JobRecord
from jupyter_jobs.spec import parse_spec
from jupyter_jobs.states import JobStatus
from jupyter_jobs.store import JobStore


@pytest.fixture
def store(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    yield store
    store.close()


def new(store, name="j", owner="alice", priority=0, cmd="echo hi"):
    spec = parse_spec({"name": name, "cmd": cmd, "priority": priority})
    return store.create(JobRecord(id=0, name=name, owner=owner, spec=spec, command=cmd))


def test_wal_and_schema_version(store, tmp_path):
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert current_version(store._conn) == max(m.version for m in MIGRATIONS)
    indexes = {r[0] for r in store._conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"jobs_status_id", "jobs_owner_id", "jobs_queue"} <= indexes


def test_records_survive_reopening(tmp_path):
    first = JobStore(tmp_path / "db.sqlite")
    job = new(first, "kept")
    first.transition(job.id, JobStatus.PREPARING, allocation=Allocation(1, 512, (0,)))
    first.close()
    again = JobStore(tmp_path / "db.sqlite")
    kept = again.get(job.id)
    assert (kept.name, kept.status, kept.allocation.gpus) == ("kept", JobStatus.PREPARING, (0,))
    again.close()


def test_failed_migration_rolls_back_and_stays_pending(tmp_path):
    conn = sqlite3.connect(tmp_path / "m.sqlite", isolation_level=None)
    bad = MIGRATIONS + (Migration(99, "broken", ("CREATE TABLE extra (x)", "THIS IS NOT SQL")),)
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, bad)
    assert current_version(conn) == max(m.version for m in MIGRATIONS)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name='extra'").fetchone() is None


def older_database(tmp_path, version: int, status: str = "Succeeded") -> JobStore:
    """A database made at schema ``version`` holding one job of then ('old', by ann), opened (migrated) now."""
    path = tmp_path / f"v{version}.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS[:version])
    conn.execute("INSERT INTO jobs (name, owner, status, spec, created_at, updated_at) "
                 "VALUES ('old', 'ann', ?, '{\"cmd\": \"true\"}', 1, 1)", (status,))
    conn.close()
    return JobStore(path)


def test_a_version_1_database_keeps_its_jobs_and_gains_their_environment(tmp_path):
    store = older_database(tmp_path, 1)
    (old,) = store.list()[0]
    assert (old.name, old.environment, old.to_json(0)["environment"]) == ("old", {}, None)
    job = new(store, "with-env")
    store.update(job.id, environment={"hash": "ab" * 32, "python": "3.11"})
    assert store.get(job.id).environment["python"] == "3.11"
    store.close()


def test_a_version_3_database_gains_groups_and_its_jobs_belong_to_none(tmp_path):
    store = older_database(tmp_path, 3, "Running")
    (old,) = store.list()[0]
    assert (old.spec.group, old.to_json(0)["group"]) == ("", "")
    spec = parse_spec({"name": "new", "cmd": "true", "group": "team-a"})
    job = store.create(JobRecord(id=0, name="new", owner="bob", spec=spec, command="true"))
    assert [j.id for j in store.list(group="team-a")[0]] == [job.id]
    assert [j.id for j in store.list(visible_to=("ann", {"team-b"}))[0]] == [old.id]
    assert {j.id for j in store.list(visible_to=("carl", {"team-a"}))[0]} == {job.id}
    assert store.list(visible_to=("carl", ()))[0] == []
    store.transition(job.id, JobStatus.PREPARING, allocation=Allocation(1, 512, (0,)))
    assert [(h.id, h.group, h.allocation.gpus) for h in store.holding()] == [(old.id, "", ()), (job.id, "team-a", (0,))]
    assert store.pending() == []
    store.close()


def test_database_from_a_newer_version_is_refused(tmp_path):
    conn = sqlite3.connect(tmp_path / "m.sqlite", isolation_level=None)
    migrate(conn)
    conn.execute("INSERT INTO schema_migrations VALUES (7, 'future', 0)")
    with pytest.raises(DatabaseTooNew, match="upgrade jupyter-jobs"):
        migrate(conn)


def test_transition_is_checked_and_compare_and_swap(store):
    job = new(store)
    with pytest.raises(InvalidTransition):
        store.transition(job.id, JobStatus.SUCCEEDED)
    store.transition(job.id, JobStatus.CANCELLED, finished_at=1.0)
    with pytest.raises(InvalidTransition, match="is Cancelled"):
        store.transition(job.id, JobStatus.PREPARING)
    with pytest.raises(JobNotFound):
        store.get(999)


def test_update_refuses_unknown_columns(store):
    job = new(store)
    with pytest.raises(ValueError, match="not writable"):
        store.update(job.id, status="Running")


def test_list_filters_and_pages_newest_first(store):
    ids = [new(store, f"job{i}", owner="alice" if i % 2 else "bob").id for i in range(25)]
    store.transition(ids[3], JobStatus.CANCELLED)
    page, cursor = store.list(limit=10)
    assert [j.id for j in page] == ids[::-1][:10]
    seen = [j.id for j in page]
    while cursor:
        page, cursor = store.list(limit=10, cursor=cursor)
        seen += [j.id for j in page]
    assert seen == ids[::-1]
    assert {j.owner for j in store.list(owner="bob", limit=100)[0]} == {"bob"}
    assert [j.id for j in store.list(statuses=[JobStatus.CANCELLED])[0]] == [ids[3]]
    assert [j.name for j in store.list(text="job1")[0]][-1] == "job1"
    assert store.list(text="50%_")[0] == []


def test_bad_cursor_and_limit_are_client_errors(store):
    with pytest.raises(SpecError, match="cursor"):
        store.list(cursor="garbage!")
    with pytest.raises(SpecError, match="limit"):
        store.list(limit=0)


def test_queue_order_is_priority_then_fifo(store):
    a = new(store, "a", priority=0)
    b = new(store, "b", priority=5)
    c = new(store, "c", priority=0)
    assert [j.id for j in store.pending()] == [b.id, a.id, c.id]
    assert store.pending()[0].priority == 5


def test_idempotency_key_lookup(store):
    spec = parse_spec({"cmd": "x"})
    job = store.create(JobRecord(id=0, name="x", owner="a", spec=spec, idempotency_key="k1"), "hash1")
    found, digest = store.find_idempotent("k1")
    assert (found.id, digest) == (job.id, "hash1")
    assert store.find_idempotent("k2") is None


def test_a_version_4_database_gains_schedules_and_its_jobs_have_none(tmp_path):
    from jupyter_jobs.schedule_store import Schedule, ScheduleStore

    store = older_database(tmp_path, 4)
    (old,) = store.list()[0]
    assert (old.schedule_id, old.to_json(0)["schedule_id"]) == (None, None)
    schedules = ScheduleStore(store.path)
    made = schedules.create(Schedule(id=0, name="nightly", owner="ann", group="", spec={"cmd": "true"},
                                     cron="0 3 * * *", timezone="UTC", created_at=5.0))
    assert (made.last_fire_at, made.history, made.paused) == (5.0, [], False)
    job = store.create(JobRecord(id=0, name="run", owner="ann", spec=parse_spec({"cmd": "true"}), command="true",
                                 schedule_id=made.id))
    assert [j.id for j in store.list(schedule=made.id)[0]] == [job.id]
    assert store.get(job.id).schedule_id == made.id
    schedules.close()
    store.close()


def test_a_version_4_database_gains_pins_and_removed_data(tmp_path):
    store = older_database(tmp_path, 4)
    (old,) = store.list()[0]
    assert (old.pinned, old.data_removed_at, old.to_json(0)["pinned"]) == (False, None, False)
    store.update(old.id, pinned=True, data_removed_at=12.5)
    assert (store.get(old.id).pinned, store.get(old.id).data_removed_at) == (True, 12.5)
    store.close()


def test_a_migration_numbered_below_one_applied_is_applied_later(tmp_path):
    # Changes made side by side land in either order: a database that got 6 before 5 existed gets 5 after.
    conn = sqlite3.connect(tmp_path / "m.sqlite", isolation_level=None)
    without_5 = tuple(m for m in MIGRATIONS if m.version != 5)
    migrate(conn, without_5)
    late = Migration(5, "a change merged later", ("CREATE TABLE late_one (x)",))
    assert migrate(conn, tuple(sorted(without_5 + (late,), key=lambda m: m.version))) == [5]
    assert conn.execute("SELECT name FROM sqlite_master WHERE name='late_one'").fetchone() is not None
    assert current_version(conn) == max(m.version for m in MIGRATIONS)

"""Versioned schema migrations for the job store.

Each migration runs inside one transaction together with the row that records it: if a
statement fails, its changes are rolled back, nothing is recorded, and it stays pending.
Never edit a released migration; add a new one.
"""
from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from .errors import JobsError


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "create jobs",
        (
            """
            CREATE TABLE jobs (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL,
                owner TEXT NOT NULL,
                status TEXT NOT NULL,
                message TEXT NOT NULL DEFAULT '',
                instance_type TEXT NOT NULL DEFAULT '',
                image TEXT,
                command TEXT NOT NULL DEFAULT '',
                spec TEXT NOT NULL,
                priority INTEGER NOT NULL DEFAULT 0,
                exit_code INTEGER,
                created_at REAL NOT NULL,
                preparing_at REAL,
                started_at REAL,
                finished_at REAL,
                attempt INTEGER NOT NULL DEFAULT 1,
                rerun_of INTEGER,
                backend TEXT NOT NULL DEFAULT '',
                allocation TEXT NOT NULL DEFAULT '{}',
                handle TEXT NOT NULL DEFAULT '{}',
                cancel_requested INTEGER NOT NULL DEFAULT 0,
                outputs TEXT NOT NULL DEFAULT '[]',
                idempotency_key TEXT UNIQUE,
                request_hash TEXT,
                updated_at REAL NOT NULL
            )
            """,
            # The UI lists newest first, filtered by status or owner: keyset pages on id.
            "CREATE INDEX jobs_status_id ON jobs (status, id)",
            "CREATE INDEX jobs_owner_id ON jobs (owner, id)",
            # The pool reads the queue in priority-then-FIFO order.
            "CREATE INDEX jobs_queue ON jobs (priority DESC, id) WHERE status = 'Pending'",
        ),
    ),
    Migration(
        2,
        "python environment of a job",
        # {hash, python, packages, local, source, interpreter} at submit; built, prepare_seconds and
        # where (a venv, an image, an interpreter) once it was prepared.
        ("ALTER TABLE jobs ADD COLUMN environment TEXT NOT NULL DEFAULT '{}'",),
    ),
    Migration(
        3,
        "description, labels, queue deadline and warnings of a job",
        (
            # desc and labels are copied out of the spec so that lists can search and filter them.
            "ALTER TABLE jobs ADD COLUMN description TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE jobs ADD COLUMN labels TEXT NOT NULL DEFAULT '{}'",
            # When a Pending job fails for waiting too long (queue-timeout); NULL: never.
            "ALTER TABLE jobs ADD COLUMN queue_deadline REAL",
            # What translating another platform's spec left out (a JSON list of lines).
            "ALTER TABLE jobs ADD COLUMN warnings TEXT NOT NULL DEFAULT '[]'",
            """UPDATE jobs SET
                   description = COALESCE(CASE WHEN json_valid(spec) THEN json_extract(spec, '$.desc') END, ''),
                   labels = COALESCE(CASE WHEN json_valid(spec) AND json_type(spec, '$.labels') = 'object'
                                          THEN json_extract(spec, '$.labels') END, '{}')""",
            "CREATE INDEX jobs_queue_deadline ON jobs (queue_deadline) WHERE status = 'Pending'",
        ),
    ),
    Migration(
        4,
        "group of a job",
        (
            # Copied out of the spec (where it is resolved at submit) so that lists filter by it and the
            # pool counts a group's quota; jobs from before groups belong to none.
            "ALTER TABLE jobs ADD COLUMN group_name TEXT NOT NULL DEFAULT ''",
            "CREATE INDEX jobs_group_id ON jobs (group_name, id)",
        ),
    ),
    Migration(
        5,
        "schedules, and the schedule of a job",
        (
            # A spec (native, as parsed at creation) with the manifest of the files every run gets,
            # a cron expression read in an explicit time zone, and the state that outlives restarts.
            """
            CREATE TABLE schedules (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL,
                owner TEXT NOT NULL,
                group_name TEXT NOT NULL DEFAULT '',
                spec TEXT NOT NULL,
                files TEXT NOT NULL DEFAULT '{}',
                environment TEXT,
                cron TEXT NOT NULL,
                timezone TEXT NOT NULL,
                overlap TEXT NOT NULL DEFAULT 'skip',
                paused INTEGER NOT NULL DEFAULT 0,
                created_at REAL NOT NULL,
                -- the latest fire time dealt with (run, skipped or missed): nothing at or before it fires again
                last_fire_at REAL NOT NULL,
                last_job_id INTEGER,
                last_skipped TEXT,
                history TEXT NOT NULL DEFAULT '[]',
                updated_at REAL NOT NULL
            )
            """,
            "CREATE INDEX schedules_owner_id ON schedules (owner, id)",
            # NULL for a job submitted by hand; kept when its schedule is deleted.
            "ALTER TABLE jobs ADD COLUMN schedule_id INTEGER",
            "CREATE INDEX jobs_schedule_id ON jobs (schedule_id, id) WHERE schedule_id IS NOT NULL",
        ),
    ),
    Migration(
        6,
        "retention: pinned jobs and removed data",
        (
            # A pinned job is never removed by retention (retention.py).
            "ALTER TABLE jobs ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0",
            # When retention removed the job's log, displays, outputs and working dir; NULL: still there.
            "ALTER TABLE jobs ADD COLUMN data_removed_at REAL",
        ),
    ),
)


class DatabaseTooNew(JobsError):
    status_code = 503


def current_version(conn: sqlite3.Connection) -> int:
    applied = applied_versions(conn)
    return max(applied) if applied else 0


def applied_versions(conn: sqlite3.Connection) -> set[int]:
    """The versions recorded as applied (the table is made when missing)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    return {int(row[0]) for row in conn.execute("SELECT version FROM schema_migrations")}


def migrate(conn: sqlite3.Connection, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply the pending migrations in order; return the versions applied.

    A migration is pending when it is not recorded, even below the newest one recorded: changes
    developed side by side may land in either order (a database that got 6 before 5 existed gets
    5 later), which is safe because a migration only adds columns, tables and indexes.

    ``conn`` must be in autocommit mode (``isolation_level=None``) so that each
    migration's ``BEGIN IMMEDIATE ... COMMIT`` is the only transaction.
    """
    done = applied_versions(conn)
    version = max(done) if done else 0
    newest = max(m.version for m in migrations)
    if version > newest:
        raise DatabaseTooNew(
            f"the job database is at schema version {version} but this jupyter-jobs knows only up to "
            f"{newest}; upgrade jupyter-jobs or point JobManager.db_path at another file"
        )
    applied = []
    for migration in sorted(migrations, key=lambda m: m.version):
        if migration.version in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time()),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        applied.append(migration.version)
    return applied

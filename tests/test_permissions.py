"""Hygiene in every mode (issue 13): what a single-user server keeps on disk is its user's alone. Job specs
hold env vars (secrets), uploads are users' files: no other account on the machine may read them."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from jupyter_jobs.manager import JobManager

pytestmark = pytest.mark.integration


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


async def test_data_dir_database_and_job_folders_are_the_servers_alone(api, manager, jobs_data_dir):
    job = await api.submit({"cmd": "echo hi > out.txt", "outputs": ["out.txt"], "env": {"vars": {"TOKEN": "s3cret"}}})
    done = await api.wait(job["id"])
    assert done["status"] == "Succeeded", done["message"]
    assert mode(jobs_data_dir) == 0o700
    assert mode(jobs_data_dir / "jobs") == 0o700
    assert mode(jobs_data_dir / "blobs") == 0o700
    assert mode(jobs_data_dir / "jobs" / str(job["id"])) == 0o700
    database = Path(manager.db_path)
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        assert path.exists() and mode(path) == 0o600, path


def test_a_data_dir_made_open_before_is_tightened(tmp_path):
    data = tmp_path / "old-data"
    (data / "jobs").mkdir(parents=True)
    data.chmod(0o755)
    (data / "jobs").chmod(0o755)
    (data / "blobs").mkdir(mode=0o755)
    for name in ("jobs.sqlite", "jobs.sqlite-wal", "jobs.sqlite-shm"):
        (data / name).touch(mode=0o644)
    (data / "jobs.sqlite").write_bytes(b"")  # an empty file is a new database to SQLite
    manager = JobManager(data_dir=str(data), backend="local")
    try:
        assert [oct(mode(p)) for p in (data, data / "jobs", data / "blobs")] == ["0o700"] * 3
        assert [oct(mode(data / n)) for n in ("jobs.sqlite", "jobs.sqlite-wal", "jobs.sqlite-shm")] == ["0o600"] * 3
    finally:
        manager.store.close()
        manager.engine.close()

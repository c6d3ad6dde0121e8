"""Job rows of the store read as records: a row that cannot be read whole (a spec an older version accepted,
a hand-edited row) still gives a record, marked damaged, so one bad row never takes down the list, the
scheduler or a restart."""
from __future__ import annotations

import json
import logging
import sqlite3
from typing import Any

from .models import Allocation, JobRecord, JobSpec
from .spec import parse_spec
from .states import JobStatus

log = logging.getLogger("jupyter_jobs.store")


def to_record(row: sqlite3.Row) -> JobRecord:
    """The record of a row; a row that cannot be read whole still gives a record (marked damaged),
    so one bad row never takes down the list, the scheduler or a restart."""
    try:
        return _decode(row)
    except Exception as exc:  # any damage: a spec an older version accepted, a hand-edited row
        log.warning("jupyter-jobs: job %s has a damaged record: %s", row["id"], exc)
        return _damaged(row, f"{type(exc).__name__}: {exc}")


def _damaged(row: sqlite3.Row, problem: str) -> JobRecord:
    def column(name: str, default: Any) -> Any:
        try:
            value = row[name]
        except (IndexError, KeyError):
            return default
        return default if value is None else value

    try:
        status = JobStatus(column("status", "Unknown"))
    except ValueError:
        status = JobStatus.UNKNOWN
    command = str(column("command", ""))
    try:
        handle = json.loads(column("handle", "{}"))
        handle = handle if isinstance(handle, dict) else {}
    except (TypeError, ValueError):
        handle = {}
    try:
        allocation = allocation_of(json.loads(column("allocation", "{}")))
    except (TypeError, ValueError, AttributeError):
        allocation = Allocation()
    return JobRecord(
        id=row["id"], name=str(column("name", "job")), owner=str(column("owner", "")),
        spec=JobSpec(cmd=command or "true", name=str(column("name", "job"))), status=status,
        message=str(column("message", "")), instance_type=str(column("instance_type", "")),
        command=command, created_at=float(column("created_at", 0.0)), attempt=int(column("attempt", 1)),
        updated_at=float(column("updated_at", 0.0)), damaged=problem, handle=handle, allocation=allocation,
        backend=str(column("backend", "")), schedule_id=column("schedule_id", None),
        finished_at=column("finished_at", None),
        pinned=bool(column("pinned", 0)), data_removed_at=column("data_removed_at", None),
    )


def _decode(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        id=row["id"],
        name=row["name"],
        owner=row["owner"],
        spec=parse_spec(json.loads(row["spec"])),
        status=JobStatus(row["status"]),
        message=row["message"],
        instance_type=row["instance_type"],
        image=row["image"],
        command=row["command"],
        exit_code=row["exit_code"],
        created_at=row["created_at"],
        preparing_at=row["preparing_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        attempt=row["attempt"],
        rerun_of=row["rerun_of"],
        backend=row["backend"],
        allocation=allocation_of(json.loads(row["allocation"])),
        handle=json.loads(row["handle"]),
        cancel_requested=bool(row["cancel_requested"]),
        outputs=json.loads(row["outputs"]),
        idempotency_key=row["idempotency_key"],
        updated_at=row["updated_at"],
        environment=_environment(row["environment"]),
        warnings=[str(line) for line in json.loads(row["warnings"] or "[]")],
        schedule_id=row["schedule_id"],
        pinned=bool(row["pinned"]),
        data_removed_at=row["data_removed_at"],
    )


def _environment(text: str) -> dict[str, Any]:
    value = json.loads(text or "{}")
    if not isinstance(value, dict):
        raise ValueError(f"its environment is {type(value).__name__}, not a mapping")
    return value


def allocation_of(data: dict[str, Any]) -> Allocation:
    return Allocation(cpus=data.get("cpus", 0.0), memory_mib=data.get("memory_mib", 0), gpus=tuple(data.get("gpus", ())))

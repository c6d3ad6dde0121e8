"""``jupyter jobs schedule``: create, list, pause, resume, delete and run-now schedules of a running server.

A schedule is kept and fired by a server (or the team's service), so these commands need one; ``create``
ships the spec's files exactly as ``jupyter jobs run`` does (:func:`jupyter_jobs.shipping.submission`),
and every run gets those very files.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .errors import JobsError
from .shipping import spec_file_submission


def add_parser(sub: Any) -> None:
    schedule = sub.add_parser("schedule", help="run a job spec on a cron schedule (kept by the server)")
    actions = schedule.add_subparsers(dest="schedule_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="schedule a job spec; its files are shipped as `run` ships them")
    create.add_argument("spec", help="the job spec file (YAML)")
    create.add_argument("--cron", required=True, help='when: "0 3 * * *" (minute hour day month weekday; a 6th '
                        "field is seconds)")
    create.add_argument("--timezone", help="IANA time zone of the cron, e.g. Europe/Paris (default: the server's)")
    create.add_argument("--name", help="the schedule's name (default: the spec's)")
    create.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec field")
    create.add_argument("--allow-overlap", action="store_true",
                        help="start a run even while the previous one is still active (default: skip that fire)")
    listing = actions.add_parser("list", help="schedules, with their next fire time")
    listing.add_argument("--json", action="store_true")
    for action, text in (("pause", "stop firing (resume fires from then on)"), ("resume", "fire again"),
                         ("delete", "remove a schedule (its jobs stay)"), ("run-now", "start a run now")):
        actions.add_parser(action, help=text).add_argument("id", type=int)


def no_server() -> JobsError:
    return JobsError("schedules are kept and fired by a running Jupyter server (or the team's service), and none "
                     "was found: start `jupyter server`, or pass --url/--token (or set JUPYTER_JOBS_URL)")


async def cmd_create(client: Any, args: argparse.Namespace, spec_dir: Path) -> int:
    spec, files = await asyncio.to_thread(spec_file_submission, Path(args.spec), args.set, spec_dir, os.environ)
    body: dict[str, Any] = {"spec": spec, "cron": args.cron, "files": await client.upload(files)}
    if args.timezone:
        body["timezone"] = args.timezone
    if args.name:
        body["name"] = args.name
    if args.allow_overlap:
        body["overlap"] = "allow"
    if client.wants_environment(spec):
        body["environment"] = await client.environment()
    schedule = await client.call("POST", "schedules", body=body)
    shipped = f", {len(files)} file{'s' * (len(files) != 1)} shipped" if files else ""
    print(f"schedule {schedule['id']} {schedule['name']!r}: {schedule['cron']} ({schedule['timezone']}){shipped}; "
          f"next run {_first(schedule)}", file=sys.stderr)
    print(schedule["id"])
    return 0


def _first(schedule: dict) -> str:
    return schedule["next_runs"][0] if schedule["next_runs"] else "-"


async def cmd_list(client: Any, args: argparse.Namespace, _: Path) -> int:
    schedules = (await client.call("GET", "schedules"))["schedules"]
    if args.json:
        print(json.dumps(schedules, indent=2))
        return 0
    rows = [("ID", "NAME", "OWNER", "CRON", "TIMEZONE", "STATE", "NEXT RUN", "LAST JOB", "LAST SKIPPED")]
    for s in schedules:
        skipped = s["last_skipped"]
        rows.append((
            str(s["id"]), s["name"][:24], s["owner"][:12], s["cron"], s["timezone"], "paused" if s["paused"] else "active",
            _first(s), str(s["last_job_id"] or "-"),
            f"{time.strftime('%m-%d %H:%M', time.localtime(skipped['at']))} {skipped['reason'][:60]}" if skipped else "-",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    return 0


async def cmd_action(client: Any, args: argparse.Namespace, _: Path) -> int:
    action = args.schedule_command
    if action == "delete":
        await client.call("DELETE", f"schedules/{args.id}")
        print(f"schedule {args.id} deleted")
        return 0
    answer = await client.call("POST", f"schedules/{args.id}/{action}")
    if action == "run-now":
        print(f"job {answer['id']} (schedule {args.id}) submitted: {answer['status']}", file=sys.stderr)
        print(answer["id"])
    else:
        print(f"schedule {args.id} {'paused' if answer['paused'] else 'active'}; next run {_first(answer)}")
    return 0


COMMANDS = {"schedule create": cmd_create, "schedule list": cmd_list, **{
    f"schedule {action}": cmd_action for action in ("pause", "resume", "delete", "run-now")}}

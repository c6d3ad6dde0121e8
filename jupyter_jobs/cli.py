"""``jupyter jobs``: run, list, show, follow, cancel and rerun jobs from a terminal.

It talks to a running Jupyter server when it finds one; otherwise it runs the job itself with
the same JobManager a server uses (and the same data folder), so it works on a fresh install.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from . import cli_secrets, schedule_cli
from .client import EmbeddedClient, RemoteClient, find_server
from .errors import JobsError
from .manager import server_user
from .safeopen import split as split_path
from .shipping import spec_file_submission
from .spec import load_spec_text, parse_set_option, parse_spec
from .spec.submitter import fill_environment

TERMINAL = {"Succeeded", "Failed", "Cancelled", "Unknown"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jupyter jobs", description="Run and manage jupyter-jobs jobs.")
    parser.add_argument("--url", help="Jupyter server URL (default: $JUPYTER_JOBS_URL, else a running server)")
    parser.add_argument("--token", help="its token (default: $JUPYTER_JOBS_TOKEN or the server's runtime file)")
    parser.add_argument("--local", action="store_true", help="run here without a server, even if one runs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="submit a job spec (YAML)")
    run.add_argument("spec", help="the job spec file, e.g. examples/hello/job.yaml")
    run.add_argument("-f", "--follow", action="store_true", help="stream its log until it ends; exit with its status")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec field")
    run.add_argument("--force", action="store_true", help="with --follow: overwrite local files newer than the "
                     "job's outputs when they come back")

    convert = sub.add_parser("convert", help="print the native spec that a DataSphere config.yaml, a PrimeHub "
                             "job or a Bacalhau job spec runs as")
    convert.add_argument("spec", help="the spec file (YAML or JSON)")

    login = sub.add_parser("login", help="keep a JupyterHub token for the team's jupyter-jobs service (read from stdin)")
    login.add_argument("--service", help="the service's URL (default: $JUPYTER_JOBS_SERVICE_URL or the system config)")

    lst = sub.add_parser("list", help="list jobs, newest first")
    lst.add_argument("--status", help="only these statuses (comma-separated)")
    lst.add_argument("--mine", action="store_true", help="only jobs I submitted")
    lst.add_argument("--group", help="only jobs of this group")
    lst.add_argument("--all-users", action="store_true",
                     help="every user's jobs (admins only; others see their own and their groups' jobs)")
    lst.add_argument("--schedule", type=int, metavar="ID", help="only the runs of this schedule")
    lst.add_argument("--text", help="search names, descriptions and commands")
    lst.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                     help="only jobs with this label (repeat: all of them)")
    lst.add_argument("-n", "--limit", type=int, default=20)
    lst.add_argument("--json", action="store_true")

    show = sub.add_parser("show", help="show one job")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true")

    logs = sub.add_parser("logs", help="print a job's log")
    logs.add_argument("id", type=int)
    logs.add_argument("-f", "--follow", action="store_true", help="keep streaming until the job ends")

    cancel = sub.add_parser("cancel", help="cancel a job")
    cancel.add_argument("id", type=int)

    rerun = sub.add_parser("rerun", help="run a job again, with overrides")
    rerun.add_argument("id", type=int)
    rerun.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. --set args.epochs=20")
    rerun.add_argument("-f", "--follow", action="store_true")

    outputs = sub.add_parser("outputs", help="download a job's outputs (folders included)")
    outputs.add_argument("id", type=int)
    outputs.add_argument("path", nargs="?", help="one output file or folder (default: all of them)")
    outputs.add_argument("--to", default=".", metavar="DIR", help="where to put them (default: here)")
    outputs.add_argument("--force", action="store_true", help="overwrite local files newer than the job's outputs")

    delete = sub.add_parser("delete", help="delete a finished job with its log and outputs")
    delete.add_argument("id", type=int)

    pin = sub.add_parser("pin", help="keep a job (its log, outputs and record) whatever the server's retention says")
    pin.add_argument("id", type=int)
    unpin = sub.add_parser("unpin", help="let retention remove a pinned job again once it is old enough")
    unpin.add_argument("id", type=int)

    gc = sub.add_parser("gc", help="remove what retention says has expired now (admins only on a server)")
    gc.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    gc.add_argument("--json", action="store_true")

    env = sub.add_parser("env", help="the cache of jobs' Python environments (env.python in a spec)")
    env_sub = env.add_subparsers(dest="env_command", required=True, metavar="ACTION")
    env_list = env_sub.add_parser("list", help="cached environments, most recently used first")
    env_list.add_argument("--json", action="store_true")
    prune = env_sub.add_parser("prune", help="remove least recently used environments past a size (admins only "
                               "on a server); those of active jobs are kept")
    size = prune.add_mutually_exclusive_group()
    size.add_argument("--max-bytes", type=_byte_count, metavar="N", help="keep at most N bytes (0: remove every "
                      "environment no active job uses); default: the server's Environments.max_bytes")
    size.add_argument("--max-size", type=parse_size, dest="max_bytes", metavar="SIZE",
                      help="the same as a size: 500M, 10G, 1.5T (powers of 1024)")
    prune.add_argument("--json", action="store_true")

    cli_secrets.add_parser(sub)
    schedule_cli.add_parser(sub)

    image = sub.add_parser("image", help="container images for the Docker backend")
    image_sub = image.add_subparsers(dest="image_command", required=True, metavar="ACTION")
    build = image_sub.add_parser("build", help="build the offline base image (Debian minbase + Python)")
    build.add_argument("--tag", default="jupyter-jobs/base:bookworm")
    build.add_argument("--rebuild", action="store_true", help="run debootstrap again even if cached")
    build.add_argument("--mirror", help="Debian mirror (default: the one apt uses here)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = asyncio.run(_main(args))
    except KeyboardInterrupt:
        code = 130
    except JobsError as exc:
        print(f"jupyter jobs: {exc.message}", file=sys.stderr)
        code = 2
    sys.exit(code)


async def _main(args: argparse.Namespace) -> int:
    if args.command == "image":
        return await asyncio.to_thread(_build_image, args)
    if args.command == "convert":
        return await asyncio.to_thread(cmd_convert, args)
    if args.command == "env":
        args.command = f"env {args.env_command}"
    if args.command == "login":
        return await cmd_login(args)
    if args.command == "secret":
        args.command = f"secret {args.secret_command}"
    if args.command == "schedule":
        args.command = f"schedule {args.schedule_command}"
    spec_dir = Path(args.spec).resolve().parent if getattr(args, "spec", None) else Path.cwd()
    server = _server(args, spec_dir)
    if server is not None:
        client = RemoteClient(server["url"], server.get("token", ""), server.get("root_dir"))
        return await COMMANDS[args.command](client, args, spec_dir)
    if args.command.startswith("schedule "):
        raise schedule_cli.no_server()
    if args.command in ("run", "rerun") and not args.follow:
        print("jupyter jobs: no Jupyter server found; running the job here until it ends", file=sys.stderr)
        args.follow = True
    async with EmbeddedClient(_embedded_manager(spec_dir), server_user()) as client:
        return await COMMANDS[args.command](client, args, spec_dir)


def _build_image(args: argparse.Namespace) -> int:
    import docker

    from .images import build_base_image

    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except Exception as exc:
        raise JobsError(f"no Docker daemon answers (DOCKER_HOST={os.environ.get('DOCKER_HOST', 'default')}): {exc}")
    build_base_image(client, args.tag, rebuild=args.rebuild, mirror=args.mirror,
                     say=lambda line: print(line, file=sys.stderr))
    return 0


def _server(args: argparse.Namespace, spec_dir: Path) -> dict[str, Any] | None:
    if args.local:
        _team_service(args)  # refuses --local where a team's service runs the jobs
        return None
    if args.url:
        return {"url": args.url, "token": args.token or os.environ.get("JUPYTER_JOBS_TOKEN", ""), "root_dir": None}
    if not os.environ.get("JUPYTER_JOBS_URL"):
        team = _team_service(args)
        if team is not None:
            return team
    server = find_server(spec_dir)
    if server is not None and args.token:
        server["token"] = args.token
    return server


def _team_service(args: argparse.Namespace) -> dict[str, Any] | None:
    """The team's service when one is named: jobs then never run here (a second pool would double-book)."""
    from .service.login import service_url, stored_token

    try:
        url = service_url()
    except ValueError as exc:
        raise JobsError(str(exc)) from None
    if not url:
        return None
    if args.local:
        raise JobsError(f"--local: jobs here are run by the team's service at {url}, not by this shell")
    token = args.token or os.environ.get("JUPYTER_JOBS_TOKEN") or stored_token()
    if not token:
        raise JobsError(f"jobs here run by the team's service at {url}: run `jupyter jobs login` first "
                        "(with a token from your JupyterHub's Token page)")
    return {"url": url, "token": token, "root_dir": None}


async def cmd_login(args: argparse.Namespace) -> int:
    from .service.login import service_url, store_token

    url = args.service or service_url()
    if not url:
        raise JobsError("no jupyter-jobs service is named here: pass --service URL "
                        "(e.g. https://hub.example.org/services/jupyter-jobs/)")
    if sys.stdin.isatty():
        import getpass

        token = getpass.getpass(f"JupyterHub token for {url} (from the Hub's Token page): ")
    else:
        token = sys.stdin.readline()
    token = token.strip()
    if not token:
        raise JobsError("no token given; paste one from your JupyterHub's Token page")
    config = await RemoteClient(url, token).config()  # refused tokens say so here, before anything is kept
    path = store_token(token)
    print(f"logged in to {url} as {config.get('user')}; token kept in {path}")
    return 0


def _embedded_manager(root: Path) -> Any:
    from .manager import JobManager

    manager = JobManager(config=_jupyter_config(), root_dir=str(root))
    manager.schedules.firing = False  # a server fires schedules; a command that runs one job here does not
    return manager


# -- commands -----------------------------------------------------------------------------
async def cmd_run(client: Any, args: argparse.Namespace, spec_dir: Path) -> int:
    spec, files = await asyncio.to_thread(spec_file_submission, Path(args.spec), args.set, spec_dir, os.environ)
    job = await client.submit(spec, files=files)
    shipped = f", {len(files)} file{'s' * (len(files) != 1)} shipped" if files else ""
    print(f"job {job['id']} {job['name']!r} submitted: {job['status']} ({job['message']}){shipped}", file=sys.stderr)
    if not args.follow:
        print(job["id"])
        return 0
    status = await _follow(client, job["id"])
    declared = [o.path for o in parse_spec(job["spec"]).outputs]
    if status == 0 and declared:  # as DataSphere's: the declared outputs appear beside the spec
        done = await client.get(job["id"])
        if await _download(client, done, declared, spec_dir, args.force):
            return 1
    return status


def cmd_convert(args: argparse.Namespace) -> int:
    """Print the native spec a spec written for another platform runs as; what was left out on stderr."""
    from .cluster import Cluster
    from .spec.foreign import to_native

    path = Path(args.spec)
    if not path.is_file():
        raise JobsError(f"{args.spec}: no such spec file")
    cluster = Cluster(config=_jupyter_config())  # this machine's instance types and the admin's mappings
    cluster.load()
    translation = to_native(load_spec_text(path.read_text(), str(path)), cluster.site())
    native = translation.spec
    spec = parse_spec(fill_environment(native, {**_placeholders(native), **os.environ})).to_dict()
    bare = set(_placeholders(native))
    if bare:  # keep "copy it from my environment": `jupyter jobs run` fills them in
        spec["env"]["vars"] = [k if k in bare else f"{k}={v}" for k, v in spec["env"]["vars"].items()]
    print(f"# {path.name}: {translation.source} spec, as jupyter-jobs runs it", file=sys.stderr)
    for warning in translation.warnings:
        print(f"# warning: {warning}", file=sys.stderr)
    print(yaml.dump(spec, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100).rstrip())
    return 0


def _block_text(dumper: Any, text: str) -> Any:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


class _BlockDumper(yaml.SafeDumper):
    """Writes a command of several lines as a ``|`` block, as a person would."""


_BlockDumper.add_representer(str, _block_text)


def _placeholders(spec: Any) -> dict[str, str]:
    """The bare ``- NAME`` entries of ``env.vars``, each with a stand-in value."""
    env = spec.get("env") if isinstance(spec, dict) else None
    names = env.get("vars") if isinstance(env, dict) else None
    if not isinstance(names, list):
        return {}
    return {n: "" for n in names if isinstance(n, str) and "=" not in n}


def _jupyter_config() -> Any:
    from jupyter_core.application import JupyterApp

    loader = JupyterApp()
    loader.config_file_name = "jupyter_server_config"
    loader.load_config_file(suppress_errors=True)
    return loader.config


async def _download(client: Any, job: dict, paths: list[str] | None, dest: Path, force: bool) -> list[str]:
    """Put the job's outputs (those under ``paths``; None: all) under ``dest``, keeping their folders.

    A local file changed since the job was submitted (edited meanwhile, or the output of a later job) is
    kept unless ``force``; the kept ones are returned. What is written takes the time the job ended, so
    the rule holds for the next download too."""
    listing = (await client.outputs(job["id"]))["outputs"]
    wanted = [f for f in listing if f.get("type") != "symlink"
              and (paths is None or any(f["path"] == p or f["path"].startswith(p.rstrip("/") + "/") for p in paths))]
    if paths is not None and not wanted:
        raise JobsError(f"job {job['id']} has no output {', '.join(paths)}; `jupyter jobs outputs {job['id']}` "
                        "downloads what it has")
    submitted, ended = job["created_at"], job.get("finished_at") or time.time()
    kept, written, size = [], 0, 0
    for item in wanted:
        try:
            target = dest.joinpath(*split_path(item["path"]))
        except ValueError:  # a server's listing never has one; refuse rather than write outside dest
            raise JobsError(f"the server listed an output path {item['path']!r} outside the job's folder") from None
        if target.exists() and target.stat().st_mtime > submitted and not force:
            kept.append(item["path"])
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        await client.download(job["id"], item["path"], target)
        os.utime(target, (ended, ended))
        written, size = written + 1, size + item["size"]
    print(f"job {job['id']}: {written} output file{'s' * (written != 1)} ({size / 2**20:.1f} MiB) in {dest}",
          file=sys.stderr)
    if kept:
        print(f"kept {len(kept)} local file{'s' * (len(kept) != 1)} changed since the job was submitted: "
              f"{', '.join(kept[:5])}{' ...' if len(kept) > 5 else ''} (--force overwrites them)", file=sys.stderr)
    return kept


async def cmd_outputs(client: Any, args: argparse.Namespace, _: Path) -> int:
    job = await client.get(args.id)
    kept = await _download(client, job, [args.path] if args.path else None, Path(args.to), args.force)
    return 1 if kept else 0


async def _follow(client: Any, job_id: int) -> int:
    out = sys.stdout.buffer

    def sink(chunk: bytes) -> None:
        out.write(chunk)
        out.flush()

    await client.stream_log(job_id, 0, True, sink)
    job = await client.get(job_id)
    while job["status"] not in TERMINAL:  # the stream ended early (server going away)
        await asyncio.sleep(0.5)
        job = await client.get(job_id)
    print(f"job {job_id}: {job['message'] or job['status']}", file=sys.stderr)
    return exit_status(job)


def exit_status(job: dict) -> int:
    """The CLI's exit status for a finished job: 0, the job's own code, 130 cancelled, 1 otherwise."""
    if job["status"] == "Succeeded":
        return 0
    if job["status"] == "Cancelled":
        return 130
    code = job.get("exit_code")
    return code if isinstance(code, int) and 0 < code < 256 else 1


async def cmd_list(client: Any, args: argparse.Namespace, _: Path) -> int:
    page = await client.list(status=args.status, owner="me" if args.mine else None, text=args.text, label=args.label or None,
                             group=args.group, schedule=args.schedule, all_users="1" if args.all_users else None, limit=args.limit)
    if args.json:
        print(json.dumps(page["jobs"], indent=2))
        return 0
    rows = [("ID", "STATUS", "NAME", "TYPE", "OWNER", "GROUP", "CREATED", "TIME", "MESSAGE")]
    for job in page["jobs"]:
        rows.append((
            str(job["id"]), job["status"], job["name"][:24], job["instance_type"], job["owner"][:12],
            (job.get("group") or "-")[:16],
            time.strftime("%m-%d %H:%M", time.localtime(job["created_at"])), _duration(job),
            (job["message"] or "")[:70],
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    return 0


def _duration(job: dict) -> str:
    seconds = job["durations"].get("running")
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


async def cmd_show(client: Any, args: argparse.Namespace, _: Path) -> int:
    job = await client.get(args.id)
    if args.json:
        print(json.dumps(job, indent=2))
        return 0
    print(yaml.safe_dump(job, sort_keys=False, default_flow_style=False).rstrip())
    return 0


async def cmd_logs(client: Any, args: argparse.Namespace, _: Path) -> int:
    out = sys.stdout.buffer
    await client.stream_log(args.id, 0, args.follow, lambda c: (out.write(c), out.flush()))
    return 0


async def cmd_cancel(client: Any, args: argparse.Namespace, _: Path) -> int:
    job = await client.cancel(args.id)
    print(f"job {job['id']}: {job['status']} ({job['message']})")
    return 0


async def cmd_rerun(client: Any, args: argparse.Namespace, _: Path) -> int:
    job = await client.rerun(args.id, dict(parse_set_option(s) for s in args.set))
    print(f"job {job['id']} (rerun of {args.id}) submitted: {job['status']}", file=sys.stderr)
    if not args.follow:
        print(job["id"])
        return 0
    return await _follow(client, job["id"])


async def cmd_delete(client: Any, args: argparse.Namespace, _: Path) -> int:
    await client.delete(args.id)
    print(f"job {args.id} deleted")
    return 0


async def cmd_pin(client: Any, args: argparse.Namespace, _: Path) -> int:
    job = await client.pin(args.id, args.command == "pin")
    if job["pinned"]:
        print(f"job {job['id']} pinned: retention keeps it until it is unpinned")
    else:
        expires = job.get("data_expires_at") or job.get("record_expires_at")
        print(f"job {job['id']} unpinned" + (f": retention removes it from {_when(expires)}" if expires else ""))
    return 0


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))


async def cmd_gc(client: Any, args: argparse.Namespace, _: Path) -> int:
    report = await client.gc(args.dry_run)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    if not report["data_days"] and not report["record_days"]:
        print("the server keeps every job (Retention.data_days and record_days are 0), so nothing expires",
              file=sys.stderr)
    verb = "would remove" if report["dry_run"] else "removed"
    for key, what in (("data_removed", "log, displays and outputs"), ("records_removed", "record and data")):
        for item in report[key]:
            print(f"{verb} the {what} of job {item['id']} {item['name']!r} ({item['owner']}, ended "
                  f"{_when(item['finished_at'])})")
    count = len(report["data_removed"]) + len(report["records_removed"])
    done = "would be cleaned (dry run: nothing was removed)" if report["dry_run"] else "cleaned"
    print(f"{count} job{'s' * (count != 1)} {done}", file=sys.stderr)
    return 0


#: Binary units of --max-size (``10G`` is 10 GiB, as memory sizes are elsewhere).
UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
SIZE = re.compile(r"(\d+(?:\.\d*)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from ``123``, ``500M``, ``10G``, ``1.5TiB``, ``2GB`` (K, M, G, T are powers of 1024)."""
    match = SIZE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; give bytes or a number with K, M, G or T, e.g. 10G")
    return int(float(match[1]) * UNITS[match[2].lower()])


def _byte_count(text: str) -> int:
    if not (text.strip().isascii() and text.strip().isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of bytes >= 0 (--max-size takes 10G)")
    return int(text)


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f}"


def _limit(max_bytes: int) -> str:
    return f"limit {_mib(max_bytes)} MiB" if max_bytes else "no limit"


async def cmd_env_list(client: Any, args: argparse.Namespace, _: Path) -> int:
    cache = await client.environments()
    if args.json:
        print(json.dumps(cache, indent=2))
        return 0
    rows = [("HASH", "KIND", "PYTHON", "PACKAGES", "SIZE MIB", "LAST USED", "IN USE")]
    for env in cache["environments"]:
        rows.append((
            env["hash"][:12], env["kind"], env["python"], str(env["packages"]), _mib(env["size_bytes"]),
            time.strftime("%Y-%m-%d %H:%M", time.localtime(env["last_used"])), "yes" if env["in_use"] else "no",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    count = len(cache["environments"])
    print(f"{count} environment{'s' * (count != 1)}, {_mib(cache['total_bytes'])} MiB ({_limit(cache['max_bytes'])})")
    return 0


async def cmd_env_prune(client: Any, args: argparse.Namespace, _: Path) -> int:
    cache = await client.prune_environments(args.max_bytes)
    if args.json:
        print(json.dumps(cache, indent=2))
        return 0
    if args.max_bytes is None and not cache["max_bytes"]:  # 0 configured: no limit
        print("the cache has no size limit (Environments.max_bytes = 0), so nothing was removed; "
              "give --max-size to prune it to a size", file=sys.stderr)
    removed = cache["removed"]
    print(f"removed {len(removed)} environment{'s' * (len(removed) != 1)}"
          + (": " + ", ".join(h[:12] for h in removed) if removed else ""))
    limit = cache["max_bytes"] if args.max_bytes is None else args.max_bytes
    kept = [env["hash"][:12] for env in cache["environments"] if env["in_use"]]
    if (args.max_bytes is not None or limit) and cache["total_bytes"] > limit:
        why = f"active jobs use {', '.join(kept)}" if kept else "environments being built or handed out are kept"
        print(f"still over {_mib(limit)} MiB: {why}", file=sys.stderr)
    print(f"the cache holds {_mib(cache['total_bytes'])} MiB ({_limit(cache['max_bytes'])})")
    return 0


COMMANDS = {
    "run": cmd_run, "list": cmd_list, "show": cmd_show, "logs": cmd_logs,
    "cancel": cmd_cancel, "rerun": cmd_rerun, "delete": cmd_delete, "outputs": cmd_outputs,
    "env list": cmd_env_list, "env prune": cmd_env_prune, "pin": cmd_pin, "unpin": cmd_pin, "gc": cmd_gc,
    **cli_secrets.COMMANDS, **schedule_cli.COMMANDS,
}


if __name__ == "__main__":
    main()

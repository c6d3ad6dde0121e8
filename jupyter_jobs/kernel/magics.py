"""``%%job`` and ``%job``: run a cell, a project or a notebook as a job, and manage jobs."""
from __future__ import annotations

import argparse
import ast
import builtins
import os
import pickle
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import cloudpickle
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Int

from ..errors import JobsError
from ..shipping import notebook_files, submission
from ..spec import apply_overrides, load_spec_text, parse_set_option
from .client import TERMINAL, JobsClient
from .displays import adds_to_log
from .environment import envelope, wants_environment
from .packaging import check_size, collect_project, local_modules
from .view import JobView
from .waiting import OutWaiter, out_names

OUT_FILE = "_jj_out.pkl"
#: Where the job side names the ``--out`` variables that could not be serialised (jobside/cell.py).
ERRORS_KEY = "__jj_errors__"


class JobFailed(RuntimeError):
    """A job run with --wait did not succeed."""

    def __init__(self, job: dict) -> None:
        super().__init__(f"job {job['id']} {job['name']!r} {job['status']}: {job.get('message') or ''}")
        self.job = job


def unpassed_names(cell: str, namespace: dict, inputs: list[str]) -> list[str]:
    """Names the cell reads that the notebook defines but ``--in`` does not send (nor the cell assign,
    import or define first, nor Python build in), in the order the cell uses them."""
    try:
        tree = ast.parse(cell)
    except SyntaxError:  # magics or !commands: IPython's syntax; say nothing rather than guess
        return []
    bound: set[str] = set()
    used: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (used.append(node.id) if isinstance(node.ctx, ast.Load) else bound.add(node.id))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):  # parameters of functions and lambdas
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    skip = bound | set(inputs) | set(dir(builtins))
    return [n for n in dict.fromkeys(used) if n not in skip and n in namespace and not n.startswith("_")]


def _names(value: str | None) -> list[str]:
    return [n.strip() for n in (value or "").split(",") if n.strip()]


@magics_class
class JobMagics(Magics):
    """Send a cell, a project or a notebook to a GPU machine as a job, and follow it inline."""

    max_package_bytes = Int(
        100 * 2**20, help="Most bytes a cell or project job may ship (its error lists the largest files)."
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell, **kwargs)
        self._client: JobsClient | None = None
        #: The widgets of this session's jobs, by job id.
        self.widgets: dict[int, Any] = {}
        #: Run All: cells that use a pending --out value wait for its job (a pre_run_cell hook).
        self.waiter = OutWaiter(self.shell, lambda: self.client, self._receive)
        if self.shell is not None:
            self.waiter.register()

    @property
    def client(self) -> JobsClient:
        if self._client is None:
            try:
                self._client = JobsClient.from_environment()
            except JobsError as exc:
                raise UsageError(exc.message) from None
        return self._client

    # -- %%job -------------------------------------------------------------------------------
    @magic_arguments()
    @argument("--name", help="job name (default: cell)")
    @argument("--instance-type", dest="instance_type", help="instance type (`%%job list` ... see GET /instance-types)")
    @argument("--dataset", action="append", default=[], metavar="NAME[:VAR]", help="a dataset, with the variable holding its path")
    @argument("--volume", action="append", default=[], metavar="NAME[:VAR]",
              help="a writable volume (kept across jobs; $JOB_VOLUME_<NAME>), with a variable holding its path")
    @argument("--image", help="container image (Docker backend)")
    @argument("--env", action="append", default=[], metavar="K=V", help="an environment variable of the job")
    @argument("--max-runtime", dest="max_runtime", help="e.g. 90s, 2h; past it the job is stopped and fails")
    @argument("--in", dest="inputs", metavar="a,b", help="notebook variables to ship to the job (pickled)")
    @argument("--out", dest="outputs", metavar="c,d", help="job variables to bring back into the notebook")
    @argument("--project", metavar="DIR", help="ship this folder (ignore rules apply) and run the cell in it")
    @argument("--config", metavar="job.yaml", help="run this spec with its folder (the cell body is not used)")
    @argument("--wait", action="store_true", help="block until the job ends; raise JobFailed if it fails")
    @argument("--python", choices=("auto", "none"), default="auto",
              help="auto (default): the job gets this notebook's Python and packages; none: the image or host as it is")
    @cell_magic("job")
    def job(self, line: str, cell: str) -> Any:
        """Run this cell as a job on the Jupyter server's runner pool.

        Without --wait the cell returns at once and a widget follows the job; --out variables
        arrive when it succeeds. Local modules the cell imports from the notebook's folder are
        shipped with it; files are uploaded by content hash, so unchanged ones are never re-sent.
        """
        args = parse_argstring(self.job, line)
        if args.config:
            config = Path(args.config)
            if not config.is_file():
                raise UsageError(f"--config {args.config}: no such file")
            spec = self._apply_flags(load_spec_text(config.read_text(), args.config) or {}, args)
            if args.project:  # the folder as asked
                files = collect_project(Path(args.project), self.max_package_bytes)
            else:  # what `jupyter jobs run` ships: see jupyter_jobs.shipping
                try:
                    spec, files = submission(spec, config.parent, os.environ)
                except JobsError as exc:
                    raise UsageError(exc.message) from None
                check_size(files, self.max_package_bytes, config.parent)
            return self._submit(spec, files, args.wait, [])
        outputs = _names(args.outputs)
        spec = self._apply_flags({"name": args.name or "cell", "cmd": "python -m jupyter_jobs_jobside.cell",
                                  "env": {"vars": {"JJ_OUT": ",".join(outputs)}, "python": args.python}}, args)
        if outputs:
            spec["outputs"] = [OUT_FILE]
        if args.project:
            files = collect_project(Path(args.project), self.max_package_bytes)
        else:
            files = local_modules(cell, Path.cwd())
        files.update(self._cell_files(cell, _names(args.inputs)))
        check_size(files, self.max_package_bytes, Path(args.project or "."))
        return self._submit(spec, files, args.wait, outputs)

    def _apply_flags(self, spec: dict, args: argparse.Namespace) -> dict:
        if args.name:
            spec["name"] = args.name
        if args.instance_type:
            spec["instance-type"] = args.instance_type
        if args.image:
            spec["image"] = args.image
        if args.max_runtime:
            spec["max-runtime"] = args.max_runtime
        for item in args.dataset:
            name, _, var = item.partition(":")
            spec.setdefault("datasets", []).append({"name": name, "var": var} if var else name)
        for item in args.volume:
            name, _, var = item.partition(":")
            spec.setdefault("volumes", []).append({"name": name, "var": var} if var else name)
        for item in args.env:
            key, sep, value = item.partition("=")
            if not sep:
                raise UsageError(f"--env {item}: write it as NAME=value")
            spec.setdefault("env", {}).setdefault("vars", {})[key] = value
        return spec

    def _cell_files(self, cell: str, inputs: list[str]) -> dict[str, Path]:
        """The cell and its ``--in`` values (cloudpickle: the notebook's functions and classes travel by
        value), serialised now: one that cannot be is a UsageError naming it, before anything is queued."""
        staging = Path(tempfile.mkdtemp(prefix="jj-cell-"))
        (staging / "_jj_cell.py").write_text(cell)
        files = {"_jj_cell.py": staging / "_jj_cell.py"}
        if inputs:
            try:  # an --in value a running job of this kernel will deliver: wait for it (Run All)
                self.waiter.wait_for_names(inputs)
            except Exception as exc:
                raise UsageError(str(exc)) from None
            namespace = self.shell.user_ns
            missing = [n for n in inputs if n not in namespace]
            if missing:
                raise UsageError(f"--in: {', '.join(missing)} not defined in the notebook")
            for name in inputs:
                try:
                    cloudpickle.dumps(namespace[name])
                except Exception as exc:
                    kind = type(namespace[name])
                    raise UsageError(f"--in {name}: a {kind.__module__}.{kind.__qualname__} cannot be sent to a "
                                     f"job ({exc}); compute it in the job cell instead") from None
            (staging / "_jj_in.pkl").write_bytes(cloudpickle.dumps({n: namespace[n] for n in inputs}))
            files["_jj_in.pkl"] = staging / "_jj_in.pkl"
            unsent = unpassed_names(cell, namespace, inputs)
            if unsent:
                print(f"jupyter-jobs: the cell uses {', '.join(unsent)} from the notebook, not passed with --in: "
                      "the job will not have them", file=sys.stderr)
        return files

    def _receive(self, job_id: int, names: list[str] | None = None) -> list[str]:
        """Put a job's ``--out`` values (or only ``names``) into the notebook and return those that arrived;
        each one that could not is named."""
        try:
            raw = self.client.output(job_id, OUT_FILE)
        except JobsError:
            raw = None
        values = pickle.loads(raw) if raw is not None else {}
        errors = values.pop(ERRORS_KEY, {}) if isinstance(values, dict) else {}
        if raw is None:
            print(f"jupyter-jobs: job {job_id} left no --out values (see %job logs {job_id})", file=sys.stderr)
            errors = {name: "the job left no --out values" for name in names or []}
        elif names:
            sent = [*values, *errors]
            errors = {n: errors.get(n, f"the job did not send it (its --out: {', '.join(sent) or 'none'})")
                      for n in names if n not in values}
            values = {n: values[n] for n in names if n in values}
        arrived = []
        for name, data in values.items():
            try:
                self.shell.user_ns[name] = pickle.loads(data) if isinstance(data, bytes) else data
                arrived.append(name)
            except Exception as exc:  # e.g. an instance of a module this kernel does not have
                errors[name] = f"it could not be loaded here: {type(exc).__name__}: {exc}"
        for name, why in errors.items():
            print(f"jupyter-jobs: --out {name} did not arrive: {why}", file=sys.stderr)
        return arrived

    def _submit(self, spec: dict, files: dict[str, Path], wait: bool, outputs: list[str],
                on_done: Any = None) -> Any:
        client = self.client
        try:
            manifest = client.upload(files)
            environment = envelope(client) if wants_environment(spec) else None
            job = client.submit(spec, manifest, environment)
        except JobsError as exc:
            raise UsageError(exc.message) from None
        return self._track(job, outputs, wait, on_done)

    def _track(self, job: dict, outputs: list[str], wait: bool, on_done: Any = None) -> None:
        """Follow a submitted job: its log (and rich outputs) in the cell with ``wait``, else its view;
        its ``--out`` values arrive when it ends."""
        client = self.client

        def finished(done: dict) -> None:
            # Even when it failed: what could be saved arrives (a failure after the work keeps the work).
            # Once only: a cell that waited for the values (Run All) may have taken them already.
            pending = self.waiter.take(done["id"])  # a cancelled job's values will never come: none pending
            if outputs and pending and done["status"] in ("Succeeded", "Failed"):
                self._receive(done["id"])
            if on_done is not None:
                on_done(done)

        self.waiter.expect(job, outputs)
        if wait:
            done = client.follow(job["id"], lambda text: (sys.stdout.write(text), sys.stdout.flush()), show=_publish)
            finished(done)
            if done["status"] != "Succeeded":
                raise JobFailed(done)
            return None
        self._show(job, outputs, on_done=finished)
        return None

    def _show(self, job: dict, outputs: list[str], on_done: Any = None) -> None:
        """The job's view in the notebook: one bundle (ours for Lab, the widget elsewhere, text)."""
        from .widgets import JobWidget

        widget = JobWidget(self.client, job, on_done=on_done)
        self.widgets[job["id"]] = widget
        display(JobView(job, outputs, widget))
        widget.start()

    # -- %job --------------------------------------------------------------------------------
    @line_magic("job")
    def job_line(self, line: str) -> Any:
        """Manage jobs: %job run FILE | list | logs ID [-f] | attach ID | fetch ID | cancel ID | rerun ID | form

        %job run job.yaml [--set k=v] [--wait]          a project: the spec's folder is shipped
        %job run notebook.ipynb [--param x=1] [--wait]   a notebook, run headless (nbclient); the
                                                          executed notebook comes back as an output
        %job list [--status S] [--mine]
        %job logs ID [-f]        %job attach ID (replay the log and rich outputs, then follow)
        %job fetch ID [a,b]      load a job's --out values (after a kernel restart too)
        %job cancel ID           %job rerun ID [--set args.epochs=20] [--wait]
        %job form                a form with the server's instance types and datasets
        %job schedule job.yaml --cron "0 3 * * *" [--timezone Europe/Paris] [--name N] [--set k=v]
                                 run it on a schedule (the files it ships now are every run's);
                                 a notebook too: %job schedule nb.ipynb --cron "..." [--param x=1]
        """
        parser = _LineParser(prog="%job", add_help=False)
        sub = parser.add_subparsers(dest="action", required=True)
        run = sub.add_parser("run", add_help=False)
        run.add_argument("target")
        run.add_argument("--param", "-p", action="append", default=[])
        run.add_argument("--set", action="append", default=[])
        run.add_argument("--name")
        run.add_argument("--wait", action="store_true")
        lst = sub.add_parser("list", add_help=False)
        lst.add_argument("--status")
        lst.add_argument("--mine", action="store_true")
        for action in ("logs", "attach", "cancel"):
            p = sub.add_parser(action, add_help=False)
            p.add_argument("id", type=int)
            p.add_argument("-f", "--follow", action="store_true")
        fetch = sub.add_parser("fetch", add_help=False)
        fetch.add_argument("id", type=int)
        fetch.add_argument("names", nargs="*")
        rerun = sub.add_parser("rerun", add_help=False)
        rerun.add_argument("id", type=int)
        rerun.add_argument("--set", action="append", default=[])
        rerun.add_argument("--wait", action="store_true")
        sub.add_parser("form", add_help=False)
        schedule = sub.add_parser("schedule", add_help=False)
        schedule.add_argument("target")
        schedule.add_argument("--cron", required=True)
        schedule.add_argument("--timezone")
        schedule.add_argument("--name")
        schedule.add_argument("--param", "-p", action="append", default=[])
        schedule.add_argument("--set", action="append", default=[])
        args = parser.parse_args(shlex.split(line))
        try:
            return getattr(self, f"_do_{args.action}")(args)
        except JobsError as exc:
            raise UsageError(exc.message) from None

    def _do_run(self, args: argparse.Namespace) -> Any:
        target = Path(args.target)
        if not target.is_file():
            raise UsageError(f"%job run {args.target}: no such file")
        overrides = dict(parse_set_option(s) for s in args.set)
        if target.suffix == ".ipynb":  # the notebook, and what its cells import and name beside it
            files = {target.name: target, **notebook_files(target, target.parent)}
            check_size(files, self.max_package_bytes, target.parent)
            return self._run_notebook(target, args, files, overrides)
        if args.param:
            raise UsageError("--param is for notebooks; use --set args.NAME=VALUE for a spec")
        spec = apply_overrides(load_spec_text(target.read_text(), args.target) or {}, overrides)
        if args.name:
            spec["name"] = args.name
        try:  # what `jupyter jobs run` ships: see jupyter_jobs.shipping
            spec, files = submission(spec, target.parent, os.environ)
        except JobsError as exc:
            raise UsageError(exc.message) from None
        check_size(files, self.max_package_bytes, target.parent)
        return self._submit(spec, files, args.wait, [])

    def _run_notebook(self, target: Path, args: argparse.Namespace, files: dict[str, Path], overrides: dict) -> Any:
        spec = _notebook_spec(target, args, overrides)
        executed = spec["outputs"][0]

        def save(done: dict) -> None:  # the executed notebook, beside the original
            try:
                data = self.client.output(done["id"], executed)
            except JobsError:
                return
            (target.parent / f"{target.stem}.job{done['id']}.ipynb").write_bytes(data)

        return self._submit(spec, files, args.wait, [], on_done=save)

    def _do_list(self, args: argparse.Namespace) -> None:
        jobs = self.client.list(status=args.status, owner="me" if args.mine else None, limit=50)["jobs"]
        rows = [f"{j['id']:>5}  {j['status']:<10} {j['name'][:24]:<24} {j['instance_type']:<10} {j['message'][:60]}"
                for j in jobs]
        print("\n".join(["   ID  STATUS     NAME                     TYPE       MESSAGE", *rows]))

    def _do_logs(self, args: argparse.Namespace) -> None:
        if args.follow:
            self.client.follow(args.id, lambda text: (sys.stdout.write(text), sys.stdout.flush()))
        else:
            sys.stdout.write(self.client.log(args.id).decode("utf-8", "replace"))

    def _do_attach(self, args: argparse.Namespace) -> None:
        """The job's view, replaying its log and rich outputs from the start, then following it."""
        job = self.client.get(args.id)
        self._show(job, out_names(job))

    def _do_fetch(self, args: argparse.Namespace) -> None:
        """Load a job's ``--out`` values (all, or the names given) into the notebook, waiting for it to end:
        after a kernel restart or in a reopened notebook too (the job keeps them as an output)."""
        job = self.client.get(args.id)
        names = _names(",".join(args.names))
        if job["status"] not in TERMINAL:
            print(f"jupyter-jobs: waiting for job #{job['id']} '{job['name']}' to end; interrupt to stop waiting",
                  file=sys.stderr, flush=True)
            job = self.waiter.wait_for_job(job["id"])
        self.waiter.take(job["id"])  # delivered now: not again when its widget sees it end
        arrived = self._receive(job["id"], names or None)
        if arrived:
            print(f"jupyter-jobs: job #{job['id']} '{job['name']}' ({job['status']}) delivered {', '.join(arrived)}")

    def _do_cancel(self, args: argparse.Namespace) -> None:
        job = self.client.cancel(args.id)
        print(f"job {job['id']}: {job['status']} ({job['message']})")

    def _do_rerun(self, args: argparse.Namespace) -> None:
        job = self.client.rerun(args.id, dict(parse_set_option(s) for s in args.set))
        return self._track(job, out_names(job), args.wait)

    def _do_schedule(self, args: argparse.Namespace) -> None:
        """A schedule of a spec (its files shipped as ``%job run`` ships them) or of a notebook, run headless."""
        target = Path(args.target)
        if not target.is_file():
            raise UsageError(f"%job schedule {args.target}: no such file")
        overrides = dict(parse_set_option(s) for s in args.set)
        if target.suffix == ".ipynb":
            spec: dict = _notebook_spec(target, args, overrides)
            files = {target.name: target, **notebook_files(target, target.parent)}
        else:
            if args.param:
                raise UsageError("--param is for notebooks; use --set args.NAME=VALUE for a spec")
            spec = apply_overrides(load_spec_text(target.read_text(), args.target) or {}, overrides)
            if args.name:
                spec["name"] = args.name
            spec, files = submission(spec, target.parent, os.environ)
        check_size(files, self.max_package_bytes, target.parent)
        client = self.client
        body = {"spec": spec, "cron": args.cron, "files": client.upload(files), **(
            {"timezone": args.timezone} if args.timezone else {})}
        if wants_environment(spec):
            body["environment"] = envelope(client)
        made = client.create_schedule(body)
        upcoming = ", ".join(made["next_runs"][:3])
        print(f"schedule {made['id']} {made['name']!r}: {made['cron']} ({made['timezone']}); next runs {upcoming}")

    def _do_form(self, args: argparse.Namespace) -> Any:
        from .widgets import JobForm

        display(JobForm(self.client))


def _notebook_spec(target: Path, args: argparse.Namespace, overrides: dict) -> dict:
    """The spec that runs a notebook headless (nbclient), its executed copy kept as the job's output."""
    executed = f"{target.stem}.executed.ipynb"
    params = " ".join(f"-p {shlex.quote(p)}" for p in args.param)
    return apply_overrides({
        "name": args.name or target.stem,
        "cmd": f"python -m jupyter_jobs_jobside.notebook {shlex.quote(target.name)} \"$JOB_OUTPUTS/{executed}\" {params}".strip(),
        "outputs": [executed],
        "env": {"python": "auto"},
    }, overrides)


def _publish(output: dict) -> None:
    """Show a job's rich output (made safe) in the running cell, as the cell itself would have; the text of
    each is in the job's log already, printed above."""
    from IPython.display import clear_output, publish_display_data

    kind = output["output_type"]
    if not adds_to_log(output):
        return
    if kind == "clear_output":
        clear_output(wait=output["wait"])
    else:
        publish_display_data(output["data"], output["metadata"], transient=output.get("transient"),
                             update=kind == "update_display_data")


class _LineParser(argparse.ArgumentParser):
    """argparse that reports a one-line UsageError instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"%job: {message}; see %job?")


__all__ = ["JobMagics", "JobFailed", "TERMINAL"]

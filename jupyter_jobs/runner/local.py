"""The local backend (the embedded default): each job is a detached process group on this host.

The job's process is started in its own session, with stdout and stderr appended straight to
its log file, so it keeps running and logging while the server is down. A tiny ``sh`` wrapper
records the exit status in the job's ``run/`` folder, so a restarted server can still learn
how a job that ended meanwhile finished.

Where the host allows it (root, see :mod:`.cgroups`), each job also runs in its own cgroup with
its instance type's memory limit and a pids limit, everything in that cgroup is killed when the
job ends (daemons it left behind included), and it gets a private ``/dev/shm`` (a tmpfs in its
own mount namespace, freed with it). Otherwise jobs run as plain process groups, and
``GET /config`` says so (``backend_info.confinement``).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traitlets import Bool, Int

from ..errors import BackendError
from ..jobdir import JobDir
from ..models import JobRecord
from .backend import Backend, Exit, Launch
from .cgroups import Cgroups, JobCgroup
from .environment import job_command, job_environment, read_only_datasets
from .identity import INHERITED, RunAs
from .warm import WarmPool, entry_point, shapes_python

# $1: the command, $2: file that receives its exit status, $3: size of a private /dev/shm to
# mount ("" keeps the host's), then the files of the cgroups to join (writing 0: itself) before
# the job runs (shell builtins: no fork; and no preexec_fn, unsafe in a server with threads).
# The wrapper stays as the process group leader so that the status is written even when nobody
# is waiting for it. It catches TERM with a trap (an *ignored* signal would be inherited by the
# job; a trap is reset on exec), so on cancel it outlives the job and the job gets its whole
# grace period; a TERM that comes during the set-up, before the job started, means: do not start
# it (143, whatever the TERM did to a set-up step it interrupted). A TERM can also come while the
# wrapper forks the job, too late for the trap and too early for the job: so a stop is also a file
# ($2.stop, written before the signal), which the job's subshell reads, with TERM's default action
# restored, before it execs the command. Its variables are _jj_*: one named like a variable of the
# job's environment would change it.
_WRAPPER = (
    '_jj_stop=; trap "_jj_stop=1" TERM INT; _jj_cmd=$1 _jj_status=$2 _jj_shm=$3; shift 3; '
    'printf "%s" "$$" > "$_jj_status.pid"; '
    '_jj_end() { printf "%s" "$1" > "$_jj_status"; exit "$1"; }; '
    '_jj_stopped() { [ -n "$_jj_stop" ] || [ -e "$_jj_status.stop" ]; }; '
    '_jj_fail() { ! _jj_stopped || _jj_end 143; echo "jupyter-jobs: $1" >&2; _jj_end 125; }; '
    'for _jj_join; do echo 0 > "$_jj_join" || _jj_fail "could not join its cgroup ($_jj_join)"; done; '
    '[ -z "$_jj_shm" ] || mount -t tmpfs -o "size=$_jj_shm,mode=1777,nosuid,nodev" jupyter-job-shm /dev/shm '
    '|| _jj_fail "could not mount a private /dev/shm"; '
    '! _jj_stopped || _jj_end 143; '
    '( ! _jj_stopped || exit 143; exec /bin/sh -c "$_jj_cmd" ); _jj_end "$?"'
)
_EXIT_FILE = "exit-status"
#: The server's own variables a job with its own environment (env.python) does not inherit: they would
#: point its Python at the server's packages.
_NOT_INHERITED = frozenset({"VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH", "CONDA_PREFIX", "PYTHONUSERBASE"})
_HANDLE_FILE = "handle.json"
#: The handle less its pid, written before the job starts; the wrapper writes its pid beside the
#: exit status first thing, so a server killed between starting a job and writing its handle
#: finds the job again instead of starting it a second time.
_LAUNCH_FILE = "launch.json"


def _start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (tells a reused pid apart)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def _is_running(handle: dict[str, Any]) -> bool:
    ticks = _start_ticks(handle["pid"])
    if ticks is None or ticks != handle.get("start_ticks"):
        return False
    try:
        state = Path(f"/proc/{handle['pid']}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:  # it exited between the two reads
        return False
    return state != "Z"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _exited(pid: int, poll: float = 0.2) -> None:
    """Return when ``pid`` has exited, without a thread: a pidfd on the event loop."""
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):  # no pidfd (old kernel): poll
        while _start_ticks(pid) is not None and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            await asyncio.sleep(poll)
        return
    done = loop.create_future()
    loop.add_reader(fd, lambda: done.done() or done.set_result(None))
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def _read_status(handle: dict[str, Any]) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(Path(handle["exit_file"]).read_text().strip())
    return None


def _status_detail(code: int, oom_kills: int = 0, memory_mib: int = 0) -> str:
    if oom_kills and code != 0:
        what = f"more than its {memory_mib} MiB of memory" if memory_mib else "more memory than it may"
        return f"out of memory: it used {what} and the kernel killed it; ask for a bigger instance type"
    if code > 128 and code - 128 in signal.valid_signals():
        name = signal.Signals(code - 128).name
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}"
    return ""


def _private_shm_works(unshare: str) -> str:
    """Why a private /dev/shm cannot be mounted here; empty when it can (tried once)."""
    try:
        probe = subprocess.run(
            [unshare, "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "-o", "size=1m", "probe", "/dev/shm"],
            check=False, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unshare failed: {exc}"
    return "" if probe.returncode == 0 else f"unshare --mount failed: {probe.stderr.strip()[-200:]}"


@dataclass(frozen=True)
class Confinement:
    """What this host lets the backend do to confine jobs (found once)."""

    cgroups: Cgroups
    #: The unshare command that gives a job its own /dev/shm; empty when jobs share the host's.
    unshare: str
    #: Why jobs share the host's /dev/shm (empty when they do not).
    shared_shm_reason: str


class LocalBackend(Backend):
    """Runs jobs as local processes, in their job folder, with the server's environment."""

    name = "local"

    cgroups = Bool(
        True, config=True,
        help="Run each job in its own cgroup (memory limit of its instance type, pids_limit, and "
        "everything it started killed at its end) where the host allows it (root). False: process groups only.",
    )
    pids_limit = Int(
        4096, config=True,
        help="Most processes (threads count) one job may have, through its cgroup; 0: no limit.",
    )
    private_shm = Bool(
        True, config=True,
        help="Give each job its own /dev/shm (a tmpfs of half its memory limit, in its own mount "
        "namespace) where the host allows it (root). False: jobs share the host's /dev/shm.",
    )

    warm_interpreters = Int(
        1, config=True,
        help="Warm interpreters kept per job environment (interpreter), started ahead with the job side's "
        "imports done, each serving one %%job cell or notebook job (python -m jupyter_jobs_jobside.*) and "
        "then replaced; 0: every job starts cold. See docs/operators.md for what one costs in memory.",
    )
    warm_environments = Int(
        4, config=True,
        help="Most job environments (interpreters) kept warm at once; the least recently used one is let go.",
    )
    warm_min_memory_mib = Int(
        256, config=True,
        help="A confined job with a smaller memory limit than this starts cold: the imports a warm "
        "interpreter did ahead stay charged outside the job's cgroup.",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._children: dict[int, subprocess.Popen] = {}
        self._confinement: Confinement | None = None
        self._warm: WarmPool | None = None

    def confinement(self) -> Confinement:
        """What confines jobs here, found at first use (logging what does not)."""
        if self._confinement is None:
            groups = Cgroups.detect() if self.cgroups else Cgroups(reason="LocalBackend.cgroups is False")
            unshare, why = shutil.which("unshare") or "", ""
            if not self.private_shm:
                why = "LocalBackend.private_shm is False"
            elif os.geteuid() != 0:
                why = "the server does not run as root"
            elif not unshare or not shutil.which("mount"):
                why = "unshare or mount (util-linux) is not installed"
            else:
                why = _private_shm_works(unshare)
            if why:
                unshare = ""
            self._confinement = Confinement(groups, unshare, why)
            if not groups.available:
                self.log.warning(
                    "jupyter-jobs: local jobs are not confined (no memory or pids limit, and processes they "
                    "leave in their own session outlive them): %s", groups.reason,
                )
            if why:
                self.log.warning("jupyter-jobs: local jobs share the host's /dev/shm: %s", why)
        return self._confinement

    def describe(self) -> dict[str, Any]:
        found = self.confinement()
        facts = found.cgroups.describe()
        if found.cgroups.available:
            facts["pids_limit"] = self.pids_limit if "pids" in found.cgroups.limits else 0
        facts["private_shm"] = bool(found.unshare)
        if found.shared_shm_reason:
            facts["shared_shm_reason"] = found.shared_shm_reason
        return {"name": self.name, "isolation": "process", "gpus": "CUDA_VISIBLE_DEVICES", "confinement": facts}

    def _cgroup_name(self, job: JobRecord) -> str:
        return f"{self.server_id or 'local'}-{job.id}-{job.attempt}"

    async def prepare(self, launch: Launch) -> None:
        for dataset in launch.datasets:
            if not Path(dataset.path).exists():
                raise BackendError(
                    f"dataset {dataset.name!r} points at {dataset.path}, which does not exist on this "
                    "server; ask your admin to fix Cluster.datasets"
                )
        for volume in launch.volumes:
            if not Path(volume.path).is_dir():
                raise BackendError(f"volume {volume.name!r} points at {volume.path}, which is not a folder on this "
                                   "server; ask your admin to create it or fix Cluster.volumes")
        workdir = launch.folder.code / launch.job.spec.working_dir
        if not workdir.is_dir():
            raise BackendError(
                f"working-dir {launch.job.spec.working_dir!r} is not a folder of the job's files; "
                "ship it with inputs or change working-dir"
            )
        if launch.python is not None and launch.environments is not None:
            bin_dir, launch.environment_outcome = await launch.environments.venv(
                launch.python, launch.job.environment, say=launch.folder.say, report=launch.report)
            launch.python_bin = str(bin_dir)

    def environment(self, launch: Launch) -> dict[str, str]:
        return job_environment(
            launch.job,
            code=str(launch.folder.code),
            outputs=str(launch.folder.outputs),
            datasets={d.name: d.path for d in launch.datasets},
            gpus=launch.job.allocation.gpus, jobside=self.jobside_dir, displays=str(launch.folder.displays),
            volumes={v.name: v.path for v in launch.volumes},
        )

    async def start(self, launch: Launch) -> dict[str, Any]:
        folder, job = launch.folder, launch.job
        job_env = self.environment(launch)
        command = job_command(job, job_env)
        exit_file = folder.run / _EXIT_FILE
        exit_file.unlink(missing_ok=True)
        env = _process_environment(launch.python_bin, job_env, launch.run_as)
        env.update(launch.secrets)  # its process environment only: never its command, a file or argv
        run = _as_user(command, launch.run_as)
        memory_mib = job.allocation.memory_mib or launch.instance_type.memory_mib
        cgroup = await self._make_cgroup(job, memory_mib)
        unshare = self.confinement().unshare
        shm = (str(memory_mib * 2**19) if memory_mib else "50%") if unshare else ""
        # Datasets are read-only, as in a container: bind-mounted so in a mount namespace of the job's own.
        # `exec`: no shell of ours stays between the wrapper and the job (signals reach the job as before).
        if launch.datasets:
            run = f"exec {shlex.join(read_only_datasets(run, [d.path for d in launch.datasets]))}"
        argv = ["/bin/sh", "-c", _WRAPPER, "jupyter-job", run, str(exit_file), shm]
        argv += cgroup.join_files() if cgroup else []
        launching = {"exit_file": str(exit_file), "command": command,
                     "cgroup": list(cgroup.dirs) if cgroup else [], "memory_mib": memory_mib}
        Path(f"{exit_file}.pid").unlink(missing_ok=True)
        Path(f"{exit_file}.stop").unlink(missing_ok=True)
        folder.write_json(_LAUNCH_FILE, launching)
        if unshare:  # unshare execs the wrapper (same pid) in a mount namespace of its own
            argv = [unshare, "--mount", "--propagation", "private", *argv]
        cwd = folder.code / job.spec.working_dir
        try:
            with open(folder.log, "ab") as log:
                warm = await self._start_warm(launch, command, env, cwd, cgroup, shm, log.fileno())
                proc = warm or subprocess.Popen(
                    argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
                )
        except BaseException:
            if cgroup is not None:
                await asyncio.to_thread(_end_cgroup, cgroup)
            raise
        self._children[proc.pid] = proc
        handle = {"pid": proc.pid, "pgid": proc.pid, "start_ticks": _start_ticks(proc.pid), **launching,
                  "warm": warm is not None}
        folder.write_json(_HANDLE_FILE, handle)
        return handle

    def warm_up(self) -> None:
        """Start warm interpreters for the jobs of ``%%job`` and ``%job run`` sent from this server's Python."""
        if self.warm_interpreters > 0 and self._warm is None:
            self._warm = WarmPool(self.warm_interpreters, self.warm_environments, parent=self, log=self.log)
            env = _process_environment(str(Path(sys.executable).parent),
                                       {"PYTHONUNBUFFERED": "1", "PYTHONPATH": self.jobside_dir})
            interpreter = shutil.which("python", path=env["PATH"])
            if interpreter:
                self._warm.keep(interpreter, env)

    async def _start_warm(self, launch: Launch, command: str, env: dict[str, str], cwd: Path,
                          cgroup: JobCgroup | None, shm: str, log_fd: int) -> subprocess.Popen | None:
        """Hand the job to a warm interpreter when it is a job-side entry point that one can run exactly as a
        cold start would (see :mod:`.warm`); its process, or None to start it cold."""
        # A warm interpreter runs as the server: a job that runs as its owner starts cold, as its owner.
        found = entry_point(command, env) if self._warm is not None and launch.run_as is None else None
        interpreter = shutil.which("python", path=env.get("PATH", "")) if found else None
        if self._warm is None or found is None or interpreter is None:
            return None
        memory_mib = launch.job.allocation.memory_mib or launch.instance_type.memory_mib
        # Its own variables that shape how Python starts: a warm interpreter started without them (and
        # one kept warm with them would hold the job's values while idle). Relative PYTHONPATH entries
        # are relative to where Python starts. And cgroups do not move memory charged before a process
        # joined one: the preloaded imports of a warm interpreter stay outside the job's memory limit,
        # which matters for a small limit only. Datasets are made read-only by the cold start's mount
        # namespace, which a warm interpreter (already running) cannot enter.
        if (launch.datasets or any(shapes_python(name) for name in [*launch.job.spec.env, *launch.job.spec.secrets])
                or any(p and not p.startswith("/") for p in env.get("PYTHONPATH", "").split(os.pathsep))
                or (cgroup is not None and memory_mib and memory_mib < self.warm_min_memory_mib)):
            return None
        module, args = found
        job = {"env": env, "cwd": str(cwd), "module": module, "args": args, "shm": shm,
               "exit_file": str(launch.folder.run / _EXIT_FILE), "join": cgroup.join_files() if cgroup else []}
        proc = await self._warm.take(interpreter, env, job, log_fd, wait=module.endswith(".notebook"))
        self._warm.keep(interpreter, env)  # the next job of this environment finds one warm
        return proc

    def close(self) -> None:
        if self._warm is not None:
            self._warm.close()
            self._warm = None

    async def _make_cgroup(self, job: JobRecord, memory_mib: int) -> JobCgroup | None:
        """The job's cgroup with its limits (None when jobs are not confined here)."""
        groups = self.confinement().cgroups
        if not groups.available:
            return None
        try:
            return await asyncio.to_thread(groups.create, self._cgroup_name(job), memory_mib * 2**20, self.pids_limit)
        except OSError as exc:
            raise BackendError(
                f"could not make the job's cgroup ({exc}); fix the host's cgroups, or set "
                "LocalBackend.cgroups = False to run jobs unconfined"
            ) from exc

    async def wait(self, job: JobRecord, handle: dict[str, Any], on_state: Any = None) -> Exit:
        pid = handle["pid"]
        proc = self._children.get(pid)
        ours = proc is not None or _is_running(handle)
        if ours:
            await _exited(pid)
        returncode = None
        if proc is not None:
            returncode = proc.wait()  # reaps it; it has exited, so this does not block
            del self._children[pid]
        if ours or not handle.get("cgroup"):
            # Whatever the job left behind in its group. A group whose leader was not seen running
            # (it ended while the server was down) may be another's by now: its cgroup is enough.
            _signal_group(handle["pgid"], signal.SIGKILL)
        oom_kills = 0
        if handle.get("cgroup"):  # ... also outside its process group (daemons)
            oom_kills = await asyncio.to_thread(_end_cgroup, JobCgroup(tuple(handle["cgroup"])))
        status = _read_status(handle)
        if status is None and returncode is not None:
            status = 128 - returncode if returncode < 0 else returncode
        if status is None:
            return Exit(None, "its process ended while the server was down and left no exit status", lost=True)
        return Exit(status, _status_detail(status, oom_kills, handle.get("memory_mib", 0)))

    async def stop(self, job: JobRecord, handle: dict[str, Any], grace: float) -> None:
        """SIGTERM to the job's group (and, when confined, to all in its cgroup: daemons too);
        SIGKILL to whatever is left after ``grace``."""
        pgid = handle["pgid"]
        cgroup = JobCgroup(tuple(handle["cgroup"])) if handle.get("cgroup") else None
        if handle.get("exit_file"):  # before the signal: the wrapper reads it where the signal came too early
            with contextlib.suppress(OSError):
                Path(f"{handle['exit_file']}.stop").touch()
        _signal_group(pgid, signal.SIGTERM)
        if cgroup is not None:
            cgroup.signal(signal.SIGTERM)
        # A cgroup lists no zombies; a process group does (orphans nobody reaps count as alive).
        alive = (lambda: bool(cgroup.members())) if cgroup is not None else (lambda: _group_alive(pgid))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while loop.time() < deadline:
            if not alive():
                return
            await asyncio.sleep(0.05)
        _signal_group(pgid, signal.SIGKILL)
        if cgroup is not None:
            await asyncio.to_thread(cgroup.kill_all)

    async def recover(self, job: JobRecord, folder: JobDir) -> dict[str, Any] | None:
        handle = folder.read_json(_HANDLE_FILE)
        if handle:
            return handle
        launching = folder.read_json(_LAUNCH_FILE)
        if not launching:
            return None
        try:  # started, but the server stopped before it wrote the handle
            pid = int(Path(f"{launching['exit_file']}.pid").read_text().strip())
        except (OSError, ValueError, KeyError, TypeError):
            return None
        # Ended already (its status is written): never take a process that reuses its pid for it.
        ended = Path(launching["exit_file"]).exists()
        handle = {"pid": pid, "pgid": pid, "start_ticks": None if ended else _start_ticks(pid), **launching}
        folder.write_json(_HANDLE_FILE, handle)
        return handle

    async def remove_orphans(self, active: set[int]) -> list[str]:
        """Kill and remove the cgroups of this server's jobs that are no longer active, and
        remove the empty ones that jobs of any server left while it was down."""
        groups = self.confinement().cgroups
        prefix = f"{self.server_id or 'local'}-"
        removed = []
        for name in groups.leftovers(prefix):
            job_id = name[len(prefix):].split("-")[0]
            if job_id.isdigit() and int(job_id) not in active:
                await asyncio.to_thread(_end_cgroup, JobCgroup(tuple(str(b / name) for b in groups.bases)))
                removed.append(f"cgroup {name}")
        return removed + [f"empty cgroup {path}" for path in await asyncio.to_thread(groups.remove_empty)]


def _as_user(command: str, run_as: RunAs | None) -> str:
    """The shell command that runs ``command`` as ``run_as`` (as it is for None).

    The wrapper does, as root, what only root may (join the job's cgroup, mount its /dev/shm and its
    read-only datasets), and ``setpriv`` then becomes the owner for the job's own command. It stays in the
    wrapper's process group and cgroup, so a stop (TERM, then KILL) reaches it as before.
    """
    if run_as is None:
        return command
    setpriv = shutil.which("setpriv")
    if not setpriv:
        raise BackendError("jobs here run as their owners (JobManager.run_as_owner), which needs setpriv "
                           "(util-linux) on the server's PATH; install util-linux")
    return f"exec {shlex.join([setpriv, *run_as.setpriv()[1:], '/bin/sh', '-c', command])}"


def _process_environment(python_bin: str, job_env: dict[str, str], run_as: RunAs | None = None) -> dict[str, str]:
    """The environment of a job's process: the server's, then the job's variables, with its Python first on PATH.

    A job that runs as its owner gets of the server's variables only :data:`INHERITED` ones (the service's
    own secrets, its Hub token first, never reach a user's job), and its owner's HOME, USER and LOGNAME.
    """
    env = {k: v for k, v in os.environ.items() if not (python_bin and k in _NOT_INHERITED)}
    if run_as is not None:
        env = {k: v for k, v in env.items() if k in INHERITED or k.startswith("LC_")}
        env.update(run_as.environment())
    env.update(job_env)
    if not python_bin and os.environ.get("PYTHONPATH"):  # the host as it is: the server's path first
        env["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ["PYTHONPATH"], job_env.get("PYTHONPATH")) if p)
    elif python_bin:
        env["PYTHONNOUSERSITE"] = "1"  # exactly its packages: not those of the user's ~/.local either
    # The job's environment first (env.python), else the server's own: `python` is the job's python.
    bin_dir = python_bin or str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
    if python_bin and (Path(bin_dir).parent / "pyvenv.cfg").is_file():
        env["VIRTUAL_ENV"] = str(Path(bin_dir).parent)
    return env


def _end_cgroup(cgroup: JobCgroup) -> int:
    """Kill all that is left in a job's cgroup and remove it; return its count of OOM kills."""
    cgroup.kill_all()
    oom_kills = cgroup.oom_kills()
    cgroup.remove()
    return oom_kills

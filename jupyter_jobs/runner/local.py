"""The local backend (the embedded default): each job is a detached process group on this host.

The job's process is started in its own session, with stdout and stderr appended straight to
its log file, so it keeps running and logging while the server is down. A tiny ``sh`` wrapper
records the exit status in the job's ``run/`` folder, so a restarted server can still learn
how a job that ended meanwhile finished.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from .. import safeopen
from ..errors import BackendError
from ..jobdir import JobDir
from ..models import JobRecord
from .backend import Backend, Exit, Launch
from .environment import job_command, job_environment

# $1: the command, $2: file that receives its exit status. The wrapper stays as the process
# group leader so that the status is written even when nobody is waiting for it. It catches
# TERM with a no-op trap (an *ignored* signal would be inherited by the job; a trap is reset
# on exec), so on cancel it outlives the job and the job gets its whole grace period.
_WRAPPER = 'trap : TERM INT; /bin/sh -c "$1"; rc=$?; printf "%s" "$rc" > "$2"; exit "$rc"'
_EXIT_FILE = "exit-status"
_HANDLE_FILE = "handle.json"


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
    state = Path(f"/proc/{handle['pid']}/stat").read_text().rsplit(")", 1)[1].split()[0]
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


def _status_detail(code: int) -> str:
    if code > 128 and code - 128 in signal.valid_signals():
        name = signal.Signals(code - 128).name
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}"
    return ""


class LocalBackend(Backend):
    """Runs jobs as local processes, in their job folder, with the server's environment."""

    name = "local"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._children: dict[int, subprocess.Popen] = {}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "isolation": "process", "gpus": "CUDA_VISIBLE_DEVICES"}

    async def prepare(self, launch: Launch) -> None:
        for dataset in launch.datasets:
            if not Path(dataset.path).exists():
                raise BackendError(
                    f"dataset {dataset.name!r} points at {dataset.path}, which does not exist on this "
                    "server; ask your admin to fix Cluster.datasets"
                )
        workdir = launch.folder.code / launch.job.spec.working_dir
        if not workdir.is_dir():
            raise BackendError(
                f"working-dir {launch.job.spec.working_dir!r} is not a folder of the job's files; "
                "ship it with inputs or change working-dir"
            )

    def environment(self, launch: Launch) -> dict[str, str]:
        return job_environment(
            launch.job,
            code=str(launch.folder.code),
            outputs=str(launch.folder.outputs),
            datasets={d.name: d.path for d in launch.datasets},
            gpus=launch.job.allocation.gpus,
        )

    async def start(self, launch: Launch) -> dict[str, Any]:
        folder, job = launch.folder, launch.job
        job_env = self.environment(launch)
        command = job_command(job, job_env)
        exit_file = folder.run / _EXIT_FILE
        exit_file.unlink(missing_ok=True)
        env = {**os.environ, **job_env}
        # The server's own virtualenv first, so `python` is the notebook's python.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        with open(folder.log, "ab") as log:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", _WRAPPER, "jupyter-job", command, str(exit_file)],
                cwd=folder.code / job.spec.working_dir, env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
            )
        self._children[proc.pid] = proc
        handle = {
            "pid": proc.pid, "pgid": proc.pid, "start_ticks": _start_ticks(proc.pid),
            "exit_file": str(exit_file), "command": command,
        }
        folder.write_json(_HANDLE_FILE, handle)
        return handle

    async def wait(self, job: JobRecord, handle: dict[str, Any], on_state: Any = None) -> Exit:
        pid = handle["pid"]
        proc = self._children.get(pid)
        if proc is not None or _is_running(handle):
            await _exited(pid)
        returncode = None
        if proc is not None:
            returncode = proc.wait()  # reaps it; it has exited, so this does not block
            del self._children[pid]
        _signal_group(handle["pgid"], signal.SIGKILL)  # whatever the job left behind
        status = _read_status(handle)
        if status is None and returncode is not None:
            status = 128 - returncode if returncode < 0 else returncode
        if status is None:
            return Exit(None, "its process ended while the server was down and left no exit status", lost=True)
        return Exit(status, _status_detail(status))

    async def stop(self, job: JobRecord, handle: dict[str, Any], grace: float) -> None:
        pgid = handle["pgid"]
        _signal_group(pgid, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while loop.time() < deadline:
            if not _group_alive(pgid):
                return
            await asyncio.sleep(0.05)
        _signal_group(pgid, signal.SIGKILL)

    async def collect(self, job: JobRecord, folder: JobDir) -> None:
        """Outputs written relative to the working dir are moved into ``outputs/``."""
        await asyncio.to_thread(self._collect, job, folder)

    def _collect(self, job: JobRecord, folder: JobDir) -> None:
        # Only renames inside the job folder, from descriptors opened without following links:
        # an input folder may hold a symbolic link to anywhere, and what it leads to must never
        # be moved into outputs/ (and deleted with the job).
        try:
            code, outputs = safeopen.open_dir(folder.code), safeopen.open_dir(folder.outputs)
        except OSError as exc:
            self.log.warning("jupyter-jobs: job %s: outputs not collected: %s", job.id, exc)
            return
        try:
            for item in job.spec.outputs:
                self._collect_one(job, folder, code, outputs, item.path)
        finally:
            os.close(code)
            os.close(outputs)

    def _collect_one(self, job: JobRecord, folder: JobDir, code: int, outputs: int, path: str) -> None:
        """Move ``path`` from the working dir (else the code folder) to ``outputs/path``."""
        if folder.has_output(path):
            return
        for source in dict.fromkeys([posixpath.normpath(posixpath.join(job.spec.working_dir, path)), path]):
            try:
                safeopen.rename_beneath(code, source, outputs, path)
                return
            except (FileNotFoundError, NotADirectoryError):
                continue
            except (safeopen.Refused, ValueError, OSError) as exc:
                why = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
                self.log.warning("jupyter-jobs: job %s: output %r not collected from code/%s: %s",
                                 job.id, path, source, why)
                folder.say(f"output {path!r} not collected: code/{source} {why}")
                return

    async def recover(self, job: JobRecord, folder: JobDir) -> dict[str, Any] | None:
        return folder.read_json(_HANDLE_FILE)

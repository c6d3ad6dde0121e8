"""Warm interpreters for the local backend: a job-side entry point starts without starting Python.

A trivial ``%%job`` cell or notebook job spends most of its time starting an interpreter and
importing IPython, nbformat and cloudpickle. The local backend keeps ``warm_interpreters`` such
interpreters per environment (per interpreter path, and per the variables that shape how Python
starts), started ahead with those imports done (:mod:`jupyter_jobs.jobside.warm`). Each serves ONE
job: it is handed the job when the job starts, never before (an idle one holds no job's variables or
files), and a fresh one is started to replace it. It forks the job after taking on the job's cgroup
and private ``/dev/shm``, so the job runs with the exact environment, folder, log, session, cgroup
and exit-status handling of a cold start (see :meth:`WarmPool.take`, and ``LocalBackend.start``).

Only the job-side entry points run warm (``python -m jupyter_jobs_jobside.cell`` and
``python -m jupyter_jobs_jobside.notebook ARGS``, the words of ``%%job`` and ``%job run``, with
nothing else of the shell in them but quotes and ``"$VAR"``); any other command starts cold.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping

from traitlets.config import LoggingConfigurable

#: The entry points a warm interpreter runs (the job side's); anything else starts cold.
ENTRY_POINTS = ("jupyter_jobs_jobside.cell", "jupyter_jobs_jobside.notebook")
_COMMAND = re.compile(r"python -m (jupyter_jobs_jobside\.(?:cell|notebook))(?: +(.*))?")
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_")
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
#: Seconds a job waits for a warm interpreter that is still importing before it starts cold instead.
READY_TIMEOUT = 30.0


def shapes_python(name: str) -> bool:
    """Whether a variable changes how an interpreter starts (so a warm one must have started with it)."""
    return name.startswith(("PYTHON", "LD_", "MALLOC_", "LC_")) or name in ("LANG", "HOME", "TZ", "GLIBC_TUNABLES")


def entry_point(command: str, env: Mapping[str, str]) -> tuple[str, list[str]] | None:
    """``(module, args)`` of a job-side entry point as ``sh`` would run it, or None for any other command."""
    match = _COMMAND.fullmatch(command.strip())
    if not match:
        return None
    module, rest = match.group(1), match.group(2) or ""
    args = _words(rest, env)
    if args is None or (module.endswith(".cell") and args):
        return None
    return module, args


def _words(text: str, env: Mapping[str, str]) -> list[str] | None:
    """The words ``sh`` makes of ``text`` when it holds only safe characters, '...' and "...$VAR..."; else None."""
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == " ":
            i += 1
            continue
        word = []
        while i < n and text[i] != " ":
            char = text[i]
            if char in "'\"":
                end = text.find(char, i + 1)
                if end < 0:
                    return None
                inner = text[i + 1:end]
                if char == '"':
                    if any(c in inner for c in "\\`"):
                        return None
                    inner = _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), inner)
                    if "$" in _VAR.sub("", text[i + 1:end]):
                        return None  # $(...), $1, $?: not for us
                word.append(inner)
                i = end + 1
            elif char in _SAFE:
                word.append(char)
                i += 1
            else:
                return None
        words.append("".join(word))
    return words


@dataclass
class _Warm:
    """One warm interpreter, idle until :meth:`WarmPool.take` hands it a job."""

    proc: subprocess.Popen
    sock: socket.socket
    ready: asyncio.Future
    monitor: asyncio.Task | None = None
    #: Handed a job: its socket is the taker's to use and close.
    taken: bool = False
    started: float = field(default_factory=time.monotonic)


@dataclass
class _Environment:
    interpreter: str
    #: What the warm interpreters start with: the variables that shape Python, and PATH.
    env: dict[str, str]
    idle: list[_Warm] = field(default_factory=list)
    #: Set when one could not start (a broken interpreter): its jobs start cold, no more are tried.
    broken: str = ""


class WarmPool(LoggingConfigurable):
    """Keeps ``size`` warm interpreters per environment, for at most ``environments`` environments."""

    def __init__(self, size: int, environments: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.size, self.environments = size, environments
        self._envs: OrderedDict[tuple, _Environment] = OrderedDict()
        self._closed = False

    @staticmethod
    def key(interpreter: str, env: Mapping[str, str]) -> tuple:
        return (interpreter, tuple(sorted((k, v) for k, v in env.items() if shapes_python(k))))

    def keep(self, interpreter: str, env: Mapping[str, str]) -> None:
        """Keep interpreters warm for jobs with this interpreter and environment (the least recently
        used environment beyond ``environments`` is let go). Only the variables that shape Python
        and PATH are kept: the server's and the backend's, never a job's own."""
        if self._closed or self.size <= 0 or self.environments <= 0:
            return
        key = self.key(interpreter, env)
        if key not in self._envs:
            start_env = {k: v for k, v in env.items() if shapes_python(k) or k == "PATH"}
            self._envs[key] = _Environment(interpreter, start_env)
            while len(self._envs) > self.environments:
                _, gone = self._envs.popitem(last=False)
                for warm in gone.idle:
                    self._discard(warm)
        self._envs.move_to_end(key)
        self._refill(self._envs[key])

    def _refill(self, environment: _Environment) -> None:
        while not self._closed and not environment.broken and len(environment.idle) < self.size:
            try:
                warm = self._spawn(environment)
            except OSError as exc:
                environment.broken = f"could not start {environment.interpreter}: {exc}"
                self.log.warning("jupyter-jobs: no warm interpreters for %s", environment.broken)
                return
            environment.idle.append(warm)

    def _spawn(self, environment: _Environment) -> _Warm:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            proc = subprocess.Popen(
                [environment.interpreter, "-m", "jupyter_jobs_jobside.warm", str(theirs.fileno())],
                env=environment.env, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True, pass_fds=(theirs.fileno(),),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        warm = _Warm(proc, ours, asyncio.get_running_loop().create_future())
        warm.monitor = asyncio.ensure_future(self._watch(environment, warm))
        return warm

    async def _watch(self, environment: _Environment, warm: _Warm) -> None:
        """Learn that it is ready; then, while it is idle, that it ended (killed, or it failed)."""
        loop = asyncio.get_running_loop()
        try:
            with contextlib.suppress(OSError, ValueError):
                message = await loop.sock_recv(warm.sock, 65536)
                if message and not warm.ready.done():
                    warm.ready.set_result(json.loads(message))
                    await loop.sock_recv(warm.sock, 1)  # returns only when it ended
        finally:
            if not warm.taken:  # the socket's reader is gone now: its number may be reused safely
                warm.sock.close()
        if not warm.ready.done():
            warm.ready.set_result(None)
            environment.broken = environment.broken or f"{environment.interpreter} ended before it was ready"
            self.log.warning("jupyter-jobs: no warm interpreters for %s: %s", environment.interpreter, environment.broken)
        if warm in environment.idle:
            environment.idle.remove(warm)
            self._discard(warm)
            self._refill(environment)

    async def take(self, interpreter: str, env: Mapping[str, str], job: dict[str, Any], log_fd: int, *,
                   wait: bool) -> subprocess.Popen | None:
        """Hand ``job`` (the message :mod:`jupyter_jobs.jobside.warm` reads) and the job's log to a warm
        interpreter of this environment; its process, or None (none is warm: start it cold).

        With ``wait``, one still importing is waited for (a notebook job: its cold start imports as much);
        without, only one that is ready is taken (a cell's cold start imports less than a warm one does).
        """
        environment = self._envs.get(self.key(interpreter, env))
        if environment is None or self._closed:
            return None
        self._envs.move_to_end(self.key(interpreter, env))
        while environment.idle:
            ready = [w for w in environment.idle if w.ready.done()]
            if not ready and not wait:
                return None
            warm = (ready or environment.idle)[0]
            environment.idle.remove(warm)
            self._refill(environment)  # its replacement starts importing now
            try:
                answer = await asyncio.wait_for(asyncio.shield(warm.ready), READY_TIMEOUT)
            except asyncio.TimeoutError:
                answer = None
            if answer is None or warm.proc.poll() is not None:
                self._discard(warm)
                continue
            warm.taken = True
            if warm.monitor is not None:
                warm.monitor.cancel()
                await asyncio.gather(warm.monitor, return_exceptions=True)
            try:
                socket.send_fds(warm.sock, [json.dumps(job).encode()], [log_fd])
            except OSError as exc:
                self.log.warning("jupyter-jobs: a warm interpreter did not take its job (%s); starting it cold", exc)
                warm.sock.close()
                self._discard(warm)
                continue
            warm.sock.close()
            return warm.proc
        return None

    def _discard(self, warm: _Warm) -> None:
        """End an idle warm interpreter (it never ran a job) and reap it; its watcher closes its socket."""
        if warm.monitor is not None and not warm.monitor.done() and warm.monitor is not asyncio.current_task():
            warm.monitor.cancel()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(warm.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            warm.proc.wait(timeout=5)

    def idle_pids(self, ready: bool = False) -> list[int]:
        """The pids of the warm interpreters waiting for a job (``ready``: only those done importing)."""
        return [w.proc.pid for e in self._envs.values() for w in e.idle if not ready or w.ready.done()]

    def close(self) -> None:
        """End every idle warm interpreter (jobs that warm interpreters run keep running)."""
        self._closed = True
        for environment in self._envs.values():
            for warm in environment.idle:
                self._discard(warm)
            environment.idle.clear()
        self._envs.clear()

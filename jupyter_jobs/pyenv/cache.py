"""The environment cache: one virtual environment per lock hash, built once with uv, evicted by age of use.

Layout under the cache's folder (the server's data dir, or a shared file system for Slurm)::

    envs/<hash>/             a finished venv; its jupyter-jobs-env.json says what it holds, and the
                             file's modification time is when it was last handed out
    targets/<hash>/          the same packages installed into a plain folder (``uv pip install --target``)
                             for Linux x86_64, to be copied into a container image of that Python
    locks/<hash>.lock        the fcntl lock held while one process builds, hands out or removes <hash>
    tmp/<hash>.<random>/     a build in progress (or the leftovers of one that crashed)
    uv-cache/                uv's download and wheel cache, shared by every build
    wheels/<sha256>/         local packages' wheels (:class:`~.wheels.WheelStore`), installed by digest

A build happens in ``tmp/`` and is renamed into ``envs/`` only once it is complete (the venv is made
``--relocatable`` so the move keeps it working), so ``envs/<hash>`` either holds a whole environment
or does not exist. A lock's local packages are installed from the wheels of :attr:`EnvironmentCache.wheels`
named by their digests: build them first with ``cache.wheels.build_all(lock)`` (or ship them there). A failed build leaves nothing behind and raises
:class:`~jupyter_jobs.errors.EnvironmentBuildFailed` with uv's own message.

Concurrent callers build once: callers in one process queue on an :class:`asyncio.Lock` per hash,
processes (and Slurm nodes sharing the folder) on the per-hash file lock. The blocking work runs in
a thread, never on the event loop; :meth:`EnvironmentCache.ensure_sync` is the same for callers
without one (a batch script on a node).
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import platform
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..errors import EnvironmentBuildFailed
from .lock import LocalPackage, Lock
from .uv import find_uv, run_uv
from .wheels import WheelStore

#: The record inside each environment: its lock, when it was built and how long that took.
METADATA = "jupyter-jobs-env.json"

log = logging.getLogger(__name__)


#: The two forms an environment takes: a virtual environment, or a folder of packages for an image.
KINDS = {"venv": "envs", "target": "targets"}
#: The platform of ``target`` folders when the caller names none (uv's name: manylinux wheels up to that glibc).
TARGET_PLATFORM = f"{platform.machine() or 'x86_64'}-manylinux_2_28"

#: Called with (packages installed so far, packages in all, what uv is doing now or "") while a build runs.
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class EnvironmentInfo:
    """One finished environment of the cache."""

    hash: str
    path: Path
    python: str
    size_bytes: int
    last_used: float
    built_at: float
    build_seconds: float
    kind: str = "venv"
    packages: int = 0

    def to_json(self) -> dict:
        return {"hash": self.hash, "kind": self.kind, "python": self.python, "packages": self.packages,
                "size_bytes": self.size_bytes, "last_used": self.last_used, "built_at": self.built_at,
                "build_seconds": self.build_seconds}


@dataclass(frozen=True)
class Prepared:
    """An environment handed out: where it is, and whether this call built it (how long that took)."""

    path: Path
    built: bool
    seconds: float


class EnvironmentCache:
    """Virtual environments under ``root``, one per :attr:`Lock.hash`.

    Parameters
    ----------
    root
        The cache's folder; created when missing. Builds, locks and uv's cache live beneath it, so a
        rename from ``tmp/`` to ``envs/`` never crosses file systems.
    uv
        The uv executable; by default the one the ``uv`` package ships.
    """

    def __init__(self, root: str | os.PathLike[str], uv: str | None = None,
                 uv_cache: str | os.PathLike[str] | None = None, allow_builds: bool = False) -> None:
        self.root = Path(root)
        self.uv = uv or find_uv()
        #: uv's download and wheel cache (default ``<root>/uv-cache``); several caches may share one.
        self.uv_cache = Path(uv_cache) if uv_cache else self.root / "uv-cache"
        #: Whether an install may build a source distribution (that runs its code here); off: wheels only.
        self.allow_builds = allow_builds
        #: Builds this object has run (the others were found done): for tests and the job's record.
        self.builds = 0
        self._locks: dict[str, asyncio.Lock] = {}
        for sub in ("envs", "targets", "locks", "tmp", "uv-cache"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        #: Local packages' wheels, by digest; :meth:`ensure` installs a lock's local packages from here.
        self.wheels = WheelStore(self.root / "wheels", self.uv, self.uv_cache)

    def path(self, env_hash: str, kind: str = "venv", target: str = "") -> Path:
        """Where the environment of ``env_hash`` lives once built (a ``target`` folder: for that platform)."""
        return self.root / KINDS[kind] / (f"{env_hash}.{target}" if kind == "target" and target else env_hash)

    async def ensure(self, lock: Lock) -> Path:
        """The folder of ``lock``'s environment, built first if it is not there yet.

        Raises
        ------
        EnvironmentBuildFailed
            With uv's message and the packages it names; nothing is left in the cache. Also when a local
            package has no digest, or :attr:`wheels` lacks its wheel.
        """
        in_process = self._locks.setdefault(lock.hash, asyncio.Lock())
        async with in_process:
            return await asyncio.to_thread(self.ensure_sync, lock)

    def ensure_sync(self, lock: Lock) -> Path:
        """:meth:`ensure` for callers without an event loop; blocks until built."""
        return self.prepare_sync(lock).path

    async def prepare(self, lock: Lock, *, kind: str = "venv", say: Callable[[str], None] | None = None,
                      progress: Progress | None = None, target: str = "") -> Prepared:
        """:meth:`ensure`, saying whether this call built it; ``say`` gets uv's output, ``progress`` the count
        of packages installed while it builds. Jobs of one server waiting for the same hash wait for one build."""
        key = f"{kind}:{lock.hash}:{target}"
        in_process = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with in_process:
                # A thread of its own: a build may take minutes, and must not hold the loop's small default
                # executor (submits, Docker calls) meanwhile.
                return await _in_thread(lambda: self.prepare_sync(lock, kind=kind, say=say, progress=progress,
                                                                  target=target))
        finally:
            if not in_process.locked() and self._locks.get(key) is in_process:
                del self._locks[key]

    def prepare_sync(self, lock: Lock, *, kind: str = "venv", say: Callable[[str], None] | None = None,
                     progress: Progress | None = None, target: str = "") -> Prepared:
        """:meth:`prepare` for callers without an event loop (a batch script on a node). ``target`` is the
        platform of a ``target`` folder, as uv names it (``x86_64-manylinux_2_36``; default :data:`TARGET_PLATFORM`)."""
        final = self.path(lock.hash, kind, target)
        started = time.monotonic()
        built = False
        with self._file_lock(_lock_name(kind, final.name)):
            if not (final / METADATA).is_file():
                self._build(lock, final, kind, say, progress, target or TARGET_PLATFORM)
                built = True
            # Marks it used (prune() goes by this time), with the clock's own precision: a plain
            # utime() takes the kernel's coarse tick, which ranks two uses a millisecond apart as one.
            now = time.time_ns()
            os.utime(final / METADATA, ns=(now, now))
        return Prepared(final, built, time.monotonic() - started)

    def touch(self, env_hash: str, kind: str = "venv") -> None:
        """Mark the environments of ``env_hash`` of ``kind`` used now (for any target platform)."""
        now = time.time_ns()
        for entry in (self.root / KINDS[kind]).glob(f"{env_hash}*"):
            if entry.name == env_hash or entry.name.startswith(f"{env_hash}."):
                with contextlib.suppress(OSError):
                    os.utime(entry / METADATA, ns=(now, now))

    def list(self) -> list[EnvironmentInfo]:
        """The finished environments (venvs and image folders), least recently used first."""
        infos = []
        for kind, sub in KINDS.items():
            for entry in (self.root / sub).iterdir():
                try:
                    meta = json.loads((entry / METADATA).read_text())
                    used = (entry / METADATA).stat().st_mtime
                    lock = meta["lock"]
                    count = len(lock.get("packages", [])) + len(lock.get("local", []))
                    infos.append(EnvironmentInfo(meta.get("hash", entry.name), entry, lock["python"], _size(entry), used,
                                                 meta["built_at"], meta["build_seconds"], kind, count))
                except (OSError, ValueError, KeyError, TypeError, AttributeError):
                    continue  # removed meanwhile, or not ours
        return sorted(infos, key=lambda info: info.last_used)

    def prune(self, max_bytes: int, in_use: set[str]) -> list[str]:
        """Remove least recently used environments until the cache holds at most ``max_bytes``.

        An environment in ``in_use`` (the hashes running jobs use) or being built or handed out at
        this moment is never removed, so the cache may stay above ``max_bytes``. Call it from the same
        event loop as :meth:`ensure`, after the hashes handed out are added to ``in_use``.

        Returns
        -------
        list[str]
            The hashes removed, oldest use first.
        """
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be 0 or more, got {max_bytes}")
        infos = self.list()
        total = sum(info.size_bytes for info in infos)
        removed = []
        for info in infos:
            if total <= max_bytes:
                break
            if info.hash in in_use:
                continue
            with self._file_lock(_lock_name(info.kind, info.path.name), blocking=False) as held:
                if not held:
                    continue  # another process builds or hands it out right now
                try:
                    if (info.path / METADATA).stat().st_mtime > info.last_used:
                        continue  # handed out since it was listed (a job starting now, here or elsewhere)
                    trash = Path(tempfile.mkdtemp(prefix=f"{info.hash}.", dir=self.root / "tmp"))
                    info.path.rename(trash / "env")  # gone from envs/ at once; the slow delete follows
                except OSError:  # removed meanwhile (another prune)
                    continue
                shutil.rmtree(trash, ignore_errors=True)
            total -= info.size_bytes
            removed.append(info.hash)
            log.info("removed Python environment %s (%d bytes, last used %s)", info.hash[:12], info.size_bytes,
                     time.ctime(info.last_used))
        return removed

    # -- building --------------------------------------------------------------------------------

    def _build(self, lock: Lock, final: Path, kind: str = "venv", say: Callable[[str], None] | None = None,
               progress: Progress | None = None, target: str = TARGET_PLATFORM) -> None:
        """Build ``lock`` in ``tmp/`` and rename it to ``final``; the caller holds the file lock."""
        wheels = [self._wheel(lock, package) for package in lock.local]
        prefix = f"{lock.hash}.{kind}."
        for stale in (self.root / "tmp").glob(f"{prefix}*"):
            shutil.rmtree(stale, ignore_errors=True)  # a build that crashed; we hold its lock
        started = time.monotonic()
        total = len(lock.packages) + len(lock.local)
        log.info("building Python environment %s (%s): Python %s, %d packages", lock.hash[:12], kind, lock.python,
                 total)
        staging = Path(tempfile.mkdtemp(prefix=prefix, dir=self.root / "tmp"))
        try:
            env = staging / "env"
            if kind == "venv":
                self._uv(lock, say, "venv", "--relocatable", "--python", lock.python, str(env))
                where = ["--python", str(env / "bin" / "python")]
            else:  # packages for an image's Python of this version, whatever Python the server has
                env.mkdir()
                where = ["--target", str(env), "--python-version", lock.python, "--python-platform", target]
            requirements = staging / "requirements.txt"
            requirements.write_text(lock.requirements())
            if lock.packages or wheels:
                pinned = ["-r", str(requirements)] if lock.packages else []
                # The lock is the whole environment, every dependency pinned: installed as it is (--no-deps),
                # an exact replica, and no resolution to wait for.
                with _counting(env, total, progress):
                    self._uv(lock, _noting(say, progress, total), "pip", "install", "--no-deps", *where, *pinned,
                             *map(str, wheels), *lock.pip_options, *([] if self.allow_builds else ["--no-build"]))
            seconds = time.monotonic() - started
            meta = {"hash": lock.hash, "kind": kind, "target": target if kind == "target" else "", "lock": lock.to_dict(), "built_at": time.time(),
                    "build_seconds": seconds}
            (env / METADATA).write_text(json.dumps(meta, indent=1))
            env.rename(final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.builds += 1
        log.info("built Python environment %s in %.1f s", lock.hash[:12], seconds)

    def _uv(self, lock: Lock, say: Callable[[str], None] | None, *args: str) -> None:
        """Run one uv command of ``lock``'s build; its failure becomes :class:`EnvironmentBuildFailed`."""
        names = [p.name for p in lock.packages] + [p.name for p in lock.local]
        run_uv(self.uv, *args, doing=f"building Python environment {lock.hash[:12]}", cache_dir=self.uv_cache,
               names=names, env_hash=lock.hash, say=say)

    def _wheel(self, lock: Lock, package: LocalPackage) -> Path:
        """The stored wheel of one of ``lock``'s local packages."""
        wheel = self.wheels.path(package.digest)
        if wheel is None:
            what = "has no wheel digest" if not package.digest else f"has no wheel {package.digest[:12]} in {self.wheels.root}"
            raise EnvironmentBuildFailed(f"local package {package.name} {what}; build it first "
                                         "(EnvironmentCache.wheels.build_all(lock)) or send its wheel",
                                         packages=(package.name,), env_hash=lock.hash)
        return wheel

    @contextlib.contextmanager
    def _file_lock(self, env_hash: str, blocking: bool = True) -> Iterator[bool]:
        """Hold ``locks/<hash>.lock``; yields False when ``blocking`` is off and someone else holds it."""
        fd = os.open(self.root / "locks" / f"{env_hash}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing releases the lock


async def _in_thread(function: Callable[[], Prepared]) -> Prepared:
    """``function()`` on a daemon thread of its own (one a stopping server does not wait for)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def deliver(setter: Callable, value: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(lambda: future.done() or setter(value))

    def target() -> None:
        try:
            result = function()
        except BaseException as exc:  # handed to the awaiting coroutine
            deliver(future.set_exception, exc)
        else:
            deliver(future.set_result, result)

    threading.Thread(target=target, name="jupyter-jobs-env-build", daemon=True).start()
    return await future


def _lock_name(kind: str, folder: str) -> str:
    """The lock file's name of an environment's folder (a venv's is its hash, as it always was)."""
    return folder if kind == "venv" else f"{kind}-{folder}"


@contextlib.contextmanager
def _counting(env: Path, total: int, progress: Progress | None, every: float = 0.5) -> Iterator[None]:
    """While the body installs into ``env``, call ``progress(installed, total)`` as ``.dist-info`` folders appear."""
    if progress is None:
        yield
        return
    done = threading.Event()

    def count() -> None:
        last = -1
        while not done.wait(every):
            found = sum(1 for _ in env.glob("lib/python*/site-packages/*.dist-info")) + sum(1 for _ in env.glob("*.dist-info"))
            if found != last:
                last = found
                with contextlib.suppress(Exception):
                    progress(min(found, total), total, "")

    watcher = threading.Thread(target=count, name="jupyter-jobs-env-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
        with contextlib.suppress(Exception):
            progress(total, total, "")


def _noting(say: Callable[[str], None] | None, progress: Progress | None, total: int) -> Callable[[str], None] | None:
    """``say``, also passing uv's downloads to ``progress`` (they take the time before anything is installed)."""
    if progress is None:
        return say

    def note(line: str) -> None:
        if say is not None:
            say(line)
        text = line.strip()
        if text.startswith(("Downloading ", "Downloaded ", "Prepared ", "Resolved ")):
            with contextlib.suppress(Exception):
                progress(0, total, text[0].lower() + text[1:])

    return note


def _size(folder: Path) -> int:
    """Bytes of the files beneath ``folder`` (links not followed), without recursion."""
    total, stack = 0, [folder]
    while stack:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    return total

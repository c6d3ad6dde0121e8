"""The server's Python environments: a job's lock at submit, its venv before it starts, the cache's bounds.

The manager creates one :class:`Environments` and calls it at two moments:

- **submit** (:meth:`Environments.lock_for`): the spec's ``env.python`` and what the submitting client
  sent (its capture, the interpreter it runs in, the wheels of its local packages, uploaded as blobs)
  become the job's :class:`~.lock.Lock`, written beside the job's files as ``environment.lock.json``.
  A mistake (a requirements file that is missing, a package the index lacks) is refused then, with
  uv's words.
- **prepare** (:meth:`Environments.venv`, called by the local and Slurm backends; the Docker backend
  builds an image from :meth:`Environments.target`): the environment is made ready, built once per hash
  for every job that wants it, while the job is Preparing with "building environment 3f2a…: 14 of 57
  packages" as its message and uv's output in its log.

Nothing here knows about backends or the pool: they hand in what to say and where.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping

from traitlets import Bool, Int, Unicode
from traitlets.config import LoggingConfigurable

from ..errors import EnvironmentBuildFailed, FieldProblem, SpecError
from .cache import EnvironmentCache, Prepared
from .lock import Lock, capture
from .resolve import resolve
from .spec import REMOTE_URLS, PythonEnv, _pip_options

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: The job's lock, beside its code (written at submit, read before each attempt and by a rerun).
LOCK_FILE = "environment.lock.json"
#: Distributions a capture leaves out: jupyter-jobs runs the job, it is not the job's (the job side
#: ships as files with each job), and it is rarely on the package index in the version a notebook has.
NOT_CAPTURED = frozenset({"jupyter-jobs"})


def client_capture() -> Lock:
    """The lock of the environment this (client) interpreter runs in, less :data:`NOT_CAPTURED`."""
    lock = capture()
    return replace(lock, packages=tuple(p for p in lock.packages if p.name not in NOT_CAPTURED),
                   local=tuple(p for p in lock.local if p.name not in NOT_CAPTURED))


def same_packages(a: Lock, b: Lock) -> bool:
    """Whether two locks name the same Python and distributions (a local package by where it is
    installed from, not by the digest of a wheel built from it: an interpreter runs its source)."""
    return (a.python == b.python and a.packages == b.packages
            and [(p.name, p.url) for p in a.local] == [(p.name, p.url) for p in b.local])


class Environments(LoggingConfigurable):
    """Builds and hands out the Python environments jobs ask for (``env.python``)."""

    root = Unicode(
        "", config=True, help="Folder of the environment cache (default: <data_dir>/environments). For Slurm it "
        "must be on a file system the nodes share, as the data dir is.",
    )
    max_bytes = Int(
        20 * 2**30, config=True, help="Most bytes the environment cache keeps; past it the least recently used "
        "environments not used by an active job are removed after each build. 0: no limit.",
    )
    uv_cache_dir = Unicode(
        "", config=True, help="uv's download and wheel cache, shared by every build (default: <root>/uv-cache).",
    )
    allow_source_builds = Bool(
        False, config=True, help="Let packages be built from source distributions, while resolving and "
        "installing (building one runs its code in the server). Off: every package must have a wheel.",
    )
    resolution_ttl = Int(
        3600, config=True, help="Seconds a resolved env.python (its packages and requirements file, by content) is "
        "reused without asking the package index again; newer releases are picked up after it. 0: always resolve.",
    )
    same_interpreter = Bool(
        True, config=True, help="Local backend: run a job with the interpreter it was submitted from (the "
        "notebook's kernel, or the server's) when that is on this host and still has exactly the job's "
        "packages: no build at all.",
    )

    def __init__(self, data_dir: str | os.PathLike[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        root = Path(self.root or Path(data_dir) / "environments")
        self.cache = EnvironmentCache(root, uv_cache=self.uv_cache_dir or None, allow_builds=self.allow_source_builds)
        self._server_lock: tuple[tuple, Lock] | None = None
        self._pruning = asyncio.Lock()
        self._prunes: set[asyncio.Task] = set()
        #: interpreter -> (what its site folders looked like, its lock): asked once per change.
        self._interpreters: dict[str, tuple[tuple, Lock | None]] = {}

    # -- submit ---------------------------------------------------------------------------------
    def lock_for(self, python: PythonEnv, *, folder: Path, sent: Mapping[str, Any] | None,
                 wheels: Callable[[str], Path | None], base: Lock | None = None,
                 base_interpreter: str | None = None) -> tuple[Lock, dict[str, Any]]:
        """The lock of a job (blocking: uv may resolve) and the summary its record keeps.

        Parameters
        ----------
        folder
            The job's files (``requirements-file`` is read there).
        sent
            The envelope's ``environment``: ``lock`` (the client's capture), ``interpreter`` (its path)
            and ``wheels`` (``{sha256: file name}`` of its local packages, uploaded as blobs).
        wheels
            The uploaded blob of a digest, or None.
        base, base_interpreter
            A rerun's lock (what ``auto`` means for it) and the interpreter its job was submitted from.
        """
        sent = sent or {}
        unknown = sorted(set(map(str, sent)) - {"lock", "interpreter", "wheels"})
        if unknown:
            raise SpecError(f"unknown key {unknown[0]!r}; it has lock, interpreter and wheels", "environment")
        client = check_lock(Lock.from_dict(sent["lock"], "environment.lock")) if sent.get("lock") is not None else None
        interpreter = sent.get("interpreter") if client is not None else None
        if interpreter is not None and not isinstance(interpreter, str):
            raise SpecError("must be the path of the client's Python", "environment.interpreter")
        if base is not None:  # a rerun: its job's lock, and the interpreter that job was sent from
            interpreter = base_interpreter
        auto = base or client
        ours = auto is None
        if ours:  # REST with no capture (curl, the Lab panel): the server's own environment
            auto, interpreter = self.server_lock(), sys.executable
        lock = self._resolve(python, auto, folder)
        lock = self._local_wheels(lock, sent.get("wheels") or {}, wheels, build_here=ours)
        summary: dict[str, Any] = {
            "hash": lock.hash, "python": lock.python, "packages": len(lock.packages) + len(lock.local),
            "local": [p.name for p in lock.local], "source": python.mode,
        }
        if interpreter and same_packages(lock, auto):
            summary["interpreter"] = interpreter
        return lock, summary

    def _resolve(self, python: PythonEnv, auto: Lock, folder: Path) -> Lock:
        """:func:`resolve`, remembering what ``uv pip compile`` said for :attr:`resolution_ttl` seconds: the
        same packages (and requirements file, and preferences) give the same lock without asking the index."""
        if python.mode != "custom" or not (python.packages or python.requirements_file) or not self.resolution_ttl:
            return resolve(python, auto=auto, folder=folder, cache_dir=self.cache.uv_cache,
                           allow_builds=self.allow_source_builds)
        try:
            requirements = (folder / python.requirements_file).read_bytes() if python.requirements_file else b""
        except OSError:
            requirements = b"?"  # resolve() says what is wrong with it
        key = hashlib.sha256(json.dumps([python.to_value(), hashlib.sha256(requirements).hexdigest(), auto.hash,
                                         self.allow_source_builds], sort_keys=True).encode()).hexdigest()
        path = self.cache.root / "resolved" / f"{key}.json"
        with contextlib.suppress(OSError, ValueError, SpecError, KeyError, TypeError):
            if time.time() - path.stat().st_mtime < self.resolution_ttl:
                return Lock.from_dict(json.loads(path.read_text())["lock"])
        lock = resolve(python, auto=auto, folder=folder, cache_dir=self.cache.uv_cache,
                       allow_builds=self.allow_source_builds)
        with contextlib.suppress(OSError):
            path.parent.mkdir(exist_ok=True)
            staging = path.with_suffix(f".{os.getpid()}.tmp")
            staging.write_text(json.dumps({"lock": lock.to_dict()}))
            staging.replace(path)
        return lock

    def _local_wheels(self, lock: Lock, sent: Mapping[str, Any], blobs: Callable[[str], Path | None], *,
                      build_here: bool) -> Lock:
        """``lock`` with each local package's wheel in the store: sent as a blob, or (the server's own
        packages only: a client's folder is the client's to build) built here from its folder."""
        if not isinstance(sent, Mapping) or not all(isinstance(k, str) and _SHA256.match(k) for k in sent):
            raise SpecError("must map each wheel's sha256 to its file name", "environment.wheels")
        local = []
        for index, package in enumerate(lock.local):
            if package.digest and self.cache.wheels.path(package.digest) is None:
                name, blob = sent.get(package.digest), blobs(package.digest)
                if not isinstance(name, str) or blob is None:
                    raise SpecError(f"the wheel of local package {package.name} ({package.digest[:12]}…) was not "
                                    "uploaded; PUT it to /blobs and name it in environment.wheels",
                                    f"environment.lock.local[{index}]")
                self.cache.wheels.add(package.digest, name, blob)
            elif not package.digest and build_here:  # the server's own capture: its folder is on this host
                package = self.cache.wheels.build(package, lock.python)
            elif not package.digest:
                raise SpecError(f"local package {package.name} was sent without its wheel; the client builds it "
                                "and sends its sha256 as digest", f"environment.lock.local[{index}].digest")
            local.append(package)
        return replace(lock, local=tuple(local))

    def server_lock(self) -> Lock:
        """The server's own environment (captured again whenever its site-packages change)."""
        stamp = _site_stamp(Path(sys.executable))
        if self._server_lock is None or self._server_lock[0] != stamp:
            self._server_lock = (stamp, client_capture())
        return self._server_lock[1]

    # -- prepare --------------------------------------------------------------------------------
    async def venv(self, lock: Lock, summary: Mapping[str, Any], *, say: Callable[[str], None],
                   report: Callable[[str], None]) -> tuple[Path, dict[str, Any]]:
        """The ``bin`` folder whose ``python`` runs the job, and what to add to its record.

        The interpreter the job was submitted from when it still has exactly the job's packages
        (:attr:`same_interpreter`); else the cached venv of the lock, built first if need be.
        """
        interpreter = summary.get("interpreter")
        if self.same_interpreter and isinstance(interpreter, str) and interpreter:
            started = time.monotonic()
            found = await asyncio.to_thread(self._interpreter_lock, interpreter)
            if found is not None and same_packages(found, lock):
                say(f"environment {lock.hash[:12]}: the interpreter it was submitted from ({interpreter}) has "
                    "exactly its packages; no build")
                return Path(interpreter).parent, {"built": False, "prepare_seconds": round(time.monotonic() - started, 3),
                                                  "where": "interpreter"}
        prepared = await self.prepare(lock, "venv", say=say, report=report)
        return prepared.path / "bin", self.outcome(prepared, "venv")

    async def prepare(self, lock: Lock, kind: str, *, say: Callable[[str], None],
                      report: Callable[[str], None], target: str = "") -> Prepared:
        """The lock's environment of ``kind`` (``venv`` or ``target``), built once per hash; prunes after a build."""
        short = lock.hash[:12]
        total = len(lock.packages) + len(lock.local)
        loop = asyncio.get_running_loop()

        def progress(done: int, of: int, doing: str) -> None:  # called from the build's thread
            text = f"Preparing: building environment {short}…: {doing or f'{done} of {of} packages installed'}"
            with contextlib.suppress(RuntimeError):  # the loop closed (the server stopped)
                loop.call_soon_threadsafe(report, text)

        if not self.cache.path(lock.hash, kind, target).exists():
            report(f"Preparing: environment {short}… ({total} packages, Python {lock.python})")
        try:
            prepared = await self.cache.prepare(lock, kind=kind, say=say, progress=progress, target=target)
        except EnvironmentBuildFailed as exc:
            named = f" ({', '.join(exc.packages)})" if exc.packages else ""
            say(f"building environment {short} failed{named}; uv's words are above")
            raise
        if prepared.built:
            say(f"built environment {short} (Python {lock.python}, {total} packages) in {prepared.seconds:.1f} s")
            self.prune_soon()
        else:
            say(f"environment {short} is cached; no build")
        return prepared

    @staticmethod
    def outcome(prepared: Prepared, where: str) -> dict[str, Any]:
        return {"built": prepared.built, "prepare_seconds": round(prepared.seconds, 3), "where": where}

    def _interpreter_lock(self, interpreter: str) -> Lock | None:
        """What ``interpreter`` has installed now (asked again only when its site folders changed); None
        when it is gone or not this server's to run (see :func:`trusted_interpreter`)."""
        path = Path(interpreter)
        if not path.is_file() or not os.access(path, os.X_OK) or not trusted_interpreter(path):
            return None
        try:  # the job finds `python` on PATH in the interpreter's folder: it must be this very interpreter
            if not (path.parent / "python").samefile(path):
                return None
        except OSError:
            return None
        key = _site_stamp(path)
        known = self._interpreters.get(interpreter)
        if known is not None and known[0] == key:
            return known[1]
        found = _ask_interpreter(interpreter)
        self._interpreters[interpreter] = (key, found)
        return found

    # -- the cache ------------------------------------------------------------------------------
    #: Hashes of the environments active jobs use (set by the manager): never pruned.
    in_use: Callable[[], set[str]] = staticmethod(lambda: set())

    #: Told the hashes removed from the cache (the Docker backend removes their images then).
    removed: Callable[[list[str]], None] = staticmethod(lambda hashes: None)

    def prune_soon(self) -> None:
        """After a build: trim the cache to :attr:`max_bytes` (0: no limit) in the background, one prune at a
        time; the job that built does not wait for it, and a failure is logged, never the job's."""
        if not self.max_bytes:
            return

        async def run() -> None:
            async with self._pruning:
                try:
                    await self.prune(None)
                except Exception:  # the cache stays over its size until the next build; jobs go on
                    self.log.warning("jupyter-jobs: pruning the environment cache failed", exc_info=True)

        task = asyncio.ensure_future(run())
        self._prunes.add(task)
        task.add_done_callback(self._prunes.discard)

    async def report(self) -> dict[str, Any]:
        """The cached environments, most recently used first, the cache's limit and its size, in bytes.
        Folders are measured off the event loop; which hashes active jobs use is asked on it (the job store)."""
        used = self.in_use()
        infos = await asyncio.to_thread(self.cache.list)
        return {
            "environments": [{**info.to_json(), "in_use": info.hash in used} for info in reversed(infos)],
            "max_bytes": self.max_bytes,
            "total_bytes": sum(info.size_bytes for info in infos),
        }

    async def prune_and_report(self, max_bytes: int | None = None) -> dict[str, Any]:
        """:meth:`prune`, then :meth:`report` with ``removed``: the body of POST /environments/prune."""
        removed = await self.prune(max_bytes)
        return {"removed": removed, **await self.report()}

    async def prune(self, max_bytes: int | None = None) -> list[str]:
        """Remove least recently used environments until the cache holds at most ``max_bytes`` (None: :attr:`max_bytes`,
        where 0 is no limit: nothing is removed), and what was made from them (images). Environments of active jobs
        are kept, even past the limit. Returns the hashes removed, oldest use first."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        if max_bytes is None and not limit:
            return []
        used = self.in_use()
        return await asyncio.to_thread(self._prune, limit, used)

    def _prune(self, limit: int, used: set[str]) -> list[str]:
        gone = self.cache.prune(limit, used)
        if gone:
            try:
                self.removed(gone)
            except Exception:  # an engine that does not answer keeps its images; the cache is pruned
                self.log.warning("jupyter-jobs: could not remove what was made from environments %s",
                                 ", ".join(h[:12] for h in gone), exc_info=True)
        return gone


_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")


def check_lock(lock: Lock, field: str = "environment.lock") -> Lock:
    """A lock a client sent, checked before any of it reaches uv: PEP 508 names, PEP 440 versions, direct
    references to http(s) or git+https only, the allowed installer options, wheel digests that are SHA-256s.
    Nothing in it may be read as another line or option of a requirements file, or name the server's files.

    Raises
    ------
    SpecError
        Naming each entry at fault.
    """
    from packaging.version import InvalidVersion, Version

    problems = []
    for kind, packages in (("packages", lock.packages), ("local", lock.local)):
        for index, package in enumerate(packages):
            where = f"{field}.{kind}[{index}]"
            if not _NAME.match(package.name):
                problems.append(FieldProblem(f"{where}.name", f"{package.name[:80]!r} is not a package name"))
            if package.version or kind == "local" or not package.url:
                try:
                    Version(package.version)
                except InvalidVersion:
                    problems.append(FieldProblem(f"{where}.version", f"{package.version[:80]!r} is not a version"))
            url = package.url
            bad_url = any(c.isspace() for c in url) or "\\" in url
            if kind == "packages" and url and (bad_url or not url.lower().startswith(REMOTE_URLS)):
                problems.append(FieldProblem(f"{where}.url", f"{url[:120]!r} is not an http(s) or git+https URL"))
            if kind == "local":
                if bad_url or not url.startswith("file:"):
                    problems.append(FieldProblem(f"{where}.url", f"{url[:120]!r} is not the file: URL it was installed from"))
                if package.digest and not _SHA256.match(package.digest):
                    problems.append(FieldProblem(f"{where}.digest", "is not a SHA-256 hex digest"))
    try:
        _pip_options(list(lock.pip_options), f"{field}.pip_options")
    except SpecError as exc:
        problems.extend(exc.problems)
    if problems:
        raise SpecError(problems)
    return lock


def trusted_interpreter(interpreter: Path) -> bool:
    """Whether the server may run ``interpreter`` (to ask what it has): it, what it links to and its
    environment's folder belong to the server's user or root, and no one else may write them. A client
    names the interpreter; one that another account controls is never run by the server (its job gets a
    venv of the same lock instead)."""
    me = os.geteuid()

    def safe(path: Path) -> bool:
        try:
            info = path.lstat()
        except OSError:
            return False
        # A symbolic link's own mode means nothing (always 0777); who owns it does.
        writable = not stat.S_ISLNK(info.st_mode) and info.st_mode & 0o022
        return info.st_uid in (0, me) and not writable

    try:
        resolved = interpreter.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    return all(safe(p) for p in (interpreter, interpreter.parent, interpreter.parent.parent, resolved))


def _site_stamp(interpreter: Path) -> tuple:
    """Modification times of the site-packages folders of a venv's interpreter (an install changes them)."""
    prefix = interpreter.parent.parent
    stamps = []
    for site in sorted([*prefix.glob("lib/python3*/site-packages"), *prefix.glob("lib/python3*/dist-packages")]):
        try:
            stamps.append((str(site), site.stat().st_mtime_ns))
        except OSError:
            continue
    return tuple(stamps)


def _ask_interpreter(interpreter: str) -> Lock | None:
    """The capture of another interpreter (``python -m jupyter_jobs.pyenv.lock``), or None if it cannot say."""
    try:
        # Asked as the job will run (see runner/local.py): no PYTHONPATH, PYTHONHOME or user site of the server's.
        environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE")}
        result = subprocess.run([interpreter, "-m", "jupyter_jobs.pyenv.lock"], capture_output=True, text=True,
                                timeout=60, stdin=subprocess.DEVNULL, cwd="/",
                                env={**environ, "PYTHONSAFEPATH": "1", "PYTHONNOUSERSITE": "1"})
        if result.returncode != 0:
            return None
        lock = Lock.from_dict(json.loads(result.stdout))
    except (OSError, subprocess.SubprocessError, ValueError, SpecError):
        return None
    return replace(lock, packages=tuple(p for p in lock.packages if p.name not in NOT_CAPTURED),
                   local=tuple(p for p in lock.local if p.name not in NOT_CAPTURED))


def read_lock(folder: Path) -> Lock | None:
    """The lock written beside a job's files at submit, or None (the job asks for no environment)."""
    try:
        text = (folder / LOCK_FILE).read_text()
    except FileNotFoundError:
        return None
    return Lock.from_dict(json.loads(text))


def write_lock(folder: Path, lock: Lock) -> None:
    (folder / LOCK_FILE).write_text(json.dumps(lock.to_dict(), indent=1))

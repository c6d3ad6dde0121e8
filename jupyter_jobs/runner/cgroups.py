"""Confinement of local jobs in cgroups: memory and pids limits, and a kill of all they started.

A job's process group is not enough to end a job: a daemon that double-forks (``setsid``)
leaves the group and outlives it. A cgroup holds every process a job starts, whatever it does,
so at the job's end everything in it is killed and the cgroup removed.

Linux has two layouts, and hosts often mix them ("hybrid"):

- **v2** (unified, one tree): limits in ``memory.max`` and ``pids.max``; ``cgroup.kill`` kills
  all members at once (Linux 5.14), else freeze with ``cgroup.freeze`` and SIGKILL each member.
- **v1** (one tree per controller, ``/sys/fs/cgroup/{memory,pids,freezer}``): the same limits in
  ``memory.limit_in_bytes`` and ``pids.max``; the ``freezer`` stops members from forking while
  each is killed.

On a hybrid host (v1 controllers, an empty v2 tree) the v1 trees are used: a job gets a
directory in the memory, pids and freezer trees, and joins them by thread (``0`` written to
``tasks``), which unlike a write of a pid to ``cgroup.procs`` waits for no RCU grace period
(about 10 ms a job on a loaded host). Jobs' cgroups live under a
``jupyter-jobs`` folder below the server's own cgroup (v1; so they count against the server's
limits too) or beside it (v2, where a cgroup holding processes cannot have limited children).
Where nothing is writable (not root, no delegation) :attr:`Cgroups.reason` says why and jobs
run unconfined.
"""
from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FOLDER = "jupyter-jobs"
#: v1 controllers a job's cgroup uses: its two limits, and the freezer to kill it whole.
V1_CONTROLLERS = ("memory", "pids", "freezer")


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _mounts(mountinfo: str) -> tuple[tuple[Path, str] | None, dict[str, tuple[Path, str]]]:
    """The unified (v2) mount point and each v1 controller's, each with the path it shows."""
    unified, v1 = None, {}
    for line in Path(mountinfo).read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, (fstype, _source, options) = left.split(), right.split()[:3]
        root, point = fields[3], Path(fields[4].replace("\\040", " "))
        if fstype == "cgroup2" and unified is None:
            unified = (point, root)
        elif fstype == "cgroup":
            for option in options.split(","):
                if option in V1_CONTROLLERS:
                    v1[option] = (point, root)
    return unified, v1


def _own_paths(procfile: str) -> dict[str, str]:
    """This process's cgroup in each tree: {"": v2 path, "memory": v1 path, ...}."""
    paths = {}
    for line in Path(procfile).read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _below(mount: Path, root: str, path: str) -> Path:
    """``path`` (as /proc/self/cgroup says it) inside a tree mounted from ``root``."""
    if root != "/" and (path == root or path.startswith(root + "/")):
        path = path[len(root):]
    return mount / path.lstrip("/")


def _enable(cgroup: Path, controllers: set[str]) -> set[str]:
    """Enable ``controllers`` for the children of a v2 cgroup; return those that are."""
    try:
        enabled = set((cgroup / "cgroup.subtree_control").read_text().split())
    except OSError:
        return set()
    for controller in sorted(controllers - enabled):
        with contextlib.suppress(OSError):  # EBUSY: it holds processes; EACCES: not delegated
            _write(cgroup / "cgroup.subtree_control", f"+{controller}")
            enabled.add(controller)
    return controllers & enabled


@dataclass
class Cgroups:
    """Where this host lets the server make job cgroups (found once, by :meth:`detect`)."""

    #: Folders under which jobs' cgroups are made: one per tree used.
    bases: list[Path] = field(default_factory=list)
    #: Which limits the bases can apply: a subset of {"memory", "pids"}.
    limits: set[str] = field(default_factory=set)
    #: Why jobs are not confined (empty when they are).
    reason: str = ""

    @classmethod
    def detect(
        cls, tree: str = "auto", mountinfo: str = "/proc/self/mountinfo", own_cgroup: str = "/proc/self/cgroup"
    ) -> Cgroups:
        """Find writable trees. ``tree``: "auto", or "v2"/"v1" to prefer that one (tests of each kill)."""
        try:
            v2_mount, v1 = _mounts(mountinfo)
            own = _own_paths(own_cgroup)
        except OSError as exc:
            return cls(reason=f"cannot read this process's cgroups: {exc}")
        found, errors = cls(), []
        v1 = {controller: mount for controller, mount in v1.items() if controller in own}
        if tree != "v1" and v2_mount is not None and "" in own:
            # On a hybrid host the v2 tree limits nothing, and joining it costs an RCU grace
            # period (~10 ms a job) where joining a v1 tree by thread (pid 0) does not: use v1.
            found._add_v2(*v2_mount, own[""], errors, kill_only=tree == "v2" or not v1)
        # The unified tree kills by itself (cgroup.kill or cgroup.freeze): no v1 freezer then.
        wanted = [c for c in V1_CONTROLLERS if c not in found.limits and not (c == "freezer" and found.bases)]
        for controller in wanted:
            if controller in v1:
                mount, root = v1[controller]
                found._add(_below(mount, root, own[controller]) / FOLDER, {controller}, errors)
        if not found.bases:
            found.reason = "no writable cgroup tree (" + "; ".join(errors or ["no cgroup filesystem mounted"]) + ")"
        return found

    def _add_v2(self, mount: Path, root: str, own: str, errors: list[str], kill_only: bool) -> None:
        # A v2 cgroup that holds processes (other than the root) cannot enable controllers for
        # children, so jobs go beside the server's cgroup unless the server sits at the root.
        parent = _below(mount, root, own if own in ("/", root) else os.path.dirname(own))
        try:
            offered = set((parent / "cgroup.controllers").read_text().split()) & {"memory", "pids"}
        except OSError as exc:
            errors.append(f"{parent}: {exc.strerror}")
            return
        if not offered and not kill_only:
            return
        if self._add(parent / FOLDER, set(), errors):  # it kills even where it cannot limit
            self.limits |= _enable(parent / FOLDER, _enable(parent, offered))

    def _add(self, base: Path, limits: set[str], errors: list[str]) -> bool:
        try:
            base.mkdir(exist_ok=True)
            probe = base / f"probe-{os.getpid()}"
            probe.mkdir(exist_ok=True)
            probe.rmdir()
        except OSError as exc:
            errors.append(f"{base}: {exc.strerror}")
            return False
        self.bases.append(base)
        self.limits |= limits & {"memory", "pids"}
        return True

    @property
    def available(self) -> bool:
        return bool(self.bases)

    def create(self, name: str, memory_bytes: int, pids: int) -> JobCgroup:
        """Make (or take over, killing what is in it) the cgroup ``name`` with these limits.

        ``memory_bytes`` or ``pids`` of 0 leave that limit off.
        """
        cgroup = JobCgroup(tuple(str(base / name) for base in self.bases))
        if any(Path(d).exists() for d in cgroup.dirs):  # an attempt started before a crash
            cgroup.kill_all()
        for d in cgroup.dirs:
            Path(d).mkdir(exist_ok=True)
        for d in map(Path, cgroup.dirs):
            if memory_bytes and (d / "memory.max").exists():
                _write(d / "memory.max", str(memory_bytes))
                with contextlib.suppress(OSError):  # no swap beyond the limit
                    _write(d / "memory.swap.max", "0")
            elif memory_bytes and (d / "memory.limit_in_bytes").exists():
                _write(d / "memory.limit_in_bytes", str(memory_bytes))
                with contextlib.suppress(OSError):  # swap accounting is off on many kernels
                    _write(d / "memory.memsw.limit_in_bytes", str(memory_bytes))
            if pids and (d / "pids.max").exists():
                _write(d / "pids.max", str(pids))
        return cgroup

    def leftovers(self, prefix: str) -> list[str]:
        """Names of job cgroups starting with ``prefix`` (this server's)."""
        names = set()
        for base in self.bases:
            with contextlib.suppress(OSError):
                names |= {p.name for p in base.iterdir() if p.is_dir() and p.name.startswith(prefix)}
        return sorted(names)

    def remove_empty(self, min_age: float = 60.0) -> list[str]:
        """Remove job cgroups that hold no process (of any server: a job that ended while its
        server was down), sparing the young (made for a job that has not joined it yet)."""
        removed = []
        for base in self.bases:
            with contextlib.suppress(OSError):
                for path in base.iterdir():
                    with contextlib.suppress(OSError):  # EBUSY: not empty; ENOTDIR: a control file
                        if time.time() - path.stat().st_mtime > min_age:
                            path.rmdir()
                            removed.append(str(path))
        return removed

    def describe(self) -> dict[str, Any]:
        """Facts for GET /config."""
        if not self.available:
            return {"cgroup": None, "reason": self.reason}
        return {"cgroup": [str(b) for b in self.bases], "limits": sorted(self.limits)}


@dataclass(frozen=True)
class JobCgroup:
    """One job's cgroup: a directory in each tree used (kept in the job's handle)."""

    dirs: tuple[str, ...]

    def procs_files(self) -> list[str]:
        """Files that list the members (a process writes its pid to one to join)."""
        return [os.path.join(d, "cgroup.procs") for d in self.dirs]

    def join_files(self) -> list[str]:
        """Files a single-threaded process writes ``0`` (itself) to, to join the cgroup cheaply:
        v1's ``tasks`` moves only the writing thread, which takes no RCU grace period."""
        return [os.path.join(d, "tasks" if os.path.exists(os.path.join(d, "tasks")) else "cgroup.procs")
                for d in self.dirs]

    def members(self) -> set[int]:
        pids: set[int] = set()
        for f in self.procs_files():
            with contextlib.suppress(OSError, ValueError):
                pids |= {int(p) for p in Path(f).read_text().split()}
        return pids

    def signal(self, sig: int) -> None:
        for pid in self.members():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def kill_all(self, timeout: float = 10.0) -> bool:
        """SIGKILL every member, forks included; True once none is left (within ``timeout``)."""
        dirs = [Path(d) for d in self.dirs if Path(d).is_dir()]
        kill = next((d / "cgroup.kill" for d in dirs if (d / "cgroup.kill").exists()), None)
        if kill is not None:
            with contextlib.suppress(OSError):
                _write(kill, "1")
        else:
            with self._frozen(dirs):
                self.signal(signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while self.members():
            if time.monotonic() > deadline:
                return False
            self.signal(signal.SIGKILL)  # unfrozen stragglers (no freezer): until none is left
            time.sleep(0.005)
        return True

    @contextlib.contextmanager
    def _frozen(self, dirs: list[Path]) -> Any:
        """Freeze the members (no fork can escape the kill) where a freezer is at hand."""
        freeze = next((d for d in dirs if (d / "cgroup.freeze").exists() or (d / "freezer.state").exists()), None)
        if freeze is None:
            yield
            return
        v2 = (freeze / "cgroup.freeze").exists()
        try:
            _write(freeze / ("cgroup.freeze" if v2 else "freezer.state"), "1" if v2 else "FROZEN")
            deadline = time.monotonic() + 2.0
            while not v2 and (freeze / "freezer.state").read_text().strip() != "FROZEN" and time.monotonic() < deadline:
                time.sleep(0.002)
        except OSError:
            pass
        try:
            yield
        finally:  # SIGKILL is delivered to frozen tasks once thawed
            with contextlib.suppress(OSError):
                _write(freeze / ("cgroup.freeze" if v2 else "freezer.state"), "0" if v2 else "THAWED")

    def oom_kills(self) -> int:
        """How many of the job's processes the kernel killed for going over the memory limit."""
        for d in map(Path, self.dirs):
            for name in ("memory.events", "memory.oom_control"):
                with contextlib.suppress(OSError):
                    for line in (d / name).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill":
                            return int(value)
        return 0

    def remove(self) -> None:
        """Remove the (empty) cgroup's directories; one still busy is left for remove_orphans."""
        for d in self.dirs:
            with contextlib.suppress(FileNotFoundError):
                for _ in range(50):
                    try:
                        os.rmdir(d)
                        break
                    except OSError:  # EBUSY: the last member is still exiting
                        time.sleep(0.01)

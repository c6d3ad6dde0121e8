"""Capacity accounting: CPUs, memory and individual GPU indices, and why a job must wait.

Pure logic, no I/O. The pool asks :meth:`Capacity.plan` which queued jobs can start now;
every job that cannot gets a plain-words reason with its place in the queue and what is ahead of it
("2nd in line for a GPU: 1 of 1 in use by job 41 (run 12 min of its 2 h)").
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ..models import Allocation, Gpu, InstanceType


@dataclass(frozen=True)
class Request:
    """What one job needs."""

    cpus: float
    memory_mib: int
    gpus: int = 0
    gpu_type: str | None = None

    @classmethod
    def of(cls, itype: InstanceType) -> "Request":
        return cls(itype.cpus, itype.memory_mib, itype.gpus, itype.gpu_type)


class Gate(Protocol):
    """Holds back jobs for something other than the host's capacity (their quotas: ``quotas.py``)."""

    def refuse(self, job_id: int, req: "Request") -> str | None:
        """Why ``job_id`` may not start now (the whole pending message), or None."""

    def take(self, job_id: int, req: "Request") -> None:
        """``job_id`` starts in this plan."""


@dataclass(frozen=True)
class Timing:
    """When a job that holds resources started (None: not yet), and its max-runtime in seconds (None: none)."""

    started_at: float | None = None
    max_runtime: float | None = None


@dataclass
class Plan:
    starts: list[tuple[int, Allocation]] = field(default_factory=list)
    reasons: dict[int, str] = field(default_factory=dict)


def _plural(count: float, word: str) -> str:
    count_text = f"{count:g}"
    return f"{count_text} {word}" if count == 1 else f"{count_text} {word}s"


def _amount(count: float, word: str) -> str:
    """``a GPU``, ``2 GPUs``, ``0.5 CPUs``."""
    return f"a {word}" if count == 1 and word[0] not in "aeiou" else _plural(count, word)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _span(seconds: float) -> str:
    """A time in whole minutes, ``12 min``, ``2 h``, ``1 d 3 h`` (a message says the same for a minute); under a
    minute, ``<1 min`` (a max-runtime that short: its seconds)."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "<1 min"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")


class _Ahead:
    """The jobs holding what a waiting job needs, and which of them is expected to free it first."""

    def __init__(self, timing: Mapping[int, Timing], now: float) -> None:
        self.timing, self.now = timing, now

    def first(self, ids: list[int]) -> int:
        """The job expected to free its resources first: the earliest end by its max-runtime where one is known,
        else the one that has run longest."""
        def key(job_id: int) -> tuple:
            t = self.timing.get(job_id, Timing())
            if t.started_at is not None and t.max_runtime is not None:
                return (0, t.started_at + t.max_runtime, job_id)
            if t.started_at is not None:
                return (1, t.started_at, job_id)
            return (2, 0.0, job_id)
        return min(ids, key=key)

    def ran(self, job_id: int) -> str:
        """``run 12 min of its 2 h``, ``run 12 min``, or '' (not started yet)."""
        t = self.timing.get(job_id, Timing())
        if t.started_at is None:
            return ""
        if t.max_runtime is None:
            limit = ""
        else:
            limit = f" of its {_span(t.max_runtime) if t.max_runtime >= 60 else f'{t.max_runtime:g} s'}"
        return f"run {_span(max(0.0, self.now - t.started_at))}{limit}"

    def by(self, ids: list[int]) -> str:
        """`` by job 41 (run 12 min of its 2 h)``, `` by jobs 1, 2 (job 1 has run 12 min of its 2 h)``."""
        ids = sorted(ids)
        if not ids:
            return ""
        head = ", ".join(str(i) for i in ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
        first = self.first(ids)
        ran = self.ran(first)
        if len(ids) == 1:
            return f" by job {head}" + (f" ({ran})" if ran else "")
        return f" by jobs {head}" + (f" (job {first} has {ran})" if ran else "")


class Capacity:
    """The host's resources and who holds them. A GPU is never given to two jobs."""

    def __init__(self, cpus: float, memory_mib: int, gpus: list[Gpu], max_concurrent: int = 0) -> None:
        self.cpus = cpus
        self.memory_mib = memory_mib
        self.gpus = {g.index: g for g in gpus}
        self.max_concurrent = max_concurrent
        self.held: dict[int, Allocation] = {}

    # -- questions -------------------------------------------------------------------------
    def never_fits(self, req: Request) -> str | None:
        """Why ``req`` could not run even on an idle host, or None."""
        if req.cpus > self.cpus:
            return f"needs {_plural(req.cpus, 'CPU')} but this server has {self.cpus:g}"
        if req.memory_mib > self.memory_mib:
            return f"needs {req.memory_mib} MiB of memory but this server has {self.memory_mib} MiB"
        matching = self._matching(req.gpu_type, self.gpus)
        if req.gpus > len(matching):
            kind = f"{req.gpu_type} " if req.gpu_type else ""
            return f"needs {_plural(req.gpus, kind + 'GPU')} but this server has {len(matching)}"
        return None

    def free_cpus(self, held: dict[int, Allocation] | None = None) -> float:
        return self.cpus - sum(a.cpus for a in (self.held if held is None else held).values())

    def free_memory(self, held: dict[int, Allocation] | None = None) -> int:
        return self.memory_mib - sum(a.memory_mib for a in (self.held if held is None else held).values())

    def free_gpus(self, held: dict[int, Allocation] | None = None) -> dict[int, Gpu]:
        busy = {i for a in (self.held if held is None else held).values() for i in a.gpus}
        return {i: g for i, g in self.gpus.items() if i not in busy}

    def _matching(self, gpu_type: str | None, gpus: dict[int, Gpu]) -> list[int]:
        return sorted(i for i, g in gpus.items() if gpu_type is None or g.name == gpu_type)


    # -- changes ---------------------------------------------------------------------------
    def hold(self, job_id: int, allocation: Allocation) -> None:
        """Record that ``job_id`` holds ``allocation`` (at start, or found again after a restart)."""
        self.held[job_id] = allocation

    def release(self, job_id: int) -> None:
        self.held.pop(job_id, None)

    def plan(self, queue: list[tuple[int, Request, int]], gate: Gate | None = None,
             timing: Mapping[int, Timing] | None = None, now: float = 0.0) -> Plan:
        """Decide which of ``queue`` (job id, request, priority; in queue order) start now.

        A job that cannot start keeps what it waits for: jobs behind it may only use what
        is left, so a big job is never starved by a stream of small ones. A job the ``gate``
        holds back (its quota) keeps nothing: it could not use it, and others go ahead.
        A job that waits for a resource is told its place among the jobs waiting for the same kind
        (in queue order) and which job holding it is expected to free it first (``timing``: when the
        holders started and their max-runtime, read at ``now``).
        """
        plan = Plan()
        ahead = _Ahead(timing or {}, now)
        in_line: dict[tuple, int] = {}  # how many wait for each kind of resource so far

        def wait(job_id: int, kind: tuple, what: str, usage: str) -> None:
            in_line[kind] = in_line.get(kind, 0) + 1
            plan.reasons[job_id] = f"{_ordinal(in_line[kind])} in line for {what}: {usage}"

        held = dict(self.held)  # grows with the jobs this plan starts
        free_cpus, free_mem, free_gpus = self.free_cpus(), self.free_memory(), self.free_gpus()
        running = len(held)
        blocked_by: tuple[int, int] | None = None  # (job id, priority) of the first job that waits
        for job_id, req, priority in queue:
            refused = gate.refuse(job_id, req) if gate is not None else None
            if refused:
                plan.reasons[job_id] = refused
                continue
            if self.max_concurrent and running >= self.max_concurrent:
                wait(job_id, ("slot",), "a run slot",
                     f"{running} of {self.max_concurrent} jobs running (max_concurrent){ahead.by(list(held))}")
                continue
            gpus = self._matching(req.gpu_type, free_gpus)
            if req.cpus <= free_cpus and req.memory_mib <= free_mem and req.gpus <= len(gpus):
                allocation = Allocation(req.cpus, req.memory_mib, tuple(gpus[: req.gpus]))
                plan.starts.append((job_id, allocation))
                held[job_id] = allocation
                free_cpus -= req.cpus
                free_mem -= req.memory_mib
                for index in allocation.gpus:
                    free_gpus.pop(index)
                running += 1
                if gate is not None:
                    gate.take(job_id, req)
                continue
            short = self._short(req, held, ahead)
            if short is not None:
                wait(job_id, *short)
            elif blocked_by is not None:
                plan.reasons[job_id] = (f"queued behind job {blocked_by[0]} (priority {blocked_by[1]}), which is "
                                        "waiting for resources")
            else:
                plan.reasons[job_id] = "waiting for resources"
            if blocked_by is None:
                blocked_by = (job_id, priority)
            # Reserve what it waits for, so later jobs cannot take it.
            free_cpus = max(0.0, free_cpus - req.cpus)
            free_mem = max(0, free_mem - req.memory_mib)
            for index in gpus[: req.gpus]:
                free_gpus.pop(index)
        return plan

    def _short(self, req: Request, held: dict[int, Allocation], ahead: _Ahead) -> tuple[tuple, str, str] | None:
        """What ``req`` lacks now, given ``held``: its kind, the amount asked and who uses it; None when
        nothing is short (it waits behind another waiting job)."""
        def holders_of(predicate) -> list[int]:
            return [job for job, a in held.items() if predicate(a)]

        free_gpus = self._matching(req.gpu_type, self.free_gpus(held))
        if req.gpus > len(free_gpus):
            kind = self._matching(req.gpu_type, self.gpus)
            name = f"{req.gpu_type} GPU" if req.gpu_type else "GPU"
            holders = holders_of(lambda a: any(i in kind for i in a.gpus))
            return (("gpu", req.gpu_type), _amount(req.gpus, name),
                    f"{len(kind) - len(free_gpus)} of {len(kind)} in use{ahead.by(holders)}")
        if req.cpus > self.free_cpus(held):
            holders = holders_of(lambda a: a.cpus > 0)
            return (("cpu",), _amount(req.cpus, "CPU"),
                    f"{self.cpus - self.free_cpus(held):g} of {self.cpus:g} in use{ahead.by(holders)}")
        if req.memory_mib > self.free_memory(held):
            holders = holders_of(lambda a: a.memory_mib > 0)
            return (("memory",), f"{req.memory_mib} MiB of memory",
                    f"{self.memory_mib - self.free_memory(held)} of {self.memory_mib} MiB in use{ahead.by(holders)}")
        return None

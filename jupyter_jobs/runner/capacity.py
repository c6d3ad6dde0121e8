"""Capacity accounting: CPUs, memory and individual GPU indices, and why a job must wait.

Pure logic, no I/O. The pool asks :meth:`Capacity.plan` which queued jobs can start now;
every job that cannot gets a plain-words reason ("waiting for 1 GPU: 2 of 2 in use by jobs 12, 13").
"""
from __future__ import annotations

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


@dataclass
class Plan:
    starts: list[tuple[int, Allocation]] = field(default_factory=list)
    reasons: dict[int, str] = field(default_factory=dict)


def _plural(count: float, word: str) -> str:
    count_text = f"{count:g}"
    return f"{count_text} {word}" if count == 1 else f"{count_text} {word}s"


def _jobs(ids: list[int]) -> str:
    ids = sorted(ids)
    if not ids:
        return ""
    head = ", ".join(str(i) for i in ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
    return f" by job{'s' if len(ids) > 1 else ''} {head}"


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

    def plan(self, queue: list[tuple[int, Request, int]], gate: Gate | None = None) -> Plan:
        """Decide which of ``queue`` (job id, request, priority; in queue order) start now.

        A job that cannot start keeps what it waits for: jobs behind it may only use what
        is left, so a big job is never starved by a stream of small ones. A job the ``gate``
        holds back (its quota) keeps nothing: it could not use it, and others go ahead.
        """
        plan = Plan()
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
                plan.reasons[job_id] = (
                    f"waiting for a run slot: {running} of {self.max_concurrent} jobs running "
                    f"(max_concurrent){_jobs(list(held))}"
                )
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
            plan.reasons[job_id] = self._reason(req, held, blocked_by)
            if blocked_by is None:
                blocked_by = (job_id, priority)
            # Reserve what it waits for, so later jobs cannot take it.
            free_cpus = max(0.0, free_cpus - req.cpus)
            free_mem = max(0, free_mem - req.memory_mib)
            for index in gpus[: req.gpus]:
                free_gpus.pop(index)
        return plan

    def _reason(self, req: Request, held: dict[int, Allocation], blocked_by: tuple[int, int] | None) -> str:
        def holders_of(predicate) -> list[int]:
            return [job for job, a in held.items() if predicate(a)]

        free_gpus = self._matching(req.gpu_type, self.free_gpus(held))
        if req.gpus > len(free_gpus):
            total = len(self._matching(req.gpu_type, self.gpus))
            kind = f"{req.gpu_type} " if req.gpu_type else ""
            holders = holders_of(lambda a: any(i in self.gpus for i in a.gpus))
            return (
                f"waiting for {_plural(req.gpus, kind + 'GPU')}: {total - len(free_gpus)} of {total} "
                f"in use{_jobs(holders)}"
            )
        if req.cpus > self.free_cpus(held):
            holders = holders_of(lambda a: a.cpus > 0)
            return (
                f"waiting for {_plural(req.cpus, 'CPU')}: {self.cpus - self.free_cpus(held):g} of "
                f"{self.cpus:g} in use{_jobs(holders)}"
            )
        if req.memory_mib > self.free_memory(held):
            holders = holders_of(lambda a: a.memory_mib > 0)
            return (
                f"waiting for {req.memory_mib} MiB of memory: {self.free_memory(held)} MiB free of "
                f"{self.memory_mib}{_jobs(holders)}"
            )
        if blocked_by is not None:
            return f"queued behind job {blocked_by[0]} (priority {blocked_by[1]}), which is waiting for resources"
        return "waiting for resources"

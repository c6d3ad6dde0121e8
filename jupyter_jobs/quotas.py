"""Quotas: how many GPUs, CPUs and how much memory one group or one user may hold at once.

PrimeHub's model. An admin limits groups and users::

    c.Quotas.groups = {"team-a": {"gpus": 1, "cpus": 8, "memory": "64GiB"}}
    c.Quotas.users = {"alice": {"gpus": 2}}
    c.Quotas.default_user = {"gpus": 1}      # everyone not named in users

What counts is what the jobs holding resources now (Preparing or Running) were given, read from the
job store at every scheduling pass, so a restart loses nothing. A job that would take its user or
its group past a limit waits, saying which limit ("waiting: your group team-a uses 1 of its 1 GPUs
(job 7 'train')"), and reserves nothing: other users' and groups' jobs go ahead of it, while the
jobs of the same user or group behind it keep their order (per-group FIFO). A job that asks for more
than a limit in total could never run, and is refused at submit.

Quotas apply where the runner pool schedules jobs (the local and Docker backends); on Slurm, use
Slurm's own limits (QOS and associations).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import yaml
from traitlets import Dict
from traitlets.config import LoggingConfigurable

from .cluster import parse_memory
from .errors import ConfigError
from .runner.capacity import Request
from .store import Holding, QueueEntry

#: The keys of a limit, and what each counts.
_KEYS = ("gpus", "cpus", "memory", "memory_mib")


@dataclass(frozen=True)
class Limits:
    """The most one user or group may hold at once; None: no limit on that resource."""

    gpus: int | None = None
    cpus: float | None = None
    memory_mib: int | None = None


@dataclass
class Usage:
    """What one user or group holds now: totals, and the jobs holding it (id, name)."""

    gpus: int = 0
    cpus: float = 0.0
    memory_mib: int = 0
    jobs: list[tuple[int, str]] = field(default_factory=list)

    def add(self, job_id: int, name: str, gpus: int, cpus: float, memory_mib: int) -> None:
        self.gpus += gpus
        self.cpus += cpus
        self.memory_mib += memory_mib
        self.jobs.append((job_id, name))


def parse_limits(value: Any, setting: str) -> Limits:
    """A limit as configured (``{"gpus": 1, "cpus": 8, "memory": "64GiB"}``, or that mapping as YAML or JSON
    text, as a command line gives it); ConfigError naming the setting."""
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            pass
    if not isinstance(value, Mapping):
        raise ConfigError(f"expected a mapping such as {{gpus: 1, cpus: 8, memory: 64GiB}}, got {value!r}", setting)
    unknown = sorted(set(value) - set(_KEYS))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}; a limit has gpus, cpus and memory", setting)
    numbers: dict[str, Any] = {}
    for key, kind in (("gpus", int), ("cpus", float)):
        raw = value.get(key)
        if raw is None:
            continue
        if isinstance(raw, str):  # --Quotas.default_user=gpus=1
            try:
                raw = float(raw)
            except ValueError:
                pass
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw < 0 or (kind is int and raw != int(raw)):
            what = "a whole number of GPUs" if kind is int else "a number of CPUs"
            raise ConfigError(f"{raw!r} is not {what} >= 0", f"{setting}.{key}")
        numbers[key] = kind(raw)
    raw_memory = value.get("memory", value.get("memory_mib"))
    if raw_memory is not None:
        try:
            memory = parse_memory(raw_memory)
        except (TypeError, ValueError):
            memory = -1
        if isinstance(raw_memory, bool) or memory < 0:
            raise ConfigError(f"{raw_memory!r} is not a size; write it like 64GiB or 512MiB (a number is MiB)",
                              f"{setting}.memory")
        numbers["memory_mib"] = memory
    return Limits(**numbers)


def _memory(mib: float) -> str:
    return f"{mib / 1024:g} GiB" if mib >= 1024 and mib % 1024 == 0 else f"{mib:g} MiB"


def _jobs(jobs: list[tuple[int, str]]) -> str:
    if not jobs:
        return ""
    shown = ", ".join(f"{job_id} {name!r}" for job_id, name in jobs[:4])
    more = f" and {len(jobs) - 4} more" if len(jobs) > 4 else ""
    return f" (job{'s' if len(jobs) > 1 else ''} {shown}{more})"


def over(limits: Limits, used: Usage, req: Request) -> tuple[str, str, str, str] | None:
    """The first resource ``req`` would take past ``limits`` given ``used``: (used, limit, unit, needed)
    as words, or None when it fits."""
    checks = (
        (limits.gpus, used.gpus, req.gpus, lambda n: f"{n:g}", "GPUs"),
        (limits.cpus, used.cpus, req.cpus, lambda n: f"{n:g}", "CPUs"),
        (limits.memory_mib, used.memory_mib, req.memory_mib, _memory, "of memory"),
    )
    for limit, in_use, wanted, words, unit in checks:
        if limit is not None and wanted and in_use + wanted > limit:
            return words(in_use), words(limit), unit, words(wanted)
    return None


class Quotas(LoggingConfigurable):
    """The admin's per-group and per-user limits of GPUs, CPUs and memory (none by default)."""

    groups = Dict(
        config=True,
        help="Limits per group: {group: {gpus, cpus, memory ('64GiB' or MiB)}}. What the group's running "
        "and preparing jobs hold together stays within it; a job that would go past it waits.",
    )
    users = Dict(config=True, help="Limits per user, as for groups: {user: {gpus, cpus, memory}}.")
    default_user = Dict(config=True, help="Limits of every user not named in `users` ({}: none).")
    default_group = Dict(config=True, help="Limits of every group not named in `groups` ({}: none).")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.load()

    def load(self) -> None:
        """Check the configuration; raises ConfigError naming the bad setting (the server does not start)."""
        self._groups = {str(k): parse_limits(v, f"Quotas.groups[{k!r}]") for k, v in self.groups.items()}
        self._users = {str(k): parse_limits(v, f"Quotas.users[{k!r}]") for k, v in self.users.items()}
        self._default_user = parse_limits(self.default_user, "Quotas.default_user")
        self._default_group = parse_limits(self.default_group, "Quotas.default_group")

    @property
    def enabled(self) -> bool:
        empty = Limits()
        return bool(self._groups or self._users) or self._default_user != empty or self._default_group != empty

    def of_user(self, user: str) -> Limits:
        return self._users.get(user, self._default_user)

    def of_group(self, group: str) -> Limits:
        """A group's limits; a job of no group ("") has none."""
        return self._groups.get(group, self._default_group) if group else Limits()

    def never_fits(self, req: Request, owner: str, group: str) -> str | None:
        """Why a job of ``owner`` in ``group`` asking for ``req`` could never run under its quotas, or None."""
        user_setting = "Quotas.users" if owner in self._users else "Quotas.default_user"
        group_setting = "Quotas.groups" if group in self._groups else "Quotas.default_group"
        for limits, whose, setting in ((self.of_user(owner), f"{owner}'s", user_setting),
                                       (self.of_group(group), f"group {group}'s", group_setting)):
            excess = over(limits, Usage(), req)
            if excess:
                _, limit, unit, wanted = excess
                return f"asks for {wanted} {unit} but {whose} quota is {limit} {unit} ({setting})"
        return None

    def gate(self, holding: Iterable[Holding], queued: Mapping[int, QueueEntry]) -> "QuotaGate":
        """One scheduling pass's view of what every user and group holds (``holding``: from the store)."""
        return QuotaGate(self, holding, queued)


class QuotaGate:
    """Says which queued jobs their quotas hold back, counting the jobs this pass starts as it goes.

    Used by :meth:`Capacity.plan` through ``refuse`` and ``take``.
    """

    def __init__(self, quotas: Quotas, holding: Iterable[Holding], queued: Mapping[int, QueueEntry]) -> None:
        self.quotas, self.queued = quotas, queued
        self.users: dict[str, Usage] = {}
        self.groups: dict[str, Usage] = {}
        #: The first job held back per user (``("user", name)``) or group (``("group", name)``).
        self.blocked: dict[tuple[str, str], int] = {}
        for job in holding:
            a = job.allocation
            self._count(job.id, job.name, job.owner, job.group, len(a.gpus), a.cpus, a.memory_mib)

    def _count(self, job_id: int, name: str, owner: str, group: str, gpus: int, cpus: float, memory: int) -> None:
        self.users.setdefault(owner, Usage()).add(job_id, name, gpus, cpus, memory)
        if group:
            self.groups.setdefault(group, Usage()).add(job_id, name, gpus, cpus, memory)

    def refuse(self, job_id: int, req: Request) -> str | None:
        """Why ``job_id`` may not start now for a quota, or None."""
        entry = self.queued.get(job_id)
        if entry is None:
            return None
        owner, group = entry.owner, entry.group
        ahead = self.blocked.get(("user", owner))
        if ahead is not None:
            return f"waiting: queued behind {owner}'s job {ahead}, which waits for {owner}'s quota"
        ahead = self.blocked.get(("group", group)) if group else None
        if ahead is not None:
            return f"waiting: queued behind job {ahead} of your group {group}, which waits for its quota"
        used = self.users.get(owner, Usage())
        excess = over(self.quotas.of_user(owner), used, req)
        if excess:
            self.blocked[("user", owner)] = job_id
            return f"waiting: {owner} uses {excess[0]} of their {excess[1]} {excess[2]}{_needs(excess)}{_jobs(used.jobs)}"
        used = self.groups.get(group, Usage())
        excess = over(self.quotas.of_group(group), used, req)
        if excess:
            self.blocked[("group", group)] = job_id
            return (f"waiting: your group {group} uses {excess[0]} of its {excess[1]} {excess[2]}{_needs(excess)}"
                    f"{_jobs(used.jobs)}")
        return None

    def take(self, job_id: int, req: Request) -> None:
        """``job_id`` starts in this pass: it counts against its user's and group's quotas from now."""
        entry = self.queued.get(job_id)
        if entry is not None:
            self._count(job_id, entry.name, entry.owner, entry.group, req.gpus, req.cpus, req.memory_mib)


def _needs(excess: tuple[str, str, str, str]) -> str:
    """", and this job needs 4" when the quota is not all used (else the numbers say it)."""
    used, limit, _, wanted = excess
    return "" if used == limit else f", and this job needs {wanted}"

"""Runtime ceilings: the longest an admin lets a job run, and what a job that names no max-runtime gets.

PrimeHub's model: every job has a runtime limit, 24 hours unless the admin says otherwise. Two
settings of the JobManager (docs/operators.md)::

    c.JobManager.max_runtime_ceiling = "24h"   # the most a spec may ask for; 0 or None: no ceiling
    c.JobManager.default_max_runtime = "8h"    # a spec without max-runtime gets it; default: the ceiling

A spec asking for more than the ceiling is refused at submit (a rerun too, since it is a submit)
with a 400 naming ``max-runtime`` and the ceiling. A spec without ``max-runtime`` gets the default,
written into the job's spec, so the job page and ``jupyter jobs show`` say which limit it runs
under, and the runner pool enforces it as any other max-runtime (runner/pool.py, which stops the
job and fails it; on Slurm also ``--time``, as a backstop).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .errors import ConfigError, SpecError
from .models import JobSpec, format_duration
from .spec import parse_duration


def setting_seconds(value: Any, setting: str) -> float | None:
    """A duration setting (``"24h"``, ``86400``) in seconds; None for none (0, None or "")."""
    if isinstance(value, str) and value.strip().lower() in ("", "0", "none"):
        return None
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0):
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConfigError(str(exc), setting) from None


@dataclass(frozen=True)
class RuntimeLimits:
    """The admin's ceiling and default of max-runtime, in seconds (None: none)."""

    ceiling: float | None = None
    default: float | None = None

    @classmethod
    def from_settings(cls, ceiling: Any, default: Any) -> "RuntimeLimits":
        """From ``JobManager.max_runtime_ceiling`` and ``default_max_runtime`` (None: the ceiling).
        A default above the ceiling is a configuration error: no job could run with it."""
        top = setting_seconds(ceiling, "JobManager.max_runtime_ceiling")
        fallback = top if default is None else setting_seconds(default, "JobManager.default_max_runtime")
        if top is not None and fallback is not None and fallback > top:
            raise ConfigError(f"{format_duration(fallback)} is above JobManager.max_runtime_ceiling "
                              f"({format_duration(top)}); lower it, or raise the ceiling", "JobManager.default_max_runtime")
        return cls(top, fallback)

    def apply(self, spec: JobSpec) -> tuple[JobSpec, str]:
        """``spec`` with its max-runtime within the ceiling (the default when it names none), and a line
        for the job's log when the default was given ("" otherwise). SpecError past the ceiling."""
        asked = spec.max_runtime
        if asked is None:
            if self.default is None:
                return spec, ""
            return (replace(spec, max_runtime=self.default),
                    f"no max-runtime given: the server's default of {format_duration(self.default)} applies")
        if self.ceiling is not None and asked > self.ceiling:
            raise SpecError(f"{format_duration(asked)} is more than this server allows; the ceiling is "
                            f"{format_duration(self.ceiling)} (JobManager.max_runtime_ceiling): ask for "
                            f"{format_duration(self.ceiling)} or less", "max-runtime")
        return spec, ""

    def to_json(self) -> dict[str, float | None]:
        """What ``GET /config`` says of them: seconds, or None."""
        return {"max_runtime_ceiling": self.ceiling, "default_max_runtime": self.default}

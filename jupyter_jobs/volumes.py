"""Writable volumes: folders the admin names, that jobs mount read-write and that outlive every job.

A dataset is read-only; a volume is where a job keeps what the next job reads (PrimeHub's group
volume ``/project/<group>``, a team's checkpoints). The admin defines them
(``c.Cluster.volumes = {"research": {"path": "/srv/volumes/research", "groups": ["team-a"]}}``); a spec
asks for them by name (``volumes: [research]`` or ``[{name: research, var: PROJECT}]``).

The contract, the same on every backend: the job gets ``JOB_VOLUME_<NAME>`` (the name in capitals,
any character but a letter or digit as ``_``) and the entry's ``var`` holding the volume's path as it
sees it: ``/volumes/<name>`` in a container (Docker, Slurm's container mode), the host path itself
for local and Slurm jobs.

A volume with ``groups`` may be mounted only by jobs whose owner belongs to one of them (admins: any);
the decision is :meth:`jupyter_jobs.access.Access.may_mount`. Who may write its files is the host's
business: jupyter-jobs never changes a volume's owner or mode (see docs/operators.md, "Writable volumes").
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from .errors import ConfigError, FieldProblem, SpecError
from .models import Dataset, VolumeRef

if TYPE_CHECKING:
    from .access import Access

#: Where volumes are mounted in a container: ``/volumes/<name>``.
VOLUMES_IN_CONTAINER = "/volumes"
#: A volume's name is one folder name in a container and part of a variable's name.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Volume:
    """A named host folder that jobs may write, kept across jobs."""

    name: str
    path: str
    #: Groups whose members' jobs may mount it; empty: everyone's.
    groups: tuple[str, ...] = ()
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["groups"] = list(self.groups)
        out["var"] = volume_var(self.name)
        return out

    @property
    def in_container(self) -> str:
        return posixpath.join(VOLUMES_IN_CONTAINER, self.name)


def volume_var(name: str) -> str:
    """The variable holding a volume's path in every job that mounts it: ``research`` -> ``JOB_VOLUME_RESEARCH``."""
    return "JOB_VOLUME_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def load_volumes(raw: Mapping[str, Any], datasets: Iterable[Dataset] = ()) -> list[Volume]:
    """The admin's volumes from ``Cluster.volumes`` (``{name: path}`` or ``{name: {path, groups,
    description}}``); :class:`ConfigError` naming the bad entry. A volume may not lie inside a dataset
    nor hold one: a dataset's read-only mount would cover it, or it would write under a dataset."""
    volumes: list[Volume] = []
    seen: dict[str, str] = {}
    for name, value in raw.items():
        setting = f"Cluster.volumes.{name}"
        name = str(name)
        if not _NAME.match(name):
            raise ConfigError("a volume's name is one folder name: letters, digits and ._- (at most 64)", setting)
        if volume_var(name) in seen:
            raise ConfigError(f"gives the same variable ({volume_var(name)}) as {seen[volume_var(name)]!r}; rename one",
                              setting)
        seen[volume_var(name)] = name
        volumes.append(_volume(name, value, setting))
    for volume in volumes:
        for dataset in datasets:
            if _overlap(volume.path, dataset.path):
                raise ConfigError(f"{volume.path} overlaps the dataset {dataset.name!r} ({dataset.path}): a dataset is "
                                  "read-only and a volume is written; give them separate folders",
                                  f"Cluster.volumes.{volume.name}")
    return volumes


def _volume(name: str, value: Any, setting: str) -> Volume:
    if isinstance(value, str) and value:
        return Volume(name, _absolute(value, setting))
    if not isinstance(value, Mapping) or not isinstance(value.get("path"), str):
        raise ConfigError("expected a host path or {path, groups, description}", setting)
    unknown = set(value) - {"path", "groups", "description"}
    if unknown:
        raise ConfigError("unknown key; a volume has path, groups and description", f"{setting}.{sorted(unknown)[0]}")
    groups = value.get("groups") or []
    if isinstance(groups, str) or not all(isinstance(g, str) and g for g in groups):
        raise ConfigError("expected a list of group names", f"{setting}.groups")
    return Volume(name, _absolute(value["path"], setting), tuple(groups), str(value.get("description", "")))


def _absolute(path: str, setting: str) -> str:
    resolved = Path(path).expanduser()
    if not resolved.is_absolute():
        raise ConfigError(f"{path!r} is relative; give the volume's absolute host path", setting)
    return str(resolved)


def _overlap(a: str, b: str) -> bool:
    a, b = posixpath.normpath(a), posixpath.normpath(b)
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def volumes_for(refs: Iterable[VolumeRef], volumes: Iterable[Volume], access: Access, *,
                server_user: str = "") -> list[Volume]:
    """The volumes a spec's ``volumes`` name, if ``access``'s user may mount each; else a
    :class:`SpecError` naming ``volumes[i]`` (an unknown name, or a volume of groups they are not in)."""
    known = {v.name: v for v in volumes}
    found, problems = [], []
    for index, ref in enumerate(refs):
        volume = known.get(ref.name)
        if volume is None:
            names = ", ".join(sorted(known)) or "none are defined (ask your admin to add one to c.Cluster.volumes)"
            problems.append((f"volumes[{index}].name", f"unknown volume {ref.name!r}; available: {names}"))
        elif not access.may_mount(volume.groups, server_user=server_user):
            problems.append((f"volumes[{index}].name", f"volume {ref.name!r} is for the groups "
                             f"{', '.join(volume.groups)}, and {access.user} is in none of them; ask your admin"))
        else:
            found.append(volume)
    if problems:
        raise SpecError([FieldProblem(field, message) for field, message in problems])
    return found

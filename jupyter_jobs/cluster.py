"""The admin's catalogue: instance types, datasets, writable volumes and the GPUs of this host.

Configured with traitlets (``c.Cluster.instance_types = [...]``) and/or a YAML file
(``c.Cluster.config_file``). With no configuration, one CPU instance type is sized from the
host, and GPU instance types are added when ``nvidia-smi`` finds GPUs.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from traitlets import Any as AnyTrait
from traitlets import Dict, Float, Int, List, Unicode, default
from traitlets.config import LoggingConfigurable

from .errors import ConfigError, SpecError
from .models import Dataset, Gpu, InstanceType
from .spec import load_spec_text
from .spec.foreign import PROJECT_DISK, Site
from .volumes import Volume, load_volumes

MIB = 1024 * 1024


def host_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def host_memory_mib() -> int:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // MIB)


def discover_gpus(nvidia_smi: str | None = None, timeout: float = 10.0) -> list[Gpu]:
    """GPUs reported by ``nvidia-smi`` (none when it is missing or fails)."""
    exe = nvidia_smi or shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=timeout, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_nvidia_smi(out)


def parse_nvidia_smi(text: str) -> list[Gpu]:
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4 or not parts[0].isdigit():
            continue
        memory = int(parts[3]) if parts[3].isdigit() else None
        gpus.append(Gpu(index=int(parts[0]), uuid=parts[1], name=parts[2], memory_mib=memory))
    return gpus


def default_instance_types(cpus: int, memory_mib: int, gpus: list[Gpu]) -> list[InstanceType]:
    """One CPU type that packs ``cpus`` jobs on the host, plus 1/2/4/8-GPU types when there are GPUs."""
    types = [InstanceType("cpu", 1, max(256, memory_mib // max(cpus, 1)), description="1 CPU, no GPU")]
    count = 1
    while gpus and count <= len(gpus):
        share = count / len(gpus)
        name = "gpu" if count == 1 else f"gpu-x{count}"
        model = gpus[0].name if len({g.name for g in gpus}) == 1 else "GPU"
        types.append(
            InstanceType(
                name, max(1.0, float(int(cpus * share))), int(memory_mib * share), gpus=count,
                description=f"{count} x {model}",
            )
        )
        count *= 2
    return types


class Cluster(LoggingConfigurable):
    """Instance types, datasets and the host's capacity, as the admin configured them."""

    config_file = Unicode(
        "", config=True,
        help="YAML file with `instance_types`, `datasets`, `volumes` and `gpus` (same shapes as the traits). "
        "Entries there are added to those set in traitlets config.",
    )
    instance_types = List(
        Dict(), config=True,
        help="Instance types: [{name, cpus, memory ('8GiB' or MiB), gpus, gpu_type, image, network}]. "
        "Empty: one 'cpu' type sized from the host, plus GPU types when GPUs are found.",
    )
    datasets = Dict(
        config=True, help="Datasets jobs may read: {name: host_path} or {name: {path, description}}."
    )
    volumes = Dict(
        config=True,
        help="Writable volumes jobs may mount (read-write, kept across jobs): {name: host_path} or "
        "{name: {path, groups, description}}. A volume with groups is for jobs whose owner is in one of them "
        "(admins: any). In a job: /volumes/<name> in containers, the host path on local and Slurm, always "
        "$JOB_VOLUME_<NAME>. Its owner and mode are yours to set: jupyter-jobs never changes them.",
    )
    gpus = AnyTrait(
        None, allow_none=True, config=True,
        help="GPU inventory. None: discover with nvidia-smi. An int N: N GPUs (indices 0..N-1) without "
        "discovery, e.g. for hosts whose GPUs the container runtime hands out. Or a list of "
        "{index, name, uuid, memory_mib}.",
    )
    cpus = Float(0, config=True, help="CPUs jobs may use in total; 0 means all the host's CPUs.")
    memory_mib = Int(0, config=True, help="Memory (MiB) jobs may use in total; 0 means all of the host's.")
    default_instance_type = Unicode(
        "", config=True, help="Instance type of jobs that name none; empty means the first one."
    )
    nvidia_smi = Unicode("", config=True, help="Path of nvidia-smi; empty means look it up on PATH.")
    project_disk = Unicode(
        "", config=True,
        help="Folder of the project volume that DataSphere specs attach with `flags: [attach-project-disk]`: "
        "jobs read it (read-only, like a dataset named 'project-disk') at $DS_PROJECT_HOME. Empty: no "
        "project volume, and such specs are refused.",
    )
    s3_mounts = Dict(
        config=True,
        help="DataSphere S3 connectors as datasets: {connector id: dataset name}. A spec's `s3-mounts` "
        "entry reads that dataset; an unmapped connector is refused.",
    )

    _file: dict[str, Any] = {}

    @default("_file")
    def _default_file(self) -> dict[str, Any]:
        return {}

    def load(self) -> None:
        """Read ``config_file`` and build the catalogue; raises SpecError naming the bad field."""
        self._file = {}
        if self.config_file:
            path = Path(self.config_file).expanduser()
            try:
                data = load_spec_text(path.read_text(), str(path)) or {}
            except (OSError, SpecError) as exc:
                raise ConfigError(getattr(exc, "message", str(exc)), "Cluster.config_file") from None
            if not isinstance(data, dict):
                raise ConfigError(f"{path}: expected a mapping with instance_types, datasets, gpus")
            unknown = set(data) - {"instance_types", "datasets", "volumes", "gpus", "default_instance_type"}
            if unknown:
                raise ConfigError(f"{path}: unknown key {sorted(unknown)[0]!r}")
            self._file = data
        self.host_gpus = self._load_gpus()
        self.total_cpus = self.cpus or float(host_cpus())
        self.total_memory_mib = self.memory_mib or host_memory_mib()
        raw_types = list(self.instance_types) + list(self._file.get("instance_types") or [])
        if raw_types:
            self.types = [_instance_type(f"instance_types[{i}]", t) for i, t in enumerate(raw_types)]
        else:
            self.types = default_instance_types(int(self.total_cpus), self.total_memory_mib, self.host_gpus)
        raw_sets = {**self.datasets, **(self._file.get("datasets") or {})}
        self.sets = [_dataset(name, value) for name, value in raw_sets.items()]
        if self.project_disk:
            if PROJECT_DISK in raw_sets:
                raise ConfigError(f"a dataset is named {PROJECT_DISK!r}, the name of the project volume; "
                                  "rename it", "Cluster.project_disk")
            self.sets.append(Dataset(PROJECT_DISK, str(Path(self.project_disk).expanduser()),
                                     "the project volume (DataSphere's attach-project-disk)"))
        raw_volumes = {**self.volumes, **(self._file.get("volumes") or {})}
        self.known_volumes: list[Volume] = load_volumes(raw_volumes, self.sets)
        for connector, name in self.s3_mounts.items():
            if name not in {d.name for d in self.sets}:
                raise ConfigError(f"S3 connector {connector!r} is mapped to {name!r}, which is not a dataset",
                                  f"Cluster.s3_mounts.{connector}")
        self.default_type = self._file.get("default_instance_type") or self.default_instance_type or self.types[0].name
        if self.default_type not in {t.name for t in self.types}:
            raise ConfigError(f"{self.default_type!r} is not one of the instance types", "Cluster.default_instance_type")

    def _load_gpus(self) -> list[Gpu]:
        raw = self._file.get("gpus", self.gpus)
        if isinstance(raw, str) and raw.strip().isdigit():  # from the command line
            raw = int(raw)
        if raw is None:
            return discover_gpus(self.nvidia_smi or None)
        if isinstance(raw, int) and not isinstance(raw, bool):
            return [Gpu(index=i, name="gpu") for i in range(raw)]
        if isinstance(raw, list):
            gpus = []
            for i, item in enumerate(raw):
                if not isinstance(item, dict) or "index" not in item:
                    raise ConfigError("expected {index, name, uuid, memory_mib}", f"Cluster.gpus[{i}]")
                gpus.append(Gpu(int(item["index"]), str(item.get("name", "gpu")), item.get("uuid"), item.get("memory_mib")))
            return gpus
        raise ConfigError("expected nothing (discover), a count, or a list of GPUs", "Cluster.gpus")

    def site(self) -> Site:
        """What translating other platforms' specs needs to know of this cluster."""
        return Site(tuple(self.types), PROJECT_DISK if self.project_disk else None,
                    {str(k): str(v) for k, v in self.s3_mounts.items()},
                    volumes=frozenset(v.name for v in self.known_volumes))

    def instance_type(self, name: str, field: str = "instance-type") -> InstanceType:
        for itype in self.types:
            if itype.name == name:
                return itype
        known = ", ".join(t.name for t in self.types)
        raise SpecError(f"unknown instance type {name!r}; choose one of: {known}", field)

    def dataset(self, name: str, field: str = "datasets") -> Dataset:
        for dataset in self.sets:
            if dataset.name == name:
                return dataset
        known = ", ".join(d.name for d in self.sets) or "none are defined (ask your admin to add one)"
        raise SpecError(f"unknown dataset {name!r}; available: {known}", field)

    def volume(self, name: str) -> Volume:
        """The volume named ``name`` (a job's, checked at submit); :class:`ConfigError` if it was removed since."""
        for volume in self.known_volumes:
            if volume.name == name:
                return volume
        raise ConfigError(f"the volume {name!r} is no longer defined; the job cannot mount it", "Cluster.volumes")


def parse_memory(value: Any) -> int:
    """MiB from ``4096``, ``"4GiB"``, ``"512MiB"``, ``"2G"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    text = str(value).strip().lower().replace(" ", "")
    for suffix, factor in (("gib", 1024), ("gb", 1024), ("g", 1024), ("mib", 1), ("mb", 1), ("m", 1), ("tib", 1 << 20), ("t", 1 << 20)):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(float(text))


def _instance_type(field: str, raw: Any) -> InstanceType:
    if not isinstance(raw, dict) or "name" not in raw:
        raise ConfigError("expected a mapping with at least 'name'", f"Cluster.{field}")
    known = {"name", "cpus", "memory", "memory_mib", "gpus", "gpu_type", "image", "description", "network", "partition"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown key; known: {', '.join(sorted(known))}", f"Cluster.{field}.{sorted(unknown)[0]}")
    try:
        memory = parse_memory(raw.get("memory", raw.get("memory_mib", 1024)))
        return InstanceType(
            name=str(raw["name"]), cpus=float(raw.get("cpus", 1)), memory_mib=memory,
            gpus=int(raw.get("gpus", 0)), gpu_type=raw.get("gpu_type"), image=raw.get("image"),
            description=str(raw.get("description", "")), network=bool(raw.get("network", False)),
            partition=raw.get("partition"),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad value: {exc}", f"Cluster.{field}") from None


def _dataset(name: str, raw: Any) -> Dataset:
    if isinstance(raw, str):
        return Dataset(name, str(Path(raw).expanduser()))
    if isinstance(raw, dict) and "path" in raw:
        return Dataset(name, str(Path(raw["path"]).expanduser()), str(raw.get("description", "")))
    raise ConfigError("expected a host path or {path, description}", f"Cluster.datasets.{name}")

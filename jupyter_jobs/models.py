"""Domain dataclasses: the job spec, the job record, and the admin's resource catalogue.

These are plain data, kept apart from database rows (``store.py``) and REST shapes
(``to_json``). Parsing and validation of user input lives in ``spec.py``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .pyenv.spec import PythonEnv
from .states import JobStatus


@dataclass(frozen=True)
class InputSpec:
    """A file or folder shipped with the job, relative to the submitter's folder."""

    path: str
    var: str | None = None


@dataclass(frozen=True)
class OutputSpec:
    """A file or folder the job writes and that is brought back when it ends."""

    path: str
    var: str | None = None


@dataclass(frozen=True)
class DatasetRef:
    """A named dataset defined by the admin, optionally exposed as an environment variable."""

    name: str
    var: str | None = None


@dataclass(frozen=True)
class VolumeRef:
    """A writable volume defined by the admin (:mod:`jupyter_jobs.volumes`), optionally exposed as a variable."""

    name: str
    var: str | None = None


@dataclass(frozen=True)
class RegistryAuth:
    """The login a job's image is pulled with (``registry-auth``): a user name and a secret's name."""

    username: str
    password_secret: str

    def to_value(self) -> dict[str, Any]:
        return {"username": self.username, "password": {"secret": self.password_secret}}


@dataclass(frozen=True)
class JobSpec:
    """What a user asks to run. Field names follow the YAML spec (``max-runtime`` -> ``max_runtime``)."""

    cmd: str
    name: str = ""
    desc: str = ""
    #: ``${NAME}`` values for ``cmd``, typed as written (a number stays a number); the command gets their text.
    args: dict[str, str | int | float | bool] = field(default_factory=dict)
    inputs: tuple[InputSpec, ...] = ()
    outputs: tuple[OutputSpec, ...] = ()
    datasets: tuple[DatasetRef, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    image: str | None = None
    instance_type: str | None = None
    max_runtime: float | None = None
    retries: int = 0
    priority: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    working_dir: str = "."
    #: Tasks on as many nodes (Slurm), with RANK/WORLD_SIZE/MASTER_ADDR for torch.distributed.
    replicas: int = 1
    #: ``env.python``: the Python environment the job asks for; None (not written) is the image or host as it is.
    python: PythonEnv | None = None
    #: ``instance-type: [a, b, c]``: the types after the first, tried in order when it could never fit.
    instance_type_fallbacks: tuple[str, ...] = ()
    #: Seconds the job may wait while Pending before it fails (None: as long as it takes).
    queue_timeout: float | None = None
    #: Free key/values kept with the job (Bacalhau's ``Meta``); not filterable, unlike ``labels``.
    meta: dict[str, str] = field(default_factory=dict)
    #: The group the job is run for (its quotas, who may see it); "" for none. Filled in at submit.
    group: str = ""
    #: Writable volumes the job mounts (read-write, kept across jobs).
    volumes: tuple[VolumeRef, ...] = ()
    #: ``env.vars`` given as ``{secret: NAME}``: variable -> the owner's secret (``secrets.py``), never a value.
    secrets: dict[str, str] = field(default_factory=dict)
    #: ``registry-auth``: the login of a private image's registry, its password a secret.
    registry_auth: RegistryAuth | None = None

    def to_dict(self) -> dict[str, Any]:
        """The spec as the user would write it (YAML keys), suitable for ``spec.parse_spec``."""
        out: dict[str, Any] = {"name": self.name, "cmd": self.cmd}
        if self.desc:
            out["desc"] = self.desc
        if self.args:
            out["args"] = dict(self.args)
        for key, items in (("inputs", self.inputs), ("outputs", self.outputs), ("datasets", self.datasets),
                           ("volumes", self.volumes)):
            if items:
                out[key] = [{k: v for k, v in asdict(item).items() if v is not None} for item in items]
        if self.env or self.secrets:
            out["env"] = {"vars": {**self.env, **{var: {"secret": name} for var, name in self.secrets.items()}}}
        if self.python is not None:
            out.setdefault("env", {})["python"] = self.python.to_value()
        if self.image:
            out["image"] = self.image
        if self.registry_auth is not None:
            out["registry-auth"] = self.registry_auth.to_value()
        if self.instance_type_fallbacks:
            out["instance-type"] = [self.instance_type, *self.instance_type_fallbacks]
        elif self.instance_type:
            out["instance-type"] = self.instance_type
        if self.max_runtime is not None:
            out["max-runtime"] = duration_value(self.max_runtime)
        if self.queue_timeout is not None:
            out["queue-timeout"] = duration_value(self.queue_timeout)
        if self.retries:
            out["retries"] = self.retries
        if self.priority:
            out["priority"] = self.priority
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.meta:
            out["meta"] = dict(self.meta)
        if self.group:
            out["group"] = self.group
        if self.working_dir != ".":
            out["working-dir"] = self.working_dir
        if self.replicas != 1:
            out["replicas"] = self.replicas
        return out


def format_duration(seconds: float) -> str:
    """``5400`` -> ``"1h30m"``, ``0.4`` -> ``"400ms"``: words for messages (rounded)."""
    if 0 < seconds < 1:
        return f"{round(seconds * 1000)}ms"
    seconds = int(round(seconds))
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def duration_value(seconds: float) -> str | float:
    """How a stored spec writes a duration: ``"1h30m"`` when that says it exactly, else the
    number of seconds, so that reading it back gives the same value (never ``"0s"`` for 400 ms)."""
    text = format_duration(seconds)
    return text if float(seconds).is_integer() and seconds >= 1 else float(seconds)


@dataclass(frozen=True)
class Gpu:
    """One GPU of the host (discovered with nvidia-smi, or from the admin's inventory)."""

    index: int
    name: str = "gpu"
    uuid: str | None = None
    memory_mib: int | None = None


@dataclass(frozen=True)
class InstanceType:
    """A size of machine a job can ask for, defined by the admin."""

    name: str
    cpus: float
    memory_mib: int
    gpus: int = 0
    gpu_type: str | None = None
    image: str | None = None
    description: str = ""
    #: Docker backend: let containers of this type use the host network.
    network: bool = False
    #: Slurm backend: the partition jobs of this type go to.
    partition: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Dataset:
    """A named folder on the host that jobs may read."""

    name: str
    path: str
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Allocation:
    """The resources a running job holds."""

    cpus: float = 0.0
    memory_mib: int = 0
    gpus: tuple[int, ...] = ()


@dataclass
class JobRecord:
    """A job as stored: its spec plus everything that happened to it."""

    id: int
    name: str
    owner: str
    spec: JobSpec
    status: JobStatus = JobStatus.PENDING
    message: str = ""
    instance_type: str = ""
    image: str | None = None
    command: str = ""
    exit_code: int | None = None
    created_at: float = 0.0
    preparing_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    attempt: int = 1
    rerun_of: int | None = None
    backend: str = ""
    allocation: Allocation = field(default_factory=Allocation)
    #: Backend-specific handle that lets a restarted server find the job again (pid, container id).
    handle: dict[str, Any] = field(default_factory=dict)
    cancel_requested: bool = False
    outputs: list[dict[str, Any]] = field(default_factory=list)
    idempotency_key: str | None = None
    updated_at: float = 0.0
    #: Why the stored record could not be read whole (it is shown, but never run again).
    damaged: str = ""
    #: The job's Python environment (``env.python``): its lock's hash and size, then how it was prepared.
    environment: dict[str, Any] = field(default_factory=dict)
    #: What translating a spec written for another platform left out (``spec/foreign.py``), one line each.
    warnings: list[str] = field(default_factory=list)
    #: The schedule that submitted this job (``schedules.py``); None for one submitted by hand.
    schedule_id: int | None = None
    #: Kept by retention whatever its age (``jupyter jobs pin``).
    pinned: bool = False
    #: When retention removed its log, displays, outputs and working dir (None: they are there).
    data_removed_at: float | None = None

    def durations(self, now: float) -> dict[str, float | None]:
        """Seconds spent queued, preparing and running (so far, for the phase in progress)."""
        end = self.finished_at if self.finished_at is not None else now

        def span(start: float | None, stop: float | None) -> float | None:
            if start is None:
                return None
            return max(0.0, (stop if stop is not None else end) - start)

        return {
            "queued": span(self.created_at, self.preparing_at),
            "preparing": span(self.preparing_at, self.started_at),
            "running": span(self.started_at, None),
        }

    def to_json(self, now: float) -> dict[str, Any]:
        """The REST shape of a job."""
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "group": self.spec.group,
            "status": self.status.value,
            "message": self.message,
            "instance_type": self.instance_type,
            "image": self.image,
            "command": self.command,
            "exit_code": self.exit_code,
            "created_at": self.created_at,
            "preparing_at": self.preparing_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "durations": self.durations(now),
            "attempt": self.attempt,
            "max_attempts": self.spec.retries + 1,
            "rerun_of": self.rerun_of,
            "backend": self.backend,
            "gpus": list(self.allocation.gpus),
            "cpus": self.allocation.cpus,
            "memory_mib": self.allocation.memory_mib,
            "priority": self.spec.priority,
            "desc": self.spec.desc,
            "labels": dict(self.spec.labels),
            "meta": dict(self.spec.meta),
            "queue_timeout": self.spec.queue_timeout,
            "warnings": list(self.warnings),
            "datasets": [d.name for d in self.spec.datasets],
            "volumes": [v.name for v in self.spec.volumes],
            "outputs": self.outputs,
            "cancel_requested": self.cancel_requested,
            "spec": self.spec.to_dict(),
            "damaged": self.damaged or None,
            "environment": public_environment(self.environment),
            "schedule_id": self.schedule_id,
            "pinned": self.pinned,
            "data_removed_at": self.data_removed_at,
        }


def public_environment(environment: dict[str, Any]) -> dict[str, Any] | None:
    """The REST shape of a job's environment (None when it asks for none); the interpreter path
    a client sent stays on the server."""
    if not environment:
        return None
    return {k: v for k, v in environment.items() if k != "interpreter"}

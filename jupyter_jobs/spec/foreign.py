"""Specs written for other platforms: recognised by their shape and translated to a native spec.

A DataSphere Jobs ``config.yaml`` is close to the native spec and is accepted as written (its own
spellings are rewritten: ``cloud-instance-type``, ``env.docker``, ``flags``, ``s3-mounts``). A
PrimeHub job (its JSON, or the ``PhJob`` resource) and a Bacalhau job spec are translated key by key.

What has no equivalent here is never dropped silently. A key whose loss would change what the
program computes or where its data comes from (a Bacalhau ``service`` job, a WebAssembly engine,
``InputSources``) refuses the spec with a 400 naming every such key. A key that only steers
another platform's bookkeeping or placement (``Constraints``, ``Namespace``, ``Publisher``,
PrimeHub's ids) is left out with ONE warning naming them all, kept on the job (``warnings`` in its
JSON, and the first line of its log) and printed by ``jupyter jobs convert``: refusing those would
make every real-world spec need edits for no difference in its results.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import FieldProblem, SpecError
from ..models import InstanceType, JobSpec
from .limits import check_document, load_yaml
from .parse import parse_spec

#: The dataset an admin's project volume is, for DataSphere's ``flags: [attach-project-disk]``.
PROJECT_DISK = "project-disk"
_PRIMEHUB_KEYS = frozenset({"displayName", "instanceType", "groupName", "groupId", "activeDeadlineSeconds",
                            "userId", "userName"})
#: Words of a command that name a script the job runs (shipped as its inputs when nothing else is).
_SCRIPT = re.compile(r"^(?![/~$-])[\w./-]+\.(py|sh|R|jl|ipynb)$")


@dataclass(frozen=True)
class Site:
    """What translation needs to know of the server: its instance types and the admin's mappings."""

    instance_types: tuple[InstanceType, ...] = ()
    #: The dataset holding the project volume (``Cluster.project_disk``), or None when there is none.
    project_dataset: str | None = None
    #: DataSphere S3 connector id -> dataset name (``Cluster.s3_mounts``).
    s3_mounts: Mapping[str, str] = field(default_factory=dict)
    #: The client's view: every S3 connector and the project volume taken as mapped (the server checks).
    assume_mapped: bool = False
    #: Names of the writable volumes (``Cluster.volumes``): PrimeHub's ``/project/<group>`` is one of them.
    volumes: frozenset[str] = frozenset()


@dataclass
class Translation:
    """A spec in native form, the platform it was written for, and what was left out."""

    spec: Any
    source: str = "native"
    warnings: list[str] = field(default_factory=list)

    def parse(self) -> JobSpec:
        """The typed spec; a problem in a translated spec says where the native field names come from."""
        try:
            return parse_spec(self.spec)
        except SpecError as exc:
            if self.source == "native":
                raise
            raise SpecError([*exc.problems, FieldProblem("", f"(read as a {self.source} spec: these are the fields "
                             "of its translation, which `jupyter jobs convert FILE` prints)")]) from None


class Problems:
    """Refusals and left-out keys gathered while translating; refusals raise once, all together."""

    def __init__(self, platform: str) -> None:
        self.platform = platform
        self.refused: list[FieldProblem] = []
        self.ignored: list[str] = []

    def refuse(self, field: str, message: str) -> None:
        self.refused.append(FieldProblem(field, message))

    def ignore(self, field: str, why: str = "") -> None:
        self.ignored.append(f"{field} ({why})" if why else field)

    def finish(self, spec: dict[str, Any]) -> Translation:
        if self.refused:
            raise SpecError(self.refused)
        warnings = []
        if self.ignored:
            warnings.append(f"{self.platform} keys with no equivalent in jupyter-jobs were left out: "
                            + "; ".join(self.ignored))
        return Translation(spec, self.platform, warnings)


def detect(data: Any) -> str:
    """``bacalhau``, ``primehub``, ``datasphere`` or ``native``, from the shape of a loaded spec."""
    if not isinstance(data, Mapping):
        return "native"
    keys = set(data)
    if "Tasks" in keys or ("Type" in keys and "Count" in keys) or isinstance(data.get("Job"), Mapping):
        return "bacalhau"
    # A key only PrimeHub has: a native spec that says `command` by mistake is still told "did you mean cmd".
    if data.get("kind") == "PhJob" or keys & _PRIMEHUB_KEYS:
        return "primehub"
    from .datasphere import is_datasphere

    return "datasphere" if is_datasphere(data) else "native"


def to_native(data: Any, site: Site | None = None) -> Translation:
    """Translate a spec (YAML text or a loaded mapping) to native form; a native spec is returned as is.

    Raises
    ------
    SpecError
        Naming every key that has no equivalent and whose loss would change the job's results.
    """
    if isinstance(data, (str, bytes)):
        data = load_yaml(data.decode("utf-8", "replace") if isinstance(data, bytes) else data)
    source = detect(data)
    if source == "native":
        return Translation(data)
    check_document(data)
    from .bacalhau import from_bacalhau
    from .datasphere import from_datasphere
    from .primehub import from_primehub

    translate = {"bacalhau": from_bacalhau, "primehub": from_primehub, "datasphere": from_datasphere}
    try:
        return translate[source](data, site or Site())
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        # A value of a shape no translator expects: the client's mistake, so a 400 that says where
        # it was read from, never a 500 (the translators check the shapes they rely on; this is the net).
        raise SpecError(f"cannot be read as a {source} spec ({type(exc).__name__}: {exc}); compare it with "
                        "the examples in docs/spec.md") from None


def escape_dollars(text: str) -> str:
    """Text for ``cmd`` that stays exactly as written: ``$`` is ``$$`` (native ``${VAR}`` is substitution)."""
    return text.replace("$", "$$")


def scripts_in(words: list[str]) -> list[str]:
    """The relative script paths a command runs (``python -u train.py`` -> ``train.py``), in order, once."""
    found: list[str] = []
    for word in words:
        if _SCRIPT.match(word) and ".." not in word.split("/") and word not in found:
            found.append(word)
    return found


def pick_instance_type(types: tuple[InstanceType, ...], cpus: float, memory_mib: int, gpus: int) -> str | None:
    """The smallest instance type with at least these resources (fewest GPUs, CPUs, then memory)."""
    fitting = [t for t in types if t.cpus >= cpus and t.memory_mib >= memory_mib and t.gpus >= gpus]
    fitting.sort(key=lambda t: (t.gpus, t.cpus, t.memory_mib))
    return fitting[0].name if fitting else None

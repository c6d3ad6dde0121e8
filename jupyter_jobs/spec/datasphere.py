"""DataSphere Jobs ``config.yaml``: its own spellings rewritten to the native spec.

The native spec follows DataSphere's, so most of a ``config.yaml`` is already native (``name``,
``desc``, ``cmd``, ``inputs``, ``outputs``, ``datasets``, ``env.vars``, ``env.python``, the long
forms ``- data.csv: {var: CSV}``, handled in ``parse``). What is DataSphere's own:

- ``cloud-instance-type: g2.1`` is ``instance-type``; ``cloud-instance-types: [g2.1, g1.1]`` a list of
  them, tried in order (the first that can ever fit);
- ``env.docker``: an image name, or ``{image, username, password: {secret-id: NAME}}``: the native
  ``registry-auth``, its password a secret of the job's owner (``secrets.py``); a password written
  in the spec is refused;
- ``flags: [attach-project-disk]``: the admin's project volume (``Cluster.project_disk``) as a
  read-only dataset in ``$DS_PROJECT_HOME``;
- ``s3-mounts``: S3 connectors, each mapped by the admin to a dataset (``Cluster.s3_mounts``);
- a dataset or S3 mount without a ``var`` is ``${<its name>}`` in ``cmd``.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

from .foreign import PROJECT_DISK, Problems, Site, Translation
from .parse import referenced_vars

#: Keys only DataSphere has.
DATASPHERE_KEYS = frozenset({"cloud-instance-type", "cloud-instance-types", "flags", "s3-mounts"})
#: Flags a DataSphere config may set.
FLAGS = ("attach-project-disk",)


def is_datasphere(data: Mapping[str, Any]) -> bool:
    """Whether a spec uses DataSphere's own spellings (else it is native as it is)."""
    env, cmd, datasets = data.get("env"), data.get("cmd"), data.get("datasets")
    if DATASPHERE_KEYS & {str(k).replace("_", "-") for k in data} or (isinstance(env, Mapping) and "docker" in env):
        return True
    if isinstance(cmd, str) and isinstance(datasets, list):  # ``${<dataset>}`` by its name
        used = set(referenced_vars(cmd))
        return any(_entry(item)[0] in used and _entry(item)[1] is None for item in datasets)
    return False


def from_datasphere(data: Mapping[str, Any], site: Site) -> Translation:
    """The native spec of a DataSphere ``config.yaml``."""
    problems = Problems("DataSphere")
    spec = {str(k).replace("_", "-") if str(k).replace("_", "-") in DATASPHERE_KEYS else k: copy.deepcopy(v)
            for k, v in data.items()}
    _instance_types(spec, problems)
    _docker(spec, problems)
    datasets = spec.get("datasets", [])
    if not isinstance(datasets, list):
        return problems.finish(spec)  # parse names the bad value
    datasets = [*datasets, *_s3_mounts(spec.pop("s3-mounts", None), site, problems),
                *_flags(spec.pop("flags", None), site, problems)]
    cmd = spec.get("cmd")
    used = set(referenced_vars(cmd)) if isinstance(cmd, str) else set()
    spec["datasets"] = [_named_var(entry, used) for entry in datasets]
    if not spec["datasets"]:
        del spec["datasets"]
    return problems.finish(spec)


def _instance_types(spec: dict[str, Any], problems: Problems) -> None:
    given = [k for k in ("instance-type", "cloud-instance-type", "cloud-instance-types") if k in spec]
    if len(given) > 1:
        problems.refuse(given[1], f"give one of {', '.join(given)}, not both")
        return
    if "cloud-instance-type" in spec:
        spec["instance-type"] = spec.pop("cloud-instance-type")
    elif "cloud-instance-types" in spec:
        value = spec.pop("cloud-instance-types")
        if not isinstance(value, list):
            problems.refuse("cloud-instance-types", "expected a list of instance types, tried in order")
            return
        spec["instance-type"] = value


def _docker(spec: dict[str, Any], problems: Problems) -> None:
    env = spec.get("env")
    if not isinstance(env, dict) or "docker" not in env:
        return
    docker = env.pop("docker")
    if "image" in spec:
        problems.refuse("env.docker", "the image is given twice (image and env.docker); keep one")
        return
    if isinstance(docker, Mapping):
        for key in docker:
            if key not in ("image", "username", "password"):
                problems.refuse(f"env.docker.{key}", "unknown key; env.docker has image, username, password")
        if "password" in docker or "username" in docker:
            _registry_login(spec, docker, problems)
        if "image" not in docker:
            problems.refuse("env.docker", "give the image: env.docker: {image: name:tag}")
        docker = docker.get("image")
    if docker is not None:
        spec["image"] = docker


def _registry_login(spec: dict[str, Any], docker: Mapping[str, Any], problems: Problems) -> None:
    """``env.docker.{username, password: {secret-id: NAME}}``: the native ``registry-auth``."""
    password = docker.get("password")
    if password is not None and not isinstance(password, Mapping):
        problems.refuse("env.docker.password", "give the password as {secret-id: NAME}, a secret stored with "
                        "`jupyter jobs secret set NAME` (the value is read from stdin), never in the spec")
    elif password is None:
        problems.refuse("env.docker.password", "required with username: {secret-id: NAME}, a secret stored with "
                        "`jupyter jobs secret set NAME` (or remove username to pull with the host's own login)")
    elif "username" not in docker:
        problems.refuse("env.docker.username", "required with password: the registry's user name")
    else:
        spec["registry-auth"] = {"username": docker["username"], "password": dict(password)}


def _s3_mounts(value: Any, site: Site, problems: Problems) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.refuse("s3-mounts", "expected a list of S3 connector ids")
        return []
    out = []
    for index, item in enumerate(value):
        name, var = _entry(item)
        if name is None:
            problems.refuse(f"s3-mounts[{index}]", "expected a connector id, or {id: {var: NAME}}")
            continue
        dataset = site.s3_mounts.get(name) or (name if site.assume_mapped else None)
        if dataset is None:
            mapped = ", ".join(sorted(site.s3_mounts)) or "none are"
            problems.refuse(f"s3-mounts[{index}]", f"S3 connector {name!r} is not mapped to a dataset here "
                            f"({mapped} mapped); ask the admin to add it to c.Cluster.s3_mounts")
            continue
        # Named by the connector in cmd (``${<connector_ID>}``), as in DataSphere.
        out.append({"name": dataset, "var": var or name, "_by_name": var is None})
    return out


def _flags(value: Any, site: Site, problems: Problems) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.refuse("flags", f"expected a list of flags: {', '.join(FLAGS)}")
        return []
    out = []
    for index, flag in enumerate(value):
        if flag not in FLAGS:
            problems.refuse(f"flags[{index}]", f"unknown flag {flag!r}; the flags are {', '.join(FLAGS)}")
        elif site.project_dataset is None and not site.assume_mapped:
            problems.refuse(f"flags[{index}]", "attach-project-disk needs a project volume and this server has "
                            "none; ask the admin to set c.Cluster.project_disk, or ship the files as inputs")
        else:
            out.append({"name": site.project_dataset or PROJECT_DISK, "var": "DS_PROJECT_HOME"})
    return out


def _entry(item: Any) -> tuple[str | None, str | None]:
    """(name, var) of ``name``, ``{name: VAR}`` or ``{name: {var: VAR}}``."""
    if isinstance(item, str):
        return item, None
    if isinstance(item, Mapping) and len(item) == 1:
        ((name, var),) = item.items()
        if isinstance(var, Mapping):
            var = var.get("var")
        return str(name), var if isinstance(var, str) else None
    return None, None


def _named_var(entry: Any, used: set[str]) -> Any:
    """A dataset without a var is ``${<name>}`` when cmd uses that name (DataSphere's rule)."""
    if isinstance(entry, dict) and "_by_name" in entry:
        by_name = entry.pop("_by_name")
        if by_name and entry["var"] not in used:
            del entry["var"]
        return entry
    name, var = _entry(entry)
    if name is not None and var is None and name in used:
        return {"name": name, "var": name}
    return entry

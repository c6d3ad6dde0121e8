"""What the submitting client (``jupyter jobs run``) does to a spec before it sends it.

Two things only the submitter can do, because they read the submitter's machine:

- ``env.vars`` entries written as a bare ``- NAME`` (DataSphere's "copy it from my environment")
  get the value NAME has where the client runs;
- absolute ``inputs`` (DataSphere's ``- /usr/share/params.json: {var: PARAMS}``) are files of the
  submitter's machine: they are shipped under ``_local/`` (``_local/usr/share/params.json``), and
  the whole set of inputs travels by content hash (the server never reads an absolute path of its own).
"""
from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any, Mapping

from ..errors import SpecError
from .foreign import Site, to_native

#: Folder of the job's files where absolute inputs of the submitter's machine are put.
LOCAL_INPUTS = "_local"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def fill_environment(data: Any, environ: Mapping[str, str]) -> Any:
    """``data`` with each bare ``- NAME`` of ``env.vars`` given its value from ``environ``.

    Raises
    ------
    SpecError
        Naming each variable that is not set in ``environ``.
    """
    env = data.get("env") if isinstance(data, Mapping) else None
    names = env.get("vars") if isinstance(env, Mapping) else None
    if not isinstance(names, list) or not any(isinstance(n, str) and _NAME.match(n) for n in names):
        return data
    data = copy.deepcopy(dict(data))
    filled, missing = [], []
    for index, item in enumerate(data["env"]["vars"]):
        if isinstance(item, str) and _NAME.match(item):
            if item not in environ:
                missing.append(f"env.vars[{index}]: {item} is not set here; set it, or write {item}=value")
                continue
            item = f"{item}={environ[item]}"
        filled.append(item)
    if missing:
        raise SpecError("; ".join(missing), "env.vars")
    data["env"]["vars"] = filled
    return data


def local_inputs(data: Any) -> tuple[Any, dict[str, Path]]:
    """``data`` with its absolute inputs renamed under ``_local/``, and those files
    ``{path in the job: path here}`` (a folder's files one by one); ``(data, {})`` when there are none."""
    inputs = data.get("inputs") if isinstance(data, Mapping) else None
    if not isinstance(inputs, list) or not any(_is_absolute(_path_of(item)) for item in inputs):
        return data, {}
    data = copy.deepcopy(dict(data))
    files: dict[str, Path] = {}
    for index, item in enumerate(data["inputs"]):
        path = _path_of(item)
        if not _is_absolute(path):
            continue
        source = Path(path).expanduser()  # type: ignore[arg-type]
        if not source.exists():
            raise SpecError(f"{path!r} does not exist on this machine", f"inputs[{index}]")
        relative = f"{LOCAL_INPUTS}/{source.as_posix().lstrip('/')}"
        data["inputs"][index] = _renamed(item, relative)
        files.update(_files_of(source, relative))
    return data, files


def for_shipping(data: Any) -> Any:
    """The native spec whose inputs and command say which files of the spec's folder a job needs.

    Another platform's spec is translated (the admin's mappings taken as given: the server checks
    them); a bare ``env.vars`` name stands for a value; absolute inputs, which are not in the folder
    (:func:`local_inputs` ships them), are left out, their variables still defined for ``cmd``.
    """
    spec = to_native(data, Site(assume_mapped=True)).spec
    if not isinstance(spec, Mapping):
        return spec
    env = spec.get("env")
    if isinstance(env, Mapping) and isinstance(env.get("vars"), list):
        names = {n: "" for n in env["vars"] if isinstance(n, str) and _NAME.match(n)}
        spec = fill_environment(spec, names)
    if not isinstance(spec.get("inputs"), list):
        return spec
    inputs = spec["inputs"]
    spec = {**spec, "inputs": [], "args": dict(spec.get("args") or {})}
    for item in inputs:
        path = _path_of(item)
        if not _is_absolute(path) and not str(path).startswith(f"{LOCAL_INPUTS}/"):
            spec["inputs"].append(item)
        elif isinstance(item, Mapping):  # its variable stays defined for the command
            var = item.get("var") if "path" in item else next(iter(item.values()))
            var = var.get("var") if isinstance(var, Mapping) else var
            if isinstance(var, str):
                spec["args"][var] = path
    return spec


def _path_of(item: Any) -> str | None:
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping) and isinstance(item.get("path"), str):
        return item["path"]
    if isinstance(item, Mapping) and len(item) == 1:
        return str(next(iter(item)))
    return None


def _is_absolute(path: str | None) -> bool:
    return bool(path) and (path.startswith("/") or path.startswith("~"))  # type: ignore[union-attr]


def _renamed(item: Any, relative: str) -> Any:
    if isinstance(item, str):
        return relative
    if "path" in item and isinstance(item["path"], str):
        return {**item, "path": relative}
    ((_, var),) = item.items()
    return {relative: var}


def _files_of(source: Path, relative: str) -> dict[str, Path]:
    if source.is_file():
        return {relative: source}
    files = {}
    for folder, dirs, names in os.walk(source):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder) / name
            if path.is_file():
                files[f"{relative}/{path.relative_to(source).as_posix()}"] = path
    return files

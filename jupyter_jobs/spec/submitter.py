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


def local_inputs(data: Any, spec_dir: Path) -> tuple[Any, dict[str, Path] | None]:
    """``data`` with absolute inputs renamed under ``_local/``, and the files of every input to
    upload ``{path in the job: path here}``; ``(data, None)`` when no input is absolute."""
    inputs = data.get("inputs") if isinstance(data, Mapping) else None
    if not isinstance(inputs, list) or not any(_is_absolute(_path_of(item)) for item in inputs):
        return data, None
    data = copy.deepcopy(dict(data))
    files: dict[str, Path] = {}
    for index, item in enumerate(data["inputs"]):
        path = _path_of(item)
        if path is None:
            continue  # the server names what is wrong with it
        if _is_absolute(path):
            source = Path(path).expanduser()
            relative = f"{LOCAL_INPUTS}/{source.as_posix().lstrip('/')}"
            data["inputs"][index] = _renamed(item, relative)
        else:
            source, relative = spec_dir / path, path
        if not source.exists():
            raise SpecError(f"{path!r} does not exist on this machine", f"inputs[{index}]")
        files.update(_files_of(source, relative))
    return data, files


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
                inner = path.relative_to(source).as_posix()
                files[inner if relative in ("", ".") else f"{relative.rstrip('/')}/{inner}"] = path
    return files

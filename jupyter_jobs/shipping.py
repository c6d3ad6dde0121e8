"""What a job takes from the submitter's disk: one rule for ``jupyter jobs run`` and ``%job run``.

DataSphere's rule: the spec's ``inputs`` (files or folders; inside a folder the ignore rules of
:mod:`.kernel.packaging` apply: ``.git/``, ``__pycache__/``, ``.gitignore``, ``.jobignore``), plus
every file the ``cmd`` names that exists beside the spec (``python train.py``, ``bash run.sh``,
``--config conf.yaml``), the module ``python -m`` runs, and the local modules and packages those
Python files import, transitively (beside each file, and in the spec's folder). The folder holding the spec is not shipped whole: what a job
needs is what it names. A notebook run as a job (``%job run nb.ipynb``, a spec whose ``cmd`` names
one) brings what its code cells import from beside it, and the files and folders beside it that
they name in a string (``pd.read_csv("data/train.csv")``). Files travel as content-addressed blobs, so an unchanged one is never sent
twice, and the server needs no shared disk.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any, Mapping

from .errors import JobsError, SpecError
from .kernel.packaging import ignore_spec, local_modules
from .spec import apply_overrides, load_spec_text, parse_set_option, parse_spec
from .spec.submitter import fill_environment, for_shipping, local_inputs

#: ``python``, ``python3``, ``python3.11``: the interpreters whose ``-m`` we follow.
_PYTHON = re.compile(r"python(\d+(\.\d+)?)?")


def submission(spec: Any, folder: Path, environ: Mapping[str, str]) -> tuple[Any, dict[str, Path]]:
    """The spec as this client sends it and the files it ships: a bare ``env.vars`` name gets its value from
    ``environ`` (DataSphere's "copy it from my environment"), absolute inputs (this machine's files) travel
    under ``_local/``, and the rest is :func:`files_to_ship`. ``jupyter jobs run`` and ``%job run`` both
    submit this way."""
    spec = fill_environment(spec, environ)
    spec, local = local_inputs(spec)
    return spec, {**files_to_ship(spec, folder), **local}


def spec_file_submission(path: Path, overrides: list[str], folder: Path,
                         environ: Mapping[str, str]) -> tuple[Any, dict[str, Path]]:
    """:func:`submission` of the spec file at ``path`` with the CLI's ``--set KEY=VALUE`` ``overrides``:
    what ``jupyter jobs run`` submits and ``jupyter jobs schedule create`` keeps."""
    if not path.is_file():
        raise JobsError(f"{path}: no such spec file")
    spec = load_spec_text(path.read_text(), str(path))
    if overrides:
        spec = apply_overrides(spec or {}, dict(parse_set_option(s) for s in overrides))
    return submission(spec, folder, environ)


def files_to_ship(spec: Any, folder: Path) -> dict[str, Path]:
    """``{path in the job's folder: local file}`` of a spec that lives in ``folder``."""
    folder = folder.resolve()
    parsed = parse_spec(for_shipping(spec))  # a DataSphere, PrimeHub or Bacalhau spec: its translation
    files: dict[str, Path] = {}
    for index, item in enumerate(parsed.inputs):
        files.update(_input(folder, item.path, f"inputs[{index}].path"))
    for relative in _named_in_command(parsed.cmd, folder):
        files.setdefault(relative, folder / relative)
    for path in [p for p in files.values() if p.suffix in (".py", ".ipynb")]:
        for relative, module in (_imports_of(path, folder) if path.suffix == ".py" else notebook_files(path, folder)).items():
            files.setdefault(relative, module)
    return files


def inputs_to_ship(spec: Any, folder: Path) -> dict[str, Path]:
    """``{path in the job's folder: local file}`` of a spec's ``inputs`` only, read under ``folder``: what a
    server given ``base_dir`` copies (the forwarder to a shared service uploads exactly that)."""
    folder = folder.resolve()
    files: dict[str, Path] = {}
    for index, item in enumerate(parse_spec(for_shipping(spec)).inputs):
        files.update(_input(folder, item.path, f"inputs[{index}].path"))
    return files


def notebook_files(notebook: Path, folder: Path) -> dict[str, Path]:
    """What a notebook run as a job takes from ``folder`` besides itself: the local modules its code cells
    import, and the files and folders beside it that they name in a string literal."""
    import ast
    import json

    folder = folder.resolve()
    try:
        cells = json.loads(notebook.read_text(errors="replace")).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return {}
    found: dict[str, Path] = {}
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
        found.update(local_modules(code, folder))
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and 0 < len(node.value) < 256 \
                    and "\n" not in node.value and not node.value.startswith(("/", "-")):
                path = folder / node.value
                if _inside(folder, path) and path.exists() and path.resolve() != folder:
                    found.update(_input(folder, path.resolve().relative_to(folder).as_posix(), "notebook"))
    return found


def _input(folder: Path, relative: str, field: str) -> dict[str, Path]:
    source = folder / relative
    if not _inside(folder, source):
        raise SpecError(f"{relative!r} is not inside {folder}, the spec's folder", field)
    if source.is_file():
        return {relative: source}
    if not source.is_dir():
        raise SpecError(f"{relative!r} does not exist in {folder}; inputs are paths relative to the spec", field)
    ignored = ignore_spec(folder)
    found = {}
    for path in sorted(source.rglob("*")):
        name = path.relative_to(folder).as_posix()
        parts = name.split("/")
        above = ["/".join(parts[:i]) + "/" for i in range(1, len(parts))]  # a file is ignored when a folder above it is
        if path.is_file() and not any(ignored.match_file(p) for p in [*above, name]):
            found[name] = path
    return found


def _named_in_command(cmd: str, folder: Path) -> list[str]:
    """Files beside the spec that ``cmd`` names, and the module ``python -m`` runs."""
    try:
        words = shlex.split(cmd, comments=True)
    except ValueError:  # unbalanced quotes: the server's shell will say so
        return []
    named: list[str] = []
    for index, word in enumerate(words):
        candidates = [word.split("=", 1)[1]] if word.startswith("--") and "=" in word else [word]
        if index >= 2 and words[index - 1] == "-m" and _PYTHON.fullmatch(_program(words[:index - 1])):
            module = word.replace(".", "/")
            candidates += [f"{module}.py", f"{module}/__main__.py"]
        for candidate in candidates:
            if not candidate or candidate.startswith(("/", "-")) or "$" in candidate:
                continue
            path = folder / candidate
            if _inside(folder, path) and path.is_file():
                named.append(path.resolve().relative_to(folder).as_posix())
    return named


def _program(words: list[str]) -> str:
    """The program the last of ``words`` belongs to (``python3 -u`` -> ``python3``)."""
    for word in reversed(words):
        if not word.startswith("-"):
            return Path(word).name
    return ""


def _imports_of(path: Path, folder: Path) -> dict[str, Path]:
    """Local modules ``path`` imports: beside it (a script's folder is first on ``sys.path``) and in the
    spec's folder (the working dir, first on ``sys.path`` for ``python -m``)."""
    code = path.read_text(errors="replace")
    found = dict(local_modules(code, folder))
    here = path.parent.resolve()
    if here != folder and _inside(folder, here):
        prefix = here.relative_to(folder).as_posix()
        found.update({f"{prefix}/{name}": module for name, module in local_modules(code, here).items()})
    return found


def _inside(folder: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(folder)
    except ValueError:
        return False
    return True

"""From ``env.python`` to a :class:`~.lock.Lock`: what a person wrote, resolved to exact pins with uv.

``auto`` is the submitting client's capture as it is. A mapping is resolved by
``uv pip compile --python-version X.Y`` for the Python it names, and what it leaves out comes from
``auto``, as in DataSphere:

- ``version`` missing: the captured Python's;
- neither ``packages`` nor ``requirements-file``: the captured packages (local ones included), as
  pinned; with either, exactly what they list, and nothing of the capture but a preference: a
  package the notebook has is resolved to the notebook's version when the requirements allow it
  (the capture is uv's existing output file, whose pins uv keeps);
- ``pip-options``: the spec's, then those of the requirements file.

The requirements file is read here, never handed to uv: each line must be a requirement (PEP 508,
not a local path or ``file:`` URL: local packages come from ``auto``) or an allowed installer option,
so ``-r /etc/passwd`` or ``-e ./setup-that-runs-code`` are 400s naming the line. Resolution runs with
``--only-binary :all:`` unless ``allow_builds``: building a source distribution runs its code, which must
not happen in the server; a package with no wheels then fails with uv's message saying so.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from ..errors import EnvironmentBuildFailed, SpecError
from .lock import Lock, Pin, normalise_name
from .spec import PythonEnv, _pip_options
from .uv import find_uv, run_uv

#: Largest requirements file read (a long one is a few KiB).
MAX_REQUIREMENTS_BYTES = 1024 * 1024


def resolve(env: PythonEnv, *, auto: Lock | None = None, folder: str | os.PathLike[str] | None = None,
            cache_dir: str | os.PathLike[str], uv: str | None = None, allow_builds: bool = False) -> Lock:
    """The lock of ``env``.

    Parameters
    ----------
    auto
        The submitting client's capture, when there is one (``%%job``, the CLI); fills what ``env`` leaves out.
    folder
        The job's input folder, where ``requirements-file`` is.
    cache_dir
        uv's cache (the environment cache's ``uv-cache``, so resolving warms the install).

    Raises
    ------
    SpecError
        Naming the field: ``auto`` without a capture, no version to go by, a requirements file that is
        missing, outside the folder, or has a line that is not a requirement or an allowed option.
    EnvironmentBuildFailed
        When uv cannot resolve (a package the index does not have, conflicting versions), with uv's
        message and the packages it names.
    """
    if env.mode == "none":
        raise ValueError("env.python: none has no lock; check PythonEnv.managed first")
    if env.mode == "auto":
        if auto is None:
            raise SpecError("auto needs the submitting client's environment, and none was sent; submit from a "
                            "notebook or the CLI, or write version and packages", "env.python")
        return auto
    version = env.version or (auto.python if auto else "")
    if not version:
        raise SpecError("no Python version to go by (nothing was captured); write one, e.g. \"3.11\"",
                        "env.python.version")
    requirements, options = list(env.packages), list(env.pip_options)
    if env.requirements_file:
        listed, file_options = _read_requirements(_requirements_path(env.requirements_file, folder))
        requirements[:0] = listed
        options += [option for option in file_options if option not in options]
    if not requirements:
        return Lock(version, auto.packages if auto else (), auto.local if auto else (), tuple(options))
    pins = _compile(requirements, version, tuple(options), auto, Path(cache_dir), uv or find_uv(), allow_builds)
    return Lock(version, pins, (), tuple(options))


def _requirements_path(name: str, folder: str | os.PathLike[str] | None) -> Path:
    field = "env.python.requirements-file"
    if folder is None:
        raise SpecError(f"{name} cannot be read: the job has no input folder; send it with the job's inputs", field)
    root = Path(folder).resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise SpecError(f"{name} leads outside the job's folder (a symbolic link?); send the file itself", field)
    if not path.is_file():
        raise SpecError(f"{name} is not among the job's inputs; add it to inputs or fix the path", field)
    if path.stat().st_size > MAX_REQUIREMENTS_BYTES:
        raise SpecError(f"{name} is over {MAX_REQUIREMENTS_BYTES} bytes; is it a requirements file?", field)
    return path


def _read_requirements(path: Path) -> tuple[list[str], list[str]]:
    """The requirements and installer options of a requirements file, each line checked."""
    field = "env.python.requirements-file"
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path.name} cannot be read as text: {exc}", field) from None
    requirements: list[str] = []
    options: list[str] = []
    for number, line in _logical_lines(text):
        where = f"{path.name} line {number}"
        if line.startswith("-"):
            try:
                options += _pip_options(line, field)
            except SpecError as exc:
                raise SpecError(f"{where}: {exc.problems[0].message}; -r, -c and -e are not supported "
                                "(put every requirement in this one file; local packages come from auto)", field) from None
            continue
        line = line.split(" --hash", 1)[0].strip()  # hash-checking mode is not supported; the pin is kept
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            raise SpecError(f"{where}: {line!r} is not a requirement (PEP 508), nor a local path that could be "
                            f"used here: {str(exc).splitlines()[0]}", field) from None
        if requirement.url and requirement.url.startswith("file:"):
            raise SpecError(f"{where}: {requirement.name} names a file on this machine; local packages come "
                            "from auto (pip install -e in the notebook's environment)", field)
        requirements.append(line)
    return requirements, options


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Non-blank lines without comments, continuation lines (``\\``) joined, with their first line's number."""
    lines: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        raw = "" if raw.lstrip().startswith("#") else raw.split(" #", 1)[0]
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = (pending + raw).strip()
        pending = ""
        if line:
            lines.append((start, line))
    return lines


def _compile(requirements: list[str], version: str, options: tuple[str, ...], auto: Lock | None, cache_dir: Path,
             uv: str, allow_builds: bool) -> tuple[Pin, ...]:
    """Exact pins for ``requirements`` on Python ``version``, preferring the versions ``auto`` has."""
    names = [normalise_name(Requirement(requirement).name) for requirement in requirements]
    with tempfile.TemporaryDirectory(prefix="jupyter-jobs-resolve.") as work:
        wanted, pinned = Path(work) / "requirements.in", Path(work) / "requirements.txt"
        wanted.write_text("".join(f"{line}\n" for line in requirements))
        pinned.write_text(auto.requirements() if auto else "")  # uv keeps these versions where it can
        run_uv(uv, "pip", "compile", "--python-version", version, "--no-header", "--no-annotate", "--quiet",
               *_build_options(options, allow_builds), "-o", str(pinned), str(wanted),
               doing=f"resolving env.python ({', '.join(names)}) for Python {version}", cache_dir=cache_dir,
               names=names)
        return _parse_compiled(pinned.read_text())


def _build_options(options: tuple[str, ...], allow_builds: bool) -> list[str]:
    """``options`` for resolving, with builds of source distributions forbidden unless ``allow_builds``.

    uv refuses ``--no-build`` beside ``--only-binary``, and ``--only-binary=:all:`` is the same thing,
    so that is what is passed, in place of the spec's narrower ``--only-binary``.
    """
    if allow_builds:
        return list(options)
    if any(option.startswith("--no-binary") for option in options):
        raise SpecError("--no-binary asks for packages built from source, which is not done while resolving a "
                        "job's environment (building runs the package's code); remove it", "env.python.pip-options")
    return [*(option for option in options if not option.startswith("--only-binary")), "--only-binary=:all:"]


def _parse_compiled(text: str) -> tuple[Pin, ...]:
    """The pins of ``uv pip compile``'s output (``name==version`` and ``name @ url`` lines)."""
    pins = []
    for _, line in _logical_lines(text):
        if line.startswith("-"):
            continue  # an option uv echoes; the lock keeps the spec's own
        requirement = Requirement(line)
        exact = [s.version for s in requirement.specifier if s.operator == "=="]
        if not requirement.url and len(exact) != 1:
            raise EnvironmentBuildFailed(f"uv pip compile gave {line!r}, which is not an exact pin",
                                         packages=(requirement.name,))
        pins.append(Pin(requirement.name, exact[0] if exact else "", requirement.url or ""))
    return tuple(pins)

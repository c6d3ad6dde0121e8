"""A spec's ``env.python``: which Python environment a job wants, read into a :class:`PythonEnv`.

Three spellings, modelled on DataSphere's::

    env:
      python: auto            # the submitting client's own environment, captured as a lock
    env:
      python: none            # no environment management: the image or host as it is
    env:
      python:                 # by hand; what is left out comes from ``auto``
        version: "3.11"
        requirements-file: requirements.txt
        packages: ["six==1.16.0", "attrs>=23"]
        pip-options: ["--extra-index-url", "https://mirror.example/simple"]

A spec without ``env.python`` keeps today's behaviour (``none``). This module lives apart from
:mod:`.lock` because it reads what a person wrote, while a lock is what a machine measured.
"""
from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from packaging.requirements import InvalidRequirement, Requirement

from ..errors import FieldProblem, SpecError
from .lock import _VERSION

#: Installer options a spec may pass: where packages come from and which builds are wanted.
#: Nothing that changes where the installer writes or which interpreter it uses.
OPTIONS_WITH_VALUE = frozenset({
    "--index-url", "-i", "--extra-index-url", "--find-links", "-f",
    "--index-strategy", "--prerelease", "--only-binary", "--no-binary",
})
OPTIONS_ALONE = frozenset({"--pre", "--no-index"})
_LONG = {"-i": "--index-url", "-f": "--find-links"}
_URL_OPTIONS = frozenset({"--index-url", "--extra-index-url", "--find-links"})
_KEYS = ("version", "requirements-file", "packages", "pip-options")
#: What a direct reference (``name @ url``) may point at: never a file or folder of the server.
REMOTE_URLS = ("https://", "http://", "git+https://", "git+http://")


@dataclass(frozen=True)
class PythonEnv:
    """What ``env.python`` asks for.

    ``mode`` is ``"auto"`` (the client's environment), ``"none"`` (no management) or ``"custom"``
    (a mapping: the fields below; an empty one falls back to ``auto`` for that part).
    """

    mode: Literal["auto", "none", "custom"]
    version: str = ""
    requirements_file: str = ""
    packages: tuple[str, ...] = ()
    pip_options: tuple[str, ...] = ()

    @property
    def managed(self) -> bool:
        """Whether the job's Python environment is built for it (anything but ``none``)."""
        return self.mode != "none"

    def to_value(self) -> str | dict[str, Any]:
        """How a spec writes it (``auto``, ``none`` or the mapping), for :func:`parse_python_env`."""
        if self.mode != "custom":
            return self.mode
        value: dict[str, Any] = {}
        if self.version:
            value["version"] = self.version
        if self.requirements_file:
            value["requirements-file"] = self.requirements_file
        if self.packages:
            value["packages"] = list(self.packages)
        if self.pip_options:
            value["pip-options"] = list(self.pip_options)
        return value


def parse_python_env(value: Any, field: str = "env.python") -> PythonEnv:
    """Read the value of ``env.python``; ``None`` (the key is absent) means ``none``.

    Raises
    ------
    SpecError
        Naming each field at fault (``env.python.packages[1]``) and what to write instead.
    """
    if value is None:
        return PythonEnv("none")
    if isinstance(value, str):
        if value.strip().lower() in ("auto", "none"):
            return PythonEnv(value.strip().lower())  # type: ignore[arg-type]
        raise SpecError(f"{value!r} is not a choice; write auto, none, or a mapping with {', '.join(_KEYS)}", field)
    if not isinstance(value, Mapping):
        raise SpecError(f"must be auto, none, or a mapping with {', '.join(_KEYS)}; got {type(value).__name__}", field)
    problems = [FieldProblem(f"{field}.{k}", f"is not a field; the fields are {', '.join(_KEYS)}")
                for k in value if k not in _KEYS]
    parsed: dict[str, Any] = {}
    for key, reader in (("version", _version), ("requirements-file", _requirements_file),
                        ("packages", _packages), ("pip-options", _pip_options)):
        if value.get(key) is None:
            continue
        try:
            parsed[key.replace("-", "_")] = reader(value[key], f"{field}.{key}")
        except SpecError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SpecError(problems)
    return PythonEnv("custom", **parsed)


def _version(value: Any, field: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise SpecError("write the version as a quoted string, e.g. \"3.11\" (YAML reads 3.10 as the number 3.1)", field)
    if not isinstance(value, str) or not _VERSION.match(value.strip()):
        raise SpecError(f"{value!r} is not a Python version; write major.minor, e.g. \"3.11\"", field)
    return value.strip()


def _requirements_file(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError("must be the path of a requirements file among the job's inputs, e.g. requirements.txt", field)
    path = posixpath.normpath(value.strip())
    if path.startswith("/") or path == ".." or path.startswith("../"):
        raise SpecError(f"{value!r} must be a path inside the job's folder (relative, without ..)", field)
    return path


def _packages(value: Any, field: str) -> tuple[str, ...]:
    if isinstance(value, str):
        raise SpecError(f"must be a list of requirements, e.g. [{value!r}]", field)
    if not isinstance(value, list):
        raise SpecError(f"must be a list of requirements such as \"six==1.16.0\"; got {type(value).__name__}", field)
    problems = []
    for index, item in enumerate(value):
        try:
            if not isinstance(item, str):
                raise InvalidRequirement(f"got {type(item).__name__}, not a string")
            requirement = Requirement(item)
            if requirement.url and not requirement.url.lower().startswith(REMOTE_URLS):
                raise InvalidRequirement(f"its URL {requirement.url!r} is not an http(s) or git+https one; local "
                                         "packages come with env.python: auto")
        except InvalidRequirement as exc:
            first = str(exc).splitlines()[0]
            problems.append(FieldProblem(f"{field}[{index}]", f"{item!r} is not a requirement (PEP 508): {first}"))
    if problems:
        raise SpecError(problems)
    return tuple(item.strip() for item in value)


def _pip_options(value: Any, field: str) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as exc:
            raise SpecError(f"cannot be split into options: {exc}", field) from None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SpecError("must be a list of installer options, e.g. [\"--extra-index-url\", \"https://...\"]", field)
    tokens = list(value)
    options: list[str] = []
    while tokens:
        token = tokens.pop(0)
        name, eq, rest = token.partition("=")
        name = _LONG.get(name, name)
        token = f"{name}{eq}{rest}"
        if name in OPTIONS_ALONE and not eq:
            options.append(token)
        elif name in OPTIONS_WITH_VALUE:
            if not eq:
                if not tokens or tokens[0].startswith("-"):
                    raise SpecError(f"{name} needs a value", field)
                token = f"{name}={tokens.pop(0)}"
            value = token.partition("=")[2]
            if name in _URL_OPTIONS and not value.lower().startswith(("https://", "http://")):
                # A path or file: URL would read the server's own folders; an admin sets a local mirror in uv's config.
                raise SpecError(f"{name} must be an http(s) URL, got {value!r}", field)
            options.append(token)
        else:
            allowed = ", ".join(sorted(OPTIONS_WITH_VALUE | OPTIONS_ALONE))
            raise SpecError(f"{token!r} is not an allowed installer option; the allowed ones are {allowed}", field)
    return tuple(options)

"""The lock of a Python environment: what a job needs to have the notebook's packages, and its hash.

A :class:`Lock` is the Python version (``3.11``), every installed distribution pinned to its exact
version, and the local packages (editable installs, or installs from a folder or a file on this
machine) that no package index can provide, kept apart so they can be built into wheels and shipped.
It is normalised when made: names per PEP 503 (``Foo_Bar`` is ``foo-bar``), sorted, duplicates
merged. Its :attr:`Lock.hash` is the sha256 of a canonical JSON of that, so the same environment has
the same hash on every machine and in every run, whatever order the distributions were found in.

:func:`capture` reads the environment this interpreter runs in through :mod:`importlib.metadata` and
PEP 610's ``direct_url.json``; ``python -m jupyter_jobs.pyenv.lock`` prints it as JSON, so a server
can ask another interpreter (a kernel's) what it has.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
import sys
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Iterable, Mapping, Sequence

from ..errors import SpecError

#: Bumped when the canonical form changes, so old hashes never name a differently built environment.
LOCK_FORMAT = 1

_VERSION = re.compile(r"^3\.[0-9]{1,2}$")


def normalise_name(name: str) -> str:
    """The PEP 503 form of a distribution name: lower case, runs of ``-_.`` made one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True, order=True)
class Pin:
    """A distribution from a package index at one exact version.

    ``url`` is empty for a plain ``name==version``; it holds a PEP 508 direct reference
    (``git+https://...@<commit>``, an archive URL) when the distribution was installed from one.
    ``version`` may then be empty (a resolver's output names none for it).
    """

    name: str
    version: str
    url: str = ""

    def requirement(self) -> str:
        """The line of a requirements file that installs exactly this."""
        return f"{self.name} @ {self.url}" if self.url else f"{self.name}=={self.version}"


@dataclass(frozen=True, order=True)
class LocalPackage:
    """A distribution installed from this machine (``pip install -e ./mylib``, ``pip install ./pkg``).

    ``url`` is the ``file://`` URL it was installed from; ``digest`` is the sha256 of its built wheel,
    empty until someone builds it. The lock's hash uses the digest when there is one (the content),
    else the URL, so an edited package gets a new hash once its wheel is built.
    """

    name: str
    version: str
    url: str
    editable: bool = False
    digest: str = ""


@dataclass(frozen=True)
class Lock:
    """A normalised environment: Python ``X.Y``, pinned distributions, local packages, installer options."""

    python: str
    packages: tuple[Pin, ...] = ()
    local: tuple[LocalPackage, ...] = ()
    #: Options for the installer (an extra index); they change what gets installed, so they are hashed.
    pip_options: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.python, str) or not _VERSION.match(self.python):
            raise SpecError(f"Python version {self.python!r} is not of the form 3.Y (e.g. \"3.11\")", "lock.python")
        packages = _merge((_renamed(p) for p in self.packages), "lock.packages")
        local = _merge((_renamed(p) for p in self.local), "lock.local")
        both = {p.name for p in packages} & {p.name for p in local}
        if both:
            names = ", ".join(sorted(both))
            raise SpecError(f"{names} is both a pinned and a local package; keep one", "lock.local")
        object.__setattr__(self, "packages", packages)
        object.__setattr__(self, "local", local)
        object.__setattr__(self, "pip_options", tuple(self.pip_options))

    @cached_property
    def hash(self) -> str:
        """The sha256 (hex) of the canonical JSON of this lock: the environment's name."""
        canonical = {
            "format": LOCK_FORMAT,
            "python": self.python,
            "packages": [[p.name, p.version, p.url] for p in self.packages],
            "local": [[p.name, p.version, p.digest or p.url] for p in self.local],
            "pip_options": list(self.pip_options),
        }
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode("ascii")).hexdigest()

    def requirements(self) -> str:
        """The pinned distributions as a requirements file (local packages are not in it)."""
        return "".join(f"{p.requirement()}\n" for p in self.packages)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form that :meth:`from_dict` reads back."""
        return {
            "python": self.python,
            "packages": [{"name": p.name, "version": p.version, **({"url": p.url} if p.url else {})} for p in self.packages],
            "local": [
                {"name": p.name, "version": p.version, "url": p.url, "editable": p.editable, "digest": p.digest}
                for p in self.local
            ],
            "pip_options": list(self.pip_options),
        }

    @classmethod
    def from_dict(cls, data: Any, field: str = "lock") -> Lock:
        """Read a lock sent by a client (the form :meth:`to_dict` writes).

        Raises
        ------
        SpecError
            Naming the field at fault (``lock.packages[3].version``).
        """
        if not isinstance(data, Mapping):
            raise SpecError(f"must be a mapping with python, packages and local, got {type(data).__name__}", field)
        unknown = set(data) - {"python", "packages", "local", "pip_options"}
        if unknown:
            raise SpecError(f"unknown keys {sorted(map(str, unknown))}; a lock has python, packages, local, pip_options", field)
        packages = [
            # A direct reference (name @ url) that a resolver pinned may have no version: the URL is the pin.
            Pin(_text(p, "name", f), _text(p, "version", f, optional=bool(p.get("url"))), _text(p, "url", f, optional=True))
            for f, p in _items(data.get("packages", []), f"{field}.packages")
        ]
        local = [
            LocalPackage(_text(p, "name", f), _text(p, "version", f), _text(p, "url", f),
                         bool(p.get("editable", False)), _text(p, "digest", f, optional=True))
            for f, p in _items(data.get("local", []), f"{field}.local")
        ]
        options = data.get("pip_options", [])
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise SpecError("must be a list of strings", f"{field}.pip_options")
        return cls(_text(data, "python", field), tuple(packages), tuple(local), tuple(options))


def _renamed(package: Any) -> Any:
    """``package`` with its name in PEP 503 form."""
    return replace(package, name=normalise_name(package.name))


def _merge(packages: Iterable[Any], field: str) -> tuple[Any, ...]:
    """Sorted and deduplicated; one name at two versions is an error naming both."""
    by_name: dict[str, Any] = {}
    for package in packages:
        seen = by_name.setdefault(package.name, package)
        if seen != package:
            raise SpecError(f"{package.name} appears twice ({seen.version} and {package.version}); keep one", field)
    return tuple(sorted(by_name.values()))


def _items(value: Any, field: str) -> Iterable[tuple[str, Mapping[str, Any]]]:
    if not isinstance(value, list):
        raise SpecError(f"must be a list, got {type(value).__name__}", field)
    for index, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise SpecError(f"must be a mapping with name and version, got {type(item).__name__}", f"{field}[{index}]")
        yield f"{field}[{index}]", item


def _text(data: Mapping[str, Any], key: str, field: str, optional: bool = False) -> str:
    value = data.get(key, "" if optional else None)
    if not isinstance(value, str) or not (value or optional):
        raise SpecError("must be a non-empty string", f"{field}.{key}")
    return value


# -- capture ------------------------------------------------------------------------------------------


def capture(path: Sequence[str] | None = None) -> Lock:
    """The lock of the environment this interpreter runs in.

    Parameters
    ----------
    path
        Where to look for distributions; ``sys.path`` by default. A distribution found twice (in a
        venv and in the user site) counts once, as the first found: the one ``import`` would load.
    """
    pins: list[Pin] = []
    local: list[LocalPackage] = []
    seen: set[str] = set()
    for dist in importlib.metadata.distributions(path=list(sys.path if path is None else path)):
        raw_name = dist.metadata["Name"] if dist.metadata else None
        if not raw_name:
            continue  # a broken .dist-info without a name; pip ignores it too
        name = normalise_name(raw_name)
        if name in seen:
            continue
        seen.add(name)
        direct = _direct_url(dist)
        url = direct.get("url", "")
        if url.startswith("file:"):
            editable = bool(direct.get("dir_info", {}).get("editable", False))
            local.append(LocalPackage(name, dist.version, url, editable))
        else:
            pins.append(Pin(name, dist.version, _reference(direct)))
    return Lock(f"{sys.version_info.major}.{sys.version_info.minor}", tuple(pins), tuple(local))


def _direct_url(dist: importlib.metadata.Distribution) -> dict[str, Any]:
    """The PEP 610 record of where ``dist`` came from, or ``{}`` for a plain index install."""
    try:
        data = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        return {}  # an unreadable record says nothing we can rebuild from
    return data if isinstance(data, dict) and isinstance(data.get("url"), str) else {}


def _reference(direct: Mapping[str, Any]) -> str:
    """A PEP 508 direct reference that reinstalls a VCS or remote-archive install, or ``""``."""
    url = direct.get("url", "")
    vcs = direct.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("vcs") and vcs.get("commit_id"):
        return f"{vcs['vcs']}+{url}@{vcs['commit_id']}"
    return url


if __name__ == "__main__":
    print(json.dumps(capture().to_dict()))

"""Python environments for jobs: the notebook's packages, rebuilt once per content hash.

:mod:`.lock` captures the environment a client runs in and names it by a hash, :mod:`.spec` reads a
spec's ``env.python``, :mod:`.resolve` turns a hand-written one into a lock, :mod:`.wheels` builds
local packages into content-addressed wheels, and :mod:`.cache` builds one virtual environment per
hash with uv and evicts the least recently used ones. Nothing here knows about jobs, backends or the
manager: they call in.

The names below are imported on first use: ``python -m jupyter_jobs.pyenv.lock`` runs in a kernel's
interpreter, which may have nothing but the standard library, so importing this package must not
pull in :mod:`.spec` (it needs ``packaging``).
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EnvironmentCache": "cache",
    "EnvironmentInfo": "cache",
    "LocalPackage": "lock",
    "Lock": "lock",
    "Pin": "lock",
    "capture": "lock",
    "normalise_name": "lock",
    "PythonEnv": "spec",
    "parse_python_env": "spec",
    "resolve": "resolve",
    "WheelStore": "wheels",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)

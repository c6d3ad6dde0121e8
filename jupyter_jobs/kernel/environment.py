"""What ``%%job`` says of the notebook's Python: the kernel's capture, its interpreter, its local packages' wheels.

A spec that asks for an environment (``env.python`` other than ``none``) is sent with the lock of the
environment this kernel runs in (:func:`~jupyter_jobs.pyenv.environments.client_capture`), the path of
its interpreter (the local backend runs the job with it when it still has exactly those packages), and
its local packages (``pip install -e ./mylib``) built into wheels here, named by their sha256 and
uploaded as blobs like any file: an unchanged package is neither rebuilt (its folder's fingerprint is
remembered) nor sent again.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..pyenv.environments import client_capture
from ..pyenv.lock import LocalPackage, Lock
from .packaging import sha256_file

__all__ = ["build_local", "client_capture", "envelope", "sha256_file", "wants_environment"]

#: Folders of a package's source that never change what its wheel holds.
_SKIPPED = {".git", "__pycache__", "build", "dist", ".venv", "venv", ".tox", ".mypy_cache", ".pytest_cache",
            ".ipynb_checkpoints", "node_modules"}


def wants_environment(spec: dict) -> bool:
    """Whether ``spec`` asks for a managed environment (``env.python`` present and not ``none``)."""
    env = spec.get("env")
    python = env.get("python") if isinstance(env, dict) else None
    return python is not None and not (isinstance(python, str) and python.strip().lower() == "none")


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jupyter-jobs"


def envelope(client: Any) -> dict[str, Any]:
    """The ``environment`` of a submission: this kernel's lock, interpreter and uploaded wheels.

    Raises
    ------
    JobsError
        When a local package cannot be built (with the build's own message).
    """
    lock = client_capture()
    wheels: dict[str, str] = {}
    if lock.local:
        lock, paths = build_local(lock)
        manifest = client.upload({path.name: path for path in paths})
        wheels = {digest: name for name, digest in manifest.items()}
    return {"lock": lock.to_dict(), "interpreter": sys.executable, "wheels": wheels}


def build_local(lock: Lock) -> tuple[Lock, list[Path]]:
    """``lock`` with its local packages' digests, and their wheels (built only when their source changed)."""
    from ..pyenv.wheels import WheelStore

    root = cache_dir()
    store = WheelStore(root / "wheels", uv_cache=root / "uv-cache")
    index_file = root / "wheels" / "fingerprints.json"
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError):
        index = {}
    built: list[LocalPackage] = []
    for package in lock.local:
        stamp = _fingerprint(package)
        known = index.get(package.url)
        if known and known.get("stamp") == stamp and store.path(known.get("digest", "")) is not None:
            package = replace(package, version=known["version"], digest=known["digest"])
        else:
            package = store.build(package, lock.python)
            index[package.url] = {"stamp": stamp, "digest": package.digest, "version": package.version}
        built.append(package)
    index_file.write_text(json.dumps(index))
    paths = [store.path(p.digest) for p in built]
    return replace(lock, local=tuple(built)), [p for p in paths if p is not None]


def _fingerprint(package: LocalPackage) -> str:
    """Names, sizes and modification times of the files of a package's folder ("" when it is not a folder)."""
    from ..pyenv.wheels import source_path

    try:
        source = source_path(package)
    except Exception:  # reported by the build, with its own words
        return ""
    if not source.is_dir():
        return ""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED and not d.endswith(".egg-info"))
        for name in sorted(files):
            path = os.path.join(root, name)
            try:
                info = os.stat(path)
            except OSError:
                continue
            digest.update(f"{os.path.relpath(path, source)}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()

"""Content-addressed file store: clients upload a file once, by its SHA-256, and jobs refer to it.

Resubmitting an unchanged project uploads nothing: the client asks which hashes the server
lacks (``missing``) and uploads only those.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
import tempfile
from pathlib import Path
from typing import Mapping

from .errors import FieldProblem, SpecError, TooLarge

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_hash(value: str, field: str = "sha256") -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise SpecError(f"{value!r} is not a SHA-256 hex digest (64 lowercase hex characters)", field)
    return value


class BlobStore:
    """Files under ``<root>/ab/cdef...``, written atomically, never modified."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def missing(self, digests: list[str]) -> list[str]:
        return [d for d in dict.fromkeys(check_hash(d, "hashes") for d in digests) if not self.has(d)]

    def put(self, digest: str, data: bytes) -> bool:
        """Store ``data`` under its digest; False when it was there already."""
        check_hash(digest)
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise SpecError(f"the body's SHA-256 is {actual}, not {digest}; upload the file again", "body")
        target = self.path(digest)
        if target.exists():
            return False
        target.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
        return True

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def materialise(self, files: Mapping[str, str], dest: Path, limit: int) -> None:
        """Copy the files of a manifest ``{relative path: sha256}`` into ``dest``."""
        problems, total = [], 0
        for rel, digest in files.items():
            where = f"files[{rel!r}]"
            normal = posixpath.normpath(str(rel))
            if normal.startswith("/") or normal == ".." or normal.startswith("../") or normal == ".":
                problems.append(FieldProblem(where, "must be a relative path inside the job folder"))
            elif not isinstance(digest, str) or not _SHA256.match(digest):
                problems.append(FieldProblem(where, "expected a SHA-256 hex digest"))
            elif not self.has(digest):
                problems.append(FieldProblem(where, f"blob {digest[:12]}... was never uploaded; PUT it to /blobs/{digest} first"))
            else:
                total += self.size(digest)
        if problems:
            raise SpecError(problems)
        if total > limit:
            raise TooLarge(f"the job's files total {total / 2**20:.1f} MiB, over the {limit / 2**20:.0f} MiB limit")
        for rel, digest in files.items():
            target = dest / posixpath.normpath(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            # A copy, not a link: a job may change its own files without touching the store.
            shutil.copyfile(self.path(digest), target)

"""Content-addressed file store: clients upload a file once, by its SHA-256, and jobs refer to it.

Resubmitting an unchanged project uploads nothing: the client asks which hashes the server
lacks (``missing``) and uploads only those.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
import shutil
import tempfile
import threading
import time
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
        # The users' files: the server's alone, also where the data dir is open to jobs' accounts (0711).
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.root.stat().st_uid == os.geteuid():
            os.chmod(self.root, 0o700)
        self.remove_stale_uploads()

    def path(self, digest: str) -> Path:
        """Where the blob of ``digest`` is; a value that is not a SHA-256 hex digest is a :class:`SpecError`
        (it could name a path outside the store)."""
        check_hash(digest)
        return self.root / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def missing(self, digests: list[str]) -> list[str]:
        return [d for d in dict.fromkeys(check_hash(d, "hashes") for d in digests) if not self.has(d)]

    def upload(self, digest: str, limit: int) -> Upload:
        """Start receiving a file that must hash to ``digest`` and stay within ``limit`` bytes."""
        return Upload(self, check_hash(digest), limit)

    def remove_stale_uploads(self, older_than: float = 3600.0) -> list[str]:
        """Delete temporary files of uploads cut short by a server that died (not ones that
        may still be in progress); return their names."""
        removed, now = [], time.time()
        for leftover in self.root.glob(f"{UPLOAD_PREFIX}*"):
            with contextlib.suppress(OSError):
                if now - leftover.lstat().st_mtime > older_than:
                    leftover.unlink()
                    removed.append(leftover.name)
        return removed

    def add_file(self, path: Path) -> str:
        """Store a copy of the file at ``path`` (hashed as it is copied); its digest."""
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(prefix=UPLOAD_PREFIX, dir=self.root)
        try:
            with open(path, "rb") as source, os.fdopen(fd, "wb") as copy:
                while block := source.read(1 << 20):
                    digest.update(block)
                    copy.write(block)
            target = self.path(digest.hexdigest())
            if not target.exists():
                target.parent.mkdir(exist_ok=True)
                os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return digest.hexdigest()

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


#: Name prefix of files being uploaded, in the store's root folder.
UPLOAD_PREFIX = ".upload-"


class Upload:
    """One file being received: written to a temporary file beside the store as it arrives,
    hashed on the way, and moved under its digest only once it is complete and checked.

    ``write`` may run on a worker thread while the event loop calls ``discard`` (the client
    went away), so both hold a lock: the descriptor is never closed under a write.
    """

    def __init__(self, store: BlobStore, digest: str, limit: int) -> None:
        self.store, self.digest, self.limit = store, digest, limit
        self.size = 0
        self._hash = hashlib.sha256()
        self._lock = threading.Lock()
        self._fd, self._tmp = tempfile.mkstemp(prefix=UPLOAD_PREFIX, dir=store.root)

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``; TooLarge (and the file discarded) once past the limit."""
        with self._lock:
            if self._fd < 0:
                raise ValueError("the upload was discarded")
            self.size += len(chunk)
            if self.size > self.limit:
                self._discard()
                raise TooLarge(
                    f"the upload of {self.digest} passed the {self.limit} byte limit "
                    "(JobManager.max_input_bytes); ship less, or use a dataset"
                )
            self._hash.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(self._fd, view):]

    def commit(self) -> bool:
        """Check the digest and move the file into the store; False when it was there already.
        SpecError (and nothing stored) when the bytes hash to something else."""
        with self._lock:
            try:
                actual = self._hash.hexdigest()
                if actual != self.digest:
                    raise SpecError(
                        f"the body's SHA-256 is {actual}, not {self.digest}; upload the file again", "body"
                    )
                target = self.store.path(self.digest)
                if target.exists():
                    return False
                target.parent.mkdir(exist_ok=True)
                os.fsync(self._fd)
                os.replace(self._tmp, target)
                self._tmp = ""
                return True
            finally:
                self._discard()

    def discard(self) -> None:
        """Forget the upload and delete its temporary file (safe to call more than once)."""
        with self._lock:
            self._discard()

    def _discard(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._tmp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
            self._tmp = ""

"""Named secrets kept by the server, and the masking of their values in what it serves.

A secret is a name and a value that belong to one user (the job's owner: the server's own
user on a single-user server, the Hub user in the JupyterHub service). Each is one file,
``<data_dir>/secrets/<owner>/<name>``, mode 0600, in folders of mode 0700, written whole
(a temporary file renamed over it); its modification time is when it was set. Values never
go into the job database, a job's spec (which holds ``{secret: NAME}``), its folder, argv or
a log line of ours.

A job gets a secret's value in its process environment only, resolved when it starts.
What the job prints is its own, so the server masks the values of the job's secrets in
every byte of its log and displays it serves, each byte of a value replaced by ``*`` (the
same length, so the byte offsets clients resume from stay true), and scrubs the stored
files the same way when the job ends. See docs/operators.md for what this cannot catch.
"""
from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .errors import NotFound, SecretError
from .models import JobRecord, JobSpec

#: What a secret's name may be: letters, digits and ``_.-``, starting with a letter, digit or ``_``.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
#: Longest value, in bytes of UTF-8 (an environment variable, not a file).
MAX_VALUE_BYTES = 64 * 1024
#: Bytes of a log scrubbed at a time.
_BLOCK = 1024 * 1024


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a secret, or None."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        shown = repr(name)[:60]
        return (f"{shown} is not a secret name; use up to 128 letters, digits, '_', '.' and '-', starting "
                "with a letter, digit or '_' (e.g. API_KEY)")
    return None


def check_value(value: object, field: str = "value") -> str:
    """``value`` as a secret's value: text, not empty, no NUL (an environment cannot hold one), not too long."""
    if not isinstance(value, str):
        raise SecretError(f"expected the secret's value as a string, got {type(value).__name__}", field)
    if not value:
        raise SecretError("must not be empty", field)
    if "\0" in value:
        raise SecretError("contains a NUL character, which no environment variable can hold", field)
    if len(value.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES:
        raise SecretError(f"is longer than {MAX_VALUE_BYTES} bytes", field)
    return value


def owner_key(owner: str) -> str:
    """The owner as one folder name, one to one: letters, digits, ``_`` and ``-`` kept, every other
    byte ``%XX`` (so ``..``, ``a/b`` and ``a%2Fb`` are three different folders, none outside)."""
    return "".join(chr(b) if chr(b).isascii() and (chr(b).isalnum() or chr(b) in "_-") else f"%{b:02X}"
                   for b in owner.encode("utf-8", "surrogatepass")) or "%"


def references(spec: JobSpec) -> dict[str, str]:
    """The secrets a spec uses: ``{field: secret name}`` (``env.vars.API_KEY``, ``registry-auth.password``)."""
    out = {f"env.vars.{var}": name for var, name in spec.secrets.items()}
    if spec.registry_auth is not None:
        out["registry-auth.password"] = spec.registry_auth.password_secret
    return out


@dataclass
class Resolved:
    """The values a job starts with: its secret variables, and its registry login."""

    env: dict[str, str] = field(default_factory=dict)
    #: ``{"username", "password"}`` for pulling the job's image, or None.
    registry: dict[str, str] | None = None

    def values(self) -> list[str]:
        return [*self.env.values(), *([self.registry["password"]] if self.registry else [])]


class SecretStore:
    """The users' secrets, one 0600 file each under ``root`` (0700)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        #: Values each running job was started with, masked even if changed or deleted since.
        self._used: dict[int, set[str]] = {}
        self._lock = threading.Lock()

    # -- the store -----------------------------------------------------------------------------
    def _folder(self, owner: str) -> Path:
        return self.root / owner_key(owner)

    @staticmethod
    def _checked(name: str) -> str:
        problem = name_problem(name)
        if problem:
            raise SecretError(problem, "name")
        return name

    def set(self, owner: str, name: str, value: str) -> tuple[dict[str, object], bool]:
        """Store ``value`` as ``owner``'s secret ``name``; its listing entry and whether it is new."""
        self._checked(name)
        data = check_value(value).encode("utf-8", "surrogatepass")
        folder = self._folder(owner)
        folder.mkdir(mode=0o700, exist_ok=True)
        path = folder / name
        created = not path.exists()
        temporary = folder / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return self._entry(path), created

    def get(self, owner: str, name: str) -> str | None:
        """The value of ``owner``'s secret ``name``, or None when it is not set."""
        if name_problem(name):
            return None
        try:
            fd = os.open(self._folder(owner) / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return None
        with os.fdopen(fd, "rb") as source:
            return source.read(MAX_VALUE_BYTES + 1).decode("utf-8", "surrogatepass")

    def list(self, owner: str) -> list[dict[str, object]]:
        """``owner``'s secrets: names and when each was set, never values."""
        folder = self._folder(owner)
        if not folder.is_dir():
            return []
        return [self._entry(path) for path in sorted(folder.iterdir())
                if not path.name.startswith(".") and not name_problem(path.name)]

    def delete(self, owner: str, name: str) -> None:
        self._checked(name)
        try:
            (self._folder(owner) / name).unlink()
        except FileNotFoundError:
            raise NotFound(f"secret {name!r} is not set; `jupyter jobs secret list` shows yours") from None

    @staticmethod
    def _entry(path: Path) -> dict[str, object]:
        return {"name": path.name, "updated_at": path.stat().st_mtime}

    # -- jobs --------------------------------------------------------------------------------
    def missing(self, owner: str, spec: JobSpec) -> dict[str, str]:
        """``{field: message}`` for each secret the spec uses that ``owner`` has not set."""
        return {where: f"secret {name!r} is not set for {owner}; set it with `jupyter jobs secret set {name}` "
                       "(the value is read from stdin)"
                for where, name in references(spec).items() if self.get(owner, name) is None}

    def check(self, owner: str, spec: JobSpec) -> None:
        """Refuse (400, naming the field) a spec that uses a secret its owner has not set."""
        missing = self.missing(owner, spec)
        if missing:
            where, message = next(iter(missing.items()))
            raise SecretError(message, where)

    def resolve(self, job: JobRecord) -> Resolved:
        """The values ``job`` starts with; :class:`SecretError` when one was deleted since it was submitted."""
        self.check(job.owner, job.spec)
        env = {var: self.get(job.owner, name) or "" for var, name in job.spec.secrets.items()}
        auth = job.spec.registry_auth
        registry = None if auth is None else {
            "username": auth.username, "password": self.get(job.owner, auth.password_secret) or ""}
        resolved = Resolved(env, registry)
        if resolved.values():
            with self._lock:
                self._used.setdefault(job.id, set()).update(resolved.values())
        return resolved

    def mask(self, job: JobRecord) -> Mask:
        """What to mask in ``job``'s log: the values it started with and those its secrets have now."""
        with self._lock:
            values = set(self._used.get(job.id, ()))
        values.update(v for name in references(job.spec).values() if (v := self.get(job.owner, name)))
        return Mask(values)

    def scrub(self, job: JobRecord, paths: Iterable[Path]) -> None:
        """Mask the job's values in its stored log and displays, once it has ended; then forget them."""
        mask = self.mask(job)
        if mask:
            for path in paths:
                mask.scrub(path)
        with self._lock:
            self._used.pop(job.id, None)


class Mask:
    """Replaces every byte of the given values with ``*``, keeping the length of what it masks."""

    def __init__(self, values: Iterable[str]) -> None:
        encoded = {v.encode("utf-8", "surrogatepass") for v in values if v}
        self.values = sorted(encoded, key=len, reverse=True)
        self.longest = len(self.values[0]) if self.values else 0

    def __bool__(self) -> bool:
        return bool(self.values)

    def apply(self, data: bytes) -> bytes:
        out = bytearray(data)
        for value in self.values:
            start = data.find(value)
            while start != -1:
                out[start:start + len(value)] = b"*" * len(value)
                start = data.find(value, start + 1)
        return bytes(out)

    def partial_tail(self, data: bytes) -> int:
        """Length of the longest end of ``data`` that begins a value (it may be a value being written)."""
        for size in range(min(len(data), self.longest - 1), 0, -1):
            tail = data[-size:]
            if any(value.startswith(tail) for value in self.values):
                return size
        return 0

    def read(self, path: Path, offset: int, size: int, hold_partial: bool) -> bytes:
        """Bytes ``offset`` to ``offset + size`` of ``path``, masked; with ``hold_partial`` (the file still
        grows), an end that begins a value is left for the next read, when the rest of it is there."""
        if not self.values:
            return _read(path, offset, size)
        before = min(offset, self.longest - 1)
        window = _read(path, offset - before, before + size + self.longest - 1)
        masked = self.apply(window)
        chunk = masked[before:before + size]
        if hold_partial and len(window) < before + size + self.longest - 1:  # read to the end of the file
            growing = len(masked) - self.partial_tail(masked)
            chunk = masked[before:min(before + size, max(before, growing))]
        return chunk

    def scrub(self, path: Path) -> None:
        """Mask ``path`` in place (a file that no longer grows), block by block."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except (FileNotFoundError, OSError):
            return
        with os.fdopen(fd, "r+b") as file:
            position = 0
            span = _BLOCK + self.longest - 1
            while True:
                file.seek(position)
                window = file.read(span)
                masked = self.apply(window)
                if masked != window:
                    file.seek(position)
                    file.write(masked)
                if len(window) < span:
                    return
                position += _BLOCK


def _read(path: Path, offset: int, size: int) -> bytes:
    try:
        with open(path, "rb") as source:
            source.seek(offset)
            return source.read(size)
    except FileNotFoundError:
        return b""

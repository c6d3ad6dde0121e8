"""Wheels of local packages: an editable or folder install, built once per content and named by its sha256.

A :class:`~.lock.LocalPackage` (``pip install -e ./mylib``) cannot come from a package index, so it
is built into a wheel with ``uv build --wheel`` from the folder its PEP 610 ``direct_url.json``
names, and kept under the sha256 of the wheel's bytes::

    <root>/<sha256>/mylib-0.1-py3-none-any.whl
    <root>/tmp/                                  builds in progress

That digest fills the package's ``digest`` slot, so the lock's hash follows the package's code: an
edit gives a new wheel, a new digest and a new environment, and an unchanged package gives the same
wheel again (builds run with a fixed ``SOURCE_DATE_EPOCH``, so touching a file changes nothing) and
need not be shipped twice. A wheel installed from a file (``pip install ./mylib-0.1-py3-none-any.whl``)
is kept as it is.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlparse

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from ..errors import EnvironmentBuildFailed, SpecError
from .lock import LocalPackage, Lock, normalise_name
from .uv import find_uv, run_uv

#: The time stamp written into every file of a built wheel (1980-01-01, the earliest a zip file holds),
#: so the same code always builds the same bytes.
SOURCE_DATE_EPOCH = "315532800"


class WheelStore:
    """Built wheels under ``root``, one folder per sha256 of a wheel's bytes.

    Parameters
    ----------
    root
        The store's folder; created when missing.
    uv
        The uv executable; by default the one the ``uv`` package ships.
    uv_cache
        uv's cache (build backends are downloaded into it); by default ``<root>/uv-cache``.
    """

    def __init__(self, root: str | os.PathLike[str], uv: str | None = None,
                 uv_cache: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root)
        self.uv = uv or find_uv()
        self.uv_cache = Path(uv_cache) if uv_cache is not None else self.root / "uv-cache"
        # Users' own packages: the server's alone, also where the data dir is open to jobs' accounts (0711);
        # jobs get them installed in their environments, never from here.
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path | None:
        """The wheel whose bytes have sha256 ``digest``, or None when the store lacks it."""
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            return None
        found = sorted((self.root / digest).glob("*.whl"))
        return found[0] if found else None

    def add(self, digest: str, filename: str, source: Path) -> Path:
        """Keep the wheel ``source`` (a client's upload, already checked to have sha256 ``digest``) as ``filename``."""
        try:
            parse_wheel_filename(filename)
        except InvalidWheelFilename as exc:
            raise SpecError(f"{filename!r} is not a wheel's file name: {exc}", "environment.wheels") from None
        if "/" in filename or filename.startswith("."):
            raise SpecError(f"{filename!r} must be a plain file name", "environment.wheels")
        staging = Path(tempfile.mkdtemp(prefix="upload.", dir=self.root / "tmp"))
        try:
            shutil.copyfile(source, staging / filename)
            try:
                staging.rename(self.root / digest)
            except OSError:
                if self.path(digest) is None:
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        found = self.path(digest)
        assert found is not None
        return found

    def build_all(self, lock: Lock) -> Lock:
        """``lock`` with each local package built and its ``digest`` (and version) filled in."""
        if not lock.local:
            return lock
        return replace(lock, local=tuple(self.build(package, lock.python) for package in lock.local))

    def build(self, package: LocalPackage, python: str) -> LocalPackage:
        """Build ``package``'s wheel for Python ``python`` (``3.11``) into the store.

        The version becomes the built wheel's: an editable install's metadata is as old as the
        install, while its code, which the job will run, is today's.

        Raises
        ------
        EnvironmentBuildFailed
            When the package's folder is gone, its build fails (with the build backend's message), or
            it builds a wheel of another name.
        """
        source = source_path(package)
        staging = Path(tempfile.mkdtemp(prefix=f"{package.name}.", dir=self.root / "tmp"))
        try:
            if source.is_file() and source.suffix == ".whl":
                shutil.copy2(source, staging / source.name)
            else:
                run_uv(self.uv, "build", "--wheel", "--out-dir", str(staging), "--python", python, str(source),
                       doing=f"building the wheel of local package {package.name} ({source})",
                       cache_dir=self.uv_cache, names=[package.name], environ={"SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH})
            wheel = _one_wheel(staging, package)
            digest = _sha256(wheel)
            for other in staging.iterdir():
                if other != wheel:
                    other.unlink()  # uv's .gitignore: the folder holds the wheel alone
            try:
                staging.rename(self.root / digest)
            except OSError:
                if self.path(digest) is None:  # else built before, or by a concurrent caller: the same bytes
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        _, version, _, _ = parse_wheel_filename(wheel.name)
        return replace(package, version=str(version), digest=digest)


def source_path(package: LocalPackage) -> Path:
    """The folder or file on this machine that ``package`` was installed from (its ``file:`` URL)."""
    url = urlparse(package.url)
    if url.scheme != "file" or url.netloc not in ("", "localhost"):
        raise EnvironmentBuildFailed(f"local package {package.name} was installed from {package.url}, which is not a "
                                     "file on this machine; reinstall it from its folder", packages=(package.name,))
    path = Path(unquote(url.path))
    if not path.exists():
        raise EnvironmentBuildFailed(f"local package {package.name} was installed from {path}, which no longer "
                                     "exists; reinstall it (pip install -e <its folder>) or uninstall it",
                                     packages=(package.name,))
    return path


def _one_wheel(folder: Path, package: LocalPackage) -> Path:
    """The single wheel in ``folder``, checked to be ``package``'s."""
    wheels = sorted(folder.glob("*.whl"))
    if len(wheels) != 1:
        raise EnvironmentBuildFailed(f"building local package {package.name} gave {len(wheels)} wheels, not one",
                                     packages=(package.name,))
    try:
        name = normalise_name(str(parse_wheel_filename(wheels[0].name)[0]))
    except InvalidWheelFilename as exc:
        raise EnvironmentBuildFailed(f"local package {package.name}: {exc}", packages=(package.name,)) from None
    if name != package.name:
        raise EnvironmentBuildFailed(f"local package {package.name} built a wheel of {name} ({wheels[0].name}); "
                                     "reinstall it so its name matches", packages=(package.name,))
    return wheels[0]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

"""Images with a job's Python environment: ``jupyter-jobs/env:<lock hash>-<base>``, built once per pair.

The packages are installed on the server by uv into a plain folder for the lock's Python and Linux
(:meth:`~jupyter_jobs.pyenv.environments.Environments.prepare` with ``kind="target"``, shared with every
other build through uv's cache), then copied into a container made from the job's image and committed:

- the folder goes to ``/opt/jupyter-jobs/env/<hash>``, and a ``.pth`` file in the image's own
  site-packages puts it on ``sys.path`` ahead of the image's site-packages, so the image's ``python``
  imports the job's versions (no venv, no pip; only the image's ``sh`` and ``cp`` copy the files in);
- its ``bin/`` (console scripts) goes first on the image's ``PATH``.

No container ever reaches the network: only uv, on the server, talks to the package index (an admin
points it at a mirror, or turns it off, with uv's own settings; see docs/operators.md). The image's
Python is asked its version first (a container with no network, removed at once); a lock for another
version fails the job in Preparing, saying which Python the image has and what to do.
"""
from __future__ import annotations

import asyncio
import io
import json
import os
import posixpath
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import docker.errors
import requests.exceptions
from docker.types import Mount

from ..errors import BackendError
from ..pyenv.cache import METADATA
from ..pyenv.environments import Environments
from ..pyenv.lock import Lock

REPOSITORY = "jupyter-jobs/env"
#: How the short-lived helper containers (the probe, the copy) run: no network, no capabilities, no new
#: privileges, few processes, labelled so a leftover can be told apart.
_HELPER: dict[str, Any] = {
    "network_mode": "none", "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"], "pids_limit": 256,
    "labels": {"jupyter_jobs.helper": "environment-image"},
}
#: Where an environment's packages live in its image.
ENV_ROOT = "/opt/jupyter-jobs/env"
LABEL = "jupyter_jobs.env"
#: Asks an image's Python its version, its site-packages folders and its PATH.
_PROBE = (
    "import json, site, sys, sysconfig; "
    "import platform; libc = platform.libc_ver(); "
    "print(json.dumps({'version': '%d.%d' % sys.version_info[:2], 'site': site.getsitepackages(), "
    "'purelib': sysconfig.get_path('purelib'), 'machine': platform.machine(), 'libc': list(libc)}))"
)


@dataclass(frozen=True)
class ImagePython:
    """What a base image's ``python3`` is."""

    version: str
    site: str
    #: uv's name of its platform (``x86_64-manylinux_2_36``, ``aarch64-unknown-linux-musl``).
    platform: str


def image_tag(lock: Lock, base_id: str) -> str:
    """The tag of ``lock``'s environment on the image ``base_id`` (``sha256:…``)."""
    return f"{REPOSITORY}:{lock.hash[:32]}-{base_id.split(':')[-1][:12]}"


class EnvImages:
    """Builds and finds the environment images of one Docker daemon."""

    def __init__(self, client: Any, log: Any) -> None:
        self.client = client
        self.log = log
        self._pythons: dict[str, ImagePython] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def image_for(self, base: str, lock: Lock, environments: Environments, *, say: Callable[[str], None],
                        report: Callable[[str], None]) -> tuple[str, dict[str, Any]]:
        """The image that runs the job (built first when missing), and what the job's record keeps."""
        started = time.monotonic()
        base_id = (await asyncio.to_thread(self.client.images.get, base)).id
        tag = image_tag(lock, base_id)
        async with self._locks.setdefault(tag, asyncio.Lock()):
            if await asyncio.to_thread(self._exists, tag):
                await asyncio.to_thread(environments.cache.touch, lock.hash, "target")  # used: kept longest
                say(f"environment {lock.hash[:12]}: image {tag} is cached; no build")
                return tag, {"built": False, "prepare_seconds": round(time.monotonic() - started, 3), "where": tag}
            python = await self._python(base, base_id)
            if python.version != lock.python:
                raise BackendError(
                    f"image {base!r} has Python {python.version}, and the job's environment is for Python "
                    f"{lock.python}: name an image with Python {lock.python} (image: or the instance type's), "
                    f"or set env.python.version: \"{python.version}\" to have its packages resolved for that Python"
                )
            prepared = await environments.prepare(lock, "target", say=say, report=report, target=python.platform)
            report(f"Preparing: environment {lock.hash[:12]}…: making image {tag}")
            await asyncio.to_thread(self._build, base, tag, lock, prepared.path, python)
        seconds = time.monotonic() - started
        say(f"built image {tag} (environment {lock.hash[:12]} on {base}) in {seconds:.1f} s")
        return tag, {"built": True, "prepare_seconds": round(seconds, 3), "where": tag}

    def remove(self, hashes: list[str]) -> list[str]:
        """Remove the images of these environments (on any base); one a container still uses is kept."""
        removed = []
        for env_hash in hashes:
            for image in self.client.images.list(filters={"label": f"{LABEL}={env_hash}"}):
                for tag in image.tags or [image.id]:
                    try:
                        self.client.images.remove(tag, noprune=False)
                        removed.append(tag)
                    except docker.errors.APIError as exc:  # in use by a container: the next prune takes it
                        self.log.info("jupyter-jobs: environment image %s kept: %s", tag, exc)
        return removed

    def _exists(self, tag: str) -> bool:
        try:
            self.client.images.get(tag)
            return True
        except docker.errors.ImageNotFound:
            return False

    async def _python(self, base: str, base_id: str) -> ImagePython:
        if base_id not in self._pythons:
            self._pythons[base_id] = await asyncio.to_thread(self._probe, base)
        return self._pythons[base_id]

    def _probe(self, base: str) -> ImagePython:
        """Run ``python3`` in ``base`` (no network, removed whatever happens) and read what it says of itself."""
        container = self.client.containers.create(base, ["python3", "-c", _PROBE], entrypoint=[], **_HELPER)
        try:
            try:
                container.start()
                status = container.wait(timeout=120).get("StatusCode")
                out = container.logs(stdout=True, stderr=True).decode("utf-8", "replace").strip()
                if status != 0:
                    raise ValueError(out.splitlines()[-1] if out else f"exit status {status}")
                facts = json.loads(out.splitlines()[-1])
            except (docker.errors.APIError, ValueError, IndexError) as exc:
                raise BackendError(f"image {base!r} has no working python3 ({_short(exc)}), so a Python environment "
                                   "cannot be put in it: name an image with Python, or set env.python: none") from None
        finally:
            container.remove(force=True)
        sites = [s for s in facts.get("site", []) if isinstance(s, str)] or [facts["purelib"]]
        return ImagePython(str(facts["version"]), sites[0], _uv_platform(facts))

    def _build(self, base: str, tag: str, lock: Lock, folder: Path, python: ImagePython) -> None:
        """A container of ``base`` gets the packages, then is committed as ``tag``.

        The quick way: the folder is mounted read-only into a container of the image (no network, no
        capabilities) whose own ``sh`` copies it in and writes the ``.pth`` file. Docker then only has to
        commit the layer, as a ``docker build`` would. An image without ``sh`` and ``cp`` gets the files as an
        archive instead (``put_archive``: slower, Docker unpacks it first)."""
        where = posixpath.join(ENV_ROOT, lock.hash)
        pth = posixpath.join(python.site, "jupyter-jobs-env.pth")
        config = self.client.images.get(base).attrs.get("Config") or {}
        image_env = config.get("Env") or []
        path = next((e.split("=", 1)[1] for e in image_env if e.startswith("PATH=")),
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        container = self._copied_in(base, folder, where, pth)
        try:
            if container is None:
                container = self.client.containers.create(base, ["true"], entrypoint=[], **_HELPER)
                with tempfile.TemporaryFile(dir=folder.parent.parent / "tmp") as archive:
                    _write_archive(archive, folder, where, pth)
                    archive.seek(0)
                    if not self.client.api.put_archive(container.id, "/", archive):
                        raise BackendError(f"Docker did not take the packages of environment {lock.hash[:12]}")
            repository, _, version = tag.partition(":")
            container.commit(repository=repository, tag=version, changes=[
                f"ENV PATH={where}/bin:{path}",
                f"LABEL {LABEL}={lock.hash} {LABEL}.base={base}",
                # The base image's user, not the root that copied the files in.
                f"USER {config.get('User') or '0'}",
                # The base image's own entry point and command, not those of the container that copied
                # (Docker cannot unset a command: an image that had none gets python3, as an environment's).
                f"ENTRYPOINT {json.dumps(config.get('Entrypoint') or [])}",
                f"CMD {json.dumps(config.get('Cmd') or ['python3'])}",
            ])
        finally:
            if container is not None:
                container.remove(force=True)

    def _copied_in(self, base: str, folder: Path, where: str, pth: str) -> Any:
        """A stopped container of ``base`` into which its own ``sh`` copied ``folder``; None when it cannot."""
        script = (
            'set -e; mkdir -p "$1" "$(dirname "$2")"; cp -R /.jupyter-jobs-env/. "$1/"; rm -f "$1/$3"; '
            'printf "%s\\n" "$4" > "$2"; '
            # Console scripts: uv wrote the server's python in their #! lines; the image's python3 runs them.
            'for f in "$1"/bin/*; do [ -f "$f" ] || continue; '
            'head -n1 "$f" | grep -q "^#!.*python" && sed -i "1s|.*|#!/usr/bin/env python3|" "$f"; done; true'
        )
        try:
            container = self.client.containers.create(
                base, ["/bin/sh", "-c", script, "copy", where, pth, METADATA, pth_line(where)], entrypoint=[],
                user="0:0", mounts=[Mount("/.jupyter-jobs-env", str(folder), type="bind", read_only=True)],
                **_HELPER,
            )
        except docker.errors.APIError as exc:
            self.log.info("jupyter-jobs: copying into %s in place failed (%s); sending an archive", base, _short(exc))
            return None
        try:
            container.start()
            status = container.wait(timeout=600).get("StatusCode")
            if status == 0:
                return container
            output = container.logs().decode("utf-8", "replace").strip()[-300:]
            self.log.info("jupyter-jobs: copying into %s in place exited %s (%s); sending an archive", base, status, output)
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            self.log.info("jupyter-jobs: copying into %s in place failed (%s); sending an archive", base, _short(exc))
        container.remove(force=True)
        return None


def pth_line(where: str) -> str:
    """The ``.pth`` line that puts ``where`` on ``sys.path`` before the image's own site-packages, so the job's
    versions win over packages the image has (a plain path line would come after them)."""
    return (f"import sys; sys.path.insert(next((i for i, p in enumerate(sys.path) if p.endswith(('site-packages', "
            f"'dist-packages'))), len(sys.path)), {where!r})")


def _write_archive(stream: Any, folder: Path, where: str, pth: str) -> None:
    """A tar of ``folder`` at ``where`` (scripts' ``#!`` lines made the image's python3), plus the ``.pth`` file."""
    with tarfile.open(fileobj=stream, mode="w") as tar:
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            rel = os.path.relpath(root, folder)
            inside = posixpath.normpath(posixpath.join(where, rel)).lstrip("/")
            info = tar.gettarinfo(root, inside)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info)
            for name in sorted(files):
                if rel == "." and name == METADATA:
                    continue
                source = os.path.join(root, name)
                info = tar.gettarinfo(source, posixpath.join(inside, name))
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                if info.isfile() and rel == "bin":
                    data = _script(Path(source).read_bytes())
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                elif info.isfile():
                    with open(source, "rb") as handle:
                        tar.addfile(info, handle)
                else:
                    tar.addfile(info)
        line = f"{pth_line(where)}\n".encode()
        info = tarfile.TarInfo(pth.lstrip("/"))
        info.size, info.mode = len(line), 0o644
        tar.addfile(info, io.BytesIO(line))


def _script(data: bytes) -> bytes:
    """A console script with its ``#!`` line pointing at the image's python3 (uv wrote the server's)."""
    first, newline, rest = data.partition(b"\n")
    if first.startswith(b"#!") and b"python" in first:
        return b"#!/usr/bin/env python3" + newline + rest
    return data


def _uv_platform(facts: dict[str, Any]) -> str:
    """uv's ``--python-platform`` for an image: its machine, and manylinux up to its glibc (uv knows 2_17, 2_28,
    then each of 2_31 to 2_40), or musl."""
    machine = str(facts.get("machine") or "x86_64")
    if machine not in ("x86_64", "aarch64"):
        return "linux"
    libc, version = (list(facts.get("libc") or []) + ["", ""])[:2]
    if libc != "glibc":
        return f"{machine}-unknown-linux-musl"
    minor = str(version).split(".")[1] if str(version).startswith("2.") else ""
    glibc = int(minor) if minor.isdigit() else 17
    tag = "2_17" if glibc < 28 else "2_28" if glibc < 31 else f"2_{min(glibc, 40)}"
    return f"{machine}-manylinux_{tag}"


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "stderr", b"") or exc)
    return text.strip().splitlines()[-1][:200] if text.strip() else type(exc).__name__

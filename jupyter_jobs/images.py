"""Build the offline base image: Debian minbase with Python, for hosts without a registry.

``jupyter jobs image build`` runs debootstrap against the Debian mirror this machine's apt
already uses, caches the root filesystem as a tarball, and ``docker import``\\ s it. A cached
tarball makes a rebuild take seconds.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

from .errors import BackendError

DEFAULT_TAG = "jupyter-jobs/base:bookworm"
PACKAGES = ("python3", "python-is-python3", "ca-certificates")
IMAGE_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8")


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jupyter-jobs"


def apt_mirror(suite: str = "bookworm") -> str:
    """The Debian mirror apt on this machine uses for ``suite`` (deb822 or one-line sources)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file() or not (path.suffix in (".list", ".sources") or path.name == "sources.list"):
            continue
        text = path.read_text()
        for block in text.split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", block, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", block, re.M)
            if uris and suites and suite in suites.group(1).split():
                return uris.group(1)
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] == suite:
                return parts[1]
    raise BackendError(f"no Debian {suite} mirror in /etc/apt/sources*; pass --mirror")


def build_base_image(
    client, tag: str = DEFAULT_TAG, *, suite: str = "bookworm", cache_dir: Path | None = None,
    mirror: str | None = None, rebuild: bool = False, say: Callable[[str], None] = print,
) -> str:
    """Build (or re-import from cache) the base image; return its id."""
    cache = (cache_dir or default_cache_dir())
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"rootfs-{suite}-{'-'.join(PACKAGES)}.tar"
    if rebuild or not tarball.exists():
        if not shutil.which("debootstrap"):
            raise BackendError("debootstrap is not installed; `apt-get install debootstrap` (as root) first")
        mirror = mirror or apt_mirror(suite)
        with tempfile.TemporaryDirectory(prefix="jj-rootfs-") as root:
            say(f"debootstrap {suite} from {mirror} (about a minute)")
            subprocess.run(
                ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", suite, root, mirror],
                check=True, stdout=subprocess.DEVNULL,
            )
            shutil.rmtree(Path(root) / "var/cache/apt/archives", ignore_errors=True)
            partial = tarball.with_suffix(".partial")
            subprocess.run(["tar", "-C", root, "-cf", str(partial), "."], check=True)
            partial.replace(tarball)
    say(f"importing {tarball} as {tag}")
    repository, _, version = tag.partition(":")
    client.api.import_image_from_file(
        str(tarball), repository=repository, tag=version or "latest", changes=[f"ENV {e}" for e in IMAGE_ENV]
    )
    image = client.images.get(tag)
    say(f"built {tag} ({image.short_id}, {image.attrs['Size'] / 2**20:.0f} MiB)")
    return image.id

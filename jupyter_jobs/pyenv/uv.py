"""Running uv: one command, its failure turned into :class:`~jupyter_jobs.errors.EnvironmentBuildFailed`.

Every step of this package that reaches the package index (resolving, building a local package's
wheel, installing) runs uv through :func:`run_uv`, so each failure reads the same way: what was
being done, the uv command, its exit status, uv's own message, and the packages that message names.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Mapping

from ..errors import EnvironmentBuildFailed

#: How much of the installer's message goes into an error's text (all of it stays in ``stderr``).
STDERR_TAIL = 4000


def find_uv() -> str:
    """The uv executable the ``uv`` package ships, else the one on ``PATH``.

    Raises
    ------
    EnvironmentBuildFailed
        When there is none (``pip install uv``).
    """
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return found
    raise EnvironmentBuildFailed("uv is needed to build Python environments and local packages' wheels, and this "
                                 f"Python ({sys.executable}) has none: pip install uv")


def run_uv(uv: str, *args: str, doing: str, cache_dir: Path, names: Iterable[str] = (), env_hash: str = "",
           environ: Mapping[str, str] | None = None, say: Callable[[str], None] | None = None) -> str:
    """Run ``uv args...`` with its cache in ``cache_dir``; its standard output.

    Parameters
    ----------
    doing
        What the command is for, as the error's text begins: ``building Python environment 3f2a…``.
    names
        The packages involved; those that uv's message mentions are the error's ``packages``.

    Raises
    ------
    EnvironmentBuildFailed
        When uv cannot be run or exits with an error; carries uv's stderr in full.
    """
    command = [uv, *args]
    env = {**os.environ, **(environ or {}), "UV_CACHE_DIR": str(cache_dir), "NO_COLOR": "1"}
    lines: list[str] = []
    try:
        with tempfile.TemporaryFile() as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE, text=True, env=env,
                                    stdin=subprocess.DEVNULL, errors="replace")
            assert proc.stderr is not None
            for line in proc.stderr:  # as uv writes it: a job's log shows the build as it goes
                lines.append(line)
                if say is not None and line.strip():
                    say(line.rstrip())
            returncode = proc.wait()
            out.seek(0)
            stdout = out.read().decode("utf-8", "replace")
    except OSError as exc:
        raise EnvironmentBuildFailed(f"{doing} failed: cannot run uv ({uv}): {exc}", env_hash=env_hash) from None
    if returncode == 0:
        return stdout
    stderr = "".join(lines).strip()
    named = named_in(names, stderr)
    which = f" ({', '.join(named)})" if named else ""
    step = f"uv {' '.join(args[:2])}" if args[:1] == ("pip",) else f"uv {args[0]}"
    raise EnvironmentBuildFailed(f"{doing} failed{which}: {step} exited with {returncode}:\n"
                                 f"{stderr[-STDERR_TAIL:]}", stderr=stderr, packages=named, env_hash=env_hash)


def named_in(names: Iterable[str], text: str) -> tuple[str, ...]:
    """Those of ``names`` (PEP 503 form) that ``text`` mentions as whole names, in their order."""
    lowered = text.lower()
    return tuple(dict.fromkeys(name for name in names
                               if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", lowered)))

"""The file contract of a job's working dir, the same on every backend.

A job starts in ``code/`` (its own writable copy of what it was shipped; the shipped files stay in
the blob store for reruns, see :meth:`JobDir.snapshot`), with the parent folders of its declared
outputs made both there and under ``outputs/``. A declared output may be written relative to the
working dir, to ``$JOB_OUTPUTS/<path>`` or to its ``$VAR``: when the job ends, one written relative
is moved into ``outputs/``. What a job that succeeded wrote outside any declared output is named
in its log (the biggest first), so nothing is lost silently.
"""
from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path

from . import safeopen
from .jobdir import JobDir
from .models import JobSpec
from .sizes import human

#: Files a job leaves beside its code that no one would want back.
_NOISE = ("__pycache__", ".ipynb_checkpoints")
#: Undeclared files named in the log.
_NAMED = 5


def prepare(folder: JobDir, spec: JobSpec) -> None:
    """Make the parent folders of declared outputs, in the working dir and in ``outputs/``."""
    work = folder.code / spec.working_dir
    for item in spec.outputs:
        parent = posixpath.dirname(posixpath.normpath(item.path))
        if parent:
            for base in (folder.outputs, work):
                try:
                    base_fd = safeopen.open_dir(base)
                except OSError:
                    continue
                try:
                    os.close(safeopen.make_dirs_beneath(base_fd, safeopen.split(parent)))
                except (OSError, ValueError):  # a file where a folder should be: the job will say so
                    pass
                finally:
                    os.close(base_fd)


def collect(folder: JobDir, spec: JobSpec) -> None:
    """Move each declared output the job wrote relative to its working dir (else to its code folder) into
    ``outputs/``. Only renames inside the job's folder, from descriptors opened without following links:
    an input folder may hold a link to anywhere, and what it leads to must never become an output."""
    try:
        code, outputs = safeopen.open_dir(folder.code), safeopen.open_dir(folder.outputs)
    except OSError as exc:
        folder.say(f"outputs not collected: {exc.strerror or exc}")
        return
    try:
        for item in spec.outputs:
            if not folder.has_output(item.path) or _is_empty_dir(folder.outputs / item.path):
                _collect_one(folder, spec, code, outputs, item.path)
    finally:
        os.close(code)
        os.close(outputs)


def _collect_one(folder: JobDir, spec: JobSpec, code: int, outputs: int, path: str) -> None:
    for source in dict.fromkeys([posixpath.normpath(posixpath.join(spec.working_dir, path)), path]):
        try:
            if _is_empty_dir(folder.outputs / path):  # made by prepare() for a nested output; the job's wins
                os.rmdir(folder.outputs / path)
            safeopen.rename_beneath(code, source, outputs, path)
            return
        except (FileNotFoundError, NotADirectoryError):
            continue
        except (safeopen.Refused, ValueError, OSError) as exc:
            why = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
            folder.say(f"output {path!r} not collected: code/{source} {why}")
            return


def _is_empty_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode) and not any(path.iterdir())
    except OSError:
        return False


def undeclared(folder: JobDir) -> list[tuple[str, int]]:
    """Files in the working dir the job was not shipped, biggest first (``[]`` for a job with no
    snapshot to compare with)."""
    shipped = folder.shipped()
    if shipped is None:
        return []
    found = []
    for base, dirs, names in os.walk(folder.code):
        dirs[:] = [d for d in dirs if d not in _NOISE]
        for name in names:
            path = Path(base) / name
            relative = path.relative_to(folder.code).as_posix()
            if relative not in shipped:
                try:
                    info = path.lstat()
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    found.append((relative, info.st_size))
    return sorted(found, key=lambda item: (-item[1], item[0]))


def warn_undeclared(folder: JobDir) -> None:
    """Name, in the job's log, the biggest files it wrote outside any declared output."""
    found = undeclared(folder)
    if not found:
        return
    named = ", ".join(f"{path} ({human(size)})" for path, size in found[:_NAMED])
    more = f" and {len(found) - _NAMED} more" if len(found) > _NAMED else ""
    folder.say(f"the job wrote {len(found)} file{'s' * (len(found) != 1)} outside its declared outputs, which are "
               f"not kept as outputs: {named}{more}; declare them in `outputs` (or write them to $JOB_OUTPUTS) "
               "to get them back")

"""A job's folder on the server: its code snapshot, outputs, log and run state."""
from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import os
import shutil
import stat
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from . import safeopen
from .errors import Forbidden, JobsError, NotFound, SpecError, TooLarge

#: Prefix of lines jupyter-jobs itself writes into a job's log.
SYSTEM_PREFIX = "[jupyter-jobs]"
#: The manifest of what a job was shipped, under ``run/``.
SNAPSHOT_FILE = "files.json"


@dataclass(frozen=True)
class JobDir:
    """``<jobs_dir>/<id>/`` with ``code/`` (working tree), ``outputs/``, ``job.log``, ``displays.jsonl``
    (what the job displayed: one Jupyter output a line) and ``run/``."""

    root: Path

    @property
    def code(self) -> Path:
        return self.root / "code"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def log(self) -> Path:
        return self.root / "job.log"

    @property
    def displays(self) -> Path:
        return self.root / "displays.jsonl"

    @property
    def run(self) -> Path:
        return self.root / "run"

    def create(self) -> None:
        for path in (self.code, self.outputs, self.run):
            path.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        self.displays.touch()

    def stream(self, name: str) -> Path:
        """One of the job's append-only streams: ``log`` or ``displays``."""
        return {"log": self.log, "displays": self.displays}[name]

    def say(self, text: str) -> None:
        """Append a line of our own to the job's log (O_APPEND, so safe beside the job's writes)."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            with open(self.log, "a", encoding="utf-8", errors="replace") as log:
                log.write(f"{SYSTEM_PREFIX} {stamp} {text}\n")
        except OSError as exc:  # folder deleted, disk full: the record still says what happened
            logging.getLogger("jupyter_jobs").warning("jupyter-jobs: cannot write to %s (%s): %s", self.log, exc, text)

    def read_log(self, offset: int, size: int, stream: str = "log") -> bytes:
        try:
            with open(self.stream(stream), "rb") as log:
                log.seek(offset)
                return log.read(size)
        except FileNotFoundError:  # a stream the job never had (a folder made before displays existed)
            return b""

    def log_size(self, stream: str = "log") -> int:
        try:
            return self.stream(stream).stat().st_size
        except FileNotFoundError:
            return 0

    def tail_line(self, max_bytes: int = 4096) -> str:
        """The last line the job printed (ours skipped), for failure messages."""
        size = self.log_size()
        data = self.read_log(max(0, size - max_bytes), max_bytes).decode("utf-8", "replace")
        for line in reversed(data.splitlines()):
            if line.strip() and not line.startswith(SYSTEM_PREFIX):
                return line.strip()[:300]
        return ""

    def snapshot(self, blobs: Any) -> None:
        """Keep what the job was shipped as a manifest ``run/files.json`` of content-addressed blobs, so a
        rerun gets exactly it back, whatever the job then did to its writable working dir. A folder with a
        link or a special file in it (copied from the server's disk) keeps none: its rerun copies the folder."""
        files: dict[str, str] = {}
        for base, _dirs, names in os.walk(self.code):
            for name in names:
                path = Path(base) / name
                if not stat.S_ISREG(path.lstat().st_mode):
                    return
                files[path.relative_to(self.code).as_posix()] = blobs.add_file(path)
        self.write_json(SNAPSHOT_FILE, files)

    def shipped(self) -> dict[str, str] | None:
        """The manifest :meth:`snapshot` kept (None for a job that has none)."""
        files = self.read_json(SNAPSHOT_FILE)
        return files if isinstance(files, dict) else None

    def write_json(self, name: str, data: Any) -> None:
        tmp = self.run / f".{name}.tmp"
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.run / name)

    def read_json(self, name: str) -> Any:
        try:
            return json.loads((self.run / name).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def open_output(self, relative: str) -> tuple[int, os.stat_result]:
        """A read descriptor of the output file at ``relative``, and its ``fstat``.

        Opened beneath ``outputs/`` with no symbolic link followed (see :mod:`.safeopen`), so a
        job that swaps a folder for a link while we open it gets a refusal, never a host file.
        The caller reads from the descriptor and closes it. Raises NotFound, Forbidden (a link,
        a special file, a hard link) or IsADirectoryError (a folder: see :meth:`write_archive`).
        """
        with self._outputs_fd(relative) as base:
            try:
                return safeopen.open_regular(base, relative)
            except IsADirectoryError:
                raise
            except (safeopen.Refused, ValueError, OSError) as exc:
                raise _output_error(relative, exc) from None

    @contextlib.contextmanager
    def _outputs_fd(self, relative: str) -> Iterator[int]:
        try:
            base = safeopen.open_dir(self.outputs)
        except OSError:
            raise NotFound(f"job has no outputs folder, so no output {relative!r}") from None
        try:
            yield base
        finally:
            os.close(base)

    def write_archive(self, relative: str, write: Callable[[bytes], None]) -> None:
        """The output folder at ``relative`` as a tar stream, handed to ``write`` a chunk at a time.

        Tar, not zip: it streams with no central directory to keep in memory and no seeking, and
        it keeps the files' modes (tar, Python, 7-Zip and Windows' own Explorer open it). Folders
        are entered through descriptors with no link followed; symbolic links, hard-linked and
        special files are left out (and listed in the log of the server), as downloads of single
        files refuse them. A file that shrinks while it is read cuts the stream (the client sees
        an incomplete archive, never a wrong one).
        """
        top = safeopen.split(relative)[-1] if relative.strip("/.") else "outputs"
        with self._outputs_fd(relative) as base:
            try:
                folder = safeopen.open_beneath(base, relative, os.O_RDONLY | os.O_DIRECTORY) if relative.strip("/.") else os.dup(base)
            except (safeopen.Refused, ValueError, OSError) as exc:
                raise _output_error(relative, exc) from None
        skipped: list[str] = []
        try:
            with _ChunkWriter(write) as sink, tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                tar.addfile(_tar_entry(top, tarfile.DIRTYPE, os.fstat(folder)))
                for path, entry in safeopen.walk_entries(folder):
                    name = f"{top}/{path}"
                    if entry.is_dir(follow_symlinks=False):
                        tar.addfile(_tar_entry(name, tarfile.DIRTYPE, entry.stat(follow_symlinks=False)))
                        continue
                    try:
                        fd, info = safeopen.open_regular(folder, path)
                    except (safeopen.Refused, OSError):
                        skipped.append(path)
                        continue
                    with os.fdopen(fd, "rb") as handle:
                        tar.addfile(_tar_entry(name, tarfile.REGTYPE, info), handle)
        finally:
            os.close(folder)
        if skipped:
            logging.getLogger("jupyter_jobs").info("jupyter-jobs: the archive of %s/%s left out %d links or special "
                                                   "files: %s", self.outputs, relative, len(skipped), skipped[:5])

    def has_output(self, relative: str) -> bool:
        """Whether ``relative`` is in ``outputs/`` (itself, not behind a symbolic link)."""
        try:
            base = safeopen.open_dir(self.outputs)
        except OSError:
            return False
        try:
            return safeopen.lstat_beneath(base, relative) is not None
        except (ValueError, OSError):
            return False
        finally:
            os.close(base)

    def list_outputs(self) -> list[dict[str, Any]]:
        """Files under ``outputs/``, depth first. Symbolic links are listed as such, with their
        own size, and never entered; other special files are left out."""
        try:
            base = safeopen.open_dir(self.outputs)
        except OSError:
            return []
        files: list[dict[str, Any]] = []
        try:
            for path, entry in safeopen.walk_entries(base):
                try:
                    size = entry.stat(follow_symlinks=False).st_size
                    if entry.is_symlink():
                        files.append({"path": path, "type": "symlink", "size": size})
                    elif entry.is_file(follow_symlinks=False):
                        files.append({"path": path, "size": size})
                except FileNotFoundError:  # removed while we listed
                    continue
        finally:
            os.close(base)
        return files

    def clear_set_id_bits(self) -> None:
        """Clear the setuid/setgid bits of outputs (a container's would hold on the host) and say
        which, in the job's log."""
        changed = strip_set_id_bits(self.outputs)
        if changed:
            self.say(f"cleared the setuid/setgid bits of {len(changed)} output(s): {', '.join(changed[:5])}")

    def remove(self) -> None:
        """Delete the folder. ``shutil.rmtree`` works from directory descriptors and unlinks
        symbolic links without following them, so nothing outside the folder is touched; it
        recurses, so a tree deeper than Python's recursion limit (a job can make one) is left to
        ``rm -rf``, which does not follow links either and has no depth limit."""
        try:
            shutil.rmtree(self.root, ignore_errors=True)
        except RecursionError:
            subprocess.run(["rm", "-rf", "--one-file-system", "--", str(self.root)], check=False,
                           stdin=subprocess.DEVNULL, capture_output=True)


def _output_error(relative: str, exc: Exception) -> JobsError:
    """What a client is told when ``relative`` cannot be opened beneath ``outputs/``."""
    shown = relative if len(relative) <= 80 else relative[:80] + "..."
    if isinstance(exc, safeopen.Refused):
        return Forbidden(f"output {shown!r} {exc.strerror}; only plain files and folders in outputs/ are served")
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.ELOOP):
        return Forbidden(f"output {shown!r} cannot be read ({exc.strerror})")
    # A path that cannot be in outputs/ ('..', absolute, too long, through a file) is as missing as one that is not there.
    return NotFound(f"output {shown!r} not found; GET .../outputs lists the job's outputs")


def _tar_entry(name: str, kind: bytes, info: os.stat_result) -> tarfile.TarInfo:
    entry = tarfile.TarInfo(name)
    entry.type = kind
    entry.mode = stat.S_IMODE(info.st_mode) & 0o777  # no set-id bits leave the server
    entry.mtime = int(info.st_mtime)
    entry.size = info.st_size if kind == tarfile.REGTYPE else 0
    return entry


class _ChunkWriter(io.RawIOBase):
    """A file object for ``tarfile`` that hands its bytes on in chunks of :data:`ARCHIVE_CHUNK`."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write, self._buffer = write, bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._buffer += data
        if len(self._buffer) >= ARCHIVE_CHUNK:
            self._write(bytes(self._buffer))
            self._buffer.clear()
        return len(data)

    def close(self) -> None:
        if not self.closed and self._buffer:
            self._write(bytes(self._buffer))
            self._buffer.clear()
        super().close()


#: Bytes an archive of outputs is handed on in.
ARCHIVE_CHUNK = 1024 * 1024


#: Prefix of the folder a submission is staged in before it becomes ``jobs/<id>``.
STAGING_PREFIX = ".staging-"


def remove_staging_leftovers(jobs_dir: Path, before: float) -> list[str]:
    """Delete staging folders last changed before ``before`` (left by a server killed while it
    staged a submission; younger ones may be in progress); return their paths."""
    removed = []
    for entry in os.scandir(jobs_dir):
        if entry.name.startswith(STAGING_PREFIX) and entry.stat().st_mtime < before:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    return removed


def highest_job_folder(jobs_dir: Path) -> int:
    """The highest job id that has a folder in ``jobs_dir`` (0 for none)."""
    return max((int(e.name) for e in os.scandir(jobs_dir) if e.name.isascii() and e.name.isdigit()), default=0)


def measure_inputs(base: Path, paths: list[tuple[str, str]], limit: int) -> int:
    """Check that every input exists inside ``base`` and their total is under ``limit`` bytes.

    ``paths`` are ``(field, relative path)``. Raises SpecError for a missing or escaping path,
    TooLarge (listing the largest files) past the limit.
    """
    base = base.resolve()
    sizes: list[tuple[int, str]] = []
    problems = []
    for field, relative in paths:
        try:
            target = (base / relative).resolve()
        except (RuntimeError, OSError) as exc:  # a symbolic link loop
            problems.append((field, f"{relative!r} cannot be followed ({exc})"))
            continue
        if target != base and base not in target.parents:
            problems.append((field, f"{relative!r} leads outside {base} (through a symlink?)"))
            continue
        if not target.exists():
            problems.append((field, f"{relative!r} not found in {base}"))
            continue
        if not (target.is_file() or target.is_dir()):
            problems.append((field, f"{relative!r} is neither a file nor a folder (a pipe, socket or device)"))
            continue
        files = [target] if target.is_file() else [p for p in target.rglob("*") if p.is_file()]
        sizes += [(f.stat().st_size, str(f.relative_to(base))) for f in files]
    if problems:
        from .errors import FieldProblem

        raise SpecError([FieldProblem(f, m) for f, m in problems])
    total = sum(size for size, _ in sizes)
    if total > limit:
        largest = ", ".join(f"{name} ({size / 2**20:.1f} MiB)" for size, name in sorted(sizes, reverse=True)[:5])
        raise TooLarge(
            f"inputs total {total / 2**20:.1f} MiB, over the {limit / 2**20:.0f} MiB limit "
            f"(JobManager.max_input_bytes); largest: {largest}. Ship less, or use a dataset."
        )
    return total


def copy_inputs(base: Path, paths: list[str], dest: Path) -> None:
    """Copy each input (file or folder) from ``base`` to the same relative place under ``dest``."""
    for relative in paths:
        source, target = base / relative, dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True, ignore=special_files)
        else:
            shutil.copy2(source, target)


def strip_set_id_bits(outputs: Path) -> list[str]:
    """Clear setuid/setgid bits of files a job left in its outputs (never following a symlink):
    they would hold on the host, whatever the container's mount said. Returns what it changed."""
    changed = []
    for base, dirs, files in os.walk(outputs):
        for name in dirs + files:
            path = os.path.join(base, name)
            try:
                mode = os.lstat(path).st_mode
                if not stat.S_ISLNK(mode) and mode & (stat.S_ISUID | stat.S_ISGID):
                    os.chmod(path, stat.S_IMODE(mode) & ~(stat.S_ISUID | stat.S_ISGID), follow_symlinks=False)
                    changed.append(os.path.relpath(path, outputs))
            except (OSError, NotImplementedError):
                continue
    return changed


def copy_for_rerun(source: Path, dest: Path, limit: int) -> None:
    """Copy a job's files for its rerun: within ``limit`` bytes (a job may have filled its folder
    with checkpoints), links kept as links, and sockets, pipes and devices it left skipped."""
    total = 0
    for base, _dirs, files in os.walk(source):
        for name in files:
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(base, name))
                if stat.S_ISREG(info.st_mode):
                    total += info.st_size
    if total > limit:
        raise TooLarge(
            f"the files of the job to rerun total {total / 2**20:.1f} MiB, over the {limit / 2**20:.0f} MiB limit "
            "(JobManager.max_input_bytes); submit it again with its inputs"
        )
    shutil.copytree(source, dest, symlinks=True, dirs_exist_ok=True, ignore=special_files)


def special_files(folder: str, names: list[str]) -> list[str]:
    """The ``names`` in ``folder`` that are neither files, folders nor links (sockets, pipes,
    devices): a ``copytree`` ignore function, since copying one fails or blocks."""
    skipped = []
    for name in names:
        try:
            mode = os.lstat(os.path.join(folder, name)).st_mode
        except OSError:
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            skipped.append(name)
    return skipped

"""Open, inspect, list and move paths beneath a directory without following symbolic links.

A job controls the files in its folder (its outputs, the code it runs in), and it can change
them while the server reads them: checking a path and then opening it by name again lets a job
swap a folder for a link to ``/etc`` in between. So every path a job controls is opened
relative to a directory file descriptor, one that cannot be swapped, and no symbolic link is
followed at any component: with ``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`` where the
kernel has it (Linux 5.6), else one ``O_NOFOLLOW`` component at a time. What was opened is then
checked on the descriptor itself (``fstat``), never by name.
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
from collections.abc import Iterator

#: openat2(2)'s number where we know it (the same on both: it postdates the unified table).
_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437}.get(platform.machine())
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class Refused(OSError):
    """The path exists but is not served: it is or passes through a symbolic link, it is not a
    regular file, or it has other names (a hard link may point outside the job)."""


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
#: None until openat2 was tried; then whether this kernel has it.
_has_openat2: bool | None = None if _SYS_OPENAT2 else False


def split(relative: str) -> list[str]:
    """The components of a relative path; ValueError for an absolute path, '..' or a NUL."""
    if "\0" in relative:
        raise ValueError(f"{relative!r} contains a NUL character")
    if relative.startswith("/"):
        raise ValueError(f"{relative!r} is absolute; give a path relative to the folder")
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{relative!r} contains '..'")
    if not parts:
        raise ValueError(f"{relative!r} names no file")
    return parts


def _openat2(dirfd: int, relative: str, flags: int) -> int | None:
    """openat2 beneath ``dirfd`` with no symbolic links; None where the kernel lacks it."""
    global _has_openat2
    if _has_openat2 is False:
        return None
    how = _OpenHow(flags | os.O_CLOEXEC, 0, _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS)
    fd = _libc.syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_long(dirfd), ctypes.c_char_p(os.fsencode(relative)),
                       ctypes.byref(how), ctypes.c_long(ctypes.sizeof(how)))
    if fd >= 0:
        _has_openat2 = True
        return fd
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EPERM) and _has_openat2 is None:  # old kernel, or a seccomp filter
        _has_openat2 = False
        return None
    if code in (errno.ELOOP, errno.EXDEV):  # a symbolic link, or an escape, on the way
        raise Refused(code, "is or passes through a symbolic link", relative)
    raise OSError(code, os.strerror(code), relative)


def _walk(dirfd: int, parts: list[str], flags: int) -> int:
    """The fallback: open one component at a time, each with O_NOFOLLOW, from ``dirfd``."""
    fd = os.open(".", _DIR_FLAGS, dir_fd=dirfd)
    try:
        for part in parts[:-1]:
            try:
                nxt = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR and _is_link(fd, part)):
                    raise Refused(errno.ELOOP, "is or passes through a symbolic link", "/".join(parts)) from None
                raise
            os.close(fd)
            fd = nxt
        try:
            return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR and _is_link(fd, parts[-1])):
                raise Refused(errno.ELOOP, "is a symbolic link", "/".join(parts)) from None
            raise
    finally:
        os.close(fd)


def _is_link(dirfd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def open_beneath(dirfd: int, relative: str, flags: int = os.O_RDONLY) -> int:
    """A descriptor of ``relative`` beneath ``dirfd``, no symbolic link followed at any component.

    Raises ValueError for a path that is absolute or has '..', Refused for a link on the way,
    and the OSError of the failing open otherwise (FileNotFoundError, NotADirectoryError...).
    """
    parts = split(relative)
    fd = _openat2(dirfd, "/".join(parts), flags)
    return fd if fd is not None else _walk(dirfd, parts, flags)


def open_dir(path: os.PathLike | str) -> int:
    """A descriptor of the folder ``path``, refusing one that is itself a symbolic link."""
    return os.open(path, _DIR_FLAGS | os.O_NOFOLLOW)


def open_regular(dirfd: int, relative: str) -> tuple[int, os.stat_result]:
    """Open a regular file with one name beneath ``dirfd`` for reading; its fd and fstat.

    It is first opened as a bare path (O_PATH: no device is opened, no FIFO blocks), checked,
    then reopened through that descriptor, so what is read is exactly what was checked.
    """
    path_fd = open_beneath(dirfd, relative, os.O_PATH)
    try:
        info = os.fstat(path_fd)
        _check_regular(info, relative)
        try:
            fd = os.open(f"/proc/self/fd/{path_fd}", os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC)
        except FileNotFoundError:  # no /proc: open by name again, without blocking, and compare
            fd = open_beneath(dirfd, relative, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    finally:
        os.close(path_fd)
    opened = os.fstat(fd)
    if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
        os.close(fd)
        raise Refused(errno.EAGAIN, "changed while it was being opened; try again", relative)
    try:
        _check_regular(opened, relative)
    except Refused:
        os.close(fd)
        raise
    return fd, opened


def _check_regular(info: os.stat_result, relative: str) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a folder", relative)
    if stat.S_ISLNK(info.st_mode):
        raise Refused(errno.ELOOP, "is a symbolic link", relative)
    if not stat.S_ISREG(info.st_mode):
        raise Refused(errno.EPERM, "is not a regular file (a device, FIFO or socket)", relative)
    if info.st_nlink != 1:
        raise Refused(errno.EMLINK, f"has {info.st_nlink} names (a hard link may lead outside the job)", relative)


def lstat_beneath(dirfd: int, relative: str) -> os.stat_result | None:
    """What ``relative`` beneath ``dirfd`` is, without following a link at its last component;
    None when it is missing. Refused when a symbolic link is on the way to it."""
    parts = split(relative)
    try:
        parent = open_beneath(dirfd, "/".join(parts[:-1]), os.O_PATH | os.O_DIRECTORY) if len(parts) > 1 else None
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return os.stat(parts[-1], dir_fd=dirfd if parent is None else parent, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None
    finally:
        if parent is not None:
            os.close(parent)


def make_dirs_beneath(dirfd: int, parts: list[str]) -> int:
    """Create the folders ``parts`` beneath ``dirfd`` (none through a link); return a descriptor
    of the deepest (of ``dirfd`` itself when ``parts`` is empty)."""
    fd = os.open(".", _DIR_FLAGS, dir_fd=dirfd)
    for part in parts:
        try:
            os.mkdir(part, 0o777, dir_fd=fd)
        except FileExistsError:
            pass
        except OSError:
            os.close(fd)
            raise
        try:
            nxt = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise Refused(errno.ELOOP, "is or passes through a symbolic link or a file", "/".join(parts)) from None
            raise
        os.close(fd)
        fd = nxt
    return fd


def rename_beneath(src_dirfd: int, src: str, dst_dirfd: int, dst: str) -> None:
    """Move ``src`` beneath ``src_dirfd`` to ``dst`` beneath ``dst_dirfd`` with renameat, so
    nothing outside those folders is ever moved: a source that is, or passes through, a
    symbolic link is refused (Refused), and so is a destination whose folders are links."""
    src_parts, dst_parts = split(src), split(dst)
    if stat.S_ISLNK((lstat_beneath(src_dirfd, src) or _missing(src)).st_mode):
        raise Refused(errno.ELOOP, "is a symbolic link", src)
    src_parent = None
    if len(src_parts) > 1:
        src_parent = open_beneath(src_dirfd, "/".join(src_parts[:-1]), os.O_PATH | os.O_DIRECTORY)
    try:
        dst_parent = make_dirs_beneath(dst_dirfd, dst_parts[:-1])
        try:
            os.rename(src_parts[-1], dst_parts[-1], src_dir_fd=src_dirfd if src_parent is None else src_parent,
                      dst_dir_fd=dst_parent)
        finally:
            os.close(dst_parent)
    finally:
        if src_parent is not None:
            os.close(src_parent)


def _missing(relative: str) -> os.stat_result:
    raise FileNotFoundError(errno.ENOENT, "not found (or a symbolic link is on the way)", relative)


#: Deepest folder :func:`walk_entries` enters (a job may nest folders thousands deep).
MAX_WALK_DEPTH = 64


def walk_entries(dirfd: int, prefix: str = "", max_depth: int = MAX_WALK_DEPTH) -> Iterator[tuple[str, os.DirEntry]]:
    """Every entry beneath ``dirfd`` as ``(relative path, entry)``, depth first; folders are
    entered through descriptors opened with O_NOFOLLOW, so links to folders are never entered.
    No recursion: folders deeper than ``max_depth`` are listed but not entered."""
    # Each level: (its descriptor, or None for the caller's; its path prefix; entries left).
    stack: list[tuple[int | None, str, list[os.DirEntry]]] = []

    def level(fd: int, owned: bool, path: str) -> tuple[int | None, str, list[os.DirEntry]]:
        with os.scandir(fd) as entries:
            items = sorted(entries, key=lambda e: e.name, reverse=True)
        return (fd if owned else None, path, items)

    stack.append(level(dirfd, False, prefix))
    try:
        while stack:
            fd, path, items = stack[-1]
            if not items:
                stack.pop()
                if fd is not None:
                    os.close(fd)
                continue
            entry = items.pop()
            here = f"{path}{entry.name}"
            yield here, entry
            if entry.is_dir(follow_symlinks=False) and len(stack) <= max_depth:
                parent = fd if fd is not None else dirfd
                try:
                    sub = os.open(entry.name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent)
                except OSError:  # replaced or removed meanwhile: list what is there now, not it
                    continue
                try:
                    stack.append(level(sub, True, here + "/"))
                except OSError:
                    os.close(sub)
    finally:
        for fd, _, _ in stack:
            if fd is not None:
                os.close(fd)

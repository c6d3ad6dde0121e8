"""Opening beneath a folder without following links: with openat2 and with the O_NOFOLLOW walk."""
import os
import threading
from pathlib import Path

import pytest

from jupyter_jobs import safeopen


@pytest.fixture(params=["openat2", "walk"])
def mode(request, monkeypatch):
    if request.param == "walk":
        monkeypatch.setattr(safeopen, "_has_openat2", False)
    elif safeopen._SYS_OPENAT2 is None:
        pytest.skip("openat2's syscall number is not known on this machine")
    return request.param


@pytest.fixture
def tree(tmp_path: Path):
    """``base/`` with a file, a folder, links out of it, and a host folder with a secret."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "f").write_text("secret")
    base = tmp_path / "base"
    (base / "d").mkdir(parents=True)
    (base / "d" / "f").write_text("public")
    (base / "to-host").symlink_to(host)
    (base / "to-secret").symlink_to(host / "f")
    fd = safeopen.open_dir(base)
    yield base, host, fd
    os.close(fd)


def read(fd: int) -> bytes:
    try:
        return os.pread(fd, 100, 0)
    finally:
        os.close(fd)


def test_opens_a_plain_file(tree, mode):
    _, _, base = tree
    fd, info = safeopen.open_regular(base, "d/f")
    assert read(fd) == b"public" and info.st_size == 6


@pytest.mark.parametrize("path", ["to-host/f", "to-secret", "to-host"])
def test_links_are_refused_at_any_component(tree, mode, path):
    _, _, base = tree
    with pytest.raises(safeopen.Refused):
        safeopen.open_regular(base, path)


@pytest.mark.parametrize("path", ["../host/f", "/etc/passwd", "d/../../host/f", "a\0b", ""])
def test_paths_that_leave_are_value_errors(tree, mode, path):
    _, _, base = tree
    with pytest.raises(ValueError):
        safeopen.open_regular(base, path)


def test_missing_folder_and_file(tree, mode):
    _, _, base = tree
    with pytest.raises(FileNotFoundError):
        safeopen.open_regular(base, "nope")
    with pytest.raises(IsADirectoryError):
        safeopen.open_regular(base, "d")
    with pytest.raises(NotADirectoryError):
        safeopen.open_regular(base, "d/f/g")


def test_hard_links_and_fifos_are_refused_without_blocking(tree, mode):
    base_path, host, base = tree
    os.link(host / "f", base_path / "hard")
    os.mkfifo(base_path / "fifo")
    with pytest.raises(safeopen.Refused, match="2 names"):
        safeopen.open_regular(base, "hard")
    with pytest.raises(safeopen.Refused, match="not a regular file"):
        safeopen.open_regular(base, "fifo")  # would block forever if it were opened for reading


def test_a_folder_swapped_for_a_link_never_yields_the_host_file(tree, mode):
    base_path, _, base = tree
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            os.rename(base_path / "d", base_path / "x")
            os.rename(base_path / "to-host", base_path / "d")
            os.rename(base_path / "d", base_path / "to-host")
            os.rename(base_path / "x", base_path / "d")

    swapper = threading.Thread(target=swap)
    swapper.start()
    seen = set()
    try:
        for _ in range(5000):
            try:
                fd, _ = safeopen.open_regular(base, "d/f")
            except (safeopen.Refused, FileNotFoundError, NotADirectoryError):
                seen.add("refused")
                continue
            seen.add(read(fd))
    finally:
        stop.set()
        swapper.join()
    assert b"secret" not in seen
    assert b"public" in seen


def test_lstat_beneath_does_not_follow(tree, mode):
    _, _, base = tree
    assert safeopen.lstat_beneath(base, "d/f").st_size == 6
    assert safeopen.lstat_beneath(base, "to-secret").st_size == len(str(tree[1] / "f"))
    assert safeopen.lstat_beneath(base, "nope/f") is None
    with pytest.raises(safeopen.Refused):
        safeopen.lstat_beneath(base, "to-host/f")


def test_rename_beneath_moves_only_what_is_inside(tree, mode, tmp_path):
    base_path, host, base = tree
    dest = tmp_path / "dest"
    dest.mkdir()
    dest_fd = safeopen.open_dir(dest)
    try:
        safeopen.rename_beneath(base, "d/f", dest_fd, "a/b/f")
        assert (dest / "a" / "b" / "f").read_text() == "public"
        for source in ("to-host/f", "to-secret"):
            with pytest.raises(safeopen.Refused):
                safeopen.rename_beneath(base, source, dest_fd, "g")
        (dest / "out").symlink_to(host)
        (base_path / "h").write_text("h")
        with pytest.raises(safeopen.Refused):
            safeopen.rename_beneath(base, "h", dest_fd, "out/h")
    finally:
        os.close(dest_fd)
    assert (host / "f").read_text() == "secret" and sorted(p.name for p in host.iterdir()) == ["f"]


def test_walk_lists_links_without_entering_them(tree):
    _, _, base = tree
    listed = {path: entry.is_symlink() for path, entry in safeopen.walk_entries(base)}
    assert listed == {"d": False, "d/f": False, "to-host": True, "to-secret": True}


def test_without_proc_the_file_is_opened_again_and_compared(tree, mode, monkeypatch):
    base_path, _, base = tree
    real_open = os.open

    def no_proc(path, *args, **kwargs):
        if str(path).startswith("/proc/self/fd/"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(safeopen.os, "open", no_proc)
    fd, _ = safeopen.open_regular(base, "d/f")
    assert read(fd) == b"public"
    os.mkfifo(base_path / "fifo")
    with pytest.raises(safeopen.Refused):
        safeopen.open_regular(base, "fifo")

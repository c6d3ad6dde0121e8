"""Who a job runs as when one runner serves many users (``JobManager.run_as_owner``).

The JupyterHub service runs as root and holds one pool for the machine; each job then runs as its
owner's system account, never as root: its uid, primary gid and supplementary groups, its home.
This module finds that account, and hands a job's folder over to it before the job starts.
"""
from __future__ import annotations

import functools
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import JobsError

if TYPE_CHECKING:
    from ..jobdir import JobDir

#: Variables of the server's own environment a job that runs as its owner may inherit: how to find
#: programs and speak the locale. Nothing else (the service's Hub token, root's settings) reaches it.
INHERITED = frozenset({"PATH", "LANG", "LANGUAGE", "TZ", "TERM"})


class NoAccount(JobsError):
    """The owner of a job has no system account to run it as (or it is root's)."""

    status_code = 400


@functools.cache
def uid_min() -> int:
    """The first uid of people's accounts (``UID_MIN`` of /etc/login.defs, 1000 where it is not said)."""
    try:
        for line in Path("/etc/login.defs").read_text().splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "UID_MIN" and words[1].isdigit():
                return int(words[1])
    except OSError:
        pass
    return 1000


@dataclass(frozen=True)
class RunAs:
    """A system account a job runs as."""

    uid: int
    gid: int
    #: Supplementary groups (the primary gid among them), as ``os.getgrouplist`` gives them.
    groups: tuple[int, ...]
    name: str
    home: str

    @classmethod
    def of(cls, owner: str) -> RunAs:
        """The account named ``owner``; NoAccount (400) when there is none or it is root's."""
        try:
            entry = pwd.getpwnam(owner)
        except (KeyError, ValueError):  # ValueError: a name with a NUL
            raise NoAccount(
                f"user {owner!r} has no system account on this machine, and jobs here run as the user who "
                "submits them; ask your admin to create the account (useradd) or to map Hub users to accounts"
            ) from None
        if entry.pw_uid == 0:
            raise NoAccount(f"user {owner!r} is root (uid 0); jobs never run as root: submit them as another user")
        if entry.pw_uid < uid_min():
            raise NoAccount(f"user {owner!r} is a system account (uid {entry.pw_uid}, below UID_MIN {uid_min()} of "
                            "/etc/login.defs); jobs run as people's accounts only")
        groups = tuple(sorted(set(os.getgrouplist(entry.pw_name, entry.pw_gid))))
        return cls(entry.pw_uid, entry.pw_gid, groups, entry.pw_name, entry.pw_dir)

    def environment(self) -> dict[str, str]:
        """The variables a login of this account has: who it is and where its home is."""
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name}

    def setpriv(self) -> list[str]:
        """argv prefix that runs a command as this account (util-linux ``setpriv``, no setuid binary).

        ``--inh-caps=-all``: nothing of root's capabilities is inheritable across the exec (the uid
        change already clears the permitted and effective sets).
        """
        groups = ["--groups", ",".join(str(g) for g in self.groups)] if self.groups else ["--clear-groups"]
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", *groups, "--inh-caps=-all", "--"]


def hand_over(folder: JobDir, run_as: RunAs) -> None:
    """Give a job's files to its account before it starts: ``code/``, ``outputs/`` (mode 0700) and its
    ``job.log`` and ``displays.jsonl`` (0600) become the owner's.

    The folder itself and ``run/`` stay the server's (0711 and 0700): a user who owned the folder could
    put links where the server (root) writes and reads its own files. Ownership is changed through
    directory descriptors, never following a link (``os.fwalk``), so the user's other processes cannot
    swap a folder for a link while it happens and get a file outside the job made theirs.
    """
    os.chmod(folder.root, 0o711)
    os.chmod(folder.run, 0o700)
    for path in (folder.log, folder.displays):
        path.touch()
        _own(path, run_as, 0o600)
    for top in (folder.code, folder.outputs):
        top.mkdir(exist_ok=True)
        _own(top, run_as, 0o700)
        for _root, dirs, files, dir_fd in os.fwalk(top, follow_symlinks=False):
            for name in dirs + files:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if (info.st_uid, info.st_gid) != (run_as.uid, run_as.gid):
                    os.chown(name, run_as.uid, run_as.gid, dir_fd=dir_fd, follow_symlinks=False)


def _own(path: Path, run_as: RunAs, mode: int) -> None:
    """``path``, a file or folder the server made (never a link), the account's, with ``mode``."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        kind = stat.S_IFMT(os.fstat(fd).st_mode)
        if kind not in (stat.S_IFDIR, stat.S_IFREG):
            raise OSError(f"{path} is neither a file nor a folder")
        os.fchown(fd, run_as.uid, run_as.gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)

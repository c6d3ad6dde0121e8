"""A warm interpreter: ``python -m jupyter_jobs_jobside.warm FD``, started ahead to run ONE job.

The local backend starts it before any job needs it (:mod:`jupyter_jobs.runner.warm`), with the
environment that shapes how Python starts (its ``PYTHON*``, locale, ``HOME``, ``TZ``, loader
variables: exactly those a job on this interpreter would have) and nothing of any job. It imports
what the job side needs (IPython, nbformat, nbclient, cloudpickle, the job-side modules: never a
user library, never CUDA), says ``ready`` on the socket ``FD`` and waits. The server's end of that
socket closing (the server stopped or died) ends it.

Given a job (one message: its environment, working folder, entry point and arguments, exit-status
file, the cgroups to join and the size of its private ``/dev/shm``, with the job's log as a passed
file descriptor) it does what the cold start's ``sh`` wrapper does, in the same order: writes its
pid beside the exit-status file, joins the job's cgroups, mounts a private ``/dev/shm`` in a mount
namespace of its own, then forks the job. The job (the child) gets exactly the job's environment
(plus what Python itself added to its own at start, as a cold interpreter adds it), its folder as
working directory and ``sys.path[0]``, the log as stdout and stderr, and default SIGTERM; it runs
the entry point as ``python -m`` runs it (``runpy``, as ``__main__``). The parent stays as the
process group leader, as the wrapper does: it outlives a cancelled job, and writes its exit status
(``128 + N`` when signal N killed it) even when nobody waits for it. It then exits: a warm
interpreter serves one job only.
"""
from __future__ import annotations

import gc
import json
import os
import signal
import socket
import sys

#: Imported before any job: what the job-side entry points need (with what IPython's shell imports only
#: when one is made, and for ``!cmd``), never a user library. Not nbclient: only notebooks of other kernels
#: than python3 use it, and it would add jupyter_client, pyzmq and tornado to every warm interpreter.
PRELOAD = ("IPython.core.interactiveshell", "IPython.core.displaypub", "IPython.core.completer",
           "IPython.core.magics", "IPython.core.oinspect", "IPython.core.application", "IPython.core.history",
           "IPython.utils._process_posix", "sqlite3", "nbformat", "cloudpickle", "jupyter_jobs_jobside.nbengine")
# Not the entry points themselves: runpy runs them as __main__, and warns when they were imported before.
_MAX_MESSAGE = 4 * 2**20
_stop = False


def _on_term(signum: int, frame: object) -> None:
    global _stop
    _stop = True  # as the wrapper's trap: a TERM before the job started means "do not start it"


def _stopped(exit_file: str) -> bool:
    """Whether the job was stopped: the TERM seen here, or the file the server writes before sending it."""
    return _stop or os.path.exists(f"{exit_file}.stop")


def _preload() -> list[str]:
    import importlib

    loaded = []
    for name in PRELOAD:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception:  # ImportError or a broken install: the job then fails as a cold one would
            pass
    if "nbformat" in loaded:  # nbformat builds its notebook validator at first use (a tenth of a second)
        try:
            nbformat = sys.modules["nbformat"]
            nbformat.validate(nbformat.v4.new_notebook())
        except Exception:
            pass
    return loaded


def _added_at_start() -> dict[str, str]:
    """What Python added to its own environment while it started (PEP 538's LC_CTYPE coercion): a cold
    job's interpreter, started with the same locale variables, adds the same."""
    try:
        with open("/proc/self/environ", "rb") as handle:
            raw = handle.read()
    except OSError:
        return {}
    given = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            given[os.fsdecode(key)] = os.fsdecode(value)
    return {k: v for k, v in os.environ.items() if given.get(k) != v}


def _receive(sock: socket.socket) -> tuple[dict, int] | None:
    """The job (and its log's descriptor), or None when the server's end closed."""
    data, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, 1)
    if not data or not fds:
        for fd in fds:
            os.close(fd)
        return None
    return json.loads(data), fds[0]


def _say(text: str) -> None:
    os.write(2, f"jupyter-jobs: {text}\n".encode())


def _confine(job: dict) -> str:
    """Join the job's cgroups and mount its private /dev/shm; why not, or ''."""
    for path in job.get("join", []):
        try:
            with open(path, "w") as handle:
                handle.write("0")
        except OSError:
            return f"could not join its cgroup ({path})"
    if job.get("shm"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        ms_rec, ms_private, ms_nosuid, ms_nodev, clone_newns = 0x4000, 0x40000, 0x2, 0x4, 0x20000
        if (libc.unshare(clone_newns) != 0
                or libc.mount(b"none", b"/", None, ms_rec | ms_private, None) != 0
                or libc.mount(b"jupyter-job-shm", b"/dev/shm", b"tmpfs", ms_nosuid | ms_nodev,
                              f"size={job['shm']},mode=1777".encode()) != 0):
            return "could not mount a private /dev/shm"
    return ""


def _end(exit_file: str, status: int) -> None:
    with open(exit_file, "w") as handle:
        handle.write(str(status))
    os._exit(status)


def _pwd(given: str | None) -> str:
    """PWD as ``sh`` (dash) exports it to the cold job: the one it was given when that names this
    folder, else the folder's physical path."""
    if given and given.startswith("/"):
        try:
            if os.path.samestat(os.stat(given), os.stat(".")):
                return given
        except OSError:
            pass
    return os.getcwd()


def _run_job(job: dict, added: dict[str, str]) -> None:
    """In the forked child: become the job's ``python -m MODULE ARGS`` and run it."""
    import importlib
    import runpy

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if _stopped(job["exit_file"]):  # a TERM that came while forking reached neither the check nor this child
        os._exit(143)
    os.environ.clear()
    os.environ.update({**added, **job["env"]})
    os.chdir(job["cwd"])
    os.environ["PWD"] = _pwd(os.environ.get("PWD"))
    sys.path[0] = os.getcwd()
    importlib.invalidate_caches()
    module = importlib.util.find_spec(job["module"])
    sys.argv = [module.origin if module and module.origin else job["module"], *job["args"]]
    runpy.run_module(job["module"], run_name="__main__", alter_sys=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=int(argv[0]))
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    loaded = _preload()
    added = _added_at_start()
    sock.send(json.dumps({"ready": os.getpid(), "preloaded": loaded}).encode())
    try:
        received = _receive(sock)
    except (OSError, ValueError):
        received = None
    sock.close()
    if received is None:  # the pool closed, or the server is gone: nothing to run
        return 0
    job, log = received
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    exit_file = job["exit_file"]
    with open(f"{exit_file}.pid", "w") as handle:
        handle.write(str(os.getpid()))
    why = _confine(job)
    if why and not _stopped(exit_file):
        _say(why)
        _end(exit_file, 125)
    if _stopped(exit_file):
        _end(exit_file, 143)
    # What was imported ahead is never collected: frozen, the job's collections (and its interpreter's at
    # exit) do not walk it, so the job does not copy the pages it shares with this process (a trivial job
    # ends in a quarter of the time). Python's gc.freeze documentation recommends it before fork().
    gc.freeze()
    child = os.fork()
    if child == 0:
        _run_job(job, added)
        return 0  # the entry point returned without sys.exit: status 0, as for python -m
    while True:
        _, status = os.waitpid(child, 0)
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            break
    _end(exit_file, os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())

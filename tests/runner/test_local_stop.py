"""A stop that lands while a local job is still being started: the job is not started, and it ends as
stopped (143), never as a failed set-up (125) nor killed after the grace (137). Both ways a local job
starts, the shell wrapper and a warm interpreter, with real processes and real signals.

The server writes ``<exit-status>.stop`` before it sends TERM (``LocalBackend.stop``); these tests put
the wrapper where a signal alone would be lost, and check that the file is read.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jupyter_jobs import jobside
from jupyter_jobs.runner.local import _WRAPPER
from jupyter_jobs.runner.warm import WarmPool


def _wrapper(tmp_path: Path, command: str, *join: str) -> subprocess.Popen:
    return subprocess.Popen(["/bin/sh", "-c", _WRAPPER, "jupyter-job", command, str(tmp_path / "exit-status"), "",
                             *join], cwd=tmp_path, start_new_session=True, stderr=subprocess.PIPE, text=True)


def _blocked_in_open(pid: int) -> bool:
    return Path(f"/proc/{pid}/wchan").read_text() in ("wait_for_partner", "fifo_open")  # Linux's names for it


def test_a_term_that_interrupts_the_set_up_ends_the_job_as_stopped(tmp_path):
    # A cgroup file that blocks (a FIFO with no reader) holds the wrapper in its set-up: TERM
    # interrupts that write, which without the stop check reads as "could not join its cgroup" (125).
    fifo = tmp_path / "cgroup.procs"
    os.mkfifo(fifo)
    proc = _wrapper(tmp_path, "touch ran", str(fifo))
    deadline = time.monotonic() + 10
    while not _blocked_in_open(proc.pid):
        assert time.monotonic() < deadline, "the wrapper never reached its set-up"
        time.sleep(0.02)
    (tmp_path / "exit-status.stop").touch()
    os.killpg(proc.pid, signal.SIGTERM)
    try:  # the signal ends the blocked open (a reader now would let the write succeed instead)
        _, stderr = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:  # the open was restarted after the signal: let it through
        with open(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK), closefd=True):
            _, stderr = proc.communicate(timeout=10)
    assert (proc.returncode, (tmp_path / "exit-status").read_text()) == (143, "143"), stderr
    assert "could not join" not in stderr
    assert not (tmp_path / "ran").exists()


def test_a_stop_whose_signal_came_before_the_job_existed_is_not_lost(tmp_path):
    # The TERM landed after the wrapper's last look at its trap and before it forked the job: only
    # the file says so. Without reading it the job would run until the SIGKILL after the grace (137).
    (tmp_path / "exit-status.stop").touch()
    proc = _wrapper(tmp_path, "touch ran; sleep 300")
    _, stderr = proc.communicate(timeout=10)
    assert (proc.returncode, (tmp_path / "exit-status").read_text()) == (143, "143"), stderr
    assert not (tmp_path / "ran").exists()


def test_without_a_stop_the_wrapper_runs_the_job_and_records_its_status(tmp_path):
    proc = _wrapper(tmp_path, "touch ran; exit 7")
    proc.communicate(timeout=10)
    assert (proc.returncode, (tmp_path / "exit-status").read_text()) == (7, "7")
    assert (tmp_path / "ran").exists()


@pytest.mark.parametrize("stopped", [True, False])
async def test_a_warm_interpreter_reads_the_stop_before_it_runs_the_job(tmp_path, stopped):
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(jobside.install(tmp_path / "data")), "PYTHONUNBUFFERED": "1"}
    pool = WarmPool(1, 1)
    try:
        pool.keep(sys.executable, env)
        exit_file = tmp_path / "exit-status"
        if stopped:
            (tmp_path / "exit-status.stop").touch()
        # The job: python -m zipfile, which makes ran.zip in its folder if it runs.
        (tmp_path / "input.txt").write_text("x")
        job = {"env": env, "cwd": str(tmp_path), "module": "zipfile", "args": ["-c", "ran.zip", "input.txt"],
               "shm": "", "exit_file": str(exit_file), "join": []}
        with open(tmp_path / "job.log", "ab") as log:
            proc = await pool.take(sys.executable, env, job, log.fileno(), wait=True)
        assert proc is not None, "no warm interpreter took the job"
        returncode = await asyncio.to_thread(proc.wait, 30)
    finally:
        pool.close()
    log = (tmp_path / "job.log").read_text()
    if stopped:
        assert (returncode, exit_file.read_text()) == (143, "143"), log
        assert not (tmp_path / "ran.zip").exists()
    else:
        assert (returncode, exit_file.read_text()) == (0, "0"), log
        assert (tmp_path / "ran.zip").exists()

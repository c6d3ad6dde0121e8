"""Datasets are read-only for local and Slurm jobs, as in a container: as root (a mount namespace), and as any
other user (user namespaces), who keeps their own uid and cannot remount the dataset writable."""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from jupyter_jobs.runner import environment
from jupyter_jobs.runner.environment import read_only_datasets

NOBODY = 65534


@pytest.fixture
def dataset():
    base = Path(tempfile.mkdtemp(prefix="jj-dataset-", dir="/tmp"))  # reachable by another user (tmp_path is not)
    data = base / "data"
    data.mkdir()
    (data / "f.txt").write_text("pixels\n")
    os.chmod(base, 0o755)
    os.chmod(data, 0o777)  # writable by anyone: only the mount keeps the job out
    yield data
    shutil.rmtree(base)


def test_as_root_the_dataset_is_read_only_and_the_rest_is_not(dataset, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (CI runs as root)")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    argv = read_only_datasets(f"cat {dataset}/f.txt; echo x > {dataset}/new; echo y > {scratch}/ok", [str(dataset)])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert "pixels" in done.stdout and "Read-only file system" in done.stderr
    assert not (dataset / "new").exists() and (scratch / "ok").read_text() == "y\n"


def test_as_another_user_the_job_keeps_its_uid_and_cannot_remount(dataset, monkeypatch):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to become another user")
    monkeypatch.setattr(environment.os, "geteuid", lambda: NOBODY)  # the argv a server running as nobody builds
    monkeypatch.setattr(environment.os, "getegid", lambda: NOBODY)
    command = f"id -u; cat {dataset}/f.txt; echo x > {dataset}/new; mount -o remount,bind,rw {dataset}; echo x > {dataset}/new"
    argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            *read_only_datasets(command, [str(dataset)])]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.stdout.split() == [str(NOBODY), "pixels"], done
    assert done.stderr.count("Read-only file system") == 2, done.stderr
    assert not (dataset / "new").exists()


def test_without_datasets_the_command_runs_as_it_is():
    assert read_only_datasets("echo hi", []) == ["/bin/sh", "-c", "echo hi"]

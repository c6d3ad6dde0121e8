"""Warm interpreters: submit -> Succeeded of a trivial notebook job and a trivial ``%%job`` cell on the
local backend, warm and cold, against jupyter-scheduler and raw papermill on the same notebook, all
in one run (``bench/run.py --parts warm``); and what an idle warm interpreter costs in memory.

* jupyter-jobs, two servers side by side: one as shipped (``LocalBackend.warm_interpreters = 1``),
  one with ``warm_interpreters = 0``. Each job is sent as the magics send it (files uploaded by
  content hash with :class:`~jupyter_jobs.kernel.client.JobsClient`, the kernel's environment
  envelope, ``env.python: auto``): ``%job run hello.ipynb`` runs ``python -m
  jupyter_jobs_jobside.notebook``, ``%%job`` runs ``python -m jupyter_jobs_jobside.cell``. The clock
  runs from the upload to the end of ``GET /logs?follow=1`` (which returns when the job has ended),
  and the job must then read Succeeded.
* jupyter-scheduler (from PyPI, in a virtual environment of its own): ``POST /scheduler/jobs`` of the
  same notebook (``output_formats: [ipynb]``, as in shared/notes/jupyter-scheduler.md), then ``GET``
  every 20 ms (it has no way to wait) until COMPLETED.
* papermill: ``papermill hello.ipynb out.ipynb`` as a command, the way it is run by hand.

The kinds alternate, one of each per round, after one warm-up round.
"""
from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: One round, in this order: each server's jobs are seconds apart (a user's cells are), so the warm interpreter
#: that replaced the last one has finished importing. After the rounds, "warm cell, back-to-back": a cell sent
#: the moment the one before it ended (with one warm interpreter per environment, its replacement is still
#: importing then, and a cell does not wait for it: it starts cold), 3 s between pairs.
ROUND = ("warm notebook", "cold notebook", "jupyter-scheduler", "warm cell", "cold cell", "papermill")
KINDS = (*ROUND, "warm cell, back-to-back")
NOTEBOOK = {
    "cells": [{"cell_type": "code", "execution_count": None, "id": "hello", "metadata": {}, "outputs": [],
               "source": "print(\"hello\")"}],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
    "nbformat": 4, "nbformat_minor": 5,
}
CELL = "print(\"hello\")\n"


def ensure_peer_venv(path: Path) -> Path:
    """A virtual environment with jupyter-scheduler, papermill and ipykernel from PyPI (made once)."""
    python = path / "bin" / "python"
    probe = [str(python), "-c", "import jupyter_scheduler, papermill, ipykernel"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return path
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "jupyter-scheduler", "papermill", "ipykernel"], check=True)
    return path


class Peer:
    """A `jupyter server` of the peer venv with jupyter-scheduler, on 127.0.0.1, in folders of its own."""

    def __init__(self, venv: Path, work: Path, port: int) -> None:
        self.port, self.token, self.root = port, secrets.token_hex(8), work / "root"
        for folder in (self.root, work / "data", work / "config", work / "runtime"):
            folder.mkdir(parents=True)
        (self.root / "hello.ipynb").write_text(json.dumps(NOTEBOOK))
        env = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1", "JUPYTER_DATA_DIR": str(work / "data"),
               "JUPYTER_CONFIG_DIR": str(work / "config"), "JUPYTER_RUNTIME_DIR": str(work / "runtime")}
        env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen(
            [str(venv / "bin" / "jupyter"), "server", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--allow-root",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}"],
            env=env, stdout=subprocess.DEVNULL, stderr=open(work / "server.log", "wb"), start_new_session=True)
        try:
            for _ in range(600):
                try:
                    self.call("GET", "jobs/count")
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                raise RuntimeError(f"jupyter-scheduler's server did not start; see {work / 'server.log'}")
            self.env_name = self.call("GET", "runtime_environments")[0]["name"]
        except BaseException:
            self.stop()  # never leave it running
            raise

    def call(self, method: str, path: str, body: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request(method, f"/scheduler/{path}", body=json.dumps(body) if body is not None else None,
                         headers={"Authorization": f"token {self.token}"})
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        if response.status >= 400:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data) if data else None

    def run(self) -> float:
        start = time.perf_counter()
        job_id = self.call("POST", "jobs", {"input_uri": "hello.ipynb", "runtime_environment_name": self.env_name,
                                            "name": "hello", "output_formats": ["ipynb"]})["job_id"]
        while True:
            job = self.call("GET", f"jobs/{job_id}")
            # A new job reads STOPPED until its process marks it IN_PROGRESS (upstream #451).
            if job["status"] in ("COMPLETED", "FAILED") or (job["status"] == "STOPPED" and job.get("start_time")):
                break
            time.sleep(0.02)
        elapsed = time.perf_counter() - start
        if job["status"] != "COMPLETED":
            raise RuntimeError(f"jupyter-scheduler job {job_id}: {job['status']} {job.get('status_message')}")
        return elapsed

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


class Ours:
    """One jupyter-jobs server, submitting as ``%job run`` and ``%%job`` do."""

    def __init__(self, server, work: Path) -> None:
        from jupyter_jobs.kernel.client import JobsClient
        from jupyter_jobs.kernel.environment import envelope

        self.server = server
        self.client = JobsClient(f"http://127.0.0.1:{server.port}/", server.token)
        self.envelope = envelope(self.client)  # the kernel's Python: computed by the magic, not by the job
        (work / "nb").mkdir(parents=True, exist_ok=True)
        self.notebook = work / "nb" / "hello.ipynb"
        self.notebook.write_text(json.dumps(NOTEBOOK))
        self.cell = work / "nb" / "_jj_cell.py"
        self.cell.write_text(CELL)

    def run(self, what: str) -> float:
        if what == "notebook":
            spec = {"name": "hello", "cmd": 'python -m jupyter_jobs_jobside.notebook hello.ipynb '
                    '"$JOB_OUTPUTS/hello.executed.ipynb"', "outputs": ["hello.executed.ipynb"], "env": {"python": "auto"}}
            files = {"hello.ipynb": self.notebook}
        else:
            spec = {"name": "cell", "cmd": "python -m jupyter_jobs_jobside.cell",
                    "env": {"vars": {"JJ_OUT": ""}, "python": "auto"}}
            files = {"_jj_cell.py": self.cell}
        start = time.perf_counter()
        job = self.client.submit(spec, self.client.upload(files), self.envelope)
        self.server.call("GET", f"jobs/{job['id']}/logs?follow=1")  # returns when the job has ended
        elapsed = time.perf_counter() - start
        done = self.client.get(job["id"])
        if done["status"] != "Succeeded":
            raise RuntimeError(f"{what} job {job['id']}: {done['message']}")
        return elapsed


def papermill(venv: Path, work: Path) -> float:
    folder = work / "papermill"
    folder.mkdir(exist_ok=True)
    (folder / "hello.ipynb").write_text(json.dumps(NOTEBOOK))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    start = time.perf_counter()
    subprocess.run([str(venv / "bin" / "papermill"), "-k", "python3", "hello.ipynb", "out.ipynb"], cwd=folder,
                   check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def warm_memory(server_pid: int) -> list[dict]:
    """RSS and PSS (its share of pages shared with others) of each idle warm interpreter of a server, once
    done importing (its RSS has not changed for a second)."""
    last, deadline = None, time.monotonic() + 60
    while time.monotonic() < deadline:
        found = _warm_memory(server_pid)
        if found and found == last:
            return found
        last = found
        time.sleep(1.0)
    return last or []


def _warm_memory(server_pid: int) -> list[dict]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if b"jupyter_jobs_jobside.warm" not in (entry / "cmdline").read_bytes():
                continue
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) != server_pid:
                continue
            status = dict(line.split(":", 1) for line in (entry / "status").read_text().splitlines() if ":" in line)
            rollup = (entry / "smaps_rollup").read_text()
        except (OSError, ValueError):
            continue
        pss = next((int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), 0)
        found.append({"pid": int(entry.name), "rss_mib": int(status["VmRSS"].split()[0]) / 1024, "pss_mib": pss / 1024})
    return found


def bench_warm(make_server, peer_venv: Path, rounds: int) -> dict:
    """Run every kind ``rounds`` times, alternating; the figures for warm.json."""
    from run import free_port

    work = Path(tempfile.mkdtemp(prefix="jj-bench-warm-"))
    peer_venv = ensure_peer_venv(peer_venv)
    warm_server = make_server(work / "warm", [])
    cold_server = make_server(work / "cold", ["--LocalBackend.warm_interpreters=0"])
    peer = None
    try:
        peer = Peer(peer_venv, work / "peer", free_port())
        warm, cold = Ours(warm_server, work / "warm"), Ours(cold_server, work / "cold")
        runs = {
            "warm notebook": lambda: warm.run("notebook"), "warm cell": lambda: warm.run("cell"),
            "cold notebook": lambda: cold.run("notebook"), "cold cell": lambda: cold.run("cell"),
            "jupyter-scheduler": peer.run, "papermill": lambda: papermill(peer_venv, work),
        }
        for kind in ROUND:  # warm-up: first imports, the peer's first job (18 s), blob uploads
            runs[kind]()
        times: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for _ in range(rounds):
            for kind in ROUND:
                times[kind].append(runs[kind]())
        for _ in range(rounds):
            time.sleep(3.0)
            warm.run("cell")
            times["warm cell, back-to-back"].append(warm.run("cell"))
        memory = warm_memory(warm_server.proc.pid)
    finally:
        for server in (warm_server, cold_server, peer):
            if server is not None:
                server.stop()
        shutil.rmtree(work, ignore_errors=True)
    medians = {kind: statistics.median(values) for kind, values in times.items()}
    ratios = {}
    for ours in ("warm notebook", "warm cell"):
        for base in ("jupyter-scheduler", "papermill", "cold notebook" if "notebook" in ours else "cold cell"):
            ratios[f"{base} / {ours}"] = medians[base] / medians[ours]
    return {
        "rounds": rounds, "seconds": times, "median_s": medians,
        "p95_s": {k: sorted(v)[int(0.95 * (len(v) - 1))] for k, v in times.items()},
        "ratios": ratios, "idle_warm_interpreters": memory,
        "versions": _versions(peer_venv),
    }


def _versions(venv: Path) -> dict:
    code = ("import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
            "('jupyter_scheduler', 'papermill', 'ipykernel', 'nbclient', 'jupyter_server')}))")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def plot(result: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 4.8))
    kinds = list(KINDS)
    ax.boxplot([result["seconds"][k] for k in kinds], tick_labels=[k.replace(" ", "\n", 1) for k in kinds])
    for i, kind in enumerate(kinds, start=1):
        ax.annotate(f"{result['median_s'][kind]:.2f} s", (i, result["median_s"][kind]), textcoords="offset points",
                    xytext=(18, 0), fontsize=8)
    ax.axhline(0.4, color="tab:green", linestyle="--", linewidth=1, label="target 0.4 s")
    ax.set_ylabel("submit → Succeeded, s")
    ax.set_yscale("log")
    ax.legend(loc="upper left")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)

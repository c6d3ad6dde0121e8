"""What a job's writable working dir costs on a 1 GB project (issue 12), against a raw ``cp -r`` of it.

A job's ``code/`` is its own copy of what it was shipped, made when it is submitted (from the
content-addressed blob store, ``BlobStore.materialise``); the shipped files stay in the store, so a
rerun gets them as they were sent. Nothing is copied when the job starts. Measured, alternating with
the baseline, over REST on a real ``jupyter server``:

* submit → Succeeded of ``true`` with the project's manifest (its blobs already uploaded);
* a rerun of that job (its files again from the store);
* the same job with no files (what the copy adds is the difference);
* ``cp -r`` of the project into a fresh folder on the same disk.
"""
from __future__ import annotations

import hashlib
import http.client
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

MIB = 2**20


def make_project(root: Path, total_mib: int, files: int) -> dict[str, Path]:
    """``files`` files of distinct content, ``total_mib`` MiB in all (no two blobs alike)."""
    block = hashlib.sha256(b"seed").digest() * (MIB // 32)
    per_file = total_mib // files
    found = {}
    for index in range(files):
        path = root / f"pkg{index % 10}" / f"part{index}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            for chunk in range(per_file):
                handle.write(index.to_bytes(4, "big") + chunk.to_bytes(4, "big") + block[8:])
        found[path.relative_to(root).as_posix()] = path
    return found


def upload(server, files: dict[str, Path]) -> dict[str, str]:
    manifest = {}
    for name, path in files.items():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        manifest[name] = digest
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        with open(path, "rb") as body:
            conn.request("PUT", f"/jupyter-jobs/api/blobs/{digest}", body=body,
                         headers={"Authorization": f"token {server.token}", "Content-Length": str(path.stat().st_size)})
            conn.getresponse().read()
        conn.close()
    return manifest


def until_done(server, job: dict) -> dict:
    server.call("GET", f"jobs/{job['id']}/logs?follow=1")
    done = server.call("GET", f"jobs/{job['id']}")
    assert done["status"] == "Succeeded", done
    return done


def bench_files(server, total_mib: int = 1024, files: int = 200, rounds: int = 3) -> dict:
    work = Path(tempfile.mkdtemp(prefix="jj-files-bench-"))
    try:
        project = make_project(work / "project", total_mib, files)
        manifest = upload(server, project)
        seconds: dict[str, list[float]] = {"submit with 1 GiB": [], "rerun with 1 GiB": [], "no files": [],
                                           "cp -r of 1 GiB": []}
        spec = {"name": "files", "cmd": "true"}
        for index in range(rounds):
            start = time.perf_counter()
            job = until_done(server, server.call("POST", "jobs", {"spec": spec, "files": manifest}))
            seconds["submit with 1 GiB"].append(time.perf_counter() - start)
            start = time.perf_counter()
            until_done(server, server.call("POST", f"jobs/{job['id']}/rerun", {"overrides": {}}))
            seconds["rerun with 1 GiB"].append(time.perf_counter() - start)
            start = time.perf_counter()
            until_done(server, server.call("POST", "jobs", spec))
            seconds["no files"].append(time.perf_counter() - start)
            target = work / f"copy{index}"
            subprocess.run(["sync"], check=True)
            start = time.perf_counter()
            subprocess.run(["cp", "-r", str(work / "project"), str(target)], check=True)
            seconds["cp -r of 1 GiB"].append(time.perf_counter() - start)
            shutil.rmtree(target)
            for old in (job["id"], job["id"] + 1):
                server.call("DELETE", f"jobs/{old}")
        median = {k: statistics.median(v) for k, v in seconds.items()}
        return {
            "project": {"mib": total_mib, "files": files}, "rounds": rounds, "seconds": seconds, "median_s": median,
            "ratios": {
                "(submit - no files) / cp -r": (median["submit with 1 GiB"] - median["no files"]) / median["cp -r of 1 GiB"],
                "(rerun - no files) / cp -r": (median["rerun with 1 GiB"] - median["no files"]) / median["cp -r of 1 GiB"],
            },
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def plot(result: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["seconds"])
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.boxplot([result["seconds"][n] for n in names], orientation="horizontal", tick_labels=names)
    ax.set_xlabel("seconds")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)

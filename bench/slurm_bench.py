"""Slurm backend figures against raw `sbatch --wrap` of the same command, measured in the same run.

Both sides learn that a job ended by polling Slurm at the same interval (`POLL`).
"""
from __future__ import annotations

import statistics
import subprocess
import time

POLL = 0.2
CMD = "true"


def _state(slurm_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", slurm_id, "-o", "%T"], capture_output=True, text=True)
    return out.stdout.strip()


def raw_submit() -> str:
    return subprocess.run(["sbatch", "--parsable", "-o", "/dev/null", "--mem=100M", "--wrap", CMD],
                          capture_output=True, text=True, check=True).stdout.strip()


def raw_once() -> float:
    start = time.perf_counter()
    slurm_id = raw_submit()
    while _state(slurm_id) not in ("COMPLETED", "FAILED", "CANCELLED"):
        time.sleep(POLL)
    return time.perf_counter() - start


def ours_once(server) -> float:
    start = time.perf_counter()
    job = server.call("POST", "jobs", {"name": "bench", "cmd": CMD})
    server.call("GET", f"jobs/{job['id']}/logs?follow=1")
    assert server.call("GET", f"jobs/{job['id']}")["status"] == "Succeeded"
    return time.perf_counter() - start


def bench_slurm(server, count: int, throughput_jobs: int) -> dict:
    ours_once(server)
    raw_once()
    ours, raw = [], []
    for _ in range(count):
        ours.append(ours_once(server))
        raw.append(raw_once())
    start = time.perf_counter()
    ids = [server.call("POST", "jobs", {"name": "tp", "cmd": CMD})["id"] for _ in range(throughput_jobs)]
    for job_id in ids:
        server.call("GET", f"jobs/{job_id}/logs?follow=1")
    ours_tp = time.perf_counter() - start
    assert {server.call("GET", f"jobs/{i}")["status"] for i in ids} == {"Succeeded"}
    start = time.perf_counter()
    slurm_ids = [raw_submit() for _ in range(throughput_jobs)]
    for slurm_id in slurm_ids:
        while _state(slurm_id) not in ("COMPLETED", "FAILED", "CANCELLED"):
            time.sleep(POLL)
    raw_tp = time.perf_counter() - start
    return {
        "n": count, "poll_seconds": POLL, "jupyter_jobs_s": ours, "sbatch_s": raw,
        "summary": {
            "succeeded_median_ms": {"jupyter_jobs": statistics.median(ours) * 1000, "sbatch": statistics.median(raw) * 1000},
            "succeeded_ratio": statistics.median(ours) / statistics.median(raw),
            "throughput_jobs_per_s": {"jupyter_jobs": throughput_jobs / ours_tp, "sbatch": throughput_jobs / raw_tp},
            "throughput_ratio_sbatch_over_jupyter_jobs": ours_tp / raw_tp, "throughput_jobs": throughput_jobs,
        },
    }


def plot(ax_latency, ax_tp, result: dict) -> None:
    ax_latency.boxplot([[v * 1000 for v in result["jupyter_jobs_s"]], [v * 1000 for v in result["sbatch_s"]]],
                       tick_labels=["jupyter-jobs\n(REST → Succeeded)", "sbatch --wrap\n(→ COMPLETED)"])
    ax_latency.set_ylabel("ms")
    ax_latency.set_title(f"Slurm job `{CMD}` (n={result['n']}, both polling every {POLL}s)")
    tp = result["summary"]["throughput_jobs_per_s"]
    ax_tp.bar(["jupyter-jobs", "sbatch --wrap"], [tp["jupyter_jobs"], tp["sbatch"]], color=["tab:blue", "tab:gray"])
    ax_tp.set_ylabel("jobs / s")
    ax_tp.set_title(f"{result['summary']['throughput_jobs']} jobs submitted at once")

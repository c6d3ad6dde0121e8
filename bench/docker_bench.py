"""Docker backend figures, against raw `docker run --rm` of the same image and command, same run.

* submit → first log line, and submit → Succeeded, of `echo hello` (alternating with the baseline,
  so both see the same noise);
* throughput of N trivial jobs with 2 running at a time, against N `docker run --rm`, 2 at a time.
"""
from __future__ import annotations

import http.client
import json
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

IMAGE = "jupyter-jobs/base:bookworm"
CMD = "echo hello"


def ours_once(server) -> tuple[float, float]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    start = time.perf_counter()
    job = server.call("POST", "jobs", {"name": "bench", "cmd": CMD}, conn)
    conn.request("GET", f"/jupyter-jobs/api/jobs/{job['id']}/logs?follow=1",
                 headers={"Authorization": f"token {server.token}"})
    response = response_lines = conn.getresponse()
    first = None
    while True:
        line = response_lines.readline()
        if not line:
            break
        if first is None and line.strip() == b"hello":
            first = time.perf_counter() - start
    done = time.perf_counter() - start
    response.close()
    status = server.call("GET", f"jobs/{job['id']}", conn=conn)["status"]
    conn.close()
    assert status == "Succeeded" and first is not None, status
    return first, done


def raw_once(docker: str) -> tuple[float, float]:
    start = time.perf_counter()
    proc = subprocess.Popen([docker, "run", "--rm", "--network", "none", IMAGE, "sh", "-c", CMD],
                            stdout=subprocess.PIPE)
    line = proc.stdout.readline()
    first = time.perf_counter() - start
    proc.wait()
    assert line.strip() == b"hello" and proc.returncode == 0
    return first, time.perf_counter() - start


def bench_docker(server, count: int, throughput_jobs: int, docker: str = "docker") -> dict:
    ours_once(server)
    raw_once(docker)  # warm-up both
    ours, raw = [], []
    for _ in range(count):
        ours.append(ours_once(server))
        raw.append(raw_once(docker))
    start = time.perf_counter()
    ids = [server.call("POST", "jobs", {"name": "tp", "cmd": CMD})["id"] for _ in range(throughput_jobs)]
    for job_id in ids:
        server.call("GET", f"jobs/{job_id}/logs?follow=1")
    ours_tp = time.perf_counter() - start
    statuses = {server.call("GET", f"jobs/{i}")["status"] for i in ids}
    assert statuses == {"Succeeded"}, statuses
    start = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: raw_once(docker), range(throughput_jobs)))
    raw_tp = time.perf_counter() - start

    def med(pairs, index):
        return statistics.median(p[index] for p in pairs)

    return {
        "n": count,
        "first_line_s": {"jupyter_jobs": [p[0] for p in ours], "docker_run": [p[0] for p in raw]},
        "succeeded_s": {"jupyter_jobs": [p[1] for p in ours], "docker_run": [p[1] for p in raw]},
        "summary": {
            "first_line_median_ms": {"jupyter_jobs": med(ours, 0) * 1000, "docker_run": med(raw, 0) * 1000},
            "succeeded_median_ms": {"jupyter_jobs": med(ours, 1) * 1000, "docker_run": med(raw, 1) * 1000},
            "first_line_ratio": med(ours, 0) / med(raw, 0),
            "succeeded_ratio": med(ours, 1) / med(raw, 1),
            "throughput_jobs_per_s": {"jupyter_jobs": throughput_jobs / ours_tp, "docker_run": throughput_jobs / raw_tp},
            "throughput_ratio_docker_run_over_jupyter_jobs": ours_tp / raw_tp,
            "throughput_jobs": throughput_jobs, "concurrency": 2,
        },
    }


def plot(ax_latency, ax_tp, result: dict) -> None:
    s = result["first_line_s"], result["succeeded_s"]
    data = [[v * 1000 for v in s[0]["jupyter_jobs"]], [v * 1000 for v in s[0]["docker_run"]],
            [v * 1000 for v in s[1]["jupyter_jobs"]], [v * 1000 for v in s[1]["docker_run"]]]
    ax_latency.boxplot(data, tick_labels=["jj\nfirst line", "docker run\nfirst line", "jj\nSucceeded", "docker run\nexit"])
    ax_latency.set_ylabel("ms")
    ax_latency.set_title(f"container job `{CMD}` (n={result['n']})")
    tp = result["summary"]["throughput_jobs_per_s"]
    ax_tp.bar(["jupyter-jobs", "docker run --rm"], [tp["jupyter_jobs"], tp["docker_run"]], color=["tab:blue", "tab:gray"])
    ax_tp.set_ylabel("jobs / s")
    ax_tp.set_title(f"{result['summary']['throughput_jobs']} container jobs, 2 at a time")


__all__ = ["bench_docker", "plot", "json"]

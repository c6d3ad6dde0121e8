"""jupyter-jobs benchmarks, one command: ``python bench/run.py [--jobs 100]``.

Measured in one run, against a baseline taken in the same run (these machines are noisy):

* submit-to-Succeeded latency of trivial jobs (``true``) submitted one at a time over REST to a real
  ``jupyter server``, waiting as a user does (the follow log stream ends when the job does),
  against ``subprocess.run("true", shell=True)``;
* throughput of N trivial jobs submitted at once (the pool runs one per CPU) against N
  ``subprocess.run`` calls with the same concurrency;
* job-list pages at 100,000 jobs (first page, a deep cursor page, filters, text search).

* with ``--docker`` (default when a Docker daemon answers): the Docker backend against raw
  ``docker run --rm`` (see ``docker_bench.py``);
* with ``--slurm`` (default when ``SLURM_CONF`` is set): the Slurm backend against ``sbatch --wrap``
  (see ``slurm_bench.py``);
* with ``--env`` (default: on): Python environments (``env.python``): a cold build of a lock against
  ``uv pip install`` of it, a warm job against the same job with ``env.python: none``, and (with Docker)
  an environment image against ``docker build`` of the equivalent Dockerfile (see ``env_bench.py``).

* with ``--parts files``: what a job's writable working dir costs on a 1 GiB project (submit and rerun),
  against ``cp -r`` of it (see ``files_bench.py``).

* with ``--parts live``: in a real Lab and Chromium, the time from a status change on the server to the Jobs
  panel's row showing it, and the HTTP requests an idle Lab makes per minute (see ``live_bench.py``).

* with ``--parts render``: in a real Lab and Chromium, the Jobs panel's first render of 1,000 jobs, against
  plain ``<tr>`` rows of the same data and ``fetch()`` of its pages (see ``render_bench.py``).

* with ``--parts warm``: warm interpreters, a trivial notebook job and ``%%job`` cell warm and cold,
  against jupyter-scheduler and raw papermill on the same notebook (see ``warm_bench.py``).

Writes ``bench/results/<name>/results.json`` and ``plots.png`` (``docker.png``, ``slurm.png`` and
``env.png`` with their ``.json`` for the others). ``--parts`` runs some of them only.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, work: Path, backend: str = "local", extra: list[str] | None = None) -> None:
        self.port, self.token = free_port(), secrets.token_hex(8)
        env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(work / "rt"), "JUPYTER_CONFIG_DIR": str(work / "cfg")}
        (work / "root").mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={self.port}", f"--IdentityProvider.token={self.token}", "--allow-root",
             f"--ServerApp.root_dir={work / 'root'}", f"--JobManager.data_dir={work / 'data'}",
             "--Cluster.gpus=0", f"--JobManager.backend={backend}", "--ServerApp.log_level=WARN", *(extra or [])],
            env=env, stdout=subprocess.DEVNULL, stderr=open(work / "server.log", "wb"), start_new_session=True)
        for _ in range(300):
            try:
                self.call("GET", "config")
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def call(self, method: str, path: str, body: dict | None = None, conn=None):
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        conn.request(method, f"/jupyter-jobs/api/{path}", body=json.dumps(body) if body is not None else
                     (b"" if method == "POST" else None), headers={"Authorization": f"token {self.token}"})
        response = conn.getresponse()
        data = response.read()
        if own:
            conn.close()
        if response.status >= 400:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
        return json.loads(data) if response.getheader("Content-Type", "").startswith("application/json") else data

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def run_job(server: Server, conn) -> tuple[float, dict]:
    start = time.perf_counter()
    job = server.call("POST", "jobs", {"name": "bench", "cmd": "true"}, conn)
    server.call("GET", f"jobs/{job['id']}/logs?follow=1", conn=conn)  # returns when the job has ended
    elapsed = time.perf_counter() - start
    return elapsed, server.call("GET", f"jobs/{job['id']}", conn=conn)


def bench_latency(server: Server, count: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    run_job(server, conn)  # warm-up
    ours, phases = [], {"queued": [], "preparing": [], "running": []}
    for _ in range(count):
        elapsed, job = run_job(server, conn)
        assert job["status"] == "Succeeded", job
        ours.append(elapsed)
        for key in phases:
            phases[key].append(job["durations"][key])
    base = []
    for _ in range(count):
        start = time.perf_counter()
        subprocess.run("true", shell=True, check=True)
        base.append(time.perf_counter() - start)
    return {"jupyter_jobs_s": ours, "subprocess_s": base, "phases_s": phases}


def bench_throughput(server: Server, count: int, concurrency: int) -> dict:
    start = time.perf_counter()
    ids = [server.call("POST", "jobs", {"name": "tp", "cmd": "true"})["id"] for _ in range(count)]
    submitted = time.perf_counter() - start
    for job_id in ids:
        server.call("GET", f"jobs/{job_id}/logs?follow=1")
    ours = time.perf_counter() - start
    assert all(server.call("GET", f"jobs/{i}")["status"] == "Succeeded" for i in ids)
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda _: subprocess.run("true", shell=True, check=True), range(count)))
    base = time.perf_counter() - start
    return {"jobs": count, "concurrency": concurrency, "jupyter_jobs_s": ours, "submit_all_s": submitted,
            "subprocess_s": base, "jupyter_jobs_jobs_per_s": count / ours, "subprocess_jobs_per_s": count / base}


def bench_list(work: Path, rows: int) -> dict:
    from jupyter_jobs.store import JobStore

    store = JobStore(work / "list.sqlite")
    spec = json.dumps({"name": "j", "cmd": "python train.py"})
    statuses = ["Succeeded", "Failed", "Cancelled", "Pending", "Running"]
    now = time.time()
    store._conn.execute("BEGIN")
    store._conn.executemany(
        "INSERT INTO jobs (name, owner, status, command, spec, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        ((f"job-{i}", f"user{i % 20}", statuses[i % 5], "python train.py", spec, now, now) for i in range(rows)))
    store._conn.execute("COMMIT")
    deep_cursor = store.list(limit=500)[1]
    for _ in range(100):
        deep_cursor = store.list(limit=500, cursor=deep_cursor)[1] or deep_cursor
    cases = {
        "first page (50)": dict(limit=50),
        "page at depth 50,000 (cursor)": dict(limit=50, cursor=deep_cursor),
        "status filter": dict(limit=50, statuses=[__import__("jupyter_jobs.states").states.JobStatus.FAILED]),
        "owner filter": dict(limit=50, owner="user7"),
        "text search": dict(limit=50, text="job-12345"),
    }
    out = {}
    for name, kwargs in cases.items():
        times = []
        for _ in range(20):
            start = time.perf_counter()
            store.list(**kwargs)
            times.append((time.perf_counter() - start) * 1000)
        out[name] = statistics.median(times)
    store.close()
    return {"rows": rows, "median_ms": out}


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "p95": ordered[int(0.95 * (len(ordered) - 1))], "min": ordered[0]}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat, tp, lst = results["latency"], results["throughput"], results["list"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    axes[0].boxplot([[v * 1000 for v in lat["jupyter_jobs_s"]], [v * 1000 for v in lat["subprocess_s"]]],
                    tick_labels=["jupyter-jobs\n(REST submit → Succeeded)", "subprocess.run"])
    axes[0].set_ylabel("ms")
    axes[0].set_title(f"latency of a trivial job (n={len(lat['subprocess_s'])})")
    axes[1].bar(["jupyter-jobs", "subprocess"], [tp["jupyter_jobs_jobs_per_s"], tp["subprocess_jobs_per_s"]],
                color=["tab:blue", "tab:gray"])
    axes[1].set_ylabel("jobs / s")
    axes[1].set_title(f"throughput, {tp['jobs']} jobs, {tp['concurrency']} at a time")
    names = list(lst["median_ms"])
    axes[2].barh(names, [lst["median_ms"][n] for n in names], color="tab:green")
    axes[2].set_xlabel("median ms")
    axes[2].set_title(f"job list at {lst['rows']:,} jobs")
    fig.suptitle(f"jupyter-jobs local backend — {results['machine']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--name", default="local")
    parser.add_argument("--docker", choices=["auto", "yes", "no"], default="auto",
                        help="also measure the Docker backend (auto: when a daemon answers)")
    parser.add_argument("--docker-jobs", type=int, default=20, help="container jobs for the latency figures")
    parser.add_argument("--docker-throughput-jobs", type=int, default=50)
    parser.add_argument("--slurm", choices=["auto", "yes", "no"], default="auto",
                        help="also measure the Slurm backend (auto: when SLURM_CONF is set and sinfo answers)")
    parser.add_argument("--slurm-jobs", type=int, default=20)
    parser.add_argument("--slurm-throughput-jobs", type=int, default=100)
    parser.add_argument("--env", choices=["auto", "yes", "no"], default="auto",
                        help="also measure Python environments (auto: skipped when uv cannot resolve the lock)")
    parser.add_argument("--env-builds", type=int, default=5, help="cold builds of each kind, alternating")
    parser.add_argument("--env-jobs", type=int, default=20, help="warm jobs of each kind, alternating")
    parser.add_argument("--env-docker-builds", type=int, default=5, help="environment images of each kind")
    parser.add_argument("--warm-rounds", type=int, default=10, help="rounds of the warm part (one job of each kind)")
    parser.add_argument("--peer-venv", default=str(Path.home() / ".cache" / "jupyter-jobs" / "bench-peer-venv"),
                        help="virtual environment with jupyter-scheduler and papermill (made from PyPI when missing)")
    parser.add_argument("--live-rounds", type=int, default=20, help="status changes timed by the live part")
    parser.add_argument("--live-idle-seconds", type=float, default=60.0, help="how long the live part watches an idle Lab")
    parser.add_argument("--render-rounds", type=int, default=5, help="fresh pages timed by the render part, each kind")
    parser.add_argument("--parts", default="local,docker,slurm,env",
                        help="which figures to measure (comma-separated; each still obeys its own switch)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    unknown = parts - {"local", "docker", "slurm", "env", "warm", "files", "live", "render"}
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}")
    out = HERE / "results" / args.name
    out.mkdir(parents=True, exist_ok=True)
    if "local" in parts:
        run_local(args, out)
    if "docker" in parts and (args.docker == "yes" or (args.docker == "auto" and _docker_answers())):
        run_docker(args, out)
    if "slurm" in parts and (args.slurm == "yes" or (args.slurm == "auto" and os.environ.get("SLURM_CONF"))):
        run_slurm(args, out)
    if "env" in parts and args.env != "no":
        run_env(args, out)
    if "warm" in parts:
        run_warm(args, out)
    if "files" in parts:
        run_files(args, out)
    if "live" in parts:
        run_live(args, out)
    if "render" in parts:
        run_render(args, out)


def _save(out: Path, name: str, result: dict, plot, title: str, keys: tuple[str, ...]) -> None:
    """Stamp a part's result with the machine and date; write <name>.json and <name>.png; print its summary."""
    result["machine"] = f"{platform.node()}, {len(os.sched_getaffinity(0))} CPUs, Python {platform.python_version()}"
    result["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
    (out / f"{name}.json").write_text(json.dumps(result, indent=2))
    plot(result, out / f"{name}.png", f"{title} — {result['machine']}")
    print(json.dumps({k: result[k] for k in keys}, indent=2))
    print(f"written to {out / f'{name}.json'}")


def run_live(args: argparse.Namespace, out: Path) -> None:
    """Status change → the panel's row, and an idle Lab's requests: live.json and live.png."""
    import live_bench

    result = live_bench.bench_live(args.live_rounds, args.live_idle_seconds)
    _save(out, "live", result, live_bench.plot, "Jobs panel, live: status change on the server → row updated; idle "
          "Lab's requests", ("median_ms", "p90_ms", "idle_requests_per_minute"))


def run_render(args: argparse.Namespace, out: Path) -> None:
    """The Jobs panel's first render of 1,000 jobs against plain rows: render.json and render.png."""
    import render_bench

    result = render_bench.bench_render(args.render_rounds)
    _save(out, "render", result, render_bench.plot, "Jobs panel, first render of 1,000 jobs vs plain <tr>s, same "
          "Chromium", ("jobs", "median", "ratios"))


def run_files(args: argparse.Namespace, out: Path) -> None:
    """A 1 GiB project's working dir against ``cp -r``: files.json and files.png."""
    import files_bench

    work = Path(tempfile.mkdtemp(prefix="jj-bench-files-"))
    server = Server(work)
    try:
        result = files_bench.bench_files(server)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    _save(out, "files", result, files_bench.plot, "1 GiB project (200 files): a job's working dir vs cp -r",
          ("median_s", "ratios"))


def run_warm(args: argparse.Namespace, out: Path) -> None:
    """Warm interpreters against jupyter-scheduler and papermill: warm.json and warm.png."""
    import warm_bench

    def server(work: Path, extra: list[str]) -> Server:
        work.mkdir(parents=True, exist_ok=True)
        return Server(work, extra=extra)

    result = warm_bench.bench_warm(server, Path(args.peer_venv), args.warm_rounds)
    _save(out, "warm", result, warm_bench.plot, f"trivial notebook job / %%job cell, submit → Succeeded, one run "
          f"({result['rounds']} rounds)", ("median_s", "ratios", "idle_warm_interpreters"))


def run_local(args: argparse.Namespace, out: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="jj-bench-"))
    concurrency = len(os.sched_getaffinity(0))
    results = {"machine": f"{platform.node()}, {concurrency} CPUs, Python {platform.python_version()}",
               "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    server = Server(work)
    try:
        results["latency"] = bench_latency(server, args.jobs)
        results["throughput"] = bench_throughput(server, args.jobs, concurrency)
    finally:
        server.stop()
    results["list"] = bench_list(work, args.rows)
    lat = results["latency"]
    ours, base = summary(lat["jupyter_jobs_s"]), summary(lat["subprocess_s"])
    results["summary"] = {
        "latency_median_ms": {"jupyter_jobs": ours["median"] * 1000, "subprocess": base["median"] * 1000},
        "latency_p95_ms": {"jupyter_jobs": ours["p95"] * 1000, "subprocess": base["p95"] * 1000},
        "latency_overhead_median_ms": (ours["median"] - base["median"]) * 1000,
        "throughput_ratio_subprocess_over_jupyter_jobs":
            results["throughput"]["subprocess_jobs_per_s"] / results["throughput"]["jupyter_jobs_jobs_per_s"],
        "phases_median_ms": {k: statistics.median(v) * 1000 for k, v in lat["phases_s"].items()},
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    plot(results, out / "plots.png")
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({**results["summary"], "list_median_ms": results["list"]["median_ms"],
                      "throughput_jobs_per_s": {k: results["throughput"][k] for k in
                                                ("jupyter_jobs_jobs_per_s", "subprocess_jobs_per_s")}}, indent=2))
    print(f"written to {out}")


def run_env(args: argparse.Namespace, out: Path) -> None:
    """Python environment figures: env.json and env.png."""
    import env_bench

    docker = args.docker != "no" and env_bench.docker_ready()
    if args.docker == "yes" and not docker:
        raise SystemExit(f"--docker yes: no Docker daemon answers, or it lacks {env_bench.BASE}")

    def server(work: Path, extra: list[str]) -> Server:
        work.mkdir(parents=True, exist_ok=True)
        return Server(work, extra=extra)

    result = env_bench.bench_env(server, builds=args.env_builds, jobs=args.env_jobs,
                                 docker_builds=args.env_docker_builds, docker=docker, optional=args.env == "auto")
    if result is None:
        return
    concurrency = len(os.sched_getaffinity(0))
    result["machine"] = f"{platform.node()}, {concurrency} CPUs, Python {platform.python_version()}"
    result["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
    (out / "env.json").write_text(json.dumps(result, indent=2))
    env_bench.plot(result, out / "env.png", f"jupyter-jobs Python environments, baselines in the same run — "
                   f"{result['machine']}")
    print(f"written to {out / 'env.json'}")


def run_slurm(args: argparse.Namespace, out: Path) -> None:
    from slurm_bench import POLL, bench_slurm, plot

    extra = [f"--SlurmBackend.poll_seconds={POLL}", "--Cluster.cpus=2", "--Cluster.memory_mib=200"]
    _engine(out, "slurm", extra, lambda server: bench_slurm(server, args.slurm_jobs, args.slurm_throughput_jobs),
            plot, "jupyter-jobs Slurm backend vs sbatch --wrap, same run")


def _docker_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def run_docker(args: argparse.Namespace, out: Path) -> None:
    from docker_bench import bench_docker, plot

    _engine(out, "docker", [], lambda server: bench_docker(server, args.docker_jobs, args.docker_throughput_jobs),
            plot, "jupyter-jobs Docker backend vs docker run --rm, same run")


def _engine(out: Path, backend: str, extra: list[str], measure, plot, title: str) -> None:
    """Measure one backend through a real server; write <backend>.json and <backend>.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    work = Path(tempfile.mkdtemp(prefix=f"jj-bench-{backend}-"))
    server = Server(work, backend=backend, extra=extra)
    try:
        result = measure(server)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    (out / f"{backend}.json").write_text(json.dumps(result, indent=2))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    plot(axes[0], axes[1], result)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out / f"{backend}.png", dpi=110)
    print(json.dumps(result["summary"], indent=2))

if __name__ == "__main__":
    main()

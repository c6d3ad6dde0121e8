"""Python environment figures (``env.python``), each against a baseline measured in the same run.

The lock is resolved once at the start by :func:`jupyter_jobs.pyenv.resolve.resolve` (``uv pip compile``
for Python 3.11, wheels only) from :data:`REQUIREMENTS`: about 20 pinned distributions, several of
them compiled (numpy, pandas, pydantic-core, pyyaml, markupsafe, charset-normalizer).

1. **Cold build**: :meth:`EnvironmentCache.prepare_sync` of the lock (``uv venv --relocatable`` then
   ``uv pip install --no-deps -r``) into an empty cache folder, against ``uv venv`` + ``uv pip install -r``
   of the same pins into a fresh folder, and the same with ``--no-deps`` (what ours runs). All three share
   one uv cache, warmed first, so the figure is build work, not downloads; they alternate, the order
   rotating each round.
2. **Warm job** through a real ``jupyter server`` and REST: submit → Succeeded of ``python -c pass`` with
   ``env.python: {version, packages}`` once its venv is cached, against the same job with
   ``env.python: none``, and with ``auto`` plus the interpreter it was submitted from (a notebook
   kernel's venv holding exactly the lock: the local backend runs it with that interpreter, no venv).
3. **Docker** (when a daemon answers and the base image exists): the image ``jupyter-jobs/env:<hash>-<base>``
   built by ``EnvImages.image_for`` (the Docker backend's path: probe the image's Python, uv ``--target``
   folder on the server, copy it into a container of the base image, commit), against ``docker build``
   of a Dockerfile that installs the same pins with uv into the same base image (see :func:`dockerfile`).
"""
from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
#: What the bench's lock is resolved from (and what the warm job's ``env.python.packages`` lists).
REQUIREMENTS = ["pandas", "requests", "pyyaml", "jinja2", "attrs", "click", "tqdm", "pydantic"]
PYTHON = "3.11"
BASE = "jupyter-jobs/base:bookworm"
CMD = "python -c pass"


def _med(values: list[float]) -> float:
    return statistics.median(values)


def _uv_env(cache: Path) -> dict[str, str]:
    return {**os.environ, "UV_CACHE_DIR": str(cache), "NO_COLOR": "1"}


# -- the lock ------------------------------------------------------------------------------------------


def make_lock(cache: Path):
    """The bench's lock, resolved as a job's ``env.python: {version, packages}`` is (uv pip compile)."""
    from jupyter_jobs.pyenv.resolve import resolve
    from jupyter_jobs.pyenv.spec import PythonEnv

    started = time.perf_counter()
    lock = resolve(PythonEnv("custom", version=PYTHON, packages=tuple(REQUIREMENTS)), cache_dir=cache)
    return lock, time.perf_counter() - started


def bench_resolve(cache: Path, count: int) -> list[float]:
    """Seconds of :func:`make_lock` again, uv's cache warm: what a ``{version, packages}`` job's submit does."""
    return [make_lock(cache)[1] for _ in range(count)]


# -- 1. cold build ---------------------------------------------------------------------------------------


def bench_build(work: Path, lock, uv: str, cache: Path, reps: int) -> dict[str, Any]:
    """Cold builds of ``lock``: ours vs ``uv venv`` + ``uv pip install -r`` (with and without --no-deps)."""
    from jupyter_jobs.pyenv.cache import EnvironmentCache

    requirements = work / "requirements.txt"
    requirements.write_text(lock.requirements())
    env = _uv_env(cache)

    def ours() -> float:
        root = Path(tempfile.mkdtemp(prefix="ours-", dir=work))
        envs = EnvironmentCache(root, uv=uv, uv_cache=cache)
        start = time.perf_counter()
        prepared = envs.prepare_sync(lock, kind="venv", say=lambda _: None, progress=lambda _done, _of: None)
        elapsed = time.perf_counter() - start
        assert prepared.built
        shutil.rmtree(root)
        return elapsed

    def raw(no_deps: bool) -> float:
        root = Path(tempfile.mkdtemp(prefix="raw-", dir=work))
        venv = root / "venv"
        start = time.perf_counter()
        subprocess.run([uv, "venv", "-q", "--python", PYTHON, str(venv)], check=True, env=env)
        subprocess.run([uv, "pip", "install", "-q", *(["--no-deps"] if no_deps else []),
                        "--python", str(venv / "bin" / "python"), "-r", str(requirements)], check=True, env=env)
        elapsed = time.perf_counter() - start
        shutil.rmtree(root)
        return elapsed

    # Warm uv's cache (downloads and unpacked wheels) with each kind once; check ours works.
    warm_start = time.perf_counter()
    check = EnvironmentCache(work / "check", uv=uv, uv_cache=cache)
    built = check.prepare_sync(lock).path
    subprocess.run([str(built / "bin" / "python"), "-c", "import numpy, pandas, pydantic, yaml, requests"], check=True)
    python_used = next((line.split("=", 1)[1].strip() for line in (built / "pyvenv.cfg").read_text().splitlines()
                        if line.startswith("version")), "?")
    shutil.rmtree(work / "check")
    raw(False)
    warm_seconds = time.perf_counter() - warm_start
    runs: dict[str, list[float]] = {"jupyter_jobs": [], "uv_pip_install": [], "uv_pip_install_no_deps": []}
    kinds: list[tuple[str, Callable[[], float]]] = [
        ("jupyter_jobs", ours), ("uv_pip_install", lambda: raw(False)), ("uv_pip_install_no_deps", lambda: raw(True))]
    for index in range(reps):
        order = kinds[index % 3:] + kinds[:index % 3]
        for name, measure in order:
            runs[name].append(measure())
    medians = {name: _med(values) for name, values in runs.items()}
    return {
        "packages": len(lock.packages), "hash": lock.hash, "python": python_used, "reps": reps,
        "warm_up_s": warm_seconds, "seconds": runs,
        "summary": {
            "median_s": medians,
            "min_s": {name: min(values) for name, values in runs.items()},
            "ratio_vs_uv_pip_install": medians["jupyter_jobs"] / medians["uv_pip_install"],
            "ratio_vs_uv_pip_install_no_deps": medians["jupyter_jobs"] / medians["uv_pip_install_no_deps"],
        },
    }


# -- 2. warm job through the server ----------------------------------------------------------------------


def make_kernel(work: Path, lock, uv: str, cache: Path) -> tuple[str, dict]:
    """A notebook kernel's venv holding exactly ``lock`` (jupyter_jobs importable through a .pth, as
    an installed jupyter-jobs would be), and its capture as ``%%job`` would send it."""
    venv = work / "kernel"
    env = _uv_env(cache)
    subprocess.run([uv, "venv", "-q", "--python", PYTHON, str(venv)], check=True, env=env)
    (work / "kernel-requirements.txt").write_text(lock.requirements())
    subprocess.run([uv, "pip", "install", "-q", "--no-deps", "--python", str(venv / "bin" / "python"),
                    "-r", str(work / "kernel-requirements.txt")], check=True, env=env)
    site = next(venv.glob("lib/python3*/site-packages"))
    (site / "jupyter_jobs_src.pth").write_text(f"{ROOT}\n")
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "jupyter_jobs.pyenv.lock"], check=True,
                         capture_output=True, text=True, env={**os.environ, "PYTHONSAFEPATH": "1"})
    return str(venv / "bin" / "python"), json.loads(out.stdout)


def _job_once(server, conn, body: dict) -> dict[str, Any]:
    start = time.perf_counter()
    job = server.call("POST", "jobs", body, conn)
    posted = time.perf_counter() - start
    server.call("GET", f"jobs/{job['id']}/logs?follow=1", conn=conn)  # returns when the job has ended
    elapsed = time.perf_counter() - start
    job = server.call("GET", f"jobs/{job['id']}", conn=conn)
    assert job["status"] == "Succeeded", job
    return {"s": elapsed, "post_s": posted, **{f"{k}_s": v for k, v in job["durations"].items()},
            "environment": job.get("environment") or {}}


def bench_jobs(server, count: int, kernel_python: str, kernel_lock: dict) -> dict[str, Any]:
    """submit → Succeeded of ``python -c pass``: env.python none / {version, packages} / auto + interpreter."""
    bodies = {
        "none": {"name": "env-none", "cmd": CMD, "env": {"python": "none"}},
        "packages": {"name": "env-packages", "cmd": CMD,
                     "env": {"python": {"version": PYTHON, "packages": REQUIREMENTS}}},
        "auto_interpreter": {"spec": {"name": "env-auto", "cmd": CMD, "env": {"python": "auto"}},
                             "environment": {"lock": kernel_lock, "interpreter": kernel_python}},
    }
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    # The first of each: `packages` builds the lock's venv through the job (a cold build, uv's cache
    # already warm); `auto` has the server ask the kernel's interpreter what it holds (then cached).
    first = {name: _job_once(server, conn, body) for name, body in bodies.items()}
    runs: dict[str, list[dict]] = {name: [] for name in bodies}
    for index in range(count):
        names = list(bodies)
        names = names[index % 3:] + names[:index % 3]
        for name in names:
            runs[name].append(_job_once(server, conn, bodies[name]))
    conn.close()
    where = {name: sorted({str(r["environment"].get("where", "-")) for r in rs}) for name, rs in runs.items()}
    assert where["packages"] == ["venv"] and where["auto_interpreter"] == ["interpreter"], where
    median_ms = {name: _med([r["s"] for r in rs]) * 1000 for name, rs in runs.items()}
    phases_ms = {name: {key: _med([r[key] or 0.0 for r in rs]) * 1000
                        for key in ("post_s", "queued_s", "preparing_s", "running_s")} for name, rs in runs.items()}
    return {
        "n": count, "where": where,
        "first": {name: {k: v for k, v in r.items()} for name, r in first.items()},
        "seconds": {name: [r["s"] for r in rs] for name, rs in runs.items()},
        "summary": {
            "median_ms": median_ms,
            "overhead_median_ms": {"packages": median_ms["packages"] - median_ms["none"],
                                   "auto_interpreter": median_ms["auto_interpreter"] - median_ms["none"]},
            # submit → Succeeded less the POST itself (where a {version, packages} job resolves its lock)
            "after_submit_median_ms": {name: _med([r["s"] - r["post_s"] for r in rs]) * 1000
                                       for name, rs in runs.items()},
            "phases_median_ms": phases_ms,
            "first_packages_job_s": first["packages"]["s"],
        },
    }


# -- 3. Docker ------------------------------------------------------------------------------------------


def docker_ready(docker: str = "docker") -> bool:
    if subprocess.run([docker, "info"], capture_output=True).returncode != 0:
        return False
    return subprocess.run([docker, "image", "inspect", BASE], capture_output=True).returncode == 0


def dockerfile(uv_image: str, cert: bool) -> str:
    """The baseline: the same pins installed by uv in a ``docker build`` of the same base image.

    The base image has python3 but no pip, so uv comes in as uv's docs suggest
    (``COPY --from=ghcr.io/astral-sh/uv /uv``; here a local image holding the same uv binary, made
    before timing). The RUN step reaches PyPI through the host's network (``docker build --network host``;
    the daemon has no bridge), with no uv cache (``--no-cache``: none kept in the layer). ``cert``: this
    machine's TLS goes through a proxy whose CA the build needs (the host's ``SSL_CERT_FILE``).
    """
    ssl = "SSL_CERT_FILE=/tmp/ca.crt " if cert else ""
    return (
        f"FROM {BASE}\n"
        f"COPY --from={uv_image} /uv /usr/local/bin/uv\n"
        f"COPY requirements.txt {'ca.crt ' if cert else ''}/tmp/\n"
        f"RUN {ssl}uv pip install --system --break-system-packages --no-deps --no-cache -r /tmp/requirements.txt\n"
    )


def pip_dockerfile(cert: bool) -> str:
    """The issue's baseline: the same pins installed by ``pip install`` in a ``docker build`` of the same base.

    The base image has no pip (Debian strips ensurepip), so pip comes in as a folder (pip installed with
    ``--target`` on the host, copied in) and runs from it, as ``get-pip.py`` would leave it; ``--no-cache-dir``
    and no uv anywhere. Same network and certificate as :func:`dockerfile`.
    """
    ssl = "SSL_CERT_FILE=/tmp/ca.crt " if cert else ""
    return (
        f"FROM {BASE}\n"
        "COPY pip /opt/pip\n"
        f"COPY requirements.txt {'ca.crt ' if cert else ''}/tmp/\n"
        f"RUN {ssl}PYTHONPATH=/opt/pip python3 -m pip install --no-deps --no-cache-dir --break-system-packages "
        "--disable-pip-version-check -q -r /tmp/requirements.txt\n"
    )


def bench_docker_env(work: Path, lock, uv: str, cache: Path, reps: int, docker: str = "docker") -> dict[str, Any]:
    """Cold environment images: ``EnvImages.image_for`` (uv cache warm, and empty) vs ``docker build``."""
    import docker as docker_sdk

    from jupyter_jobs.pyenv.environments import Environments
    from jupyter_jobs.runner import docker_env
    from jupyter_jobs.runner.docker_env import EnvImages

    client = docker_sdk.from_env()
    log = logging.getLogger("env-bench")
    stamp = f"{os.getpid()}-{int(time.time())}"
    uv_image = f"jj-bench/uv:{stamp}"
    made: list[str] = []
    context, uv_context = work / "docker-context", work / "docker-uv"  # apart: the build sends only its own
    context.mkdir()
    uv_context.mkdir()
    shutil.copy2(uv, uv_context / "uv")
    (uv_context / "Dockerfile").write_text("FROM scratch\nCOPY uv /uv\n")
    cert = os.environ.get("SSL_CERT_FILE", "")
    if cert:
        shutil.copy2(cert, context / "ca.crt")
    (context / "requirements.txt").write_text(lock.requirements())
    (context / "Dockerfile").write_text(dockerfile(uv_image, bool(cert)))
    pip_context = work / "docker-pip"
    pip_context.mkdir()
    if cert:
        shutil.copy2(cert, pip_context / "ca.crt")
    (pip_context / "requirements.txt").write_text(lock.requirements())
    (pip_context / "Dockerfile").write_text(pip_dockerfile(bool(cert)))
    subprocess.run([uv, "pip", "install", "-q", "--target", str(pip_context / "pip"), "pip"], check=True,
                   env=_uv_env(cache))
    quiet = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}

    # Where our build's time goes: each step timed by wrapping it (this object's methods, the docker
    # client's put_archive, and docker_env's tar writer, put back at the end).
    spent: dict[str, float] = {}

    def timed(key: str, function: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[key] = spent.get(key, 0.0) + time.perf_counter() - started
        return wrapper

    write_archive = docker_env._write_archive
    docker_env._write_archive = timed("tar", write_archive)
    client.api.put_archive = timed("put_archive", client.api.put_archive)
    phases: dict[str, list[dict[str, float]]] = {"jupyter_jobs_warm_uv_cache": [], "jupyter_jobs_cold_uv_cache": []}

    def ours(warm: bool, record: bool = True) -> float:
        data = Path(tempfile.mkdtemp(prefix="docker-ours-", dir=work))
        envs = Environments(data, uv_cache_dir=str(cache if warm else data / "uv-cache"), max_bytes=0)
        images = EnvImages(client, log)  # a new one: it asks the base image's Python again, as a fresh server does
        images._probe = timed("probe", images._probe)
        images._build = timed("image", images._build)
        images._copied_in = timed("copy in", images._copied_in)
        envs.cache.prepare_sync = timed("target", envs.cache.prepare_sync)
        spent.clear()
        start = time.perf_counter()
        left = docker_env.image_tag(lock, client.images.get(BASE).id)  # a run that failed may have left it
        with contextlib.suppress(docker_sdk.errors.ImageNotFound):
            client.images.remove(left)
        tag, outcome = asyncio.run(images.image_for(BASE, lock, envs, say=lambda _: None, report=lambda _: None))
        elapsed = time.perf_counter() - start
        assert outcome["built"], outcome
        if record:
            phases["jupyter_jobs_warm_uv_cache" if warm else "jupyter_jobs_cold_uv_cache"].append({
                "probe python": spent["probe"], "uv --target": spent["target"],
                # The image's own sh copies the folder in (a container's create, start and wait); only an
                # image without cp gets an archive (tar, put_archive).
                "copy in (container)": spent.get("copy in", 0.0),
                "tar + put_archive": spent.get("tar", 0.0) + spent.get("put_archive", 0.0),
                "commit": spent["image"] - spent.get("copy in", 0.0) - spent.get("tar", 0.0) - spent.get("put_archive", 0.0),
                "other": elapsed - spent["probe"] - spent["target"] - spent["image"],
            })
        made.append(tag)
        _check(tag)
        client.images.remove(tag)
        made.remove(tag)
        shutil.rmtree(data)
        return elapsed

    def raw(folder: Path = context) -> float:
        tag = f"jj-bench/env-dockerfile:{stamp}"
        start = time.perf_counter()
        result = subprocess.run([docker, "build", "--network", "host", "--no-cache", "--force-rm", "-q", "-t", tag,
                                 str(folder)], **quiet)
        elapsed = time.perf_counter() - start
        made.append(tag)
        if result.returncode != 0:
            raise RuntimeError(f"docker build failed: {result.stderr[-2000:]}")
        _check(tag)
        subprocess.run([docker, "rmi", tag], **quiet, check=True)
        made.remove(tag)
        return elapsed

    def _check(tag: str) -> None:
        out = subprocess.run([docker, "run", "--rm", "--network", "none", tag, "python3", "-c",
                              "import numpy, pandas, pydantic, yaml; print(pandas.__version__)"], **quiet)
        assert out.returncode == 0, out.stderr[-1000:]

    runs: dict[str, list[float]] = {"jupyter_jobs_warm_uv_cache": [], "jupyter_jobs_cold_uv_cache": [],
                                    "docker_build": [], "docker_build_pip": []}
    try:
        subprocess.run([docker, "build", "-q", "-t", uv_image, str(uv_context)], **quiet, check=True)
        made.append(uv_image)
        raw()  # warm-up: the daemon's first build, the layers of the base image read once
        ours(True, record=False)
        kinds: list[tuple[str, Callable[[], float]]] = [
            ("docker_build", raw), ("jupyter_jobs_warm_uv_cache", lambda: ours(True)),
            ("jupyter_jobs_cold_uv_cache", lambda: ours(False)), ("docker_build_pip", lambda: raw(pip_context))]
        for index in range(reps):
            for name, measure in kinds[index % 4:] + kinds[:index % 4]:
                runs[name].append(measure())
    finally:
        docker_env._write_archive = write_archive
        for tag in made:
            subprocess.run([docker, "rmi", "-f", tag], capture_output=True)
        client.close()
    medians = {name: _med(values) for name, values in runs.items()}
    return {
        "reps": reps, "base": BASE, "dockerfile": dockerfile(uv_image, bool(cert)),
        "dockerfile_pip": pip_dockerfile(bool(cert)),
        "docker_build_command": f"{docker} build --network host --no-cache --force-rm -q -t TAG CONTEXT",
        "context_bytes": sum(f.stat().st_size for f in context.iterdir()),
        "seconds": runs, "phases_s": phases,
        "summary": {
            "median_s": medians,
            "min_s": {name: min(values) for name, values in runs.items()},
            "phases_median_s": {name: {key: _med([p[key] for p in rows]) for key in rows[0]}
                                for name, rows in phases.items()},
            "ratio_warm_uv_cache_vs_docker_build": medians["jupyter_jobs_warm_uv_cache"] / medians["docker_build"],
            "ratio_cold_uv_cache_vs_docker_build": medians["jupyter_jobs_cold_uv_cache"] / medians["docker_build"],
            "ratio_warm_uv_cache_vs_docker_build_pip": medians["jupyter_jobs_warm_uv_cache"] / medians["docker_build_pip"],
            "ratio_cold_uv_cache_vs_docker_build_pip": medians["jupyter_jobs_cold_uv_cache"] / medians["docker_build_pip"],
        },
    }


# -- the whole --------------------------------------------------------------------------------------------


def bench_env(server_class, *, builds: int, jobs: int, docker_builds: int, docker: bool,
              optional: bool = False) -> dict[str, Any] | None:
    """All the environment figures; ``server_class(work, extra)`` starts run.py's :class:`Server`.

    ``optional``: None, not an error, when the lock cannot be resolved (no uv, no package index).
    """
    from jupyter_jobs.errors import EnvironmentBuildFailed
    from jupyter_jobs.pyenv.uv import find_uv

    work = Path(tempfile.mkdtemp(prefix="jj-bench-env-"))
    cache = work / "uv-cache"
    try:
        try:
            uv = find_uv()
            lock, resolve_s = make_lock(cache)
        except EnvironmentBuildFailed as exc:
            if not optional:
                raise
            print(f"env: skipped, the lock cannot be resolved: {exc.message.splitlines()[0]}")
            return None
        result: dict[str, Any] = {
            "requirements": REQUIREMENTS, "lock": lock.requirements().split(), "resolve_s": resolve_s,
            "uv": subprocess.run([uv, "--version"], capture_output=True, text=True).stdout.strip(),
            "loadavg_start": os.getloadavg(),
        }
        print(f"env: lock of {len(lock.packages)} packages ({lock.hash[:12]}); cold builds…", flush=True)
        result["build"] = bench_build(work, lock, uv, cache, builds)
        print(json.dumps(result["build"]["summary"], indent=2), flush=True)
        again = bench_resolve(cache, 5)
        result["resolve_warm_s"] = {"seconds": again, "median": _med(again)}
        kernel_python, kernel_lock = make_kernel(work, lock, uv, cache)
        server = server_class(work / "server", extra=[f"--Environments.uv_cache_dir={cache}"])
        try:
            print("env: warm jobs through the server…", flush=True)
            result["jobs"] = bench_jobs(server, jobs, kernel_python, kernel_lock)
        finally:
            server.stop()
        print(json.dumps(result["jobs"]["summary"], indent=2), flush=True)
        if docker:
            print("env: Docker images…", flush=True)
            result["docker"] = bench_docker_env(work, lock, uv, cache, docker_builds)
            print(json.dumps(result["docker"]["summary"], indent=2), flush=True)
        result["loadavg_end"] = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _medians(ax, data: list[list[float]], unit: str) -> None:
    """Write each box's median beside it."""
    top = max(max(values) for values in data)
    for index, values in enumerate(data, 1):
        ax.annotate(f"{_med(values):.{0 if unit == 'ms' else 2}f} {unit}", (index + 0.27, _med(values)),
                    ha="left", va="center", fontsize=9, color="tab:orange")
    ax.set_xlim(0.5, len(data) + 0.75)
    ax.set_ylim(0, top * 1.08)


def plot(result: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if "docker" in result else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.6))
    build = result["build"]
    s = build["seconds"]
    data = [s["jupyter_jobs"], s["uv_pip_install"], s["uv_pip_install_no_deps"]]
    axes[0].boxplot(data, tick_labels=["jupyter-jobs\n(cache build)", "uv venv +\nuv pip install -r", "… --no-deps"])
    _medians(axes[0], data, "s")
    axes[0].set_ylabel("s")
    axes[0].set_title(f"cold venv of a {build['packages']}-package lock (n={build['reps']}, warm uv cache)")
    jobs = result["jobs"]
    j = jobs["seconds"]
    data = [[v * 1000 for v in j[name]] for name in ("none", "packages", "auto_interpreter")]
    axes[1].boxplot(data, tick_labels=["env.python:\nnone", "{version, packages}\n(venv cached)",
                                       "auto +\ninterpreter"])
    _medians(axes[1], data, "ms")
    axes[1].set_ylabel("ms, REST submit → Succeeded")
    axes[1].set_title(f"warm job `{CMD}` (n={jobs['n']}, local backend)")
    if panels == 3:
        d = result["docker"]["seconds"]
        data = [d["jupyter_jobs_warm_uv_cache"], d["jupyter_jobs_cold_uv_cache"], d["docker_build"],
                d["docker_build_pip"]]
        axes[2].boxplot(data, tick_labels=["EnvImages\n(warm uv cache)", "EnvImages\n(empty uv cache)",
                                           "docker build\n(uv, PyPI)", "docker build\n(pip, PyPI)"])
        _medians(axes[2], data, "s")
        axes[2].set_ylabel("s")
        axes[2].set_title(f"cold environment image (n={result['docker']['reps']})")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)



"""Live without churn (``bench/run.py --parts live``): in a real ``jupyter lab`` with jupyter-jobs and Debian's
Chromium driven by Playwright,

* the time from a status change on the server to the Jobs panel's row showing it: a running ``sleep`` job is
  cancelled through the REST API; the clock runs from the job's ``finished_at`` (written by the server when it
  records Cancelled) to the moment a MutationObserver in the page sees the row's ``data-status`` become
  ``Cancelled`` (``Date.now()``: the browser and the server share the machine's clock). N rounds, median;
* the HTTP requests an idle Lab makes, per minute, with the Jobs panel and a finished job's page open: those
  of the jobs API (the change feed's long-poll; anything else would be polling) and those of JupyterLab itself
  (its kernels, sessions, terminals and file browser polls, which jupyter-jobs does not make).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
    "--disable-default-apps", "--disable-extensions", "--metrics-recording-only", "--disable-quic",
]
JOBS_API = "/jupyter-jobs/api/"
GOAL_MS = 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Lab:
    """A `jupyter lab` on 127.0.0.1 with jupyter-jobs (local backend), in folders of its own."""

    def __init__(self, work: Path) -> None:
        self.token, self.port = secrets.token_hex(16), _free_port()
        root, runtime, settings = work / "root", work / "runtime", work / "settings"
        for path in (root, runtime, settings / "@jupyterlab" / "apputils-extension"):
            path.mkdir(parents=True, exist_ok=True)
        (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
            '{"fetchNews": "false"}')
        env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTER_CONFIG_DIR": str(work / "config")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.allow_root=True",
             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly",
             f"--LabApp.workspaces_dir={runtime}", f"--LabApp.user_settings_dir={settings}",
             f"--JobManager.data_dir={work / 'jobs'}", "--JobManager.backend=local", "--Cluster.gpus=0",
             "--ServerApp.log_level=WARN"],
            stdout=subprocess.DEVNULL, stderr=open(work / "lab.log", "wb"), env=env, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                self.call("GET", "config")
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("jupyter lab did not start: " + (work / "lab.log").read_text()[-2000:])
                time.sleep(0.3)

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.base}{JOBS_API}{path}", method=method,
            data=json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"{}")

    def wait(self, job_id: int, statuses: tuple[str, ...], timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.call("GET", f"jobs/{job_id}")
            if job["status"] in statuses:
                return job
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} is still {job['status']}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _open_panel(page) -> None:
    tab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="jupyter-jobs-panel"]')
    tab.wait_for(timeout=60_000)
    panel = page.locator("#jupyter-jobs-panel")
    for _ in range(3):
        if panel.is_visible():
            return
        tab.click()
        page.wait_for_timeout(1000)
    raise RuntimeError("the Jobs panel did not open")


WATCH_ROW = """id => {
    window.jjRowChanged = new Promise(resolve => {
        const status = () => document.querySelector(`#jupyter-jobs-panel [data-job-id="${id}"]`)
            ?.getAttribute('data-status');
        const observer = new MutationObserver(() => {
            if (status() === 'Cancelled') { observer.disconnect(); resolve(Date.now()); }
        });
        observer.observe(document.querySelector('#jupyter-jobs-panel'), {subtree: true, childList: true, attributes: true});
        setTimeout(() => resolve(null), 30000);
    });
}"""


def bench_live(rounds: int = 20, idle_seconds: float = 60.0) -> dict:
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="jj-bench-live-"))
    lab = Lab(work)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{lab.base}/lab?token={lab.token}")
            _open_panel(page)
            latencies = []
            for _ in range(rounds + 1):  # the first is a warm-up
                job = lab.call("POST", "jobs", {"name": "live", "cmd": "sleep 300"})
                lab.wait(job["id"], ("Running",))
                page.locator(f'#jupyter-jobs-panel [data-job-id="{job["id"]}"][data-status="Running"]').wait_for(
                    timeout=30_000)
                page.wait_for_timeout(300)
                page.evaluate(WATCH_ROW, job["id"])
                lab.call("POST", f"jobs/{job['id']}/cancel")
                shown = page.evaluate("window.jjRowChanged")
                done = lab.wait(job["id"], ("Cancelled",))
                if shown is None:
                    raise RuntimeError(f"the row of job {job['id']} never showed Cancelled")
                latencies.append((shown / 1000 - done["finished_at"]) * 1000)
                lab.call("DELETE", f"jobs/{job['id']}")
            latencies = latencies[1:]

            # Idle: the panel and a finished job's page open; count every request for idle_seconds.
            done = lab.call("POST", "jobs", {"name": "finished", "cmd": "echo finished"})
            lab.wait(done["id"], ("Succeeded",))
            row = page.locator(f'#jupyter-jobs-panel [data-job-id="{done["id"]}"][data-status="Succeeded"]')
            row.wait_for(timeout=30_000)
            row.click()
            page.locator(".jp-JobDetail[data-status='Succeeded']").wait_for(timeout=30_000)
            page.wait_for_timeout(2000)
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.wait_for_timeout(idle_seconds * 1000)
            browser.close()
    finally:
        lab.stop()
        shutil.rmtree(work, ignore_errors=True)
    paths = [urllib.parse.urlsplit(url).path for url in requests]
    feed = [p for p in paths if p.endswith(JOBS_API + "changes")]
    other_jobs = [p for p in paths if JOBS_API in p and p not in feed]
    lab_own = [p for p in paths if JOBS_API not in p]
    per_minute = 60.0 / idle_seconds
    return {
        "rounds": rounds,
        "status_to_row_ms": latencies,
        "median_ms": statistics.median(latencies),
        "p90_ms": sorted(latencies)[max(0, int(len(latencies) * 0.9) - 1)],
        "goal_ms": GOAL_MS,
        "idle_seconds": idle_seconds,
        "idle_requests_per_minute": {
            "jobs API: change feed": len(feed) * per_minute,
            "jobs API: anything else": len(other_jobs) * per_minute,
            "JupyterLab's own": len(lab_own) * per_minute,
        },
        "idle_lab_own_paths": sorted(set(lab_own)),
    }


def plot(result: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5), gridspec_kw={"width_ratios": [3, 2]})
    left.boxplot([result["status_to_row_ms"]], orientation="horizontal", tick_labels=["status → row"])
    left.axvline(result["goal_ms"], color="tab:red", linestyle="--", label=f"goal {result['goal_ms']} ms")
    left.set_xlabel(f"ms (median {result['median_ms']:.0f}, {result['rounds']} rounds)")
    left.legend(fontsize=8)
    names = list(result["idle_requests_per_minute"])
    values = [result["idle_requests_per_minute"][n] for n in names]
    right.barh(names, values, color=["tab:blue", "tab:red", "tab:gray"])
    for y, value in enumerate(values):
        right.text(value, y, f" {value:.1f}", va="center", fontsize=8)
    right.set_xlabel("requests per minute, idle Lab")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

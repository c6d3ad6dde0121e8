"""The Jobs panel's first render of 1,000 jobs (``bench/run.py --parts render``): a real ``jupyter lab`` with
jupyter-jobs holding 1,000 ended jobs (``cmd: "true"``, submitted through the REST API in parallel), and
Debian's Chromium driven by Playwright, a fresh page (and workspace) each round. On the page's own clock
(``performance.now()``; "painted" is the first animation frame showing the rows, then a task after it):

* first page: from the Jobs tab's ``pointerdown`` to its first page (``rowsPerPage`` 50, the default) painted;
  and, in the background at Lab start, from the list's response (Resource Timing) to its rows in the DOM;
* all 1,000: with ``rowsPerPage`` at its maximum (500), from the tab's ``pointerdown`` to 500 rows painted, then
  "Load more" (clicked as soon as they are) until the table has 1,000 rows painted; the panel's element count
  and the page's JS heap (after a forced GC) once they are in;
* the baseline, in the same run and Chromium: the same pages fetched by ``fetch()`` in the Lab page
  (``GET /jobs?limit=…`` with the cursor), and the same rows rendered as plain ``<tr>``s, no framework, in a
  blank page (``set_content``), painted the same way.
"""
from __future__ import annotations

import json
import re
import shutil
import statistics
import tempfile
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from live_bench import CHROMIUM, CHROMIUM_ARGS, Lab

JOBS = 1000
MAX_PER_PAGE = 500  # labextension/schema/plugin.json: rowsPerPage's maximum
ROWS = "#jupyter-jobs-panel [data-job-id]"
TAB = '.jp-SideBar .lm-TabBar-tab[data-id="jupyter-jobs-panel"]'

# Before Lab's own scripts: keep every resource's timing, note when the panel first holds N rows.
INIT = """(() => {
    performance.setResourceTimingBufferSize(10000);
    window.jjRowsAt = {};
    const observer = new MutationObserver(() => {
        const n = document.querySelectorAll('%s').length;
        for (const want of [50, 500, 1000]) {
            if (n >= want && !(want in window.jjRowsAt)) window.jjRowsAt[want] = performance.now();
        }
        if (n >= 1000) observer.disconnect();
    });
    observer.observe(document, {childList: true, subtree: true});
})();""" % ROWS

# Armed before the tab is clicked: window.jjShown resolves with the page's times of the click and of the
# first page painted, then (when `all` > `first`) of each "Load more" click until `all` rows are painted.
WATCH = """([first, all]) => {
    const count = () => document.querySelectorAll('%s').length;
    const panel = document.getElementById('jupyter-jobs-panel');
    const deadline = performance.now() + 120000;
    const painted = test => new Promise((resolve, reject) => {
        const frame = () => {
            if (test()) setTimeout(() => resolve(performance.now()));
            else if (performance.now() > deadline) reject(new Error(`${count()} rows`));
            else requestAnimationFrame(frame);
        };
        requestAnimationFrame(frame);
    });
    const clicked = new Promise(resolve => document.querySelector('%s')
        .addEventListener('pointerdown', event => resolve(event.timeStamp), {capture: true, once: true}));
    window.jjShown = (async () => {
        const out = {before: count()};
        out.clicked = await clicked;
        out.first = await painted(() => panel.checkVisibility() && count() >= first);
        while (count() < all) {
            const n = count();
            out.more = out.more ?? performance.now();
            panel.querySelector('.jp-JobsPanel-more').click();
            out.all = await painted(() => count() > n);
        }
        // The last answer to the list's requests after "Load more": the fetch and render parts of its time.
        out.fetched = Math.max(...performance.getEntriesByType('resource')
            .filter(e => e.name.includes('/jupyter-jobs/api/jobs?') && e.startTime >= (out.more ?? Infinity))
            .map(e => e.responseEnd));
        out.elements = panel.querySelectorAll('*').length;
        out.rows = count();
        return out;
    })();
}""" % (ROWS, TAB)

# The panel's own first render at Lab start: the list's response (its last GET /jobs?limit=N before the rows
# came) to N rows in the DOM.
FIRST_RENDER = """want => {
    const at = window.jjRowsAt[want];
    const answers = performance.getEntriesByType('resource')
        .filter(e => /\/jupyter-jobs\/api\/jobs\?/.test(e.name) && new RegExp(`limit=${want}(&|$)`).test(e.name)
            && e.responseEnd <= at);
    return answers.length ? at - answers[answers.length - 1].responseEnd : null;
}"""

FETCH = """async ([limit, pages, token]) => {
    const jobs = [];
    let cursor = null;
    const start = performance.now();
    for (let i = 0; i < pages; i++) {
        const query = new URLSearchParams({limit: String(limit)});
        if (cursor) query.set('cursor', cursor);
        const answer = await fetch(`/jupyter-jobs/api/jobs?${query}`, {headers: {Authorization: `token ${token}`}});
        const page = await answer.json();
        jobs.push(...page.jobs);
        cursor = page.next_cursor;
    }
    return {ms: performance.now() - start, jobs};
}"""

PLAIN = """jobs => new Promise(resolve => {
    const start = performance.now();
    const when = t => typeof t === 'number' ? new Date(t * 1000).toLocaleString() : (t ?? '');
    const body = document.getElementById('rows');
    body.replaceChildren();
    for (const job of jobs) {
        const tr = document.createElement('tr');
        tr.dataset.jobId = job.id;
        for (const value of [job.id, job.status, job.name, job.owner, when(job.created_at), when(job.finished_at)]) {
            const td = document.createElement('td');
            td.textContent = value ?? '';
            tr.append(td);
        }
        body.append(tr);
    }
    requestAnimationFrame(() => setTimeout(() => resolve(performance.now() - start)));
})"""
PLAIN_PAGE = ("<!doctype html><table><thead><tr><th>Id</th><th>Status</th><th>Name</th><th>User</th><th>Created</th>"
              "<th>Finished</th></tr></thead><tbody id='rows'></tbody></table>")


def _fill(lab: Lab, count: int) -> dict:
    """`count` real jobs (`true`), submitted in parallel; returns how long submitting and ending took."""
    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: lab.call("POST", "jobs", {"name": f"render-{i:04d}", "cmd": "true"}), range(count)))
    submitted = time.perf_counter() - start
    while True:
        jobs, cursor = [], None
        while True:
            after = f"&cursor={urllib.parse.quote(cursor)}" if cursor else ""
            page = lab.call("GET", f"jobs?limit={MAX_PER_PAGE}{after}")
            jobs += page["jobs"]
            cursor = page["next_cursor"]
            if not cursor or not page["jobs"]:
                break
        if len(jobs) >= count and all(job["status"] in ("Succeeded", "Failed", "Cancelled") for job in jobs):
            break
        time.sleep(1)
    return {"jobs": len(jobs), "submit_s": submitted, "all_ended_s": time.perf_counter() - start,
            "statuses": {s: sum(job["status"] == s for job in jobs) for s in {job["status"] for job in jobs}}}


def _rows_per_page(lab: Lab, rows: int) -> None:
    """The `rowsPerPage` setting, through JupyterLab's settings API (the page reads it when it loads)."""
    request = urllib.request.Request(
        f"{lab.base}/lab/api/settings/jupyter-jobs:plugin", method="PUT",
        data=json.dumps({"raw": json.dumps({"rowsPerPage": rows})}).encode(),
        headers={"Authorization": f"token {lab.token}", "Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30).close()


def _round(context, lab: Lab, name: str, per_page: int, want: int, baseline: bool = False) -> dict:
    """A fresh page and workspace; the tab clicked once the list is in; `want` rows painted. With `baseline`,
    then the same page measures the baseline (`_baseline`)."""
    page = context.new_page()
    try:
        listed = re.compile(rf"/jupyter-jobs/api/jobs\?(.*&)?limit={per_page}(&|$)")
        with page.expect_response(lambda r: listed.search(r.url) is not None, timeout=120_000):
            page.goto(f"{lab.base}/lab/workspaces/{name}?token={lab.token}")
        page.wait_for_function(f"(window.jjRowsAt || {{}})[{per_page}] !== undefined", timeout=60_000)
        page.wait_for_timeout(1500)  # Lab settles: the user clicks a started Lab
        first_render = page.evaluate(FIRST_RENDER, per_page)
        page.evaluate(WATCH, [min(per_page, want), want])
        page.locator(TAB).click()
        shown = page.evaluate("window.jjShown")
        cdp = context.new_cdp_session(page)
        cdp.send("HeapProfiler.collectGarbage")
        cdp.send("Performance.enable")
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        cdp.detach()
        base = _baseline(page, lab) if baseline else {}
    finally:
        page.close()
    if shown["rows"] < want:
        raise RuntimeError(f"{name}: {shown['rows']} rows, not {want}")
    return {**base,
        "rows_in_dom_before_click": shown["before"],
        "list_response_to_rows_in_dom_ms": first_render,
        "click_to_first_page_painted_ms": shown["first"] - shown["clicked"],
        "more_click_to_all_painted_ms": shown["all"] - shown["more"] if "all" in shown else None,
        "more_click_to_pages_fetched_ms": shown["fetched"] - shown["more"] if "all" in shown else None,
        "pages_fetched_to_all_painted_ms": shown["all"] - shown["fetched"] if "all" in shown else None,
        "click_to_all_painted_ms": shown.get("all", shown["first"]) - shown["clicked"],
        "panel_elements": shown["elements"],
        "dom_nodes": metrics.get("Nodes"),
        "js_heap_mib": metrics.get("JSHeapUsedSize", 0) / 2**20,
    }


def _baseline(page, lab: Lab) -> dict:
    """In a Lab page (same origin): fetch() of 1 × 50 and 2 × 500; then, the page blanked, plain <tr>s of 50 and
    of 1,000 rows."""
    first = page.evaluate(FETCH, [50, 1, lab.token])
    every = page.evaluate(FETCH, [MAX_PER_PAGE, JOBS // MAX_PER_PAGE, lab.token])
    page.set_content(PLAIN_PAGE)
    plain_first = page.evaluate(PLAIN, first["jobs"])
    plain_all = page.evaluate(PLAIN, every["jobs"])
    if page.locator("#rows tr").count() != JOBS:
        raise RuntimeError("the plain table did not get every row")
    return {"fetch_first_page_ms": first["ms"], "fetch_all_ms": every["ms"],
            "plain_first_page_ms": plain_first, "plain_all_ms": plain_all}


def bench_render(rounds: int = 5) -> dict:
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="jj-bench-render-"))
    lab = Lab(work)
    try:
        filled = _fill(lab, JOBS)
        cases = {"first_page": [], "all_1000": []}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.add_init_script(INIT)
            for i in range(rounds + 1):  # the first round of each kind is a warm-up
                cases["first_page"].append(_round(context, lab, f"first-{i}", 50, 50, baseline=True))
            _rows_per_page(lab, MAX_PER_PAGE)
            for i in range(rounds + 1):
                cases["all_1000"].append(_round(context, lab, f"all-{i}", MAX_PER_PAGE, JOBS))
            browser.close()
    finally:
        lab.stop()
        shutil.rmtree(work, ignore_errors=True)
    cases = {name: runs[1:] for name, runs in cases.items()}
    median = {name: {key: statistics.median(values) for key in runs[0]
                     if (values := [r[key] for r in runs if r[key] is not None])}
              for name, runs in cases.items()}
    first = base = median["first_page"]
    every = median["all_1000"]
    plain_all = base["fetch_all_ms"] + base["plain_all_ms"]
    return {
        "jobs": filled, "rounds": rounds, "rows_per_page": {"first_page": 50, "all_1000": MAX_PER_PAGE},
        "runs": cases, "median": median,
        "ratios": {
            "tab click → 50 rows painted / plain 50 <tr>s":
                first["click_to_first_page_painted_ms"] / base["plain_first_page_ms"],
            "Load more → 1,000 rows painted / (fetch 2 × 500 + plain 1,000 <tr>s)":
                every["more_click_to_all_painted_ms"] / plain_all,
            "tab click → 1,000 rows painted / (fetch 2 × 500 + plain 1,000 <tr>s)":
                every["click_to_all_painted_ms"] / plain_all,
        },
    }


def plot(result: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = base = result["runs"]["first_page"]
    every = result["runs"]["all_1000"]
    series = {
        "Jobs tab → 50 rows painted": [r["click_to_first_page_painted_ms"] for r in first],
        "baseline: plain 50 <tr>s": [r["plain_first_page_ms"] for r in base],
        "Jobs tab → 1,000 rows painted\n(500 a page + Load more)": [r["click_to_all_painted_ms"] for r in every],
        "Load more → 1,000 rows painted": [r["more_click_to_all_painted_ms"] for r in every],
        "baseline: fetch 2 × 500\n+ plain 1,000 <tr>s": [r["fetch_all_ms"] + r["plain_all_ms"] for r in base],
    }
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.boxplot(list(series.values()), orientation="horizontal", tick_labels=list(series))
    ax.invert_yaxis()
    ax.set_xlabel(f"ms, page clock ({result['rounds']} rounds, fresh page each); "
                  f"{result['jobs']['jobs']} jobs on the server")
    median = result["median"]["all_1000"]
    ax.set_title(f"with 1,000 rows: {median['panel_elements']:.0f} elements in the panel, "
                 f"{median['js_heap_mib']:.0f} MiB JS heap", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

"""A job in a notebook, in a real JupyterLab, a real kernel and a real Chromium: the output
`application/vnd.jupyter-jobs.job+json` renders live from the server (status, a terminal's log,
rich outputs while the job runs), outlives a kernel restart and a closed notebook, tells when the
job ends, and asks before cancelling. Screenshots go to $JUPYTER_JOBS_SCREENSHOTS (docs/screenshots/issue11/ holds
those of the last run made with JUPYTER_JOBS_SCREENSHOTS=docs/screenshots/issue11), else to a temporary folder."""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.integration
TIMEOUT = 60_000
SHOTS = Path(os.environ.get("JUPYTER_JOBS_SCREENSHOTS") or tempfile.mkdtemp(prefix="jj-screenshots-"))
MIME = "application/vnd.jupyter-jobs.job+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
ENDED = ("Succeeded", "Failed", "Cancelled", "Unknown")

# A 160x90 PNG, a plot of sorts (a curve on a light background), made here so the test needs no plotting library.
def _png() -> str:
    import base64
    import math
    import struct
    import zlib

    width, height = 160, 90
    curve = [int(80 - 70 * math.exp(-x / 40)) for x in range(width)]
    rows = b"".join(b"\x00" + b"".join(b"\x1f\x77\xb4" if abs(y - curve[x]) <= 1 else b"\xf4\xf4\xf4"
                                        for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return base64.b64encode(png).decode()


# The job: 40 lines of log, a tqdm-like bar on stderr (`\r` rewrites the line), a plot, an HTML table
# (with a script that must not run: displays are untrusted) and a markdown line updated by display_id,
# then a line every 0.3 s until the test creates the file named by argv[1]; its --out value `answer`
# is left as the job side leaves them.
JOB = textwrap.dedent("""
    import json, os, pickle, sys, time
    go = sys.argv[1]
    displays = open(os.environ["JOB_DISPLAYS"], "a")
    def show(message):
        displays.write(json.dumps(message) + "\\n")
        displays.flush()
    for i in range(40):
        print(f"setup line {i}", flush=True)
    print("\\x1b[32mcoloured\\x1b[0m text", flush=True)
    for i in range(0, 101, 5):
        sys.stderr.write(f"\\r{i:3d}%|{'#' * (i // 10):<10}| {i}/100")
        sys.stderr.flush()
        time.sleep(0.05)
    sys.stderr.write("\\n")
    show({"output_type": "display_data", "data": {"image/png": PNG, "text/plain": "<Figure>"}, "metadata": {}})
    show({"output_type": "display_data", "metadata": {}, "data": {"text/plain": "table", "text/html":
          "<table><tr><th>epoch</th><th>loss</th></tr><tr><td>1</td><td>0.25</td></tr></table>"
          "<script>window.jjUntrustedRan = true</script>"}})
    show({"output_type": "display_data", "data": {"text/markdown": "**step** 0"}, "metadata": {},
          "transient": {"display_id": "step"}})
    os.makedirs(os.path.join(os.environ["JOB_OUTPUTS"], "curves"))
    for name in ("loss.csv", "accuracy.csv"):
        with open(os.path.join(os.environ["JOB_OUTPUTS"], "curves", name), "w") as handle:
            handle.write("epoch,value\\n1,0.25\\n")
    with open(os.path.join(os.environ["JOB_OUTPUTS"], "_jj_out.pkl"), "wb") as handle:
        pickle.dump({"answer": pickle.dumps(42), "__jj_errors__": {}}, handle)
    n = 0
    while not os.path.exists(go):
        n += 1
        print(f"tick {n}", flush=True)
        show({"output_type": "update_display_data", "data": {"text/markdown": f"**step** {n}"}, "metadata": {},
              "transient": {"display_id": "step"}})
        time.sleep(0.3)
    print("done", flush=True)
""").replace("PNG", repr(_png()))


def api(lab, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{lab['base']}/jupyter-jobs/api/{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"token {lab['token']}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


@pytest.fixture
def submit(lab):
    """Submit jobs through the REST API; cancelled and deleted afterwards, so that the other tests of
    this server (test_lab_panel counts the jobs it lists) find none of them."""
    ids: list[int] = []

    def submit(spec: dict) -> dict:
        job = api(lab, "POST", "jobs", spec)
        ids.append(job["id"])
        return job

    submit.ids = ids  # type: ignore[attr-defined]  # jobs submitted otherwise (by %%job) join it
    yield submit
    for job_id in ids:
        if api(lab, "GET", f"jobs/{job_id}")["status"] not in ENDED:
            api(lab, "POST", f"jobs/{job_id}/cancel")
        deadline = time.monotonic() + 30
        while api(lab, "GET", f"jobs/{job_id}")["status"] not in ENDED and time.monotonic() < deadline:
            time.sleep(0.2)
        api(lab, "DELETE", f"jobs/{job_id}")


def bundle(job_id: int, name: str, out: list[str]) -> dict:
    """What `%%job` displays: ours, the ipywidgets view (for other front ends) and text."""
    return {MIME: {"id": job_id, "name": name, "out": out},
            WIDGET_MIME: {"model_id": "0" * 32, "version_major": 2, "version_minor": 0},
            "text/plain": f"Job #{job_id} '{name}' — %job attach {job_id} shows it"}


def write_notebook(lab, name: str, bundles: list[dict] = (), sources: list[str] = ()) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(f"from IPython.display import display\ndisplay({b!r}, raw=True)")
                for b in bundles] + [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nb, lab["root"] / name)


def kernel_idle(page) -> None:
    page.wait_for_function(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " return w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel"
        " && w.sessionContext.session.kernel.status === 'idle'; }", timeout=TIMEOUT)


def open_notebook(page, name: str) -> None:
    page.wait_for_function("window.jupyterapp && window.jupyterapp.commands.hasCommand('docmanager:open')",
                           timeout=TIMEOUT)
    page.evaluate("() => window.jupyterapp.restored.then(() => true)")
    # Not the widget the command answers: its object graph (React's, through the shell) is too deep to send back.
    page.evaluate(f"window.jupyterapp.commands.execute('docmanager:open', {{path: {name!r}}}).then(() => true)")
    panel = page.locator(".jp-NotebookPanel:visible")
    kernel_dialog = page.locator(".jp-Dialog")
    deadline = time.monotonic() + 60
    while not panel.count() and time.monotonic() < deadline:
        if kernel_dialog.count():  # "Select Kernel", whenever JupyterLab asks: take its default
            kernel_dialog.locator(".jp-mod-accept").click()
        page.wait_for_timeout(200)
    expect(panel).to_have_count(1)
    kernel_idle(page)


def run_all(page) -> None:
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def kernel_eval(page, expression: str) -> str:
    """text/plain of `expression` evaluated in the current notebook's kernel."""
    return page.evaluate(
        """async (code) => {
            const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
            let text = '';
            const future = kernel.requestExecute({code, store_history: false});
            future.onIOPub = msg => {
                const c = msg.content;
                if (c.data && c.data['text/plain']) text += c.data['text/plain'];
                if (c.ename) text += c.ename + ': ' + c.evalue;
            };
            await future.done;
            return text;
        }""", expression)


def log_lines(view) -> list[str]:
    return view.locator(".jp-JobView-log").inner_text().splitlines()


def screenshot(target, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    target.screenshot(path=str(SHOTS / name))


@pytest.mark.timeout(300)
def test_job_output_lives_through_restart_and_reopen_and_tells_when_it_ends(page, lab, submit):
    go = lab["root"] / "progress.go"
    script = lab["root"] / "progress_job.py"
    script.write_text(JOB)
    job = submit({"name": "progress", "cmd": f"{sys.executable} {script} {go}"})
    write_notebook(lab, "jobs.ipynb", [bundle(job["id"], "progress", ["answer"])])
    open_notebook(page, "jobs.ipynb")

    # Lab prefers our renderer to the widget view of the same bundle (lower rank wins).
    preferred = page.evaluate(
        "(b) => window.jupyterapp.shell.currentWidget.content.rendermime.preferredMimeType(b, 'any')",
        bundle(job["id"], "progress", []))
    assert preferred == MIME
    run_all(page)
    view = page.locator(f".jp-JobView[data-job-id='{job['id']}']")
    expect(view).to_have_attribute("data-status", "Running", timeout=TIMEOUT)
    expect(view.locator(".jp-JobView-name")).to_have_text("progress")
    expect(page.locator(".jp-OutputArea-output", has_text="Error displaying widget")).to_have_count(0)

    # The plot and the table arrive while the job still runs; the table's script did not run.
    expect(view.locator(".jp-JobDisplays img")).to_be_visible(timeout=TIMEOUT)
    expect(view.locator(".jp-JobDisplays table", has_text="loss")).to_be_visible()
    expect(view.locator(".jp-JobDisplays", has_text=re.compile(r"step \d+"))).to_be_visible()
    expect(view).to_have_attribute("data-status", "Running")
    assert page.evaluate("window.jjUntrustedRan") is None
    screenshot(view, "live-output-running.png")

    # The tqdm bar is one line, rewritten by each `\r`: its last state only.
    log = view.locator(".jp-JobView-log")
    expect(log).to_contain_text("tick 2", timeout=TIMEOUT)
    bars = [line for line in log_lines(view) if "%|" in line]
    assert bars == ["100%|##########| 100/100"], bars
    assert "coloured text" in log_lines(view) and "[32m" not in log.inner_text()  # ANSI codes dropped

    # The log follows its end; once the reader scrolls up, new lines do not move it.
    assert page.evaluate("(n) => n.scrollTop + n.clientHeight >= n.scrollHeight - 4", log.element_handle())
    log.hover()
    page.mouse.wheel(0, -300)
    page.wait_for_function("(n) => n.scrollTop + n.clientHeight < n.scrollHeight - 50", arg=log.element_handle())
    top = log.evaluate("n => n.scrollTop")
    ticks = len(log_lines(view))
    page.wait_for_function("([n, k]) => n.innerText.split('\\n').length > k + 3", arg=[log.element_handle(), ticks],
                           timeout=TIMEOUT)
    assert log.evaluate("n => n.scrollTop") == top
    screenshot(view, "log-stays-scrolled.png")
    # The reader scrolls to the bar (line 41): one line, its last state.
    log.evaluate("n => { const line = n.scrollHeight / n.innerText.split('\\n').length;"
                 " n.scrollTop = line * 36; }")
    screenshot(view, "tqdm-one-line.png")
    log.evaluate("n => { n.scrollTop = n.scrollHeight; }")  # back at the end, the log follows it again

    # A kernel restart changes nothing: the view goes on (it talks to the server, not to the kernel).
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:restart-kernel'); }")  # asks first
    page.locator(".jp-Dialog .jp-mod-accept").click()
    kernel_idle(page)
    assert kernel_eval(page, "'answer' in dir()") == "False"
    ticks = len(log_lines(view))
    expect(log).to_contain_text(f"tick {int(log_lines(view)[-1].split()[-1]) + 3}", timeout=TIMEOUT)
    expect(view).to_have_attribute("data-status", "Running")
    assert log.evaluate("n => n.scrollTop + n.clientHeight >= n.scrollHeight - 4")
    screenshot(view, "after-kernel-restart.png")

    # Closed and reopened, the notebook shows the job again: status, log and plot.
    page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=TIMEOUT)
    page.evaluate("window.jupyterapp.shell.currentWidget.close()")
    expect(view).to_have_count(0, timeout=TIMEOUT)
    open_notebook(page, "jobs.ipynb")
    expect(view).to_have_attribute("data-status", "Running", timeout=TIMEOUT)
    expect(view.locator(".jp-JobDisplays img")).to_be_visible(timeout=TIMEOUT)
    expect(log).to_contain_text("setup line 0", timeout=TIMEOUT)
    expect(log).to_contain_text("tick")
    screenshot(view, "after-reopen.png")

    # Cancel asks first (a run may have taken hours): "Keep running" keeps it running.
    view.locator(".jp-JobView-cancel").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text(f"Cancel job #{job['id']} 'progress'?")
    expect(dialog.locator("button:focus")).to_have_text("Keep running")  # Enter does not cancel
    screenshot(page, "cancel-confirmation.png")
    dialog.locator("button", has_text="Keep running").click()
    expect(dialog).to_have_count(0)
    page.wait_for_timeout(1500)
    expect(view).to_have_attribute("data-status", "Running")

    # The job ends: the view says so, the notification area too (once), with a way to its page.
    go.touch()
    expect(view).to_have_attribute("data-status", "Succeeded", timeout=TIMEOUT)
    expect(log).to_contain_text("done")
    toast = page.locator(".Toastify__toast", has_text=f"Job #{job['id']} 'progress' succeeded")
    expect(toast).to_have_count(1, timeout=TIMEOUT)
    page.wait_for_function("(n) => n.getBoundingClientRect().right <= window.innerWidth", arg=toast.element_handle())
    page.wait_for_timeout(300)  # the toast has slid in
    screenshot(page, "notification-job-ended.png")
    # Its output files are download links; a folder downloads as one tar, as the server offers it.
    expect(view.locator(".jp-JobFiles-link", has_text="_jj_out.pkl")).to_be_visible(timeout=TIMEOUT)
    folder = view.locator(".jp-JobFiles-folder a")
    expect(folder).to_have_text("curves/")
    kind = page.evaluate("(a) => fetch(a.href).then(r => r.headers.get('content-type'))", folder.element_handle())
    assert kind.startswith("application/x-tar"), kind
    csv = view.locator(".jp-JobFiles-link", has_text="loss.csv")
    assert page.evaluate("(a) => fetch(a.href).then(r => r.text())", csv.element_handle()) == "epoch,value\n1,0.25\n"

    # Its action opens the job's page: the same rich outputs, and the bar as one line.
    toast.locator("button", has_text="Open job").click()
    detail = page.locator(f"#jupyter-jobs-detail-{job['id']}")
    expect(detail).to_be_visible(timeout=TIMEOUT)
    expect(detail.locator(".jp-JobDisplays img")).to_be_visible(timeout=TIMEOUT)
    expect(detail.locator(".jp-JobDisplays table", has_text="loss")).to_be_visible()
    expect(detail.locator(".jp-JobDetail-log")).to_contain_text("done", timeout=TIMEOUT)
    assert detail.locator(".jp-JobDetail-log").inner_text().count("%|") == 1
    expect(detail.locator(".jp-JobFiles-folder a")).to_have_text("curves/", timeout=TIMEOUT)  # same file list
    detail.locator(".jp-JobDisplays table").scroll_into_view_if_needed()
    screenshot(page, "job-page-rich-output.png")

    # "Fetch values" runs `%job fetch ID` in this notebook's (restarted) kernel.
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="jobs.ipynb").click()
    fetch = view.locator(".jp-JobView-fetch")
    expect(fetch).to_be_visible()
    expect(fetch).to_have_attribute("aria-label", re.compile("Fetch the values of job"))
    fetch.click()
    result = view.locator(".jp-JobView-result")
    expect(result).not_to_have_text(re.compile(r"^(Fetching…)?$"), timeout=TIMEOUT)
    assert kernel_eval(page, "answer") == "42", result.inner_text()
    screenshot(view, "fetch-values.png")
    assert not page.errors, page.errors


def test_cancel_after_confirmation_and_a_job_that_is_not_there(page, lab, submit):
    job = submit({"name": "sleeper", "cmd": "echo sleeping; sleep 300"})
    write_notebook(lab, "cancel.ipynb", [bundle(job["id"], "sleeper", []), bundle(987654, "gone", [])])
    open_notebook(page, "cancel.ipynb")
    run_all(page)
    gone = page.locator(".jp-JobView[data-job-id='987654']")
    expect(gone).to_have_attribute("data-status", "NotFound", timeout=TIMEOUT)
    expect(gone).to_contain_text("Job #987654 was not found on this server")
    expect(gone.locator(".jp-JobView-cancel")).to_be_hidden()

    view = page.locator(f".jp-JobView[data-job-id='{job['id']}']")
    expect(view.locator(".jp-JobView-log")).to_contain_text("sleeping", timeout=TIMEOUT)
    cancel = view.locator(".jp-JobView-cancel")
    expect(cancel).to_have_attribute("aria-label", f"Cancel job #{job['id']}")
    cancel.click()
    page.locator(".jp-Dialog button", has_text="Cancel job").click()
    expect(view).to_have_attribute("data-status", "Cancelled", timeout=TIMEOUT)
    expect(cancel).to_be_hidden()
    expect(view.locator(".jp-JobView-fetch")).to_be_hidden()  # no --out values to fetch
    expect(page.locator(".Toastify__toast", has_text=f"Job #{job['id']} 'sleeper' cancelled")).to_be_visible(
        timeout=TIMEOUT)
    page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    expect(page.locator("body[data-jp-theme-light='false']")).to_have_count(1, timeout=TIMEOUT)
    page.wait_for_timeout(500)
    screenshot(page.locator(".jp-NotebookPanel:visible"), "cancelled-and-not-found-dark.png")
    page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
    assert not page.errors, page.errors


# A real job cell: what `%%job` displays is our bundle, and the figure and DataFrame the cell shows come
# back through the job side's capture while the job still runs.
JOB_CELL = textwrap.dedent("""
    %%job --name cellplot --out answer
    import os, time
    import matplotlib.pyplot as plt
    import pandas as pd
    for i in range(0, 101, 10):
        print(f"\\r{i:3d}%|{'#' * (i // 10):<10}|", end="", flush=True)
        time.sleep(0.02)
    print()
    plt.plot([1, 4, 9, 16])
    plt.title("loss")
    plt.savefig(os.path.join(os.environ["JOB_OUTPUTS"], "loss.png"))
    plt.show()
    display(pd.DataFrame({"epoch": [1, 2], "loss": [0.5, 0.25]}))
    while not os.path.exists(GO):
        time.sleep(0.2)
    answer = 6 * 7
""").strip()


@pytest.mark.timeout(240)
def test_a_job_cell_shows_its_figure_and_dataframe_live_and_its_value_arrives(page, lab, submit):
    go = lab["root"] / "cell.go"
    write_notebook(lab, "cell.ipynb", sources=["%load_ext jupyter_jobs", JOB_CELL.replace("GO", repr(str(go)))])
    open_notebook(page, "cell.ipynb")
    run_all(page)
    # Lab restores the notebooks earlier tests left open: this one's view is in the visible notebook.
    view = page.locator(".jp-NotebookPanel:visible .jp-JobView")
    expect(view).to_have_count(1, timeout=TIMEOUT)
    expect(view).to_have_attribute("data-job-id", re.compile(r"^\d+$"), timeout=TIMEOUT)
    submit.ids.append(int(view.get_attribute("data-job-id")))
    expect(view.locator(".jp-JobView-name")).to_have_text("cellplot")
    expect(view.locator(".jp-JobDisplays img")).to_be_visible(timeout=TIMEOUT)
    expect(view.locator(".jp-JobDisplays table", has_text="loss")).to_be_visible(timeout=TIMEOUT)
    expect(view).to_have_attribute("data-status", "Running")
    assert [line for line in log_lines(view) if "%|" in line] == ["100%|##########|"]
    # Lab shows our view of the bundle, not the ipywidgets view it also holds.
    assert page.locator(".jp-Notebook .jupyter-widgets").count() == 0
    screenshot(view, "job-cell-live.png")
    go.touch()
    expect(view).to_have_attribute("data-status", "Succeeded", timeout=TIMEOUT)
    deadline = time.monotonic() + 30
    while kernel_eval(page, "answer") != "42" and time.monotonic() < deadline:
        page.wait_for_timeout(300)
    assert kernel_eval(page, "answer") == "42"
    # Its output files are listed in the view; an image opens in Lab (a copy in job-outputs/<id>/).
    job_id = view.get_attribute("data-job-id")
    view.locator(".jp-JobFiles-file", has_text="loss.png").get_by_role("button", name="Open").click()
    image = page.locator(".jp-ImageViewer:visible img")
    expect(image).to_be_visible(timeout=TIMEOUT)
    page.wait_for_function(f"window.jupyterapp.shell.currentWidget?.context?.path === 'job-outputs/{job_id}/loss.png'",
                           timeout=TIMEOUT)
    assert not page.errors, page.errors

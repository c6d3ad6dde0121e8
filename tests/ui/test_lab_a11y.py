"""Accessibility of every view of jupyter-jobs in a real JupyterLab and Chromium, in the light and the dark
theme: axe-core (npm's axe-core, injected into the page) finds no critical or serious violation, and every
visible text, badge, form value and placeholder has a contrast of at least 4.5:1 against what is behind it.
Views: the Jobs table listing jobs in each status (Pending with its reason, Running, Succeeded, Failed,
Cancelled), narrow and wide (a row selected, the bulk bar shown; rows hovered), job pages opened from the
panel, the New job form showing the server's errors and for a notebook with shipped files and parameters,
and the rerun dialog showing the server's error. A screenshot of each view in each theme, and its measured
ratios, go to the tests' artifacts (`<view>-<theme>.png`, `<view>-<theme>-contrast.json`). The last test
shows the checks catch what they should on markup made to fail."""
from __future__ import annotations

import json
import re
import time
import urllib.request

import nbformat
import pytest
from a11y import Themes, axe_path, axe_violations, contrasts, low_contrast
from playwright.sync_api import expect
from test_lab_job_view import ENDED, api
from test_lab_table import sidebar_width

pytestmark = pytest.mark.integration
TIMEOUT = 60_000

# Where each view is, in one place: point these at new markup when a view is rebuilt.
SEL = {
    "panel": "#jupyter-jobs-panel",
    "panel_tab": '.jp-SideBar .lm-TabBar-tab[data-id="jupyter-jobs-panel"]',
    "panel_row": "#jupyter-jobs-panel .jp-JobsPanel-item[data-job-id='{id}']",
    "panel_new": "#jupyter-jobs-panel .jp-JobsPanel-new",
    "panel_table": "#jupyter-jobs-panel .jp-JobsTable",
    "row_select": "#jupyter-jobs-panel .jp-JobsPanel-item[data-job-id='{id}'] .jp-JobsTable-select input",
    "bulk_bar": "#jupyter-jobs-panel .jp-JobsTable-bulk",
    "job_page": ".jp-MainAreaWidget:not(.lm-mod-hidden) #jupyter-jobs-detail-{id}",
    "job_rerun": "#jupyter-jobs-detail-{id} .jp-JobDetail-rerun",
    "form": "#jupyter-jobs-create",
    "form_error": "#jupyter-jobs-create .jp-JobForm-error",
    "form_kind": "#jupyter-jobs-create select[name=kind]",
    "form_add_selection": "#jupyter-jobs-create .jp-JobForm-addSelection",
    "form_files": "#jupyter-jobs-create .jp-JobForm-fileList",
    "form_param_rows": "#jupyter-jobs-create .jp-JobForm-paramRow",
    "form_yaml": "#jupyter-jobs-create .jp-JobForm-yaml",
    "file_browser_tab": '.jp-SideBar .lm-TabBar-tab[data-id="filebrowser"]',
    "file_browser_refresh": ".jp-FileBrowser .jp-ToolbarButtonComponent[title*='Refresh']",
    "file_item": "#filebrowser .jp-DirListing-item",
    "dialog": ".jp-Dialog",
    "rerun_form": ".jp-Dialog .jp-JobRerunForm",
    "rerun_error": ".jp-Dialog .jp-JobRerunForm-error",
}


@pytest.fixture(scope="module")
def jobs(lab):
    """Jobs in each status, made once for the module and cancelled and deleted after it: Succeeded, Failed,
    Running (as many as fill the host's CPUs), Pending (one waiting for a CPU, one queued behind it),
    Cancelled."""
    if axe_path() is None:
        pytest.fail("axe-core is not installed: run `jlpm install` in labextension/")
    ids: list[int] = []

    def submit(spec: dict) -> dict:
        job = api(lab, "POST", "jobs", spec)
        ids.append(job["id"])
        return job

    def wait(job_id: int, done, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while not done(job := api(lab, "GET", f"jobs/{job_id}")):
            assert time.monotonic() < deadline, f"job {job_id} is still {job['status']}: {job['message']}"
            time.sleep(0.2)
        return job

    def waiting(job: dict) -> bool:
        reason = job["message"] or ""
        return job["status"] == "Pending" and any(why in reason for why in ("in line for", "waiting for", "queued behind"))

    try:
        made = {"Succeeded": submit({"name": "prepare-data", "desc": "Cleans the raw data for training.",
                                     "labels": {"team": "vision", "stage": "prep"},
                                     "cmd": "echo prepared; echo 'epoch,loss' > $JOB_OUTPUTS/loss.csv;"
                                            " echo '{}' > $JOB_OUTPUTS/summary.json"}),
                "Failed": submit({"name": "broken-step", "cmd": "echo oops >&2; exit 3"})}
        for status, job in made.items():
            made[status] = wait(job["id"], lambda j: j["status"] in ENDED)
            assert made[status]["status"] == status, made[status]
        # Running jobs until the host is full (its CPUs, or the server's max_concurrent): the next one waits.
        config = api(lab, "GET", "config")
        slots = int(config["capacity"]["cpus"]) if not config.get("max_concurrent") else min(
            int(config["capacity"]["cpus"]), config["max_concurrent"])
        for n in range(slots + 2):
            job = submit({"name": f"train-{n}", "cmd": "echo training; sleep 600"})
            job = wait(job["id"], lambda j: j["status"] == "Running" or waiting(j))
            if job["status"] == "Pending":
                made["Pending"] = job
                break
            made.setdefault("Running", job)
        made["Queued"] = wait(submit({"name": "evaluate", "cmd": "echo eval"})["id"], waiting)
        cancelled = submit({"name": "abandoned", "cmd": "sleep 600"})
        api(lab, "POST", f"jobs/{cancelled['id']}/cancel")
        made["Cancelled"] = wait(cancelled["id"], lambda j: j["status"] == "Cancelled")
        assert {"Succeeded", "Failed", "Running", "Pending", "Cancelled"} <= set(made), made.keys()
        yield made
    finally:
        for job_id in ids:
            if api(lab, "GET", f"jobs/{job_id}")["status"] not in ENDED:
                api(lab, "POST", f"jobs/{job_id}/cancel")
        for job_id in ids:
            deadline = time.monotonic() + 30
            while api(lab, "GET", f"jobs/{job_id}")["status"] not in ENDED and time.monotonic() < deadline:
                time.sleep(0.2)
            api(lab, "DELETE", f"jobs/{job_id}")


@pytest.fixture
def themes(page, lab):
    """Switches the theme; the server's theme is put back after the test (the server is shared)."""
    switcher = Themes(page, lab)
    yield switcher
    switcher.restore()


def left_sidebar_saved_narrow(lab, timeout: float = 30) -> None:
    """Wait until the workspace Lab saves on the server has the left sidebar narrow again (under 30% of the
    window): a page opened next restores that layout."""
    deadline = time.monotonic() + timeout
    while True:
        request = urllib.request.Request(f"{lab['base']}/lab/api/workspaces/default",
                                         headers={"Authorization": f"token {lab['token']}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            layout = json.loads(response.read())["data"].get("layout-restorer:data", {})
        sizes = layout.get("relativeSizes") or [1]
        if sizes[0] < 0.3:
            return
        assert time.monotonic() < deadline, f"the workspace still has the left sidebar at {sizes[0]:.0%}"
        time.sleep(0.3)


# Openers: each returns the CSS selector of the view it opened (the scope of the checks).
def open_panel(page) -> str:
    tab = page.locator(SEL["panel_tab"])
    expect(tab).to_be_visible(timeout=TIMEOUT)
    panel = page.locator(SEL["panel"])
    if not panel.is_visible():
        tab.click()
    try:
        expect(panel).to_be_visible(timeout=3000)
    except AssertionError:  # Lab restored it open just after the first click: that click hid it
        tab.click()
        expect(panel).to_be_visible()
    return SEL["panel"]


def open_job_page(page, job: dict) -> str:
    open_panel(page)
    page.locator(SEL["panel_row"].format(id=job["id"])).click()
    scope = SEL["job_page"].format(id=job["id"])
    expect(page.locator(scope)).to_have_attribute("data-status", job["status"], timeout=TIMEOUT)
    return scope


def open_new_job_form(page) -> str:
    """The form, filled, after the server refused a value: its error is shown too."""
    form = page.locator(open_new_job_form_blank(page))
    form.get_by_label("Name", exact=True).fill("resnet50-finetune")
    form.get_by_label("Command").fill("python train.py --epochs 10")
    form.get_by_label("Max runtime").fill("soon")
    form.get_by_role("button", name="Submit").click()
    expect(page.locator(SEL["form_error"])).to_contain_text("max-runtime", timeout=TIMEOUT)
    return SEL["form"]


def open_notebook_job_form(page, notebook: str) -> str:
    """The form for a notebook job: `notebook` (in the Lab's root) shipped from the file browser's selection,
    and two parameters."""
    scope = open_new_job_form_blank(page)
    tab = page.locator(SEL["file_browser_tab"])
    if "lm-mod-current" not in (tab.get_attribute("class") or ""):
        tab.click()
    page.locator(SEL["file_browser_refresh"]).first.click()
    page.locator(SEL["file_item"], has_text=notebook).click()
    page.locator(SEL["form_add_selection"]).click()
    expect(page.locator(SEL["form_files"])).to_contain_text(notebook)
    page.locator(SEL["form_kind"]).select_option("notebook")
    form = page.locator(scope)
    for name, value in (("epochs", "3"), ("lr", "0.5")):
        form.get_by_role("button", name="Add parameter").click()
        index = page.locator(SEL["form_param_rows"]).count()
        form.get_by_label(f"Name of parameter {index}").fill(name)
        form.get_by_label(f"Value of parameter {index}").fill(value)
    expect(page.locator(SEL["form_yaml"])).to_contain_text("lr: 0.5")
    return scope


def open_new_job_form_blank(page) -> str:
    open_panel(page)
    page.locator(SEL["panel_new"]).click()
    expect(page.locator(SEL["form"])).to_be_visible(timeout=TIMEOUT)
    return SEL["form"]


def open_rerun_dialog(page, job: dict) -> str:
    """The rerun dialog of `job`, after the server refused an instance type: its error is shown too."""
    open_job_page(page, job)
    page.locator(SEL["job_rerun"].format(id=job["id"])).click()
    form = page.locator(SEL["rerun_form"])
    expect(form).to_be_visible(timeout=TIMEOUT)
    form.get_by_label("Instance type").fill("huge")
    page.locator(SEL["dialog"]).get_by_role("button", name="Rerun").click()
    expect(page.locator(SEL["rerun_error"])).to_contain_text("instance-type", timeout=TIMEOUT)
    return SEL["dialog"]


def check_view(page, themes, shots, view: str, scope: str, measured: tuple[str, ...] = ()) -> list[str]:
    """axe and contrast in both themes, a screenshot and the measured ratios (JSON) of each; the problems
    found, one line each. `measured`: CSS classes whose text the contrast walk must have measured."""
    problems = []
    for theme in ("light", "dark"):
        themes.use(theme)
        page.screenshot(path=str(shots / f"{view}-{theme}.png"))
        problems += [f"[{view}, {theme}] axe: {line}" for line in axe_violations(page, scope)]
        problems += [f"[{view}, {theme}] contrast {line}" for line in low_contrast(page, scope)]
        ratios = contrasts(page, scope)
        (shots / f"{view}-{theme}-contrast.json").write_text(json.dumps(ratios, indent=1))
        problems += [f"[{view}, {theme}] no text measured in .{name}" for name in measured
                     if not any(f".{name}" in r["selector"] for r in ratios)]
    return problems


def assert_none(problems: list[str]) -> None:
    assert not problems, f"{len(problems)} accessibility problem(s):\n" + "\n".join(problems)


@pytest.mark.timeout(300)
def test_panel(page, lab, jobs, themes, shots):
    scope = open_panel(page)
    for status in ("Pending", "Running", "Succeeded", "Failed", "Cancelled"):
        expect(page.locator(SEL["panel_row"].format(id=jobs[status]["id"]))).to_have_attribute(
            "data-status", status, timeout=TIMEOUT)
    expect(page.locator(SEL["panel_row"].format(id=jobs["Pending"]["id"]))).to_contain_text(
        re.compile("in line for|waiting for"))
    badges = tuple(f"jp-JobsBadge-{status}" for status in ("Pending", "Running", "Succeeded", "Failed", "Cancelled"))
    problems = check_view(page, themes, shots, "panel", scope, measured=badges + ("jp-JobsPanel-reason",))
    # Under the pointer a row's background changes: its texts still read 4.5:1.
    for theme in ("light", "dark"):
        themes.use(theme)
        for status in ("Pending", "Failed"):
            row = SEL["panel_row"].format(id=jobs[status]["id"])
            page.locator(row).hover()
            problems += [f"[panel, {theme}, {status} row hovered] contrast {line}" for line in low_contrast(page, row)]
    # Wide: the table's columns; one row selected (its background changes) and the bulk actions shown.
    sidebar_width(page, 900)
    try:
        expect(page.locator(SEL["panel_table"])).to_have_class(re.compile(r"\bjp-mod-wide\b"), timeout=TIMEOUT)
        page.locator(SEL["row_select"].format(id=jobs["Failed"]["id"])).check()
        expect(page.locator(SEL["bulk_bar"])).to_be_visible()
        problems += check_view(page, themes, shots, "panel-wide", scope, measured=badges + ("jp-JobsTable-bulkCount",))
    finally:
        page.locator(SEL["row_select"].format(id=jobs["Failed"]["id"])).uncheck()
        sidebar_width(page, 260)
        left_sidebar_saved_narrow(lab)  # the width is saved in the workspace the other tests open
    assert_none(problems)
    assert not page.errors, page.errors


@pytest.mark.timeout(300)
def test_job_pages(page, lab, jobs, themes, shots):
    problems = []
    for status in ("Running", "Failed", "Pending", "Succeeded"):
        scope = open_job_page(page, jobs[status])
        measured = (f"jp-JobsBadge-{status}",)
        if status == "Running":
            expect(page.locator(scope + " .jp-JobDetail-log")).to_contain_text("training", timeout=TIMEOUT)
        if status == "Succeeded":  # its description, labels and output files
            expect(page.locator(scope + " .jp-JobFiles-link", has_text="loss.csv")).to_be_visible(timeout=TIMEOUT)
            measured += ("jp-JobDetail-desc", "jp-JobsLabel", "jp-JobFiles-link")
        problems += check_view(page, themes, shots, f"job-page-{status.lower()}", scope, measured=measured)
    assert_none(problems)
    assert not page.errors, page.errors


@pytest.mark.timeout(300)
def test_new_job_form(page, lab, jobs, themes, shots):
    scope = open_new_job_form(page)
    assert_none(check_view(page, themes, shots, "new-job-form", scope,
                           measured=("jp-JobForm-error", "jp-JobForm-fieldError")))
    assert not page.errors, page.errors


@pytest.mark.timeout(300)
def test_new_job_form_for_a_notebook(page, lab, jobs, themes, shots):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("epochs = 1\nlr = 0.1")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    nbformat.write(nb, lab["root"] / "a11y-params.ipynb")
    try:
        scope = open_notebook_job_form(page, "a11y-params.ipynb")
        assert_none(check_view(page, themes, shots, "new-job-form-notebook", scope,
                               measured=("jp-JobForm-file", "jp-JobForm-yaml")))
    finally:
        (lab["root"] / "a11y-params.ipynb").unlink()
    assert not page.errors, page.errors


@pytest.mark.timeout(300)
def test_rerun_dialog(page, lab, jobs, themes, shots):
    scope = open_rerun_dialog(page, jobs["Succeeded"])
    assert_none(check_view(page, themes, shots, "rerun-dialog", scope, measured=("jp-JobRerunForm-error",)))
    page.locator(SEL["dialog"]).get_by_role("button", name="Cancel").click()
    expect(page.locator(SEL["dialog"])).to_have_count(0)
    assert not page.errors, page.errors


def _wcag_ratio(fg: tuple, bg: tuple) -> float:
    def lum(c):
        r, g, b = ((v / 255) / 12.92 if v / 255 <= 0.03928 else ((v / 255 + 0.055) / 1.055) ** 2.4 for v in c)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b
    high, low = sorted((lum(fg), lum(bg)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _blend(top: tuple, alpha: float, bottom: tuple) -> tuple:
    return tuple(t * alpha + b * (1 - alpha) for t, b in zip(top, bottom))


@pytest.mark.timeout(120)
def test_the_checks_catch_what_they_should(page, lab):
    """The helpers on markup made to fail: a badge at 2.7:1, grey text on a translucent layer over a dark
    box (blended as the browser draws it), a placeholder, a select without a name."""
    page.wait_for_function("window.jupyterapp && window.jupyterapp.commands.hasCommand('jupyter-jobs:create')",
                           timeout=TIMEOUT)
    page.evaluate("""() => {
        const probe = document.createElement('div');
        probe.id = 'jj-a11y-probe';
        probe.style.cssText = 'position: fixed; top: 0; left: 0; z-index: 100000; background: #fff; padding: 8px';
        probe.innerHTML = `
          <span class="bad-badge" style="color: #fff; background: #f57c00">Cancelled</span>
          <div style="background: #202020"><div style="background: rgba(255, 255, 255, 0.25)">
            <span class="blended" style="color: rgba(255, 255, 255, 0.5)">half white</span></div></div>
          <input class="faint" placeholder="type here" aria-label="faint" style="background: #fff">
          <select><option>one</option></select>
          <span class="good" style="color: #000">fine</span>`;
        document.body.append(probe);
        document.head.insertAdjacentHTML('beforeend',
            '<style id="jj-a11y-probe-style">#jj-a11y-probe .faint::placeholder { color: #bbb; opacity: 1 }</style>');
    }""")
    try:
        found = {r["text"]: r for r in contrasts(page, "#jj-a11y-probe")}
        assert found["Cancelled"]["ratio"] == pytest.approx(_wcag_ratio((255, 255, 255), (0xF5, 0x7C, 0x00)), abs=0.01)
        layer = _blend((255, 255, 255), 0.25, (0x20, 0x20, 0x20))
        text = _blend((255, 255, 255), 0.5, layer)
        assert found["half white"]["ratio"] == pytest.approx(_wcag_ratio(text, layer), abs=0.02)
        assert found["type here"]["what"] == "placeholder"
        assert found["type here"]["ratio"] == pytest.approx(_wcag_ratio((0xBB,) * 3, (255, 255, 255)), abs=0.01)
        low = low_contrast(page, "#jj-a11y-probe")
        assert {line.split("'")[1] for line in low} == {"Cancelled", "half white", "type here"}, low
        violations = axe_violations(page, "#jj-a11y-probe")
        assert any(line.startswith("select-name (critical)") for line in violations), violations
        # axe's own contrast rule sees the badge (it would not in Lab without a11y.py's body height fix).
        assert any(line.startswith("color-contrast (serious)") and "Cancelled" in line for line in violations), violations
    finally:
        page.evaluate("() => { document.getElementById('jj-a11y-probe').remove();"
                      " document.getElementById('jj-a11y-probe-style').remove(); }")

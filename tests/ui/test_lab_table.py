"""The Jobs panel's job table in a real JupyterLab and a real Chromium: 200 jobs listed (the rowsPerPage
setting) and an idle table that does not change; focus and selected text that stay on a row while another
job changes, and the change said in the live region; a keyboard-only walk (open, filter, move, cancel through
the dialog, rerun with epochs 80); Delete from a row; bulk cancel of three jobs and a bulk delete whose
refusal is reported; screenshots of the wide and the narrow table."""
from __future__ import annotations

import json
import secrets
import sys
import time
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect
from test_lab_job_actions import wait_status
from test_lab_job_view import api, submit  # noqa: F401  (submit is a fixture)
from test_lab_panel import open_panel

pytestmark = pytest.mark.integration
TIMEOUT = 60_000
ENDED = ("Succeeded", "Failed", "Cancelled", "Unknown")


def set_settings(lab, values: dict) -> None:
    """Write jupyter-jobs' settings (schema/plugin.json) through Lab's settings API; a page loaded after reads them."""
    request = urllib.request.Request(
        f"{lab['base']}/lab/api/settings/jupyter-jobs:plugin", method="PUT",
        data=json.dumps({"raw": json.dumps(values)}).encode(),
        headers={"Authorization": f"token {lab['token']}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status in (200, 204)


def exists(lab, job_id: int) -> bool:
    try:
        api(lab, "GET", f"jobs/{job_id}")
        return True
    except urllib.error.HTTPError as error:
        assert error.code == 404
        return False


def sidebar_width(page, width: int) -> None:
    """Drag the edge of the left sidebar until the panel is `width` px wide."""
    panel = page.locator("#jupyter-jobs-panel").bounding_box()
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle:visible").first
    box = handle.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(panel["x"] + width, y, steps=8)
    page.mouse.up()


def restored(page) -> None:
    """Lab has put back its saved layout, and its main area has a widget (the Launcher, on an empty one)
    that took the focus: nothing takes it from the panel afterwards."""
    page.wait_for_function("window.jupyterapp && window.jupyterapp.commands.hasCommand('jupyter-jobs:open')",
                           timeout=TIMEOUT)
    page.evaluate("() => window.jupyterapp.restored.then(() => true)")
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget !== null", timeout=TIMEOUT)
    # Lumino delivers the activation (which focuses it) on the next animation frame.
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


def filter_to(panel, text: str) -> None:
    panel.get_by_role("searchbox", name="search name, command or id").fill(text)


def rows(panel):
    return panel.locator(".jp-JobsTable-row")


def row(panel, job: dict):
    return panel.locator(f".jp-JobsTable-row[data-job-id='{job['id']}']")


def focused(page) -> dict:
    """What has the keyboard: its tag, class, accessible label, and the job id of its row."""
    return page.evaluate("""() => { const e = document.activeElement; const r = e && e.closest('tr[data-job-id]');
        return {tag: e.tagName, cls: e.className, label: e.getAttribute('aria-label') || e.textContent.trim(),
                row: r ? Number(r.dataset.jobId) : null, isRow: !!r && r === e}; }""")


def tab_until(page, test, limit: int = 30, key: str = "Tab") -> dict:
    for _ in range(limit):
        page.keyboard.press(key)
        now = focused(page)
        if test(now):
            return now
    raise AssertionError(f"{key} never reached it; focus is on {focused(page)}")


@pytest.mark.timeout(900)
def test_200_jobs_listed_and_an_idle_table_makes_no_mutation(page, lab, submit, shots):  # noqa: F811  (the fixture imported above)
    tag = f"idle{secrets.token_hex(3)}"
    ids = [submit({"name": f"{tag}-{i:03d}", "cmd": "true"})["id"] for i in range(200)]
    set_settings(lab, {"rowsPerPage": 250})
    try:
        deadline = time.monotonic() + 600
        while True:
            listed = api(lab, "GET", f"jobs?text={tag}&limit=250")["jobs"]
            if len(listed) == 200 and all(job["status"] in ENDED for job in listed):
                break
            assert time.monotonic() < deadline, "the 200 jobs did not end in 10 min"
            time.sleep(1)
        assert sorted(job["id"] for job in listed) == sorted(ids)

        page.reload()  # reads the setting: 250 rows a page
        restored(page)
        panel = open_panel(page)
        filter_to(panel, tag)
        expect(rows(panel)).to_have_count(200, timeout=TIMEOUT)
        expect(panel.locator(".jp-JobsPanel-more")).to_have_count(0)  # one page: the setting, not the default 50

        sidebar_width(page, 900)
        table = panel.locator(".jp-JobsTable")
        expect(table).to_have_class("jp-JobsTable jp-mod-wide", timeout=TIMEOUT)
        headers = table.locator("thead th").all_inner_texts()
        assert [h.strip(" ▲▼") for h in headers[1:]] == ["Status", "Name", "Timing", "Actions"], headers
        expect(table.locator("th.jp-JobsTable-timing")).to_have_attribute("aria-sort", "descending")  # newest first
        first = row(panel, {"id": max(ids)})
        expect(rows(panel).first).to_have_attribute("data-job-id", str(max(ids)))  # newest first
        expect(first.locator(".jp-JobsPanel-name")).to_have_attribute("title", f"{tag}-199")
        page.screenshot(path=str(shots / "jobs-table-wide.png"))

        # Scrolled to the end, the header and the filters are where they were.
        header, search = table.locator("thead th.jp-JobsTable-name"), panel.locator(".jp-JobsPanel-search")
        before = (header.bounding_box()["y"], search.bounding_box()["y"])
        panel.locator(".jp-JobsPanel-scroll").evaluate("node => { node.scrollTop = node.scrollHeight; }")
        expect(rows(panel).last).to_be_in_viewport()
        assert (header.bounding_box()["y"], search.bounding_box()["y"]) == before
        panel.locator(".jp-JobsPanel-scroll").evaluate("node => { node.scrollTop = 0; }")

        # Nothing changes on the server: the table's DOM does not change either for 10 s (the list keeps
        # being refreshed meanwhile; the requests are counted to say so).
        requests: list[str] = []
        page.on("request", lambda r: "/jupyter-jobs/api/" in r.url and requests.append(r.url))
        mutations = page.evaluate("""() => new Promise(resolve => {
            const table = document.querySelector('#jupyter-jobs-panel .jp-JobsTable');
            const seen = [];
            const observer = new MutationObserver(records => seen.push(...records.map(r => r.type + ' ' +
                (r.target.nodeName) + ' ' + (r.attributeName || ''))));
            observer.observe(table, {subtree: true, childList: true, attributes: true, characterData: true});
            setTimeout(() => { observer.disconnect(); resolve(seen); }, 10000);
        })""")
        assert mutations == [], mutations[:20]
        print(f"API requests during the idle 10 s: {len(requests)}")
        expect(rows(panel)).to_have_count(200)

        # Sorting by a column header: aria-sort says how.
        table.get_by_role("button", name="Name").click()
        expect(table.locator("th.jp-JobsTable-name")).to_have_attribute("aria-sort", "ascending")
        expect(rows(panel).first).to_have_attribute("data-job-id", str(min(ids)))
        table.get_by_role("button", name="Name").click()
        expect(table.locator("th.jp-JobsTable-name")).to_have_attribute("aria-sort", "descending")
        expect(rows(panel).first).to_have_attribute("data-job-id", str(max(ids)))

        sidebar_width(page, 260)
        expect(table).to_have_class("jp-JobsTable jp-mod-narrow", timeout=TIMEOUT)
        expect(first.locator(".jp-JobsPanel-meta")).to_be_visible()
        expect(first.get_by_role("button", name=f"Delete job #{max(ids)} '{tag}-199'")).to_be_visible()
        page.screenshot(path=str(shots / "jobs-table-narrow.png"))
    finally:
        set_settings(lab, {})
    assert not page.errors, page.errors


@pytest.mark.timeout(240)
def test_focus_and_selected_text_stay_while_another_job_changes(page, lab, submit):  # noqa: F811  (the fixture imported above)
    tag = f"focus{secrets.token_hex(3)}"
    done = submit({"name": f"{tag}-done", "cmd": "true"})
    sleeper = submit({"name": f"{tag}-sleeper", "cmd": "sleep 300"})
    assert wait_status(lab, done["id"])["status"] == "Succeeded"
    assert wait_status(lab, sleeper["id"], ("Running",))["status"] == "Running"
    restored(page)
    panel = open_panel(page)
    filter_to(panel, tag)
    expect(rows(panel)).to_have_count(2, timeout=TIMEOUT)
    expect(row(panel, sleeper)).to_have_attribute("data-status", "Running", timeout=TIMEOUT)
    # Its clock ticks on, though the list is reloaded only when a job changes.
    took = row(panel, sleeper).locator(".jp-JobsPanel-meta")
    expect(took).not_to_have_text(took.inner_text(), timeout=5000)

    ours = row(panel, done)
    ours.focus()
    handle = ours.element_handle()
    # The job id selected (to copy it), as a user would with the mouse.
    page.evaluate("""(row) => { const range = document.createRange();
        range.selectNodeContents(row.querySelector('.jp-JobsPanel-id'));
        getSelection().removeAllRanges(); getSelection().addRange(range); }""", handle)
    assert page.evaluate("(row) => document.activeElement === row", handle)

    api(lab, "POST", f"jobs/{sleeper['id']}/cancel")
    expect(row(panel, sleeper)).to_have_attribute("data-status", "Cancelled", timeout=TIMEOUT)
    # The same element still has the keyboard, and the selected text is still selected.
    assert page.evaluate("(row) => row.isConnected && document.activeElement === row", handle)
    assert page.evaluate("() => getSelection().toString()") == f"#{done['id']}"
    # A screen reader hears it, politely.
    live = panel.locator(".jp-JobsTable-live")
    expect(live).to_have_attribute("aria-live", "polite")
    expect(live).to_have_text(f"Job {sleeper['id']} {tag}-sleeper: Cancelled", timeout=TIMEOUT)

    # Space ticks the focused row; Enter opens its job.
    page.keyboard.press("Space")
    expect(ours).to_have_attribute("aria-selected", "true")
    expect(ours.get_by_role("checkbox")).to_be_checked()
    expect(panel.locator(".jp-JobsTable-bulk")).to_contain_text("1 selected")
    page.keyboard.press("Enter")
    expect(page.locator(f".jp-MainAreaWidget:not(.lm-mod-hidden) #jupyter-jobs-detail-{done['id']}")).to_be_visible(
        timeout=TIMEOUT)
    assert not page.errors, page.errors


@pytest.mark.timeout(300)
def test_keyboard_only_filter_cancel_and_rerun_with_80_epochs(page, lab, submit, shots):  # noqa: F811  (the fixture imported above)
    tag = f"kbd{secrets.token_hex(3)}"
    train = submit({"name": f"{tag}-train", "cmd": "echo training for ${epochs} epochs; sleep 300",
                    "args": {"epochs": 40}})
    warmup = submit({"name": f"{tag}-warmup", "cmd": "true"})  # newer: listed first
    assert wait_status(lab, warmup["id"])["status"] == "Succeeded"
    assert wait_status(lab, train["id"], ("Running",))["status"] == "Running"
    # Earlier tests of this server leave notebooks open in its saved workspace; a notebook in command mode
    # keeps keys for its cells. The walk starts in a workspace of its own, with nothing open but the Launcher.
    page.goto(f"{lab['base']}/lab/workspaces/{tag}?reset&token={lab['token']}")
    restored(page)

    # Open the panel from the command palette; the keyboard lands in its search box.
    page.keyboard.press("Control+Shift+C")
    palette = page.locator(".lm-CommandPalette-input:visible")
    expect(palette).to_be_focused(timeout=TIMEOUT)
    page.keyboard.type("Show Jobs")
    expect(page.locator(".lm-CommandPalette-item.lm-mod-active")).to_contain_text("Show Jobs")
    page.keyboard.press("Enter")
    panel = page.locator("#jupyter-jobs-panel")
    expect(panel).to_be_visible(timeout=TIMEOUT)
    expect(panel.locator(".jp-JobsPanel-search")).to_be_focused(timeout=TIMEOUT)
    page.keyboard.type(tag)
    expect(rows(panel)).to_have_count(2, timeout=TIMEOUT)

    # Into the table (one tab stop: the first row), then down to the training job.
    now = tab_until(page, lambda f: f["isRow"])
    assert now["row"] == warmup["id"], now
    page.keyboard.press("ArrowDown")
    assert focused(page)["row"] == train["id"] and focused(page)["isRow"]
    page.keyboard.press("Home")
    assert focused(page)["row"] == warmup["id"]
    page.keyboard.press("End")
    assert focused(page)["row"] == train["id"] and focused(page)["isRow"]

    # Delete on a job still running: it must be cancelled first, which the dialog offers; Escape keeps it.
    page.keyboard.press("Delete")
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text(f"Job #{train['id']} '{tag}-train' has not ended", timeout=TIMEOUT)
    expect(dialog).to_contain_text("cancel it first")
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    assert api(lab, "GET", f"jobs/{train['id']}")["status"] == "Running"
    assert focused(page)["row"] == train["id"] and focused(page)["isRow"]

    # Cancel it: its Cancel button, then the dialog that says what is lost (Keep running is the default).
    tab_until(page, lambda f: f["label"].startswith("Cancel job #"))
    page.keyboard.press("Enter")
    expect(dialog).to_contain_text(f"Cancel job #{train['id']} '{tag}-train'?", timeout=TIMEOUT)
    expect(dialog).to_contain_text("what it has not written is lost")
    tab_until(page, lambda f: f["tag"] == "BUTTON" and f["label"] == "Cancel job", limit=6)
    page.keyboard.press("Enter")
    expect(dialog).to_have_count(0, timeout=TIMEOUT)
    assert wait_status(lab, train["id"])["status"] == "Cancelled"
    expect(row(panel, train)).to_have_attribute("data-status", "Cancelled", timeout=TIMEOUT)
    # The Cancel button became Delete, the same element: the keyboard is still in the row.
    assert focused(page)["row"] == train["id"], focused(page)

    # Rerun it through the form, epochs changed to 80.
    before = {job["id"] for job in api(lab, "GET", "jobs?limit=500")["jobs"]}
    tab_until(page, lambda f: f["label"].startswith("Rerun job #"), limit=5)
    page.keyboard.press("Enter")
    form = page.locator(".jp-Dialog .jp-JobRerunForm")
    expect(form.get_by_label("epochs", exact=True)).to_have_value("40", timeout=TIMEOUT)
    tab_until(page, lambda f: f["tag"] == "INPUT" and "args.epochs" in page.evaluate(
        "document.activeElement.dataset.field || ''"), limit=15)
    page.keyboard.press("Control+a")
    page.keyboard.type("80")
    page.screenshot(path=str(shots / "jobs-table-rerun-form.png"))
    page.keyboard.press("Enter")
    expect(page.locator(".jp-Dialog")).to_have_count(0, timeout=TIMEOUT)
    deadline = time.monotonic() + 30
    while not (new := [j for j in api(lab, "GET", "jobs?limit=500")["jobs"] if j["id"] not in before]) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(new) == 1, new
    submit.ids.append(new[0]["id"])  # type: ignore[attr-defined]
    rerun = api(lab, "GET", f"jobs/{new[0]['id']}")
    assert rerun["rerun_of"] == train["id"]
    assert rerun["spec"]["args"] == {"epochs": 80}
    assert type(rerun["spec"]["args"]["epochs"]) is int
    assert not page.errors, page.errors


@pytest.mark.timeout(300)
def test_delete_from_a_row_bulk_cancel_three_and_a_bulk_delete_that_reports_what_it_could_not(
        page, lab, submit, shots):  # noqa: F811  (the fixture imported above)
    tag = f"bulk{secrets.token_hex(3)}"
    ended = submit({"name": f"{tag}-ended", "cmd": "true"})
    sleepers = [submit({"name": f"{tag}-sleep{i}", "cmd": "sleep 300"}) for i in range(3)]
    assert wait_status(lab, ended["id"])["status"] == "Succeeded"
    restored(page)
    panel = open_panel(page)
    filter_to(panel, tag)
    expect(rows(panel)).to_have_count(4, timeout=TIMEOUT)

    # Delete from the row: it asks, saying what is lost.
    row(panel, ended).get_by_role("button", name=f"Delete job #{ended['id']} '{tag}-ended'").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text("Its log and outputs are removed", timeout=TIMEOUT)
    dialog.get_by_role("button", name="Delete job").click()
    expect(row(panel, ended)).to_have_count(0, timeout=TIMEOUT)
    assert not exists(lab, ended["id"])
    submit.ids.remove(ended["id"])  # type: ignore[attr-defined]

    # Select the three sleepers; one dialog cancels them all.
    for job in sleepers:
        row(panel, job).get_by_role("checkbox").check()
    bar = panel.locator(".jp-JobsTable-bulk")
    expect(bar).to_contain_text("3 selected")
    page.screenshot(path=str(shots / "jobs-table-selected.png"))
    bar.get_by_role("button", name="Cancel 3").click()
    expect(dialog).to_contain_text("Cancel 3 jobs?", timeout=TIMEOUT)
    expect(dialog).to_contain_text("what they have not written is lost")
    dialog.get_by_role("button", name="Cancel 3 jobs").click()
    for job in sleepers:
        assert wait_status(lab, job["id"])["status"] == "Cancelled"
        expect(row(panel, job)).to_have_attribute("data-status", "Cancelled", timeout=TIMEOUT)
    expect(bar).to_have_count(0)  # the selection is cleared

    # A bulk delete of an ended job and a running one: the ended one goes, the refusal is reported.
    running = submit({"name": f"{tag}-running", "cmd": "sleep 300"})
    expect(row(panel, running)).to_have_count(1, timeout=TIMEOUT)
    row(panel, running).get_by_role("checkbox").check()
    row(panel, sleepers[0]).get_by_role("checkbox").check()
    bar.get_by_role("button", name="Delete 2").click()
    expect(dialog).to_contain_text("Delete 2 jobs?", timeout=TIMEOUT)
    dialog.get_by_role("button", name="Delete 2 jobs").click()
    expect(row(panel, sleepers[0])).to_have_count(0, timeout=TIMEOUT)
    assert not exists(lab, sleepers[0]["id"])
    submit.ids.remove(sleepers[0]["id"])  # type: ignore[attr-defined]
    assert exists(lab, running["id"])
    toast = page.locator(".Toastify__toast", has_text="Could not delete 1 job")
    expect(toast).to_contain_text(f"#{running['id']} '{tag}-running'", timeout=TIMEOUT)
    assert not page.errors, page.errors


@pytest.mark.timeout(240)
def test_open_outputs_from_a_row_opens_the_job_s_notebook(page, lab, submit):  # noqa: F811  (the fixture imported above)
    from test_lab_outputs import JOB

    tag = f"outs{secrets.token_hex(3)}"
    script = lab["root"] / f"{tag}.py"
    script.write_text(JOB)
    job = submit({"name": f"{tag}-report", "cmd": f"{sys.executable} {script}"})
    assert wait_status(lab, job["id"])["status"] == "Succeeded"
    restored(page)
    panel = open_panel(page)
    filter_to(panel, tag)
    expect(rows(panel)).to_have_count(1, timeout=TIMEOUT)
    # It made a notebook and a plot: the notebook is what opens, copied into job-outputs/<id>/.
    row(panel, job).get_by_role("button", name=f"Open the 2 outputs of job #{job['id']} '{tag}-report'").click()
    target = f"job-outputs/{job['id']}/report.ipynb"
    page.wait_for_function(f"window.jupyterapp.shell.currentWidget?.context?.path === {target!r}", timeout=TIMEOUT)
    expect(page.locator(".jp-NotebookPanel:visible")).to_have_count(1, timeout=TIMEOUT)
    assert not page.errors, page.errors

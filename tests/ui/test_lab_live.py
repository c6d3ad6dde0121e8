"""Live without churn, in a real JupyterLab and a real Chromium: an idle Lab (the Jobs panel and a finished
job's page open) asks the jobs API nothing but the one open long-poll of the change feed; a status change
made elsewhere (through the REST API) shows in the panel's row soon after; a change that shows nowhere leaves
the list untouched."""
from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect
from test_lab_job_actions import wait_status
from test_lab_job_view import api, submit  # noqa: F401  (the fixture: jobs cancelled and deleted after)
from test_lab_panel import open_panel

pytestmark = pytest.mark.integration
TIMEOUT = 60_000
JOBS_API = "/jupyter-jobs/api/"


def is_feed(path: str) -> bool:
    """A long-poll of the change feed (GET /changes with a cursor)."""
    return path.startswith("changes?") and "cursor=" in path


def test_an_idle_lab_only_keeps_the_change_feed_open(page, lab, submit, shots):  # noqa: F811
    # Every request of the jobs API the page makes from now on: those open, and those made while idle.
    open_now: dict = {}
    idle: list[str] = []
    most_open = [0]
    watching_idle = [False]

    def started(request):
        if JOBS_API in request.url:
            path = request.url.split(JOBS_API, 1)[1]
            open_now[request] = path
            if watching_idle[0]:
                idle.append(path)
                most_open[0] = max(most_open[0], len(open_now))

    def ended(request):
        open_now.pop(request, None)

    page.on("request", started)
    page.on("requestfinished", ended)
    page.on("requestfailed", ended)

    done = submit({"name": "idle-finished", "cmd": "echo finished"})
    assert wait_status(lab, done["id"], ("Succeeded",))["status"] == "Succeeded"
    panel = open_panel(page)
    row = panel.locator(f'[data-job-id="{done["id"]}"]')
    expect(row).to_have_attribute("data-status", "Succeeded", timeout=TIMEOUT)
    row.click()
    detail = page.locator(".jp-MainAreaWidget:not(.lm-mod-hidden) .jp-JobDetail")
    expect(detail).to_have_attribute("data-status", "Succeeded", timeout=TIMEOUT)
    expect(detail.locator(".jp-JobDetail-log")).to_contain_text("finished", timeout=TIMEOUT)
    expect(detail.locator(".jp-JobDetail-outputs")).to_contain_text("No outputs", timeout=TIMEOUT)
    page.wait_for_timeout(1000)  # what opening the page asked for has been answered
    before = sorted(open_now.values())

    watching_idle[0] = True
    most_open[0] = len(open_now)
    page.wait_for_timeout(20_000)
    watching_idle[0] = False
    after = sorted(open_now.values())
    print(f"\nidle Lab: open before {before}; made in 20 s: {idle}; open after {after}")
    assert len(before) == 1 and is_feed(before[0]), before
    assert all(is_feed(path) for path in idle), idle
    assert len(after) == 1 and is_feed(after[0]), after
    assert most_open[0] <= 1, f"{most_open[0]} jobs API requests open at once"
    page.screenshot(path=str(shots / "live-idle-job-page.png"))


def test_a_status_change_made_elsewhere_shows_in_its_row_soon(page, lab, submit, shots):  # noqa: F811
    sleeper = submit({"name": "live-sleeper", "cmd": "sleep 300"})
    assert wait_status(lab, sleeper["id"], ("Running",))["status"] == "Running"
    panel = open_panel(page)
    row = panel.locator(f'[data-job-id="{sleeper["id"]}"]')
    expect(row).to_have_attribute("data-status", "Running", timeout=TIMEOUT)
    page.wait_for_timeout(1000)
    # When the row shows the new status (the browser's clock, the same machine's as the server's).
    page.evaluate("""id => {
        window.jjRowChanged = new Promise(resolve => {
            const status = () => document.querySelector(`#jupyter-jobs-panel [data-job-id="${id}"]`)
                ?.getAttribute('data-status');
            const observer = new MutationObserver(() => {
                if (status() === 'Cancelled') { observer.disconnect(); resolve(Date.now()); }
            });
            observer.observe(document.querySelector('#jupyter-jobs-panel'),
                             {subtree: true, childList: true, attributes: true});
        });
    }""", sleeper["id"])
    api(lab, "POST", f"jobs/{sleeper['id']}/cancel")  # the job is stopped, then written Cancelled
    shown = page.evaluate("Promise.race([window.jjRowChanged, new Promise(r => setTimeout(() => r(null), 60000))])")
    expect(row).to_have_attribute("data-status", "Cancelled", timeout=TIMEOUT)
    shown /= 1000
    cancelled = api(lab, "GET", f"jobs/{sleeper['id']}")
    took = shown - cancelled["finished_at"]  # from the status written on the server to the row showing it
    print(f"\nstatus change on the server -> the panel's row after {took * 1000:.0f} ms")
    assert 0 <= took < 2, f"the row changed {took:.3f} s after the status"
    page.screenshot(path=str(shots / "live-row-updated.png"))


def test_a_change_that_shows_nowhere_leaves_the_list_untouched(page, lab, submit):  # noqa: F811
    """A job off the page shown changes (it is pinned): the list reloads, finds nothing different, and leaves
    the DOM alone (no mutation: focus, selection and scroll stay)."""
    jobs = [submit({"name": f"quiet-{i}", "cmd": "true"}) for i in range(51)]
    for job in jobs:
        assert wait_status(lab, job["id"], ("Succeeded",))["status"] == "Succeeded"
    panel = open_panel(page)
    expect(panel.locator(f'[data-job-id="{jobs[-1]["id"]}"]')).to_have_attribute("data-status", "Succeeded",
                                                                                 timeout=TIMEOUT)
    oldest = panel.locator(f'[data-job-id="{jobs[0]["id"]}"]')
    expect(oldest).to_have_count(0)  # past the first page (50 rows)
    page.wait_for_timeout(1000)
    lists: list[str] = []
    page.on("request", lambda request: lists.append(request.url) if f"{JOBS_API}jobs?" in request.url else None)
    page.evaluate("""() => {
        window.jjMutations = 0;
        new MutationObserver(records => { window.jjMutations += records.length; })
            .observe(document.querySelector('#jupyter-jobs-panel'),
                     {subtree: true, childList: true, attributes: true, characterData: true});
    }""")
    api(lab, "POST", f"jobs/{jobs[0]['id']}/pin")
    deadline = time.monotonic() + 10
    while not lists and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert lists, "the list was not reloaded after the change feed named a job"
    page.wait_for_timeout(1000)
    assert page.evaluate("window.jjMutations") == 0, "the list was rebuilt though nothing it shows changed"


@pytest.mark.timeout(240)
def test_the_job_page_keeps_focus_and_selection_when_its_job_changes(page, lab, submit):  # noqa: F811
    from test_lab_job_actions import open_job

    job = submit({"name": "page-keeps-focus", "cmd": "echo started; sleep 300"})
    detail = open_job(page, job["id"])
    expect(detail).to_have_attribute("data-status", "Running", timeout=TIMEOUT)
    # The keyboard on the id's copy button, the command's text selected (to copy it by hand).
    copy = detail.get_by_role("button", name=f"Copy job id {job['id']}")
    copy.focus()
    command = detail.locator("tr", has=page.locator("th", has_text="Command")).locator(".jp-JobDetail-value")
    command.evaluate("""(node) => { const range = document.createRange(); range.selectNodeContents(node);
        getSelection().removeAllRanges(); getSelection().addRange(range); }""")
    selected = page.evaluate("() => getSelection().toString()")
    assert "sleep 300" in selected

    api(lab, "POST", f"jobs/{job['id']}/cancel")
    expect(detail).to_have_attribute("data-status", "Cancelled", timeout=TIMEOUT)
    expect(detail.locator("tr", has=page.locator("th", has_text="Status"))).to_contain_text("Cancelled")
    # Only what changed was touched: the button still has the keyboard, the command is still selected.
    assert copy.evaluate("(button) => button.isConnected && document.activeElement === button")
    assert page.evaluate("() => getSelection().toString()") == selected
    assert not page.errors, page.errors

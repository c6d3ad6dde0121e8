"""A job's page in a real JupyterLab and a real Chromium: its description and labels, its notebook and
image outputs opened in Lab (copied to job-outputs/<id>/, the notebook untrusted), and the panel's label
filter."""
from __future__ import annotations

import json
import sys
import textwrap
import time
import urllib.request

import pytest
from playwright.sync_api import expect
from test_lab_job_view import _png, api, submit  # noqa: F401  (submit is a fixture)
from test_lab_panel import open_panel

pytestmark = pytest.mark.integration
TIMEOUT = 60_000

# A plot and a notebook whose cell claims to be trusted: what a job wrote is never trusted in Lab.
JOB = textwrap.dedent("""
    import base64, json, os
    out = os.environ["JOB_OUTPUTS"]
    with open(os.path.join(out, "plot.png"), "wb") as handle:
        handle.write(base64.b64decode(PNG))
    cell = {"cell_type": "code", "execution_count": 1, "id": "c1", "metadata": {"trusted": True},
            "source": "show()", "outputs": [{"output_type": "display_data", "metadata": {},
            "data": {"text/html": "<b>weekly</b><script>window.jjJobScriptRan = true</script>"}}]}
    notebook = {"nbformat": 4, "nbformat_minor": 5, "cells": [cell],
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}
    with open(os.path.join(out, "report.ipynb"), "w") as handle:
        json.dump(notebook, handle)
""").replace("PNG", repr(_png()))


def contents(lab, path: str) -> dict:
    """What Jupyter's contents API says of `path` (not its content)."""
    request = urllib.request.Request(f"{lab['base']}/api/contents/{path}?content=0",
                                     headers={"Authorization": f"token {lab['token']}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.timeout(240)
def test_outputs_open_in_lab_and_labels_filter_the_panel(page, lab, submit, shots):
    script = lab["root"] / "report_job.py"
    script.write_text(JOB)
    job = submit({"name": "weekly", "cmd": f"{sys.executable} {script}", "desc": "The weekly report, with its plot",
                  "labels": {"team": "vision", "run": "weekly"}})
    other = submit({"name": "unlabelled", "cmd": "true"})

    page.wait_for_function("window.jupyterapp && window.jupyterapp.commands.hasCommand('jupyter-jobs:open-job')",
                           timeout=TIMEOUT)
    page.evaluate("() => window.jupyterapp.restored.then(() => true)")
    page.evaluate(f"window.jupyterapp.commands.execute('jupyter-jobs:open-job', {{id: {job['id']}}})")
    detail = page.locator(".jp-MainAreaWidget:not(.lm-mod-hidden) .jp-JobDetail")
    expect(detail.locator(".jp-JobDetail-desc")).to_have_text("The weekly report, with its plot", timeout=TIMEOUT)
    expect(detail.locator(".jp-JobDetail-labels .jp-JobsLabel")).to_have_text(["team=vision", "run=weekly"])
    expect(detail).to_have_attribute("data-status", "Succeeded", timeout=TIMEOUT)
    expect(detail.locator(".jp-JobFiles-open")).to_have_count(2, timeout=TIMEOUT)
    page.screenshot(path=str(shots / "job-page-outputs.png"))

    # The notebook: copied into job-outputs/<id>/, opened as a notebook, not trusted.
    target = f"job-outputs/{job['id']}/report.ipynb"
    detail.locator(".jp-JobFiles-file", has_text="report.ipynb").get_by_role("button", name="Open").click()
    notebook = page.locator(".jp-NotebookPanel:visible")
    expect(notebook).to_have_count(1, timeout=TIMEOUT)
    page.wait_for_function(f"window.jupyterapp.shell.currentWidget?.context?.path === {target!r}", timeout=TIMEOUT)
    assert contents(lab, target)["type"] == "notebook"
    page.wait_for_function("window.jupyterapp.shell.currentWidget.context.isReady", timeout=TIMEOUT)
    assert page.evaluate("window.jupyterapp.shell.currentWidget.content.model.cells.get(0).trusted") is False
    assert page.evaluate("window.jjJobScriptRan") is None

    # The image: in Lab's image viewer.
    page.evaluate(f"window.jupyterapp.commands.execute('jupyter-jobs:open-job', {{id: {job['id']}}})")
    detail.locator(".jp-JobFiles-file", has_text="plot.png").get_by_role("button", name="Open").click()
    image = page.locator(".jp-ImageViewer:visible img")
    expect(image).to_be_visible(timeout=TIMEOUT)
    page.wait_for_function("(img) => img.complete && img.naturalWidth === 160", arg=image.element_handle())
    assert contents(lab, f"job-outputs/{job['id']}/plot.png")["type"] == "file"

    # Opening it again asks before replacing the copy in job-outputs/ (which may have been edited).
    page.evaluate(f"window.jupyterapp.commands.execute('jupyter-jobs:open-job', {{id: {job['id']}}})")
    detail.locator(".jp-JobFiles-file", has_text="plot.png").get_by_role("button", name="Open").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text(f"Replace job-outputs/{job['id']}/plot.png?", timeout=TIMEOUT)
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)

    # The panel: labels as chips; the label filter keeps the job that has it.
    panel = open_panel(page)
    ours = panel.locator(f".jp-JobsPanel-item[data-job-id='{job['id']}']")
    expect(ours.locator(".jp-JobsLabel")).to_have_text(["team=vision", "run=weekly"], timeout=TIMEOUT)
    expect(panel.locator(f".jp-JobsPanel-item[data-job-id='{other['id']}']")).to_have_count(1)
    panel.get_by_role("textbox", name="label key=value").fill("team=vision")
    expect(panel.locator(".jp-JobsPanel-item")).to_have_count(1, timeout=TIMEOUT)
    expect(ours).to_have_count(1)
    page.screenshot(path=str(shots / "jobs-label-filter.png"))
    assert not page.errors, page.errors


def test_the_panel_filters_jobs_by_group(page, lab, submit):
    """Jobs of a team have groups (JupyterHub's); on a single-user server a spec's group is kept as written."""
    a = submit({"name": "team-a-job", "cmd": "true", "group": "team-a"})
    b = submit({"name": "team-b-job", "cmd": "true", "group": "team-b"})
    panel = open_panel(page)
    expect(panel.locator(f".jp-JobsPanel-item[data-job-id='{a['id']}']")).to_have_count(1, timeout=TIMEOUT)
    expect(panel.locator(f".jp-JobsPanel-item[data-job-id='{b['id']}'] .jp-JobsPanel-meta")).to_contain_text("(team-b)")
    groups = panel.get_by_role("combobox", name="group")
    expect(groups).to_be_visible(timeout=TIMEOUT)
    groups.select_option("team-a")
    expect(panel.locator(f".jp-JobsPanel-item[data-job-id='{b['id']}']")).to_have_count(0, timeout=TIMEOUT)
    expect(panel.locator(f".jp-JobsPanel-item[data-job-id='{a['id']}']")).to_have_count(1)
    groups.select_option("")
    expect(panel.locator(f".jp-JobsPanel-item[data-job-id='{b['id']}']")).to_have_count(1, timeout=TIMEOUT)


@pytest.mark.timeout(240)
def test_a_notebook_is_scheduled_from_its_toolbar_and_its_runs_get_it(page, lab, submit):
    from test_lab_job_view import open_notebook, write_notebook

    write_notebook(lab, "nightly.ipynb", sources=["print('nightly', 6 * 7)"])
    open_notebook(page, "nightly.ipynb")
    page.locator(".jp-NotebookPanel:visible .jp-JobsScheduleJob").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text("Schedule nightly.ipynb as a job", timeout=TIMEOUT)
    dialog.locator("input").fill("0 3 * * *")
    dialog.locator(".jp-mod-accept").click()
    expect(page.locator(".jp-Notification-Toast-success, .Toastify__toast--success").first).to_contain_text(
        "0 3 * * *", timeout=TIMEOUT)
    made = [s for s in api(lab, "GET", "schedules")["schedules"] if s["name"].startswith("nightly")]
    assert len(made) == 1 and made[0]["cron"] == "0 3 * * *" and made[0]["next_runs"], made
    try:
        # A run gets the notebook as it was when scheduled, and brings back the executed one.
        job = api(lab, "POST", f"schedules/{made[0]['id']}/run-now")
        submit.ids.append(job["id"])
        deadline = time.monotonic() + 120
        while job["status"] not in ("Succeeded", "Failed", "Cancelled") and time.monotonic() < deadline:
            time.sleep(0.5)
            job = api(lab, "GET", f"jobs/{job['id']}")
        assert job["status"] == "Succeeded", job["message"]
        assert job["schedule_id"] == made[0]["id"]
        assert "nightly.executed.ipynb" in [o["path"] for o in api(lab, "GET", f"jobs/{job['id']}/outputs")["outputs"]]
    finally:
        api(lab, "DELETE", f"schedules/{made[0]['id']}")

"""A job page's actions do what they say, in a real JupyterLab and a real Chromium: its tab carries the job's
name; Cancel and Delete ask first in a dialog that says what is lost; Rerun is a form prefilled with what the
job ran with, typed as its spec (a number stays a number), that shows the server's error and creates nothing
when a value is wrong."""
from __future__ import annotations

import time
import urllib.error

import pytest
from playwright.sync_api import expect
from test_lab_job_view import api, submit  # noqa: F401  (submit is a fixture)

pytestmark = pytest.mark.integration
TIMEOUT = 60_000
ENDED = ("Succeeded", "Failed", "Cancelled", "Unknown")


def open_job(page, job_id: int):
    page.wait_for_function("window.jupyterapp && window.jupyterapp.commands.hasCommand('jupyter-jobs:open-job')",
                           timeout=TIMEOUT)
    page.evaluate("() => window.jupyterapp.restored.then(() => true)")
    page.evaluate(f"window.jupyterapp.commands.execute('jupyter-jobs:open-job', {{id: {job_id}}})")
    return page.locator(f".jp-MainAreaWidget:not(.lm-mod-hidden) .jp-JobDetail#jupyter-jobs-detail-{job_id}")


def wait_status(lab, job_id: int, statuses=ENDED, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = api(lab, "GET", f"jobs/{job_id}")
        if job["status"] in statuses or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def job_ids(lab) -> list[int]:
    return [job["id"] for job in api(lab, "GET", "jobs?limit=200")["jobs"]]


@pytest.mark.timeout(240)
def test_the_tab_is_named_and_cancel_asks_first(page, lab, submit, shots):  # noqa: F811  (the fixture imported above)
    job = submit({"name": "long-train", "cmd": "echo started; sleep 300"})
    detail = open_job(page, job["id"])
    expect(detail).to_have_attribute("data-status", "Running", timeout=TIMEOUT)
    tab = page.locator(f".lm-DockPanel-tabBar .lm-TabBar-tab[data-id='jupyter-jobs-job-{job['id']}']")
    expect(tab.locator(".lm-TabBar-tabLabel")).to_have_text("long-train")
    # The id has a copy button with a name; the log is a named region the keyboard can scroll.
    expect(detail.get_by_role("button", name=f"Copy job id {job['id']}")).to_be_visible()
    log = detail.locator(".jp-JobDetail-log")
    expect(log).to_have_attribute("tabindex", "0")
    expect(log).to_have_attribute("aria-label", f"Log of job #{job['id']}")
    expect(log).to_contain_text("started", timeout=TIMEOUT)

    # Dismissed: the job keeps running.
    detail.get_by_role("button", name="Cancel").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text(f"Cancel job #{job['id']} 'long-train'?")
    expect(dialog).to_contain_text("It has run")
    expect(dialog).to_contain_text("its process is stopped and what it has not written is lost")
    expect(dialog.locator("button:focus")).to_have_text("Keep running")
    page.screenshot(path=str(shots / "job-cancel-confirmation.png"))
    dialog.get_by_role("button", name="Keep running").click()
    expect(dialog).to_have_count(0)
    page.wait_for_timeout(1000)
    assert api(lab, "GET", f"jobs/{job['id']}")["status"] == "Running"

    # Confirmed: Cancelled.
    detail.get_by_role("button", name="Cancel").click()
    dialog.get_by_role("button", name="Cancel job").click()
    expect(detail).to_have_attribute("data-status", "Cancelled", timeout=TIMEOUT)
    assert api(lab, "GET", f"jobs/{job['id']}")["status"] == "Cancelled"
    assert not page.errors, page.errors


@pytest.mark.timeout(240)
def test_rerun_form_keeps_types_and_shows_the_server_s_error(page, lab, submit, shots):  # noqa: F811  (the fixture imported above)
    job = submit({"name": "epochs", "cmd": "echo training for ${epochs} epochs at ${lr}",
                  "args": {"epochs": 40, "lr": "fast"}, "max-runtime": "1h", "env": {"vars": {"SEED": "7"}}})
    detail = open_job(page, job["id"])
    expect(detail).to_have_attribute("data-status", "Succeeded", timeout=TIMEOUT)

    # A bad value: the server's error in the form, beside the field it names; no job created.
    before = job_ids(lab)
    detail.get_by_role("button", name="Rerun…").click()
    form = page.locator(".jp-Dialog .jp-JobRerunForm")
    epochs = form.get_by_label("epochs", exact=True)
    expect(epochs).to_have_attribute("type", "number")
    expect(epochs).to_have_value("40")
    expect(form.get_by_label("lr", exact=True)).to_have_attribute("type", "text")
    expect(form.get_by_label("lr", exact=True)).to_have_value("fast")
    expect(form.get_by_label("Command")).to_have_value("echo training for ${epochs} epochs at ${lr}")
    expect(form.get_by_label("Max runtime")).to_have_value("1h")
    expect(form.get_by_label("SEED")).to_have_value("7")
    expect(form.get_by_label("Instance type")).to_have_value("cpu")
    page.screenshot(path=str(shots / "job-rerun-form.png"))
    form.get_by_label("Instance type").fill("huge")
    page.locator(".jp-Dialog").get_by_role("button", name="Rerun").click()
    form = page.locator(".jp-Dialog .jp-JobRerunForm")
    expect(form.locator(".jp-JobRerunForm-error")).to_contain_text("instance-type", timeout=TIMEOUT)
    expect(form.get_by_label("Instance type")).to_have_attribute("aria-invalid", "true")
    expect(form.get_by_label("Instance type")).to_have_value("huge")  # what was typed is kept
    page.screenshot(path=str(shots / "job-rerun-error.png"))
    assert job_ids(lab) == before

    # Fixed, and epochs changed to 80: the new job's spec has the number 80, and its log says 80.
    form.get_by_label("Instance type").fill("cpu")
    form.get_by_label("epochs", exact=True).fill("80")
    page.locator(".jp-Dialog").get_by_role("button", name="Rerun").click()
    expect(page.locator(".jp-Dialog")).to_have_count(0, timeout=TIMEOUT)
    deadline = time.monotonic() + 30
    while not (new_ids := [i for i in job_ids(lab) if i not in before]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(new_ids) == 1, new_ids
    submit.ids.extend(new_ids)  # type: ignore[attr-defined]
    rerun = wait_status(lab, new_ids[0])
    assert rerun["spec"]["args"] == {"epochs": 80, "lr": "fast"}
    assert type(rerun["spec"]["args"]["epochs"]) is int
    assert (rerun["status"], rerun["rerun_of"], rerun["spec"]["env"]["vars"]) == ("Succeeded", job["id"], {"SEED": "7"})
    new_page = open_job(page, rerun["id"])
    expect(new_page.locator(".jp-JobDetail-log")).to_contain_text("training for 80 epochs at fast", timeout=TIMEOUT)
    assert not page.errors, page.errors


@pytest.mark.timeout(240)
def test_delete_asks_then_removes_the_job(page, lab, submit, shots):  # noqa: F811  (the fixture imported above)
    job = submit({"name": "old-run", "cmd": "echo done"})
    detail = open_job(page, job["id"])
    expect(detail).to_have_attribute("data-status", "Succeeded", timeout=TIMEOUT)
    detail.get_by_role("button", name="Delete…").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text(f"Delete job #{job['id']} 'old-run'?")
    expect(dialog).to_contain_text("Its log and outputs are removed")
    dialog.get_by_role("button", name="Keep").click()
    expect(dialog).to_have_count(0)
    assert api(lab, "GET", f"jobs/{job['id']}")["id"] == job["id"]

    detail.get_by_role("button", name="Delete…").click()
    dialog.get_by_role("button", name="Delete job").click()
    expect(detail).to_have_count(0, timeout=TIMEOUT)  # its page closed
    with pytest.raises(urllib.error.HTTPError) as info:
        api(lab, "GET", f"jobs/{job['id']}")
    assert info.value.code == 404
    submit.ids.remove(job["id"])  # type: ignore[attr-defined]
    assert not page.errors, page.errors

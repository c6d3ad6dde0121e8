"""The Jobs sidebar in a real JupyterLab and a real Chromium: create, follow, cancel, rerun, validate,
run a notebook as a job, and screenshots in the light and dark themes."""
import re
import time

import nbformat
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.integration
TIMEOUT = 60_000


def open_panel(page):
    """Show the Jobs panel. Its tab toggles it, and Lab may restore it open (a workspace an earlier test
    left) just before or after the click: click again when the first click hid it."""
    tab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="jupyter-jobs-panel"]')
    expect(tab).to_be_visible(timeout=TIMEOUT)
    panel = page.locator("#jupyter-jobs-panel")
    if not panel.is_visible():
        tab.click()
    try:
        expect(panel).to_be_visible(timeout=3000)
    except AssertionError:
        tab.click()
        expect(panel).to_be_visible()
    return panel


def create(page, panel, name, command, max_runtime=""):
    panel.locator(".jp-JobsPanel-new").click()
    form = page.locator("#jupyter-jobs-create")
    expect(form).to_be_visible()
    expect(form.locator("select[name=instance-type] option")).not_to_have_count(0)
    form.locator("input[name=name]").fill(name)
    form.locator("textarea[name=cmd]").fill(command)
    form.locator("input[name=max-runtime]").fill(max_runtime)
    form.locator(".jp-JobForm-submit").click()
    return form


def current_detail(page):
    return page.locator(".jp-MainAreaWidget:not(.lm-mod-hidden) .jp-JobDetail")


def test_create_follow_cancel_rerun_and_validate(page, lab, shots):
    panel = open_panel(page)

    # A job made with the form: its log lines arrive while it runs, then it succeeds.
    create(page, panel, "counter", "for i in 1 2 3; do echo line $i; sleep 1; done")
    detail = current_detail(page)
    expect(detail.locator(".jp-JobDetail-log")).to_contain_text("line 1", timeout=TIMEOUT)
    expect(detail).to_have_attribute("data-status", "Running")
    expect(detail.locator(".jp-JobDetail-log")).to_contain_text("line 3", timeout=TIMEOUT)
    expect(detail).to_have_attribute("data-status", "Succeeded", timeout=TIMEOUT)
    expect(panel.locator('.jp-JobsPanel-item[data-status="Succeeded"]')).to_have_count(1, timeout=TIMEOUT)

    # The server's validation message is shown next to the form.
    form = create(page, panel, "bad", "echo never", max_runtime="soon")
    expect(form.locator(".jp-JobForm-error")).to_contain_text("max-runtime", timeout=TIMEOUT)
    expect(form.locator(".jp-JobForm-error")).to_contain_text("not a duration")
    page.screenshot(path=str(shots / "form-validation-light.png"))

    # Cancel a running job.
    form.locator("input[name=max-runtime]").fill("")
    form.locator("input[name=name]").fill("sleeper")
    form.locator("textarea[name=cmd]").fill("echo sleeping; sleep 300")
    form.locator(".jp-JobForm-submit").click()
    detail = current_detail(page)
    expect(detail.locator(".jp-JobDetail-log")).to_contain_text("sleeping", timeout=TIMEOUT)
    detail.locator(".jp-JobDetail-cancel").click()
    page.locator(".jp-Dialog button", has_text="Cancel job").click()  # it asks first
    expect(detail).to_have_attribute("data-status", "Cancelled", timeout=TIMEOUT)

    # Rerun it with an override: a new job that records where it came from.
    detail.locator(".jp-JobDetail-rerun").click()
    dialog = page.locator(".jp-Dialog")
    dialog.get_by_label("Command").fill("echo rerun-ok")  # the form shows the command it reruns
    dialog.locator(".jp-mod-accept").click()
    rerun = current_detail(page)
    expect(rerun.locator(".jp-JobDetail-log")).to_contain_text("rerun-ok", timeout=TIMEOUT)
    expect(rerun).to_have_attribute("data-status", "Succeeded", timeout=TIMEOUT)
    expect(rerun.locator(".jp-JobDetail-fields")).to_contain_text(re.compile(r"Rerun of\s*#\d+"))

    # Filters: only the cancelled one.
    panel.locator(".jp-JobsPanel-status").select_option("Cancelled")
    expect(panel.locator(".jp-JobsPanel-item")).to_have_count(1, timeout=TIMEOUT)
    expect(panel.locator(".jp-JobsPanel-item")).to_contain_text("sleeper")
    panel.locator(".jp-JobsPanel-status").select_option("")
    expect(panel.locator(".jp-JobsPanel-item")).to_have_count(3, timeout=TIMEOUT)
    page.screenshot(path=str(shots / "jobs-light.png"))

    page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    expect(page.locator("body[data-jp-theme-light='false']")).to_have_count(1, timeout=TIMEOUT)
    page.wait_for_timeout(500)
    page.screenshot(path=str(shots / "jobs-dark.png"))
    page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
    assert not page.errors, page.errors


def test_run_a_notebook_as_a_job_from_the_file_browser(page, lab, shots):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('hello from the notebook job')")]
    nbformat.write(nb, lab["root"] / "report.ipynb")
    files_tab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="filebrowser"]')
    expect(files_tab).to_be_visible(timeout=TIMEOUT)
    if "lm-mod-current" not in (files_tab.get_attribute("class") or ""):
        files_tab.click()
    page.locator(".jp-FileBrowser .jp-ToolbarButtonComponent[title*='Refresh']").first.click()
    item = page.locator('.jp-DirListing-item[data-file-type="notebook"]', has_text="report.ipynb")
    expect(item).to_be_visible(timeout=TIMEOUT)
    item.click(button="right")
    page.locator(".lm-Menu-item", has_text="Run as Job").click()
    detail = current_detail(page)
    expect(detail).to_have_attribute("data-status", "Succeeded", timeout=TIMEOUT)
    expect(detail.locator(".jp-JobDetail-log")).to_contain_text("cell 1/1 done")
    expect(detail.locator(".jp-JobFiles-link", has_text="report.executed.ipynb")).to_be_visible(timeout=TIMEOUT)
    page.screenshot(path=str(shots / "notebook-job-light.png"))
    assert not page.errors, page.errors


def test_run_as_job_from_the_notebook_toolbar(page, lab):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('from the toolbar')")]
    nbformat.write(nb, lab["root"] / "toolbar.ipynb")
    page.wait_for_function("window.jupyterapp && window.jupyterapp.commands.hasCommand('docmanager:open')",
                           timeout=TIMEOUT)
    # Open only once the saved layout is restored, or the restore replaces the new tab.
    page.evaluate("() => window.jupyterapp.restored.then(() => true)")
    page.evaluate("window.jupyterapp.commands.execute('docmanager:open', "
                  "{path: 'toolbar.ipynb', kernel: {name: 'python3'}})")
    button = page.locator(".jp-NotebookPanel .jp-JobsRunAsJob:visible")
    kernel_dialog = page.locator(".jp-Dialog")
    deadline = time.monotonic() + 60
    while not button.count() and time.monotonic() < deadline:
        if kernel_dialog.count():  # "Select Kernel", whenever JupyterLab asks: take its default
            kernel_dialog.locator(".jp-mod-accept").click()
        page.wait_for_timeout(200)
    expect(button).to_have_count(1)
    expect(kernel_dialog).to_have_count(0, timeout=TIMEOUT)
    button.locator("button").click()
    detail = current_detail(page)
    expect(detail).to_have_attribute("data-status", "Succeeded", timeout=TIMEOUT)
    expect(detail.locator(".jp-JobFiles-link", has_text="toolbar.executed.ipynb")).to_be_visible(timeout=TIMEOUT)
    assert not page.errors, page.errors

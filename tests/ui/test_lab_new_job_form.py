"""The New job form in a real JupyterLab, a real server and a real Chromium: it ships files chosen in the
Lab (the file dialog, the file browser's selection), passes a notebook's parameters typed, shows upload
progress, shows the spec it submits as YAML (the server records exactly that spec) and puts the
server's validation errors next to their fields."""
from __future__ import annotations

import json
import os
import re
import time
import urllib.request
import uuid
from pathlib import Path

import nbformat
import pytest
import yaml
from playwright.sync_api import expect

from jupyter_jobs.spec import parse_spec

pytestmark = pytest.mark.integration
TIMEOUT = 60_000
ENDED = ("Succeeded", "Failed", "Cancelled", "Unknown")
# axe-core, from the Lab extension's node_modules (a dev dependency); in a worktree, from the main checkout's.
AXE = next((p for p in (Path(__file__).parents[2] / "labextension" / "node_modules" / "axe-core" / "axe.min.js",
                        Path("/work/main/labextension/node_modules/axe-core/axe.min.js")) if p.exists()), None)

TRAIN = """\
import os, sys
print("train.py ran with", sys.argv[1:], flush=True)
with open(os.path.join(os.environ["JOB_OUTPUTS"], "model.txt"), "w") as handle:
    handle.write("trained")
"""


def api(lab, method: str, path: str, body: dict | None = None, raw: bool = False):
    request = urllib.request.Request(
        f"{lab['base']}/jupyter-jobs/api/{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"token {lab['token']}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        data = response.read()
    return data if raw else json.loads(data or b"{}")


@pytest.fixture
def jobs(lab):
    """The ids of the jobs a test made with the form: cancelled and deleted afterwards (the Lab server is
    shared by every UI test of the session, and test_lab_panel counts the jobs it lists)."""
    ids: list[int] = []
    yield ids
    for job_id in ids:
        if api(lab, "GET", f"jobs/{job_id}")["status"] not in ENDED:
            api(lab, "POST", f"jobs/{job_id}/cancel")
        deadline = time.monotonic() + 30
        while api(lab, "GET", f"jobs/{job_id}")["status"] not in ENDED and time.monotonic() < deadline:
            time.sleep(0.2)
        api(lab, "DELETE", f"jobs/{job_id}")


def open_form(page):
    page.wait_for_function("window.jupyterapp && window.jupyterapp.commands.hasCommand('jupyter-jobs:create')",
                           timeout=TIMEOUT)
    # After the workspace is restored: a layout an earlier test left would otherwise cover the form.
    page.evaluate("async () => { await window.jupyterapp.restored;"
                  " await window.jupyterapp.commands.execute('jupyter-jobs:create'); }")
    form = page.locator("#jupyter-jobs-create")
    expect(form).to_be_visible(timeout=TIMEOUT)
    expect(form.locator("select[name=instance-type] option")).not_to_have_count(0, timeout=TIMEOUT)
    return form


def show_file_browser(page, name: str):
    """The file browser, refreshed, with ``name`` listed; returns its item."""
    tab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="filebrowser"]')
    expect(tab).to_be_visible(timeout=TIMEOUT)
    if "lm-mod-current" not in (tab.get_attribute("class") or ""):
        tab.click()
    page.locator(".jp-FileBrowser .jp-ToolbarButtonComponent[title*='Refresh']").first.click()
    item = page.locator("#filebrowser .jp-DirListing-item", has_text=name)
    expect(item).to_be_visible(timeout=TIMEOUT)
    return item


def set_theme(page, name: str) -> None:
    """Switch the Lab's theme and wait until it is applied (the splash it shows meanwhile gone)."""
    light = "true" if "Light" in name else "false"
    page.evaluate(f"window.jupyterapp.commands.execute('apputils:change-theme', {{theme: '{name}'}})")
    expect(page.locator(f"body[data-jp-theme-light='{light}']")).to_have_count(1, timeout=TIMEOUT)
    expect(page.locator("#jupyterlab-splash")).to_have_count(0, timeout=TIMEOUT)


def axe_violations(page) -> list[str]:
    """axe-core's critical and serious violations (WCAG 2 A and AA) inside the form."""
    if AXE is None:
        pytest.fail("axe-core is not installed (jlpm install in labextension/)")
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("""async () => {
        const result = await axe.run(document.querySelector('#jupyter-jobs-create'),
                                     {runOnly: ['wcag2a', 'wcag2aa']});
        return result.violations.filter(v => ['critical', 'serious'].includes(v.impact))
            .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '));
    }""")
    return found


def assert_same_spec(recorded: dict, shown: dict) -> None:
    """The YAML the form showed is the spec the server recorded, both read by the server's own parser; the
    server adds only the defaults it fills in (the instance type's max-runtime)."""
    expected = parse_spec(shown).to_dict()
    assert {key: recorded.get(key) for key in expected} == expected, (recorded, shown)
    assert set(recorded) - set(expected) <= {"max-runtime"}, (recorded, shown)


def submitted(page, form, jobs: list[int]) -> tuple[int, dict]:
    """Submit; the id of the job the form opened and the spec its YAML showed just before."""
    shown = yaml.safe_load(form.locator(".jp-JobForm-yaml").text_content())
    form.locator(".jp-JobForm-submit").click()
    detail = page.locator(".jp-MainAreaWidget:not(.lm-mod-hidden):has(.jp-JobDetail)")
    expect(detail).to_be_visible(timeout=TIMEOUT)
    job_id = int(detail.get_attribute("id").rsplit("-", 1)[1])
    jobs.append(job_id)
    return job_id, shown


def test_ships_a_script_chosen_in_the_file_dialog(page, lab, shots, jobs):
    (lab["root"] / "train.py").write_text(TRAIN)
    form = open_form(page)

    form.locator(".jp-JobForm-addFiles").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator(".jp-DirListing-item", has_text="train.py").click()
    dialog.locator(".jp-mod-accept").click()
    expect(form.get_by_role("list", name="Files to ship").get_by_role("listitem")).to_have_text(["train.py×"])
    expect(form.locator(".jp-JobForm-shipSummary")).to_contain_text("Ships train.py from the Lab’s root folder")
    form.get_by_label("Name", exact=True).fill("form-train")
    form.get_by_label("Command").fill("python train.py --epochs 10")

    # The server's validation error appears beside its field, the control marked invalid.
    form.get_by_label("Max runtime").fill("soon")
    form.locator(".jp-JobForm-submit").click()
    field = form.locator('[data-field="max-runtime"]')
    expect(field.locator(".jp-JobForm-fieldError")).to_contain_text("not a duration", timeout=TIMEOUT)
    expect(form.get_by_label("Max runtime")).to_have_attribute("aria-invalid", "true")
    page.screenshot(path=str(shots / "new-job-form-error-light.png"))
    form.get_by_label("Max runtime").fill("10m")
    expect(form.locator(".jp-JobForm-yaml")).to_contain_text("max-runtime: 10m")
    page.screenshot(path=str(shots / "new-job-form-light.png"))

    # Copy puts the YAML on the clipboard, to paste into a job.yaml.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    form.get_by_role("button", name="Copy the spec as YAML").click()
    assert page.evaluate("navigator.clipboard.readText()") == form.locator(".jp-JobForm-yaml").text_content()

    job_id, shown = submitted(page, form, jobs)
    assert shown["inputs"] == ["train.py"] and shown["cmd"] == "python train.py --epochs 10", shown
    detail = page.locator(".jp-MainAreaWidget:not(.lm-mod-hidden) .jp-JobDetail")
    expect(detail).to_have_attribute("data-status", "Succeeded", timeout=TIMEOUT)
    expect(detail.locator(".jp-JobDetail-log")).to_contain_text("train.py ran with ['--epochs', '10']")
    job = api(lab, "GET", f"jobs/{job_id}")
    assert_same_spec(job["spec"], shown)
    assert api(lab, "GET", f"jobs/{job_id}/outputs/model.txt", raw=True) == b"trained"
    assert not page.errors, page.errors


def test_a_notebook_with_two_parameters(page, lab, shots, jobs):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    defaults = nbformat.v4.new_code_cell("epochs = 1\nlr = 0.1")
    defaults.metadata["tags"] = ["parameters"]
    nb.cells = [defaults, nbformat.v4.new_code_cell(
        "print(f'epochs={epochs!r} {type(epochs).__name__}; lr={lr!r} {type(lr).__name__}')")]
    nbformat.write(nb, lab["root"] / "params-demo.ipynb")

    form = open_form(page)
    show_file_browser(page, "params-demo.ipynb").click()  # selected in the file browser
    form.locator(".jp-JobForm-addSelection").click()
    expect(form.get_by_role("list", name="Files to ship")).to_contain_text("params-demo.ipynb")
    # A shipped notebook and no command yet: the form runs the notebook.
    expect(form.get_by_label("Run", exact=True)).to_have_value("notebook")
    expect(form.get_by_label("Notebook")).to_have_value("params-demo.ipynb")
    expect(form.get_by_label("Command")).to_be_hidden()
    for name, value in (("epochs", "3"), ("lr", "0.5")):
        form.get_by_role("button", name="Add parameter").click()
        index = form.locator(".jp-JobForm-paramRow").count()
        form.get_by_label(f"Name of parameter {index}").fill(name)
        form.get_by_label(f"Value of parameter {index}").fill(value)
    expect(form.locator(".jp-JobForm-yaml")).to_contain_text("lr: 0.5")
    # Every control has an accessible name and enough contrast, in both themes.
    page.set_viewport_size({"width": 1400, "height": 1400})  # the whole form, its YAML too, in the shots
    page.screenshot(path=str(shots / "new-job-form-notebook-light.png"))
    assert axe_violations(page) == []
    set_theme(page, "JupyterLab Dark")
    page.screenshot(path=str(shots / "new-job-form-notebook-dark.png"))
    assert axe_violations(page) == []
    set_theme(page, "JupyterLab Light")

    job_id, shown = submitted(page, form, jobs)
    detail = page.locator(".jp-MainAreaWidget:not(.lm-mod-hidden) .jp-JobDetail")
    expect(detail).to_have_attribute("data-status", "Succeeded", timeout=TIMEOUT)
    job = api(lab, "GET", f"jobs/{job_id}")
    assert job["spec"]["args"] == {"epochs": 3, "lr": 0.5}
    assert isinstance(job["spec"]["args"]["epochs"], int) and isinstance(job["spec"]["args"]["lr"], float)
    assert_same_spec(job["spec"], shown)
    executed = nbformat.reads(api(lab, "GET", f"jobs/{job_id}/outputs/params-demo.executed.ipynb", raw=True).decode(), 4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "epochs=3 int; lr=0.5 float" in printed, printed
    assert not page.errors, page.errors


def test_upload_progress_for_a_larger_file(page, lab, shots, jobs):
    folder = lab["root"] / f"upload-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(os.urandom(4 * 1024 * 1024))  # new bytes: the server lacks them
    (folder / "check.py").write_text("import os\nprint('weights', os.path.getsize('weights.bin'), 'bytes',"
                                     " os.path.exists('__pycache__'))\n")
    (folder / "__pycache__").mkdir()  # never shipped, as the CLI never ships it
    (folder / "__pycache__" / "check.cpython-311.pyc").write_bytes(b"\0" * 1000)
    form = open_form(page)
    form.locator(".jp-JobForm-addFiles").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator(".jp-DirListing-item", has_text=folder.name).click()  # the whole folder
    dialog.locator(".jp-mod-accept").click()
    expect(form.locator(".jp-JobForm-file")).to_have_count(1)
    expect(form.locator(".jp-JobForm-shipCount")).to_have_text(re.compile(r"^2 files, 4\.2 MB"))
    form.get_by_label("Name", exact=True).fill("form-upload")
    form.get_by_label("Command").fill(f"cd {folder.name} && python check.py")
    # Uploads slowed to 2 MB/s so that the progress can be seen on the way.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                 "uploadThroughput": 2_000_000})
    page.evaluate("""() => {
        const box = document.querySelector('#jupyter-jobs-create .jp-JobForm-upload');
        const bar = box.querySelector('progress');
        window.jjProgress = [];
        new MutationObserver(() => window.jjProgress.push(
            {state: box.dataset.state, value: bar.value, max: bar.max, determinate: bar.hasAttribute('value')}))
          .observe(box, {attributes: true, subtree: true, characterData: true, childList: true});
    }""")
    shown = yaml.safe_load(form.locator(".jp-JobForm-yaml").text_content())
    form.locator(".jp-JobForm-submit").click()
    bar = form.get_by_role("progressbar", name="Upload progress")
    expect(bar).to_be_visible(timeout=TIMEOUT)
    expect(form.locator(".jp-JobForm-upload[data-state=uploading]")).to_have_count(1, timeout=TIMEOUT)
    expect(form.locator(".jp-JobForm-uploadText")).to_contain_text("Uploading", timeout=TIMEOUT)
    page.screenshot(path=str(shots / "new-job-form-upload-light.png"))
    detail = page.locator(".jp-MainAreaWidget:not(.lm-mod-hidden):has(.jp-JobDetail)")
    expect(detail).to_be_visible(timeout=TIMEOUT)
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                 "uploadThroughput": -1})
    job_id = int(detail.get_attribute("id").rsplit("-", 1)[1])
    jobs.append(job_id)
    seen = page.evaluate("window.jjProgress")
    uploading = [s for s in seen if s["state"] == "uploading" and s["determinate"]]
    total = 4 * 1024 * 1024 + (folder / "check.py").stat().st_size
    assert any(0 < s["value"] < s["max"] for s in uploading), seen  # part way
    assert seen[-1]["state"] == "done" and seen[-1]["value"] == seen[-1]["max"] == total, seen  # complete
    expect(detail.locator(".jp-JobDetail")).to_have_attribute("data-status", "Succeeded", timeout=TIMEOUT)
    expect(detail.locator(".jp-JobDetail-log")).to_contain_text(f"weights {4 * 1024 * 1024} bytes False")
    assert_same_spec(api(lab, "GET", f"jobs/{job_id}")["spec"], shown)
    assert not page.errors, page.errors


def test_a_file_that_cannot_be_read_is_a_clear_error(page, lab, jobs):
    gone = lab["root"] / f"gone-{uuid.uuid4().hex[:8]}.py"
    gone.write_text("print('never')\n")
    form = open_form(page)
    show_file_browser(page, gone.name).click()
    form.locator(".jp-JobForm-addSelection").click()
    expect(form.locator(".jp-JobForm-file")).to_have_count(1)
    gone.unlink()  # removed after it was chosen: reading it for the upload fails
    form.get_by_label("Command").fill(f"python {gone.name}")
    form.locator(".jp-JobForm-submit").click()
    expect(form.locator(".jp-JobForm-upload[data-state=failed]")).to_contain_text(
        f"Upload failed: could not read {gone.name}", timeout=TIMEOUT)
    expect(form.locator('[data-field="inputs"] .jp-JobForm-fieldError')).to_contain_text(gone.name)
    # Removable: without the file the job is submitted (and fails: the file is gone).
    form.get_by_role("button", name=f"Remove {gone.name}").click()
    expect(form.locator(".jp-JobForm-file")).to_have_count(0)
    assert not page.errors, page.errors

"""jupyter-jobs' settings in JupyterLab's settings registry (schema/plugin.json), in a real Lab and Chromium:
`notifications` off keeps a job's end quiet, and turned on again (as the Settings Editor does) it speaks;
the schema ships with the built extension. (`rowsPerPage` is in test_lab_table: 200 rows on one page.)"""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import jupyter_jobs
import pytest
from playwright.sync_api import expect
from test_lab_job_view import api, bundle, open_notebook, run_all, submit, write_notebook  # noqa: F401
from test_lab_table import set_settings

pytestmark = pytest.mark.integration
TIMEOUT = 60_000


def test_the_settings_schema_ships_with_the_extension(lab):
    schema = Path(jupyter_jobs.__file__).parent / "labextension" / "schemas" / "jupyter-jobs" / "plugin.json"
    properties = json.loads(schema.read_text())["properties"]
    assert (properties["notifications"]["default"], properties["rowsPerPage"]["default"]) == (True, 50)
    # Lab serves it: the settings of plugin jupyter-jobs:plugin, with their defaults.
    request = urllib.request.Request(f"{lab['base']}/lab/api/settings/jupyter-jobs:plugin",
                                     headers={"Authorization": f"token {lab['token']}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        served = json.loads(response.read())
    assert served["schema"]["properties"]["rowsPerPage"]["maximum"] == 500


@pytest.mark.timeout(240)
def test_notifications_off_keeps_a_job_s_end_quiet(page, lab, submit):  # noqa: F811  (the fixture imported above)
    quiet = submit({"name": "quiet", "cmd": "sleep 300"})
    loud = submit({"name": "loud", "cmd": "sleep 300"})
    set_settings(lab, {"notifications": False})
    try:
        page.reload()
        write_notebook(lab, "settings.ipynb", [bundle(quiet["id"], "quiet", []), bundle(loud["id"], "loud", [])])
        open_notebook(page, "settings.ipynb")
        run_all(page)
        for job in (quiet, loud):
            expect(page.locator(f".jp-JobView[data-job-id='{job['id']}']")).to_have_attribute(
                "data-status", "Running", timeout=TIMEOUT)

        api(lab, "POST", f"jobs/{quiet['id']}/cancel")
        expect(page.locator(f".jp-JobView[data-job-id='{quiet['id']}']")).to_have_attribute(
            "data-status", "Cancelled", timeout=TIMEOUT)

        # On again, as the Settings Editor sets it (through the settings registry): the next end is told.
        page.evaluate("""async () => {
            const app = window.jupyterapp;
            const token = [...app.pluginRegistry._services.keys()].find(t => t.name.endsWith(':ISettingRegistry'));
            const registry = await app.resolveRequiredService(token);
            await registry.set('jupyter-jobs:plugin', 'notifications', true);
        }""")
        api(lab, "POST", f"jobs/{loud['id']}/cancel")
        expect(page.locator(".Toastify__toast", has_text=f"Job #{loud['id']} 'loud' cancelled")).to_be_visible(
            timeout=TIMEOUT)
        # The quiet job ended first, while notifications were off: nothing was said of it.
        expect(page.locator(".Toastify__toast", has_text=f"Job #{quiet['id']} 'quiet'")).to_have_count(0)
    finally:
        set_settings(lab, {})
    assert not page.errors, page.errors

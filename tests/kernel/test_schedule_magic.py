"""``%job schedule`` against a real `jupyter server`: the spec's files are shipped as ``%job run`` ships them."""
from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from jupyter_jobs.kernel.client import JobsClient
from jupyter_jobs.kernel.magics import JobMagics

pytestmark = pytest.mark.integration


@pytest.fixture
def shell(server_process, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ip = InteractiveShell.instance()
    magics = JobMagics(ip)
    magics._client = JobsClient(server_process.url, server_process.token)
    ip.register_magics(magics)
    yield ip
    magics.waiter.unregister()


def test_job_schedule_ships_the_spec_and_its_files(shell, server_process, tmp_path, capsys):
    (tmp_path / "report.py").write_text("print('nightly report')\n")
    (tmp_path / "job.yaml").write_text("name: report\ncmd: python report.py\n")
    shell.run_line_magic("job", 'schedule job.yaml --cron "30 6 * * 1-5" --timezone Europe/Paris --name weekdays')
    said = capsys.readouterr().out
    assert "'weekdays': 30 6 * * 1-5 (Europe/Paris); next runs" in said and "T06:30:00+01:00" in said
    (made,) = server_process.request("GET", "schedules")["schedules"]
    assert (made["name"], made["spec"]["cmd"], sorted(made["files"])) == ("weekdays", "python report.py", ["report.py"])

    job = server_process.request("POST", f"schedules/{made['id']}/run-now")
    assert server_process.wait(job["id"])["status"] == "Succeeded"
    assert "nightly report" in server_process.request("GET", f"jobs/{job['id']}/logs").decode()

    with pytest.raises(UsageError, match="cron"):
        shell.run_line_magic("job", 'schedule job.yaml --cron "now please"')
    with pytest.raises(UsageError, match="no such file"):
        shell.run_line_magic("job", 'schedule missing.yaml --cron "0 3 * * *"')

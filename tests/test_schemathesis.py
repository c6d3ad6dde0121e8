"""schemathesis against docs/api/openapi.yaml and a real `jupyter server`: no generated request,
valid or not, gets a server error (issue 9, item 11). Bounded: a fixed number of examples per
operation, with a fixed seed, so a failure is reproducible."""
import getpass
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "docs" / "api" / "openapi.yaml"
EXAMPLES = int(os.environ.get("JUPYTER_JOBS_FUZZ_EXAMPLES", "40"))


@pytest.fixture
def offline_uv(monkeypatch):
    """Generated env.python packages are resolved by uv offline: refused at once, never fetched from the index."""
    monkeypatch.setenv("UV_OFFLINE", "1")


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("offline_uv")
# An admin, so that admin-only routes (POST /environments/prune) are fuzzed past their 403.
@pytest.mark.parametrize("server_args", [[f"--JobManager.admin_users={getpass.getuser()}"]])
def test_no_request_gets_a_server_error(server_process, tmp_path):
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    if st is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    # Something to find: jobs that exist, ended and running.
    for spec in ({"name": "done", "cmd": "echo hi", "outputs": ["out.txt"]}, {"name": "long", "cmd": "sleep 600"}):
        server_process.request("POST", "jobs", spec)
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz.schemathesis_hooks", "PYTHONPATH": str(ROOT),
           "HYPOTHESIS_STORAGE_DIRECTORY": str(tmp_path / "hypothesis")}
    result = subprocess.run(
        [st, "run", str(SCHEMA), "--url", f"{server_process.url}jupyter-jobs/api",
         "-H", f"Authorization: token {server_process.token}", "--checks", "not_a_server_error",
         "--mode", "all", "--max-examples", str(EXAMPLES), "--seed", "20261201",
         "--request-timeout", "20", "--workers", "1", "--max-failures", "1", "--no-color"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=840,
    )
    report = result.stdout[-6000:] + result.stderr[-3000:]
    log = (server_process.home / "server.log").read_text(errors="replace")
    tracebacks = [block for block in log.split("\n[") if "Traceback" in block]
    assert result.returncode == 0, report + "\n--- server tracebacks ---\n" + "\n".join(tracebacks[-3:])[-6000:]
    assert "Uncaught exception" not in log, "\n".join(tracebacks[-3:])[-6000:]
    # The document is precise enough that generated submissions are accepted, not only refused.
    created = server_process.request("GET", "jobs", params="?limit=500")["jobs"]
    print(f"schemathesis created {len(created) - 2} jobs")
    assert len(created) - 2 >= 5, report

"""How a kernel finds the Jupyter server that started it."""
import json

import pytest

from jupyter_jobs.errors import JobsError
from jupyter_jobs.kernel.client import find_kernel_server


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    monkeypatch.delenv("JUPYTER_JOBS_URL", raising=False)
    monkeypatch.delenv("JUPYTER_JOBS_TOKEN", raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    (tmp_path / "runtime").mkdir()
    return tmp_path / "runtime"


def test_environment_wins(runtime, monkeypatch):
    monkeypatch.setenv("JUPYTER_JOBS_URL", "http://127.0.0.1:1/")
    monkeypatch.setenv("JUPYTER_JOBS_TOKEN", "t")
    assert find_kernel_server() == {"url": "http://127.0.0.1:1/", "token": "t"}


def test_the_server_that_started_the_kernel(runtime, monkeypatch):
    monkeypatch.setattr("os.getppid", lambda: 4321)
    (runtime / "jpserver-4321.json").write_text(json.dumps({"url": "http://127.0.0.1:8888/lab/", "token": "abc"}))
    assert find_kernel_server() == {"url": "http://127.0.0.1:8888/lab/", "token": "abc"}


def test_no_server_says_what_to_do(runtime, monkeypatch):
    monkeypatch.setattr("os.getppid", lambda: 4321)
    monkeypatch.chdir(runtime)
    with pytest.raises(JobsError, match="set JUPYTER_JOBS_URL and JUPYTER_JOBS_TOKEN"):
        find_kernel_server()


@pytest.mark.integration
def test_a_kernel_started_by_the_server_finds_it(server_process, monkeypatch):
    from jupyter_client import BlockingKernelClient

    printed: list = []
    kernel = json.loads(server_process.request_raw("POST", "api/kernels", {"name": "python3"}))
    client = BlockingKernelClient()
    client.load_connection_file(server_process.home / "runtime" / f"kernel-{kernel['id']}.json")
    # The heartbeat's 1 s (jupyter_client's default) reads a busy CI machine as a dead kernel.
    client.hb_channel.time_to_dead = 30.0
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        code = ("import os\nfor k in ('JUPYTER_JOBS_URL', 'JUPYTER_JOBS_TOKEN'): os.environ.pop(k, None)\n"
                "from jupyter_jobs.kernel.client import JobsClient\n"
                "c = JobsClient.from_environment()\nprint('FOUND', c.url, c.request('GET', 'config')['backend'])")
        reply = client.execute_interactive(code, timeout=60, output_hook=lambda msg: printed.append(msg))
    finally:
        client.stop_channels()
        server_process.request_raw("DELETE", f"api/kernels/{kernel['id']}")
    assert reply["content"]["status"] == "ok"
    text = "".join(m["content"].get("text", "") for m in printed if m["msg_type"] == "stream")
    assert f"FOUND {server_process.url}jupyter-jobs/api/ local" in text

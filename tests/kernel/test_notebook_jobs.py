"""A notebook that never loses its jobs (issue 11), Run All by nbclient in a real kernel against a real
`jupyter server`: the job's view is one bundle; a cell that reads a pending --out value waits for its job
(and an interrupt stops the wait); a matplotlib figure and a DataFrame arrive as image/png and text/html
while the job runs (from the REST route, the widget, and ``%job attach``'s replay); a tqdm-like bar is
one line; a kernel restart mid-job then ``%job fetch`` brings the --out values that could travel.
On the local backend with the server's own kernel, and on Docker with a kernel of its own venv."""
from __future__ import annotations

import contextlib

import nbformat
import pytest
from conftest import ServerProcess
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from test_cell_values import NOTEBOOK_CELLS as VALUE_CELLS
from test_notebook_e2e import cells_text

from jupyter_jobs.kernel.view import JOB_MIME

pytestmark = pytest.mark.integration

RUN_ALL = [
    "%load_ext jupyter_jobs\nimport asyncio, json, jupyter_jobs\nmagics = get_ipython().magics_manager.registry['JobMagics']",
    # Run All: cell 2 is a job that delivers x; cell 3 uses x and waits for it instead of a NameError.
    "%%job --out x --name slow\nimport time\ntime.sleep(2)\nx = 41 + 1",
    "print('X IS', x)",
    # A figure, a DataFrame and a progress bar, while the job is still running.
    "%%job --name viz\nimport sys, time\nimport matplotlib.pyplot as plt\nimport pandas as pd\n"
    "for i in range(1, 4):\n    print(f'\\rstep {i}/3', end='', flush=True)\n    time.sleep(0.05)\nprint()\n"
    "plt.plot([1, 3, 2])\nplt.show()\ndisplay(pd.DataFrame({'loss': [0.5, 0.25]}))\ntime.sleep(4)\nprint('viz done')",
    # What the REST route has while the job runs, and what its widget shows.
    "viz = list(magics.widgets.values())[-1]\nseen = {}\n"
    "while not ({'image/png', 'text/html'} <= set(seen)) and viz.job['status'] != 'Succeeded':\n"
    "    await asyncio.sleep(0.1)\n"
    "    for line in magics.client.displays(viz.job['id']).splitlines():\n"
    "        for mime in json.loads(line).get('data', {}):\n"
    "            seen.setdefault(mime, magics.client.get(viz.job['id'])['status'])\n"
    "while len(viz.displayed) < 2 and viz.job['status'] != 'Succeeded':\n    await asyncio.sleep(0.1)\n"
    "print('ROUTE', seen.get('image/png'), seen.get('text/html'))\n"
    "print('WIDGET', viz.job['status'], [sorted(o['data']) for o in viz.displayed])",
    "job = await viz.wait()\nprint('VIZ', job['status'], 'step 3/3' in viz.log_text.splitlines(), "
    "'step 1/3' in viz.log_text)",
    # Attach replays the log and the rich outputs of the finished job.
    "%job attach 2",
    "attached = magics.widgets[2]\nawait attached.wait()\n"
    "print('ATTACHED', [sorted(o['data']) for o in attached.displayed], 'viz done' in attached.log_text)",
    # An interrupt stops a cell waiting for a value (nbclient interrupts the kernel at this cell's timeout).
    "%%job --out never --name forever\nimport time\ntime.sleep(120)",
    "print('NEVER', never)",
    "%job cancel 3",
    "while magics.waiter.pending:\n    await asyncio.sleep(0.1)",
    "never = 'mine'\nprint('MINE', never)",
    # With --wait the cell shows the job's rich outputs itself, made safe (the job wrote them).
    "%%job --wait --name waited\nfrom IPython.display import HTML\n"
    "display(HTML('<b>bold</b><script>alert(1)</script>'))",
]


def run_all(nb, server: ServerProcess, kernel: str) -> None:
    def timeout(cell):  # the cell that waits for `never` is interrupted after 4 s
        return 4 if cell.source.startswith("print('NEVER'") else 300

    NotebookClient(nb, kernel_name=kernel, timeout_func=timeout, interrupt_on_timeout=True,
                   resources={"metadata": {"path": str(server.root)}}).execute()


def notebook(cells: list[str]):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    for cell in nb.cells:
        if cell.source.startswith("print('NEVER'"):
            cell.metadata["tags"] = ["raises-exception"]
    return nb


def check_run_all(nb, server: ServerProcess) -> None:
    out = cells_text(nb)
    bundle = next(o for o in nb.cells[1].outputs if o.get("output_type") == "display_data")["data"]
    assert bundle[JOB_MIME] == {"id": 1, "name": "slow", "out": ["x"]}, bundle
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"] == "Job #1 'slow' — %job attach 1 shows it; %job fetch 1 loads its --out values (x)"
    assert "waiting for job #1 'slow' to deliver x; interrupt to stop waiting" in out and "X IS 42" in out, out
    assert "ROUTE Running Running" in out, out  # both arrived while the job still ran
    assert "WIDGET Running [['image/png', 'text/plain'], ['text/html', 'text/plain']]" in out, out
    assert "VIZ Succeeded True False" in out, out  # the bar is one line, rewritten
    assert "ATTACHED [['image/png', 'text/plain'], ['text/html', 'text/plain']] True" in out, out
    assert "ERROR KeyboardInterrupt: stopped waiting for job #3 'forever'" in out and "NEVER" not in out, out
    waited = [o["data"] for o in nb.cells[-1].outputs if o.get("output_type") == "display_data"]
    assert waited == [{"text/html": "<b>bold</b>", "text/plain": "<IPython.core.display.HTML object>"}], waited
    displays = server.request("GET", "jobs/2/displays").decode()
    assert '"image/png"' in displays and "<table" in displays
    assert server.request("GET", "jobs/3")["status"] == "Cancelled"
    assert "MINE mine" in out, out  # a cancelled job's values are no longer waited for


def restart_then_fetch(server: ServerProcess, kernel: str, job_id: int = 1) -> str:
    """The job's cell runs, the kernel restarts while the job runs, ``%job fetch`` brings what could travel."""
    before = ["%load_ext jupyter_jobs",
              "%%job --out kept,lost,later --name restarted\nimport time\ntime.sleep(6)\n"
              "kept = {'answer': 42}\nlost = (i for i in range(3))"]
    after = ["%load_ext jupyter_jobs", f"%job fetch {job_id}", "print('KEPT', kept)\nprint('LOST', 'lost' in dir())",
             f"%job fetch {job_id} kept,nothing"]
    nb = notebook(before + after)
    client = NotebookClient(nb, kernel_name=kernel, timeout=300, resources={"metadata": {"path": str(server.root)}})
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if index == len(before):
                assert server.request("GET", f"jobs/{job_id}")["status"] in ("Pending", "Preparing", "Running")
                run_sync(client.km.restart_kernel)(now=True)
                run_sync(client.kc.wait_for_ready)(timeout=60)
            client.execute_cell(cell, index)
    return cells_text(nb)


def check_fetch(out: str, job_id: int = 1) -> None:
    assert f"waiting for job #{job_id} 'restarted' to end" in out, out
    assert "--out lost did not arrive: builtins.generator cannot be serialised" in out, out
    assert "--out later did not arrive: the cell did not define it" in out, out
    assert "delivered kept" in out and "KEPT {'answer': 42}" in out and "LOST False" in out, out
    assert "--out nothing did not arrive: the job did not send it (its --out: kept, lost, later)" in out, out


@pytest.fixture
def kernel_env(server_process, monkeypatch):
    monkeypatch.setenv("JUPYTER_JOBS_URL", server_process.url)
    monkeypatch.setenv("JUPYTER_JOBS_TOKEN", server_process.token)
    return server_process


def run_all_then_restart(server: ServerProcess, kernel: str) -> None:
    nb = notebook(RUN_ALL)
    run_all(nb, server, kernel)
    check_run_all(nb, server)
    next_id = len(server.request("GET", "jobs")["jobs"]) + 1
    check_fetch(restart_then_fetch(server, kernel, job_id=next_id), job_id=next_id)


@pytest.mark.timeout(300)  # two notebooks, seven jobs, a kernel restart
def test_on_the_local_backend(kernel_env):
    run_all_then_restart(kernel_env, "python3")


@pytest.mark.index
@pytest.mark.docker
@pytest.mark.timeout(600)  # a kernel venv and its environment image, built once, then three notebooks
@pytest.mark.parametrize("server_args", [["--JobManager.backend=docker"]])
def test_on_docker(kernel_env, tmp_path_factory, monkeypatch):
    """The same notebooks, and the values that travel by value, in containers: the job's environment is
    the kernel's (its own venv with matplotlib and pandas), built once into an image."""
    import docker
    from test_notebook_env import UV_CACHE, make_kernel

    root = tmp_path_factory.mktemp("kernels")
    make_kernel(root, "viz-kernel", ("ipywidgets", "matplotlib", "pandas", "ipython"))
    monkeypatch.setenv("JUPYTER_PATH", str(root / "share" / "jupyter"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "cache"))
    server = kernel_env
    server.stop()
    server.extra_args.append(f"--Environments.uv_cache_dir={UV_CACHE}")
    server.start()
    try:
        run_all_then_restart(server, "viz-kernel")
        values = notebook(VALUE_CELLS)
        NotebookClient(values, kernel_name="viz-kernel", timeout=300,
                       resources={"metadata": {"path": str(server.root)}}).execute()
        out = cells_text(values)
        assert "BACK Point 80 0.75" in out and "from-the-shell 45" in out, out
        assert "REFUSED UsageError --in gen" in out and "DONE IS computed" in out, out
    finally:
        with contextlib.closing(docker.from_env()) as client:
            where = (server.request("GET", "jobs/1").get("environment") or {}).get("where", "")
            if where.startswith("jupyter-jobs/env:"):
                client.images.remove(where, force=True)

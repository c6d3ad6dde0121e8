"""A job cell runs as IPython runs it, and values travel by value (issue 11, its first part): a real kernel
(nbclient) and a real `jupyter server` on the local backend."""
import nbformat
import pytest
from nbclient import NotebookClient
from test_notebook_e2e import cells_text

from jupyter_jobs.kernel.magics import unpassed_names

NOTEBOOK_CELLS = [
    "%load_ext jupyter_jobs\nimport jupyter_jobs",
    # Functions, lambdas and classes of the notebook go in; a class defined in the job cell comes back.
    "def accuracy(right, total):\n    return right / total\n"
    "scale = lambda v: v * 10\n"
    "class Box:\n    def __init__(self, v):\n        self.v = v\n"
    "box = Box(4)",
    "%%job --in accuracy,scale,box --out point,score --wait\n"
    "class Point:\n    def __init__(self, x):\n        self.x = x\n    def twice(self):\n        return 2 * self.x\n"
    "point = Point(scale(box.v))\nscore = accuracy(3, 4)\nprint('IN THE JOB', score, point.x)",
    "print('BACK', type(point).__name__, point.twice(), score)",
    # IPython's own: a line magic, a shell command, display(), the last expression's value.
    "%%job --wait\n%time total = sum(range(10))\n!echo from-the-shell $total\ndisplay('DISPLAYED')\n6 * 7",
    # A failure shows the cell's own line; the work before it is kept (its --out values still arrive).
    "try:\n    get_ipython().run_cell_magic('job', '--out done,gen --wait',\n"
    "        'done = \"computed\"\\ngen = (i for i in range(3))\\n')\n"
    "except jupyter_jobs.JobFailed as exc:\n    print('OUT FAILED', exc.job['status'])\nprint('DONE IS', done)",
    "try:\n    get_ipython().run_cell_magic('job', '--wait', 'x = 1\\nraise ValueError(\"boom\")\\n')\n"
    "except jupyter_jobs.JobFailed as exc:\n    print('RAISED', exc.job['status'])",
    # An --in value that cannot travel is refused before anything is queued.
    "gen = (i for i in range(3))\ntry:\n    get_ipython().run_cell_magic('job', '--in gen --wait', 'print(1)')\n"
    "except Exception as exc:\n    print('REFUSED', type(exc).__name__, exc)",
    # Names the cell uses but --in does not send are named at submit.
    "try:\n    get_ipython().run_cell_magic('job', '--in box --wait', 'print(box.v, accuracy(1, 2))')\n"
    "except jupyter_jobs.JobFailed as exc:\n    print('AS WARNED', exc.job['message'])",
]


@pytest.mark.integration
def test_a_job_cell_runs_as_ipython_and_values_travel_by_value(server_process, monkeypatch):
    monkeypatch.setenv("JUPYTER_JOBS_URL", server_process.url)
    monkeypatch.setenv("JUPYTER_JOBS_TOKEN", server_process.token)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in NOTEBOOK_CELLS]
    NotebookClient(nb, kernel_name="python3", timeout=180, resources={"metadata": {"path": str(server_process.root)}}
                   ).execute()
    out = cells_text(nb)
    assert "IN THE JOB 0.75 40" in out and "BACK Point 80 0.75" in out, out
    assert "from-the-shell 45" in out and "Wall time" in out and "DISPLAYED" in out and "Out[1]: 42" in out, out
    assert "--out gen did not arrive" in out and "generator cannot be serialised" in out, out
    assert "OUT FAILED Failed" in out and "DONE IS computed" in out, out  # the other --out value arrived
    assert "ValueError: boom" in out and "line 2" in out and "RAISED Failed" in out, out
    assert "REFUSED UsageError --in gen: a builtins.generator cannot be sent to a job" in out, out
    assert "the cell uses accuracy from the notebook, not passed with --in" in out, out
    assert "AS WARNED Failed: exited with code 1; last line: NameError: name 'accuracy' is not defined" in out, out


def test_unpassed_names_are_those_the_notebook_has_and_the_cell_reads_without_defining():
    namespace = {"model": 1, "data": 2, "lr": 3, "helper": 4, "print": 5}
    cell = ("import numpy as np\nfrom os import path\nlr = 0.1\n"
            "def step(x, y=lr):\n    return helper(x) + y\n"
            "for i in range(3):\n    step(i)\n"
            "print(model, [d for d in data], np, path)")
    assert unpassed_names(cell, namespace, ["model"]) == ["helper", "data"]
    assert unpassed_names("%time x = 1", namespace, []) == []  # IPython syntax: nothing guessed

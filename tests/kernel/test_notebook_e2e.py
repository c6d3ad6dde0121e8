"""A real notebook, executed with nbclient in a real kernel, against a real Jupyter server running
the extension: cell jobs with --in/--out, a failing job that raises, a project job, a notebook job,
a resubmit that uploads nothing, and the widget's state after its job ends."""
import json

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.integration

SQUARE_CELL = "%%job --in x --out y --wait\nfrom helpers import double\ny = double(x)\nprint('computed', y)"


def cells_text(nb) -> str:
    text = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                text.append(output["text"])
            elif output.get("output_type") == "error":
                text.append("ERROR " + output["ename"] + ": " + output["evalue"])
    return "".join(text)


@pytest.fixture
def notebook_env(server_process, monkeypatch):
    monkeypatch.setenv("JUPYTER_JOBS_URL", server_process.url)
    monkeypatch.setenv("JUPYTER_JOBS_TOKEN", server_process.token)
    root = server_process.root
    (root / "helpers.py").write_text("def double(v):\n    return 2 * v\n")
    (root / "proj").mkdir()
    (root / "proj" / "main.py").write_text("import sys\nprint('project says', sys.argv[1])\n")
    (root / "proj" / "lib.py").write_text("WORD = 'from lib'\n")
    (root / "proj" / "job.yaml").write_text("name: proj\ncmd: python main.py ${word}\nargs: {word: hello}\n")
    (root / "proj" / ".jobignore").write_text("big.bin\n")
    (root / "proj" / "big.bin").write_bytes(b"x" * 1000)
    other = nbformat.v4.new_notebook()
    other.cells = [nbformat.v4.new_code_cell("n = 1", metadata={"tags": ["parameters"]}),
                   nbformat.v4.new_code_cell("print('n is', n)"),
                   nbformat.v4.new_code_cell("!ls\nprint('numbers', open('numbers.txt').read().split())")]
    (root / "numbers.txt").write_text("4 8 15\n")  # named by a cell of other.ipynb: shipped with it
    # DataSphere's bare env.vars name: the value comes from the submitter's (here the kernel's) environment.
    (root / "bare").mkdir()
    (root / "bare" / "job.yaml").write_text("cmd: echo \"word=$SECRET_WORD\"\nenv:\n  vars:\n    - SECRET_WORD\n")
    monkeypatch.setenv("SECRET_WORD", "xyzzy")
    nbformat.write(other, root / "other.ipynb")
    return server_process


def run(nb, root):
    client = NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(root)}})
    client.execute()
    return nb


def test_notebook_drives_jobs_end_to_end(notebook_env):
    server = notebook_env
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in [
        "%load_ext jupyter_jobs\nimport jupyter_jobs\nx = 21\nmagics = get_ipython().magics_manager.registry['JobMagics']",
        SQUARE_CELL,
        "assert y == 42, y\nprint('Y ARRIVED', y)",
        "try:\n    get_ipython().run_cell_magic('job', '--wait --name boom', 'print(\"about to fail\")\\nraise SystemExit(3)')\n"
        "except jupyter_jobs.JobFailed as exc:\n    print('RAISED', exc.job['status'], exc.job['exit_code'])",
        "%job run proj/job.yaml --wait --set args.word=there",
        "%job run other.ipynb --param n=3 --wait",
        "%job run bare/job.yaml --wait",
        "before = magics.client.uploaded_bytes, magics.client.uploaded_files",
        SQUARE_CELL,  # the same cell run again: nothing to upload
        "print('RESUBMIT UPLOADED', magics.client.uploaded_bytes - before[0], 'BYTES',\n"
        "      magics.client.uploaded_files - before[1], 'FILES')",
        "%%job --name widgeted\nimport time\nfor i in range(3):\n    print('tick', i)\n    time.sleep(0.2)",
        "widget = list(magics.widgets.values())[-1]\njob = await widget.wait()\n"
        "print('WIDGET', job['status'], widget.cancel_button.disabled, 'tick 2' in widget.log_text, "
        "'Succeeded' in widget.header.value)",
        "%%job --project proj --wait\nimport lib\nprint('cell in project', lib.WORD)",
        "%%job --config proj/job.yaml --wait\n# the spec runs; this body is not used",
        "%job list",
        "%job logs 1",
        "%job rerun 1 --wait",
        "%job attach 1",
        "attached = magics.widgets[1]\njob = await attached.wait()\n"
        "print('ATTACHED', job['status'], 'computed 42' in attached.log_text)",
        "%%job --name sleeper\nimport time\ntime.sleep(120)",
        "sleeper = list(magics.widgets.values())[-1]\nimport asyncio\n"
        "while sleeper.job['status'] != 'Running':\n    await asyncio.sleep(0.1)\n"
        "sleeper.cancel_button.click()\njob = await sleeper.wait()\nprint('CANCEL BUTTON', job['status'])",
        "form = jupyter_jobs.JobForm()\nprint('FORM TYPES', [value for _, value in form.instance_type.options])\n"
        "form.command.value = 'echo from the form'\nform.max_runtime.value = 'soon'\n"
        "print('FORM REFUSED', form.submit() is None, 'max-runtime' in form.error.value)\n"
        "form.max_runtime.value = '5m'\nsubmitted = form.submit()\n"
        "done = await form.result.children[0].wait()\nprint('FORM JOB', done['status'], form.error.value == '')",
    ]]
    run(nb, server.root)
    text = cells_text(nb)
    assert "computed 42" in text
    assert "Y ARRIVED 42" in text
    assert "about to fail" in text and "RAISED Failed 3" in text
    assert "project says there" in text
    assert "word=xyzzy" in text
    executed = [p for p in server.root.glob("other.job*.ipynb")]
    assert len(executed) == 1
    cells = nbformat.read(executed[0], as_version=4).cells
    assert "n is 3" in json.dumps(cells[2]["outputs"])
    listed = json.dumps(cells[3]["outputs"])  # the notebook and what it names, not the whole folder
    assert "numbers ['4', '8', '15']" in listed and "helpers.py" not in listed and "proj" not in listed, listed
    assert "RESUBMIT UPLOADED 0 BYTES 0 FILES" in text
    assert "WIDGET Succeeded True True True" in text
    assert "cell in project from lib" in text
    assert "project says hello" in text  # --config ran the spec
    assert "   ID  STATUS" in text and "widgeted" in text  # %job list
    assert text.count("computed 42") >= 4  # cell 2, resubmit, %job logs 1, rerun of job 1
    assert "ATTACHED Succeeded True" in text
    assert "CANCEL BUTTON Cancelled" in text
    assert "FORM TYPES ['cpu']" in text and "FORM REFUSED True True" in text and "FORM JOB Succeeded True" in text
    assert "ERROR" not in text
    # The project job shipped its folder minus what .jobignore excludes.
    proj = [j for j in server.request("GET", "jobs")["jobs"] if j["name"] == "proj"][0]
    assert not (server.data / "jobs" / str(proj["id"]) / "code" / "big.bin").exists()
    assert (server.data / "jobs" / str(proj["id"]) / "code" / "main.py").exists()

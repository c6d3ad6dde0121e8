"""What `jupyter jobs run` ships: the inputs, the files cmd names, and the local modules they import."""
import pytest

from jupyter_jobs.errors import SpecError
from jupyter_jobs.shipping import files_to_ship


@pytest.fixture
def project(tmp_path):
    for name, text in {
        "src/train.py": "import helper\nfrom pkg import sub\nimport numpy\n", "src/helper.py": "import os\n",
        "src/pkg/__init__.py": "", "src/pkg/sub.py": "from . import sub2\n", "tools/cli.py": "import shared\n",
        "tools/__init__.py": "", "shared.py": "", "conf.yaml": "a: 1\n", "run.sh": "echo\n", "data/a.csv": "1\n",
        "data/.git/HEAD": "x", "data/cache/__pycache__/m.pyc": "x", "data/skip.tmp": "x", ".jobignore": "*.tmp\n",
        "notes.txt": "not named",
    }.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def shipped(spec, folder):
    return sorted(files_to_ship(spec, folder))


def test_the_script_its_local_imports_named_files_and_inputs_minus_ignored(project):
    spec = {"cmd": "python3 -u src/train.py --config=conf.yaml && bash run.sh $EXTRA", "inputs": ["data"]}
    assert shipped(spec, project) == ["conf.yaml", "data/a.csv", "run.sh", "src/helper.py", "src/pkg/__init__.py",
                                      "src/pkg/sub.py", "src/train.py"]


def test_python_dash_m_ships_the_module_and_its_imports(project):
    assert shipped({"cmd": "python -m tools.cli"}, project) == ["shared.py", "tools/cli.py"]
    assert shipped({"cmd": "echo -m tools.cli"}, project) == []  # only a Python's -m names a module


def test_an_input_that_is_missing_or_outside_is_named(project):
    with pytest.raises(SpecError, match=r"inputs\[0\].path.*does not exist"):
        files_to_ship({"cmd": "true", "inputs": ["nope.csv"]}, project)
    (project.parent / "secret").write_text("s")
    (project / "link").symlink_to(project.parent / "secret")
    with pytest.raises(SpecError, match="not inside"):
        files_to_ship({"cmd": "true", "inputs": ["link"]}, project)
    assert shipped({"cmd": "cat link ../secret /etc/passwd"}, project) == []


def test_a_notebook_brings_what_its_cells_import_and_name(project):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%matplotlib inline\nimport shared\nrows = open('conf.yaml').read()"),
                nbformat.v4.new_markdown_cell("see 'notes.txt'"),
                nbformat.v4.new_code_cell("!ls data\nfrom glob import glob\nfiles = glob('data') + ['/etc/passwd', '..']")]
    nbformat.write(nb, project / "nb.ipynb")
    assert shipped({"cmd": "python -m jupyter_jobs_jobside.notebook nb.ipynb out.ipynb"}, project) == [
        "conf.yaml", "data/a.csv", "nb.ipynb", "shared.py"]

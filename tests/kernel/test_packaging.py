"""Packaging: ignore rules, the size cap, and the local modules a cell imports."""
import pytest

from jupyter_jobs.errors import TooLarge
from jupyter_jobs.kernel.packaging import collect_project, imported_names, local_modules, sha256_file


def make(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_defaults_gitignore_and_jobignore(tmp_path):
    make(tmp_path, {
        "train.py": "x", "data/keep.csv": "k", "data/raw.bin": "r", "notes.log": "l", "model.ckpt": "m",
        ".git/HEAD": "h", "__pycache__/a.pyc": "c", ".ipynb_checkpoints/a.ipynb": "n", ".venv/bin/python": "p",
        "node_modules/x/index.js": "j", "pkg/__init__.py": "", ".gitignore": "*.log\ndata/\n",
        ".jobignore": "*.ckpt\n!data/keep.csv\n",
    })
    files = collect_project(tmp_path, 10**6)
    assert sorted(files) == [".gitignore", ".jobignore", "pkg/__init__.py", "train.py"]


def test_size_cap_names_the_largest_files(tmp_path):
    make(tmp_path, {"small.txt": "s"})
    (tmp_path / "weights.bin").write_bytes(b"0" * 3 * 2**20)
    with pytest.raises(TooLarge, match=r"largest: weights.bin \(3.0 MiB\), small.txt") as info:
        collect_project(tmp_path, 2**20)
    assert ".jobignore" in info.value.message


def test_local_modules_follow_imports_beside_the_notebook(tmp_path):
    make(tmp_path, {
        "helpers.py": "import utils\n", "utils.py": "import os\n", "unused.py": "",
        "mypkg/__init__.py": "from . import core\n", "mypkg/core.py": "", "mypkg/__pycache__/x.pyc": "",
    })
    cell = "import numpy as np\nfrom helpers import f\nimport mypkg.core\n"
    assert sorted(local_modules(cell, tmp_path)) == ["helpers.py", "mypkg/__init__.py", "mypkg/core.py", "utils.py"]


def test_imported_names_ignores_relative_imports_and_bad_syntax():
    assert imported_names("import a.b, c\nfrom d.e import f\nfrom . import g\n") == {"a", "c", "d"}
    assert imported_names("%matplotlib inline") == set()


def test_sha256(tmp_path):
    (tmp_path / "a").write_bytes(b"abc")
    assert sha256_file(tmp_path / "a") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

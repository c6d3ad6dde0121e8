"""Locks: capture from distribution metadata, normalisation, the content hash, the JSON form (pure)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_jobs.errors import SpecError
from jupyter_jobs.pyenv.lock import LocalPackage, Lock, Pin, capture, normalise_name


def test_names_are_pep_503_and_order_and_duplicates_do_not_matter():
    a = Lock("3.11", (Pin("Foo_Bar", "1.0"), Pin("six", "1.16.0"), Pin("foo.bar", "1.0")))
    b = Lock("3.11", (Pin("six", "1.16.0"), Pin("FOO-bar", "1.0")))
    assert a.packages == (Pin("foo-bar", "1.0"), Pin("six", "1.16.0"))
    assert a == b and a.hash == b.hash
    assert normalise_name("Zope.Interface__x") == "zope-interface-x"


def test_the_hash_is_a_fixed_function_of_the_content():
    lock = Lock("3.11", (Pin("six", "1.16.0"), Pin("attrs", "23.2.0")))
    # A golden value: the same lock must name the same environment in every run, on every machine.
    assert lock.hash == "b7dc8c47da2e43db97da1815d50370b7f9a7e9d9760752b3cf82b8cf8a1bcb81"
    assert lock.hash != Lock("3.12", lock.packages).hash
    assert lock.hash != Lock("3.11", (Pin("six", "1.17.0"), Pin("attrs", "23.2.0"))).hash
    assert lock.hash != Lock("3.11", lock.packages, pip_options=("--extra-index-url=https://m/simple",)).hash
    edited = Lock("3.11", local=(LocalPackage("mylib", "0.1", "file:///src/mylib", True, digest="aa"),))
    again = Lock("3.11", local=(LocalPackage("mylib", "0.1", "file:///elsewhere/mylib", True, digest="aa"),))
    assert edited.hash == again.hash != Lock("3.11", local=(LocalPackage("mylib", "0.1", "file:///x", True, "bb"),)).hash


def test_the_captured_hash_is_the_same_in_another_run():
    def run() -> str:
        code = "from jupyter_jobs.pyenv.lock import capture; print(capture().hash)"
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert run() == run() == f"{capture().hash}\n"


def test_one_name_at_two_versions_is_refused_naming_both():
    with pytest.raises(SpecError) as info:
        Lock("3.11", (Pin("six", "1.16.0"), Pin("Six", "1.17.0")))
    assert info.value.problems[0].field == "lock.packages"
    assert "1.16.0" in info.value.message and "1.17.0" in info.value.message
    with pytest.raises(SpecError, match="3.Y"):
        Lock("3.11.2")


def dist_info(site: Path, name: str, version: str, direct_url: dict | None = None) -> None:
    folder = site / f"{name}-{version}.dist-info"
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    if direct_url is not None:
        (folder / "direct_url.json").write_text(json.dumps(direct_url))


def test_capture_pins_index_installs_and_reports_local_ones_apart(tmp_path):
    first, second = tmp_path / "venv-site", tmp_path / "user-site"
    dist_info(first, "Foo_Bar", "1.0")
    dist_info(first, "mylib", "0.1", {"url": "file:///home/me/mylib", "dir_info": {"editable": True}})
    dist_info(first, "wheelpkg", "2.0", {"url": "file:///tmp/wheelpkg-2.0-py3-none-any.whl", "archive_info": {}})
    dist_info(first, "fromgit", "0.3", {"url": "https://github.com/o/r", "vcs_info": {"vcs": "git", "commit_id": "abc"}})
    dist_info(second, "foo-bar", "0.9")  # shadowed by the first path, as import would be
    (first / "broken.dist-info").mkdir()  # no METADATA at all: skipped
    lock = capture([str(first), str(second)])
    assert lock.python == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert lock.packages == (Pin("foo-bar", "1.0"), Pin("fromgit", "0.3", "git+https://github.com/o/r@abc"))
    assert lock.local == (LocalPackage("mylib", "0.1", "file:///home/me/mylib", True),
                          LocalPackage("wheelpkg", "2.0", "file:///tmp/wheelpkg-2.0-py3-none-any.whl", False))
    assert lock.requirements() == "foo-bar==1.0\nfromgit @ git+https://github.com/o/r@abc\n"


def test_capture_of_this_interpreter_has_its_packages_and_this_editable_checkout():
    import pytest as pytest_module

    lock = capture()
    assert Pin("pytest", pytest_module.__version__) in lock.packages
    ours = [p for p in lock.local if p.name == "jupyter-jobs"]
    assert ours and ours[0].editable and ours[0].url.startswith("file://")


def test_the_json_form_reads_back_and_names_bad_fields():
    lock = Lock("3.11", (Pin("six", "1.16.0"), Pin("x", "1", "https://h/x-1.tar.gz")),
                (LocalPackage("mylib", "0.1", "file:///m", True, "d1"),), ("--pre",))
    assert Lock.from_dict(json.loads(json.dumps(lock.to_dict()))) == lock
    with pytest.raises(SpecError) as info:
        Lock.from_dict({"python": "3.11", "packages": [{"name": "six"}]})
    assert info.value.problems[0].field == "lock.packages[0].version"
    with pytest.raises(SpecError, match="unknown keys"):
        Lock.from_dict({"python": "3.11", "pakages": []})

"""``env.python`` to a lock: real resolutions with uv against the package index, and the refusals (pure)."""
import os
import re
import subprocess
import sys

import pytest

from jupyter_jobs.errors import EnvironmentBuildFailed, SpecError
from jupyter_jobs.pyenv.cache import EnvironmentCache
from jupyter_jobs.pyenv.lock import LocalPackage, Lock, Pin
from jupyter_jobs.pyenv.resolve import resolve
from jupyter_jobs.pyenv.spec import PythonEnv, parse_python_env

PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
MISSING = "jupyter-jobs-no-such-package-xyz"
AUTO = Lock("3.11", (Pin("six", "1.16.0"), Pin("attrs", "23.2.0")),
            (LocalPackage("mylib", "0.1", "file:///src/mylib", True, "d" * 64),))


@pytest.mark.index
async def test_packages_six_resolves_to_a_pinned_six_that_installs(tmp_path):
    cache = EnvironmentCache(tmp_path / "cache")
    lock = resolve(parse_python_env({"version": PYTHON, "packages": ["six"]}), cache_dir=cache.root / "uv-cache")
    assert lock.python == PYTHON and lock.local == () and [p.name for p in lock.packages] == ["six"]
    version = lock.packages[0].version
    assert re.fullmatch(r"\d+\.\d+(\.\d+)*", version) and lock.packages[0].url == ""
    env = await cache.ensure(lock)
    out = subprocess.run([str(env / "bin" / "python"), "-c", "import six; print(six.__version__)"],
                         capture_output=True, text=True, check=True).stdout
    assert out == f"{version}\n"


@pytest.mark.index
def test_what_is_left_out_comes_from_auto_and_the_notebooks_versions_are_preferred(tmp_path):
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "requirements.txt").write_text(
        "# what the job needs\nattrs==23.1.0 \\\n    --hash=sha256:0000  # pinned by hand\n\n--only-binary :all:\n")
    env = parse_python_env({"packages": ["six"], "requirements-file": "requirements.txt"})
    lock = resolve(env, auto=AUTO, folder=tmp_path / "job", cache_dir=tmp_path / "uv-cache")
    # six: unpinned, resolved to the notebook's 1.16.0 (not the newest); attrs: the file's pin wins over auto's.
    assert lock == Lock("3.11", (Pin("attrs", "23.1.0"), Pin("six", "1.16.0")), (), ("--only-binary=:all:",))


@pytest.mark.index
def test_a_package_that_does_not_exist_fails_with_uvs_message_naming_it(tmp_path):
    env = parse_python_env({"version": PYTHON, "packages": ["six", MISSING]})
    with pytest.raises(EnvironmentBuildFailed) as info:
        resolve(env, cache_dir=tmp_path / "uv-cache")
    assert info.value.packages == (MISSING,)
    assert info.value.message.startswith(f"resolving env.python (six, {MISSING}) for Python {PYTHON} failed ({MISSING})")
    assert "uv pip compile exited with 1" in info.value.message
    assert "not found in the package registry" in info.value.stderr  # uv's own words
    assert info.value.status_code == 400


def test_auto_and_a_mapping_without_packages_take_the_capture(tmp_path):
    assert resolve(PythonEnv("auto"), auto=AUTO, cache_dir=tmp_path) is AUTO
    assert resolve(PythonEnv("custom", version="3.12", pip_options=("--pre",)), auto=AUTO, cache_dir=tmp_path) == \
        Lock("3.12", AUTO.packages, AUTO.local, ("--pre",))
    assert resolve(PythonEnv("custom", version="3.12"), cache_dir=tmp_path) == Lock("3.12")
    with pytest.raises(ValueError):
        resolve(PythonEnv("none"), cache_dir=tmp_path)


def field_error(env: PythonEnv, tmp_path, **kwargs) -> tuple[str, str]:
    with pytest.raises(SpecError) as info:
        resolve(env, cache_dir=tmp_path / "uv-cache", **kwargs)
    return info.value.problems[0].field, info.value.problems[0].message


@pytest.mark.parametrize("text, says", [
    ("six\n-r /etc/passwd\n", "requirements.txt line 2: '-r' is not an allowed installer option"),
    ("-e ./mylib\n", "line 1: '-e' is not an allowed"),
    ("./mylib\n", "line 1: './mylib' is not a requirement"),
    ("mylib @ file:///home/me/mylib\n", "line 1: mylib names a file on this machine"),
    ("--target /tmp/x\n", "line 1: '--target' is not an allowed"),
])
def test_a_requirements_file_line_that_is_not_a_requirement_is_refused_naming_it(tmp_path, text, says):
    (tmp_path / "requirements.txt").write_text(text)
    field, message = field_error(PythonEnv("custom", "3.11", "requirements.txt"), tmp_path, folder=tmp_path)
    assert field == "env.python.requirements-file" and says in message


def test_refusals_name_the_field(tmp_path):
    assert field_error(PythonEnv("auto"), tmp_path)[0] == "env.python"
    assert field_error(PythonEnv("custom", packages=("six",)), tmp_path) == \
        ("env.python.version", 'no Python version to go by (nothing was captured); write one, e.g. "3.11"')
    field, message = field_error(PythonEnv("custom", "3.11", "reqs.txt"), tmp_path, folder=tmp_path)
    assert field == "env.python.requirements-file" and "reqs.txt is not among the job's inputs" in message
    os.symlink("/etc/hostname", tmp_path / "escape.txt")
    field, message = field_error(PythonEnv("custom", "3.11", "escape.txt"), tmp_path, folder=tmp_path)
    assert field == "env.python.requirements-file" and "outside the job's folder" in message
    assert "no input folder" in field_error(PythonEnv("custom", "3.11", "r.txt"), tmp_path)[1]


def test_no_binary_is_refused_while_builds_are_off(tmp_path):
    env = PythonEnv("custom", "3.11", packages=("six",), pip_options=("--no-binary=six",))
    field, message = field_error(env, tmp_path)
    assert field == "env.python.pip-options" and "building runs the package's code" in message


@pytest.mark.index
def test_a_package_with_only_a_source_distribution_is_not_built_unless_allowed(tmp_path):
    from test_pyenv_wheels import make_package, uv  # the same tiny package

    make_package(tmp_path / "mylib", 1)
    uv("build", "--sdist", "--out-dir", str(tmp_path / "dist"), str(tmp_path / "mylib"), cache=tmp_path)
    # A local --find-links is refused in a spec (test_pyenv_spec), not here: resolve() takes what parse passed.
    env = PythonEnv("custom", PYTHON, packages=("my-lib",), pip_options=("--find-links=" + str(tmp_path / "dist"),))
    with pytest.raises(EnvironmentBuildFailed) as info:
        resolve(env, cache_dir=tmp_path / "uv-cache")
    assert info.value.packages == ("my-lib",) and "building from source is disabled" in info.value.stderr  # uv says why
    assert resolve(env, cache_dir=tmp_path / "uv-cache", allow_builds=True).packages == (Pin("my-lib", "0.1"),)

"""Local packages: an editable install captured from a real venv, built into a wheel, installed in a cached env."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_jobs.errors import EnvironmentBuildFailed
from jupyter_jobs.pyenv.cache import EnvironmentCache
from jupyter_jobs.pyenv.lock import LocalPackage, Lock
from jupyter_jobs.pyenv.uv import find_uv

PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
WORKTREE = Path(__file__).resolve().parents[2]
PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "My_Lib"
version = "0.1"

[tool.setuptools]
packages = ["my_lib"]
"""


def make_package(folder: Path, value: int) -> None:
    (folder / "my_lib").mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(PYPROJECT)
    (folder / "my_lib" / "__init__.py").write_text(f"VALUE = {value}\n")


def uv(*args: str, cache: Path) -> None:
    subprocess.run([find_uv(), *args], check=True, capture_output=True, text=True,
                   env={**os.environ, "UV_CACHE_DIR": str(cache / "uv-cache")})


def capture_from(python: Path) -> Lock:
    """What the server would get from a kernel: ``python -m jupyter_jobs.pyenv.lock`` in its interpreter."""
    # The venv has nothing but the standard library (no packaging): the capture must not need more.
    out = subprocess.run([str(python), "-m", "jupyter_jobs.pyenv.lock"], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(WORKTREE)}).stdout
    return Lock.from_dict(json.loads(out))


def run_in(env: Path, code: str) -> str:
    return subprocess.run([str(env / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True,
                          cwd="/").stdout.strip()


@pytest.mark.index
async def test_an_editable_package_is_built_installed_and_an_edit_makes_a_new_environment(tmp_path):
    source, kernel = tmp_path / "src" / "mylib", tmp_path / "kernel"
    make_package(source, 1)
    cache = EnvironmentCache(tmp_path / "cache")
    uv("venv", "--python", PYTHON, str(kernel), cache=cache.root)
    uv("pip", "install", "--python", str(kernel / "bin" / "python"), "-e", str(source), cache=cache.root)

    captured = capture_from(kernel / "bin" / "python")
    assert captured.packages == ()
    assert captured.local == (LocalPackage("my-lib", "0.1", source.as_uri(), editable=True),)
    lock = cache.wheels.build_all(captured)
    digest = lock.local[0].digest
    assert len(digest) == 64 and lock.hash != captured.hash
    assert cache.wheels.path(digest).name == "my_lib-0.1-py3-none-any.whl"

    env = await cache.ensure(lock)
    value, where = run_in(env, "import my_lib; print(my_lib.VALUE, my_lib.__file__)").split()
    assert value == "1" and where.startswith(str(env))  # a copy in the env, not the editable source

    os.utime(source / "my_lib" / "__init__.py")  # touched, not changed: the same wheel, the same env
    assert cache.wheels.build_all(captured) == lock

    make_package(source, 2)
    edited = cache.wheels.build_all(capture_from(kernel / "bin" / "python"))
    assert edited.local[0].digest != digest and edited.hash != lock.hash
    new_env = await cache.ensure(edited)
    assert new_env != env and cache.builds == 2
    assert run_in(new_env, "import my_lib; print(my_lib.VALUE)") == "2"
    assert run_in(env, "import my_lib; print(my_lib.VALUE)") == "1"


async def test_a_local_package_without_its_wheel_is_refused_naming_it(tmp_path):
    cache = EnvironmentCache(tmp_path / "cache")
    unbuilt = Lock(PYTHON, local=(LocalPackage("mylib", "0.1", (tmp_path / "mylib").as_uri(), True),))
    with pytest.raises(EnvironmentBuildFailed, match="mylib has no wheel digest; build it first") as info:
        await cache.ensure(unbuilt)
    assert info.value.packages == ("mylib",) and cache.list() == []
    with pytest.raises(EnvironmentBuildFailed, match=r"mylib was installed from .*mylib, which no longer exists"):
        cache.wheels.build_all(unbuilt)
    with pytest.raises(EnvironmentBuildFailed, match="has no wheel 0000"):
        await cache.ensure(Lock(PYTHON, local=(LocalPackage("mylib", "0.1", "file:///x", True, "0" * 64),)))

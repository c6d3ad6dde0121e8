"""The environment cache against real installs from the package index, with the real uv."""
import asyncio
import subprocess
import sys

import pytest

from jupyter_jobs.errors import EnvironmentBuildFailed
from jupyter_jobs.pyenv.cache import EnvironmentCache
from jupyter_jobs.pyenv.lock import Lock, Pin

pytestmark = pytest.mark.index
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
SIX, ATTRS = Pin("six", "1.16.0"), Pin("attrs", "23.2.0")


def run_in(env, code: str) -> str:
    return subprocess.run([str(env / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True).stdout


async def test_a_lock_is_built_once_and_then_reused(tmp_path):
    cache = EnvironmentCache(tmp_path / "cache")
    lock = Lock(PYTHON, (SIX, ATTRS))
    env = await cache.ensure(lock)
    assert env == cache.path(lock.hash) and cache.builds == 1
    # Built in tmp/ and moved: the venv must still be whole where it now lives.
    assert run_in(env, "import sys, six, attrs; print(sys.prefix, six.__version__, attrs.__version__)").split() == [
        str(env), "1.16.0", "23.2.0"]
    assert await cache.ensure(lock) == env and cache.builds == 1
    other_process = EnvironmentCache(tmp_path / "cache")
    assert await other_process.ensure(lock) == env and other_process.builds == 0
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


async def test_concurrent_callers_wait_for_one_build(tmp_path):
    first, second = EnvironmentCache(tmp_path / "cache"), EnvironmentCache(tmp_path / "cache")
    lock = Lock(PYTHON, (SIX,))
    paths = await asyncio.gather(first.ensure(lock), first.ensure(lock), second.ensure(lock), second.ensure(lock))
    assert len(set(paths)) == 1
    assert first.builds + second.builds == 1


async def test_a_package_the_index_lacks_fails_with_uvs_message_and_leaves_nothing(tmp_path):
    cache = EnvironmentCache(tmp_path / "cache")
    lock = Lock(PYTHON, (SIX, Pin("jupyter-jobs-no-such-package-xyz", "1.0")))
    with pytest.raises(EnvironmentBuildFailed) as info:
        await cache.ensure(lock)
    assert info.value.packages == ("jupyter-jobs-no-such-package-xyz",)
    assert "jupyter-jobs-no-such-package-xyz" in info.value.message and "uv pip" in info.value.message
    assert "not found in the package registry" in info.value.stderr  # uv's own words
    assert not cache.path(lock.hash).exists() and cache.builds == 0
    assert list((tmp_path / "cache" / "tmp").iterdir()) == [] and cache.list() == []


async def test_prune_removes_the_least_recently_used_and_never_one_in_use(tmp_path):
    cache = EnvironmentCache(tmp_path / "cache")
    a, b, c = Lock(PYTHON, (SIX,)), Lock(PYTHON, (ATTRS,)), Lock(PYTHON, (SIX, ATTRS))
    for lock in (a, b, c, a):  # a used last: b is the oldest, then c
        await cache.ensure(lock)
    assert [info.hash for info in cache.list()] == [b.hash, c.hash, a.hash]
    total = sum(info.size_bytes for info in cache.list())
    assert cache.prune(total - 1, in_use={b.hash}) == [c.hash]
    assert cache.path(b.hash).exists() and cache.path(a.hash).exists() and not cache.path(c.hash).exists()
    assert cache.prune(0, in_use={b.hash}) == [a.hash]
    assert [info.hash for info in cache.list()] == [b.hash]
    assert cache.prune(0, in_use=set()) == [b.hash] and cache.list() == []


async def test_a_build_reports_its_progress_and_uvs_output_and_a_target_folder_serves_another_python(tmp_path):
    cache = EnvironmentCache(tmp_path / "cache")
    lock = Lock(PYTHON, (SIX, ATTRS))
    said, counts = [], []
    prepared = await cache.prepare(lock, say=said.append, progress=lambda done, of, doing: counts.append((done, of)))
    assert prepared.built and counts[-1] == (2, 2) and all(of == 2 and 0 <= done <= 2 for done, of in counts)
    assert any("+ six==1.16.0" in text for text in said)
    again = await cache.prepare(lock)
    assert (again.built, again.path) == (False, prepared.path)
    # The same packages in a plain folder for an image's Python 3.12 (no such interpreter here is needed).
    other = Lock("3.12", (SIX,))
    target = await cache.prepare(other, kind="target")
    assert target.path == cache.path(other.hash, "target") and (target.path / "six.py").is_file()
    assert {(info.kind, info.python) for info in cache.list()} == {("venv", PYTHON), ("target", "3.12")}
    assert sorted(cache.prune(0, in_use=set())) == sorted([lock.hash, other.hash])
    assert cache.list() == []

"""The server side of environments without an index: what a client sends, and which interpreters it may run."""
import os
import shutil
import sys
from pathlib import Path

import pytest

from jupyter_jobs.errors import SpecError
from jupyter_jobs.pyenv.environments import Environments, client_capture, same_packages, trusted_interpreter
from jupyter_jobs.pyenv.lock import LocalPackage, Lock, Pin
from jupyter_jobs.pyenv.spec import PythonEnv


def test_the_servers_own_interpreter_is_trusted_and_one_another_account_controls_is_not(tmp_path):
    assert trusted_interpreter(Path(sys.executable))
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.symlink_to(Path(sys.executable).resolve())
    for folder in (tmp_path, venv, venv / "bin"):
        folder.chmod(0o755)
    assert trusted_interpreter(python)
    (venv / "bin").chmod(0o777)  # anyone could put another python there
    assert not trusted_interpreter(python)
    (venv / "bin").chmod(0o755)
    if os.geteuid() == 0:
        os.lchown(venv, 65534, 65534)  # another account's environment
        assert not trusted_interpreter(python)
    assert not trusted_interpreter(tmp_path / "missing" / "bin" / "python")


def test_same_packages_ignores_local_digests_but_not_versions():
    a = Lock("3.11", (Pin("six", "1.16.0"),), (LocalPackage("mylib", "0.1", "file:///src/mylib", True, "ab" * 32),))
    b = Lock("3.11", (Pin("six", "1.16.0"),), (LocalPackage("mylib", "0.1", "file:///src/mylib", True),))
    assert same_packages(a, b) and a.hash != b.hash
    assert not same_packages(a, Lock("3.11", (Pin("six", "1.15.0"),), b.local))
    assert not same_packages(a, Lock("3.12", a.packages, a.local))


def test_a_client_capture_leaves_jupyter_jobs_out():
    names = {p.name for p in client_capture().packages} | {p.name for p in client_capture().local}
    assert "jupyter-jobs" not in names and "traitlets" in names


@pytest.mark.parametrize("sent, field", [
    ({"lock": {"python": "3.11"}, "extra": 1}, "environment"),
    ({"lock": {"python": "three"}}, "lock.python"),
    ({"lock": {"python": "3.11", "packages": [{"name": "six"}]}}, "environment.lock.packages[0].version"),
    ({"lock": {"python": "3.11"}, "interpreter": 7}, "environment.interpreter"),
    ({"lock": {"python": "3.11", "local": [{"name": "m", "version": "1", "url": "file:///m"}]}},
     "environment.lock.local[0].digest"),
    ({"lock": {"python": "3.11", "local": [{"name": "m", "version": "1", "url": "file:///m", "digest": "ab" * 32}]},
      "wheels": {"ab" * 32: "m-1-py3-none-any.whl"}}, "environment.lock.local[0]"),
])
def test_what_a_client_sends_is_checked_naming_the_field(tmp_path, sent, field):
    environments = Environments(tmp_path)
    with pytest.raises(SpecError) as info:
        environments.lock_for(PythonEnv("auto"), folder=tmp_path, sent=sent, wheels=lambda digest: None)
    assert field in [p.field for p in info.value.problems] or field in str(info.value), info.value
    shutil.rmtree(tmp_path / "environments")


@pytest.mark.parametrize("lock, field", [
    # A newline would start another line of the requirements file uv reads (-e, -r, --index-url file://...).
    ({"python": "3.11", "packages": [{"name": "six", "version": "1.16.0\n-r /etc/shadow"}]},
     "environment.lock.packages[0].version"),
    ({"python": "3.11", "packages": [{"name": "evil", "version": "", "url": "file:///home/x/proj"}]},
     "environment.lock.packages[0].url"),
    ({"python": "3.11", "packages": [{"name": "six\n-e .", "version": "1"}]}, "environment.lock.packages[0].name"),
    ({"python": "3.11", "pip_options": ["--config-file=/etc/x"]}, "environment.lock.pip_options"),
    ({"python": "3.11", "pip_options": ["--find-links=/srv"]}, "environment.lock.pip_options"),
    ({"python": "3.11", "local": [{"name": "m", "version": "1", "url": "file:///m", "digest": "../../../../dev/zero"}]},
     "environment.lock.local[0].digest"),
])
def test_a_lock_a_client_sends_is_checked_before_uv_sees_it(tmp_path, lock, field):
    environments = Environments(tmp_path)
    with pytest.raises(SpecError) as info:
        environments.lock_for(PythonEnv("auto"), folder=tmp_path, sent={"lock": lock}, wheels=lambda digest: None)
    assert field in [p.field for p in info.value.problems], info.value


def test_wheel_digests_and_blob_paths_must_be_sha256s(tmp_path):
    from jupyter_jobs.blobs import BlobStore

    with pytest.raises(SpecError):
        BlobStore(tmp_path / "blobs").path("../../../../dev/zero")
    environments = Environments(tmp_path)
    lock = {"python": "3.11", "local": [{"name": "m", "version": "1", "url": "file:///m", "digest": "ab" * 32}]}
    with pytest.raises(SpecError) as info:
        environments.lock_for(PythonEnv("auto"), folder=tmp_path, sent={"lock": lock, "wheels": {"../x": "m.whl"}},
                              wheels=lambda digest: None)
    assert "environment.wheels" in [p.field for p in info.value.problems]


def test_a_direct_reference_to_a_local_path_is_refused_in_packages():
    from jupyter_jobs.pyenv.spec import parse_python_env

    with pytest.raises(SpecError) as info:
        parse_python_env({"packages": ["mylib @ file:///home/x/mylib"]})
    assert "env.python.packages[0]" in [p.field for p in info.value.problems]
    assert parse_python_env({"packages": ["lib @ https://example.org/lib-1.0-py3-none-any.whl"]}).packages


def test_concurrent_prunes_and_a_use_since_the_listing_keep_the_cache_whole(tmp_path):
    """Two prunes at once never fail on each other; an environment handed out after a prune listed it is kept."""
    import threading

    from jupyter_jobs.pyenv.cache import METADATA, EnvironmentCache

    cache = EnvironmentCache(tmp_path / "cache")
    envs = []
    for index in range(4):
        folder = cache.path(f"{index:064x}")
        folder.mkdir(parents=True)
        (folder / METADATA).write_text('{"lock": {"python": "3.11"}, "built_at": 0, "build_seconds": 0}')
        os.utime(folder / METADATA, (index, index))
        envs.append(folder)
    listed = cache.list
    cache.list = lambda: [*listed()]  # the listing of the moment...
    infos = cache.list()
    os.utime(envs[0] / METADATA)  # ...then env 0 is handed out to a job
    cache.list = lambda: infos
    errors = []

    def prune() -> None:
        try:
            cache.prune(0, set())
        except Exception as exc:  # what the pool would have seen
            errors.append(exc)

    threads = [threading.Thread(target=prune) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [e.exists() for e in envs] == [True, False, False, False]

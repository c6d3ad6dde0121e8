"""The pure parts of environment images: the platform uv installs for, the archive copied into an image."""
import io
import tarfile

import pytest

from jupyter_jobs.pyenv.lock import Lock, Pin
from jupyter_jobs.runner.docker_env import _script, _uv_platform, _write_archive, image_tag, pth_line


@pytest.mark.parametrize("machine, libc, platform", [
    ("x86_64", ["glibc", "2.36"], "x86_64-manylinux_2_36"),   # Debian bookworm
    ("x86_64", ["glibc", "2.24"], "x86_64-manylinux_2_17"),   # older than 2_28: the manylinux2014 floor
    ("aarch64", ["glibc", "2.29"], "aarch64-manylinux_2_28"),
    ("x86_64", ["glibc", "2.41"], "x86_64-manylinux_2_40"),   # newer than uv knows: the newest it does
    ("x86_64", ["", ""], "x86_64-unknown-linux-musl"),        # Alpine: libc_ver() says nothing
    ("ppc64le", ["glibc", "2.36"], "linux"),
])
def test_the_platform_of_an_image(machine, libc, platform):
    assert _uv_platform({"machine": machine, "libc": libc}) == platform


def test_the_archive_puts_the_packages_under_the_env_root_and_a_pth_in_the_site(tmp_path):
    folder = tmp_path / "target"
    (folder / "six-1.16.0.dist-info").mkdir(parents=True)
    (folder / "six.py").write_text("x = 1\n")
    (folder / "bin").mkdir()
    (folder / "bin" / "tool").write_text("#!/work/server/.venv/bin/python\nprint(1)\n")
    (folder / "jupyter-jobs-env.json").write_text("{}")
    stream = io.BytesIO()
    _write_archive(stream, folder, "/opt/jupyter-jobs/env/abc", "/usr/lib/python3/dist-packages/jupyter-jobs-env.pth")
    stream.seek(0)
    with tarfile.open(fileobj=stream) as tar:
        names = set(tar.getnames())
        assert "opt/jupyter-jobs/env/abc/six.py" in names and "opt/jupyter-jobs/env/abc/six-1.16.0.dist-info" in names
        assert "opt/jupyter-jobs/env/abc/jupyter-jobs-env.json" not in names
        line = tar.extractfile("usr/lib/python3/dist-packages/jupyter-jobs-env.pth").read().decode()
        assert line == pth_line("/opt/jupyter-jobs/env/abc") + "\n"
        assert tar.extractfile("opt/jupyter-jobs/env/abc/bin/tool").read().startswith(b"#!/usr/bin/env python3\n")
        assert {m.uid for m in tar.getmembers()} == {0}


def test_scripts_and_tags():
    assert _script(b"#!/bin/sh\necho\n") == b"#!/bin/sh\necho\n"
    lock = Lock("3.11", (Pin("six", "1.16.0"),))
    assert image_tag(lock, "sha256:" + "f" * 64) == f"jupyter-jobs/env:{lock.hash[:32]}-{'f' * 12}"


def test_the_pth_line_puts_the_environment_before_the_site_packages():
    import sys

    path = ["/work", "/usr/lib/python311.zip", "/usr/lib/python3.11", "/usr/local/lib/python3.11/dist-packages",
            "/usr/lib/python3/dist-packages"]
    saved = sys.path[:]
    try:
        sys.path[:] = path
        exec(pth_line("/opt/jupyter-jobs/env/abc"))
        assert sys.path == [*path[:3], "/opt/jupyter-jobs/env/abc", *path[3:]]
    finally:
        sys.path[:] = saved

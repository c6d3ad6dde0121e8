"""The notebook's environment, end to end: a real kernel in its own venv (numpy 1.26.4, while the server's
venv has another numpy) runs ``%%job`` through a real `jupyter server`, and the job gets the kernel's
exact packages: on the local backend (with the kernel's own interpreter), in Docker and on Slurm. A
local editable package travels as a wheel, and an edit reaches the next job; a notebook job runs in an
image that has nothing of jupyter-jobs."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path

import nbformat
import pytest
from conftest import UV_CACHE, ServerProcess
from nbclient import NotebookClient

from jupyter_jobs.pyenv.uv import find_uv

pytestmark = [pytest.mark.integration, pytest.mark.index]

REPO = Path(__file__).resolve().parents[2]
NUMPY = "1.26.4"
#: What the kernel's venv holds: a kernel, what the magic imports, numpy, nbclient (notebook jobs), uv (wheels).
KERNEL_PACKAGES = ["ipykernel", "nbclient", f"numpy=={NUMPY}", "pyyaml", "pathspec", "packaging", "uv", "cloudpickle"]


def make_kernel(root: Path, name: str, extra: tuple[str, ...] = ()) -> Path:
    """A venv of /usr/bin/python3.11 with KERNEL_PACKAGES, jupyter_jobs from this checkout on its path (a
    path, not a distribution: jobs never install it), and a kernelspec ``name`` under ``root/share``."""
    venv = root / name
    env = {**os.environ, "UV_CACHE_DIR": str(UV_CACHE)}
    uv = find_uv()
    subprocess.run([uv, "venv", "-q", "--python", "/usr/bin/python3.11", str(venv)], check=True, env=env)
    subprocess.run([uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), *KERNEL_PACKAGES, *extra],
                   check=True, env=env)
    (venv / "lib" / "python3.11" / "site-packages" / "jupyter_jobs_checkout.pth").write_text(f"{REPO}\n")
    spec = root / "share" / "jupyter" / "kernels" / name
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(venv / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": name, "language": "python"}))
    return venv


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    root = tmp_path_factory.mktemp("kernels")
    make_kernel(root, "numpy-kernel")
    return root


def run_cells(server: ServerProcess, kernels: Path, kernel: str, cells: list[str], monkeypatch) -> str:
    monkeypatch.setenv("JUPYTER_JOBS_URL", server.url)
    monkeypatch.setenv("JUPYTER_JOBS_TOKEN", server.token)
    monkeypatch.setenv("JUPYTER_PATH", str(kernels / "share" / "jupyter"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(kernels / "cache"))  # the kernel's wheel cache
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in ["%load_ext jupyter_jobs", *cells]]
    NotebookClient(nb, kernel_name=kernel, timeout=600, resources={"metadata": {"path": str(server.root)}}).execute()
    text = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text.append(output.get("text", "") if output.get("output_type") == "stream" else json.dumps(output))
    return "".join(text)


def job_record(server: ServerProcess, job_id: int = 1) -> dict:
    return server.request("GET", f"jobs/{job_id}")


NUMPY_CELL = "%%job --wait\nimport numpy, sys\nprint('JOB NUMPY', numpy.__version__, sys.version_info[:2])"
ENV_ARGS = [f"--Environments.uv_cache_dir={UV_CACHE}"]


@pytest.mark.parametrize("server_args", [ENV_ARGS])
def test_local_job_runs_with_the_kernels_interpreter_and_packages(server_process, kernels, monkeypatch):
    out = run_cells(server_process, kernels, "numpy-kernel", [NUMPY_CELL], monkeypatch)
    assert f"JOB NUMPY {NUMPY} (3, 11)" in out, out
    env = job_record(server_process)["environment"]
    assert (env["source"], env["built"], env["where"]) == ("auto", False, "interpreter")
    assert "interpreter" not in env or env["interpreter"] is None or "numpy-kernel" in env.get("interpreter", "")


@pytest.mark.parametrize("server_args", [ENV_ARGS + ["--Environments.same_interpreter=False"]])
def test_local_job_without_the_kernels_interpreter_gets_a_venv_of_the_same_lock(server_process, kernels, monkeypatch):
    out = run_cells(server_process, kernels, "numpy-kernel", [NUMPY_CELL, NUMPY_CELL], monkeypatch)
    assert out.count(f"JOB NUMPY {NUMPY} (3, 11)") == 2, out
    first, second = job_record(server_process, 1)["environment"], job_record(server_process, 2)["environment"]
    assert (first["built"], first["where"], second["built"], second["hash"]) == (True, "venv", False, first["hash"])
    assert "is cached; no build" in server_process.request("GET", "jobs/2/logs").decode()


@pytest.mark.docker
@pytest.mark.parametrize("server_args", [ENV_ARGS + ["--JobManager.backend=docker"]])
def test_docker_job_and_notebook_job_get_the_kernels_packages(server_process, kernels, monkeypatch):
    import docker

    other = nbformat.v4.new_notebook()
    other.cells = [nbformat.v4.new_code_cell("n = 1", metadata={"tags": ["parameters"]}),
                   nbformat.v4.new_code_cell("import numpy\nprint('NOTEBOOK JOB', n, numpy.__version__)")]
    nbformat.write(other, server_process.root / "other.ipynb")
    out = run_cells(server_process, kernels, "numpy-kernel", [
        NUMPY_CELL, "%job run other.ipynb --param n=3 --wait",
        "import nbformat\nnb = nbformat.read('other.job2.ipynb', as_version=4)\n"
        "print('EXECUTED', nb.cells[-1].outputs[0]['text'].strip())"], monkeypatch)
    assert f"JOB NUMPY {NUMPY} (3, 11)" in out, out
    assert f"EXECUTED NOTEBOOK JOB 3 {NUMPY}" in out, out
    cell_job, notebook_job = job_record(server_process, 1), job_record(server_process, 2)
    assert cell_job["environment"]["where"].startswith("jupyter-jobs/env:")
    assert notebook_job["environment"] == {**cell_job["environment"], "built": False,
                                           "prepare_seconds": notebook_job["environment"]["prepare_seconds"]}
    with contextlib.closing(docker.from_env()) as client:
        client.images.remove(cell_job["environment"]["where"], force=True)


@pytest.mark.slurm
@pytest.mark.parametrize("server_args", [ENV_ARGS + ["--JobManager.backend=slurm", "--SlurmBackend.poll_seconds=0.3",
                                                     "--Cluster.cpus=2", "--Cluster.memory_mib=400"]])
def test_slurm_job_gets_the_kernels_packages(server_process, kernels, monkeypatch):
    out = run_cells(server_process, kernels, "numpy-kernel", [NUMPY_CELL], monkeypatch)
    assert f"JOB NUMPY {NUMPY} (3, 11)" in out, out
    env = job_record(server_process)["environment"]
    assert (env["built"], env["where"]) == (True, "venv")


@pytest.mark.docker
@pytest.mark.parametrize("server_args", [ENV_ARGS + ["--JobManager.backend=docker"]])
def test_an_editable_package_travels_and_an_edit_reaches_the_next_job(server_process, tmp_path, monkeypatch):
    import docker

    kernels = tmp_path / "kernels"
    lib = tmp_path / "mylib"
    (lib / "mylib").mkdir(parents=True)
    (lib / "pyproject.toml").write_text('[project]\nname = "mylib"\nversion = "0.1"\n[build-system]\n'
                                        'requires = ["hatchling"]\nbuild-backend = "hatchling.build"\n')
    (lib / "mylib" / "__init__.py").write_text("WORD = 'first'\n")
    venv = make_kernel(kernels, "lib-kernel")
    subprocess.run([find_uv(), "pip", "install", "-q", "--python", str(venv / "bin" / "python"), "-e", str(lib)],
                   check=True, env={**os.environ, "UV_CACHE_DIR": str(UV_CACHE)})
    cell = "%%job --wait\nimport mylib\nprint('MYLIB SAYS', mylib.WORD)"
    edit = f"open({str(lib / 'mylib' / '__init__.py')!r}, 'w').write(\"WORD = 'second'\\n\")"
    out = run_cells(server_process, kernels, "lib-kernel", [cell, edit, cell], monkeypatch)
    assert "MYLIB SAYS first" in out and "MYLIB SAYS second" in out, out
    first, second = job_record(server_process, 1)["environment"], job_record(server_process, 2)["environment"]
    assert first["local"] == second["local"] == ["mylib"] and first["hash"] != second["hash"]
    with contextlib.closing(docker.from_env()) as client:
        for env in (first, second):
            client.images.remove(env["where"], force=True)

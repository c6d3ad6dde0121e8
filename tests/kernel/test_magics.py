"""Magic arguments and spec building, without a server (the upload and submit are recorded)."""
import pickle
import sys
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from jupyter_jobs.kernel.magics import JobMagics


class RecordingClient:
    """Stands in for the server: records what the magic would send."""

    def __init__(self):
        self.submitted = []

    def upload(self, files):
        self.files = {rel: Path(path).read_bytes() for rel, path in files.items()}
        return {rel: "0" * 64 for rel in files}

    def submit(self, spec, manifest, environment=None):
        self.submitted.append((spec, manifest))
        self.environments = getattr(self, "environments", []) + [environment]
        return {"id": 1, "name": spec["name"], "status": "Pending", "message": "", "instance_type": "cpu"}

    def follow(self, job_id, write, **kwargs):
        return {"id": job_id, "name": "cell", "status": "Succeeded", "message": ""}

    def output(self, job_id, path):
        return pickle.dumps({"y": 42})


@pytest.fixture
def magics(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ip = InteractiveShell.instance()
    magics = JobMagics(ip)
    magics._client = RecordingClient()
    ip.register_magics(magics)
    yield ip, magics
    magics.waiter.unregister()
    ip.user_ns.pop("y", None)


def test_cell_job_spec_from_options(magics, tmp_path):
    ip, m = magics
    (tmp_path / "helpers.py").write_text("X = 1\n")
    ip.user_ns["x"] = 21
    ip.run_cell_magic("job", "--name train --instance-type gpu --dataset mnist:DATA --dataset imagenet "
                      "--image img:1 --env SEED=1 --max-runtime 2h --in x --out y --wait", "import helpers\ny = x * 2\n")
    spec, manifest = m._client.submitted[0]
    assert spec == {
        "name": "train", "cmd": "python -m jupyter_jobs_jobside.cell",
        "env": {"vars": {"JJ_OUT": "y", "SEED": "1"}, "python": "auto"},
        "instance-type": "gpu", "image": "img:1", "max-runtime": "2h",
        "datasets": [{"name": "mnist", "var": "DATA"}, "imagenet"], "outputs": ["_jj_out.pkl"],
    }
    assert sorted(manifest) == ["_jj_cell.py", "_jj_in.pkl", "helpers.py"]
    assert pickle.loads(m._client.files["_jj_in.pkl"]) == {"x": 21}
    assert ip.user_ns["y"] == 42  # --out arrived
    sent = m._client.environments[0]  # the notebook's Python, as the job's (env.python: auto)
    assert sent["interpreter"] == sys.executable
    assert sent["lock"]["python"] == "%d.%d" % sys.version_info[:2]
    names = {p["name"] for p in sent["lock"]["packages"]}
    assert {"ipython", "traitlets"} <= names and "jupyter-jobs" not in names


def test_python_none_sends_no_environment(magics):
    ip, m = magics
    ip.run_cell_magic("job", "--python none --wait", "print(1)\n")
    spec, _ = m._client.submitted[0]
    assert spec["env"]["python"] == "none" and m._client.environments == [None]


@pytest.mark.parametrize("line, message", [
    ("--bogus", "unrecognized arguments: --bogus"),
    ("--in nope --wait", "--in: nope not defined in the notebook"),
    ("--env NOVALUE", "--env NOVALUE: write it as NAME=value"),
    ("--config missing.yaml", "--config missing.yaml: no such file"),
])
def test_bad_options_are_one_line_usage_errors(magics, line, message):
    ip, _ = magics
    with pytest.raises(UsageError, match=message):
        ip.run_cell_magic("job", line, "pass\n")


def test_unpicklable_input_is_explained(magics):
    ip, _ = magics
    ip.user_ns["gen"] = (i for i in range(3))
    with pytest.raises(UsageError, match="--in gen: a builtins.generator cannot be sent to a job"):
        ip.run_cell_magic("job", "--in gen", "pass\n")


def test_line_magic_errors(magics):
    ip, _ = magics
    with pytest.raises(UsageError, match="%job: "):
        ip.run_line_magic("job", "frobnicate")
    with pytest.raises(UsageError, match="no such file"):
        ip.run_line_magic("job", "run nothing.yaml")
    with pytest.raises(UsageError, match="--param is for notebooks"):
        (Path.cwd() / "job.yaml").write_text("cmd: x\n")
        ip.run_line_magic("job", "run job.yaml --param a=1")


def test_magic_documents_itself(magics):
    ip, _ = magics
    doc = ip.find_cell_magic("job").__doc__
    assert "--instance-type" in doc and "--out c,d" in doc and "JobFailed" in doc


def test_cell_job_mounts_volumes(magics):
    ip, m = magics
    ip.run_cell_magic("job", "--volume research:PROJECT --volume ckpt --wait", "print(1)\n")
    spec, _ = m._client.submitted[0]
    assert spec["volumes"] == [{"name": "research", "var": "PROJECT"}, "ckpt"]

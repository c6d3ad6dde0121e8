"""`jupyter jobs convert`, and what `jupyter jobs run` does for DataSphere specs: bare env.vars names
copied from its environment, absolute inputs uploaded from its machine; `list --label`."""
from pathlib import Path

import pytest
import yaml
from test_cli import fresh_env, jobs  # noqa: F401 (fresh_env is a fixture)

pytestmark = pytest.mark.integration
SPECS = Path(__file__).parent / "specs"


def test_convert_prints_the_native_spec_and_what_was_left_out(fresh_env):
    result = jobs("convert", str(SPECS / "bacalhau" / "job.yaml"), env=fresh_env, check=0)
    spec = yaml.safe_load(result.stdout)
    assert spec["cmd"] == "python3 summarize.py --rows 1000 --output ${OUTPUTS}"
    assert spec["outputs"] == [{"path": "outputs", "var": "OUTPUTS"}] and spec["queue-timeout"] == "5m"
    assert "Bacalhau spec" in result.stderr and "# warning: " in result.stderr and "Constraints" in result.stderr
    # With no admin mappings here, the DataSphere config is refused naming each field and what to do.
    refused = jobs("convert", str(SPECS / "datasphere" / "config.yaml"), env=fresh_env, check=2).stderr
    assert "s3-mounts[0]: S3 connector 's3features' is not mapped" in refused
    assert "flags[0]: attach-project-disk needs a project volume" in refused


def datasphere_job(folder: Path, secret: Path) -> Path:
    folder.mkdir()
    (folder / "show.py").write_text("import os, sys\nprint('token', os.environ['RUN_TOKEN'], open(sys.argv[1]).read())\n")
    spec = folder / "config.yaml"
    spec.write_text(f"name: ds\ncmd: >\n  python show.py\n    ${{PARAMS}}\ninputs:\n  - show.py\n"
                    f"  - {secret}:\n      var: PARAMS\nenv:\n  vars:\n    - RUN_TOKEN\nlabels: {{team: vision}}\n")
    return spec


def test_embedded_run_copies_bare_variables_and_ships_absolute_inputs(fresh_env, tmp_path):
    secret = tmp_path / "outside" / "params.txt"
    secret.parent.mkdir()
    secret.write_text("lr=0.1")
    spec = datasphere_job(tmp_path / "project", secret)
    result = jobs("run", str(spec), "--follow", env={**fresh_env, "RUN_TOKEN": "abc"}, check=0)
    assert "token abc lr=0.1" in result.stdout
    assert "ds" in jobs("list", "--label", "team=vision", env=fresh_env, check=0).stdout
    assert "ds" not in jobs("list", "--label", "team=audio", env=fresh_env, check=0).stdout
    missing = jobs("run", str(spec), env=fresh_env, check=2).stderr
    assert "env.vars[0]: RUN_TOKEN is not set here" in missing


def test_absolute_inputs_reach_a_server_whose_root_does_not_hold_them(server_process, tmp_path):
    secret = tmp_path / "outside" / "params.txt"
    secret.parent.mkdir()
    secret.write_text("lr=0.2")
    spec = datasphere_job(tmp_path / "elsewhere", secret)  # not under the server's root either
    env = {**server_process.env, "RUN_TOKEN": "xyz"}
    result = jobs("--url", server_process.url, "--token", server_process.token, "run", str(spec), "--follow",
                  env=env, check=0)
    assert "token xyz lr=0.2" in result.stdout
    job_id = int(result.stderr.split()[1])
    assert server_process.request("GET", f"jobs/{job_id}")["labels"] == {"team": "vision"}

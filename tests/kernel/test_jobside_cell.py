"""The job side of a cell on a Python with nothing but the standard library (an image as it is)."""
import os
import pickle
import subprocess

import pytest

from jupyter_jobs import jobside

BARE = "/usr/bin/python3.11"


@pytest.mark.skipif(not os.path.exists(BARE), reason=f"{BARE} is not installed")
def test_without_ipython_the_cell_runs_as_plain_python_and_its_outputs_travel(tmp_path):
    probe = subprocess.run([BARE, "-c", "import IPython"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip(f"{BARE} has IPython")
    (tmp_path / "_jj_cell.py").write_text("values = [x * x for x in range(4)]\nprint('SUM', sum(values))\n"
                                          "import sys\nsys.exit(3)\n")
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    env = {**os.environ, "PYTHONPATH": str(jobside.install(tmp_path / "data")), "JJ_OUT": "values,missing",
           "JOB_OUTPUTS": str(outputs)}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run([BARE, "-m", "jupyter_jobs_jobside.cell"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 3, done.stderr  # the cell's own exit status
    assert "SUM 14" in done.stdout and "runs as plain Python" in done.stderr
    assert "--out missing: the cell did not define it" in done.stderr
    sent = pickle.loads((outputs / "_jj_out.pkl").read_bytes())
    assert pickle.loads(sent["values"]) == [0, 1, 4, 9] and list(sent["__jj_errors__"]) == ["missing"]


def test_a_full_disk_stops_keeping_displays_with_one_line_in_the_log_not_the_cell(capsys):
    from jupyter_jobs.jobside.cell import Displays

    displays = Displays("/dev/full")  # every write: ENOSPC
    displays.write({"output_type": "display_data", "data": {"text/plain": "x"}, "metadata": {}})
    displays.write({"output_type": "display_data", "data": {"text/plain": "y"}, "metadata": {}})
    assert displays.failed
    assert capsys.readouterr().err.count("the cell's displays are no longer kept") == 1

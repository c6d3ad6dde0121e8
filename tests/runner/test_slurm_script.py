"""The pieces of the Slurm batch script that need no cluster: directives as sbatch reads them, and
the values no script may carry (the real-Slurm tests are in test_slurm.py)."""
from pathlib import Path

import pytest

from jupyter_jobs.errors import BackendError
from jupyter_jobs.runner.environment import owner_folder
from jupyter_jobs.runner.slurm import SlurmBackend, _log_pattern, directive


def test_directives_are_quoted_as_sbatch_reads_them():
    assert directive("nodes", 2) == "#SBATCH --nodes=2"
    assert directive("chdir", "/d/a b #1") == "#SBATCH --chdir='/d/a b #1'"
    assert directive("job-name", "it's a\\b") == "#SBATCH --job-name='it\\'s a\\\\b'"


@pytest.mark.parametrize("value", ["a\n#SBATCH --gres=gpu:2", "a\rb", "a\x00b", "a\x1bb", "a\x7fb", "a\ud800"])
def test_a_directive_that_could_break_its_line_is_refused(value):
    with pytest.raises(BackendError, match="cannot go into a Slurm batch script"):
        directive("partition", value)


def test_log_pattern_escapes_slurms_patterns_and_refuses_a_backslash():
    assert _log_pattern(Path("/d/100%/%j/job.log")) == "/d/100%%/%%j/job.log"
    with pytest.raises(BackendError, match="backslash"):
        _log_pattern(Path("/d/a\\b/job.log"))


@pytest.mark.parametrize("name, value, message", [
    ("A;touch x", "1", "not one a shell accepts"), ("1A", "1", "not one a shell accepts"),
    ("A", "a\x00b", "cannot go into"), ("A", "\udcff", "cannot go into"),
])
def test_exports_refuse_what_no_shell_holds(name, value, message):
    with pytest.raises(BackendError, match=message):
        SlurmBackend._export(name, value)


def test_exports_keep_newlines_and_shell_syntax_as_text():
    assert SlurmBackend._export("V", "$(x)\n#SBATCH y'") == "export V='$(x)\n#SBATCH y'\"'\"''"


@pytest.mark.parametrize("owner, folder", [
    ("alice", "alice"), ("a.b-c_d", "a.b-c_d"), ("x$(touch /tmp/p)", "x__touch__tmp_p_"),
    ("..", "__"), (".", "_"), ("", "user"), ("ü ü", "___"),
])
def test_owner_folder_is_one_plain_path_component(owner, folder):
    assert owner_folder(owner) == folder

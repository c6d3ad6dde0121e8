"""Job spec parsing: every refusal names its field and says what to do."""
import pytest

from jupyter_jobs.errors import SpecError
from jupyter_jobs.models import format_duration
from jupyter_jobs.spec import apply_overrides, parse_duration, parse_set_option, parse_spec, substitute

FULL = """
name: train
desc: trains a model
cmd: python train.py --epochs ${epochs} --data ${DATA} --out ${MODEL} --lit $${HOME}
args: {epochs: 10, lr: 0.01}
inputs:
  - train.py
  - {data.csv: CSV}
  - {path: conf/, var: CONF}
outputs:
  - model.pt: MODEL
  - {path: metrics/}
datasets:
  - mnist
  - {name: imagenet, var: DATA}
env:
  vars: {SEED: 1, MODE: fast}
image: python:3.11
instance-type: gpu
max-runtime: 1h30m
retries: 2
priority: 5
labels: {team: vision}
working-dir: src
"""


def test_full_spec_round_trips():
    spec = parse_spec(FULL)
    assert spec.args == {"epochs": 10, "lr": 0.01}  # typed as written: the Lab's rerun form shows a number
    assert [(i.path, i.var) for i in spec.inputs] == [("train.py", None), ("data.csv", "CSV"), ("conf", "CONF")]
    assert [(o.path, o.var) for o in spec.outputs] == [("model.pt", "MODEL"), ("metrics", None)]
    assert [(d.name, d.var) for d in spec.datasets] == [("mnist", None), ("imagenet", "DATA")]
    assert spec.env == {"SEED": "1", "MODE": "fast"}
    assert (spec.max_runtime, spec.retries, spec.priority, spec.working_dir) == (5400, 2, 5, "src")
    assert parse_spec(spec.to_dict()) == spec


def test_minimal_spec_defaults():
    spec = parse_spec({"cmd": "echo hi"})
    assert (spec.name, spec.retries, spec.priority, spec.max_runtime, spec.working_dir) == ("job", 0, 0, None, ".")


def test_cmd_as_list_is_quoted():
    assert parse_spec({"cmd": ["echo", "a b"]}).cmd == "echo 'a b'"


def fields(data) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return {p.field: p.message for p in info.value.problems}


def test_every_problem_is_reported_with_its_field_path():
    problems = fields({
        "cmd": "run ${NOPE}", "outptus": [], "outputs": ["ok.txt", "../x", "/abs"],
        "max-runtime": "3 fortnights", "retries": "two", "priority": 5000,
        "inputs": [{"path": "a", "var": "1bad"}], "labels": {"a": [1]}, "working-dir": "../up",
    })
    assert "did you mean 'outputs'" in problems["outptus"]
    assert "escapes the job folder" in problems["outputs[1].path"]
    assert "is absolute" in problems["outputs[2].path"]
    assert "not a duration" in problems["max-runtime"]
    assert "whole number" in problems["retries"]
    assert "out of range" in problems["priority"]
    assert "not a valid variable name" in problems["inputs[0].var"]
    assert "expected a string" in problems["labels.a"]
    assert "escapes" in problems["working-dir"]
    assert "${NOPE} is not defined" in problems["cmd"]


def test_missing_cmd_and_wrong_shapes():
    assert "required" in fields({"name": "x"})["cmd"]
    assert "expected a list" in fields({"cmd": "x", "inputs": "a.txt"})["inputs"]
    assert "unknown key" in fields({"cmd": "x", "env": {"varz": {}}})["env.varz"]
    assert "listed twice" in fields({"cmd": "x", "outputs": ["a", "./a"]})["outputs[1].path"]
    with pytest.raises(SpecError, match="a job spec is a mapping"):
        parse_spec("- just\n- a list\n")


def test_yaml_syntax_error_says_where():
    with pytest.raises(SpecError, match="line 2"):
        parse_spec("cmd: echo\n  bad: [\n")


def test_vars_from_inputs_outputs_datasets_env_and_builtins_are_defined():
    spec = parse_spec({
        "cmd": "x ${A} ${B} ${C} ${D} ${E} ${JOB_ID} ${JOB_OUTPUTS}",
        "args": {"A": 1}, "env": {"vars": ["B=2"]}, "inputs": [{"i": "C"}], "outputs": [{"o": "D"}],
        "datasets": [{"ds": "E"}],
    })
    assert spec.env == {"B": "2"}


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("2h", 7200), ("1h30m", 5400), ("1.5h", 5400),
                                           ("2d", 172800), (45, 45), ("500ms", 0.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "soon", "10", "-5s", "0s", True])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_format_duration_inverts_parse():
    assert format_duration(5400) == "1h30m"
    assert parse_duration(format_duration(93784)) == 93784


def test_substitute_quotes_values_and_unescapes_dollars():
    assert substitute("cp ${SRC} out $${HOME} $$X", {"SRC": "my file"}) == "cp 'my file' out ${HOME} $X"


def test_overrides_dotted_and_nested():
    base = parse_spec(FULL).to_dict()
    out = apply_overrides(base, {"args.epochs": 20, "max_runtime": "2h", "env": {"vars": {"NEW": "1"}}, "desc": None})
    spec = parse_spec(out)
    assert spec.args["epochs"] == 20 and spec.args["lr"] == 0.01
    assert spec.max_runtime == 7200
    assert spec.env == {"SEED": "1", "MODE": "fast", "NEW": "1"}
    assert spec.desc == ""
    assert base["args"]["epochs"] == 10, "overrides must not change the original"


def test_set_option_values_are_yaml_scalars():
    assert parse_set_option("args.epochs=20") == ("args.epochs", 20)
    assert parse_set_option("name=a=b") == ("name", "a=b")
    with pytest.raises(SpecError, match="key=value"):
        parse_set_option("novalue")

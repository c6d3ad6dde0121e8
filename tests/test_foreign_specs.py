"""Translation of other platforms' specs (pure logic), the folded ``cmd: >``, and the new spec fields."""
import json
import sqlite3
from pathlib import Path

import pytest

from jupyter_jobs.errors import SpecError
from jupyter_jobs.migrations import MIGRATIONS, migrate
from jupyter_jobs.models import InstanceType
from jupyter_jobs.spec import load_spec_text, parse_spec
from jupyter_jobs.spec.foreign import Site, detect, to_native
from jupyter_jobs.spec.submitter import fill_environment, for_shipping, local_inputs

SPECS = Path(__file__).parent / "specs"
SITE = Site(
    (InstanceType("g1.1", 1, 1024, gpus=1), InstanceType("c1.2", 0.5, 256), InstanceType("cpu-1", 0.5, 512)),
    project_dataset="project-disk", s3_mounts={"s3features": "features-bucket"},
)


def native(name: str) -> tuple[dict, list[str]]:
    translation = to_native(load_spec_text((SPECS / name).read_text()), SITE)
    return parse_spec(fill_environment(translation.spec, {"DS_RUN_TAG": "t"})).to_dict(), translation.warnings


def test_each_platform_is_recognised_by_its_shape():
    assert [detect(load_spec_text((SPECS / f).read_text()))
            for f in ("datasphere/config.yaml", "primehub/job.json", "bacalhau/job.yaml")] == [
        "datasphere", "primehub", "bacalhau"]
    assert detect({"cmd": "true", "datasets": ["mnist"]}) == "native"
    assert detect({"Job": {"Type": "batch", "Tasks": []}}) == "bacalhau"  # the API's envelope
    assert detect({"kind": "PhJob", "spec": {}}) == "primehub"
    assert detect({"command": "python a.py", "image": "x"}) == "native"  # parse says: did you mean 'cmd'?


def test_a_folded_cmd_with_indented_options_is_one_command():
    spec = load_spec_text("cmd: >  # one line\n  python main.py\n    --a 1\n    --b ${X}\n\n  echo next\n"
                          "desc: >\n  kept\n  folded\n")
    assert spec["cmd"] == "python main.py --a 1 --b ${X}\n\necho next\n"  # a blank line still starts a line
    assert spec["desc"] == "kept folded\n"
    assert load_spec_text("cmd: |\n  for i in 1 2; do\n    echo $i\n  done\n")["cmd"] == (
        "for i in 1 2; do\n  echo $i\ndone\n")  # a literal block is a script, as written


def test_datasphere_config_translation():
    spec, warnings = native("datasphere/config.yaml")
    assert warnings == []
    assert spec["cmd"].startswith("python src/main.py --params ${PARAMS} --features ${s3features}/features.tsv")
    assert "\n" not in spec["cmd"].rstrip("\n")
    assert spec["inputs"][2] == {"path": "params.json", "var": "PARAMS"}
    assert spec["outputs"] == [{"path": "data/model.bin", "var": "MODEL"}, {"path": "metrics.txt", "var": "METRICS"}]
    assert spec["datasets"] == [
        {"name": "cifar", "var": "CIFAR"}, {"name": "labels", "var": "labels"},
        {"name": "features-bucket", "var": "s3features"}, {"name": "project-disk", "var": "DS_PROJECT_HOME"}]
    assert spec["env"] == {"vars": {"PYTHONBUFFERED": "Yes", "DEVICE_COUNT": "1", "DS_RUN_TAG": "t"}}
    assert spec["image"] == "python:3.11-slim" and spec["instance-type"] == ["g1.1", "c1.2"]
    assert parse_spec(spec).to_dict() == spec  # the native form reads back as itself (reruns, the store)


def test_primehub_translation_keeps_dollars_for_the_shell_and_ships_the_script():
    spec, warnings = native("primehub/job.json")
    assert spec["cmd"] == ('echo "job of $$PRIMEHUB_USER in group $$PRIMEHUB_GROUP"\n'
                           "python -u train_mnist.py --epochs 3")
    assert spec["inputs"] == [{"path": "train_mnist.py"}]
    assert (spec["instance-type"], spec["image"], spec["max-runtime"]) == ("cpu-1", "base-notebook", "1d")
    assert spec["env"]["vars"] == {"PRIMEHUB_GROUP": "research", "PRIMEHUB_USER": "phadmin"}
    assert spec["group"] == "research"  # the job's group: its quota, and who sees it
    assert warnings == ["PrimeHub keys with no equivalent in jupyter-jobs were left out: groupId (the group is "
                        "groupName); userId (the job's owner is whoever submits it)"]
    wrapped = to_native({"apiVersion": "primehub.io/v1alpha1", "kind": "PhJob",
                         "metadata": {"name": "job-1", "labels": {"app": "x"}, "namespace": "hub"},
                         "spec": {"command": "true", "requeueLimit": 2}})
    assert wrapped.spec == {"cmd": "true", "name": "job-1", "labels": {"app": "x"}, "retries": 2}
    assert "metadata.namespace" in wrapped.warnings[0]


def test_bacalhau_translation():
    spec, warnings = native("bacalhau/job.yaml")
    assert spec["cmd"] == "python3 summarize.py --rows 1000 --output ${OUTPUTS}"
    assert spec["outputs"] == [{"path": "outputs", "var": "OUTPUTS"}]
    assert spec["inputs"] == [{"path": "summarize.py"}]
    assert (spec["instance-type"], spec["max-runtime"], spec["queue-timeout"], spec["priority"]) == (
        "c1.2", "10m", "5m", 50)
    assert spec["meta"] == {"version": "1.2.5"} and spec["labels"]["team"] == "analytics"
    assert len(warnings) == 1 and all(k in warnings[0] for k in (
        "Constraints", "Tasks[0].Engine.Params.WorkingDirectory", "Tasks[0].Publisher"))


def test_bacalhau_words_are_quoted_and_result_paths_become_variables():
    job = {"Type": "batch", "Count": 1, "Tasks": [{"Engine": {"Type": "docker", "Params": {
        "Image": "ubuntu", "Entrypoint": ["bash", "-c"],
        "Parameters": ["echo $HOME ${USER} > /outputs/a.txt; ls /outputs_old /outputs"]}},
        "ResultPaths": [{"Name": "outputs", "Path": "/outputs"}]}]}
    spec = parse_spec(to_native(job).spec)
    assert spec.cmd == "bash -c 'echo $$HOME $${USER} > '${OUTPUTS}'/a.txt; ls /outputs_old '${OUTPUTS}"


@pytest.mark.parametrize("job, fields", [
    ({"Type": "service", "Count": 1, "Tasks": [{"Engine": {"Type": "wasm"}, "InputSources": [{}]}]},
     ["Type", "Tasks[0].Engine.Type", "Tasks[0].InputSources"]),
    ({"Type": "batch", "Count": 1, "Tasks": []}, ["Tasks"]),
    ({"Type": "batch", "Count": 1, "Tasks": [{"Engine": {"Type": "docker", "Params": {"Image": "x"}},
                                              "Resources": {"GPU": "8"}}]},
     ["Tasks[0].Engine.Params", "Tasks[0].Resources"]),
])
def test_bacalhau_keys_that_would_change_the_results_are_refused_together(job, fields):
    with pytest.raises(SpecError) as error:
        to_native(job, SITE)
    assert [p.field for p in error.value.problems] == fields


def test_datasphere_refusals_name_the_field_and_what_to_do():
    with pytest.raises(SpecError) as error:
        to_native({"cmd": "x", "flags": ["attach-project-disk", "fast"], "s3-mounts": ["other"],
                   "env": {"docker": {"image": "i", "username": "u"}}, "cloud-instance-type": "a",
                   "instance-type": "b"}, Site())
    messages = {p.field: p.message for p in error.value.problems}
    assert set(messages) == {"cloud-instance-type", "env.docker.password", "s3-mounts[0]", "flags[0]", "flags[1]"}
    assert "c.Cluster.project_disk" in messages["flags[0]"] and "unknown flag 'fast'" in messages["flags[1]"]
    assert "c.Cluster.s3_mounts" in messages["s3-mounts[0]"] and "secret-id" in messages["env.docker.password"]


def test_new_native_fields_read_back():
    spec = parse_spec({"cmd": "true", "queue-timeout": 90, "meta": {"v": 1.5}, "instance-type": ["a", "b"],
                       "inputs": [{"a.txt": {"var": "A"}}], "desc": "d"})
    assert (spec.queue_timeout, spec.meta, spec.instance_type, spec.instance_type_fallbacks) == (
        90.0, {"v": "1.5"}, "a", ("b",))
    assert parse_spec(spec.to_dict()) == spec
    with pytest.raises(SpecError) as error:
        parse_spec({"cmd": "true", "queue-timeout": "soon", "instance-type": [], "env": {"vars": ["HOME"]}})
    assert [p.field for p in error.value.problems] == ["env.vars[0]", "instance-type", "queue-timeout"]


def test_the_submitter_fills_bare_names_and_ships_absolute_inputs(tmp_path):
    (tmp_path / "main.py").write_text("print(1)")
    data = tmp_path / "elsewhere" / "params.json"
    data.parent.mkdir()
    data.write_text("{}")
    spec = {"cmd": "python main.py ${P}", "inputs": ["main.py", {str(data): {"var": "P"}}],
            "env": {"vars": ["A=1", "TOKEN"]}}
    filled = fill_environment(spec, {"TOKEN": "s3cret"})
    assert filled["env"]["vars"] == ["A=1", "TOKEN=s3cret"] and spec["env"]["vars"][1] == "TOKEN"
    with pytest.raises(SpecError, match=r"env.vars\[1\]: TOKEN is not set here"):
        fill_environment(spec, {})
    shipped, files = local_inputs(filled)
    local = f"_local{data}"
    assert shipped["inputs"] == ["main.py", {local: {"var": "P"}}]
    assert files == {local: data}
    assert parse_spec(shipped).inputs[1].path == local.lstrip("/")
    assert for_shipping(shipped)["inputs"] == ["main.py"]  # the rest comes from the spec's folder
    assert for_shipping(spec)["args"] == {"P": str(data)}  # %job run: the server names the absolute input
    assert local_inputs({"cmd": "x", "inputs": ["main.py"]}) == ({"cmd": "x", "inputs": ["main.py"]}, {})
    # The client ships a foreign spec's files without knowing the admin's mappings; the server checks them.
    assert for_shipping(load_spec_text((SPECS / "datasphere/config.yaml").read_text()))["inputs"][1] == "src/main.py"


def test_migration_3_copies_desc_and_labels_out_of_stored_specs(tmp_path):
    conn = sqlite3.connect(tmp_path / "jobs.sqlite", isolation_level=None)
    migrate(conn, MIGRATIONS[:2])
    for spec in ({"cmd": "x", "desc": "old run", "labels": {"team": "a"}}, {"cmd": "y"}, "not json"):
        conn.execute("INSERT INTO jobs (name, owner, status, spec, created_at, updated_at) VALUES "
                     "('j', 'me', 'Succeeded', ?, 0, 0)", (spec if isinstance(spec, str) else json.dumps(spec),))
    assert migrate(conn, MIGRATIONS[:3]) == [3]
    rows = conn.execute("SELECT description, labels, queue_deadline, warnings FROM jobs ORDER BY id").fetchall()
    assert rows == [("old run", '{"team":"a"}', None, "[]"), ("", "{}", None, "[]"), ("", "{}", None, "[]")]


def test_a_problem_in_a_translation_says_so():
    job = {"Type": "batch", "Count": 1, "Priority": 5000,
           "Tasks": [{"Engine": {"Type": "docker", "Params": {"Image": "x", "Parameters": ["true"]}}}]}
    with pytest.raises(SpecError) as error:
        to_native(job).parse()
    assert [p.field for p in error.value.problems] == ["priority", ""]
    assert "read as a Bacalhau spec" in error.value.message and "jupyter jobs convert" in error.value.message

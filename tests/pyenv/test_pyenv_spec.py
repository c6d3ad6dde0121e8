"""``env.python``: the three spellings, and errors that name the field (pure)."""
import pytest
import yaml

from jupyter_jobs.errors import SpecError
from jupyter_jobs.pyenv.spec import PythonEnv, parse_python_env


def test_auto_none_and_absent():
    assert parse_python_env("auto") == PythonEnv("auto")
    assert parse_python_env(" None ") == PythonEnv("none")
    assert parse_python_env(None) == PythonEnv("none") and not parse_python_env(None).managed


def test_a_mapping_is_read_into_typed_fields():
    env = parse_python_env(yaml.safe_load("""
        version: "3.11"
        requirements-file: ./reqs/requirements.txt
        packages: ["six==1.16.0", "attrs>=23; python_version >= '3.8'"]
        pip-options: -i https://mirror/simple --pre
    """))
    assert env == PythonEnv("custom", "3.11", "reqs/requirements.txt", ("six==1.16.0", "attrs>=23; python_version >= '3.8'"),
                            ("--index-url=https://mirror/simple", "--pre"))
    assert parse_python_env({}) == PythonEnv("custom")


def problems(value) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse_python_env(value)
    return {p.field: p.message for p in info.value.problems}


def test_every_bad_field_is_named_with_what_to_write():
    found = problems(yaml.safe_load("""
        version: 3.10
        requirements-file: /etc/passwd
        packages: ["six==1.16.0", "not a requirement!!", 3]
        pip-options: ["--target", "/tmp/x"]
        pyton: x
    """))
    assert set(found) == {"env.python.version", "env.python.requirements-file", "env.python.packages[1]",
                          "env.python.packages[2]", "env.python.pip-options", "env.python.pyton"}
    assert "3.1" in found["env.python.version"] and '"3.11"' in found["env.python.version"]
    assert "--index-url" in found["env.python.pip-options"]
    assert "relative" in found["env.python.requirements-file"]


@pytest.mark.parametrize("value, field, text", [
    ("autoo", "env.python", "auto, none"),
    (["six"], "env.python", "got list"),
    ({"version": "3"}, "env.python.version", "major.minor"),
    ({"packages": "six"}, "env.python.packages", "['six']"),
    ({"requirements-file": "../up.txt"}, "env.python.requirements-file", "without .."),
    ({"pip-options": ["--extra-index-url"]}, "env.python.pip-options", "needs a value"),
    ({"pip-options": ["-f", "/srv/secret"]}, "env.python.pip-options", "--find-links must be an http(s) URL"),
    ({"pip-options": "--index-url=file:///etc"}, "env.python.pip-options", "--index-url must be an http(s) URL"),
])
def test_wrong_shapes(value, field, text):
    found = problems(value)
    assert field in found and text in found[field]

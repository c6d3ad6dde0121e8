"""Runtime ceilings (issue 14): a spec asking for more than JobManager.max_runtime_ceiling is refused at
submit, reruns too; a spec without max-runtime gets JobManager.default_max_runtime (default: the ceiling)."""
import pytest
from tornado.httpclient import HTTPClientError

from jupyter_jobs.ceilings import RuntimeLimits
from jupyter_jobs.errors import ConfigError, SpecError
from jupyter_jobs.spec import parse_spec


def test_the_ceiling_refuses_more_and_names_the_field():
    limits = RuntimeLimits.from_settings("24h", None)
    with pytest.raises(SpecError) as info:
        limits.apply(parse_spec({"cmd": "true", "max-runtime": "30h"}))
    (problem,) = info.value.problems
    assert problem.field == "max-runtime"
    assert "1d6h is more than this server allows; the ceiling is 1d" in problem.message
    spec, note = limits.apply(parse_spec({"cmd": "true", "max-runtime": "24h"}))
    assert (spec.max_runtime, note) == (86400, "")


def test_a_spec_without_max_runtime_gets_the_default_which_is_the_ceiling_unless_set():
    spec, note = RuntimeLimits.from_settings("24h", None).apply(parse_spec({"cmd": "true"}))
    assert spec.max_runtime == 86400 and "default of 1d applies" in note
    spec, _ = RuntimeLimits.from_settings(86400, "8h").apply(parse_spec({"cmd": "true"}))
    assert spec.max_runtime == 8 * 3600


@pytest.mark.parametrize("ceiling", [0, None, "", "0", "None"])
def test_no_ceiling_and_no_default_leave_a_spec_alone(ceiling):
    limits = RuntimeLimits.from_settings(ceiling, None)
    assert limits == RuntimeLimits(None, None)
    spec = parse_spec({"cmd": "true", "max-runtime": "100d"})
    assert limits.apply(spec) == (spec, "")
    assert limits.apply(parse_spec({"cmd": "true"}))[0].max_runtime is None


def test_bad_settings_are_configuration_errors_naming_the_setting():
    with pytest.raises(ConfigError, match="JobManager.default_max_runtime: 2d is above"):
        RuntimeLimits.from_settings("24h", "2d")
    with pytest.raises(ConfigError, match="JobManager.max_runtime_ceiling: 'a day' is not a duration"):
        RuntimeLimits.from_settings("a day", None)


async def test_the_server_refuses_30h_with_its_24h_ceiling_and_a_rerun_too(api, manager):
    with pytest.raises(HTTPClientError) as info:
        await api.submit({"name": "long", "cmd": "true", "max-runtime": "30h"})
    assert info.value.code == 400
    body = info.value.response.body.decode()
    assert '"field": "max-runtime"' in body and "the ceiling is 1d (JobManager.max_runtime_ceiling)" in body
    assert manager.list()[0] == []  # nothing stored

    job = await api.submit({"name": "short", "cmd": "echo hi"})
    assert job["spec"]["max-runtime"] == "1d"  # the default, which is the ceiling, written into its spec
    done = await api.wait(job["id"])
    assert done["status"] == "Succeeded"
    assert "no max-runtime given: the server's default of 1d applies" in await api.log(job["id"])
    with pytest.raises(HTTPClientError) as info:
        await api.call("POST", "jobs", str(job["id"]), "rerun", body={"overrides": {"max-runtime": "30h"}})
    assert info.value.code == 400 and b"max-runtime" in info.value.response.body
    config = await api.call("GET", "config")
    assert (config["max_runtime_ceiling"], config["default_max_runtime"]) == (86400, 86400)


@pytest.mark.parametrize("jobs_config", [{"JobManager": {"max_runtime_ceiling": "2s", "default_max_runtime": "1s"}}])
async def test_the_default_is_enforced_as_any_max_runtime(api):
    job = await api.submit({"name": "sleeper", "cmd": "sleep 30"})
    assert job["spec"]["max-runtime"] == "1s"
    done = await api.wait(job["id"], timeout=30)
    assert done["status"] == "Failed" and "ran past its max-runtime of 1s" in done["message"]

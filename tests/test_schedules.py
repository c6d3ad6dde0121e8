"""Schedules on a real server: the REST routes, access, real fires on a real clock, overlap, and
catch-up after the server was stopped over a fire time."""
from __future__ import annotations

import asyncio
import json
import time

import pytest
from conftest import As, HeaderIdentity
from tornado.httpclient import HTTPClientError

pytestmark = pytest.mark.integration


async def error(api, method, *path, body=None, params=None):
    with pytest.raises(HTTPClientError) as info:
        await api.call(method, *path, body=body, params=params)
    return info.value.code, json.loads(info.value.response.body)


async def runs(api, schedule_id: int, count: int, timeout: float, statuses=("Succeeded",)) -> list[dict]:
    """The first ``count`` jobs of a schedule once they are in ``statuses``, oldest first."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = (await api.call("GET", "jobs", params={"schedule": str(schedule_id)}))["jobs"][::-1]
        if len(jobs) >= count and all(j["status"] in statuses for j in jobs[:count]):
            return jobs[:count]
        assert time.monotonic() < deadline, f"{len(jobs)} runs after {timeout}s: {[j['status'] for j in jobs]}"
        await asyncio.sleep(0.2)


async def test_create_show_pause_resume_run_now_delete(api):
    created = await api.call("POST", "schedules", raw=True, body={
        "spec": {"name": "nightly", "cmd": "echo nightly"}, "cron": "0 3 * * *", "timezone": "Europe/Paris"})
    assert created.code == 201
    schedule = json.loads(created.body)
    assert created.headers["Location"].endswith(f"/schedules/{schedule['id']}")
    assert (schedule["name"], schedule["cron"], schedule["timezone"], schedule["paused"]) == (
        "nightly", "0 3 * * *", "Europe/Paris", False)
    assert len(schedule["next_runs"]) == 5
    assert all(r.endswith(("+01:00", "+02:00")) and "T03:00:00" in r for r in schedule["next_runs"])

    listed = (await api.call("GET", "schedules"))["schedules"]
    assert [s["id"] for s in listed] == [schedule["id"]]
    paused = await api.call("POST", "schedules", str(schedule["id"]), "pause")
    assert paused["paused"] and paused["next_runs"] == []
    resumed = await api.call("POST", "schedules", str(schedule["id"]), "resume")
    assert not resumed["paused"] and len(resumed["next_runs"]) == 5

    job = await api.call("POST", "schedules", str(schedule["id"]), "run-now")
    assert job["schedule_id"] == schedule["id"]
    done = await api.wait(job["id"])
    assert done["status"] == "Succeeded" and "nightly" in await api.log(job["id"])
    row = (await api.call("GET", "jobs", params={"schedule": str(schedule["id"])}))["jobs"]
    assert [(j["id"], j["schedule_id"]) for j in row] == [(job["id"], schedule["id"])]
    assert (await api.call("GET", "jobs", params={"schedule": "999"}))["jobs"] == []
    shown = await api.call("GET", "schedules", str(schedule["id"]))
    assert shown["last_job_id"] == job["id"] and "run now" in shown["history"][-1]["note"]

    assert (await api.call("DELETE", "schedules", str(schedule["id"]), raw=True)).code == 204
    assert (await error(api, "GET", "schedules", str(schedule["id"])))[0] == 404
    assert (await api.job(job["id"]))["schedule_id"] == schedule["id"]  # its runs stay


async def test_bad_cron_timezone_and_spec_are_400_naming_the_field(api):
    spec = {"cmd": "true"}
    for body, field in (
        ({"spec": spec, "cron": "every night"}, "cron"),
        ({"spec": spec, "cron": "61 * * * *"}, "cron"),
        ({"spec": spec}, "cron"),
        ({"spec": spec, "cron": "0 3 * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"spec": spec, "cron": "0 3 * * *", "overlap": "queue"}, "overlap"),
        ({"spec": {"cmd": ""}, "cron": "0 3 * * *"}, "cmd"),
        ({"spec": spec, "cron": "0 3 * * *", "when": "now"}, "body"),
        ({"spec": spec, "cron": "0 3 * * *", "files": {"a.txt": "0" * 64}}, "files"),
        ([1], "body"),
    ):
        code, answer = await error(api, "POST", "schedules", body=body)
        assert code == 400, answer
        assert field in [e["field"] for e in answer["errors"]], answer
    assert (await error(api, "GET", "schedules", "abc"))[0] == 404
    assert (await error(api, "POST", "schedules", "12", "pause"))[0] == 404
    code, answer = await error(api, "GET", "jobs", params={"schedule": "x"})
    assert code == 400 and answer["errors"][0]["field"] == "schedule"
    assert (await api.call("GET", "schedules"))["schedules"] == []  # nothing was stored


async def test_a_run_still_active_skips_the_next_fire_and_says_why(api):
    schedule = await api.call("POST", "schedules", body={
        "spec": {"name": "slow", "cmd": "sleep 4"}, "cron": "* * * * * */2", "timezone": "UTC"})
    deadline = time.monotonic() + 20
    while True:
        shown = await api.call("GET", "schedules", str(schedule["id"]))
        if shown["last_skipped"]:
            break
        assert time.monotonic() < deadline, shown
        await asyncio.sleep(0.2)
    await api.call("POST", "schedules", str(schedule["id"]), "pause")
    reason = shown["last_skipped"]["reason"]
    assert f"job {shown['last_job_id']} of this schedule is still active (overlap: skip)" in reason, reason
    jobs = (await api.call("GET", "jobs", params={"schedule": str(schedule["id"])}))["jobs"]
    assert len(jobs) == 1  # one run at a time
    await api.call("POST", "jobs", str(jobs[0]["id"]), "cancel")


async def test_a_real_every_minute_cron_fires_twice_with_the_files_it_was_given(api, root_dir):
    (root_dir / "data.txt").write_text("first version\n")
    schedule = await api.call("POST", "schedules", body={
        "spec": {"name": "minutely", "cmd": "cat data.txt", "inputs": ["data.txt"]}, "cron": "* * * * *",
        "timezone": "UTC"})
    (root_dir / "data.txt").write_text("changed after the schedule was made\n")
    first, second = await runs(api, schedule["id"], 2, timeout=135)
    await api.call("POST", "schedules", str(schedule["id"]), "pause")
    assert 55 < second["created_at"] - first["created_at"] < 65
    for job in (first, second):
        assert time.gmtime(job["created_at"]).tm_sec < 10  # fired at the top of a minute, not polled late
        assert (await api.log(job["id"])).count("first version") == 1  # every run gets the files it was given
    shown = await api.call("GET", "schedules", str(schedule["id"]))
    assert list(shown["files"]) == ["data.txt"] and shown["last_job_id"] == second["id"]
    assert [h["job"] for h in shown["history"]] == [first["id"], second["id"]]


class TestAccess:
    @pytest.fixture
    def jobs_config(self):
        return {"ServerApp": {"identity_provider_class": HeaderIdentity}}

    async def test_another_users_schedule_is_404(self, jp_fetch, jobs_app):
        alice, bob = As(jp_fetch, "alice"), As(jp_fetch, "bob")
        mine = await alice.call("POST", "schedules", body={"spec": {"cmd": "true"}, "cron": "0 3 * * *"})
        assert mine["owner"] == "alice" and mine["timezone"]  # the server's zone, named
        for method, path in (("GET", ()), ("DELETE", ()), ("POST", ("pause",)), ("POST", ("run-now",))):
            assert await bob.status(method, "schedules", str(mine["id"]), *path) == 404
        assert (await bob.call("GET", "schedules"))["schedules"] == []
        assert [s["id"] for s in (await alice.call("GET", "schedules"))["schedules"]] == [mine["id"]]


class TestRestart:
    @pytest.fixture
    def server_args(self):
        return ["--Schedules.grace_seconds=1"]

    def test_a_schedule_survives_a_restart_and_catches_up_once(self, server_process):
        server = server_process
        schedule = server.request("POST", "schedules", {
            "spec": {"name": "catch", "cmd": "echo caught"}, "cron": "* * * * * */2", "timezone": "UTC"})
        server.stop()
        stopped = time.time()
        time.sleep(5)  # two fires or more pass while no server runs
        server.start()
        deadline = time.monotonic() + 20
        while True:
            jobs = server.request("GET", "jobs", params=f"?schedule={schedule['id']}&limit=500")["jobs"]
            after = sorted((j for j in jobs if j["created_at"] > stopped), key=lambda j: j["id"])
            if len(after) >= 2 and all(j["status"] == "Succeeded" for j in after[:2]):
                break
            assert time.monotonic() < deadline, after
            time.sleep(0.2)
        server.request("POST", f"schedules/{schedule['id']}/pause")
        logs = [server.request("GET", f"jobs/{j['id']}/logs").decode() for j in after]
        assert "catch-up run for" in logs[0] and "missed while the server was not running" in logs[0], logs[0]
        assert not any("catch-up" in log for log in logs[1:])  # once; then it fires on time again
        shown = server.request("GET", f"schedules/{schedule['id']}")
        assert shown["paused"] and shown["last_fire_at"] > stopped
        assert any("catch-up" in h["note"] for h in shown["history"])


def test_cli_schedules_a_spec_with_its_files(server_process, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    jupyter = str(Path(sys.executable).parent / "jupyter")
    server = server_process
    env = {**server.env, "JUPYTER_JOBS_URL": server.url, "JUPYTER_JOBS_TOKEN": server.token}

    def jobs(*args, check=0):
        result = subprocess.run([jupyter, "jobs", *args], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == check, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    project = tmp_path / "outside-the-root"  # shipped like `jupyter jobs run` ships it: the server reads nothing
    project.mkdir()
    (project / "say.py").write_text("print('scheduled hello')\n")
    (project / "job.yaml").write_text("name: say\ncmd: python say.py\n")
    made = jobs("schedule", "create", str(project / "job.yaml"), "--cron", "0 3 * * *", "--timezone", "Europe/Paris")
    schedule_id = made.stdout.strip()
    assert "1 file shipped" in made.stderr and "Europe/Paris" in made.stderr
    listing = jobs("schedule", "list").stdout
    assert listing.splitlines()[1].split()[:2] == [schedule_id, "say"] and "active" in listing

    (project / "say.py").write_text("print('edited later')\n")
    job_id = jobs("schedule", "run-now", schedule_id).stdout.strip()
    assert server.wait(int(job_id))["status"] == "Succeeded"
    assert "scheduled hello" in server.request("GET", f"jobs/{job_id}/logs").decode()  # the files it was given
    assert jobs("list", "--schedule", schedule_id).stdout.splitlines()[1].split()[0] == job_id
    assert jobs("list", "--schedule", "999").stdout.splitlines()[1:] == []

    assert "paused" in jobs("schedule", "pause", schedule_id).stdout
    assert "active" in jobs("schedule", "resume", schedule_id).stdout
    bad = jobs("schedule", "create", str(project / "job.yaml"), "--cron", "0 3 * *", check=2)
    assert "cron" in bad.stderr
    assert "Mars" in jobs("schedule", "create", str(project / "job.yaml"), "--cron", "0 3 * * *", "--timezone",
                          "Mars/Olympus", check=2).stderr
    assert "deleted" in jobs("schedule", "delete", schedule_id).stdout
    assert "not found" in jobs("schedule", "pause", schedule_id, check=2).stderr
    no_server = {**server.env, "JUPYTER_JOBS_URL": "", "JUPYTER_RUNTIME_DIR": str(tmp_path / "nowhere")}
    result = subprocess.run([jupyter, "jobs", "schedule", "list"], env=no_server, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "running Jupyter server" in result.stderr

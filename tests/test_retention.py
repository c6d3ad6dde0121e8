"""Retention (issue 14): a finished job's log, displays and outputs go after Retention.data_days and its
record after record_days; pinned jobs and jobs not ended are never touched. Real server, real jobs; the
passes are asked about a moment days ahead (``now``), so nothing waits days."""
import asyncio
import json
import time

import pytest
from conftest import As, HeaderIdentity
from tornado.httpclient import HTTPClientError

DAY = 86400
WRITER = {"name": "writer", "cmd": "echo hello from the job && mkdir -p out && echo 42 > out/answer.txt",
          "outputs": [{"path": "out"}]}


@pytest.fixture
def jobs_config():
    return {"Retention": {"data_days": 7, "record_days": 30}, "RunnerPool": {"max_concurrent": 1}}


async def finished(api, spec=WRITER) -> dict:
    job = await api.submit(spec)
    done = await api.wait(job["id"])
    assert done["status"] == "Succeeded", done["message"]
    return done


async def status(api, *path) -> int:
    try:
        await api.call("GET", *path)
    except HTTPClientError as exc:
        return exc.code
    return 200


async def test_an_old_jobs_data_goes_and_its_record_stays(api, manager):
    job = await finished(api)
    folder = manager.folder(job["id"])
    assert job["pinned"] is False and job["data_removed_at"] is None
    assert job["data_expires_at"] == pytest.approx(job["finished_at"] + 7 * DAY)
    assert job["record_expires_at"] == pytest.approx(job["finished_at"] + 30 * DAY)

    assert (await manager.retention.collect(now=time.time() + 6 * DAY))["data_removed"] == []
    later = time.time() + 8 * DAY
    dry = await manager.retention.collect(now=later, dry_run=True)
    assert [(r["id"], r["what"]) for r in dry["data_removed"]] == [(job["id"], "data")] and dry["dry_run"]
    assert "hello from the job" in await api.log(job["id"])  # a dry run removes nothing
    assert (folder.outputs / "out" / "answer.txt").exists()

    report = await manager.retention.collect(now=later)
    assert [r["id"] for r in report["data_removed"]] == [job["id"]] and report["records_removed"] == []
    kept = await api.job(job["id"])
    assert kept["status"] == "Succeeded" and kept["data_removed_at"] == later and kept["data_expires_at"] is None
    assert [j["id"] for j in (await api.call("GET", "jobs"))["jobs"]] == [job["id"]]  # still listed
    for path in (("logs",), ("displays",), ("outputs",), ("outputs", "out/answer.txt")):
        with pytest.raises(HTTPClientError) as info:
            await api.call("GET", "jobs", str(job["id"]), *path)
        error = json.loads(info.value.response.body)
        assert info.value.code == 410 and error["reason"] == "Gone", path
        assert "were removed on" in error["message"] and "Retention.data_days" in error["message"]
    assert not folder.log.exists() and not folder.outputs.exists() and not folder.code.exists()
    assert folder.run.is_dir()  # what it was shipped: a rerun still works
    rerun = await api.call("POST", "jobs", str(job["id"]), "rerun", body={})
    assert (await api.wait(rerun["id"]))["status"] == "Succeeded"

    again = await manager.retention.collect(now=later)  # once is enough: only the rerun's data goes now
    assert [r["id"] for r in again["data_removed"]] == [rerun["id"]]
    gone = await manager.retention.collect(now=time.time() + 31 * DAY)
    assert [r["id"] for r in gone["records_removed"]] == [job["id"], rerun["id"]]
    assert await status(api, "jobs", str(job["id"])) == 404 and not folder.root.exists()


async def test_a_pinned_job_is_kept_until_unpinned(api, manager):
    job = await finished(api)
    pinned = await api.call("POST", "jobs", str(job["id"]), "pin")
    assert pinned["pinned"] is True and pinned["data_expires_at"] is None and pinned["record_expires_at"] is None
    assert await manager.retention.collect(now=time.time() + 100 * DAY) == {
        "dry_run": False, "now": pytest.approx(time.time() + 100 * DAY, abs=60), "data_days": 7, "record_days": 30,
        "data_removed": [], "records_removed": []}
    assert "hello from the job" in await api.log(job["id"])
    unpinned = await api.call("POST", "jobs", str(job["id"]), "unpin")
    assert unpinned["pinned"] is False and unpinned["data_expires_at"] == pytest.approx(job["finished_at"] + 7 * DAY)
    report = await manager.retention.collect(now=time.time() + 100 * DAY)
    assert [r["id"] for r in report["records_removed"]] == [job["id"]]


async def test_running_and_pending_jobs_are_never_touched(api, manager):
    running = await api.submit({"name": "long", "cmd": "echo started; sleep 60"})
    waiting = await api.submit({"name": "queued", "cmd": "echo never"})  # max_concurrent 1: it waits
    await api.wait(running["id"], statuses=("Running",))
    for _ in range(100):
        if "started" in await api.log(running["id"]):
            break
        await asyncio.sleep(0.05)
    # As old as can be: created, started and updated at the epoch.
    manager.store._conn.execute("UPDATE jobs SET created_at = 1, started_at = 1, updated_at = 1")
    far = time.time() + 10_000 * DAY
    for job in (running, waiting):
        record = manager.get(job["id"])
        assert manager.retention.decide(record, far) is None
        assert manager.retention.job_fields(record) == {"data_expires_at": None, "record_expires_at": None}
    assert await manager.retention.collect(now=far) == {
        "dry_run": False, "now": far, "data_days": 7, "record_days": 30, "data_removed": [], "records_removed": []}
    assert (await api.job(running["id"]))["status"] == "Running"
    assert (await api.job(waiting["id"]))["status"] == "Pending"
    assert "started" in await api.log(running["id"])
    assert manager.folder(waiting["id"]).code.is_dir()
    await api.call("POST", "jobs", str(waiting["id"]), "cancel")
    await api.call("POST", "jobs", str(running["id"]), "cancel")


async def test_gc_over_rest_dry_run_then_for_real(api, manager):
    job = await finished(api)
    manager.store._conn.execute("UPDATE jobs SET finished_at = ? WHERE id = ?", (time.time() - 8 * DAY, job["id"]))
    dry = await api.call("POST", "gc", params={"dry_run": "1"})
    assert [r["id"] for r in dry["data_removed"]] == [job["id"]] and dry["dry_run"] is True
    assert "hello from the job" in await api.log(job["id"])
    done = await api.call("POST", "gc")
    assert [r["id"] for r in done["data_removed"]] == [job["id"]] and done["dry_run"] is False
    assert await status(api, "jobs", str(job["id"]), "logs") == 410
    with pytest.raises(HTTPClientError) as info:
        await api.call("POST", "gc", params={"dry_run": "maybe"})
    assert info.value.code == 400 and b"dry_run" in info.value.response.body


@pytest.mark.parametrize("jobs_config", [{"Retention": {"data_days": 1, "interval_seconds": 0.2}}])
async def test_the_server_runs_retention_by_itself(api, manager):
    job = await finished(api)
    manager.store._conn.execute("UPDATE jobs SET finished_at = ? WHERE id = ?", (time.time() - 2 * DAY, job["id"]))
    for _ in range(100):
        if (await api.job(job["id"]))["data_removed_at"]:
            break
        await asyncio.sleep(0.1)
    assert (await api.job(job["id"]))["data_removed_at"] is not None
    assert await status(api, "jobs", str(job["id"]), "logs") == 410


@pytest.mark.parametrize("jobs_config", [{}])
async def test_by_default_nothing_expires(api, manager):
    job = await finished(api)
    assert (job["data_expires_at"], job["record_expires_at"]) == (None, None)
    report = await manager.retention.collect(now=time.time() + 10_000 * DAY)
    assert (report["data_removed"], report["records_removed"], report["data_days"]) == ([], [], None)
    assert (await api.call("GET", "config"))["retention"] == {"data_days": None, "record_days": None}


@pytest.mark.parametrize("jobs_config", [{"ServerApp": {"identity_provider_class": HeaderIdentity},
                                          "JobManager": {"admin_users": {"admin"}},
                                          "Retention": {"data_days": 7}}])
async def test_pin_is_the_owners_or_an_admins_and_gc_an_admins(jp_fetch, jobs_app):
    alice, bob, admin = As(jp_fetch, "alice"), As(jp_fetch, "bob"), As(jp_fetch, "admin")
    job = await alice.call("POST", "jobs", body={"name": "mine", "cmd": "true"})
    assert await bob.status("POST", "jobs", str(job["id"]), "pin") == 404  # not his to see
    assert (await alice.call("POST", "jobs", str(job["id"]), "pin"))["pinned"] is True
    assert (await admin.call("POST", "jobs", str(job["id"]), "unpin"))["pinned"] is False
    code, error = await alice.error("POST", "gc")
    assert code == 403 and "only admins may run retention (gc)" in error["message"]
    assert (await admin.call("POST", "gc", params={"dry_run": "1"}))["dry_run"] is True


@pytest.mark.integration
@pytest.mark.parametrize("server_args", [["--Retention.data_days=7"]])
def test_cli_pin_unpin_and_gc_against_a_server(server_process):
    from test_cli import jobs

    env = {**server_process.env, "JUPYTER_JOBS_URL": server_process.url, "JUPYTER_JOBS_TOKEN": server_process.token}
    job = server_process.request("POST", "jobs", {"name": "old", "cmd": "echo kept for now"})
    job_id = str(job["id"])
    server_process.wait(job["id"])
    assert "pinned: retention keeps it" in jobs("pin", job_id, env=env, check=0).stdout
    server_process.stop()
    server_process.edit_db("UPDATE jobs SET finished_at = ? WHERE id = ?", time.time() - 8 * DAY, job["id"])
    server_process.start()  # its pass at start keeps the pinned job
    assert "kept for now" in jobs("logs", job_id, env=env, check=0).stdout
    assert "0 jobs would be cleaned" in jobs("gc", "--dry-run", env=env, check=0).stderr

    assert "unpinned: retention removes it from" in jobs("unpin", job_id, env=env, check=0).stdout
    dry = jobs("gc", "--dry-run", env=env, check=0)
    assert f"would remove the log, displays and outputs of job {job_id} 'old'" in dry.stdout
    assert "1 job would be cleaned (dry run: nothing was removed)" in dry.stderr
    assert "kept for now" in jobs("logs", job_id, env=env, check=0).stdout
    assert f"removed the log, displays and outputs of job {job_id}" in jobs("gc", env=env, check=0).stdout
    gone = jobs("logs", job_id, env=env, check=2)
    assert "were removed on" in gone.stderr and "its record is kept" in gone.stderr
    shown = server_process.request("GET", f"jobs/{job_id}")
    assert shown["status"] == "Succeeded" and shown["data_removed_at"] is not None

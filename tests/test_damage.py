"""A full disk and damaged state on the server (issue 9, item 10): the right status instead of a
500, nothing stored lost, start-up that survives any one bad job, no reused job folders."""
import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root (CI runs as root)")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "jj-test-full", str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")


def _fill(path: Path) -> Path:
    """Write a file until the file system is full; return it (delete it to free the space)."""
    filler = path / "filler"
    # Unbuffered: with a buffer, what is left in it when the disk is full fails again at close.
    with open(filler, "wb", buffering=0) as handle:
        chunk = b"\0" * 65536
        try:
            while handle.write(chunk):
                pass
        except OSError:
            pass
    return filler


@pytest.fixture
def jobs_data_dir(tmp_path: Path):
    mount = tmp_path / "small-disk"
    _mount_tmpfs(mount, "8m")
    yield mount / "jobs-data"
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.usefixtures("jobs_app")
async def test_a_full_disk_refuses_submits_with_507_and_loses_nothing(api, jobs_data_dir):
    first = await api.submit({"name": "before", "cmd": "echo ok"})
    assert (await api.wait(first["id"]))["status"] == "Succeeded"
    filler = _fill(jobs_data_dir.parent)
    try:
        with pytest.raises(HTTPClientError) as info:
            await api.submit({"name": "while-full", "cmd": "echo no", "desc": "x" * 100_000})
        body = json.loads(info.value.response.body)
        assert info.value.code == 507, body
        assert body["reason"] == "InsufficientStorage" and "disk is full" in body["message"]
        listed = (await api.call("GET", "jobs"))["jobs"]
        assert [j["name"] for j in listed] == ["before"]
        assert not any(p.name.startswith(".staging-") for p in (jobs_data_dir / "jobs").iterdir())
    finally:
        filler.unlink()
    again = await api.submit({"name": "after", "cmd": "echo yes"})
    assert (await api.wait(again["id"]))["status"] == "Succeeded"


@pytest.mark.usefixtures("jobs_app")
async def test_a_job_that_ends_while_the_disk_is_full_is_recorded_once_space_is_back(api, jobs_data_dir):
    job = await api.submit({"name": "ends-while-full", "cmd": "sleep 1; echo finished"})
    await api.wait(job["id"], statuses=("Running",))
    filler = _fill(jobs_data_dir.parent)
    try:
        await asyncio.sleep(2.5)  # it exits meanwhile
        status = (await api.job(job["id"]))["status"]
        assert status in ("Running", "Succeeded"), status  # never Unknown, never a dead supervisor
    finally:
        filler.unlink()
    done = await api.wait(job["id"], timeout=60)
    assert done["status"] == "Succeeded", done["message"]
    assert done["exit_code"] == 0


# -- start-up and restarts (a real `jupyter server` process) -----------------------------------


def _available(server) -> bool:
    return server.request("GET", "config")["available"]


def test_startup_survives_a_running_job_whose_folder_was_deleted(server_process):
    lost = server_process.request("POST", "jobs", {"name": "folder-goes", "cmd": "sleep 2"})
    server_process.wait(lost["id"], statuses=("Running",))
    server_process.kill()
    shutil.rmtree(server_process.data / "jobs" / str(lost["id"]))
    server_process.start()
    assert _available(server_process)
    ended = server_process.wait(lost["id"], timeout=30)
    assert ended["status"] in ("Unknown", "Failed"), ended  # its exit status went with the folder
    fresh = server_process.request("POST", "jobs", {"name": "after", "cmd": "echo fine"})
    assert server_process.wait(fresh["id"])["status"] == "Succeeded"


def test_one_job_that_cannot_be_followed_never_stops_the_others(server_process):
    good = server_process.request("POST", "jobs", {"name": "good", "cmd": "sleep 2; echo good-done"})
    bad = server_process.request("POST", "jobs", {"name": "bad", "cmd": "sleep 30"})
    server_process.wait(good["id"], statuses=("Running",))
    server_process.wait(bad["id"], statuses=("Running",))
    server_process.kill()
    server_process.edit_db("UPDATE jobs SET handle = '{\"nonsense\": 1}' WHERE id = ?", bad["id"])
    server_process.start()
    assert _available(server_process)
    assert server_process.wait(good["id"], timeout=30)["status"] == "Succeeded"
    assert server_process.wait(bad["id"], timeout=30)["status"] == "Unknown"


def test_staging_leftovers_are_removed_and_ids_never_reuse_a_folder(server_process):
    first = server_process.request("POST", "jobs", {"name": "kept", "cmd": "echo kept > out.txt", "outputs": ["out.txt"]})
    server_process.wait(first["id"])
    server_process.stop()
    jobs = server_process.data / "jobs"
    (jobs / ".staging-abcd1234" / "code").mkdir(parents=True)
    # The database is lost (a scrambled WAL, a restore from an old backup): job 1's folder stays.
    for name in ("jobs.sqlite", "jobs.sqlite-wal", "jobs.sqlite-shm"):
        (server_process.data / name).unlink(missing_ok=True)
    (jobs / "5").mkdir()
    (jobs / "5" / "marker").write_text("an old job")
    server_process.start()
    assert not (jobs / ".staging-abcd1234").exists()
    new = server_process.request("POST", "jobs", {"name": "new", "cmd": "echo new"})
    assert new["id"] > 5
    assert (jobs / str(first["id"]) / "outputs" / "out.txt").read_text() == "kept\n"
    assert (jobs / "5" / "marker").read_text() == "an old job"
    assert server_process.wait(new["id"])["status"] == "Succeeded"

"""The server killed with SIGKILL while it submits, runs and cancels jobs, several rounds: no job
is lost, none succeeds falsely, every numbered log line is there exactly once, and nothing is
left running (issue 9, "What it must show"). A real `jupyter server` process, real job processes."""
import json
import random
import secrets
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

LINES = 30
ROUNDS = 3


def _submit(server, key: str, marker: str) -> dict | None:
    """Submit with an Idempotency-Key; None when the server died before answering."""
    script = (f"for i in $(seq 1 {LINES}); do echo \"{marker} job $JOB_ID line $i\"; sleep 0.03; done")
    body = json.dumps({"name": key, "cmd": script}).encode()
    request = urllib.request.Request(
        f"{server.url}jupyter-jobs/api/jobs", data=body, method="POST",
        headers={"Authorization": f"token {server.token}", "Idempotency-Key": key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
        return None


def _post_quietly(server, path: str) -> None:
    try:
        server.request("POST", path)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        pass


def _restart(server) -> None:
    server.kill()
    server.start()


def _orphans(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def server_args(request) -> list[str]:
    return [f"--JobManager.backend={request.param}"]


@pytest.mark.timeout(600)
def test_kill_9_during_submit_run_and_cancel_loses_nothing(server_process, server_args):
    server = server_process
    marker = f"kill9-{secrets.token_hex(4)}"
    rng = random.Random(20261201)
    keys: list[str] = []
    for round_ in range(ROUNDS):
        # 1. Killed while submissions are arriving; clients retry with their keys afterwards.
        batch = [f"r{round_}-j{i}" for i in range(4)]
        keys += batch
        answers: dict[str, dict | None] = {}
        sender = threading.Thread(target=lambda: answers.update({k: _submit(server, k, marker) for k in batch}))
        sender.start()
        time.sleep(rng.uniform(0.0, 0.4))
        _restart(server)
        sender.join(timeout=60)
        for key in batch:
            again = _submit(server, key, marker)
            assert again is not None, f"submission {key} refused after the restart"
            if answers.get(key):
                assert again["id"] == answers[key]["id"], "a retried submission made a second job"
        # 2. Killed while jobs run.
        deadline = time.monotonic() + 30
        while not any(j["status"] == "Running" for j in server.request("GET", "jobs")["jobs"]):
            assert time.monotonic() < deadline, "no job started"
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.5))
        _restart(server)
        # 3. Killed while a job is being cancelled.
        running = [j for j in server.request("GET", "jobs")["jobs"] if j["status"] in ("Running", "Pending")]
        if running:
            victim = running[0]["id"]
            canceller = threading.Thread(target=_post_quietly, args=(server, f"jobs/{victim}/cancel"))
            canceller.start()
            time.sleep(rng.uniform(0.0, 0.3))
            _restart(server)
            canceller.join(timeout=60)

    listed = server.request("GET", "jobs", params="?limit=500")["jobs"]
    assert sorted(j["name"] for j in listed) == sorted(keys), "a job was lost or made twice"
    jobs = {j["name"]: j for j in listed}
    for name, job in jobs.items():
        done = server.wait(job["id"], timeout=120)
        log = server.request("GET", f"jobs/{job['id']}/logs")
        log = log.decode() if isinstance(log, bytes) else log
        numbered = [line for line in log.splitlines() if line.startswith(f"{marker} job {job['id']} line ")]
        counts = {i: numbered.count(f"{marker} job {job['id']} line {i}") for i in range(1, LINES + 1)}
        assert all(c <= 1 for c in counts.values()), f"{name}: duplicated lines {counts}"
        assert done["status"] in ("Succeeded", "Cancelled"), (name, done["status"], done["message"])
        if done["status"] == "Succeeded":
            assert done["exit_code"] == 0
            assert list(counts.values()) == [1] * LINES, f"{name} Succeeded with lines missing: {counts}"
            assert len(numbered) == LINES
    assert _orphans(marker) == [], "job processes outlived their jobs"
    if "--JobManager.backend=docker" in server_args:
        import docker

        client = docker.from_env()
        server_id = (server.data / "server-id").read_text().strip()
        left = client.containers.list(all=True, filters={"label": f"jupyter_jobs.server={server_id}"})
        assert left == [], f"containers left behind: {[c.name for c in left]}"
    assert not any(p.name.startswith(".staging-") for p in (server.data / "jobs").iterdir())


@pytest.mark.parametrize("server_args", [["--JobManager.backend=local"]])
def test_a_job_started_just_before_a_kill_is_found_not_started_twice(server_process):
    """The server died after starting the job's process but before its handle was written
    anywhere: the restarted server must find the process, not start the job a second time."""
    server = server_process
    job = server.request("POST", "jobs", {"name": "once", "cmd": "echo started-$JOB_ID; sleep 2; echo ended"})
    server.wait(job["id"], statuses=("Running",))
    server.kill()
    (server.data / "jobs" / str(job["id"]) / "run" / "handle.json").unlink()
    server.edit_db("UPDATE jobs SET status = 'Preparing', handle = '{}', started_at = NULL WHERE id = ?", job["id"])
    server.start()
    done = server.wait(job["id"], timeout=30)
    log = server.request("GET", f"jobs/{job['id']}/logs")
    log = log.decode() if isinstance(log, bytes) else log
    assert done["status"] == "Succeeded", done["message"]
    lines = log.splitlines()
    assert lines.count(f"started-{job['id']}") == 1, log
    assert lines.count("ended") == 1, log

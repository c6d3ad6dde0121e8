"""Logs and records survive the server: kill -9 it mid-job and start it again."""
import signal
import time

import pytest

pytestmark = pytest.mark.integration


def test_server_killed_mid_job_then_restarted(server_process):
    # Given: one job that outlives the outage and one that ends during it.
    long = server_process.request("POST", "jobs", {
        "name": "long", "cmd": "for i in $(seq 1 30); do echo tick $i; sleep 0.1; done; echo ok > $OUT",
        "outputs": [{"out.txt": "OUT"}]})
    short = server_process.request("POST", "jobs", {"name": "short", "cmd": "sleep 0.5; echo short done; exit 4"})
    queued = server_process.request("POST", "jobs", {"name": "queued", "cmd": "echo queued ran"})
    server_process.wait(long["id"], ("Running",))
    server_process.wait(short["id"], ("Running",))

    # When: the server dies hard while they run, and comes back later.
    server_process.kill(signal.SIGKILL)
    time.sleep(1.0)
    server_process.start()

    # Then: every job finishes correctly with its whole log.
    done = server_process.wait(long["id"])
    assert done["status"] == "Succeeded", done["message"]
    assert done["outputs"] == [{"path": "out.txt", "size": 3}]
    log = server_process.request("GET", f"jobs/{long['id']}/logs").decode()
    ticks = [line for line in log.splitlines() if line.startswith("tick")]
    assert ticks == [f"tick {i}" for i in range(1, 31)], "no gap and no duplicate"
    assert "the server restarted; following this job again" in log

    ended = server_process.wait(short["id"])
    assert (ended["status"], ended["exit_code"]) == ("Failed", 4)
    assert "short done" in server_process.request("GET", f"jobs/{short['id']}/logs").decode()
    assert server_process.wait(queued["id"])["status"] == "Succeeded"


def test_job_cancelled_while_server_was_restarting(server_process):
    job = server_process.request("POST", "jobs", {"cmd": "sleep 60"})
    server_process.wait(job["id"], ("Running",))
    server_process.kill(signal.SIGKILL)
    server_process.start()
    cancelled = server_process.request("POST", f"jobs/{job['id']}/cancel")
    assert cancelled["status"] == "Cancelled"


def test_process_gone_without_exit_status_ends_unknown(server_process):
    job = server_process.request("POST", "jobs", {"cmd": "sleep 60"})
    running = server_process.wait(job["id"], ("Running",))
    server_process.kill(signal.SIGKILL)
    # The whole process group dies while the server is down (as on a reboot): no exit status.
    import os
    pid = int(open(f"{server_process.data}/jobs/{job['id']}/run/handle.json").read().split('"pid": ')[1].split(",")[0])
    os.killpg(pid, signal.SIGKILL)
    time.sleep(0.3)
    server_process.start()
    done = server_process.wait(job["id"])
    assert done["status"] == "Unknown"
    assert "left no exit status" in done["message"]
    assert running["started_at"] is not None


@pytest.mark.parametrize("server_args", [["--Cluster.cpus=4", "--Quotas.default_user=cpus=1"]])
def test_quotas_count_what_runs_after_a_restart(server_process):
    # Given: a user quota of 1 CPU, held by a job that outlives a server killed hard.
    first = server_process.request("POST", "jobs", {"name": "long", "cmd": "sleep 60"})
    server_process.wait(first["id"], ("Running",))
    server_process.kill(signal.SIGKILL)
    server_process.start()
    # When: the user submits another job to the restarted server, which has 3 CPUs free.
    second = server_process.request("POST", "jobs", {"name": "next", "cmd": "true"})
    # Then: it waits for the quota, counted from the job database, until the first job ends.
    deadline = time.monotonic() + 20
    while (job := server_process.request("GET", f"jobs/{second['id']}"))["message"] == "queued":
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    assert job["status"] == "Pending"
    assert job["message"] == f"waiting: {first['owner']} uses 1 of their 1 CPUs (job {first['id']} 'long')"
    server_process.request("POST", f"jobs/{first['id']}/cancel")
    assert server_process.wait(second["id"])["status"] == "Succeeded"

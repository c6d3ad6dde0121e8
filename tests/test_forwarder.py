"""The forwarder mode of the extension (jupyter_jobs/service/forward.py), against a real upstream: a
`jupyter server` process with jupyter-jobs stands for the team's service, and this test's server
(pytest-jupyter) forwards its jobs API there. No root and no Hub needed: tests/hub does it with both.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import urllib.parse

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

pytestmark = pytest.mark.integration

UPSTREAM_LIMIT = 1_000_000


@pytest.fixture
def server_args() -> list[str]:
    return [f"--JobManager.max_input_bytes={UPSTREAM_LIMIT}"]


@pytest.fixture
def jobs_config(server_process) -> dict:
    return {"JobsApp": {"service_url": server_process.url, "service_token": server_process.token}}


@pytest.fixture
def forwarder(jp_serverapp, jp_asyncio_loop, http_server, jp_http_port):
    """This test's server (listening on jp_http_port), forwarding to the upstream."""
    jp_asyncio_loop.run_until_complete(jp_serverapp.extension_manager.start_all_extensions())
    (app,) = jp_serverapp.extension_manager.extension_apps["jupyter_jobs"]
    assert app.forwarding and app.manager is None, "a forwarding server runs no pool"
    jp_serverapp.jj_port = jp_http_port
    return jp_serverapp


def _url(app, path: str) -> str:
    return f"http://127.0.0.1:{app.jj_port}{app.base_url}jupyter-jobs/api/{path}"


async def call(app, method: str, path: str, body: bytes | dict | None = None, headers: dict | None = None,
               **kwargs) -> tuple[int, dict, bytes]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    if method in ("POST", "PUT") and data is None:
        data = b""
    request = HTTPRequest(_url(app, path), method=method, body=data, request_timeout=60,
                          headers={"Authorization": f"token {app.identity_provider.token}", **(headers or {})}, **kwargs)
    try:
        response = await AsyncHTTPClient().fetch(request)
    except HTTPClientError as exc:
        if exc.response is None:
            raise
        response = exc.response
    return response.code, dict(response.headers), response.body or b""


async def wait(app, job_id: int, statuses=("Succeeded", "Failed", "Cancelled")) -> dict:
    for _ in range(600):
        _, _, body = await call(app, "GET", f"jobs/{job_id}")
        job = json.loads(body)
        if job["status"] in statuses:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} is still {job['status']}")


async def test_a_submission_with_files_of_this_server_reaches_the_service_as_uploads(forwarder, root_dir, server_process):
    (root_dir / "proj").mkdir()
    (root_dir / "proj" / "data.txt").write_text("from the user's home\n")
    # base_dir names a folder of THIS server; the service (another root) could never read it itself.
    status, headers, body = await call(forwarder, "POST", "jobs?base_dir=proj",
                                       {"name": "reads", "cmd": "cat data.txt", "inputs": ["data.txt"]})
    assert status == 201, body
    job = json.loads(body)
    assert job["url"] == f"{forwarder.base_url}jupyter-jobs/api/jobs/{job['id']}"  # back through this server
    assert headers["Location"] == job["url"]
    assert (await wait(forwarder, job["id"]))["status"] == "Succeeded"
    _, _, log = await call(forwarder, "GET", f"jobs/{job['id']}/logs")
    assert "from the user's home" in log.decode()
    assert not (server_process.root / "proj").exists()


async def test_a_schedule_of_files_of_this_server_gets_them_uploaded(forwarder, root_dir):
    (root_dir / "nb").mkdir()
    (root_dir / "nb" / "data.txt").write_text("kept for every run\n")
    status, _, body = await call(forwarder, "POST", "schedules", {
        "spec": {"name": "nightly", "cmd": "cat data.txt", "inputs": ["data.txt"]}, "cron": "0 3 * * *",
        "base_dir": "nb"})
    assert status == 201, body
    schedule = json.loads(body)
    status, _, body = await call(forwarder, "POST", f"schedules/{schedule['id']}/run-now")
    assert status == 201, body
    job = json.loads(body)
    assert (await wait(forwarder, job["id"]))["status"] == "Succeeded"
    _, _, log = await call(forwarder, "GET", f"jobs/{job['id']}/logs")
    assert "kept for every run" in log.decode()


async def test_file_names_that_need_quoting_arrive_whole(forwarder):
    name = "a b#c?d é.txt"
    status, _, body = await call(forwarder, "POST", "jobs", {
        "name": "names", "cmd": f"printf quoted > \"$JOB_OUTPUTS/{name}\""})
    job = json.loads(body)
    assert (await wait(forwarder, job["id"]))["status"] == "Succeeded"
    status, _, content = await call(forwarder, "GET", f"jobs/{job['id']}/outputs/{urllib.parse.quote(name)}")
    assert (status, content) == (200, b"quoted")


@pytest.mark.parametrize("path", ["..%2F..%2Fapi%2Fstatus", "jobs/%2E%2E/%2E%2E/api/status", "jobs/../../api/status"])
async def test_dot_segments_never_leave_the_api(forwarder, path):
    status, _, body = await call(forwarder, "GET", path)
    assert status == 404, body


async def test_an_upload_the_service_refuses_early_is_answered_not_hung(forwarder):
    data = b"x" * (5 * UPSTREAM_LIMIT)
    digest = hashlib.sha256(data).hexdigest()
    status, _, body = await asyncio.wait_for(
        call(forwarder, "PUT", f"blobs/{digest}", data, {"Content-Type": "application/octet-stream"}), 60)
    assert status == 413, body
    small = b"y" * 1000  # and one within the limit is stored
    status, _, body = await call(forwarder, "PUT", f"blobs/{hashlib.sha256(small).hexdigest()}", small)
    assert status == 201 and json.loads(body)["size"] == 1000, body


async def test_a_log_is_streamed_as_it_comes(forwarder, root_dir):
    go = root_dir / "go"
    status, _, body = await call(forwarder, "POST", "jobs", {
        "name": "talks", "cmd": f"echo first; while [ ! -e {go} ]; do sleep 0.05; done; echo second"})
    job = json.loads(body)
    await wait(forwarder, job["id"], ("Running",))
    seen = bytearray()
    first = asyncio.get_running_loop().create_future()

    def on_chunk(chunk: bytes) -> None:
        seen.extend(chunk)
        if b"first" in seen and not first.done():
            first.set_result(True)

    follow = asyncio.ensure_future(call(forwarder, "GET", f"jobs/{job['id']}/logs?follow=1", streaming_callback=on_chunk))
    await asyncio.wait_for(first, 30)  # before the job ends: streamed, not held until the end
    assert not follow.done()
    go.touch()
    status, _, _ = await asyncio.wait_for(follow, 30)
    assert status == 200 and b"second" in seen


async def test_a_service_that_is_gone_answers_503_with_the_reason(forwarder, server_process):
    server_process.stop()
    status, _, body = await call(forwarder, "GET", "jobs")
    assert status == 503
    assert "cannot be reached" in json.loads(body)["message"]


async def test_yaml_with_a_date_is_forwarded(forwarder):
    status, _, body = await call(forwarder, "POST", "jobs", b"name: dated\ncmd: 'true'\nlabels: {when: 2024-05-01}\n",
                                 {"Content-Type": "application/yaml"})
    assert status == 201, body
    assert json.loads(body)["labels"] == {"when": "2024-05-01"}


async def test_the_change_feed_long_poll_passes_through(forwarder):
    status, _, body = await call(forwarder, "GET", "changes")
    cursor = json.loads(body)["cursor"]
    waiting = asyncio.ensure_future(call(forwarder, "GET", f"changes?cursor={cursor}&timeout=60"))
    await asyncio.sleep(1.0)
    assert not waiting.done(), "the long-poll was answered before anything changed"
    status, _, body = await call(forwarder, "POST", "jobs", {"name": "fed", "cmd": "true"})
    job = json.loads(body)
    status, headers, body = await asyncio.wait_for(waiting, 30)
    answer = json.loads(body)
    assert status == 200 and job["id"] in [c["id"] for c in answer["changes"]], answer
    assert headers.get("Cache-Control") == "no-store"
    status, _, body = await call(forwarder, "GET", "changes?cursor=nope")
    assert status == 400 and json.loads(body)["errors"][0]["field"] == "cursor"

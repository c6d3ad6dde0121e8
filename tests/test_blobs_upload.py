"""PUT /blobs/{sha256} streams the body to disk: a real server's memory stays flat for a 300 MB
upload, and a wrong digest, a body past the limit or a client that leaves stores nothing."""
import hashlib
import http.client
import json
import os
import select
import socket
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


def peak_rss_mib(pid: int) -> float:
    """The process's high-water mark of resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def blocks(count: int, seed: bytes):
    """``count`` distinct 1 MiB blocks made from ``seed`` on the fly (one held at a time)."""
    for index in range(count):
        yield index.to_bytes(8, "big") + seed[8:]


def digest_of(chunks) -> str:
    sha = hashlib.sha256()
    for chunk in chunks:
        sha.update(chunk)
    return sha.hexdigest()


def put(server, digest: str, chunks, length: int | None, token: str | None = None) -> tuple[int, dict]:
    """PUT ``chunks`` to /blobs/{digest}; with no ``length``, as a chunked body."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.putrequest("PUT", f"/jupyter-jobs/api/blobs/{digest}")
    conn.putheader("Authorization", f"token {server.token if token is None else token}")
    conn.putheader("Content-Type", "application/octet-stream")
    if length is None:
        conn.putheader("Transfer-Encoding", "chunked")
    else:
        conn.putheader("Content-Length", str(length))
    conn.endheaders()
    for chunk in chunks:
        conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk) if length is None else chunk)
    if length is None:
        conn.send(b"0\r\n\r\n")
    response = conn.getresponse()
    body = json.loads(response.read() or b"null")
    conn.close()
    return response.status, body


def leftovers(server) -> list[str]:
    root = server.data / "blobs"
    return sorted(p.name for p in root.iterdir() if p.is_file()) if root.exists() else []


def test_a_300_mb_upload_is_streamed_to_disk(server_process):
    pid = server_process.proc.pid
    seed = os.urandom(MIB)
    digest = digest_of(blocks(300, seed))
    before = peak_rss_mib(pid)
    code, body = put(server_process, digest, blocks(300, seed), 300 * MIB)
    after = peak_rss_mib(pid)
    print(f"server VmHWM {before:.0f} MiB -> {after:.0f} MiB for a 300 MiB PUT")
    assert (code, body["size"], body["created"]) == (201, 300 * MIB, True), body
    stored = server_process.data / "blobs" / digest[:2] / digest[2:]
    assert stored.stat().st_size == 300 * MIB
    assert after - before < 100, f"the server's peak memory grew by {after - before:.0f} MiB"
    stored.unlink()
    assert leftovers(server_process) == []


def test_a_wrong_digest_is_400_naming_it_and_stores_nothing(server_process):
    wrong = "ab" * 32
    code, body = put(server_process, wrong, [b"x" * MIB, b"y" * MIB], 2 * MIB)
    assert code == 400 and wrong in body["message"] and "upload the file again" in body["message"]
    assert not (server_process.data / "blobs" / wrong[:2] / wrong[2:]).exists()
    assert leftovers(server_process) == []


@pytest.mark.parametrize("server_args", [["--JobManager.max_input_bytes=1048576"]])
def test_a_body_past_the_limit_is_413_and_leaves_no_file(server_process):
    chunk = b"z" * (64 * 1024)
    # Announced by Content-Length: refused before a byte of the body is read.
    code, body = put(server_process, digest_of([chunk] * 32), [], 32 * len(chunk))
    assert code == 413 and "1048576 byte limit" in body["message"]
    # Chunked (no length): refused as soon as it passes the limit, while it streams.
    code, body = chunked_until_answered(server_process, digest_of([chunk] * 32), chunk, 32)
    assert code == 413 and "passed the 1048576 byte limit" in body["message"]
    assert leftovers(server_process) == []
    # Within the limit it is stored.
    assert put(server_process, digest_of([chunk] * 4), [chunk] * 4, None)[0] == 201


def chunked_until_answered(server, digest: str, chunk: bytes, count: int) -> tuple[int, dict]:
    """Send up to ``count`` chunks, stopping as soon as the server answers; that answer."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    head = (f"PUT /jupyter-jobs/api/blobs/{digest} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: token {server.token}\r\nTransfer-Encoding: chunked\r\n\r\n")
    sock.sendall(head.encode())
    for _ in range(count):
        if select.select([sock], [], [], 0.1)[0]:
            break
        sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = json.loads(response.read())
    sock.close()
    return response.status, body


def test_who_asks_is_checked_before_any_byte_of_the_body(server_process):
    code, _ = put(server_process, "ef" * 32, [], 10 * MIB, token="wrong")  # headers only, no body sent
    assert code == 403
    assert leftovers(server_process) == []


def test_a_client_that_leaves_mid_upload_leaves_no_temporary_file(server_process):
    sock = socket.create_connection(("127.0.0.1", server_process.port), timeout=30)
    head = (f"PUT /jupyter-jobs/api/blobs/{'cd' * 32} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: token {server_process.token}\r\nContent-Length: {10 * MIB}\r\n\r\n")
    sock.sendall(head.encode() + b"q" * (2 * MIB))
    deadline = time.monotonic() + 10
    while not leftovers(server_process):  # the upload's temporary file is there while it streams
        assert time.monotonic() < deadline, "the server never started writing the upload"
        time.sleep(0.02)
    sock.close()
    while leftovers(server_process):
        assert time.monotonic() < deadline, f"left behind: {leftovers(server_process)}"
        time.sleep(0.02)
    assert server_process.request("POST", "blobs/missing", {"hashes": ["cd" * 32]})["missing"] == ["cd" * 32]

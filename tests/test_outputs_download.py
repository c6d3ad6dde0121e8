"""Outputs come back to the user (issue 12): a folder downloads as one tar, streamed as it is made; a path
that is not an output is a 404. A real Jupyter server and real job processes."""
import io
import tarfile
import urllib.error
import urllib.request

import pytest
from test_blobs_upload import peak_rss_mib

pytestmark = pytest.mark.integration

WRITE = (
    "mkdir -p $JOB_OUTPUTS/run/ckpt $JOB_OUTPUTS/run/empty && echo 1 > $JOB_OUTPUTS/run/metrics.txt && "
    "head -c 3000000 /dev/urandom > $JOB_OUTPUTS/run/ckpt/model.bin && chmod 640 $JOB_OUTPUTS/run/metrics.txt && "
    "ln -s /etc/passwd $JOB_OUTPUTS/run/leak && echo top > $JOB_OUTPUTS/top.txt"
)


def fetch(server, path: str) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(f"{server.url}jupyter-jobs/api/{path}",
                                     headers={"Authorization": f"token {server.token}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_a_folder_downloads_as_one_tar_without_its_links(server_process):
    job = server_process.request("POST", "jobs", {"cmd": WRITE, "outputs": ["run", "top.txt"]})
    done = server_process.wait(job["id"])
    assert done["status"] == "Succeeded", done["message"]
    outputs = server_process.data / "jobs" / str(job["id"]) / "outputs"
    code, headers, body = fetch(server_process, f"jobs/{job['id']}/outputs/run")
    assert code == 200 and headers["Content-Type"] == "application/x-tar"
    assert 'filename="run.tar"' in headers["Content-Disposition"]
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == ["run", "run/ckpt", "run/ckpt/model.bin", "run/empty", "run/metrics.txt"]
        assert tar.extractfile("run/ckpt/model.bin").read() == (outputs / "run/ckpt/model.bin").read_bytes()
        assert members["run/metrics.txt"].mode == 0o640
    # A file is the file, as before; the whole outputs folder is one tar too.
    assert fetch(server_process, f"jobs/{job['id']}/outputs/top.txt")[2] == b"top\n"
    code, headers, body = fetch(server_process, f"jobs/{job['id']}/outputs?archive=tar")
    assert 'filename="outputs.tar"' in headers["Content-Disposition"]
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert "outputs/top.txt" in tar.getnames() and "outputs/run/ckpt/model.bin" in tar.getnames()


def test_a_path_that_is_no_output_is_404_and_a_link_403(server_process):
    job = server_process.request("POST", "jobs", {"cmd": WRITE})
    server_process.wait(job["id"])
    for path in ("missing.txt", "run/nope/x", "a/../../etc/passwd", "run/metrics.txt/x"):
        code, _, body = fetch(server_process, f"jobs/{job['id']}/outputs/{path}")
        assert code == 404 and b"not found" in body and b"invalid job spec" not in body, (path, body)
    code, _, body = fetch(server_process, f"jobs/{job['id']}/outputs/run/leak")
    assert code == 403 and b"symbolic link" in body


def test_a_big_folder_is_streamed_not_held_in_memory(server_process):
    job = server_process.request("POST", "jobs", {"cmd": "mkdir $JOB_OUTPUTS/big && for i in 1 2 3; do "
                                                  "truncate -s 100M $JOB_OUTPUTS/big/part$i; done"})
    assert server_process.wait(job["id"])["status"] == "Succeeded"
    pid = server_process.proc.pid
    before = peak_rss_mib(pid)
    request = urllib.request.Request(f"{server_process.url}jupyter-jobs/api/jobs/{job['id']}/outputs/big",
                                     headers={"Authorization": f"token {server_process.token}"})
    received = 0
    with urllib.request.urlopen(request, timeout=120) as response:
        while chunk := response.read(1 << 20):
            received += len(chunk)
    after = peak_rss_mib(pid)
    assert received > 300 * 2**20
    assert after - before < 60, f"the server's peak memory grew by {after - before:.0f} MiB for a 300 MiB folder"

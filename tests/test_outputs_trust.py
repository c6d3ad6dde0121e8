"""Outputs a job controls never reach the host: no link followed, no hard link served, nothing
outside the job folder moved or deleted, and list pages stay small however many outputs."""
import asyncio
import json
import sys
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("jobs_app")]

SECRET = "host-secret-3f9a"

# Swaps outputs/d between a real folder holding f and a link to the host folder, until told to stop.
SWAPPER = """
import os, sys, time
out, host = os.environ["JOB_OUTPUTS"], sys.argv[1]
os.makedirs(out + "/real")
with open(out + "/real/f", "w") as f:
    f.write("public")
os.symlink(host, out + "/link")
open(out + "/ready", "w").close()
deadline = time.time() + 60
while time.time() < deadline and not os.path.exists(out + "/stop"):
    os.rename(out + "/real", out + "/d"); os.rename(out + "/d", out + "/real")
    os.rename(out + "/link", out + "/d"); os.rename(out + "/d", out + "/link")
"""


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A folder of the host, outside every job, with a secret file named like an output."""
    folder = tmp_path / "host"
    folder.mkdir()
    (folder / "f").write_text(SECRET)
    return folder


async def get(api, job_id: int, *path: str):
    """(status, body) of a download, errors included."""
    try:
        response = await api.call("GET", "jobs", str(job_id), "outputs", *path, raw=True)
    except HTTPClientError as exc:
        return exc.code, exc.response.body if exc.response else b""
    return response.code, response.body


async def test_swapping_a_folder_for_a_link_never_serves_a_host_file(api, manager, root_dir, host):
    (root_dir / "swap.py").write_text(SWAPPER)
    job = await api.submit({"cmd": f"{sys.executable} swap.py {host}", "inputs": ["swap.py"]})
    outputs = manager.folder(job["id"]).outputs
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not (outputs / "ready").exists():
        assert loop.time() < deadline, await api.log(job["id"])
        await asyncio.sleep(0.05)
    served, refused = 0, 0
    try:
        for _ in range(3000):
            code, body = await get(api, job["id"], "d", "f")
            assert SECRET.encode() not in body, f"the host's file was served (HTTP {code})"
            if code == 200:
                assert body == b"public"
                served += 1
            else:
                assert code in (403, 404), body
                refused += 1
            if loop.time() > deadline:
                break
    finally:
        (outputs / "stop").touch()
        await api.wait(job["id"])
    print(f"race: {served} served, {refused} refused")
    assert served and refused, "the job did not swap the folder while we downloaded"


async def test_a_hard_link_to_an_outside_file_is_refused(api, host):
    job = await api.submit({"cmd": f"ln {host / 'f'} $JOB_OUTPUTS/h && echo ok > $JOB_OUTPUTS/ok", "outputs": ["h"]})
    await api.wait(job["id"])
    code, body = await get(api, job["id"], "h")
    assert code == 403 and SECRET.encode() not in body
    assert "2 names" in json.loads(body)["message"]
    assert (await get(api, job["id"], "ok")) == (200, b"ok\n")


async def test_symlinks_are_listed_as_links_with_their_own_size(api, host):
    cmd = f"ln -s {host / 'f'} $JOB_OUTPUTS/to-secret && ln -s {host} $JOB_OUTPUTS/to-host && echo 1 > $JOB_OUTPUTS/a"
    job = await api.submit({"cmd": cmd})
    done = await api.wait(job["id"])
    listing = await api.call("GET", "jobs", str(job["id"]), "outputs")
    rows = {o["path"]: {k: v for k, v in o.items() if k != "url"} for o in listing["outputs"]}
    assert rows == {
        "a": {"path": "a", "size": 2},
        "to-host": {"path": "to-host", "type": "symlink", "size": len(str(host))},
        "to-secret": {"path": "to-secret", "type": "symlink", "size": len(str(host / "f"))},
    }
    assert done["outputs"] == [rows["a"], rows["to-host"], rows["to-secret"]]
    for path in (("to-secret",), ("to-host", "f")):
        code, body = await get(api, job["id"], *path)
        assert code == 403 and SECRET.encode() not in body


async def test_a_linked_input_folder_never_lets_collection_move_an_outside_file(api, manager, root_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep me")
    (root_dir / "data").mkdir()
    (root_dir / "data" / "ext").symlink_to(outside)
    job = await api.submit({"cmd": "true", "inputs": ["data"], "outputs": ["data/ext/keep.txt"]})
    done = await api.wait(job["id"])
    assert (outside / "keep.txt").read_text() == "keep me"
    assert done["status"] == "Failed" and "did not write its outputs: data/ext/keep.txt" in done["message"]
    assert "not collected" in await api.log(job["id"])
    assert done["outputs"] == []
    await api.call("DELETE", "jobs", str(job["id"]))
    assert not manager.jobs_dir.joinpath(str(job["id"])).exists()
    assert (outside / "keep.txt").read_text() == "keep me"


async def test_a_file_name_with_quotes_and_accents_downloads_under_its_name(api):
    job = await api.submit({"cmd": "echo hi > \"$JOB_OUTPUTS/r\u00e9sum\u00e9 \\\"v2\\\".txt\""})
    done = await api.wait(job["id"])
    assert [o["path"] for o in done["outputs"]] == ['r\u00e9sum\u00e9 "v2".txt'], done["message"]
    response = await api.call("GET", "jobs", str(job["id"]), "outputs", 'r\u00e9sum\u00e9 "v2".txt', raw=True)
    assert response.body == b"hi\n"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="r_sum_ _v2_.txt"; filename*=UTF-8\'\'r%C3%A9sum%C3%A9%20%22v2%22.txt'
    )


async def test_list_rows_carry_the_count_of_outputs_not_the_list(api):
    make = "import os; [open(os.environ['JOB_OUTPUTS'] + f'/o{i}', 'w').close() for i in range(20000)]"
    job = await api.submit({"cmd": f'{sys.executable} -c "{make}"'})
    done = await api.wait(job["id"], timeout=60)
    assert done["status"] == "Succeeded", done["message"]
    assert len(done["outputs"]) == 20000
    page = await api.call("GET", "jobs", raw=True)
    (row,) = json.loads(page.body)["jobs"]
    assert row["outputs_count"] == 20000 and "outputs" not in row
    assert len(page.body) < 8 * 1024, f"a page with one job is {len(page.body)} bytes"

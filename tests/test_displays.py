"""What a job cell displays comes back as Jupyter outputs, live, at GET /jobs/{id}/displays (issue 11):
a real Jupyter server, a real job process running the cell in IPython, real matplotlib and pandas."""
import asyncio
import hashlib
import json
import sys

import pytest
from tornado.httpclient import HTTPClientError

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("jobs_app")]

CELL = """\
import time
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import HTML, Markdown, display
display(HTML("<b>started</b>"))
progress = display(Markdown("step 0"), display_id=True)
progress.update(Markdown("step 1"))
fig, ax = plt.subplots()
ax.plot([1, 4, 9])
plt.show()
time.sleep(2)
pd.DataFrame({"loss": [0.5, 0.25]})
"""


async def submit_cell(api, source: str) -> dict:
    data = source.encode()
    digest = hashlib.sha256(data).hexdigest()
    await api.call("PUT", "blobs", digest, body=data, raw=True)
    spec = {"name": "cell", "cmd": f"{sys.executable} -m jupyter_jobs_jobside.cell", "inputs": ["_jj_cell.py"]}
    return await api.submit({"spec": spec, "files": {"_jj_cell.py": digest}})


def outputs_of(body: bytes) -> list[dict]:
    return [json.loads(line) for line in body.decode().splitlines()]


async def test_a_cells_figure_table_and_value_arrive_as_outputs_while_it_runs(api, jp_fetch):
    job = await submit_cell(api, CELL)
    chunks: list[bytes] = []
    seen_running: list[str] = []

    def collect(chunk: bytes) -> None:
        chunks.append(chunk)

    follow = asyncio.ensure_future(jp_fetch("jupyter-jobs", "api", "jobs", str(job["id"]), "displays",
                                            params={"follow": "1"}, streaming_callback=collect, request_timeout=60))
    while b"image/png" not in b"".join(chunks):
        assert not follow.done(), (await api.job(job["id"]))["message"]
        await asyncio.sleep(0.05)
    seen_running.append((await api.job(job["id"]))["status"])  # the figure came while the cell still slept
    response = await follow
    assert response.headers["Content-Type"] == "application/x-ndjson"
    assert response.headers["X-Displays-Offset"] == "0"
    assert seen_running == ["Running"]
    assert (await api.wait(job["id"]))["status"] == "Succeeded"
    outputs = outputs_of(b"".join(chunks))
    kinds = [o["output_type"] for o in outputs]
    assert kinds == ["display_data", "display_data", "update_display_data", "display_data", "execute_result"], kinds
    html, first, update, figure, value = outputs
    assert html["data"]["text/html"] == "<b>started</b>"
    assert update["data"]["text/markdown"] == "step 1"
    assert update["transient"]["display_id"] == first["transient"]["display_id"]
    import base64
    assert base64.b64decode(figure["data"]["image/png"]).startswith(b"\x89PNG")
    assert "<table" in value["data"]["text/html"] and value["execution_count"] == 1
    # Their text is in the log too, as a terminal IPython prints it.
    log = await api.log(job["id"])
    assert "<Figure size" in log and "Out[1]:" in log and "loss" in log


async def test_an_error_is_an_output_and_sys_exit_is_not(api):
    failed = await submit_cell(api, "x = 1\ndef f():\n    return 1 / 0\nf()\n")
    stopped = await submit_cell(api, "import sys\nsys.exit(3)\n")
    assert (await api.wait(failed["id"]))["status"] == "Failed"
    assert (await api.wait(stopped["id"]))["exit_code"] == 3
    body = (await api.call("GET", "jobs", str(failed["id"]), "displays", raw=True)).body
    [error] = outputs_of(body)
    assert (error["output_type"], error["ename"], error["evalue"]) == ("error", "ZeroDivisionError", "division by zero")
    assert any("Cell In[1], line 4" in frame for frame in error["traceback"])
    assert (await api.call("GET", "jobs", str(stopped["id"]), "displays", raw=True)).body == b""


async def test_displays_resume_from_an_offset_and_refuse_one_past_the_end(api):
    job = await submit_cell(api, "from IPython.display import display\ndisplay({'text/plain': 'a'}, raw=True)\n"
                                 "display({'text/plain': 'b'}, raw=True)\n")
    await api.wait(job["id"])
    whole = (await api.call("GET", "jobs", str(job["id"]), "displays", raw=True)).body
    cut = whole.index(b"\n") + 1
    rest = await api.call("GET", "jobs", str(job["id"]), "displays", params={"offset": str(cut)}, raw=True)
    assert rest.headers["X-Displays-Offset"] == str(cut) and whole[:cut] + rest.body == whole
    assert [o["data"]["text/plain"] for o in outputs_of(rest.body)] == ["b"]
    with pytest.raises(HTTPClientError) as past:
        await api.call("GET", "jobs", str(job["id"]), "displays", params={"offset": str(len(whole) + 1)})
    assert past.value.code == 400 and b"offset" in past.value.response.body
    with pytest.raises(HTTPClientError) as unknown:
        await api.call("GET", "jobs", "99999", "displays")
    assert unknown.value.code == 404


async def test_a_job_may_not_set_job_displays_itself(api):
    with pytest.raises(HTTPClientError) as refused:
        await api.submit({"cmd": "true", "env": {"vars": {"JOB_DISPLAYS": "/etc/passwd"}}})
    assert refused.value.code == 400 and b"JOB_DISPLAYS" in refused.value.response.body

"""Hostile input through the real REST API: bounded parsing, no injection through names and
variables, no poison record, and never a 500 for a client mistake (issue 9, items 2, 3, 5, 6, 11)."""
import json
import sqlite3
import subprocess

import pytest
from tornado.httpclient import HTTPClientError

pytestmark = pytest.mark.usefixtures("jobs_app")

YAML = "application/yaml"


async def error_of(api, method, *path, **kwargs):
    with pytest.raises(HTTPClientError) as info:
        await api.call(method, *path, **kwargs)
    return info.value.code, json.loads(info.value.response.body)


def alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "cmd: echo\nlabels:\n" + "\n".join("  " + line for line in lines) + "\n"


async def test_yaml_alias_bomb_is_refused_before_it_expands(api):
    text = alias_bomb()
    assert len(text) < 1000  # 9**9 strings once expanded
    code, body = await error_of(api, "POST", "jobs", body=text, headers={"Content-Type": YAML})
    assert code == 400
    assert "aliases" in body["message"]
    assert (await api.call("GET", "jobs"))["jobs"] == []


@pytest.mark.parametrize("text, kind", [
    ("[" * 100_000 + "]" * 100_000, "application/json"),
    ('{"a":' * 50_000 + "1" + "}" * 50_000, "application/json"),
    ("a: " + "[" * 20_000 + "]" * 20_000, YAML),
    ("cmd: x\nlabels:\n" + "".join("  " * i + f"  k{i}:\n" for i in range(40)) + "  " * 40 + "  v: 1\n", YAML),
], ids=["json-lists", "json-objects", "yaml-flow", "yaml-block"])
async def test_deep_nesting_is_400_not_500(api, text, kind):
    code, body = await error_of(api, "POST", "jobs", body=text, headers={"Content-Type": kind})
    assert code == 400, body
    assert "deeper than" in body["message"] or "not valid" in body["message"]


async def test_huge_collections_are_refused_naming_the_field(api):
    labels = {f"k{i}": "v" for i in range(60_000)}
    code, body = await error_of(api, "POST", "jobs", body={"cmd": "echo", "labels": labels})
    assert code == 400
    assert body["errors"][0]["field"] == "labels"
    assert "60000 entries" in body["errors"][0]["message"]


@pytest.mark.parametrize("spec, field", [
    ({"cmd": "echo", "working-dir": "src\n#SBATCH --gres=gpu:8"}, "working-dir"),
    ({"cmd": "echo", "name": "a\x00b"}, "name"),
    ({"cmd": "echo", "name": "bell\x07"}, "name"),
    ({"cmd": "echo", "env": {"vars": {"A": "x\ny"}}}, "env.vars.A"),
    ({"cmd": "echo", "labels": {"team": "ml\r\n"}}, "labels.team"),
    ({"cmd": "echo", "outputs": ["out\n.txt"]}, "outputs[0]"),
    ({"cmd": "echo", "args": {"lr": "\u2028ok\x1b[31m"}}, "args.lr"),
])
async def test_control_characters_are_refused_with_the_field(api, spec, field):
    code, body = await error_of(api, "POST", "jobs", body=spec)
    assert code == 400
    assert any(e["field"] == field and "control character" in e["message"] for e in body["errors"]), body


async def test_lone_surrogate_in_json_is_refused(api):
    raw = b'{"cmd": "echo", "name": "x\\ud800y"}'
    code, body = await error_of(api, "POST", "jobs", body=raw)
    assert code == 400
    assert body["errors"][0]["field"] == "name" and "lone surrogate" in body["errors"][0]["message"]


async def test_multiline_command_is_still_a_command(api):
    job = await api.submit({"name": "two-lines", "cmd": "echo one\n\techo two"})
    done = await api.wait(job["id"])
    assert done["status"] == "Succeeded", done["message"]
    assert "one\ntwo\n" in await api.log(job["id"])


@pytest.mark.parametrize("spec, field", [
    ({"cmd": "nvidia-smi", "env": {"vars": {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}}}, "env.vars.CUDA_VISIBLE_DEVICES"),
    ({"cmd": "x", "env": {"vars": {"NVIDIA_VISIBLE_DEVICES": "all"}}}, "env.vars.NVIDIA_VISIBLE_DEVICES"),
    ({"cmd": "x", "env": {"vars": ["LD_PRELOAD=/tmp/evil.so"]}}, "env.vars.LD_PRELOAD"),
    ({"cmd": "x", "env": {"vars": {"JOB_ID": "7"}}}, "env.vars.JOB_ID"),
    ({"cmd": "x", "env": {"vars": {"PATH": "/tmp"}}}, "env.vars.PATH"),
    ({"cmd": "x", "outputs": [{"model.pt": "CUDA_VISIBLE_DEVICES"}]}, "outputs[0].var"),
])
async def test_product_variables_cannot_be_overridden(api, spec, field):
    code, body = await error_of(api, "POST", "jobs", body=spec)
    assert code == 400
    problem = next(e for e in body["errors"] if e["field"] == field)
    assert "set by jupyter-jobs" in problem["message"]


async def test_stored_env_var_never_overrides_the_gpu_confinement(manager):
    """Defence in depth for records stored before the parser refused these names."""
    from jupyter_jobs.models import JobRecord, JobSpec
    from jupyter_jobs.runner.environment import job_environment

    spec = JobSpec(cmd="x", env={"CUDA_VISIBLE_DEVICES": "0,1,2,3", "SEED": "1"})
    env = job_environment(JobRecord(id=1, name="x", owner="u", spec=spec), code="/c", outputs="/o",
                          datasets={}, gpus=(1,))
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["SEED"] == "1"


@pytest.mark.parametrize("value, seconds", [("400ms", 0.4), ("1ms", 0.001), (0.25, 0.25), ("1.5s", 1.5), ("2h", 7200)])
async def test_short_max_runtime_round_trips_and_never_poisons_the_list(api, value, seconds):
    job = await api.submit({"cmd": "sleep 5", "max-runtime": value})
    listed = (await api.call("GET", "jobs"))["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    from jupyter_jobs.spec import parse_duration

    assert parse_duration(listed[0]["spec"]["max-runtime"]) == seconds
    rerun = await api.call("POST", "jobs", str(job["id"]), "rerun", body={})
    assert parse_duration(rerun["spec"]["max-runtime"]) == seconds
    for some in (job, rerun):
        if (await api.job(some["id"]))["status"] not in ("Failed", "Succeeded", "Cancelled"):
            try:
                await api.call("POST", "jobs", str(some["id"]), "cancel")
            except HTTPClientError as exc:  # a 1 ms job may end by itself between the look and the cancel
                assert exc.code == 409, exc
        await api.call("DELETE", "jobs", str(some["id"]))
    assert (await api.call("GET", "jobs"))["jobs"] == []


async def test_400ms_max_runtime_stops_the_job(api):
    job = await api.submit({"cmd": "sleep 30", "max-runtime": "400ms"})
    done = await api.wait(job["id"], timeout=20)
    assert done["status"] == "Failed"
    assert "max-runtime of 400ms" in done["message"]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400"])
async def test_non_finite_durations_are_400(api, value):
    raw = ('{"cmd": "x", "max-runtime": %s}' % value).encode()
    code, body = await error_of(api, "POST", "jobs", body=raw)
    assert code == 400


@pytest.mark.parametrize("value", [".nan", ".inf", "99999999999d", "1e400s"])
async def test_non_finite_yaml_durations_are_400(api, value):
    code, body = await error_of(api, "POST", "jobs", body=f"cmd: x\nmax-runtime: {value}\n", headers={"Content-Type": YAML})
    assert code == 400
    assert body["errors"][0]["field"] == "max-runtime"


async def test_a_damaged_row_never_takes_down_the_list_or_the_queue(api, manager):
    good = await api.submit({"name": "before", "cmd": "echo fine"})
    await api.wait(good["id"])
    bad = await api.submit({"name": "to-damage", "cmd": "sleep 60"})
    await api.call("POST", "jobs", str(bad["id"]), "cancel")
    conn = sqlite3.connect(manager.db_path)
    conn.execute("UPDATE jobs SET spec = ? WHERE id = ?", ('{"cmd": "x", "max-runtime": "0s"}', bad["id"]))
    conn.execute("UPDATE jobs SET spec = 'not json', status = 'Pending' WHERE id = ?", (good["id"],))
    conn.commit()
    conn.close()
    listed = {j["id"]: j for j in (await api.call("GET", "jobs"))["jobs"]}
    assert set(listed) == {good["id"], bad["id"]}
    assert listed[bad["id"]]["damaged"] and listed[good["id"]]["damaged"]
    assert listed[bad["id"]]["name"] == "to-damage"
    # The damaged pending job is failed, not run; a new job still runs.
    manager.pool.wake()
    failed = await api.wait(good["id"])
    assert failed["status"] == "Failed" and "damaged" in failed["message"]
    after = await api.submit({"name": "after", "cmd": "echo still-works"})
    assert (await api.wait(after["id"]))["status"] == "Succeeded"
    code, body = await error_of(api, "POST", "jobs", str(bad["id"]), "rerun", body={})
    assert code == 409 and "damaged" in body["message"]


@pytest.mark.parametrize("path", [
    "jobs/99999999999999999999999", "jobs/9223372036854775808", "jobs/\u00b2", "jobs/\u0661",
    "jobs/99999999999999999999999/logs", "jobs/\u00b2/outputs", "jobs/1e3",
])
async def test_ids_beyond_64_bits_or_not_ascii_are_404(api, path):
    code, body = await error_of(api, "GET", *path.split("/"))
    assert code == 404, body


@pytest.mark.parametrize("params", [
    {"limit": "\u0661"}, {"limit": "99999999999999999999999"}, {"limit": "0"},
    {"cursor": "aWQ6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ"},  # id:99999999999999999999999999
    {"cursor": "aWQ6wrI"},  # id:²
    {"status": "nope"},
])
async def test_bad_list_parameters_are_400(api, params):
    code, body = await error_of(api, "GET", "jobs", params=params)
    assert code == 400, body


async def test_bad_log_offsets_are_400(api):
    job = await api.submit({"cmd": "echo hi"})
    await api.wait(job["id"])
    for offset in ("\u00b2", "99999999999999999999999", "-1"):
        code, _ = await error_of(api, "GET", "jobs", str(job["id"]), "logs", params={"offset": offset})
        assert code == 400


async def test_override_keys_with_thousands_of_dots_are_400(api):
    job = await api.submit({"cmd": "echo hi"})
    for key in ("a" + ".a" * 5000, "args." + "x" * 5000, "args..x", "args.\x00"):
        code, body = await error_of(api, "POST", "jobs", str(job["id"]), "rerun", body={"overrides": {key: 1}})
        assert code == 400, (key[:20], body)


@pytest.mark.parametrize("names, field, text", [
    (["a\x00b.py"], "files[", "control character"),
    (["x" * 300 + "/train.py"], "files[", "longer than 255 bytes"),
    (["a", "a/b"], "files['a']", "is a file, but 'a/b' puts files inside it"),
    (["../up.py"], "files[", "relative path inside the job folder"),
    (["ok.py", "./ok.py"], "files[", "listed twice"),
], ids=["nul", "long-name", "file-and-folder", "escape", "twice"])
async def test_bad_manifests_are_400(api, names, field, text):
    import hashlib

    digest = hashlib.sha256(b"x").hexdigest()
    await api.call("PUT", "blobs", digest, body=b"x")
    code, body = await error_of(api, "POST", "jobs", body={"spec": {"cmd": "x"}, "files": {n: digest for n in names}})
    assert code == 400, body
    assert any(e["field"].startswith(field) and text in e["message"] for e in body["errors"]), body


async def test_overrides_keep_the_multiline_allowance_of_cmd(api):
    job = await api.submit({"cmd": "echo one"})
    rerun = await api.call("POST", "jobs", str(job["id"]), "rerun", body={"overrides": {"cmd": "echo a\necho b"}})
    assert rerun["spec"]["cmd"] == "echo a\necho b"
    code, body = await error_of(api, "POST", "jobs", str(job["id"]), "rerun", body={"overrides": {"name": "a\nb"}})
    assert code == 400 and body["errors"][0]["field"] == "overrides.name"


async def test_names_too_long_for_a_file_system_are_4xx(api):
    code, body = await error_of(api, "POST", "jobs", body={"cmd": "x", "inputs": ["d" * 300 + "/a.py"]})
    assert code == 400 and body["errors"][0]["field"] == "inputs[0].path"
    code, _ = await error_of(api, "POST", "jobs", body={"cmd": "x", "inputs": ["a.py"]}, params={"base_dir": "b" * 256})
    assert code == 400
    job = await api.submit({"cmd": "echo hi"})
    await api.wait(job["id"])
    code, _ = await error_of(api, "GET", "jobs", str(job["id"]), "outputs", "o" * 300)
    assert code == 404


async def test_an_output_tree_thousands_deep_is_listed_and_the_job_succeeds(api, manager):
    job = await api.submit({"cmd": "mkdir -p $(printf 'd/%.0s' $(seq 1500)) && echo deep > $JOB_OUTPUTS/top.txt"
                                   " && mv d $JOB_OUTPUTS/"})
    folder = manager.jobs_dir / str(job["id"])
    try:
        done = await api.wait(job["id"], timeout=60)
        assert done["status"] == "Succeeded", done["message"]
        listed = (await api.call("GET", "jobs", str(job["id"]), "outputs"))["outputs"]
        assert {"path": "top.txt", "size": 5} in [{k: v for k, v in f.items() if k != "url"} for f in listed]
        assert len(listed) < 200  # folders below the walk's depth are not entered
        # And the job can be deleted, tree and all (Python's rmtree recurses once per level).
        await api.call("DELETE", "jobs", str(job["id"]))
        assert not folder.exists()
    finally:  # never leave the tree to pytest, whose clean-up of old temporary folders would recurse
        subprocess.run(["rm", "-rf", "--", str(folder)], check=False)


async def test_symbolic_link_loops_and_pipes_in_inputs_are_400(api, root_dir):
    import os

    os.symlink("loop-b", root_dir / "loop-a")
    os.symlink("loop-a", root_dir / "loop-b")
    os.mkfifo(root_dir / "pipe")
    (root_dir / "src").mkdir()
    os.mkfifo(root_dir / "src" / "inner-pipe")
    (root_dir / "src" / "train.py").write_text("print('ok')\n")
    for params, body, field in [
        ({"base_dir": "loop-a"}, {"cmd": "x"}, "base_dir"),
        ({}, {"cmd": "x", "inputs": ["loop-a"]}, "inputs[0].path"),
        ({}, {"cmd": "x", "inputs": ["pipe"]}, "inputs[0].path"),
    ]:
        if params:
            body = {**body, "inputs": ["a.py"]}
        code, error = await error_of(api, "POST", "jobs", body=body, params=params)
        assert code == 400 and error["errors"][0]["field"] == field, error
    # A pipe inside an input folder is left out (copying it would block or fail), the rest runs.
    job = await api.submit({"cmd": "ls src; python src/train.py", "inputs": ["src"]})
    done = await api.wait(job["id"])
    assert done["status"] == "Succeeded", done["message"]
    assert "inner-pipe" not in await api.log(job["id"])


async def test_a_rerun_of_a_job_that_left_a_pipe_or_filled_its_folder(api, manager):
    job = await api.submit({"cmd": "mkfifo left-pipe && echo made"})
    assert (await api.wait(job["id"]))["status"] == "Succeeded"
    rerun = await api.call("POST", "jobs", str(job["id"]), "rerun", body={"overrides": {"cmd": "ls"}})
    done = await api.wait(rerun["id"])
    assert done["status"] == "Succeeded" and "left-pipe" not in await api.log(rerun["id"])
    big = await api.submit({"cmd": "echo \"FILES=[$(ls)]\"; head -c 3000000 /dev/zero > checkpoint.bin"})
    assert (await api.wait(big["id"]))["status"] == "Succeeded"
    manager.max_input_bytes = 1_000_000
    # A rerun gets what the job was shipped (nothing here), not the checkpoint it left in its working dir.
    again = await api.call("POST", "jobs", str(big["id"]), "rerun", body={})
    assert (await api.wait(again["id"]))["status"] == "Succeeded"
    assert "FILES=[]" in await api.log(again["id"])
    # A job from before snapshots is rerun from its folder as it was left: within the limit, else a 413.
    (manager.folder(big["id"]).run / "files.json").unlink()
    code, body = await error_of(api, "POST", "jobs", str(big["id"]), "rerun", body={})
    assert code == 413 and "max_input_bytes" in body["message"]


async def test_a_content_length_that_is_not_a_number_is_400(jp_fetch):
    import asyncio
    import hashlib
    from urllib.parse import urlparse

    digest = hashlib.sha256(b"x").hexdigest()
    # tornado reads header bytes as latin-1: b"\xb2" arrives as "²", which str.isdigit() accepts.
    response = await jp_fetch("jupyter-jobs", "api", "config")
    url = urlparse(response.effective_url)
    token = response.request.headers.get("Authorization", "")
    for length in (b"\xb2", b"9" * 5000):
        # The server runs on this test's loop: talk to it with asyncio streams, never a blocking socket.
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        path = url.path.rsplit("/config", 1)[0] + f"/blobs/{digest}"
        writer.write(b"PUT " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: " + token.encode()
                     + b"\r\nContent-Length: " + length + b"\r\n\r\nx")
        await writer.drain()
        status = (await asyncio.wait_for(reader.readline(), 30)).split(b" ", 2)[1]
        writer.close()
        assert status.startswith(b"4"), (length[:10], status)

"""REST API: auth on every route, one status per error kind, nothing stored lost on bad input."""
import getpass
import json

import pytest
from tornado.httpclient import HTTPClientError

pytestmark = pytest.mark.usefixtures("jobs_app")

ROUTES = [
    ("GET", "jobs"), ("POST", "jobs"), ("GET", "jobs/1"), ("DELETE", "jobs/1"),
    ("POST", "jobs/1/cancel"), ("POST", "jobs/1/rerun"), ("GET", "jobs/1/logs"),
    ("GET", "jobs/1/outputs"), ("GET", "jobs/1/outputs/a.txt"),
    ("POST", "blobs/missing"), ("PUT", "blobs/" + "0" * 64),
    ("GET", "instance-types"), ("GET", "datasets"), ("GET", "config"),
    ("GET", "environments"), ("POST", "environments/prune"), ("GET", "changes"),
]


async def error_of(api, method, *path, **kwargs):
    with pytest.raises(HTTPClientError) as info:
        await api.call(method, *path, **kwargs)
    return info.value.code, json.loads(info.value.response.body)


@pytest.mark.parametrize("method, path", ROUTES)
async def test_every_route_requires_auth(jp_fetch, method, path):
    kwargs = {"method": method, "headers": {"Authorization": ""}}
    if method in ("POST", "PUT"):
        kwargs["body"] = b"{}"
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("jupyter-jobs", "api", *path.split("/"), **kwargs)
    assert info.value.code == 403


async def test_create_answers_201_with_location_and_yaml_works(api, monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    response = await api.call("POST", "jobs", body="name: y\ncmd: echo yaml\n",
                              headers={"Content-Type": "application/yaml"}, raw=True)
    job = json.loads(response.body)
    assert response.code == 201
    assert response.headers["Location"].endswith(f"/jupyter-jobs/api/jobs/{job['id']}")
    # A single-user server's one token: the job is the account's that runs the server.
    assert (job["name"], job["status"], job["owner"]) == ("y", "Pending", getpass.getuser())
    assert job["instance_type"] == "cpu"


async def test_bad_spec_is_400_naming_fields_and_stores_nothing(api):
    code, body = await error_of(api, "POST", "jobs", body={"cmd": "x", "outputs": ["../up"], "retries": -1})
    assert code == 400
    assert body["reason"] == "SpecError"
    assert {e["field"] for e in body["errors"]} == {"outputs[0].path", "retries"}
    assert (await api.call("GET", "jobs"))["jobs"] == []


@pytest.mark.parametrize("body, field, text", [
    ({"cmd": "x", "instance-type": "huge"}, "instance-type", "choose one of: cpu"),
    ({"cmd": "x", "datasets": ["nope"]}, "datasets[0].name", "unknown dataset 'nope'"),
    ({"cmd": "x", "inputs": ["missing.csv"]}, "inputs[0].path", "not found"),
])
async def test_unknown_names_are_400(api, body, field, text):
    code, error = await error_of(api, "POST", "jobs", body=body)
    assert code == 400
    assert error["errors"][0]["field"] == field
    assert text in error["errors"][0]["message"]


async def test_not_json_is_400(api):
    code, body = await error_of(api, "POST", "jobs", body="{not json")
    assert code == 400 and "not valid JSON" in body["message"]


async def test_base_dir_outside_root_is_400(api):
    code, body = await error_of(api, "POST", "jobs", body={"cmd": "x", "inputs": ["a"]}, params={"base_dir": "../.."})
    assert code == 400 and body["errors"][0]["field"] == "base_dir"


@pytest.mark.parametrize("jobs_config", [{"Cluster": {"instance_types": [
    {"name": "small", "cpus": 1, "memory": "1GiB"}, {"name": "a100", "cpus": 1, "memory": 512, "gpus": 1}]}}])
async def test_job_that_could_never_fit_is_refused_at_submit(api):
    code, body = await error_of(api, "POST", "jobs", body={"cmd": "x", "instance-type": "a100"})
    assert code == 400
    assert "needs 1 GPU but this server has 0" in body["message"]
    types = (await api.call("GET", "instance-types"))["instance_types"]
    assert [(t["name"], t["memory_mib"], t["default"]) for t in types] == [("small", 1024, True), ("a100", 512, False)]


async def test_too_large_body_is_413(api):
    code, body = await error_of(api, "POST", "jobs", body=json.dumps({"cmd": "x" * (4 * 1024 * 1024 + 1)}))
    assert code == 413 and "limit" in body["message"]


@pytest.mark.parametrize("jobs_config", [{"JobManager": {"max_input_bytes": 1000}}])
async def test_too_large_inputs_are_413_listing_the_largest(api, root_dir):
    (root_dir / "big.bin").write_bytes(b"x" * 5000)
    (root_dir / "small.txt").write_text("hi")
    code, body = await error_of(api, "POST", "jobs", body={"cmd": "x", "inputs": ["big.bin", "small.txt"]})
    assert code == 413
    assert "largest: big.bin" in body["message"]


async def test_unknown_job_is_404(api):
    for path in (("jobs", "999"), ("jobs", "abc"), ("jobs", "999", "logs"), ("jobs", "999", "outputs")):
        code, body = await error_of(api, "GET", *path)
        assert code == 404, path
        assert "not found" in body["message"]


async def test_wrong_state_is_409(api):
    job = await api.submit({"cmd": "sleep 30"})
    await api.wait(job["id"], ("Running",))
    code, body = await error_of(api, "DELETE", "jobs", str(job["id"]))
    assert code == 409 and "cancel it before deleting" in body["message"]
    await api.call("POST", "jobs", str(job["id"]), "cancel")
    code, body = await error_of(api, "POST", "jobs", str(job["id"]), "cancel")
    assert code == 409 and "already ended" in body["message"]


async def test_idempotency_key_makes_retries_safe(api):
    headers = {"Idempotency-Key": "abc-1"}
    first = await api.call("POST", "jobs", body={"cmd": "echo once"}, headers=headers, raw=True)
    again = await api.call("POST", "jobs", body={"cmd": "echo once"}, headers=headers, raw=True)
    assert (first.code, again.code) == (201, 200)
    assert json.loads(first.body)["id"] == json.loads(again.body)["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    code, body = await error_of(api, "POST", "jobs", body={"cmd": "echo other"}, headers=headers)
    assert code == 409 and "Idempotency-Key" in body["message"]
    assert len((await api.call("GET", "jobs"))["jobs"]) == 1


async def test_delete_removes_record_log_and_outputs(api, manager):
    job = await api.submit({"cmd": "echo hi > $OUT", "outputs": [{"o.txt": "OUT"}]})
    await api.wait(job["id"])
    folder = manager.folder(job["id"]).root
    assert folder.exists()
    response = await api.call("DELETE", "jobs", str(job["id"]), raw=True)
    assert response.code == 204
    assert not folder.exists()
    code, _ = await error_of(api, "GET", "jobs", str(job["id"]))
    assert code == 404


async def test_list_filters_and_cursor_paging(api):
    ids = [(await api.submit({"name": f"n{i}", "cmd": "true"}))["id"] for i in range(5)]
    for job_id in ids:
        await api.wait(job_id)
    page = await api.call("GET", "jobs", params={"limit": "2"})
    seen = [j["id"] for j in page["jobs"]]
    while page["next_cursor"]:
        page = await api.call("GET", "jobs", params={"limit": "2", "cursor": page["next_cursor"]})
        seen += [j["id"] for j in page["jobs"]]
    assert seen == ids[::-1]
    assert [j["name"] for j in (await api.call("GET", "jobs", params={"text": "n3"}))["jobs"]] == ["n3"]
    assert len((await api.call("GET", "jobs", params={"status": "succeeded", "owner": "me"}))["jobs"]) == 5
    code, body = await error_of(api, "GET", "jobs", params={"status": "STOPPED"})
    assert code == 400 and body["errors"][0]["field"] == "status"


async def test_outputs_list_download_and_no_escape(api):
    job = await api.submit({"cmd": "mkdir -p $JOB_OUTPUTS/sub && echo 42 > $JOB_OUTPUTS/sub/a.txt && echo m > m.txt",
                            "outputs": ["sub", "m.txt"]})
    await api.wait(job["id"])
    listing = await api.call("GET", "jobs", str(job["id"]), "outputs")
    assert [o["path"] for o in listing["outputs"]] == ["m.txt", "sub/a.txt"]
    assert listing["missing"] == []
    response = await api.call("GET", "jobs", str(job["id"]), "outputs", "sub", "a.txt", raw=True)
    assert response.body == b"42\n"
    assert "attachment" in response.headers["Content-Disposition"]
    code, _ = await error_of(api, "GET", "jobs", str(job["id"]), "outputs", "..%2F..%2Fjobs.sqlite")
    assert code in (400, 404)
    code, _ = await error_of(api, "GET", "jobs", str(job["id"]), "outputs", "nope.txt")
    assert code == 404


async def test_config_and_datasets(api, tmp_path):
    config = await api.call("GET", "config")
    assert config["backend"] == "local"
    assert config["features"]["log_follow"] is True
    assert config["capacity"]["cpus"] == 2
    assert (await api.call("GET", "datasets")) == {"datasets": []}



async def test_blobs_upload_once_and_submit_by_manifest(api):
    import hashlib

    data = b"print('from a blob')\n"
    digest = hashlib.sha256(data).hexdigest()
    assert (await api.call("POST", "blobs", "missing", body={"hashes": [digest]}))["missing"] == [digest]
    first = await api.call("PUT", "blobs", digest, body=data, raw=True)
    again = await api.call("PUT", "blobs", digest, body=data, raw=True)
    assert (first.code, again.code) == (201, 200)
    assert (await api.call("POST", "blobs", "missing", body={"hashes": [digest]}))["missing"] == []
    job = await api.submit({"spec": {"cmd": "python src/run.py", "inputs": ["src/run.py"]}, "files": {"src/run.py": digest}})
    done = await api.wait(job["id"])
    assert done["status"] == "Succeeded", done["message"]
    assert "from a blob" in await api.log(job["id"])


@pytest.mark.parametrize("body, field", [
    ({"spec": {"cmd": "x"}, "files": {"a.py": "0" * 64}}, "files['a.py']"),
    ({"spec": {"cmd": "x"}, "files": {"../a.py": "0" * 64}}, "files['../a.py']"),
    ({"spec": {"cmd": "x", "inputs": ["b.py"]}, "files": {}}, "inputs[0].path"),
    ({"spec": {"cmd": "x"}, "extra": 1}, "body"),
])
async def test_bad_manifests_are_400(api, body, field):
    code, error = await error_of(api, "POST", "jobs", body=body)
    assert code == 400 and error["errors"][0]["field"] == field


async def test_blob_whose_bytes_do_not_match_is_400(api):
    code, error = await error_of(api, "PUT", "blobs", "0" * 64, body=b"abc")
    assert code == 400 and "upload the file again" in error["message"]
    code, error = await error_of(api, "PUT", "blobs", "nothex", body=b"abc")
    assert code == 400

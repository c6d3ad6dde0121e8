"""Secrets: stored 0600 by the server, given to a job's process environment only, and nowhere else.

The end-to-end test runs on the local backend, on Docker and on Slurm (those two skip without
their engines, and fail in CI): a job gets its owner's secret and writes its hash as an output,
prints it, and the value is then looked for in every answer of the API, the database's bytes and
every file of the job's folder but the output the job chose to write.
"""
import hashlib
import json
import os
import stat
import uuid
from pathlib import Path

import pytest
from conftest import Api, As, HeaderIdentity
from tornado.httpclient import HTTPClientError

from jupyter_jobs.models import JobRecord
from jupyter_jobs.secrets import Mask, SecretStore, owner_key
from jupyter_jobs.spec import parse_spec

# -- the store and the mask (pure logic) -------------------------------------------------------------


def test_store_keeps_one_0600_file_a_secret_in_0700_folders(tmp_path):
    store = SecretStore(tmp_path / "secrets")
    entry, created = store.set("alice", "API_KEY", "v1")
    assert created and entry["name"] == "API_KEY"
    assert store.set("alice", "API_KEY", "v2")[1] is False
    assert store.get("alice", "API_KEY") == "v2" and store.get("bob", "API_KEY") is None
    path = tmp_path / "secrets" / "alice" / "API_KEY"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700
    assert [e["name"] for e in store.list("alice")] == ["API_KEY"] and store.list("bob") == []
    store.delete("alice", "API_KEY")
    assert store.get("alice", "API_KEY") is None


def test_owner_folders_are_one_to_one_and_never_outside():
    names = ["..", ".", "a/b", "a%2Fb", "a_b", "a b", "", "é"]
    keys = [owner_key(n) for n in names]
    assert len(set(keys)) == len(names)
    assert all("/" not in k and k not in (".", "..", "") for k in keys)


@pytest.mark.parametrize("name", ["", "../x", ".hidden", "a/b", "x" * 129, "a b", "é"])
def test_bad_names_are_refused_naming_the_field(tmp_path, name):
    from jupyter_jobs.errors import SecretError

    with pytest.raises(SecretError) as error:
        SecretStore(tmp_path).set("alice", name, "v")
    assert error.value.message.startswith("name: ")


def test_mask_keeps_lengths_and_finds_values_across_chunk_edges(tmp_path):
    log = tmp_path / "job.log"
    log.write_bytes(b"a TOPSECRET b TOPSECRET")
    mask = Mask(["TOPSECRET"])
    whole = b"".join(mask.read(log, offset, 4, hold_partial=False) for offset in range(0, 23, 4))
    assert whole == b"a ********* b *********"
    log.write_bytes(b"done; TOPSEC")  # still being written: its end may be the start of the value
    assert mask.read(log, 0, 100, hold_partial=True) == b"done; "
    assert mask.read(log, 0, 100, hold_partial=False) == b"done; TOPSEC"
    log.write_bytes(b"x" * 3000 + b"TOPSECRET" + b"y" * 10)
    mask.scrub(log)
    assert log.read_bytes() == b"x" * 3000 + b"*" * 9 + b"y" * 10


# -- through a real server ---------------------------------------------------------------------------


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker),
                        pytest.param("slurm", marks=pytest.mark.slurm)])
def backend(request):
    return request.param


@pytest.fixture
def jobs_config(backend):
    config = {"JobManager": {"backend": backend}}
    if backend == "slurm":
        config["SlurmBackend"] = {"poll_seconds": 0.3}
        config["Cluster"] = {"instance_types": [{"name": "small", "cpus": 1, "memory": 200}]}
    return config


def files_holding(root: Path, value: bytes, skip: Path | None = None) -> list[str]:
    found = []
    for base, _dirs, names in os.walk(root):
        for name in names:
            path = Path(base) / name
            if skip is not None and path == skip or not path.is_file() or path.is_symlink():
                continue
            if value in path.read_bytes():
                found.append(str(path))
    return found


@pytest.mark.integration
async def test_a_secret_reaches_the_job_and_appears_nowhere_else(api, manager, jobs_data_dir, backend):
    value = f"s3cr3t-{uuid.uuid4().hex}"
    answer = await api.call("PUT", "secrets", "API_KEY", body={"value": value}, raw=True)
    assert answer.code == 201 and value.encode() not in answer.body
    spec = {
        "name": "uses-a-secret",
        # ${API_KEY} in cmd stays a reference for the job's shell: the command is recorded and shown.
        "cmd": "echo the key is $API_KEY; echo arg ${API_KEY}; mkdir -p out; "
               "printf %s \"$API_KEY\" | sha256sum | cut -c1-64 > out/hash.txt",
        "outputs": ["out/hash.txt"],
        "env": {"vars": {"API_KEY": {"secret": "API_KEY"}, "PLAIN": "visible"}},
    }
    job = await api.submit(spec)
    done = await api.wait(job["id"], timeout=90)
    log = await api.log(job["id"])
    assert done["status"] == "Succeeded", (done["message"], log)
    folder = jobs_data_dir / "jobs" / str(job["id"])
    output = folder / "outputs" / "out" / "hash.txt"
    assert output.read_text().strip() == hashlib.sha256(value.encode()).hexdigest()  # it reached the job

    assert f"the key is {'*' * len(value)}" in log and f"arg {'*' * len(value)}" in log
    assert done["spec"]["env"]["vars"] == {"PLAIN": "visible", "API_KEY": {"secret": "API_KEY"}}
    assert '"${API_KEY}"' in done["command"]
    answers = [json.dumps(done), log, json.dumps(await api.call("GET", "jobs")),
               json.dumps(await api.call("GET", "secrets")),
               (await api.call("GET", "jobs", str(job["id"]), "displays", raw=True)).body.decode()]
    assert not [a for a in answers if value in a]
    assert json.loads((folder / "spec.json").read_text())["env"]["vars"]["API_KEY"] == {"secret": "API_KEY"}
    db = Path(manager.db_path)
    for path in (db, Path(f"{db}-wal")):
        assert not path.exists() or value.encode() not in path.read_bytes(), path
    assert files_holding(folder, value.encode(), skip=output) == []  # the stored log is scrubbed too
    secret_file = jobs_data_dir / "secrets" / owner_key(done["owner"]) / "API_KEY"
    assert secret_file.read_text() == value  # where it is kept, and only there
    assert files_holding(jobs_data_dir, value.encode(), skip=output) == [str(secret_file)]


@pytest.mark.integration
@pytest.mark.parametrize("jobs_config", [{"RunnerPool": {"max_concurrent": 1}}])
async def test_a_job_naming_a_missing_secret_is_refused_and_one_deleted_since_fails(api):
    spec = {"cmd": "echo $TOKEN", "env": {"vars": {"TOKEN": {"secret-id": "gh-token"}}}}  # DataSphere's spelling
    with pytest.raises(HTTPClientError) as error:
        await api.submit(spec)
    body = json.loads(error.value.response.body)
    assert error.value.code == 400 and body["errors"][0]["field"] == "env.vars.TOKEN"
    assert "jupyter jobs secret set gh-token" in body["message"]

    await api.call("PUT", "secrets", "gh-token", body={"value": "tok-123456"})
    blocker = await api.submit({"cmd": "sleep 30"})
    await api.wait(blocker["id"], ("Running",))
    job = await api.submit(spec)
    await api.call("DELETE", "secrets", "gh-token")
    await api.call("POST", "jobs", str(blocker["id"]), "cancel")
    failed = await api.wait(job["id"], timeout=30)
    assert failed["status"] == "Failed" and "env.vars.TOKEN" in failed["message"], failed["message"]
    assert "not set" in failed["message"]


@pytest.mark.integration
@pytest.mark.parametrize("jobs_config", [{}])
async def test_secret_requests_name_the_field(api):
    for name, body, field in [("bad%20name", {"value": "x"}, "name"), ("OK", {"value": ""}, "value"),
                              ("OK", {"value": 5}, "value"), ("OK", {"val": "x"}, "body"), ("OK", None, "body")]:
        with pytest.raises(HTTPClientError) as error:
            await api.call("PUT", "secrets", name, body=body if body is not None else "")
        answer = json.loads(error.value.response.body)
        assert error.value.code == 400 and answer["errors"][0]["field"] == field, answer
    with pytest.raises(HTTPClientError) as error:
        await api.call("DELETE", "secrets", "NEVER_SET")
    assert error.value.code == 404
    spec = {"cmd": "true", "registry-auth": {"username": "me", "password": "plain-text"}}
    with pytest.raises(HTTPClientError) as error:
        await api.submit(spec)
    assert json.loads(error.value.response.body)["errors"][0]["field"] == "registry-auth.password"


def test_a_spec_keeps_the_reference_never_a_value():
    spec = parse_spec({"cmd": "true", "env": {"vars": [{"A": {"secret": "a"}}, "B=1"]},
                       "registry-auth": {"username": "u", "password": {"secret-id": "pw"}}})
    assert spec.secrets == {"A": "a"} and spec.env == {"B": "1"}
    assert parse_spec(spec.to_dict()) == spec
    record = JobRecord(id=1, name="x", owner="alice", spec=spec)
    assert record.to_json(0)["spec"]["registry-auth"] == {"username": "u", "password": {"secret": "pw"}}


# -- a private registry: the image is pulled with the owner's secret ----------------------------------


class _Registry:
    """A read-only Docker registry (API v2) on 127.0.0.1 serving one image, behind HTTP basic auth."""

    def __init__(self, saved: Path, user: str, password: str) -> None:
        import base64
        import tarfile
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.blobs: dict[str, Path] = {}
        folder = saved.parent / "blobs"
        with tarfile.open(saved) as tar:
            tar.extractall(folder, filter="data")
        (entry,) = json.loads((folder / "manifest.json").read_text())
        layers = []
        for name in [entry["Config"], *entry["Layers"]]:
            digest = "sha256:" + hashlib.sha256((folder / name).read_bytes()).hexdigest()
            self.blobs[digest] = folder / name
            layers.append({"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                           "size": (folder / name).stat().st_size, "digest": digest})
        config, *layers = layers
        config["mediaType"] = "application/vnd.docker.container.image.v1+json"
        self.manifest = json.dumps({"schemaVersion": 2, "config": config, "layers": layers,
                                    "mediaType": "application/vnd.docker.distribution.manifest.v2+json"}).encode()
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.do_GET(body=False)

            def do_GET(self, body=True):
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="test"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data, kind = b"{}", "application/json"
                if "/manifests/" in self.path:
                    data, kind = registry.manifest, "application/vnd.docker.distribution.manifest.v2+json"
                elif "/blobs/" in self.path:
                    data, kind = registry.blobs[self.path.rsplit("/", 1)[1]].read_bytes(), "application/octet-stream"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Docker-Content-Digest", "sha256:" + hashlib.sha256(data).hexdigest())
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                self.end_headers()
                if body:
                    self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.mark.integration
@pytest.mark.parametrize("backend", [pytest.param("docker", marks=pytest.mark.docker)])
async def test_a_private_image_is_pulled_with_the_owners_secret(api, manager, tmp_path):
    import docker

    client = docker.from_env(timeout=120)
    saved = tmp_path / "image" / "saved.tar"
    saved.parent.mkdir()
    with open(saved, "wb") as out:
        for chunk in client.images.get("jupyter-jobs/base:bookworm").save():
            out.write(chunk)
    password = f"pw-{uuid.uuid4().hex}"
    registry = _Registry(saved, "puller", password)
    image = f"127.0.0.1:{registry.port}/private/base:1"
    try:
        await api.call("PUT", "secrets", "REGISTRY", body={"value": "wrong"})
        # DataSphere's spelling: env.docker {image, username, password: {secret-id}}.
        spec = {"cmd": "echo pulled and ran", "env": {"docker": {"image": image, "username": "puller",
                                                                 "password": {"secret-id": "REGISTRY"}}}}
        refused = await api.wait((await api.submit(spec))["id"], timeout=60)
        assert refused["status"] == "Failed" and "could not be pulled" in refused["message"], refused["message"]
        await api.call("PUT", "secrets", "REGISTRY", body={"value": password})
        job = await api.submit(spec)
        done = await api.wait(job["id"], timeout=120)
        log = await api.log(job["id"])
        assert done["status"] == "Succeeded", (done["message"], log)
        assert "pulled and ran" in log and password not in log and password not in json.dumps(done)
        assert done["spec"]["registry-auth"] == {"username": "puller", "password": {"secret": "REGISTRY"}}
    finally:
        registry.server.shutdown()
        try:
            client.images.remove(image, force=True)
        except docker.errors.DockerException:
            pass
        client.close()


@pytest.mark.integration
@pytest.mark.parametrize("jobs_config", [{}])
async def test_a_failing_job_s_last_line_is_masked_in_its_message(api, manager):
    value = f"v-{uuid.uuid4().hex}"
    await api.call("PUT", "secrets", "K", body={"value": value})
    job = await api.submit({"cmd": "echo got $K; exit 3", "env": {"vars": {"K": {"secret": "K"}}}})
    failed = await api.wait(job["id"])
    assert failed["status"] == "Failed" and failed["message"].endswith(f"last line: got {'*' * len(value)}")
    assert value.encode() not in Path(manager.db_path).read_bytes()


@pytest.mark.integration
@pytest.mark.parametrize("jobs_config", [{"ServerApp": {"identity_provider_class": HeaderIdentity}}])
async def test_each_user_has_their_own_secrets(jp_fetch, jobs_app):
    alice, bob = As(jp_fetch, "alice"), As(jp_fetch, "bob")
    await alice.call("PUT", "secrets", "TOKEN", body={"value": "alices-token-value"})
    assert (await bob.call("GET", "secrets"))["secrets"] == []
    assert [s["name"] for s in (await alice.call("GET", "secrets"))["secrets"]] == ["TOKEN"]
    spec = {"cmd": "printf %s \"$T\" > out.txt", "outputs": ["out.txt"], "env": {"vars": {"T": {"secret": "TOKEN"}}}}
    code, body = await bob.error("POST", "jobs", body=spec)  # alice's secret is not bob's
    assert code == 400 and body["errors"][0]["field"] == "env.vars.T" and "not set for bob" in body["message"]
    await bob.call("PUT", "secrets", "TOKEN", body={"value": "bobs-token-value"})
    jobs = [await who.call("POST", "jobs", body=spec) for who in (alice, bob)]
    for job, who, value in zip(jobs, (alice, bob), ("alices-token-value", "bobs-token-value")):
        api = Api(lambda *a, _who=who, **k: jp_fetch(*a, **{**k, "headers": {**k.get("headers", {}),
                                                                            "X-Test-User": _who.user}}))
        done = await api.wait(job["id"])
        assert done["status"] == "Succeeded", done["message"]
        output = await who.call("GET", "jobs", str(job["id"]), "outputs", "out.txt", raw=True)
        assert output.body.decode() == value
    await bob.call("DELETE", "secrets", "TOKEN")
    assert [s["name"] for s in (await alice.call("GET", "secrets"))["secrets"]] == ["TOKEN"]

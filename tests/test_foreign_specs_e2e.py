"""The specs of tests/specs/ (DataSphere, PrimeHub, Bacalhau), submitted unchanged through a real Jupyter
server and run on the local backend, on Docker and on Slurm (those two skip without their engines, and
fail in CI, as in tests/runner/)."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_jobs.spec import load_spec_text
from jupyter_jobs.spec.submitter import fill_environment

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("jobs_app")]
SPECS = Path(__file__).parent / "specs"
BASE_IMAGE = "jupyter-jobs/base:bookworm"
#: Images the specs name, made here from the offline base image (CI has no registry).
SPEC_IMAGES = ("python:3.11-slim", "base-notebook:latest")
#: The instance types the specs name, as each backend's admin would size them.
TYPES = [
    {"name": "g1.1", "cpus": 1, "memory": "256MiB", "gpus": 1},  # DataSphere's first choice: never fits on 0 GPUs
    {"name": "c1.2", "cpus": 0.5, "memory": "256MiB"},
    {"name": "cpu-1", "cpus": 0.5, "memory": "512MiB"},        # PrimeHub's
]


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker),
                        pytest.param("slurm", marks=pytest.mark.slurm)])
def backend(request):
    return request.param


@pytest.fixture
def admin_data(tmp_path_factory):
    """The datasets, S3 bucket and project volume the DataSphere config names."""
    root = tmp_path_factory.mktemp("admin")
    files = {
        "cifar/val.json": json.dumps({"pairs": [[1.0, 2.0], [2.0, 4.1]]}),
        "labels/labels.txt": "churn stay\n",
        "bucket/features.tsv": "x\ty\n1\t2\n2\t4\n3\t6.1\n",
        "project/misc/norm.txt": "1.0\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture
def jobs_config(backend, admin_data):
    cluster = {
        "instance_types": TYPES, "gpus": 0,
        "datasets": {"cifar": str(admin_data / "cifar"), "labels": str(admin_data / "labels"),
                     "features-bucket": str(admin_data / "bucket")},
        "s3_mounts": {"s3features": "features-bucket"},
        "project_disk": str(admin_data / "project"),
    }
    config = {"JobManager": {"backend": backend}, "Cluster": cluster}
    if backend == "slurm":
        config["SlurmBackend"] = {"poll_seconds": 0.3}
        cluster["instance_types"] = [{**t, "memory": 200} for t in TYPES]  # the nodes have 2000 MiB
    return config


@pytest.fixture
def spec_images(backend):
    """The images the specs name, tagged from the base image on the Docker backend."""
    if backend != "docker":
        yield
        return
    import docker

    client = docker.from_env(timeout=30)
    base = client.images.get(BASE_IMAGE)
    for name in SPEC_IMAGES:
        base.tag(*name.split(":"))
    yield
    for name in SPEC_IMAGES:
        client.images.remove(name, noprune=True)
    client.close()


async def submit_spec(api, root_dir: Path, folder: str, spec_file: str, environ=None) -> dict:
    """Copy a spec's folder under the server's root and submit it as `jupyter jobs run` would."""
    shutil.copytree(SPECS / folder, root_dir / folder)
    spec = load_spec_text((SPECS / folder / spec_file).read_text())
    spec = fill_environment(spec, environ or {})
    return await api.call("POST", "jobs", body=spec, params={"base_dir": folder})


async def finished(api, job: dict) -> dict:
    done = await api.wait(job["id"], timeout=90)
    assert done["status"] == "Succeeded", (done["message"], await api.log(job["id"]))
    return done


@pytest.mark.usefixtures("spec_images")
async def test_datasphere_config_runs_as_written(api, root_dir, backend):
    job = await submit_spec(api, root_dir, "datasphere", "config.yaml", {"DS_RUN_TAG": "q3-retrain"})
    done = await finished(api, job)
    log = await api.log(job["id"])
    # The folded cmd ran as ONE command: the script got every option (it requires them all).
    assert "run q3-retrain on 1 device(s): w=" in log
    assert "INFO epoch 5 w=" in log
    assert {o["path"] for o in done["outputs"]} == {"data/model.bin", "metrics.txt"}
    model = await api.call("GET", "jobs", str(job["id"]), "outputs", "data/model.bin", raw=True)
    assert json.loads(model.body)["labels"] == ["churn", "stay"]
    # g1.1 could never fit a host without GPUs, so the next type was taken (Slurm's scheduler decides there).
    assert done["instance_type"] == ("g1.1" if backend == "slurm" else "c1.2")
    assert done["desc"].startswith("Trains the churn model") and done["warnings"] == []
    found = await api.call("GET", "jobs", params={"text": "report Q3"})
    assert [j["id"] for j in found["jobs"]] == [job["id"]]


@pytest.mark.usefixtures("spec_images")
async def test_primehub_job_json_runs_with_its_group(api, root_dir):
    job = await submit_spec(api, root_dir, "primehub", "job.json")
    done = await finished(api, job)
    log = await api.log(job["id"])
    assert "job of phadmin in group research" in log and "epoch 3: accuracy" in log
    assert done["name"] == "train-mnist" and done["instance_type"] == "cpu-1"
    assert done["group"] == "research"  # the job's group (a single-user server keeps it as written)
    assert done["warnings"] == ["PrimeHub keys with no equivalent in jupyter-jobs were left out: groupId (the group "
                                "is groupName); userId (the job's owner is whoever submits it)"]
    assert done["warnings"][0] in log  # said once in the job's log too
    found = await api.call("GET", "jobs", params={"group": "research"})
    assert [j["id"] for j in found["jobs"]] == [job["id"]]
    assert (await api.call("GET", "jobs", params={"group": "other"}))["jobs"] == []


@pytest.mark.usefixtures("spec_images")
async def test_bacalhau_job_spec_runs_and_keeps_its_labels_meta_and_timeouts(api, root_dir):
    job = await submit_spec(api, root_dir, "bacalhau", "job.yaml")
    done = await finished(api, job)
    assert "summarised 1000 sales in 4 regions" in await api.log(job["id"])
    summary = await api.call("GET", "jobs", str(job["id"]), "outputs", "outputs/summary.json", raw=True)
    assert sorted(json.loads(summary.body)) == ["east", "north", "south", "west"]
    assert done["labels"] == {"project": "quarterly-report", "team": "analytics"}
    assert done["meta"] == {"version": "1.2.5"} and done["priority"] == 50 and done["queue_timeout"] == 300
    assert done["spec"]["max-runtime"] == "10m"
    assert done["instance_type"] == "c1.2"  # the smallest with 250m CPU and 128mb
    assert "Constraints" in done["warnings"][0] and "WorkingDirectory" in done["warnings"][0]
    both = await api.call("GET", "jobs", params=[("label", "team=analytics"), ("label", "project=quarterly-report")])
    assert [j["id"] for j in both["jobs"]] == [job["id"]]


# -- local backend only: refusals and the queue timeout ----------------------------------------------


@pytest.mark.parametrize("backend", ["local"])
@pytest.mark.parametrize("spec, field, words", [
    ({"cmd": "echo $${X}", "env": {"vars": ["A=1", "X"]}}, "env.vars[1]", "X has no value"),
    ({"cmd": "true", "s3-mounts": ["elsewhere"]}, "s3-mounts[0]", "c.Cluster.s3_mounts"),
    ({"cmd": "true", "env": {"docker": {"image": "x", "password": "p"}}}, "env.docker.password", "secret store"),
    ({"cmd": "true", "inputs": [{"/etc/hostname": {"var": "H"}}]}, "inputs[0].path", "uploads an absolute input"),
    ({"cmd": "true", "cloud-instance-types": ["g1.1", "g9"]}, "instance-type", "none of these instance types"),
    ({"Type": "ops", "Count": 1, "Tasks": [{"Engine": {"Type": "wasm"}, "InputSources": []}]}, "Type", "batch"),
])
async def test_what_cannot_run_here_is_a_400_naming_the_field(api, spec, field, words):
    with pytest.raises(HTTPClientError) as error:
        await api.submit(spec)
    assert error.value.code == 400
    message = json.loads(error.value.response.body)["message"]
    assert f"{field}:" in message and words in message, message


@pytest.mark.parametrize("jobs_config", [{"RunnerPool": {"max_concurrent": 1}}])
async def test_a_job_waiting_past_its_queue_timeout_fails_saying_why(api):
    blocker = await api.submit({"cmd": "sleep 60"})
    await api.wait(blocker["id"], ("Running",))
    waiting = await api.submit({"cmd": "true", "queue-timeout": "1s"})
    try:
        failed = await api.wait(waiting["id"], timeout=20)
    finally:
        await api.call("POST", "jobs", str(blocker["id"]), "cancel")
    assert failed["status"] == "Failed", failed
    assert failed["message"].startswith("Failed: waited longer than its queue-timeout of 1s while Pending (")
    assert failed["started_at"] is None


@pytest.mark.slurm
@pytest.mark.parametrize("jobs_config", [{"JobManager": {"backend": "slurm"}, "SlurmBackend": {"poll_seconds": 0.3},
                                          "Cluster": {"instance_types": [{"name": "gpu", "cpus": 1, "memory": 100,
                                                                          "gpus": 1}]}}])
async def test_a_job_in_slurms_queue_past_its_queue_timeout_is_taken_out_and_fails(api, manager):
    blockers = [await api.submit({"cmd": "sleep 60"}) for _ in range(2)]  # one fake GPU on each node
    for blocker in blockers:
        await api.wait(blocker["id"], ("Running",), timeout=60)
    waiting = await api.submit({"cmd": "true", "queue-timeout": "2s"})
    try:
        failed = await api.wait(waiting["id"], timeout=60)
    finally:
        for blocker in blockers:
            await api.call("POST", "jobs", str(blocker["id"]), "cancel")
    assert failed["status"] == "Failed" and failed["started_at"] is None, failed
    assert "waited longer than its queue-timeout of 2s while Pending" in failed["message"]
    name = manager.engine.job_name(manager.get(waiting["id"]))
    queued = subprocess.run(["squeue", "-h", "--name", name, "-o", "%i %T"], capture_output=True, text=True,
                            timeout=30).stdout
    assert queued.strip() == "", queued  # not left in Slurm's queue

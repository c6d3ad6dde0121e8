"""Writable volumes (issue 14): admin-defined folders that jobs write and that outlive them.

PrimeHub's Example 1 (`cd /project/research; python -u train.py`, writing its model there) runs on every
backend with a volume; the model is on the host afterwards and a second job reads it; a dataset beside
the volume stays read-only; a volume reserved to other groups is refused at submit, naming volumes[i]."""
import asyncio
import json

import pytest
from conftest import As, GroupIdentity

from jupyter_jobs.access import Access
from jupyter_jobs.errors import ConfigError, SpecError
from jupyter_jobs.models import Dataset, VolumeRef
from jupyter_jobs.spec import parse_spec
from jupyter_jobs.spec.foreign import Site, to_native
from jupyter_jobs.volumes import Volume, load_volumes, volume_var, volumes_for

LOCAL = {"JobManager": {"backend": "local"}}
DOCKER = {"JobManager": {"backend": "docker"}, "Cluster": {"gpus": 0}}
SLURM = {"JobManager": {"backend": "slurm"}, "SlurmBackend": {"poll_seconds": 0.3},
         "Cluster": {"instance_types": [{"name": "cpu", "cpus": 1, "memory": 100}]}}
SLURM_CONTAINER = {"JobManager": {"backend": "slurm"}, "SlurmBackend": {"poll_seconds": 0.3, "container": True},
                   "Cluster": {"instance_types": [{"name": "cpu", "cpus": 1, "memory": 100}]}}
BACKENDS = [pytest.param(LOCAL, id="local"), pytest.param(DOCKER, id="docker", marks=pytest.mark.docker),
            pytest.param(SLURM, id="slurm", marks=pytest.mark.slurm),
            pytest.param(SLURM_CONTAINER, id="slurm-container", marks=[pytest.mark.slurm, pytest.mark.docker])]
CONTAINED = (DOCKER, SLURM_CONTAINER)

TRAIN = """import os
with open("model.bin", "w") as f:
    f.write("weights of " + os.environ["JOB_ID"])
print("saved in", os.getcwd())
"""


# -- the admin's volumes, the spec's, and who may mount them -------------------------------------------------
def test_volumes_are_loaded_from_a_path_or_a_mapping(tmp_path):
    loaded = load_volumes({"research": str(tmp_path / "r"),
                           "shared-ckpt": {"path": str(tmp_path / "c"), "groups": ["team-a"], "description": "x"}})
    assert loaded == [Volume("research", str(tmp_path / "r")),
                      Volume("shared-ckpt", str(tmp_path / "c"), ("team-a",), "x")]
    assert loaded[1].in_container == "/volumes/shared-ckpt" and volume_var("shared-ckpt") == "JOB_VOLUME_SHARED_CKPT"


def test_volumes_come_from_the_config_file_too(tmp_path):
    from jupyter_jobs.cluster import Cluster

    (tmp_path / "jobs.yaml").write_text(f"volumes:\n  scratch: {tmp_path / 's'}\n")
    cluster = Cluster(config_file=str(tmp_path / "jobs.yaml"), volumes={"research": {"path": str(tmp_path / "r"),
                                                                                       "groups": ["team-a"]}}, gpus=0)
    cluster.load()
    assert [(v.name, v.groups) for v in cluster.known_volumes] == [("research", ("team-a",)), ("scratch", ())]
    assert cluster.site().volumes == {"research", "scratch"}


@pytest.mark.parametrize("raw, message", [
    ({"r": "relative/path"}, "Cluster.volumes.r: 'relative/path' is relative"),
    ({"a b": "/srv/v"}, "Cluster.volumes.a b: a volume's name is one folder name"),
    ({"r": {"path": "/srv/v", "mode": "rw"}}, "Cluster.volumes.r.mode: unknown key"),
    ({"r": {"path": "/srv/v", "groups": "team-a"}}, "Cluster.volumes.r.groups: expected a list"),
    ({"a-b": "/srv/1", "a.b": "/srv/2"}, "JOB_VOLUME_A_B"),
    ({"r": "/srv/data/mnist/out"}, "overlaps the dataset 'mnist'"),
    ({"r": "/srv/data"}, "overlaps the dataset 'mnist'"),
])
def test_a_bad_volume_setting_is_named(raw, message):
    with pytest.raises(ConfigError) as info:
        load_volumes(raw, [Dataset("mnist", "/srv/data/mnist")])
    assert message in str(info.value)


def test_a_spec_asks_for_volumes_by_name_and_var():
    spec = parse_spec({"cmd": "cd ${PROJECT} && ls ${JOB_VOLUME_CKPT}", "volumes": [{"name": "research", "var": "PROJECT"}, "ckpt"]})
    assert spec.volumes == (VolumeRef("research", "PROJECT"), VolumeRef("ckpt"))
    assert parse_spec(spec.to_dict()) == spec
    with pytest.raises(SpecError) as info:
        parse_spec({"cmd": "ls ${JOB_VOLUME_OTHER}", "volumes": ["ckpt", "ckpt", {"name": "x", "var": "JOB_X"}]})
    fields = {p.field for p in info.value.problems}
    assert fields == {"volumes[1].name", "volumes[2].var", "cmd"}, info.value.problems


def test_only_members_of_a_volumes_groups_and_admins_may_mount_it():
    team = [Volume("research", "/srv/r", ("team-a",)), Volume("open", "/srv/o")]
    refs = [VolumeRef("open"), VolumeRef("research")]
    assert volumes_for(refs, team, Access("alice", groups=frozenset({"team-a"}))) == [team[1], team[0]]
    assert volumes_for(refs, team, Access("ops", admin=True)) == [team[1], team[0]]
    assert volumes_for(refs, team, Access("me"), server_user="me") == [team[1], team[0]]  # single-user server
    with pytest.raises(SpecError) as info:
        volumes_for([*refs, VolumeRef("nope")], team, Access("bob", groups=frozenset({"team-b"})), server_user="me")
    problems = {p.field: p.message for p in info.value.problems}
    assert "for the groups team-a, and bob is in none of them" in problems["volumes[1].name"]
    assert "unknown volume 'nope'; available: open, research" in problems["volumes[2].name"]


def test_a_primehub_group_volume_is_the_volume_of_that_name():
    job = {"displayName": "mnist", "groupName": "research", "command": "cd /project/research/\npython -u train.py"}
    spec = to_native(job, Site(volumes=frozenset({"research"}))).spec
    assert spec["volumes"] == ["research"] and "inputs" not in spec  # train.py is the volume's, not shipped
    assert spec["cmd"] == "cd $${JOB_VOLUME_RESEARCH}/\npython -u train.py"
    assert parse_spec(spec).cmd == spec["cmd"]
    example2 = to_native({**job, "command": 'python -u "/project/research/train.py" /projects/x'},
                         Site(volumes=frozenset({"research"}))).spec
    assert example2["cmd"] == 'python -u "$${JOB_VOLUME_RESEARCH}/train.py" /projects/x'
    with pytest.raises(SpecError, match="command: /project/research is PrimeHub's group volume 'research'"):
        to_native(job, Site())


# -- PrimeHub's Example 1 on every backend ---------------------------------------------------------------
@pytest.mark.parametrize("jobs_config", BACKENDS)
async def test_example_1_writes_its_model_in_the_volume_where_the_next_job_finds_it(api, manager, tmp_path, jobs_config):
    volume, data = tmp_path / "research", tmp_path / "mnist"
    volume.mkdir(mode=0o777)
    volume.chmod(0o777)  # the admin's choice of who writes it (an image's own user, here)
    data.mkdir()
    (volume / "train.py").write_text(TRAIN)
    (data / "x.txt").write_text("pixels")
    manager.cluster.volumes = {"research": str(volume)}
    manager.cluster.datasets = {"mnist": str(data)}
    manager.cluster.load()
    job = await api.submit({
        "cmd": "cd $PROJECT && python train.py && cat $DATA/x.txt && echo VOL=$JOB_VOLUME_RESEARCH && "
               "{ echo no > $DATA/new.txt || echo dataset-read-only; }",
        "volumes": [{"name": "research", "var": "PROJECT"}], "datasets": [{"mnist": "DATA"}]})
    done = await api.wait(job["id"], timeout=90)
    log = await api.log(job["id"])
    assert done["status"] == "Succeeded", done["message"] + log
    where = "/volumes/research" if jobs_config in CONTAINED else str(volume)
    assert f"saved in {where}" in log and f"VOL={where}" in log and "pixels" in log, log
    assert "dataset-read-only" in log and not (data / "new.txt").exists(), log
    assert (volume / "model.bin").read_text() == f"weights of {job['id']}"
    assert done["volumes"] == ["research"] and done["spec"]["volumes"] == [{"name": "research", "var": "PROJECT"}]

    second = await api.submit({"cmd": "cat ${JOB_VOLUME_RESEARCH}/model.bin", "volumes": ["research"]})
    assert (await api.wait(second["id"], timeout=90))["status"] == "Succeeded"
    assert f"weights of {job['id']}" in await api.log(second["id"])


async def test_a_primehub_job_runs_in_its_group_volume(api, manager, tmp_path):
    volume = tmp_path / "research"
    volume.mkdir()
    (volume / "train.py").write_text(TRAIN)
    manager.cluster.volumes = {"research": str(volume)}
    manager.cluster.load()
    job = await api.submit({"displayName": "mnist", "groupName": "research",
                            "command": "cd /project/research/\npython -u train.py"})
    done = await api.wait(job["id"], timeout=60)
    assert done["status"] == "Succeeded", done["message"] + await api.log(job["id"])
    assert (volume / "model.bin").read_text() == f"weights of {job['id']}"


@pytest.mark.parametrize("jobs_config", [{"RunnerPool": {"max_concurrent": 1}}])
async def test_a_volume_removed_after_submit_fails_the_job_saying_so(api, manager, tmp_path):
    (tmp_path / "v").mkdir()
    manager.cluster.volumes = {"v": str(tmp_path / "v")}
    manager.cluster.load()
    go = tmp_path / "go"
    blocker = await api.submit({"cmd": f"while [ ! -e {go} ]; do sleep 0.05; done"})
    await api.wait(blocker["id"], ("Running",))
    job = await api.submit({"cmd": "true", "volumes": ["v"]})  # queued behind it while the admin removes v
    manager.cluster.volumes = {}
    manager.cluster.load()
    go.touch()
    done = await api.wait(job["id"], timeout=30)
    assert done["status"] == "Failed" and "the volume 'v' is no longer defined" in done["message"], done


# -- team mode: a volume for some groups ----------------------------------------------------------------
class TestGroups:
    @pytest.fixture
    def jobs_config(self, tmp_path):
        (tmp_path / "research").mkdir()
        return {"ServerApp": {"identity_provider_class": GroupIdentity},
                "JobManager": {"admin_users": ["ops"]},
                "Cluster": {"volumes": {"research": {"path": str(tmp_path / "research"), "groups": ["team-a"]}}}}

    async def test_a_volume_of_other_groups_is_refused_at_submit(self, jp_fetch, jobs_app, jobs_data_dir, tmp_path):
        spec = {"cmd": "echo hi > $JOB_VOLUME_RESEARCH/by-$JOB_USER", "volumes": ["research"]}
        code, body = await As(jp_fetch, "bob", ("team-b",)).error("POST", "jobs", body=spec)
        assert code == 400, body
        assert "volumes[0].name: volume 'research' is for the groups team-a, and bob is in none of them" in body["message"]
        assert not [p for p in (jobs_data_dir / "jobs").iterdir() if p.name.isdigit()]  # nothing stored
        for who in (As(jp_fetch, "alice", ("team-a",)), As(jp_fetch, "ops", ("staff",))):
            job = await who.call("POST", "jobs", body=spec)
            for _ in range(600):
                job = await who.call("GET", "jobs", str(job["id"]))
                if job["status"] in ("Succeeded", "Failed"):
                    break
                await asyncio.sleep(0.05)
            assert job["status"] == "Succeeded", json.dumps(job)
            assert (tmp_path / "research" / f"by-{who.user}").read_text() == "hi\n"

    async def test_the_volumes_a_user_may_mount_are_listed(self, jp_fetch, jobs_app, tmp_path):
        listed = await As(jp_fetch, "alice", ("team-a",)).call("GET", "volumes")
        assert listed == {"volumes": [{"name": "research", "path": str(tmp_path / "research"), "groups": ["team-a"],
                                       "description": "", "var": "JOB_VOLUME_RESEARCH"}]}
        assert await As(jp_fetch, "bob", ("team-b",)).call("GET", "volumes") == {"volumes": []}

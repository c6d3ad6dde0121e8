"""Groups and quotas through a real jupyter_server (issue 13): a job's group, who sees it, who acts on it,
JOB_GROUP, the group filter, and a group quota that holds back one group's job while another group's
starts. Users and their groups come from request headers (conftest.GroupIdentity), as JupyterHub's would."""
import asyncio
import json

import pytest
from conftest import As, GroupIdentity
from jupyter_server.auth.authorizer import Authorizer
from tornado.httpclient import HTTPClientError

from jupyter_jobs.manager import server_user


class OpsAuthorizer(Authorizer):
    """Allows everyone everything, and makes 'ops' an admin of jobs."""

    def is_authorized(self, handler, user, action, resource):
        return user.username == "ops" if resource == "jupyter_jobs:admin" else True


@pytest.fixture
def jobs_config():
    return {
        "ServerApp": {"identity_provider_class": GroupIdentity, "authorizer_class": OpsAuthorizer},
        "Cluster": {"gpus": 2, "cpus": 4, "instance_types": [
            {"name": "cpu", "cpus": 0.5, "memory": 256}, {"name": "gpu", "cpus": 0.5, "memory": 256, "gpus": 1},
            {"name": "gpu2", "cpus": 0.5, "memory": 256, "gpus": 2}]},
        "Quotas": {"groups": {"team-a": {"gpus": 1}}},
    }


pytestmark = pytest.mark.usefixtures("jobs_app")


@pytest.fixture
def alice(jp_fetch):
    return As(jp_fetch, "alice", ("team-a",))


@pytest.fixture
def carol(jp_fetch):
    return As(jp_fetch, "carol", ("team-a",))


@pytest.fixture
def bob(jp_fetch):
    return As(jp_fetch, "bob", ("team-b",))


async def wait_for(user, job_id, statuses, timeout=30.0):
    for _ in range(int(timeout / 0.05)):
        job = await user.call("GET", "jobs", str(job_id))
        if job["status"] in statuses:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} is still {job['status']}: {job['message']}")


async def test_a_group_quota_holds_back_its_group_and_not_another(alice, carol, bob):
    first = await alice.call("POST", "jobs", body={"name": "train", "cmd": "sleep 30", "instance-type": "gpu"})
    assert first["group"] == "team-a"
    await wait_for(alice, first["id"], ("Running",))
    second = await carol.call("POST", "jobs", body={"name": "more", "cmd": "sleep 30", "instance-type": "gpu"})
    other = await bob.call("POST", "jobs", body={"name": "theirs", "cmd": "sleep 30", "instance-type": "gpu"})
    # A GPU is free, but team-a holds its 1: job 2 waits, saying so; team-b's job, behind it, starts.
    running = await wait_for(bob, other["id"], ("Running",))
    assert running["group"] == "team-b"
    waiting = await carol.call("GET", "jobs", str(second["id"]))
    assert waiting["status"] == "Pending"
    assert waiting["message"] == f"waiting: your group team-a uses 1 of its 1 GPUs (job {first['id']} 'train')"
    # Once team-a's job ends, its next one starts.
    await alice.call("POST", "jobs", str(first["id"]), "cancel")
    await wait_for(carol, second["id"], ("Running",))
    for user, job in ((carol, second), (bob, other)):
        await user.call("POST", "jobs", str(job["id"]), "cancel")


async def test_a_job_over_its_quota_in_total_is_refused(alice):
    code, body = await alice.error("POST", "jobs", body={"cmd": "true", "instance-type": "gpu2"})
    assert code == 400
    assert body["errors"][0]["field"] == "instance-type"
    assert "asks for 2 GPUs but group team-a's quota is 1 GPUs (Quotas.groups)" in body["message"]


async def test_group_members_see_a_job_and_only_its_owner_and_admins_act(alice, carol, bob, jp_fetch):
    job = await alice.call("POST", "jobs", body={"cmd": "echo G=$JOB_GROUP U=$JOB_USER > out.txt; echo writ$((1))en; sleep 30",
                                                 "outputs": ["out.txt"]})
    jid = str(job["id"])
    await wait_for(alice, job["id"], ("Running",))
    while b"writ1en" not in (await alice.call("GET", "jobs", jid, "logs", raw=True)).body:  # out.txt is written
        await asyncio.sleep(0.05)
    for path in [("jobs", jid), ("jobs", jid, "logs"), ("jobs", jid, "displays"), ("jobs", jid, "outputs")]:
        assert await carol.status("GET", *path, raw=True) == 200, path
        assert await bob.status("GET", *path, raw=True) == 404, path  # another group: it does not exist
    for method, path in [("POST", ("jobs", jid, "cancel")), ("POST", ("jobs", jid, "rerun")), ("DELETE", ("jobs", jid))]:
        code, body = await carol.error(method, *path)
        assert code == 403, (method, path)
        assert "only alice or an admin may" in body["message"]
        assert await bob.status(method, *path) == 404
    cancelled = await As(jp_fetch, "ops").call("POST", "jobs", jid, "cancel")
    assert cancelled["status"] == "Cancelled"
    assert (await alice.call("GET", "jobs", jid, "outputs", "out.txt", raw=True)).body == b"G=team-a U=alice\n"


async def test_the_group_filter_and_submitted_by_me(alice, carol, bob, jp_fetch):
    a = await alice.call("POST", "jobs", body={"cmd": "true"})
    c = await carol.call("POST", "jobs", body={"cmd": "true"})
    b = await bob.call("POST", "jobs", body={"cmd": "true"})

    async def ids(user, **params):
        return {j["id"] for j in (await user.call("GET", "jobs", params=params))["jobs"]}

    assert await ids(carol) == {a["id"], c["id"]}
    assert await ids(carol, owner="me") == {c["id"]}
    assert await ids(carol, group="team-a") == {a["id"], c["id"]}
    assert await ids(bob, group="team-a") == set()
    assert await ids(bob) == {b["id"]}
    rows = (await carol.call("GET", "jobs"))["jobs"]
    assert {r["group"] for r in rows} == {"team-a"}
    # Everyone's jobs: admins only; anyone else is told what they see instead.
    ops = As(jp_fetch, "ops")
    assert await ids(ops, all_users="1") >= {a["id"], b["id"], c["id"]}
    assert await ids(ops, group="team-b") == {b["id"]}
    with pytest.raises(HTTPClientError) as refused:
        await carol.call("GET", "jobs", params={"all_users": "1"})
    assert refused.value.code == 403
    assert "your own jobs and your groups'" in json.loads(refused.value.response.body)["message"]
    # The server's own user, with no groups known (a single-user server): every job is theirs anyway.
    assert await ids(As(jp_fetch, server_user()), all_users="1") == set()


async def test_which_group_a_job_is_for(jp_fetch, manager):
    both = As(jp_fetch, "dana", ("team-b", "team-a"))
    assert (await both.call("GET", "config"))["groups"] == ["team-a", "team-b"]
    assert (await both.call("POST", "jobs", body={"cmd": "true"}))["group"] == "team-a"  # the first, alphabetically
    assert (await both.call("POST", "jobs", body={"cmd": "true", "group": "team-b"}))["group"] == "team-b"
    code, body = await both.error("POST", "jobs", body={"cmd": "true", "group": "team-c"})
    assert code == 400 and body["errors"] == [
        {"field": "group", "message": "dana is not a member of 'team-c'; your groups: team-a, team-b (leave group out "
                                      "for your first one)"}]
    loner = As(jp_fetch, "eve")
    assert (await loner.call("POST", "jobs", body={"cmd": "true"}))["group"] == ""
    assert (await loner.error("POST", "jobs", body={"cmd": "true", "group": "team-a"}))[0] == 400
    assert (await As(jp_fetch, "ops").call("POST", "jobs", body={"cmd": "true", "group": "team-c"}))["group"] == "team-c"
    code, body = await loner.error("POST", "jobs", body={"cmd": "true", "group": ["x"]})
    assert code == 400 and body["errors"][0]["field"] == "group"
    # Single-user (the CLI's embedded server, a plain Jupyter server): no groups are known, any is taken.
    job, _ = await manager.submit({"cmd": "true", "group": "lab"}, owner=server_user())
    assert job.spec.group == "lab"

"""Per-user authorization on a shared server: a job you may not act on does not exist for you
(issue 9, item 4). Users come from a real jupyter_server IdentityProvider (a subclass that names
the user from a request header, as a proxy in front of a shared server would)."""

import pytest
from conftest import As, HeaderIdentity
from jupyter_server.auth.authorizer import Authorizer


class OpsAuthorizer(Authorizer):
    """Allows everyone everything, and makes 'ops' an admin of jobs."""

    def is_authorized(self, handler, user, action, resource):
        if resource == "jupyter_jobs:admin":
            return user.username == "ops"
        return True


@pytest.fixture
def jobs_config():
    return {"ServerApp": {"identity_provider_class": HeaderIdentity, "authorizer_class": OpsAuthorizer},
            "JobManager": {"admin_users": {"root-admin"}}}


pytestmark = pytest.mark.usefixtures("jobs_app")


@pytest.fixture
def alice(jp_fetch):
    return As(jp_fetch, "alice")


@pytest.fixture
def bob(jp_fetch):
    return As(jp_fetch, "bob")


async def wait_done(user, job_id):
    import asyncio

    for _ in range(400):
        job = await user.call("GET", "jobs", str(job_id))
        if job["status"] in ("Succeeded", "Failed", "Cancelled", "Unknown"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end")


async def test_a_user_never_sees_or_touches_another_users_job(alice, bob):
    job = await alice.call("POST", "jobs", body={"name": "secret", "cmd": "echo $TOKEN > out.txt",
                                                 "outputs": ["out.txt"], "env": {"vars": {"TOKEN": "s3cret"}}})
    assert job["owner"] == "alice"
    done = await wait_done(alice, job["id"])
    assert done["status"] == "Succeeded", done["message"]
    jid = str(job["id"])
    for method, path in [("GET", ("jobs", jid)), ("GET", ("jobs", jid, "logs")), ("GET", ("jobs", jid, "outputs")),
                         ("GET", ("jobs", jid, "outputs", "out.txt")), ("POST", ("jobs", jid, "rerun")),
                         ("POST", ("jobs", jid, "cancel")), ("DELETE", ("jobs", jid))]:
        assert await bob.status(method, *path) == 404, (method, path)
    # The same answer as for a job that never existed.
    assert await bob.status("GET", "jobs", "999999") == 404
    assert (await bob.call("GET", "jobs"))["jobs"] == []
    assert (await bob.call("GET", "jobs", params={"owner": "alice"}))["jobs"] == []
    # Idempotency keys are each user's own: Bob's identical key and spec make Bob's own job.
    same = {"name": "keyed", "cmd": "echo keyed"}
    first = await alice.call("POST", "jobs", body=same, headers={"Idempotency-Key": "k-1"})
    other = await bob.call("POST", "jobs", body=same, headers={"Idempotency-Key": "k-1"})
    assert other["owner"] == "bob" and other["id"] != first["id"]
    assert (await alice.call("POST", "jobs", body=same, headers={"Idempotency-Key": "k-1"}))["id"] == first["id"]
    # Alice still has everything.
    assert (await alice.call("GET", "jobs", jid, "outputs", "out.txt", raw=True)).body == b"s3cret\n"
    assert job["id"] in [j["id"] for j in (await alice.call("GET", "jobs"))["jobs"]]
    assert all(j["owner"] == "alice" for j in (await alice.call("GET", "jobs"))["jobs"])


async def test_admins_see_and_act_on_every_job(alice, bob, jp_fetch):
    mine = await alice.call("POST", "jobs", body={"cmd": "sleep 30"})
    theirs = await bob.call("POST", "jobs", body={"cmd": "echo hi"})
    for admin in (As(jp_fetch, "ops"), As(jp_fetch, "root-admin")):
        config = await admin.call("GET", "config")
        assert config["admin"] is True and config["user"] == admin.user
        listed = {j["id"] for j in (await admin.call("GET", "jobs"))["jobs"]}
        assert {mine["id"], theirs["id"]} <= listed
        only_bob = (await admin.call("GET", "jobs", params={"owner": "bob"}))["jobs"]
        assert [j["owner"] for j in only_bob] == ["bob"]
        assert (await admin.call("GET", "jobs", params={"owner": "me"}))["jobs"] == []
        assert (await admin.call("GET", "jobs", str(mine["id"])))["owner"] == "alice"
    cancelled = await As(jp_fetch, "ops").call("POST", "jobs", str(mine["id"]), "cancel")
    assert cancelled["status"] == "Cancelled"
    assert (await alice.call("GET", "config"))["admin"] is False

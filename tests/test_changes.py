"""The change feed (GET /changes, a long-poll with a cursor) and GET /jobs?ids=, through a real Jupyter server:
a waiting request answers soon after a job is submitted, cancelled or deleted, naming it; a cursor of another
server life resets; a timeout answers with nothing; another user's job is never named; bad input is a 400
naming the field. And the feed itself, told of changes from many threads at once."""
import asyncio
import json
import socket
import threading
import time

import pytest
from conftest import As, GroupIdentity
from tornado.httpclient import HTTPClientError

from jupyter_jobs.changes import ChangeFeed
from jupyter_jobs.errors import SpecError


@pytest.fixture
def jobs_config():
    return {"ServerApp": {"identity_provider_class": GroupIdentity}}


pytestmark = pytest.mark.usefixtures("jobs_app")


@pytest.fixture
def alice(jp_fetch):
    return As(jp_fetch, "alice", ("team-a",))


@pytest.fixture
def bob(jp_fetch):
    return As(jp_fetch, "bob", ("team-b",))


async def start(user) -> str:
    answer = await user.call("GET", "changes")
    assert answer["changes"] == [] and answer["reset"] is False
    return answer["cursor"]


async def changes(user, cursor, timeout=10):
    return await user.call("GET", "changes", params={"cursor": cursor, "timeout": str(timeout)})


async def settle(user, cursor) -> str:
    """The cursor once nothing has changed for half a second (the pool is done moving the jobs on)."""
    for _ in range(100):
        answer = await changes(user, cursor, timeout=0.5)
        if not answer["changes"]:
            return answer["cursor"]
        cursor = answer["cursor"]
    raise AssertionError("the jobs never stopped changing")


async def answered_after(user, cursor, action) -> tuple[dict, float]:
    """The answer of a /changes request already waiting when ``action`` runs, and how long after it came."""
    waiting = asyncio.ensure_future(changes(user, cursor))
    await asyncio.sleep(0.3)
    assert not waiting.done(), f"answered before anything changed: {waiting.result()}"
    began = time.monotonic()
    await action()
    answer = await asyncio.wait_for(waiting, 10)
    return answer, time.monotonic() - began


async def test_a_waiting_request_is_answered_by_submit_cancel_and_delete(alice):
    cursor = await start(alice)
    job = {}

    async def submit():
        job.update(await alice.call("POST", "jobs", body={"name": "sleeper", "cmd": "sleep 60"}))

    answer, took = await answered_after(alice, cursor, submit)
    assert job["id"] in [c["id"] for c in answer["changes"]] and not answer["reset"]
    assert took < 2, took
    assert len({c["id"] for c in answer["changes"]}) == len(answer["changes"]), "an id named twice"
    cursor = await settle(alice, answer["cursor"])  # the job starts: Preparing, Running

    async def cancel():
        await alice.call("POST", "jobs", str(job["id"]), "cancel")

    answer, took = await answered_after(alice, cursor, cancel)
    assert {"id": job["id"], "deleted": False} in answer["changes"] and took < 2, (answer, took)
    cursor = await settle(alice, answer["cursor"])  # its process stops: Cancelled
    assert (await alice.call("GET", "jobs", str(job["id"])))["status"] == "Cancelled"

    async def delete():
        await alice.call("DELETE", "jobs", str(job["id"]))

    answer, took = await answered_after(alice, cursor, delete)
    assert answer["changes"] == [{"id": job["id"], "deleted": True}] and took < 2, (answer, took)


async def test_a_burst_comes_in_one_answer_each_job_once(alice, manager):
    cursor = await start(alice)
    first = await alice.call("POST", "jobs", body={"name": "one", "cmd": "true"})
    for message in ("a", "b", "c"):
        manager.store.update(first["id"], message=message)
    answer = await changes(alice, cursor)
    assert [c["id"] for c in answer["changes"]].count(first["id"]) == 1


async def test_another_users_job_is_not_named_but_a_group_members_is(alice, bob, jp_fetch):
    carol = As(jp_fetch, "carol", ("team-a",))
    cursor_bob, cursor_carol = await start(bob), await start(carol)
    waiting_bob = asyncio.ensure_future(changes(bob, cursor_bob, timeout=1.5))
    job = await alice.call("POST", "jobs", body={"name": "alices", "cmd": "true"})
    carols = await changes(carol, cursor_carol)
    assert job["id"] in [c["id"] for c in carols["changes"]]
    bobs = await waiting_bob
    assert bobs["changes"] == [] and bobs["reset"] is False  # waited out its timeout: alice's job is not his
    assert bobs["cursor"] != cursor_bob  # and past it: the next request does not see it again
    assert (await alice.call("GET", "jobs", params={"ids": str(job["id"])}))["jobs"][0]["id"] == job["id"]
    assert (await bob.call("GET", "jobs", params={"ids": str(job["id"])}))["jobs"] == []


async def test_a_cursor_of_another_server_life_resets_at_once(alice):
    began = time.monotonic()
    answer = await changes(alice, "0123abcd-5", timeout=30)
    assert answer["reset"] is True and answer["changes"] == [] and time.monotonic() - began < 5
    assert answer["cursor"] != "0123abcd-5"
    cursor = await start(alice)
    epoch, seq = cursor.rsplit("-", 1)
    ahead = await changes(alice, f"{epoch}-{int(seq) + 1000}", timeout=30)  # from the future: also unknown
    assert ahead["reset"] is True


async def test_nothing_changes_the_timeout_answers_with_none(alice):
    cursor = await start(alice)
    began = time.monotonic()
    answer = await changes(alice, cursor, timeout=0.5)
    took = time.monotonic() - began
    assert answer == {"cursor": cursor, "changes": [], "reset": False}
    assert 0.4 < took < 5, took


@pytest.mark.parametrize("params, field", [
    ({"cursor": "nope"}, "cursor"), ({"cursor": "abc-"}, "cursor"), ({"timeout": "121"}, "timeout"),
    ({"timeout": "-1"}, "timeout"), ({"timeout": "soon"}, "timeout"), ({"timeout": "nan"}, "timeout"),
])
async def test_bad_cursor_or_timeout_is_400_naming_it(alice, params, field):
    with pytest.raises(HTTPClientError) as info:
        await alice.call("GET", "changes", params=params)
    assert info.value.code == 400
    assert json.loads(info.value.response.body)["errors"][0]["field"] == field


async def test_ids_lists_just_those_jobs_the_caller_may_see(alice, bob):
    a = await alice.call("POST", "jobs", body={"name": "a", "cmd": "true"})
    b = await alice.call("POST", "jobs", body={"name": "b", "cmd": "true"})
    theirs = await bob.call("POST", "jobs", body={"name": "bobs", "cmd": "true"})
    got = await alice.call("GET", "jobs", params={"ids": f"{b['id']},{theirs['id']},99999,{a['id']},{b['id']}"})
    assert [j["id"] for j in got["jobs"]] == [b["id"], a["id"]]
    assert "outputs_count" in got["jobs"][0] and got["next_cursor"] is None  # the list's row format
    for bad in ("", "1,x", "1,,2", "-3", ",".join(["1"] * 501)):
        with pytest.raises(HTTPClientError) as info:
            await alice.call("GET", "jobs", params={"ids": bad})
        assert info.value.code == 400, bad
        assert json.loads(info.value.response.body)["errors"][0]["field"] == "ids"


async def test_a_client_that_goes_away_leaves_no_waiter(alice, manager, jp_serverapp, jp_http_port, jp_auth_header):
    cursor = await start(alice)
    auth = "".join(f"{name}: {value}\r\n" for name, value in jp_auth_header.items())
    with socket.create_connection(("127.0.0.1", jp_http_port)) as sock:
        sock.sendall(f"GET {jp_serverapp.base_url}jupyter-jobs/api/changes?cursor={cursor}&timeout=100 HTTP/1.1\r\n"
                     f"Host: 127.0.0.1:{jp_http_port}\r\n{auth}X-Test-User: alice\r\n\r\n".encode())
        for _ in range(100):
            if manager.changes.waiting:
                break
            await asyncio.sleep(0.05)
        assert manager.changes.waiting == 1
    for _ in range(100):
        if not manager.changes.waiting:
            break
        await asyncio.sleep(0.05)
    assert manager.changes.waiting == 0, "the request of a client that went away still waits"


# -- the feed alone ----------------------------------------------------------------------------------
async def test_changes_from_many_threads_all_arrive_each_job_once():
    feed = ChangeFeed(coalesce=0.05)
    cursor = feed.cursor
    seen: set[int] = set()

    def write(first: int) -> None:
        for job_id in range(first, first + 50):
            feed.notify(job_id, "alice", "", False)
            feed.notify(job_id, "alice", "", job_id % 7 == 0)

    threads = [threading.Thread(target=write, args=(n * 50,)) for n in range(8)]
    waiting = asyncio.ensure_future(feed.wait(cursor, 10, lambda change: True))
    await asyncio.sleep(0.05)
    for thread in threads:
        thread.start()
    for thread in threads:
        await asyncio.to_thread(thread.join)
    while len(seen) < 400:
        answer = await waiting
        ids = [c.job_id for c in answer.changes]
        assert len(ids) == len(set(ids))
        assert all(c.deleted == (c.job_id % 7 == 0) for c in answer.changes)  # each job's latest change
        seen |= set(ids)
        cursor = answer.cursor
        waiting = asyncio.ensure_future(feed.wait(cursor, 1, lambda change: True))
    assert seen == set(range(400))
    assert (await waiting).changes == [] and feed.waiting == 0


async def test_a_cursor_older_than_the_ring_resets_and_one_not_seen_passes():
    feed = ChangeFeed(size=5, coalesce=0)
    old = feed.cursor
    for job_id in range(10):
        feed.notify(job_id, "bob", "", False)
    assert (await feed.wait(old, 5, lambda change: True)).reset
    recent = feed.cursor
    feed.notify(11, "bob", "", False)
    passed = await feed.wait(recent, 0.2, lambda change: change.owner == "alice")
    assert passed.changes == [] and not passed.reset and passed.cursor == feed.cursor
    with pytest.raises(SpecError):
        feed.parse("x-1")


async def test_a_job_is_never_committed_without_its_files(alice, manager):
    """The record and the job's folder appear together (the folder moves in inside the record's transaction):
    a server killed between the two would otherwise leave a job whose files were swept away at restart."""
    seen = []
    tell = manager.store.listener

    def listener(job_id, owner, group, deleted):
        seen.append((manager.jobs_dir / str(job_id) / "code").is_dir())
        tell(job_id, owner, group, deleted)

    manager.store.listener = listener
    try:
        job = await alice.call("POST", "jobs", body={"name": "files", "cmd": "true"})
    finally:
        manager.store.listener = tell
    assert seen and seen[0] is True, "the record was committed before the job's files were in place"
    assert not any(p.name.startswith(".staging-") for p in manager.jobs_dir.iterdir())
    assert (await alice.call("GET", "jobs", str(job["id"])))["name"] == "files"

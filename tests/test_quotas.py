"""Quotas: their configuration, their arithmetic, their pending reasons, and per-group FIFO in a plan."""
import pytest
from traitlets.config import Config

from jupyter_jobs.errors import ConfigError
from jupyter_jobs.models import Allocation, Gpu
from jupyter_jobs.quotas import Limits, Quotas, parse_limits
from jupyter_jobs.runner.capacity import Capacity, Request
from jupyter_jobs.store import Holding, QueueEntry

GPU = Request(1, 512, gpus=1)


def quotas(**settings) -> Quotas:
    return Quotas(config=Config({"Quotas": settings}))


def queued(*entries):
    """{id: QueueEntry} from (id, owner, group, name)."""
    return {job_id: QueueEntry(job_id, "gpu", 0, "", owner, group, name) for job_id, owner, group, name in entries}


def test_limits_are_read_with_sizes_and_checked_at_start():
    assert parse_limits({"gpus": 1, "cpus": 8, "memory": "64GiB"}, "x") == Limits(1, 8.0, 64 * 1024)
    assert parse_limits({"memory_mib": 512}, "x") == Limits(memory_mib=512)
    # As a command line gives them: --Quotas.users=bob='{gpus: 2}', --Quotas.default_user=cpus=1
    assert parse_limits("{gpus: 2, memory: 1GiB}", "x") == Limits(gpus=2, memory_mib=1024)
    assert parse_limits({"cpus": "1"}, "x") == Limits(cpus=1.0)
    with pytest.raises(ConfigError, match=r"Quotas.groups\['team-a'\].memory: '64XB' is not a size"):
        quotas(groups={"team-a": {"memory": "64XB"}})
    with pytest.raises(ConfigError, match=r"Quotas.users\['alice'\]: unknown key 'gpu'; a limit has gpus, cpus"):
        quotas(users={"alice": {"gpu": 2}})
    with pytest.raises(ConfigError, match=r"Quotas.default_user.gpus: 1.5 is not a whole number of GPUs"):
        quotas(default_user={"gpus": 1.5})
    with pytest.raises(ConfigError, match="expected a mapping"):
        quotas(groups={"team-a": 1})
    assert not quotas().enabled
    assert quotas(default_user={"gpus": 1}).enabled


def test_who_gets_which_limits():
    q = quotas(groups={"team-a": {"gpus": 1}}, users={"alice": {"gpus": 2}}, default_user={"cpus": 4},
               default_group={"memory": "1GiB"})
    assert q.of_user("alice") == Limits(gpus=2)
    assert q.of_user("bob") == Limits(cpus=4.0)
    assert q.of_group("team-a") == Limits(gpus=1)
    assert q.of_group("team-b") == Limits(memory_mib=1024)
    assert q.of_group("") == Limits()  # a job of no group has no group quota


def test_a_job_bigger_than_its_quota_could_never_run():
    q = quotas(groups={"team-a": {"gpus": 1}}, users={"alice": {"memory": "1GiB"}})
    assert q.never_fits(Request(1, 512, 2), "bob", "team-a") == (
        "asks for 2 GPUs but group team-a's quota is 1 GPUs (Quotas.groups)")
    assert q.never_fits(Request(1, 2048), "alice", "") == (
        "asks for 2 GiB of memory but alice's quota is 1 GiB of memory (Quotas.users)")
    assert q.never_fits(Request(1, 512, 1), "bob", "team-a") is None


def test_a_group_at_its_quota_waits_and_others_go_ahead():
    q = quotas(groups={"team-a": {"gpus": 1}})
    holding = [Holding(7, "train", "alice", "team-a", Allocation(1, 512, (0,)))]
    cap = Capacity(4, 8192, [Gpu(i) for i in range(3)])
    cap.hold(7, Allocation(1, 512, (0,)))
    gate = q.gate(holding, queued((8, "carol", "team-a", "next"), (9, "bob", "team-b", "other")))
    plan = cap.plan([(8, GPU, 0), (9, GPU, 0)], gate)
    assert plan.reasons == {8: "waiting: your group team-a uses 1 of its 1 GPUs (job 7 'train')"}
    # Job 8 reserved nothing: job 9 of another group takes the next GPU.
    assert plan.starts == [(9, Allocation(1, 512, (1,)))]


def test_a_user_quota_counts_what_this_pass_starts():
    q = quotas(users={"alice": {"gpus": 2}})
    cap = Capacity(4, 8192, [Gpu(i) for i in range(4)])
    gate = q.gate([], queued((1, "alice", "", "a"), (2, "alice", "", "b"), (3, "alice", "", "c")))
    plan = cap.plan([(1, GPU, 0), (2, GPU, 0), (3, GPU, 0)], gate)
    assert [job for job, _ in plan.starts] == [1, 2]
    assert plan.reasons[3] == "waiting: alice uses 2 of their 2 GPUs (jobs 1 'a', 2 'b')"


def test_within_a_held_back_group_the_order_is_kept():
    q = quotas(groups={"team-a": {"cpus": 2}})
    holding = [Holding(5, "big", "alice", "team-a", Allocation(1, 512))]
    gate = q.gate(holding, queued((6, "alice", "team-a", "two"), (7, "carol", "team-a", "one")))
    plan = Capacity(8, 8192, []).plan([(6, Request(2, 512), 0), (7, Request(1, 512), 0)], gate)
    assert plan.starts == []  # job 7 would fit the quota, but job 6 of its group is ahead of it
    assert plan.reasons[6] == "waiting: your group team-a uses 1 of its 2 CPUs, and this job needs 2 (job 5 'big')"
    assert plan.reasons[7] == "waiting: queued behind job 6 of your group team-a, which waits for its quota"


def test_memory_in_the_reason():
    q = quotas(users={"bob": {"memory": "1GiB"}})
    holding = [Holding(3, "etl", "bob", "", Allocation(1, 768))]
    gate = q.gate(holding, queued((4, "bob", "", "more")))
    assert gate.refuse(4, Request(1, 512)) == (
        "waiting: bob uses 768 MiB of their 1 GiB of memory, and this job needs 512 MiB (job 3 'etl')")

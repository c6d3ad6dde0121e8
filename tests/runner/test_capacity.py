"""Capacity accounting: GPU exclusivity, priorities, reservations, pending reasons."""
from jupyter_jobs.models import Allocation, Gpu
from jupyter_jobs.runner.capacity import Capacity, Request

CPU = Request(1, 512)
GPU = Request(1, 512, gpus=1)


def host(gpus=2, cpus=4, max_concurrent=0):
    return Capacity(cpus, 8192, [Gpu(i) for i in range(gpus)], max_concurrent)


def test_a_gpu_is_never_given_to_two_jobs():
    cap = host(gpus=2)
    plan = cap.plan([(1, GPU, 0), (2, GPU, 0), (3, GPU, 0)])
    assert plan.starts == [(1, Allocation(1, 512, (0,))), (2, Allocation(1, 512, (1,)))]
    assert plan.reasons[3] == "waiting for 1 GPU: 2 of 2 in use by jobs 1, 2"
    for job, allocation in plan.starts:
        cap.hold(job, allocation)
    cap.release(1)
    assert cap.plan([(3, GPU, 0)]).starts == [(3, Allocation(1, 512, (0,)))]


def test_multi_gpu_jobs_get_distinct_indices():
    cap = host(gpus=4)
    plan = cap.plan([(1, Request(1, 512, 2), 0), (2, Request(1, 512, 2), 0)])
    gpus = [a.gpus for _, a in plan.starts]
    assert gpus == [(0, 1), (2, 3)]


def test_gpu_type_must_match():
    cap = Capacity(4, 8192, [Gpu(0, "t4"), Gpu(1, "a100")])
    plan = cap.plan([(1, Request(1, 512, 1, "a100"), 0)])
    assert plan.starts[0][1].gpus == (1,)
    assert cap.never_fits(Request(1, 512, 2, "a100")) == "needs 2 a100 GPUs but this server has 1"


def test_never_fits():
    cap = host(gpus=0, cpus=2)
    assert cap.never_fits(Request(1, 512, 1)) == "needs 1 GPU but this server has 0"
    assert cap.never_fits(Request(3, 512)) == "needs 3 CPUs but this server has 2"
    assert "memory" in cap.never_fits(Request(1, 10**6))
    assert cap.never_fits(CPU) is None


def test_a_waiting_job_keeps_what_it_waits_for():
    cap = host(gpus=0, cpus=2)
    cap.hold(10, Allocation(1, 512))
    plan = cap.plan([(1, Request(2, 512), 5), (2, CPU, 0)])
    assert plan.starts == []  # job 2 would fit in the free CPU, but job 1 is ahead of it
    assert plan.reasons[1] == "waiting for 2 CPUs: 1 of 2 in use by job 10"
    assert plan.reasons[2] == "queued behind job 1 (priority 5), which is waiting for resources"


def test_max_concurrent():
    cap = host(max_concurrent=1)
    plan = cap.plan([(1, CPU, 0), (2, CPU, 0)])
    assert [j for j, _ in plan.starts] == [1]
    assert plan.reasons[2] == "waiting for a run slot: 1 of 1 jobs running (max_concurrent) by job 1"


def test_memory_reason():
    cap = Capacity(4, 1024, [])
    cap.hold(7, Allocation(1, 800))
    assert cap.plan([(1, Request(1, 512), 0)]).reasons[1] == "waiting for 512 MiB of memory: 224 MiB free of 1024 by job 7"

"""Capacity accounting: GPU exclusivity, priorities, reservations, pending reasons."""
from jupyter_jobs.models import Allocation, Gpu
from jupyter_jobs.runner.capacity import Capacity, Request, Timing, _ordinal, _span

CPU = Request(1, 512)
GPU = Request(1, 512, gpus=1)


def host(gpus=2, cpus=4, max_concurrent=0):
    return Capacity(cpus, 8192, [Gpu(i) for i in range(gpus)], max_concurrent)


def test_a_gpu_is_never_given_to_two_jobs():
    cap = host(gpus=2)
    plan = cap.plan([(1, GPU, 0), (2, GPU, 0), (3, GPU, 0)])
    assert plan.starts == [(1, Allocation(1, 512, (0,))), (2, Allocation(1, 512, (1,)))]
    assert plan.reasons[3] == "1st in line for a GPU: 2 of 2 in use by jobs 1, 2"
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
    assert plan.reasons[1] == "1st in line for 2 CPUs: 1 of 2 in use by job 10"
    assert plan.reasons[2] == "queued behind job 1 (priority 5), which is waiting for resources"


def test_max_concurrent():
    cap = host(max_concurrent=1)
    plan = cap.plan([(1, CPU, 0), (2, CPU, 0)])
    assert [j for j, _ in plan.starts] == [1]
    assert plan.reasons[2] == "1st in line for a run slot: 1 of 1 jobs running (max_concurrent) by job 1"


def test_memory_reason():
    cap = Capacity(4, 1024, [])
    cap.hold(7, Allocation(1, 800))
    assert cap.plan([(1, Request(1, 512), 0)]).reasons[1] == "1st in line for 512 MiB of memory: 800 of 1024 MiB in use by job 7"


NOW = 1_800_000_000.0


def test_a_waiting_job_says_its_place_in_line_and_what_holds_it():
    cap = host(gpus=1, cpus=4)
    cap.hold(41, Allocation(1, 512, (0,)))
    timing = {41: Timing(started_at=NOW - 12 * 60 - 5, max_runtime=2 * 3600)}
    plan = cap.plan([(50, GPU, 0), (51, CPU, 0), (52, GPU, 0)], timing=timing, now=NOW)
    assert plan.reasons[50] == "1st in line for a GPU: 1 of 1 in use by job 41 (run 12 min of its 2 h)"
    assert plan.reasons[52] == "2nd in line for a GPU: 1 of 1 in use by job 41 (run 12 min of its 2 h)"
    assert [job for job, _ in plan.starts] == [51]  # a CPU job is in no GPU line: it starts


def test_the_place_counts_only_jobs_waiting_for_the_same_kind():
    cap = Capacity(2, 8192, [Gpu(0, "t4"), Gpu(1, "a100")])
    cap.hold(1, Allocation(1, 512, (0,)))
    cap.hold(2, Allocation(1, 512, (1,)))
    t4, a100 = Request(0, 0, 1, "t4"), Request(0, 0, 1, "a100")
    plan = cap.plan([(3, t4, 0), (4, a100, 0), (5, t4, 0), (6, CPU, 0)])
    assert plan.reasons[3].startswith("1st in line for a t4 GPU: 1 of 1 in use by job 1")
    assert plan.reasons[4].startswith("1st in line for 1 a100 GPU: 1 of 1 in use by job 2")
    assert plan.reasons[5].startswith("2nd in line for a t4 GPU")
    assert plan.reasons[6] == "1st in line for a CPU: 2 of 2 in use by jobs 1, 2"


def test_the_holder_named_is_the_one_expected_to_free_it_first():
    cap = host(gpus=2)
    cap.hold(1, Allocation(1, 512, (0,)))
    cap.hold(2, Allocation(1, 512, (1,)))
    # Job 1 has an hour of its 2 h left; job 2, started later, ten minutes of its 20.
    timing = {1: Timing(NOW - 3600, 7200), 2: Timing(NOW - 600, 1200)}
    assert cap.plan([(3, GPU, 0)], timing=timing, now=NOW).reasons[3] == \
        "1st in line for a GPU: 2 of 2 in use by jobs 1, 2 (job 2 has run 10 min of its 20 min)"
    # No max-runtime known: the one that has run longest.
    timing = {1: Timing(NOW - 100), 2: Timing(NOW - 5000)}
    assert cap.plan([(3, GPU, 0)], timing=timing, now=NOW).reasons[3] == \
        "1st in line for a GPU: 2 of 2 in use by jobs 1, 2 (job 2 has run 1 h 23 min)"
    # A known end comes before an unknown one, however long that one has run.
    timing = {1: Timing(NOW - 9000), 2: Timing(NOW - 60, 86400)}
    assert "(job 2 has run 1 min of its 1 d)" in cap.plan([(3, GPU, 0)], timing=timing, now=NOW).reasons[3]


def test_the_reason_stays_the_same_within_a_minute():
    cap = host(gpus=1)
    cap.hold(41, Allocation(1, 512, (0,)))
    timing = {41: Timing(NOW - 5, 7200)}
    at = [cap.plan([(50, GPU, 0)], timing=timing, now=NOW + offset).reasons[50] for offset in (0, 30, 50, 60)]
    assert at[0] == at[1] == at[2] == "1st in line for a GPU: 1 of 1 in use by job 41 (run <1 min of its 2 h)"
    assert at[3].endswith("(run 1 min of its 2 h)")


def test_ordinals_and_spans():
    assert [_ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "101st", "111th"]
    assert [_span(s) for s in (59, 60, 3599, 3600, 5400, 86400, 26 * 3600 + 59)] == [
        "<1 min", "1 min", "59 min", "1 h", "1 h 30 min", "1 d", "1 d 2 h"]

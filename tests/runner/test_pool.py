"""Pool logic with a fake backend (pure scheduling and supervision; real engines are tested elsewhere)."""
import asyncio
import contextlib

from traitlets.config import Config

from jupyter_jobs.manager import JobManager
from jupyter_jobs.runner.backend import Backend, Exit


class GatedBackend(Backend):
    """Starts only when the test opens the gate; its jobs run until stopped."""

    name = "gated"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.gate = asyncio.Event()
        self.starting = asyncio.Event()
        self.stopped: list[int] = []
        self.exits: dict[int, asyncio.Future] = {}

    async def start(self, launch):
        self.starting.set()
        await self.gate.wait()
        self.exits[launch.job.id] = asyncio.get_running_loop().create_future()
        return {"id": launch.job.id, "command": launch.job.spec.cmd}

    async def wait(self, job, handle, on_state=None):
        return await self.exits[handle["id"]]

    async def stop(self, job, handle, grace):
        self.stopped.append(job.id)
        self.exits[handle["id"]].set_result(Exit(143))


@contextlib.asynccontextmanager
async def started(tmp_path):
    config = Config({"Cluster": {"gpus": 0, "cpus": 2, "memory_mib": 4096}})
    manager = JobManager(data_dir=str(tmp_path), backend_class=GatedBackend, config=config)
    await manager.start()
    try:
        yield manager
    finally:
        await manager.stop()


async def test_cancel_while_the_backend_is_starting_the_job(tmp_path):
    async with started(tmp_path) as manager:
        job, _ = await manager.submit({"cmd": "train"}, owner="me")
        await asyncio.wait_for(manager.engine.starting.wait(), 5)
        assert manager.get(job.id).status.value == "Preparing"
        cancelling = asyncio.ensure_future(manager.cancel(job.id, by="me"))
        await asyncio.sleep(0.05)
        manager.engine.gate.set()  # the start completes after the cancel was requested
        done = await asyncio.wait_for(cancelling, 10)
        assert done.status.value == "Cancelled"
        assert manager.engine.stopped == [job.id]


async def test_every_submitted_job_reaches_a_final_state(tmp_path):
    async with started(tmp_path) as manager:
        manager.engine.gate.set()
        jobs = [(await manager.submit({"cmd": f"j{i}"}, owner="me"))[0] for i in range(5)]
        for job in jobs:
            await manager.cancel(job.id)
        assert {manager.get(j.id).status.value for j in jobs} == {"Cancelled"}
        assert manager.pool.capacity.held == {}

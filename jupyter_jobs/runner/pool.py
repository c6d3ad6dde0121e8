"""The runner pool: queues jobs, allocates capacity, and supervises them through a backend.

The pool owns queueing (priority, then FIFO; a job held back by its quota lets other users' and
groups' jobs go ahead, see ``quotas.py``), capacity (CPUs, memory, GPU indices), the
max-runtime deadline, cancellation, retries and the reconcile after a restart. A backend only
runs what it is given.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any, Callable

from traitlets import Float, Int
from traitlets.config import LoggingConfigurable

from .. import workdir
from ..cluster import Cluster
from ..errors import BackendUnavailable, JobNotFound, JobsError, SpecError, storage_error
from ..jobdir import JobDir
from ..models import Allocation, JobRecord, format_duration
from ..pyenv.environments import Environments, read_lock
from ..quotas import Quotas
from ..secrets import Resolved, SecretStore
from ..states import JobStatus
from ..store import JobStore
from .backend import Backend, Exit, Launch
from .capacity import Capacity, Request, Timing
from .identity import RunAs, hand_over


class RunnerPool(LoggingConfigurable):
    """Runs queued jobs on a backend within the host's capacity."""

    max_concurrent = Int(
        0, config=True, help="Most jobs preparing or running at once; 0 means only capacity limits it."
    )
    stop_grace_seconds = Float(
        10.0, config=True,
        help="Seconds a job has to exit after SIGTERM (cancel, max-runtime) before it is killed.",
    )
    queue_scan = Int(1000, config=True, help="How many queued jobs each scheduling pass looks at.")
    #: Finds the system account a job runs as from its owner (``JobManager.run_as_owner``); None: every
    #: job runs as the server does.
    run_as: Callable[[str], RunAs] | None = None
    #: The owners' secrets (``secrets.py``): resolved as each job starts, masked from its log when it ends.
    secrets: SecretStore | None = None

    def setup(
        self, store: JobStore, backend: Backend, cluster: Cluster, jobs_dir: Path,
        notify: Callable[[int], None], environments: Environments | None = None, quotas: Quotas | None = None,
    ) -> None:
        self.store, self.backend, self.cluster = store, backend, cluster
        self.environments = environments
        self.quotas = quotas
        self.jobs_dir = jobs_dir
        self.notify = notify
        self.capacity = Capacity(cluster.total_cpus, cluster.total_memory_mib, cluster.host_gpus, self.max_concurrent)
        self._tasks: dict[int, asyncio.Task] = {}
        self._handles: dict[int, dict[str, Any]] = {}
        self._wake = asyncio.Event()
        #: Jobs stopped in a backend's queue for their queue-timeout, and why.
        self._queue_expired: dict[int, str] = {}
        self._loop_task: asyncio.Task | None = None

    def _spawn(self, coro: Any, name: str) -> asyncio.Task:
        """A task whose failure is logged, never lost silently."""
        task = asyncio.create_task(coro, name=name)

        def done(task: asyncio.Task) -> None:
            if not task.cancelled() and task.exception() is not None:
                self.log.error("jupyter-jobs: %s failed", name, exc_info=task.exception())

        task.add_done_callback(done)
        return task

    def folder(self, job_id: int) -> JobDir:
        return JobDir(self.jobs_dir / str(job_id))

    # -- life cycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Find the jobs a previous server left running, then start scheduling."""
        loop = asyncio.get_running_loop()
        self.backend.availability_changed = lambda: loop.call_soon_threadsafe(self.wake)
        if self.quotas is not None and self.quotas.enabled and self.backend.schedules_itself:
            self.log.warning("jupyter-jobs: Quotas are not enforced on %s, whose scheduler decides what runs; "
                             "use its own limits", self.backend.name)
        await self._reconcile()
        if self.run_as is None:  # warm interpreters run as the server: no job that runs as its owner takes one
            self.backend.warm_up()
        self._loop_task = asyncio.create_task(self._schedule_forever(), name="jupyter-jobs-scheduler")
        self.wake()

    async def stop(self) -> None:
        """Stop supervising. Jobs keep running; the next start finds them again."""
        tasks = [t for t in [self._loop_task, *self._tasks.values()] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def wake(self) -> None:
        self._wake.set()

    async def _schedule_forever(self) -> None:
        while True:
            deadline = self.store.next_queue_deadline()  # a queue-timeout to enforce, even if nothing wakes us
            if deadline is None:
                await self._wake.wait()
            else:
                # A deadline already past is a job being taken out of a scheduler's queue: look again in a second.
                wait = deadline - time.time()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait if wait > 0 else 1.0)
            self._wake.clear()
            try:
                self._expire_queued()
                self._schedule()
            except Exception:  # never let one bad pass stop the pool
                self.log.exception("jupyter-jobs: scheduling pass failed")

    def _schedule(self) -> None:
        down = self.backend.unavailable()
        if down:  # queued jobs wait, and say why; running ones keep their resources
            message = f"waiting: {down}"
            waiting = {e.id: message for e in self.store.pending(self.queue_scan) if e.message != message}
            self.store.set_messages(waiting)
            for job_id in waiting:
                self.notify(job_id)
            return
        if self.backend.schedules_itself:
            for entry in self.store.pending(self.queue_scan):
                if entry.id not in self._tasks:
                    self._tasks[entry.id] = self._spawn(self._submit(self.store.get(entry.id)), f"job {entry.id}")
            return
        queue, jobs = [], {}
        for entry in self.store.pending(self.queue_scan):
            try:
                queue.append((entry.id, Request.of(self.cluster.instance_type(entry.instance_type)), entry.priority))
                jobs[entry.id] = entry
            except SpecError as exc:  # its instance type was removed from the configuration
                self._end(self.store.get(entry.id), JobStatus.FAILED, f"cannot be scheduled: {exc.message}")
        holding = self.store.holding() if queue else []
        gate = self.quotas.gate(holding, jobs) if self.quotas is not None and self.quotas.enabled else None
        timing = {h.id: Timing(h.started_at, h.max_runtime) for h in holding}
        plan = self.capacity.plan(queue, gate, timing, time.time())
        for job_id, allocation in plan.starts:
            self.capacity.hold(job_id, allocation)
            job = self.store.transition(
                job_id, JobStatus.PREPARING, preparing_at=time.time(), allocation=allocation,
                backend=self.backend.name, message=f"Preparing on {self.backend.name}",
            )
            self.notify(job_id)
            if job.damaged:
                self._end(job, JobStatus.FAILED, f"Failed: its stored record is damaged ({job.damaged}); submit it again")
                continue
            self._tasks[job_id] = self._spawn(self._run(job), f"job {job_id}")
        changed = {job_id: reason for job_id, reason in plan.reasons.items() if jobs[job_id].message != reason}
        self.store.set_messages(changed)
        for job_id in changed:
            self.notify(job_id)

    def _expire_queued(self) -> None:
        """Fail the jobs that waited in the queue past their ``queue-timeout``, saying what they waited for."""
        for job_id in self.store.queue_expired(time.time()):
            job = self.store.get(job_id)
            limit = format_duration(job.spec.queue_timeout or 0)
            reason = f"waited longer than its queue-timeout of {limit} while Pending ({job.message or 'queued'})"
            handle = self._handles.get(job_id)
            if handle is None:
                self._end(job, JobStatus.FAILED, f"Failed: {reason}")
            elif job_id not in self._queue_expired:  # queued by the backend's scheduler (Slurm): stop it there
                self._queue_expired[job_id] = reason
                self.folder(job_id).say(f"{reason}; stopping it")
                self._spawn(self._stop(job, handle), f"stop job {job_id}")

    # -- one job -----------------------------------------------------------------------------
    async def _run(self, job: JobRecord) -> None:
        folder = self.folder(job.id)
        try:
            launch = self._launch(job, folder)
            await self.backend.prepare(launch)
            self._record_environment(job, launch)
            job = self.store.get(job.id)
            if job.cancel_requested:
                self._end(job, JobStatus.CANCELLED, "Cancelled before it started")
                return
            launch.job = job
            await asyncio.to_thread(self._prepare_files, launch)
            handle = await self.backend.start(launch)
        except asyncio.CancelledError:
            raise
        except BackendUnavailable as exc:  # not the job's fault: it waits for the engine, attempt kept
            self.capacity.release(job.id)
            self._tasks.pop(job.id, None)
            self.store.transition(job.id, JobStatus.PENDING, preparing_at=None, allocation=Allocation(),
                                  message=f"queued again: {exc.message}")
            folder.say(f"could not start: {exc.message}; queued again")
            self.notify(job.id)
            asyncio.get_running_loop().call_later(1.0, self.wake)  # not at once: the engine is down
            return
        except Exception as exc:
            message = exc.message if isinstance(exc, JobsError) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, JobsError):
                self.log.exception("jupyter-jobs: job %s could not start", job.id)
            self._fail_or_retry(self.store.get(job.id), f"could not start: {message}", None)
            return
        # It runs now: from here on it is never "could not start" (that would start it twice).
        job = await self._record_running(job.id, handle)
        if job is None:
            return
        self.notify(job.id)
        folder.say(f"Running attempt {job.attempt} on {self.backend.name}: {job.command}")
        await self._supervise(job, handle)

    def _launch(self, job: JobRecord, folder: JobDir) -> Launch:
        """What the backend needs to prepare and start ``job`` (its lock read from its folder, its account
        looked up again, its secrets read: one removed since the submission fails the job, saying so)."""
        resolved = self.secrets.resolve(job) if self.secrets is not None else Resolved()
        return Launch(
            job, folder, [self.cluster.dataset(d.name) for d in job.spec.datasets],
            self.cluster.instance_type(job.instance_type), report=lambda text: self._report(job.id, text),
            python=read_lock(folder.root) if job.environment.get("hash") else None, environments=self.environments,
            run_as=self.run_as(job.owner) if self.run_as is not None else None,
            volumes=[self.cluster.volume(v.name) for v in job.spec.volumes],
            secrets=resolved.env, registry=resolved.registry,
        )

    @staticmethod
    def _prepare_files(launch: Launch) -> None:
        """The working dir's folders for declared outputs, then (a job that runs as its owner) its files
        handed over to the owner's account."""
        workdir.prepare(launch.folder, launch.job.spec)
        if launch.run_as is not None:
            hand_over(launch.folder, launch.run_as)

    def _record_environment(self, job: JobRecord, launch: Launch) -> None:
        if launch.environment_outcome:
            self.store.update(job.id, environment={**job.environment, **launch.environment_outcome})
            self.notify(job.id)

    async def _record_running(self, job_id: int, handle: dict[str, Any]) -> JobRecord | None:
        """Record that a job runs, waiting out a full database (the job keeps running meanwhile);
        None when it cannot be recorded at all (it is stopped then)."""
        delay = 0.5
        while True:
            try:
                current = self.store.get(job_id)
                return self.store.transition(
                    job_id, JobStatus.RUNNING, started_at=time.time(), handle=handle,
                    command=handle.get("command", current.command), message="Running",
                )
            except Exception as exc:
                if storage_error(exc) is None:
                    self.log.exception("jupyter-jobs: job %s runs but could not be recorded; stopping it", job_id)
                    with contextlib.suppress(Exception):
                        await self.backend.stop(self.store.get(job_id), handle, self.stop_grace_seconds)
                    with contextlib.suppress(Exception):
                        self._end(self.store.get(job_id), JobStatus.UNKNOWN,
                                  f"Unknown: it started but could not be recorded ({exc}); it was stopped")
                    return None
                self.log.error("jupyter-jobs: job %s runs; recording it waits for space: %s", job_id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _submit(self, job: JobRecord) -> None:
        """Hand a job to a scheduler that queues it itself; it stays Pending until it runs."""
        # Submitted before a restart (perhaps just before its handle reached the database): follow it.
        handle = job.handle or await self.backend.recover(job, self.folder(job.id))
        if handle:
            self.store.update(job.id, handle=handle)
            await self._supervise(self.store.get(job.id), handle)
            return
        try:
            launch = self._launch(job, self.folder(job.id))
            await self.backend.prepare(launch)
            self._record_environment(job, launch)
            await asyncio.to_thread(self._prepare_files, launch)
            handle = await self.backend.start(launch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            message = exc.message if isinstance(exc, JobsError) else f"{type(exc).__name__}: {exc}"
            self._fail_or_retry(self.store.get(job.id), f"could not start: {message}", None)
            return
        self.store.update(job.id, handle=handle, backend=self.backend.name, command=handle.get("command", job.command),
                          message=f"submitted to {self.backend.name}")
        self.notify(job.id)
        await self._supervise(self.store.get(job.id), handle)

    def _on_state(self, job_id: int, state: str, detail: str) -> None:
        job = self.store.get(job_id)
        if state == "pending" and job.status is JobStatus.PENDING and job.message != detail:
            self._report(job_id, detail)
        elif state == "running" and job.status is JobStatus.PENDING:
            now = time.time()
            self.store.transition(job_id, JobStatus.PREPARING, preparing_at=now, backend=self.backend.name)
            self.store.transition(job_id, JobStatus.RUNNING, started_at=now, message=f"Running{detail}")
            self.folder(job_id).say(f"Running attempt {job.attempt} on {self.backend.name}{detail}: {job.command}")
            self.notify(job_id)

    async def _supervise(self, job: JobRecord, handle: dict[str, Any]) -> None:
        self._handles[job.id] = handle
        on_state = (lambda state, detail: self._on_state(job.id, state, detail)) if self.backend.schedules_itself else None
        waiter = asyncio.ensure_future(self.backend.wait(job, handle, on_state=on_state))
        if self.store.get(job.id).cancel_requested:  # cancelled while it was being started
            asyncio.ensure_future(self.stop_job(job.id))
        timed_out = False
        try:
            limit = job.spec.max_runtime
            while limit and not waiter.done():
                started = self.store.get(job.id).started_at  # None while a scheduler still queues it
                remaining = (started + limit - time.time()) if started else 1.0
                done, _ = await asyncio.wait({waiter}, timeout=max(0.0, remaining))
                if done or not started or time.time() < started + limit:
                    continue
                if not self.store.get(job.id).cancel_requested:
                    timed_out = True
                    self.folder(job.id).say(f"max-runtime of {format_duration(limit)} reached; stopping the job")
                    await self._stop(job, handle)
                break
            exit = await waiter
        except asyncio.CancelledError:
            waiter.cancel()
            raise
        except Exception as exc:
            self.log.exception("jupyter-jobs: lost track of job %s", job.id)
            exit = Exit(None, f"the backend lost track of it: {exc}", lost=True)
            with contextlib.suppress(Exception):  # whatever it still runs must not keep its GPU
                await self.backend.stop(job, handle, self.stop_grace_seconds)
        finally:
            self._handles.pop(job.id, None)
        await self._settle(job.id, exit, timed_out)

    async def _settle(self, job_id: int, exit: Exit, timed_out: bool) -> None:
        """Record how a job ended. A full disk or database is waited out (the job stays Running
        with its exit known, and is recorded once space is back); any other failure is retried,
        then the job ends as Unknown saying why. A supervisor never dies silently."""
        delay, failures = 0.5, 0
        while True:
            try:
                await self._finish(job_id, exit, timed_out)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                try:
                    if self.store.get(job_id).status.is_terminal():
                        return
                except JobNotFound:
                    return
                except Exception:  # the database itself is refusing: wait below
                    pass
                full = storage_error(exc) is not None
                self.log.error("jupyter-jobs: could not record the end of job %s (try %d, exit %s): %s",
                               job_id, failures, exit.code, exc, exc_info=not full)
                if not full and failures >= 3:
                    with contextlib.suppress(Exception):
                        self._end(self.store.get(job_id), JobStatus.UNKNOWN,
                                  f"Unknown: it ended (exit {exit.code}) but its end could not be recorded: {exc}")
                        return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _finish(self, job_id: int, exit: Exit, timed_out: bool) -> None:
        job = self.store.get(job_id)
        folder = self.folder(job_id)
        try:
            await asyncio.to_thread(workdir.collect, folder, job.spec)  # outputs written relative to the working dir
            await self.backend.collect(job, folder)
        except Exception:
            self.log.exception("jupyter-jobs: collecting outputs of job %s failed", job_id)
        if self.secrets is not None:  # before its last line can reach the job's message
            await asyncio.to_thread(self.secrets.scrub, job, [folder.log, folder.displays])
        missing = [o.path for o in job.spec.outputs if not await asyncio.to_thread(folder.has_output, o.path)]
        outputs = await asyncio.to_thread(folder.list_outputs)
        self.store.update(job_id, outputs=outputs, exit_code=exit.code)
        job = self.store.get(job_id)
        expired = self._queue_expired.pop(job_id, None)
        if job.status is JobStatus.PENDING and exit.code is not None and not (job.cancel_requested or expired):
            self._on_state(job_id, "running", "")  # it ran between two looks at the scheduler
            job = self.store.get(job_id)
        if job.cancel_requested:
            self._end(job, JobStatus.CANCELLED, "Cancelled")
        elif expired:
            self._end(job, JobStatus.FAILED, f"Failed: {expired}", exit_code=exit.code)
        elif timed_out:  # stopped for it (its status may be lost with the processes killed)
            limit = format_duration(job.spec.max_runtime or 0)
            self._fail_or_retry(job, f"ran past its max-runtime of {limit} and was stopped", exit.code)
        elif exit.lost:
            self._end(job, JobStatus.UNKNOWN, f"Unknown: {exit.detail}")
        elif exit.code is None:  # refused by the backend before it ran
            self._fail_or_retry(job, exit.detail, None)
        elif exit.code == 0 and not missing:
            await asyncio.to_thread(workdir.warn_undeclared, folder)
            self._end(job, JobStatus.SUCCEEDED, "Succeeded")
        elif exit.code == 0:
            self._fail_or_retry(job, f"exited 0 but did not write its outputs: {', '.join(missing)}", 0)
        else:
            detail = f" ({exit.detail})" if exit.detail else ""
            tail = folder.tail_line()
            last = f"; last line: {tail}" if tail else ""
            self._fail_or_retry(job, f"exited with code {exit.code}{detail}{last}", exit.code)

    def _fail_or_retry(self, job: JobRecord, message: str, exit_code: int | None) -> None:
        if job.attempt <= job.spec.retries and not job.cancel_requested:
            total = job.spec.retries + 1
            self.folder(job.id).say(f"attempt {job.attempt} of {total} failed: {message}; retrying")
            self.capacity.release(job.id)
            # The next attempt must not be mistaken for this one after a restart.
            for name in ("handle.json", "launch.json"):
                (self.folder(job.id).run / name).unlink(missing_ok=True)
            fields = dict(
                attempt=job.attempt + 1, exit_code=exit_code, handle={},
                message=f"retrying (attempt {job.attempt + 1} of {total}) after: {message}",
            )
            self._tasks.pop(job.id, None)
            if job.status is JobStatus.PENDING:  # it never ran (a scheduler refused or dropped it)
                self.store.update(job.id, **fields)
            else:
                self.store.transition(job.id, JobStatus.PENDING, preparing_at=None, started_at=None,
                                      allocation=Allocation(), **fields)
            self.notify(job.id)
            self.wake()
            return
        self._end(job, JobStatus.FAILED, f"Failed: {message}", exit_code=exit_code)

    def _end(self, job: JobRecord, status: JobStatus, message: str, **fields: Any) -> None:
        self.folder(job.id).say(message)
        self.store.transition(job.id, status, finished_at=time.time(), message=message, **fields)
        self.capacity.release(job.id)
        self._tasks.pop(job.id, None)
        self.notify(job.id)
        self.wake()

    def _report(self, job_id: int, message: str) -> None:
        self.store.update(job_id, message=message)
        self.notify(job_id)

    # -- actions -----------------------------------------------------------------------------
    def cancel_pending(self, job: JobRecord, message: str) -> None:
        """Cancel a job that has not started (nothing to stop)."""
        self._end(job, JobStatus.CANCELLED, message)

    async def stop_job(self, job_id: int) -> None:
        """Stop a preparing or running job; its supervisor records it as Cancelled."""
        handle = self._handles.get(job_id)
        if handle is not None:
            await self._stop(self.store.get(job_id), handle)

    async def _stop(self, job: JobRecord, handle: dict[str, Any]) -> None:
        """Stop a job. While its engine does not answer (a Docker daemon restarting), the job
        keeps its resources and the stop is sent again until the engine answers or it has ended."""
        try:
            await self.backend.stop(job, handle, self.stop_grace_seconds)
        except BackendUnavailable as exc:
            self.folder(job.id).say(f"cannot stop it now ({exc.message}); trying again until it can")
            self._spawn(self._stop_later(job, handle), f"stop job {job.id}")

    async def _stop_later(self, job: JobRecord, handle: dict[str, Any]) -> None:
        while self._handles.get(job.id) is handle:  # still running and supervised
            await asyncio.sleep(1.0)
            try:
                await self.backend.stop(job, handle, self.stop_grace_seconds)
                return
            except BackendUnavailable:
                continue

    # -- restart -----------------------------------------------------------------------------
    async def _reconcile(self) -> None:
        active = self.store.active()
        for job in active:
            try:
                await self._adopt(job)
            except Exception as exc:  # one job that cannot be followed never stops the others
                self.log.exception("jupyter-jobs: job %s could not be followed after the restart", job.id)
                with contextlib.suppress(Exception):
                    self._end(self.store.get(job.id), JobStatus.UNKNOWN,
                              f"Unknown: the server restarted and could not follow it again ({type(exc).__name__}: {exc})")
        with contextlib.suppress(Exception):
            known = {job.id for job in active}
            for removed in await self.backend.remove_orphans(known):
                self.log.info("jupyter-jobs: removed %s", removed)

    async def _adopt(self, job: JobRecord) -> None:
        """Follow again one job a previous server left unfinished."""
        if job.backend and job.backend != self.backend.name and job.status is not JobStatus.PENDING:
            # Started by another backend (the configuration changed): it may well run on there.
            # Keep its resources, so nothing is started on its GPUs, and leave it as it is.
            self.capacity.hold(job.id, job.allocation)
            self.log.warning("jupyter-jobs: job %s runs on %s, not on this server's %s backend; it is not "
                             "followed until that backend is configured again", job.id, job.backend, self.backend.name)
            return
        if job.damaged:
            if job.handle:  # stop what it may still run: it cannot be followed
                with contextlib.suppress(Exception):
                    await self.backend.stop(job, job.handle, self.stop_grace_seconds)
            raise ValueError(f"its stored record is damaged: {job.damaged}")
        if job.status is JobStatus.PENDING:
            if job.handle and self.backend.schedules_itself:  # queued in the scheduler
                self._tasks[job.id] = self._spawn(self._supervise(job, job.handle), f"job {job.id}")
            return
        folder = self.folder(job.id)
        handle = job.handle
        if job.status is JobStatus.PREPARING:
            handle = await self.backend.recover(job, folder)
            if not handle:
                self.store.transition(
                    job.id, JobStatus.PENDING, preparing_at=None, allocation=Allocation(),
                    message="queued again: the server restarted while it was being prepared",
                )
                return
            job = self.store.transition(job.id, JobStatus.RUNNING, started_at=time.time(), handle=handle)
        self.capacity.hold(job.id, job.allocation)
        folder.say("the server restarted; following this job again")
        self._tasks[job.id] = self._spawn(self._supervise(job, handle), f"job {job.id}")

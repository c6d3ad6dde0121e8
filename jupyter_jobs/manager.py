"""JobManager: the one entry point for job operations, used by the REST handlers and the CLI."""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import getpass
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any, AsyncIterator, Mapping

from jupyter_core.paths import jupyter_data_dir
from traitlets import Bool, CaselessStrEnum, Float, Instance, Int, Set, Type, Unicode, Union, default
from traitlets.config import LoggingConfigurable

from . import __version__, jobside
from .access import Access
from .blobs import BlobStore
from .ceilings import RuntimeLimits
from .changes import ChangeFeed
from .cluster import Cluster
from .errors import BackendUnavailable, Conflict, InvalidTransition, JobNotFound, SpecError
from .jobdir import (
    SNAPSHOT_FILE,
    STAGING_PREFIX,
    JobDir,
    copy_for_rerun,
    copy_inputs,
    highest_job_folder,
    measure_inputs,
    remove_staging_leftovers,
)
from .models import JobRecord, JobSpec
from .pyenv.environments import Environments, read_lock, write_lock
from .quotas import Quotas
from .retention import Retention
from .runner.backend import Backend
from .runner.capacity import Request
from .runner.identity import RunAs
from .runner.local import LocalBackend
from .runner.pool import RunnerPool
from .schedules import Schedules
from .spec import apply_overrides, check_manifest, referenced_vars
from .spec.foreign import to_native
from .spec.limits import check_short_text
from .states import JobStatus, parse_status
from .secrets import SecretStore
from .store import JobStore, parse_id
from .volumes import volumes_for

LOG_CHUNK = 64 * 1024
#: Longest a follower waits before looking for new log bytes (a status change wakes it sooner).
LOG_POLL_SECONDS = 0.05


def server_user() -> str:
    """The account this server (or CLI) runs as, which owns single-user jobs."""
    return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()


class JobManager(LoggingConfigurable):
    """Submits, lists, cancels, reruns and deletes jobs; owns the store and the runner pool."""

    data_dir = Unicode(
        config=True, help="Folder of the job database and job folders (default: <jupyter data dir>/jupyter_jobs)."
    )
    db_path = Unicode(config=True, help="SQLite file of job records (default: <data_dir>/jobs.sqlite).")
    backend = CaselessStrEnum(
        ["auto", "local", "docker", "slurm"], "auto", config=True,
        help="Where jobs run: 'docker' (containers), 'local' (processes on this host), 'slurm' (a Slurm "
        "cluster, through sbatch/squeue/scancel), or 'auto': Docker when a daemon answers (DOCKER_HOST "
        "or the default socket), else local.",
    )
    backend_class = Type(
        default_value=None, klass=Backend, allow_none=True, config=True,
        help="A custom Backend subclass; overrides `backend` when set.",
    )
    max_input_bytes = Int(
        1024**3, config=True, help="Most bytes of inputs one job may ship (413 past it)."
    )
    root_dir = Unicode(".", config=True, help="Folder that inputs are relative to (the server's root_dir).")
    read_server_files = Bool(
        True, config=True,
        help="Whether a job's inputs may be read from root_dir (base_dir). False for the shared JupyterHub "
        "service, which reads no one's files: they are uploaded (the per-user forwarder and the CLI do).",
    )
    admin_users = Set(
        Unicode(), config=True,
        help="Users who may see and act on every job (others see only their own); see docs/operators.md.",
    )
    run_as_owner = Bool(
        False, config=True,
        help="Run each job as its owner's system account (uid, gid and groups of the user named like the "
        "job's owner), never as the server's. For a server that runs as root and serves many users (the "
        "JupyterHub service); an owner with no account cannot submit. See docs/operators.md.",
    )
    max_runtime_ceiling = Union(
        [Float(), Unicode()], default_value="24h", allow_none=True, config=True,
        help="The longest max-runtime a job may ask for (\"24h\", \"2d\" or seconds), as PrimeHub's 24-hour "
        "limit; a spec asking for more is refused at submit. 0 or None: no ceiling. See ceilings.py.",
    )
    default_max_runtime = Union(
        [Float(), Unicode()], default_value=None, allow_none=True, config=True,
        help="The max-runtime of a job whose spec names none (\"8h\" or seconds). None (default): the ceiling, "
        "so every job has a limit, as on PrimeHub; 0 with no ceiling: none.",
    )
    cluster = Instance(Cluster)
    pool = Instance(RunnerPool)
    retention = Instance(Retention)
    quotas = Instance(Quotas)
    environments = Instance(Environments)
    schedules = Instance(Schedules)

    @default("data_dir")
    def _default_data_dir(self) -> str:
        return os.path.join(jupyter_data_dir(), "jupyter_jobs")

    @default("db_path")
    def _default_db_path(self) -> str:
        return os.path.join(self.data_dir, "jobs.sqlite")

    @default("cluster")
    def _default_cluster(self) -> Cluster:
        return Cluster(parent=self)

    @default("pool")
    def _default_pool(self) -> RunnerPool:
        return RunnerPool(parent=self)

    @default("quotas")
    def _default_quotas(self) -> Quotas:
        return Quotas(parent=self)

    @default("schedules")
    def _default_schedules(self) -> Schedules:
        return Schedules(parent=self, log=self.log)

    @default("retention")
    def _default_retention(self) -> Retention:
        return Retention(parent=self, log=self.log)

    @default("environments")
    def _default_environments(self) -> Environments:
        return Environments(self.data_dir, parent=self, log=self.log)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._created = time.time()
        self.jobs_dir = Path(self.data_dir) / "jobs"
        self._make_private_dirs()
        self.cluster.load()
        self.runtime_limits = RuntimeLimits.from_settings(self.max_runtime_ceiling, self.default_max_runtime)
        self.store = JobStore(self.db_path)
        self.changes = ChangeFeed()
        self.store.listener = self.changes.notify
        self.blobs = BlobStore(Path(self.data_dir) / "blobs")
        self._waiters: dict[int, list[asyncio.Future]] = defaultdict(list)
        self._lock_file: Any = None
        self.started = False
        #: Why jobs cannot run now (backend down, data dir held by another runner); None when they can.
        self.unavailable: str | None = None
        #: True while the engine (a Docker daemon, Slurm) did not answer at start: it is tried again.
        self.engine_down = False
        self._retry_task: asyncio.Task | None = None
        self._retention_task: asyncio.Task | None = None
        self._housekeeping = True
        try:
            self.engine = self._make_backend()
        except BackendUnavailable as exc:
            self.log.error("jupyter-jobs: %s", exc.message)
            self.unavailable = exc.message
            self.engine_down = True
            self.engine = LocalBackend(parent=self, log=self.log, server_id=self._server_id(),
                                       jobside_dir=str(self._jobside()))
        self.environments.in_use = self._environments_in_use
        self.environments.removed = lambda hashes: self.engine.environments_removed(hashes)
        self.pool.setup(self.store, self.engine, self.cluster, self.jobs_dir, self._notify, self.environments,
                        self.quotas)
        self.pool.run_as = RunAs.of if self.run_as_owner else None
        self.secrets = SecretStore(Path(self.data_dir) / "secrets")
        self.pool.secrets = self.secrets
        self.schedules.setup(self)
        self.retention.setup(self.store, self.jobs_dir, self._notify)

    def _make_private_dirs(self) -> None:
        """The data dir and its ``jobs/`` folder, readable by this server's account only (0700). Jobs that run
        as their owners must reach their own folders and the job-side package: there both are 0711 (entered,
        never listed), and each job's folder keeps what is in it from other users (:func:`hand_over`)."""
        mode = 0o711 if self.run_as_owner else 0o700
        for path in (Path(self.data_dir), self.jobs_dir):
            path.mkdir(mode=mode, parents=True, exist_ok=True)
            info = path.stat()
            if info.st_uid == os.geteuid() and info.st_mode & 0o777 != mode:
                os.chmod(path, mode)

    def single_user(self) -> str:
        """The one user of a single-user server (its account), or '' for a team's shared pool, where
        no user is the server's own."""
        return "" if self.run_as_owner else server_user()

    def _jobside(self) -> Path:
        """The job-side package, copied under the data dir (shared with Slurm's nodes) for jobs' PYTHONPATH."""
        return jobside.install(self.data_dir)

    def _environments_in_use(self) -> set[str]:
        """Hashes of the environments of jobs not ended yet (never pruned)."""
        return {job.environment["hash"] for job in self.store.active() if job.environment.get("hash")}

    def _make_backend(self) -> Backend:
        klass = self.backend_class
        if klass is None:
            choice = self.backend
            if choice == "auto":
                from .runner.docker import docker_available

                choice = "docker" if docker_available() else "local"
                last = self._last_backend()
                if choice != last and last == "docker" and self.store.active():
                    # Never run as host processes what was queued for, or runs in, containers.
                    raise BackendUnavailable(
                        "this server's unfinished jobs are Docker jobs and the Docker daemon does not answer; "
                        "start it (or set JobManager.backend = 'local' to run them on this host)"
                    )
            if choice == "docker":
                from .runner.docker import DockerBackend

                klass = DockerBackend
            elif choice == "slurm":
                from .runner.slurm import SlurmBackend

                klass = SlurmBackend
            else:
                klass = LocalBackend
        return klass(parent=self, log=self.log, server_id=self._server_id(), jobside_dir=str(self._jobside()))

    def _last_backend(self) -> str:
        """The backend that ran this data dir's jobs last ('' for a new one)."""
        try:
            return (Path(self.data_dir) / "backend").read_text().strip()
        except OSError:
            return ""

    def _server_id(self) -> str:
        """A stable id of this data dir, used to label what this server starts in shared engines."""
        path = Path(self.data_dir) / "server-id"
        if not path.exists():
            path.write_text(uuid.uuid4().hex[:12])
        return path.read_text().strip()

    # -- life cycle --------------------------------------------------------------------------
    async def start(self, housekeeping: bool = True) -> None:
        """Take the runner lock of ``data_dir`` and start the pool (reconciling first). Whatever
        fails, the server then says why jobs cannot run: never "available" with no pool behind it.
        ``housekeeping``: also run retention's passes (a server does; a one-off CLI command does not,
        so that ``jupyter jobs gc --dry-run`` without a server removes nothing)."""
        self._housekeeping = housekeeping
        try:
            await self._start()
        except BackendUnavailable:
            raise
        except Exception as exc:
            self.log.exception("jupyter-jobs: could not start")
            self.unavailable = f"jupyter-jobs could not start ({type(exc).__name__}: {exc}); see the server log"
            raise BackendUnavailable(self.unavailable) from exc

    async def _start(self) -> None:
        if self.unavailable:
            raise BackendUnavailable(self.unavailable)
        self._lock_file = open(Path(self.data_dir) / "runner.lock", "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.seek(0)
            owner = self._lock_file.read().strip() or "another process"
            self._lock_file.close()
            self._lock_file = None
            self.unavailable = (
                f"another jupyter-jobs runner ({owner}) is using {self.data_dir}; stop it or set "
                "JobManager.data_dir to another folder"
            )
            raise BackendUnavailable(self.unavailable)
        self._lock_file.seek(0)
        self._lock_file.truncate()
        self._lock_file.write(f"pid {os.getpid()}")
        self._lock_file.flush()
        await asyncio.to_thread(self._tidy_jobs_dir)
        (Path(self.data_dir) / "backend").write_text(self.engine.name)
        await self.pool.start()
        self.schedules.start()
        self.started = True
        if self._housekeeping and self._retention_task is None:  # after the reconcile: statuses are current when it first looks
            self._retention_task = asyncio.ensure_future(self.retention.run_periodically())

    def _tidy_jobs_dir(self) -> None:
        """Remove staging folders a killed server left, and make sure new job ids never name a
        folder that exists (a damaged or replaced database must not hand out an old job's id)."""
        # Only what an earlier server left: a submission of this one may be staging now.
        for removed in remove_staging_leftovers(self.jobs_dir, before=self._created):
            self.log.info("jupyter-jobs: removed %s, left by a submission that was interrupted", removed)
        highest = highest_job_folder(self.jobs_dir)
        if self.store.reserve_ids_through(highest):
            self.log.warning("jupyter-jobs: job folders up to %d exist beyond the database's ids; new jobs start "
                             "after them", highest)

    def start_when_available(self, interval: float = 5.0) -> None:
        """The engine did not answer at start: try it again every ``interval`` seconds, and start
        the pool (following the jobs it runs again) as soon as it answers."""
        if self.engine_down and self._retry_task is None:
            self._retry_task = asyncio.ensure_future(self._retry_engine(interval))

    async def _retry_engine(self, interval: float) -> None:
        while self.engine_down:
            await asyncio.sleep(interval)
            try:
                engine = await asyncio.to_thread(self._make_backend)
            except BackendUnavailable as exc:
                self.unavailable = exc.message
                continue
            except Exception:  # keep trying: a surprise must not end the retries silently
                self.log.exception("jupyter-jobs: the backend could not be made")
                continue
            self.log.info("jupyter-jobs: the %s backend answers now; starting", engine.name)
            self.engine, self.engine_down, self.unavailable = engine, False, None
            self.pool.setup(self.store, engine, self.cluster, self.jobs_dir, self._notify, self.environments,
                            self.quotas)
            try:
                await self.start(self._housekeeping)
            except BackendUnavailable as exc:
                self.log.error("jupyter-jobs: jobs cannot run: %s", exc.message)
        self._retry_task = None

    async def stop(self) -> None:
        if self._retry_task is not None:
            self._retry_task.cancel()
            self._retry_task = None
        await self.schedules.stop()
        if self._retention_task is not None:
            self._retention_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention_task
            self._retention_task = None
        await self.pool.stop()
        self.engine.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        self.store.close()
        self.started = False

    # -- change notification -----------------------------------------------------------------
    def _notify(self, job_id: int) -> None:
        for future in self._waiters.pop(job_id, []):
            if not future.done():
                future.set_result(None)

    def notify_log(self, job_id: int) -> None:
        """A backend wrote to the job's log: wake its followers now rather than at their next poll."""
        self._notify(job_id)

    async def wait_change(self, job_id: int, timeout: float) -> None:
        """Return when ``job_id`` changes, or after ``timeout`` seconds."""
        future = asyncio.get_running_loop().create_future()
        self._waiters[job_id].append(future)
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            waiters = self._waiters.get(job_id)
            if waiters and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._waiters[job_id]

    async def wait_until_done(self, job_id: int, timeout: float | None = None) -> JobRecord:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            job = self.store.get(job_id)
            if job.status.is_terminal():
                return job
            if deadline is not None and loop.time() >= deadline:
                return job
            await self.wait_change(job_id, 1.0 if deadline is None else min(1.0, max(0.0, deadline - loop.time())))

    # -- queries -----------------------------------------------------------------------------
    def get(self, job_id: int) -> JobRecord:
        return self.store.get(job_id)

    def list(self, *, status: str | None = None, owner: str | None = None, text: str | None = None,
             label: list[str] | str | None = None, cursor: str | None = None, limit: int = 50,
             group: str | None = None, schedule: int | str | None = None,
             visible_to: tuple[str, Any] | None = None) -> tuple[list[JobRecord], str | None]:
        """One page of jobs; ``label`` is ``key=value`` (or a list of them, all of which must hold);
        ``visible_to`` (``(user, groups)``, from :meth:`Access.list_scope`) limits it to what they may see."""
        labels = []
        for item in [label] if isinstance(label, str) else (label or []):
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise SpecError(f"{item[:60]!r} is not key=value; filter with label=team=vision", "label")
            labels.append((key, value))
        statuses = []
        for name in filter(None, (status or "").split(",")):
            try:
                statuses.append(parse_status(name.strip()))
            except ValueError as exc:
                raise SpecError(str(exc), "status") from None
        schedule_id = None
        if schedule is not None and schedule != "":
            schedule_id = schedule if isinstance(schedule, int) else parse_id(str(schedule))
            if schedule_id is None:
                raise SpecError(f"{str(schedule)[:40]!r} is not a schedule id (a whole number)", "schedule")
        return self.store.list(statuses=statuses, owner=owner, text=text, labels=labels, cursor=cursor, limit=limit,
                               group=group, visible_to=visible_to, schedule=schedule_id)

    async def follow_log(self, job_id: int, offset: int, follow: bool, stream: str = "log") -> AsyncIterator[bytes]:
        """Chunks of a job's log (or its ``displays``) from byte ``offset``; with ``follow``, until the job has ended."""
        folder = self.folder(job_id)
        finishing = self.store.get(job_id).status.is_terminal() and not follow
        mask = self.secrets.mask(self.store.get(job_id))  # its secrets' values, as *** (secrets.py)
        while True:
            chunk = await asyncio.to_thread(mask.read, folder.stream(stream), offset, LOG_CHUNK, not finishing)
            if chunk:
                offset += len(chunk)
                yield chunk
                continue
            if not follow or finishing:
                return
            try:
                ended = self.store.get(job_id).status.is_terminal()
            except JobNotFound:
                return  # deleted while followed
            if ended:
                finishing = True  # read once more: all of it was written before the status changed
                continue
            await self.wait_change(job_id, LOG_POLL_SECONDS)

    def folder(self, job_id: int) -> JobDir:
        """The folder of a job's log, displays and outputs: 404 for unknown jobs, 410 once retention removed them."""
        self.retention.check_data(self.store.get(job_id))
        return JobDir(self.jobs_dir / str(job_id))

    def why_unavailable(self) -> str | None:
        """Why jobs cannot be submitted now (set at start, or the backend's daemon is down), or None."""
        return self.unavailable or self.engine.unavailable()

    def describe(self) -> dict[str, Any]:
        reason = self.why_unavailable()
        return {
            "version": __version__,
            "backend": self.engine.name,
            "available": reason is None,
            "unavailable_reason": reason,
            "backends": ["local", "docker", "slurm"],
            "backend_info": self.engine.describe(),
            "default_instance_type": self.cluster.default_type,
            "max_concurrent": self.pool.max_concurrent,
            "capacity": {
                "cpus": self.cluster.total_cpus, "memory_mib": self.cluster.total_memory_mib,
                "gpus": [g.__dict__ for g in self.cluster.host_gpus],
            },
            "features": {
                "log_follow": True, "cancel": True, "rerun_overrides": True, "retries": True,
                "max_runtime": True, "idempotency_key": True, "datasets": True, "outputs": True, "volumes": True,
                "pin": True, "gc": True,
            },
            **self.runtime_limits.to_json(),
            "retention": self.retention.describe(),
        }

    # -- submit ------------------------------------------------------------------------------
    async def submit(
        self, spec_data: Any, *, owner: str, base_dir: str | None = None,
        idempotency_key: str | None = None, rerun_of: JobRecord | None = None,
        files: Mapping[str, str] | None = None, environment: Mapping[str, Any] | None = None,
        access: Access | None = None, schedule_id: int | None = None,
    ) -> tuple[JobRecord, bool]:
        """Validate and queue a job; return it and whether it was created (False: idempotent replay).

        The job's files come from ``files`` (a manifest ``{path: sha256}`` of uploaded blobs), else
        from the spec's ``inputs`` read under ``base_dir``, else (a rerun) from the job it reruns.
        ``environment`` is what the submitting client says of its Python (its capture, interpreter
        and local wheels), for ``env.python``; see :meth:`Environments.lock_for`. ``access`` (the
        submitter's groups and role; default: ``owner`` alone) decides the job's ``group``.
        ``schedule_id`` is the schedule that fires it (``schedules.py``).
        """
        reason = self.why_unavailable()
        if reason:
            raise BackendUnavailable(f"jobs cannot run here now: {reason}")
        if self.run_as_owner:
            RunAs.of(owner)  # 400 for an owner with no account (or root) before anything is stored
        translation = await asyncio.to_thread(to_native, spec_data, self.cluster.site())
        spec, runtime_note = self.runtime_limits.apply(await asyncio.to_thread(translation.parse))
        if files is not None:
            files = await asyncio.to_thread(check_manifest, files)
        check_short_text(base_dir, "base_dir")
        check_short_text(idempotency_key, "Idempotency-Key")
        if environment is not None and not isinstance(environment, Mapping):
            raise SpecError("must be a mapping with lock, interpreter and wheels", "environment")
        request_hash = hashlib.sha256(
            json.dumps([spec.to_dict(), base_dir, files, environment], sort_keys=True).encode()).hexdigest()
        # A key is the submitter's own: another user's identical key is another job (keys hold
        # no control characters, so the newline cannot be forged).
        scoped_key = f"{owner}\n{idempotency_key}" if idempotency_key else None
        replay = self._replay(scoped_key, idempotency_key, request_hash)
        if replay is not None:
            return replay, False
        access = access or Access(owner)
        spec = replace(spec, group=access.job_group(spec.group, server_user=self.single_user()))
        volumes_for(spec.volumes, self.cluster.known_volumes, access, server_user=self.single_user())
        itype = self._check_resources(spec, owner)
        self.secrets.check(owner, spec)  # a secret it names and its owner has not set: 400, naming the field
        stage = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.jobs_dir))
        moved: list[Path] = []  # the job's folder, once its files moved there (its record may yet fail to commit)
        try:
            await self._stage_files(spec, stage, base_dir, rerun_of, files)
            env_summary = await self._lock_environment(spec, stage, environment, rerun_of)
            # Everything that needs disk space is written before the record exists: a full disk
            # refuses the submission whole (507), never leaves a job without its files.
            (stage / "spec.json").write_text(json.dumps(spec.to_dict(), indent=2))
            # The files move into the job's folder inside the record's transaction: a server killed at any
            # moment leaves either both or neither (then the staging folder, or a folder no record names).
            record = self.store.create(
                JobRecord(
                    id=0, name=spec.name, owner=owner, spec=spec, instance_type=itype,
                    image=spec.image or self.cluster.instance_type(itype).image or self.engine.default_image(),
                    command=spec.cmd,
                    rerun_of=rerun_of.id if rerun_of else None, idempotency_key=scoped_key,
                    message="queued", environment=env_summary, warnings=translation.warnings,
                    schedule_id=schedule_id,
                ),
                request_hash,
                before_commit=lambda job_id: moved.append(self._move_in(stage, job_id)),
            )
        except sqlite3.IntegrityError:  # the same key, sent twice at once: the first one made it
            shutil.rmtree(stage, ignore_errors=True)
            replay = self._replay(scoped_key, idempotency_key, request_hash)
            if replay is None:
                raise
            return replay, False
        except BaseException:
            for path in (stage, *moved):
                shutil.rmtree(path, ignore_errors=True)
            raise
        folder = JobDir(self.jobs_dir / str(record.id))
        origin = f" (rerun of job {rerun_of.id})" if rerun_of else ""
        folder.say(f"job {record.id} {spec.name!r} submitted by {owner}{origin}")
        for warning in translation.warnings:
            folder.say(warning)
        if runtime_note:
            folder.say(runtime_note)
        self.pool.wake()
        return record, True

    def _move_in(self, stage: Path, job_id: int) -> Path:
        """Make ``stage`` the folder of job ``job_id`` (whose record is being written); that folder."""
        folder = self.jobs_dir / str(job_id)
        if folder.exists():  # another job's leftovers (a replaced database): keep them aside
            aside = self.jobs_dir / f".orphaned-{job_id}-{uuid.uuid4().hex[:8]}"
            os.replace(folder, aside)
            self.log.warning("jupyter-jobs: job folder %s existed before job %d; moved it to %s", folder, job_id, aside)
        os.replace(stage, folder)
        return folder

    async def _lock_environment(self, spec: JobSpec, stage: Path, sent: Mapping[str, Any] | None,
                                rerun_of: JobRecord | None) -> dict[str, Any]:
        """Resolve the job's ``env.python`` to a lock written beside its files; its record's summary."""
        if spec.python is None or not spec.python.managed:
            return {}
        base = read_lock(self.jobs_dir / str(rerun_of.id)) if rerun_of is not None else None
        lock, summary = await asyncio.to_thread(
            self.environments.lock_for, spec.python, folder=stage / "code", sent=sent,
            wheels=lambda digest: self.blobs.path(digest) if self.blobs.has(digest) else None, base=base,
            base_interpreter=rerun_of.environment.get("interpreter") if rerun_of is not None else None,
        )
        write_lock(stage, lock)
        return summary

    def _replay(self, scoped_key: str | None, key: str | None, request_hash: str) -> JobRecord | None:
        """The job an earlier request with this Idempotency-Key made, if any (409 for another spec)."""
        found = self.store.find_idempotent(scoped_key) if scoped_key else None
        if found is None:
            return None
        record, previous_hash = found
        if previous_hash != request_hash:
            raise Conflict(f"Idempotency-Key {key!r} was already used for job {record.id} with another spec; "
                           "use a new key for a new job")
        return record

    def _check_resources(self, spec: JobSpec, owner: str) -> str:
        """The instance type the job gets: its own (the first of its list that can ever fit), else the default."""
        names = [spec.instance_type or self.cluster.default_type, *spec.instance_type_fallbacks]
        if len(names) > 1:
            return self._first_fitting(spec, names, owner)
        itype = self.cluster.instance_type(names[0])
        if spec.replicas > 1 and not self.engine.schedules_itself:
            raise SpecError(f"{spec.replicas} replicas need a cluster backend (JobManager.backend = 'slurm'); "
                            f"this server runs jobs on {self.engine.name}", "replicas")
        for index, ref in enumerate(spec.datasets):
            self.cluster.dataset(ref.name, f"datasets[{index}].name")
        if self.engine.schedules_itself:
            return itype.name  # the cluster's scheduler decides, and refuses at submission
        request = Request.of(itype)
        reason = self.pool.capacity.never_fits(request) or self.quotas.never_fits(request, owner, spec.group)
        if reason:
            from .errors import Unschedulable

            raise Unschedulable(f"instance type {itype.name!r} {reason}, so the job could never run", "instance-type")
        return itype.name

    def _first_fitting(self, spec: JobSpec, names: list[str], owner: str) -> str:
        reasons = []
        for index, name in enumerate(names):
            try:
                return self._check_resources(replace(spec, instance_type=name, instance_type_fallbacks=()), owner)
            except SpecError as exc:  # unknown here, or could never fit (Unschedulable is a SpecError)
                if not exc.problems or not exc.problems[0].field.startswith("instance-type"):
                    raise
                reasons.append(f"{name}: {exc.problems[0].message}")
        raise SpecError("none of these instance types can run here: " + "; ".join(reasons), "instance-type")

    async def _stage_files(self, spec: JobSpec, stage: Path, base_dir: str | None, rerun_of: JobRecord | None,
                           files: Mapping[str, str] | None = None) -> None:
        folder = JobDir(stage)
        folder.create()
        if files is None and rerun_of is not None:
            files = JobDir(self.jobs_dir / str(rerun_of.id)).shipped()
            if files is None:  # a job from before snapshots, or one with links in its files
                source = JobDir(self.jobs_dir / str(rerun_of.id)).code
                if not source.is_dir():
                    raise Conflict(f"the files of job {rerun_of.id} are gone, so it cannot be rerun; submit it again")
                await asyncio.to_thread(copy_for_rerun, source, folder.code, self.max_input_bytes)
                return
        if files is not None:
            names = set(files)
            for index, item in enumerate(spec.inputs):
                if item.path not in names and not any(n.startswith(item.path + "/") for n in names):
                    raise SpecError(f"{item.path!r} is not among the uploaded files", f"inputs[{index}].path")
            await asyncio.to_thread(self.blobs.materialise, files, folder.code, self.max_input_bytes)
            folder.write_json(SNAPSHOT_FILE, dict(files))
            return
        if not spec.inputs:
            folder.write_json(SNAPSHOT_FILE, {})
            return
        if not self.read_server_files:
            raise SpecError("this jupyter-jobs service reads no one's files: upload them (jupyter jobs run, %job run "
                            "and your Jupyter server's jupyter-jobs API do), or leave inputs out", "inputs")
        base = self.resolve_base_dir(base_dir)
        entries = [(f"inputs[{i}].path", item.path) for i, item in enumerate(spec.inputs)]
        await asyncio.to_thread(measure_inputs, base, entries, self.max_input_bytes)
        await asyncio.to_thread(copy_inputs, base, [item.path for item in spec.inputs], folder.code)
        await asyncio.to_thread(folder.snapshot, self.blobs)

    def resolve_base_dir(self, base_dir: str | None) -> Path:
        """The folder inputs are read from: ``base_dir`` inside ``root_dir`` (default: root_dir)."""
        root = Path(self.root_dir).expanduser().resolve()
        if not base_dir:
            return root
        try:
            base = (root / base_dir).resolve()
        except (RuntimeError, OSError) as exc:  # a symbolic link loop, a name too long
            raise SpecError(f"{base_dir!r} cannot be followed ({exc})", "base_dir") from None
        if base != root and root not in base.parents:
            raise SpecError(f"{base_dir!r} is outside the server's root folder {root}", "base_dir")
        if not base.is_dir():
            raise SpecError(f"{base_dir!r} is not a folder under {root}", "base_dir")
        return base

    # -- actions -----------------------------------------------------------------------------
    async def cancel(self, job_id: int, by: str = "") -> JobRecord:
        """Cancel a job in any non-terminal state; return it once it has stopped (or the grace ran out)."""
        job = self.store.get(job_id)
        if job.status.is_terminal():
            raise InvalidTransition(f"job {job_id} already ended ({job.status.value}); nothing to cancel")
        who = f" by {by}" if by else ""
        if job.status is JobStatus.PENDING and not job.handle:
            self.pool.cancel_pending(job, f"Cancelled{who} before it started")
            return self.store.get(job_id)
        if not job.cancel_requested:
            self.store.update(job_id, cancel_requested=True, message=f"Cancelling{who}")
            JobDir(self.jobs_dir / str(job_id)).say(f"cancel requested{who}; stopping the job")
            self._notify(job_id)
        await self.pool.stop_job(job_id)
        return await self.wait_until_done(job_id, timeout=self.pool.stop_grace_seconds + 5)

    async def rerun(self, job_id: int, overrides: Mapping[str, Any], *, owner: str,
                    idempotency_key: str | None = None, access: Access | None = None) -> JobRecord:
        """A new job from ``job_id``'s spec and files, with ``overrides`` applied."""
        old = self.store.get(job_id)
        if old.damaged:
            raise Conflict(f"job {job_id}'s stored record is damaged ({old.damaged}), so it cannot be rerun; submit it again")
        if "inputs" in overrides:
            raise SpecError("a rerun reuses the files of the job it reruns; submit a new job to ship others", "overrides.inputs")
        spec = apply_overrides(old.spec.to_dict(), overrides)
        _check_args_used(old.spec.args, spec)
        # Where jobs run as their owners, a rerun by an admin is still the owner's job: the owner's code never
        # runs under the admin's account (nor counts against their quota).
        caller, owner = owner, old.owner if self.run_as_owner else owner
        record, _ = await self.submit(spec, owner=owner, rerun_of=old, idempotency_key=idempotency_key, access=access)
        if caller != owner:
            JobDir(self.jobs_dir / str(record.id)).say(f"rerun by {caller}; it runs as {owner}, whose job it is")
        return record

    def pin(self, job_id: int, pinned: bool = True) -> JobRecord:
        """Keep the job whatever its age (retention passes it by), or, unpinned, let it expire again."""
        self.store.update(job_id, pinned=pinned)
        self._notify(job_id)
        return self.store.get(job_id)

    def job_json(self, job: JobRecord) -> dict[str, Any]:
        """The REST shape of a job, with when retention will remove its data and record."""
        return {**job.to_json(time.time()), **self.retention.job_fields(job)}

    async def delete(self, job_id: int) -> None:
        job = self.store.get(job_id)
        if not job.status.is_terminal():
            raise InvalidTransition(f"job {job_id} is {job.status.value}; cancel it before deleting it")
        self.store.delete(job_id)
        await asyncio.to_thread(JobDir(self.jobs_dir / str(job_id)).remove)
        self._notify(job_id)


def _check_args_used(before: Mapping[str, Any], spec: Mapping[str, Any]) -> None:
    """Refuse a rerun that changes an arg its command never reads (a cell job's ``cmd`` reads none): it
    would run the same work again while saying it ran other values."""
    cmd = spec.get("cmd")
    used = set(referenced_vars(cmd if isinstance(cmd, str) else " ".join(map(str, cmd or []))))
    args = spec.get("args") if isinstance(spec.get("args"), Mapping) else {}
    for name, value in args.items():
        if name not in used and (name not in before or before[name] != value):
            raise SpecError(f"the job's command does not use ${{{name}}}, so changing it would change nothing; "
                            f"a cell or notebook job reads its values otherwise (--in values, notebook parameters)",
                            f"args.{name}")

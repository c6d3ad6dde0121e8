"""The Docker backend: each job is a container, with its GPUs, datasets, limits and isolation.

The docker SDK blocks, so every call runs off the event loop. Long waits (a container's exit)
get daemon threads of their own (``in_thread``) instead of the loop's small default executor.

The job's output is not copied out of Docker: the job's log file is bind-mounted into the
container and the container's shell appends stdout and stderr to it (one open file, O_APPEND),
as the local backend does. So lines keep the order the job wrote them in, nothing is dropped
however fast it prints, and the log keeps growing while the server or the Docker daemon is
down. A lost daemon connection is "unknown for now": the job keeps its resources, and only a
container that is really gone ends it.
"""
from __future__ import annotations

import asyncio
import os
import posixpath
import signal
import threading
import time
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.types import DeviceRequest, DriverConfig, Mount
from traitlets import Bool, CaselessStrEnum, Float, Int, Unicode

from ..errors import BackendError, BackendUnavailable
from ..images import DEFAULT_TAG
from ..jobdir import JobDir
from ..models import JobRecord
from .backend import Backend, Exit, Launch, in_thread
from .docker_env import EnvImages
from .environment import DISPLAYS_IN_CONTAINER, JOBSIDE_IN_CONTAINER, job_command, job_environment, owner_folder
from .identity import RunAs

LABEL = "jupyter_jobs"
#: Where the job's log file is mounted in its container.
LOG_IN_CONTAINER = "/.jupyter-jobs/job.log"
#: Most of Docker's own log of a container copied into the job's log (normally it is empty).
DOCKER_LOG_CAP = 1024 * 1024
#: How the job's container ended, written before the container is removed.
_EXIT_FILE = "container-exit.json"
# $1: the job's command. The shell sends its own output, then the job's, to the log file; if
# that fails, its error reaches Docker's log, which `wait` copies into the job's log.
_CAPTURE = f'exec >>{LOG_IN_CONTAINER} 2>&1 && exec /bin/sh -c "$1"'
#: `State.StartedAt` of a container that never started.
_NEVER = "0001-01-01T00:00:00Z"
# What a dropped or refused daemon connection raises (requests wraps socket errors).
_DAEMON_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                  requests.exceptions.Timeout, ConnectionError)


def docker_available(timeout: float = 3.0) -> bool:
    """Whether a Docker daemon answers at DOCKER_HOST (or the default socket)."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        client.close()
        return True
    except Exception:  # any failure means: not usable
        return False


class DockerBackend(Backend):
    """Runs each job in a container of a real Docker daemon."""

    name = "docker"
    image = Unicode(DEFAULT_TAG, config=True, help="Image of jobs whose spec and instance type name none.")
    shm_size = Unicode("1g", config=True, help="Size of /dev/shm in job containers (data loaders need more than 64m).")
    pids_limit = Int(4096, config=True, help="Most processes one job container may have; 0: no limit.")
    user = Unicode(
        "", config=True, help="Run job containers as this user ('1000:1000', 'nobody'); empty: the server's own "
        "uid:gid when it is not root (so jobs can write its job folders), else the image's user. Jobs that run "
        "as their owners (JobManager.run_as_owner) run as the owner whatever this says."
    )
    gpu_mode = CaselessStrEnum(
        ["auto", "device-request", "env"], "auto", config=True,
        help="How a job gets its GPUs: 'device-request' (the NVIDIA container toolkit hands over exactly "
        "those devices), 'env' (only CUDA_VISIBLE_DEVICES/NVIDIA_VISIBLE_DEVICES, for hosts without the "
        "toolkit), or 'auto': device-request when the daemon has the nvidia runtime.",
    )
    outputs_nosuid = Bool(
        True, config=True, help="Mount /outputs nosuid,nodev, through an overlay whose upper layer is the job's "
        "outputs folder. Set False where the data dir's filesystem cannot be an overlay's upper layer (NFS, "
        "or a data dir on an overlay itself): /outputs is then a plain bind mount.",
    )
    health_interval = Float(
        1.0, config=True, help="Seconds between checks that the Docker daemon answers (GET /config says "
        "available: false, and submits answer 503, while it does not).",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        where = f"DOCKER_HOST={os.environ.get('DOCKER_HOST', 'default')}"
        try:
            # Each running job holds one streaming connection (its wait).
            self.client = docker.from_env(timeout=60, max_pool_size=256)
            info = self.client.info()
            self._pinger = docker.from_env(timeout=5)
        except Exception as exc:
            raise BackendUnavailable(f"the Docker daemon does not answer ({where}): {exc}") from None
        self.server_version = info.get("ServerVersion", "")
        self.has_nvidia = "nvidia" in (info.get("Runtimes") or {})
        self.live_restore = bool(info.get("LiveRestoreEnabled"))
        self._stopping: set[str] = set()
        self._present: set[str] = set()  # images known to be here (checked once, not per job)
        self._down: str | None = None
        self._down_message = f"the Docker daemon does not answer ({where}); running jobs keep their resources " \
            "and are followed again when it is back"
        self._closed = threading.Event()
        self._env_images = EnvImages(self.client, self.log)
        threading.Thread(target=self._watch_daemon, name="jupyter-jobs-docker-health", daemon=True).start()

    # -- the daemon's health ------------------------------------------------------------------
    def _watch_daemon(self) -> None:
        while not self._closed.wait(self.health_interval):
            try:
                self._pinger.ping()
                down = None
            except Exception as exc:  # any failure means: not usable now
                down = self._down_message
                if self._down is None:
                    self.log.warning("jupyter-jobs: %s: %s", down, exc)
            if down != self._down:
                if down is None:
                    self.log.warning("jupyter-jobs: the Docker daemon answers again")
                self._down = down
                try:
                    self.availability_changed()
                except RuntimeError:  # the server's loop has closed
                    return

    def unavailable(self) -> str | None:
        return self._down

    def close(self) -> None:
        self._closed.set()

    def environments_removed(self, hashes: list[str]) -> None:
        self._env_images.remove(hashes)

    # -- facts -------------------------------------------------------------------------------
    def default_image(self) -> str | None:
        return self.image

    def use_device_requests(self) -> bool:
        return self.gpu_mode == "device-request" or (self.gpu_mode == "auto" and self.has_nvidia)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "isolation": "container", "server_version": self.server_version,
            "default_image": self.image, "gpu_mode": "device-request" if self.use_device_requests() else "env",
            "live_restore": self.live_restore,
        }

    def _labels(self, job: JobRecord) -> dict[str, str]:
        return {f"{LABEL}.server": self.server_id, f"{LABEL}.job_id": str(job.id), f"{LABEL}.attempt": str(job.attempt),
                f"{LABEL}.owner": job.owner}

    # -- prepare: the image ------------------------------------------------------------------
    async def prepare(self, launch: Launch) -> None:
        image = launch.job.image or self.image
        await self._ensure_image(launch, image)
        if launch.python is not None and launch.environments is not None:
            try:
                launch.run_image, launch.environment_outcome = await self._env_images.image_for(
                    image, launch.python, launch.environments, say=launch.folder.say, report=launch.report)
            except _DAEMON_ERRORS as exc:
                raise BackendUnavailable(f"the Docker daemon does not answer: {exc}") from None
            except docker.errors.DockerException as exc:
                raise BackendError(f"Docker could not make the image of the job's environment: {_reason(exc)}") from None

    async def _ensure_image(self, launch: Launch, image: str) -> None:
        """Pull ``image`` unless it is here."""
        if image in self._present:
            return
        try:
            await asyncio.to_thread(self.client.images.get, image)
            self._present.add(image)
            return
        except docker.errors.ImageNotFound:
            pass
        except _DAEMON_ERRORS as exc:
            raise BackendUnavailable(f"the Docker daemon does not answer: {exc}") from None
        launch.report(f"Preparing: pulling {image}")
        launch.folder.say(f"pulling {image}")
        try:
            await in_thread(self._pull, image, launch.folder, launch.registry)
        except docker.errors.DockerException as exc:
            raise BackendError(
                f"image {image!r} is not on this server and could not be pulled ({_reason(exc)}); "
                "build it (`jupyter jobs image build` for the default one) or name an image `docker images` lists"
            ) from None

    def _pull(self, image: str, folder: JobDir, registry: dict[str, str] | None = None) -> None:
        """Pull ``image``, logged in with ``registry`` (the job's ``registry-auth``), else the host's own login."""
        repository, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
        last = 0.0
        for event in self.client.api.pull(repository, tag or "latest", stream=True, decode=True, auth_config=registry):
            if "error" in event:
                raise docker.errors.APIError(event["error"])
            if time.monotonic() - last > 1 or "progress" not in event:
                folder.say(f"pull {image}: {event.get('status', '')} {event.get('id', '')} {event.get('progress', '')}".rstrip())
                last = time.monotonic()

    # -- start -------------------------------------------------------------------------------
    async def start(self, launch: Launch) -> dict[str, Any]:
        job, folder = launch.job, launch.folder
        owner = owner_folder(job.owner)
        gpus = job.allocation.gpus
        env = job_environment(
            job, code="/code", outputs="/outputs",
            datasets={d.name: f"/data/{owner}/{d.name}" for d in launch.datasets}, gpus=gpus,
            jobside=JOBSIDE_IN_CONTAINER if self.jobside_dir else "", displays=DISPLAYS_IN_CONTAINER,
            volumes={v.name: v.in_container for v in launch.volumes},
        )
        env["JOB_GPUS"] = ",".join(str(i) for i in gpus)
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ among the job's files
        device_requests = None
        if gpus and self.use_device_requests():
            # The runtime exposes exactly these devices, numbered from 0 inside the container.
            device_requests = [DeviceRequest(device_ids=[str(i) for i in gpus], capabilities=[["gpu"]])]
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(len(gpus)))
            env.pop("NVIDIA_VISIBLE_DEVICES")
        command = job_command(job, env)
        # Secrets go in the container's environment only (as `docker inspect` shows to those who may run
        # Docker, root's equals): never its command, a file or a label.
        env.update(launch.secrets)
        mounts = [
            _writable_mount("/code", folder.code, folder, self.outputs_nosuid),  # the working dir, writable
            _writable_mount("/outputs", folder.outputs, folder, self.outputs_nosuid),
            Mount(LOG_IN_CONTAINER, str(folder.log), type="bind"),
            Mount(DISPLAYS_IN_CONTAINER, str(_displays_file(folder)), type="bind"),
            *(Mount(f"/data/{owner}/{d.name}", d.path, type="bind", read_only=True) for d in launch.datasets),
            # Volumes are written, and kept: the host's permissions on them decide who may write what.
            *(Mount(v.in_container, v.path, type="bind", read_only=False) for v in launch.volumes),
            *([Mount(JOBSIDE_IN_CONTAINER, self.jobside_dir, type="bind", read_only=True)] if self.jobside_dir else []),
        ]
        user, groups = container_user(self.user, launch.run_as)
        if self.user and launch.run_as is None:
            _let_user_write(folder, self.user)
        alloc = job.allocation
        name = f"jupyter-jobs-{self.server_id}-{job.id}-{job.attempt}"
        kwargs = dict(
            command=["/bin/sh", "-c", _CAPTURE, "jupyter-job", command], name=name, labels=self._labels(job),
            environment=env,
            working_dir=posixpath.normpath(posixpath.join("/code", job.spec.working_dir)), mounts=mounts,
            network_mode="host" if launch.instance_type.network else "none",
            cap_drop=["ALL"], security_opt=["no-new-privileges"], init=True, user=user, group_add=groups or None,
            nano_cpus=int(alloc.cpus * 1e9) or None, mem_limit=f"{alloc.memory_mib}m" if alloc.memory_mib else None,
            memswap_limit=f"{alloc.memory_mib}m" if alloc.memory_mib else None,
            pids_limit=self.pids_limit or None, shm_size=self.shm_size, device_requests=device_requests,
            stdin_open=False, tty=False, detach=True,
        )
        image = launch.run_image or job.image or self.image
        try:
            container = await asyncio.to_thread(self._create, image, kwargs)
            await asyncio.to_thread(self.client.api.start, container.id)
        except _DAEMON_ERRORS as exc:
            # Queued again by the pool; a container created meanwhile is replaced (same name).
            raise BackendUnavailable(f"the Docker daemon stopped answering while the job started: {exc}") from None
        except docker.errors.DockerException as exc:
            hint = ""
            if self.outputs_nosuid and "volume" in _reason(exc):
                hint = " (if the data dir cannot be an overlay's upper layer, set DockerBackend.outputs_nosuid = False)"
            raise BackendError(f"Docker could not start the container: {_reason(exc)}{hint}") from None
        return {"container": container.id, "name": name, "command": command, "image": image,
                "folder": str(folder.root)}

    def _create(self, image: str, kwargs: dict[str, Any]) -> Any:
        try:
            return self.client.containers.create(image, **kwargs)
        except docker.errors.ImageNotFound:
            self._present.discard(image)  # removed since we checked: the next attempt pulls it
            raise
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
            # The name is taken by a leftover of an attempt a restart interrupted.
            self.client.api.remove_container(kwargs["name"], force=True, v=True)
            return self.client.containers.create(image, **kwargs)

    # -- wait / stop -------------------------------------------------------------------------
    async def wait(self, job: JobRecord, handle: dict[str, Any], on_state: Any = None) -> Exit:
        cid = handle["container"]
        folder = JobDir(Path(handle["folder"]))
        lost_at: float | None = None
        while True:
            try:
                state = await asyncio.to_thread(self._started, cid, folder)
                if state.get("Status") in ("running", "paused", "restarting"):
                    await in_thread(self.client.api.wait, cid, None)
                    state = await asyncio.to_thread(self._state, cid)
                await asyncio.to_thread(self._copy_docker_log, cid, folder)
                break
            except docker.errors.NotFound:
                ended = folder.read_json(_EXIT_FILE)
                if isinstance(ended, dict) and ended.get("container") == cid:
                    # It ended and was removed, and the server stopped before recording it.
                    return Exit(int(ended["code"]), str(ended.get("detail", "")))
                return Exit(None, f"its container {handle['name']} is gone (removed outside jupyter-jobs, "
                                  "or lost by a restart of the Docker daemon)", lost=True)
            except (docker.errors.APIError, *_DAEMON_ERRORS) as exc:
                if lost_at is None:  # the daemon went away: the container may well run on
                    lost_at = time.monotonic()
                    folder.say(f"lost the connection to the Docker daemon ({type(exc).__name__}); the job keeps "
                               "its resources, waiting for the daemon to answer again")
                await asyncio.sleep(self.health_interval)
        if lost_at is not None:
            folder.say(f"the Docker daemon answers again after {time.monotonic() - lost_at:.0f}s; "
                       f"its container is {state.get('Status', 'unknown')}")
        if state.get("StartedAt", _NEVER) == _NEVER:  # never a success without having run
            self._stopping.discard(cid)
            return Exit(None, f"Docker could not start its container: {state.get('Error') or 'it never started'}")
        exit = Exit(int(state.get("ExitCode", -1)), self._detail(job, cid, state, lost_at is not None))
        # Kept beside the job before `collect` removes the container: a server killed in between
        # learns how it ended from here, not "its container is gone".
        try:
            folder.write_json(_EXIT_FILE, {"container": cid, "code": exit.code, "detail": exit.detail})
        except OSError as exc:  # a full disk: the exit is still recorded by the pool, which waits for space
            self.log.warning("jupyter-jobs: could not keep the exit of %s beside the job: %s", handle["name"], exc)
        return exit

    def _started(self, cid: str, folder: JobDir) -> dict[str, Any]:
        """The container's state, after starting it if it was created but never started (the
        server stopped between the two): `docker wait` on it would answer 0 at once."""
        state = self.client.api.inspect_container(cid)["State"]
        if state.get("Status") == "created":
            folder.say("its container was created but never started (the server stopped in between); starting it")
            try:
                self.client.api.start(cid)
            except docker.errors.APIError as exc:
                if isinstance(exc, docker.errors.NotFound) or exc.status_code is None:
                    raise
            state = self.client.api.inspect_container(cid)["State"]
        return state

    def _state(self, cid: str) -> dict[str, Any]:
        return self.client.api.inspect_container(cid)["State"]

    def _detail(self, job: JobRecord, cid: str, state: dict[str, Any], daemon_lost: bool) -> str:
        code = int(state.get("ExitCode", -1))
        detail = ""
        if state.get("OOMKilled"):
            detail = f"out of memory: it reached its {job.allocation.memory_mib} MiB limit"
        elif code > 128 and code - 128 in signal.valid_signals():
            name = signal.Signals(code - 128).name
            if cid in self._stopping:
                detail = f"killed by {name}"
            elif daemon_lost:
                detail = f"killed by {name}: the Docker daemon restarted while it ran"
            else:
                detail = (f"killed by {name} from outside jupyter-jobs (`docker stop`, or the Docker daemon "
                          "shutting down)")
        elif daemon_lost:
            detail = "the Docker daemon restarted while it ran"
        self._stopping.discard(cid)
        return detail

    def _copy_docker_log(self, cid: str, folder: JobDir) -> None:
        """Append what reached Docker's own log: only what the container printed before its
        output went to the job's log (say, the log file could not be opened). Usually nothing."""
        try:  # streamed and capped: a job can write there without limit (docker-init's stdout)
            stream = self.client.api.logs(cid, stdout=True, stderr=True, stream=True)
            kept, size = [], 0
            for chunk in stream:
                kept.append(chunk[: DOCKER_LOG_CAP - size])
                size += len(kept[-1])
                if size >= DOCKER_LOG_CAP:
                    break
            text = b"".join(kept)
        except docker.errors.APIError:  # gone, or a log driver that cannot be read (not: daemon down)
            return
        if text:
            folder.say("the container printed, outside the job's log:")
            with open(folder.log, "ab") as log:
                log.write(text if text.endswith(b"\n") else text + b"\n")
            if size >= DOCKER_LOG_CAP:
                folder.say(f"(only the first {DOCKER_LOG_CAP // 2**20} MiB of that is kept)")

    async def stop(self, job: JobRecord, handle: dict[str, Any], grace: float) -> None:
        self._stopping.add(handle["container"])
        try:
            # docker-init (PID 1, init=True) forwards SIGTERM; after `grace` seconds Docker kills.
            await asyncio.to_thread(self.client.api.stop, handle["container"], timeout=max(1, int(round(grace))))
        except docker.errors.NotFound:
            pass
        except _DAEMON_ERRORS as exc:
            raise BackendUnavailable(
                f"the Docker daemon does not answer, so the job cannot be stopped now: {exc}"
            ) from None

    async def collect(self, job: JobRecord, folder: JobDir) -> None:
        """Outputs are already in the job folder (mounted); remove the container and its volumes,
        and clear set-id bits of outputs. The log is complete: the job's processes wrote it
        themselves, and have all exited."""
        await asyncio.to_thread(folder.clear_set_id_bits)  # first: whatever follows may fail
        cid = job.handle.get("container")
        if cid:
            try:
                await asyncio.to_thread(self.client.api.remove_container, cid, force=True, v=True)
            except docker.errors.NotFound:
                pass

    # -- restart -----------------------------------------------------------------------------
    async def recover(self, job: JobRecord, folder: JobDir) -> dict[str, Any] | None:
        labels = [f"{k}={v}" for k, v in self._labels(job).items() if not k.endswith(".owner")]
        found = await asyncio.to_thread(self.client.containers.list, all=True, filters={"label": labels})
        if not found:
            return None
        container = found[0]
        return {"container": container.id, "name": container.name, "folder": str(folder.root),
                "command": container.attrs["Config"]["Cmd"][-1], "image": container.attrs["Config"]["Image"]}

    async def remove_orphans(self, active: set[int]) -> list[str]:
        containers = await asyncio.to_thread(
            self.client.containers.list, all=True, filters={"label": f"{LABEL}.server={self.server_id}"}
        )
        removed = []
        for container in containers:
            job_id = int(container.labels.get(f"{LABEL}.job_id", "0"))
            if job_id not in active:
                await asyncio.to_thread(container.remove, force=True, v=True)
                removed.append(f"container {container.name} of job {job_id}, which is not running")
        return removed


def container_user(configured: str, run_as: RunAs | None) -> tuple[str | None, list[str]]:
    """Who a job's container runs as, and its supplementary groups.

    A job that runs as its owner: the owner's uid, gid and groups. Else ``DockerBackend.user`` when set.
    Else, from a server that is not root (every JupyterHub single-user server), the server's own uid and
    gid: its job folders are the server's, and root in a container without capabilities (we drop them all)
    cannot write in another's folder. From a root server: the image's user (None).
    """
    if run_as is not None:
        return f"{run_as.uid}:{run_as.gid}", [str(g) for g in run_as.groups if g != run_as.gid]
    if configured:
        return configured, []
    if os.geteuid() != 0:
        return f"{os.geteuid()}:{os.getegid()}", [str(g) for g in os.getgroups() if g != os.getegid()]
    return None, []


def _writable_mount(target: str, path: Path, folder: JobDir, nosuid: bool) -> Mount:
    """``target`` (``/code``, ``/outputs``): the job's folder ``path``, writable, mounted nosuid,nodev where
    ``nosuid``.

    A bind mount cannot take those flags (Docker's local volume driver ignores them with
    ``o=bind``, as mount(2) does), so the folder is the upper layer of an overlay over an empty
    lower one: every write lands in the folder itself, and the mount's flags hold. The volume
    is anonymous and removed with the container.
    """
    if not nosuid:
        return Mount(target, str(path), type="bind")
    name = target.strip("/")
    lower, work = folder.run / f"{name}-lower", folder.run / f"{name}-work"
    for where in (lower, work):
        where.mkdir(exist_ok=True)
    options = {"type": "overlay", "device": "overlay",
               "o": f"lowerdir={lower},upperdir={path},workdir={work},nosuid,nodev"}
    # no_copy: where the image has the folder (or Docker made it as the working dir), Docker would copy its
    # contents into a new volume and give the volume's root the image folder's owner and mode: root's, 0755,
    # which a job that does not run as root could then not write in (and the job's folder would be root's).
    return Mount(target, None, type="volume", driver_config=DriverConfig("local", options), no_copy=True)


def _displays_file(folder: JobDir) -> Path:
    """The displays file, made if the job's folder predates it (a bind mount needs it to exist)."""
    folder.displays.touch()
    return folder.displays


def _let_user_write(folder: JobDir, user: str) -> None:
    """Let a job that runs as ``user`` (not root) write in its working dir and outputs, its log and its displays."""
    os.chmod(folder.outputs, 0o777)
    os.chmod(folder.code, 0o777)
    uid, _, gid = user.partition(":")
    for path in (folder.log, folder.displays):
        if uid.isdigit() and os.geteuid() == 0:
            os.chown(path, int(uid), int(gid) if gid.isdigit() else -1)
        else:  # a user name, resolved inside the image
            os.chmod(path, 0o666)


def _reason(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip()

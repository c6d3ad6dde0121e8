"""The Docker backend: each job is a container, with its GPUs, datasets, limits and isolation.

The docker SDK blocks, so every call runs off the event loop. Long waits (a container's exit,
its log stream) get daemon threads of their own (``in_thread``) instead of the loop's small
default executor. Logs are pumped to the job's log file as they are written, with a cursor
(timestamp of the last line, and how many lines shared it) kept beside it, so a restarted
server follows a running container again from exactly where the file ends.
"""
from __future__ import annotations

import asyncio
import json
import os
import posixpath
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

import docker
import docker.errors
import requests.exceptions
from docker.types import DeviceRequest, Mount
from traitlets import CaselessStrEnum, Int, Unicode

from ..errors import BackendError, BackendUnavailable
from ..images import DEFAULT_TAG
from ..jobdir import JobDir
from ..models import JobRecord
from .backend import Backend, Exit, Launch, in_thread
from .environment import job_command, job_environment

LABEL = "jupyter_jobs"
_CURSOR_FILE = "log-cursor"
_CURSOR_SIZE = 128
_DAEMON_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.ReadTimeout, BrokenPipeError)


def docker_available(timeout: float = 3.0) -> bool:
    """Whether a Docker daemon answers at DOCKER_HOST (or the default socket)."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        client.close()
        return True
    except Exception:  # any failure means: not usable
        return False


def _ts_key(stamp: bytes) -> tuple[str, int]:
    """Comparable key of a Docker RFC3339Nano timestamp (its trailing zeros are trimmed)."""
    text = stamp.decode()
    whole, _, rest = text.rstrip("Z").partition(".")
    return whole, int((rest or "0").ljust(9, "0")[:9])


def _ts_seconds(stamp: str) -> float:
    """UNIX seconds of a Docker timestamp (microseconds kept), for the logs ``since`` filter."""
    whole, nanos = _ts_key(stamp.encode())
    from datetime import datetime, timezone

    base = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    return base + (nanos // 1000) / 1e6


def _write_cursor(fd: int, stamp: str, count: int) -> None:
    """Overwrite the cursor in one fixed-size write: a crash never leaves it empty or torn
    (truncating and rewriting would, and an empty cursor means "replay from the start")."""
    record = json.dumps({"ts": stamp, "count": count}).encode().ljust(_CURSOR_SIZE)
    os.pwrite(fd, record, 0)


class LogPump:
    """Copies a container's log stream into the job's log file, resumably."""

    def __init__(self, client: docker.DockerClient, container: str, folder: JobDir,
                 wrote: Callable[[], None] = lambda: None) -> None:
        self.client, self.container, self.folder, self.wrote = client, container, folder, wrote
        self.done = threading.Event()
        self.error: BaseException | None = None
        cursor = folder.read_json(_CURSOR_FILE) or {}
        self.last: str | None = cursor.get("ts")
        self.same = int(cursor.get("count", 0))
        threading.Thread(target=self._run, name=f"jupyter-jobs-logs-{container[:12]}", daemon=True).start()

    def _run(self) -> None:
        try:
            self._pump()
        except BaseException as exc:  # the waiter decides what a broken stream means
            self.error = exc
        finally:
            self.done.set()

    def _pump(self) -> None:
        since = _ts_seconds(self.last) if self.last else None
        stream = self.client.api.logs(self.container, stream=True, follow=True, timestamps=True, since=since)
        last_key = _ts_key(self.last.encode()) if self.last else None
        skip = self.same
        cursor = os.open(self.folder.run / _CURSOR_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            with open(self.folder.log, "ab", buffering=0) as log:
                for message in stream:
                    stamp, _, text = message.partition(b" ")
                    key = _ts_key(stamp)
                    if last_key is not None and key < last_key:
                        continue
                    if last_key is not None and key == last_key and skip > 0:
                        skip -= 1  # written before the restart
                        continue
                    log.write(text)
                    # After the line: a crash in between repeats at most one line, never loses one.
                    self.same = self.same + 1 if key == last_key else 1
                    last_key, self.last, skip = key, stamp.decode(), 0
                    _write_cursor(cursor, self.last, self.same)
                    self.wrote()
        finally:
            os.close(cursor)

    async def finished(self, timeout: float) -> None:
        await asyncio.wait_for(in_thread(self.done.wait), timeout)


class DockerBackend(Backend):
    """Runs each job in a container of a real Docker daemon."""

    name = "docker"
    image = Unicode(DEFAULT_TAG, config=True, help="Image of jobs whose spec and instance type name none.")
    shm_size = Unicode("1g", config=True, help="Size of /dev/shm in job containers (data loaders need more than 64m).")
    pids_limit = Int(4096, config=True, help="Most processes one job container may have; 0: no limit.")
    user = Unicode(
        "", config=True, help="Run job containers as this user ('1000:1000', 'nobody'); empty: the image's user."
    )
    gpu_mode = CaselessStrEnum(
        ["auto", "device-request", "env"], "auto", config=True,
        help="How a job gets its GPUs: 'device-request' (the NVIDIA container toolkit hands over exactly "
        "those devices), 'env' (only CUDA_VISIBLE_DEVICES/NVIDIA_VISIBLE_DEVICES, for hosts without the "
        "toolkit), or 'auto': device-request when the daemon has the nvidia runtime.",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        try:
            # Each running job holds two streaming connections (its log and its wait).
            self.client = docker.from_env(timeout=60, max_pool_size=256)
            info = self.client.info()
        except Exception as exc:
            raise BackendUnavailable(f"the Docker daemon does not answer (DOCKER_HOST={os.environ.get('DOCKER_HOST', 'default')}): {exc}") from None
        self.server_version = info.get("ServerVersion", "")
        self.has_nvidia = "nvidia" in (info.get("Runtimes") or {})
        self._pumps: dict[str, LogPump] = {}
        self._stopping: set[str] = set()
        self._present: set[str] = set()  # images known to be here (checked once, not per job)

    # -- facts -------------------------------------------------------------------------------
    def default_image(self) -> str | None:
        return self.image

    def use_device_requests(self) -> bool:
        return self.gpu_mode == "device-request" or (self.gpu_mode == "auto" and self.has_nvidia)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "isolation": "container", "server_version": self.server_version,
            "default_image": self.image, "gpu_mode": "device-request" if self.use_device_requests() else "env",
        }

    def _labels(self, job: JobRecord) -> dict[str, str]:
        return {f"{LABEL}.server": self.server_id, f"{LABEL}.job_id": str(job.id), f"{LABEL}.attempt": str(job.attempt),
                f"{LABEL}.owner": job.owner}

    # -- prepare: the image ------------------------------------------------------------------
    async def prepare(self, launch: Launch) -> None:
        image = launch.job.image or self.image
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
            await in_thread(self._pull, image, launch.folder)
        except docker.errors.DockerException as exc:
            raise BackendError(
                f"image {image!r} is not on this server and could not be pulled ({_reason(exc)}); "
                "build it (`jupyter jobs image build` for the default one) or name an image `docker images` lists"
            ) from None

    def _pull(self, image: str, folder: JobDir) -> None:
        repository, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
        last = 0.0
        for event in self.client.api.pull(repository, tag or "latest", stream=True, decode=True):
            if "error" in event:
                raise docker.errors.APIError(event["error"])
            if time.monotonic() - last > 1 or "progress" not in event:
                folder.say(f"pull {image}: {event.get('status', '')} {event.get('id', '')} {event.get('progress', '')}".rstrip())
                last = time.monotonic()

    # -- start -------------------------------------------------------------------------------
    async def start(self, launch: Launch) -> dict[str, Any]:
        job, folder = launch.job, launch.folder
        owner = re.sub(r"[^A-Za-z0-9._-]", "_", job.owner) or "user"
        gpus = job.allocation.gpus
        env = job_environment(
            job, code="/code", outputs="/outputs",
            datasets={d.name: f"/data/{owner}/{d.name}" for d in launch.datasets}, gpus=gpus,
        )
        env["JOB_GPUS"] = ",".join(str(i) for i in gpus)
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # /code is read-only
        device_requests = None
        if gpus and self.use_device_requests():
            # The runtime exposes exactly these devices, numbered from 0 inside the container.
            device_requests = [DeviceRequest(device_ids=[str(i) for i in gpus], capabilities=[["gpu"]])]
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(len(gpus)))
            env.pop("NVIDIA_VISIBLE_DEVICES")
        command = job_command(job, env)
        mounts = [
            Mount("/code", str(folder.code), type="bind", read_only=True),
            Mount("/outputs", str(folder.outputs), type="bind"),
            *(Mount(f"/data/{owner}/{d.name}", d.path, type="bind", read_only=True) for d in launch.datasets),
        ]
        if self.user:
            os.chmod(folder.outputs, 0o777)  # so a non-root job can write its outputs
        alloc = job.allocation
        name = f"jupyter-jobs-{self.server_id}-{job.id}-{job.attempt}"
        kwargs = dict(
            command=["/bin/sh", "-c", command], name=name, labels=self._labels(job), environment=env,
            working_dir=posixpath.normpath(posixpath.join("/code", job.spec.working_dir)), mounts=mounts,
            network_mode="host" if launch.instance_type.network else "none",
            cap_drop=["ALL"], security_opt=["no-new-privileges"], init=True, user=self.user or None,
            nano_cpus=int(alloc.cpus * 1e9) or None, mem_limit=f"{alloc.memory_mib}m" if alloc.memory_mib else None,
            memswap_limit=f"{alloc.memory_mib}m" if alloc.memory_mib else None,
            pids_limit=self.pids_limit or None, shm_size=self.shm_size, device_requests=device_requests,
            stdin_open=False, tty=False, detach=True,
        )
        try:
            container = await asyncio.to_thread(self._create_and_start, job.image or self.image, kwargs)
        except docker.errors.DockerException as exc:
            raise BackendError(f"Docker could not start the container: {_reason(exc)}") from None
        handle = {"container": container.id, "name": name, "command": command, "image": job.image or self.image,
                  "folder": str(folder.root)}
        self._pumps[container.id] = self._pump(job, container.id, folder)
        return handle

    def _pump(self, job: JobRecord, cid: str, folder: JobDir) -> LogPump:
        """A log pump that wakes the job's log followers (on the loop) as it writes."""
        loop = asyncio.get_running_loop()
        notify = getattr(self.parent, "notify_log", None)

        def wrote() -> None:
            if notify is not None:
                try:
                    loop.call_soon_threadsafe(notify, job.id)
                except RuntimeError:  # loop closed: the server stopped
                    pass

        return LogPump(self.client, cid, folder, wrote)

    def _create_and_start(self, image: str, kwargs: dict[str, Any]) -> Any:
        try:
            container = self.client.containers.create(image, **kwargs)
        except docker.errors.ImageNotFound:
            self._present.discard(image)  # removed since we checked: the next attempt pulls it
            raise
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
            # The name is taken by a leftover of an attempt a restart interrupted.
            self.client.api.remove_container(kwargs["name"], force=True)
            container = self.client.containers.create(image, **kwargs)
        container.start()
        return container

    # -- wait / stop -------------------------------------------------------------------------
    async def wait(self, job: JobRecord, handle: dict[str, Any], on_state: Any = None) -> Exit:
        cid = handle["container"]
        folder = JobDir(Path(handle["folder"]))
        pump = self._pumps.get(cid)
        if pump is None:  # found again after a restart
            pump = self._pumps[cid] = self._pump(job, cid, folder)
        daemon_lost = False
        while True:
            try:
                result = await in_thread(self.client.api.wait, cid, None)
                break
            except docker.errors.NotFound:
                self._pumps.pop(cid, None)
                return Exit(None, f"its container {handle['name']} is gone (removed outside jupyter-jobs, "
                                  "or lost by a restart of the Docker daemon)", lost=True)
            except (docker.errors.APIError, *_DAEMON_ERRORS):
                daemon_lost = True  # the daemon is restarting: ask again until it answers
                await asyncio.sleep(1.0)
        if pump is not None and pump.done.is_set() and pump.error is not None:
            # The stream broke (the daemon went away): catch up from the cursor, no gap.
            pump = self._pump(job, cid, folder)
        if pump is not None:
            try:
                await pump.finished(timeout=10)
            except asyncio.TimeoutError:
                self.log.warning("jupyter-jobs: log stream of %s did not end", handle["name"])
            self._pumps.pop(cid, None)
        code = int(result.get("StatusCode", -1))
        state = await asyncio.to_thread(self._state, cid)
        detail = ""
        if state.get("OOMKilled"):
            detail = f"out of memory: it reached its {job.allocation.memory_mib} MiB limit"
        elif daemon_lost:
            detail = "the Docker daemon restarted while it ran"
        elif code > 128 and code - 128 in signal.valid_signals():
            name = signal.Signals(code - 128).name
            if cid in self._stopping:
                detail = f"killed by {name}"
            else:
                detail = f"killed by {name} from outside jupyter-jobs (`docker stop`, or the Docker daemon shutting down)"
        self._stopping.discard(cid)
        return Exit(code, detail)

    def _state(self, cid: str) -> dict[str, Any]:
        try:
            return self.client.api.inspect_container(cid)["State"]
        except docker.errors.DockerException:
            return {}

    async def stop(self, job: JobRecord, handle: dict[str, Any], grace: float) -> None:
        self._stopping.add(handle["container"])
        try:
            # docker-init (PID 1, init=True) forwards SIGTERM; after `grace` seconds Docker kills.
            await asyncio.to_thread(self.client.api.stop, handle["container"], timeout=max(1, int(round(grace))))
        except docker.errors.NotFound:
            pass

    async def collect(self, job: JobRecord, folder: JobDir) -> None:
        """Outputs are already on the host (bind mount); remove the container."""
        cid = job.handle.get("container")
        if cid:
            try:
                await asyncio.to_thread(self.client.api.remove_container, cid, force=True)
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
                "command": " ".join(container.attrs["Config"]["Cmd"][2:]), "image": container.attrs["Config"]["Image"]}

    async def remove_orphans(self, active: set[int]) -> list[str]:
        containers = await asyncio.to_thread(
            self.client.containers.list, all=True, filters={"label": f"{LABEL}.server={self.server_id}"}
        )
        removed = []
        for container in containers:
            job_id = int(container.labels.get(f"{LABEL}.job_id", "0"))
            if job_id not in active:
                await asyncio.to_thread(container.remove, force=True)
                removed.append(f"container {container.name} of job {job_id}, which is not running")
        return removed


def _reason(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip()

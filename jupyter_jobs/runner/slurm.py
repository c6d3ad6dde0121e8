"""The Slurm backend: jobs go to an existing cluster through sbatch, squeue --json and scancel.

Queueing is Slurm's: every job is submitted at once and stays Pending here, with Slurm's reason
in plain words, until Slurm runs it. Job folders (code, outputs, log) must be on a filesystem the
nodes share (``JobManager.data_dir``); the batch script appends the job's output to its log file
and records its exit status beside it. pyslurm does not build against Debian's Slurm, and the
REST schema changes every release, so the CLIs are the stable interface.
"""
from __future__ import annotations

import asyncio
import json
import math
import os
import posixpath
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

from traitlets import Bool, Float, List, Unicode

from ..errors import BackendError, BackendUnavailable
from ..jobdir import JobDir
from ..models import JobRecord
from .backend import Backend, Exit, Launch, StateCallback
from .environment import (
    DISPLAYS_IN_CONTAINER,
    JOBSIDE_IN_CONTAINER,
    job_command,
    job_environment,
    owner_folder,
    read_only_datasets,
)
from .identity import INHERITED, RunAs

#: Where a container job's environment (env.python) is mounted, under its folder's name.
ENV_IN_CONTAINER = "/opt/jupyter-jobs/env"

_EXIT_FILE = "exit-status"
_HANDLE_FILE = "handle.json"
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
            "BOOT_FAIL", "DEADLINE"}
RUNNING = {"RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "STOPPED", "RESIZING", "SIGNALING"}
#: Slurm's pending reasons (squeue's state_reason), in plain words.
REASONS = {
    "Resources": "waiting for resources: the CPUs, memory or GPUs it asks for are in use on the cluster",
    "Priority": "waiting behind jobs with a higher priority in the cluster's queue",
    "Dependency": "waiting for the jobs it depends on",
    "ReqNodeNotAvail": "waiting: the nodes it needs are down, drained or reserved",
    "PartitionTimeLimit": "its max-runtime is longer than the partition allows; shorten it",
    "PartitionNodeLimit": "it asks for more nodes than the partition allows",
    "QOSMaxJobsPerUserLimit": "waiting: you have as many jobs running as your QOS allows",
    "AssocGrpGRES": "waiting: your group's GPU quota is in use",
    "BeginTime": "waiting for its start time",
    "JobHeldUser": "held by its user (scontrol release)",
    "JobHeldAdmin": "held by an administrator",
    "None": "queued in Slurm",
}


#: Pending reasons that mean Slurm will never run the job as asked.
NEVER = {"PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "BadConstraints", "AccountNotAllowed",
         "QOSNotAllowed", "PartitionDown", "InvalidAccount", "InvalidQOS"}
REASONS.update({
    "PartitionConfig": "Slurm cannot run it: no partition has nodes that match what it asks for (nodes, CPUs, GPUs)",
    "BadConstraints": "Slurm cannot run it: its constraints match no node",
    "PartitionDown": "Slurm cannot run it: the partition is down",
})


#: What a directive may not carry: a control character could end its line and start another
#: (NUL, CR, LF, the other C0 controls, DEL).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: What no value in the script may carry: a shell variable cannot hold NUL, and a lone surrogate
#: cannot be written as UTF-8.
_UNWRITABLE = re.compile(r"[\x00\ud800-\udfff]")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Characters an #SBATCH value may carry without quotes.
_PLAIN = re.compile(r"^[A-Za-z0-9_./:=,+@%-]+$")


def _refuse(pattern: re.Pattern[str], what: str, value: str) -> str:
    found = pattern.search(value)
    if found:
        raise BackendError(f"{what} contains the character {found.group()!r}, which cannot go into a Slurm batch "
                           f"script: {value!r}; remove it")
    return value


def directive(option: str, value: object) -> str:
    r"""One ``#SBATCH --option=value`` line, quoted as sbatch (not the shell) reads it.

    sbatch splits a directive at blanks and stops at ``#``; inside single quotes both are plain
    characters and a backslash escapes the next one (``'a\\b'`` is ``a\b``, ``'it\'s'`` is ``it's``).
    A value that could end the line is refused.
    """
    text = _refuse(_CONTROL, f"the Slurm option --{option}", _refuse(_UNWRITABLE, f"--{option}", str(value)))
    if not _PLAIN.match(text):
        text = "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return f"#SBATCH --{option}={text}"


def _log_pattern(path: Path) -> str:
    """The log's path as sbatch's --output pattern, which reads ``%j``... and drops backslashes."""
    text = str(path)
    if "\\" in text:
        raise BackendError(f"the job's log {text!r} has a backslash, which Slurm's --output cannot name (it "
                           "drops backslashes); choose a JobManager.data_dir without one")
    return text.replace("%", "%%")


def _as_owner(folder: JobDir, run_as: RunAs, secrets: list[str] | None = None) -> list[str]:
    """sbatch's options that run a job as ``run_as`` (root may submit for any user), after making the one file
    of ``run/`` the job writes, its exit status, its own. Of the server's environment only :data:`INHERITED`
    variables go with it (sbatch exports all of it by default: the service's secrets too)."""
    exit_file = folder.run / _EXIT_FILE
    fd = os.open(exit_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchown(fd, run_as.uid, run_as.gid)
    finally:
        os.close(fd)
    os.chmod(folder.run, 0o711)  # entered for that file, never listed
    names = sorted(name for name in os.environ if name in INHERITED or name.startswith("LC_")) + (secrets or [])
    return [f"--uid={run_as.uid}", f"--gid={run_as.gid}", f"--export={','.join(names or ['NONE'])}"]


def plain_reason(reason: str, slurm_id: str) -> str:
    words = REASONS.get(reason, f"waiting in Slurm ({reason})")
    return f"{words} [Slurm job {slurm_id}: {reason}]"


def decode_exit(raw: int) -> int:
    """squeue's exit_code is a wait status: 768 is exit 3; 15 is SIGTERM (128 + 15)."""
    if raw & 0x7F:
        return 128 + (raw & 0x7F)
    return raw >> 8


class SlurmBackend(Backend):
    """Submits jobs to a Slurm cluster."""

    name = "slurm"
    schedules_itself = True
    partition = Unicode("", config=True, help="Default partition; an instance type's `partition` wins. Empty: Slurm's default.")
    partitions = Unicode(
        "", config=True, help="Instance type to partition, as 'gpu=a100,cpu=batch' (instance types may also say it).")
    sbatch_args = List(Unicode(), config=True, help="Extra sbatch arguments for every job (e.g. ['--account=ml']).")
    poll_seconds = Float(1.0, config=True, help="How often squeue is asked about each job.")
    container = Bool(
        False, config=True,
        help="Run each job in its image (`docker run --rm --init` on the node; cancel ends it) instead of directly.")
    image = Unicode("jupyter-jobs/base:bookworm", config=True, help="Image of container jobs that name none.")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        try:
            out = subprocess.run(["sinfo", "--version"], capture_output=True, text=True, timeout=15, check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            raise BackendUnavailable(f"Slurm does not answer (sinfo --version: {exc}); is SLURM_CONF set?") from None
        self.version = out.stdout.strip()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "isolation": "cluster", "version": self.version, "container": self.container}

    def default_image(self) -> str | None:
        return self.image if self.container else None

    def _partition(self, launch: Launch) -> str:
        mapping = dict(item.split("=", 1) for item in self.partitions.split(",") if "=" in item)
        return launch.instance_type.partition or mapping.get(launch.instance_type.name) or self.partition

    # -- the batch script ----------------------------------------------------------------------
    def script(self, launch: Launch) -> tuple[str, str]:
        """The sbatch script of a job, and its command."""
        job, folder, itype = launch.job, launch.folder, launch.instance_type
        replicas = job.spec.replicas
        env = job_environment(job, code=str(folder.code), outputs=str(folder.outputs),
                              datasets={d.name: d.path for d in launch.datasets}, gpus=(), jobside=self.jobside_dir,
                              displays=str(folder.displays), volumes={v.name: v.path for v in launch.volumes})
        for name in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"):
            env.pop(name)  # Slurm sets the GPUs it gives the job
        command = job_command(job, env)
        # Only values of our own make directives (the job's id, the admin's paths and sizes); every
        # value a user wrote goes into the body, quoted for the shell.
        lines = [
            "#!/bin/bash",
            directive("job-name", self.job_name(job)),
            directive("output", _log_pattern(folder.log)),
            "#SBATCH --open-mode=append",
            directive("chdir", folder.code),
            directive("nodes", replicas),
            directive("ntasks", replicas),
            "#SBATCH --ntasks-per-node=1",
            directive("cpus-per-task", max(1, math.ceil(itype.cpus))),
            directive("mem", f"{itype.memory_mib}M"),
        ]
        if itype.gpus:
            lines.append(directive("gpus-per-task", itype.gpus))
        if job.spec.max_runtime:  # a backstop: the pool stops it on time
            lines.append(directive("time", math.ceil(job.spec.max_runtime / 60) + 1))
        if self._partition(launch):
            lines.append(directive("partition", self._partition(launch)))
        if launch.run_as is not None:  # a login's variables: sbatch passes none of root's (see `start`)
            lines += [self._export(name, value) for name, value in launch.run_as.environment().items()]
        lines += [self._export(name, value) for name, value in env.items()]
        if launch.python_bin:  # the job's environment (env.python) first: `python` is its python
            venv = posixpath.dirname(launch.python_bin)
            lines += [f"export PATH={shlex.quote(launch.python_bin)}:\"$PATH\"", f"export VIRTUAL_ENV={shlex.quote(venv)}"]
        # Datasets are read-only, as in a container: bind-mounted so in a mount namespace of the job's own.
        owner = (launch.run_as.uid, launch.run_as.gid) if launch.run_as is not None else None
        run = shlex.join(read_only_datasets(_refuse(_UNWRITABLE, "the command", command),
                                            [d.path for d in launch.datasets], owner))
        if self.container:
            run, command = self._docker(launch)
        exit_file = shlex.quote(str(folder.run / _EXIT_FILE))
        # The working-dir is the user's: a `cd` in the body, never a directive (a newline in it
        # would start an #SBATCH line of the user's own). A missing one fails the job, in its log.
        workdir = _refuse(_UNWRITABLE, "working-dir", str(folder.code / job.spec.working_dir))
        lines.append(f"cd -- {shlex.quote(workdir)} || "
                     f'{{ rc=$?; printf "%s" "$rc" > {exit_file}; exit "$rc"; }}')
        if replicas == 1:
            lines += [f"{run}", "rc=$?"]
        else:  # one task per node, with the variables torch.distributed expects
            lines += [
                'export MASTER_ADDR=$(scontrol show node "$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)"'
                " | grep -o 'NodeAddr=[^ ]*' | cut -d= -f2)",
                "export MASTER_PORT=$((29500 + SLURM_JOB_ID % 1000))",
                "export WORLD_SIZE=$SLURM_NTASKS",
                f"export JJ_RUN={shlex.quote(run)}",
                "srun --kill-on-bad-exit=1 bash -c "
                "'export RANK=$SLURM_PROCID LOCAL_RANK=$SLURM_LOCALID NODE_RANK=$SLURM_NODEID; eval \"$JJ_RUN\"'",
                "rc=$?",
            ]
        lines += [f'printf "%s" "$rc" > {exit_file}', 'exit "$rc"']
        return "\n".join(lines) + "\n", command

    @staticmethod
    def _export(name: str, value: str) -> str:
        """``export NAME='value'``, refusing a name that is not a shell variable's and a value no shell holds.

        A newline in the value is harmless: sbatch reads directives only above the first command.
        """
        if not _VAR_NAME.match(name):
            raise BackendError(f"the variable name {name!r} is not one a shell accepts (letters, digits and _, "
                               "not first a digit); rename it")
        return f"export {name}={shlex.quote(_refuse(_UNWRITABLE, f'the value of {name}', value))}"

    def _docker(self, launch: Launch) -> tuple[str, str]:
        """`docker run` of the job with the container contract (/code, /outputs, /data/<owner>/<name>)."""
        job, folder = launch.job, launch.folder
        # The owner names a folder in the container: never a path or shell word of the user's choosing.
        data = {d.name: posixpath.join("/data", owner_folder(job.owner), d.name) for d in launch.datasets}
        env = job_environment(job, code="/code", outputs="/outputs", datasets=data, gpus=(),
                              jobside=JOBSIDE_IN_CONTAINER if self.jobside_dir else "", displays=DISPLAYS_IN_CONTAINER,
                              volumes={v.name: v.in_container for v in launch.volumes})
        for name in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"):
            env.pop(name)
        command = job_command(job, env)
        folder.displays.touch()  # a bind mount needs it to exist
        volumes = [(str(folder.code), "/code"), (str(folder.outputs), "/outputs"),
                   (str(folder.displays), DISPLAYS_IN_CONTAINER)]
        if launch.python_target:  # env.python: its packages first on the image's python's path
            where = posixpath.join(ENV_IN_CONTAINER, posixpath.basename(launch.python_target))
            volumes.append((launch.python_target, f"{where}:ro"))
            env["PYTHONPATH"] = ":".join(p for p in (where, env.get("PYTHONPATH", "")) if p)
        volumes += [(d.path, f"{data[d.name]}:ro") for d in launch.datasets]
        volumes += [(v.path, v.in_container) for v in launch.volumes]  # written, and kept
        if self.jobside_dir:
            volumes.append((self.jobside_dir, f"{JOBSIDE_IN_CONTAINER}:ro"))
        for source, target in volumes:
            if ":" in source or ":" in target.removesuffix(":ro"):  # docker -v splits at colons
                raise BackendError(f"{source!r} -> {target!r}: `docker run -v` cannot mount a path with a ':'; "
                                   "rename the folder, the dataset or the volume")
        mounts = [f"-v {shlex.quote(f'{source}:{target}')}" for source, target in volumes]
        for name, value in env.items():
            self._export(name, value)  # the names and values a shell can hold, as in the direct mode
        variables = " ".join(f"-e {shlex.quote(f'{k}={v}')}" for k, v in env.items())
        # Secrets by name only: `docker run` takes their values from its own environment (sbatch's, see `start`).
        variables += "".join(f" -e {name}" for name in sorted(launch.secrets))
        # --init: docker-init forwards Slurm's SIGTERM, so scancel ends the container too.
        run = (f"docker run --rm --init --network none --cap-drop ALL --security-opt no-new-privileges "
               f"--pids-limit 4096 --name jj-$SLURM_JOB_ID-$SLURM_PROCID "
               f"-w {shlex.quote(posixpath.join('/code', job.spec.working_dir))} {' '.join(mounts)} {variables} "
               f"-e CUDA_VISIBLE_DEVICES {shlex.quote(job.image or self.image)} "
               f"/bin/sh -c {shlex.quote(_refuse(_UNWRITABLE, 'the command', command))}")
        return run, command

    # -- the protocol --------------------------------------------------------------------------
    async def prepare(self, launch: Launch) -> None:
        """Build the job's Python environment (``env.python``) once per hash, by the server, in the
        environment cache on the file system the nodes share: compute nodes need no package index."""
        if launch.python is None or launch.environments is None:
            return
        if self.container:  # the packages for Linux, mounted read-only from the shared cache into the container
            prepared = await launch.environments.prepare(launch.python, "target", say=launch.folder.say,
                                                         report=launch.report)
            launch.python_target = str(prepared.path)
            launch.environment_outcome = launch.environments.outcome(prepared, "target")
            return
        prepared = await launch.environments.prepare(launch.python, "venv", say=launch.folder.say,
                                                     report=launch.report)
        launch.python_bin = str(prepared.path / "bin")
        launch.environment_outcome = launch.environments.outcome(prepared, "venv")

    async def start(self, launch: Launch) -> dict[str, Any]:
        if launch.run_as is not None and self.container:
            raise BackendError("SlurmBackend.container cannot run jobs as their owners (JobManager.run_as_owner): "
                               "`docker run` needs the Docker daemon, which is root's; run them directly")
        script, command = self.script(launch)
        path = launch.folder.run / "job.sbatch"
        path.write_text(script)
        (launch.folder.run / _EXIT_FILE).unlink(missing_ok=True)
        as_owner = _as_owner(launch.folder, launch.run_as, sorted(launch.secrets)) if launch.run_as is not None else []
        # Secrets reach the job through sbatch's environment, which Slurm hands to the job (and keeps in its
        # own state, readable by root and SlurmUser only): never in the script, a file of the job's folder.
        result = await asyncio.to_thread(
            subprocess.run, ["sbatch", "--parsable", *as_owner, *self.sbatch_args, str(path)],
            capture_output=True, text=True, timeout=60, env={**os.environ, **launch.secrets} if launch.secrets else None,
        )
        if result.returncode != 0:
            raise BackendError(f"Slurm refused the job: {result.stderr.strip() or result.stdout.strip()}")
        slurm_id = result.stdout.strip().split(";")[0]
        handle = {"slurm_id": slurm_id, "command": command, "exit_file": str(launch.folder.run / _EXIT_FILE)}
        launch.folder.write_json(_HANDLE_FILE, handle)
        launch.folder.say(f"submitted to Slurm as job {slurm_id}")
        return handle

    async def _query(self, slurm_id: str) -> dict[str, Any] | None:
        """squeue's record of the job; None when Slurm no longer knows it. Raises when it does not answer."""
        result = await asyncio.to_thread(
            subprocess.run, ["squeue", "--json", "-t", "all", "-j", slurm_id], capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            if "Invalid job id" in result.stderr:
                return None
            raise BackendUnavailable(result.stderr.strip() or "squeue failed")
        # Slurm 22.05's `squeue --json` ignores -j and lists every job: pick ours out.
        wanted = int(slurm_id)
        return next((j for j in json.loads(result.stdout).get("jobs", []) if j.get("job_id") == wanted), None)

    async def wait(self, job: JobRecord, handle: dict[str, Any], on_state: StateCallback | None = None) -> Exit:
        slurm_id = handle["slurm_id"]
        while True:
            try:
                record = await self._query(slurm_id)
            except (BackendUnavailable, OSError, subprocess.SubprocessError, ValueError):
                await asyncio.sleep(max(self.poll_seconds, 2.0))  # slurmctld restarting: ask again
                continue
            if record is None:
                return self._forgotten(handle)
            state = record.get("job_state", "")
            reason = record.get("state_reason", "None")
            if state == "PENDING" and reason in NEVER:  # it would wait forever: say so and end it
                await self.stop(job, handle, 0)
                return Exit(None, plain_reason(reason, slurm_id))
            if state == "PENDING" and on_state:
                on_state("pending", plain_reason(reason, slurm_id))
            elif state in RUNNING and on_state:
                on_state("running", f" (Slurm job {slurm_id} on {record.get('nodes', '?')})")
            elif state in FINISHED:
                return self._exit(handle, state, record)
            await asyncio.sleep(self.poll_seconds)

    def _exit(self, handle: dict[str, Any], state: str, record: dict[str, Any]) -> Exit:
        code = self._status(handle)
        if code is None:
            code = decode_exit(int(record.get("exit_code") or 0))
        detail = {"TIMEOUT": "Slurm's time limit ended it", "OUT_OF_MEMORY": "out of memory",
                  "NODE_FAIL": "its node failed", "PREEMPTED": "preempted by Slurm",
                  "CANCELLED": "cancelled in Slurm"}.get(state, "")
        return Exit(code, detail)

    def _forgotten(self, handle: dict[str, Any]) -> Exit:
        code = self._status(handle)
        if code is not None:
            return Exit(code)
        return Exit(None, f"Slurm no longer knows job {handle['slurm_id']} and it left no exit status", lost=True)

    @staticmethod
    def _status(handle: dict[str, Any]) -> int | None:
        try:
            return int(Path(handle["exit_file"]).read_text().strip())
        except (OSError, ValueError):
            return None

    async def stop(self, job: JobRecord, handle: dict[str, Any], grace: float) -> None:
        # Slurm sends SIGTERM, then SIGKILL after its KillWait.
        await asyncio.to_thread(subprocess.run, ["scancel", handle["slurm_id"]], capture_output=True, timeout=30)

    async def collect(self, job: JobRecord, folder: JobDir) -> None:
        """A container job's set-id outputs would hold on the shared file system: clear them."""
        if self.container:
            await asyncio.to_thread(folder.clear_set_id_bits)

    def job_name(self, job: JobRecord) -> str:
        """The Slurm job name of one attempt: this server's, unique, so it can be found again."""
        return f"jj-{self.server_id}-{job.id}-{job.attempt}" if self.server_id else f"jj-{job.id}"

    async def recover(self, job: JobRecord, folder: JobDir) -> dict[str, Any] | None:
        """The handle of a job submitted before a restart: from the job folder, or, when the
        server stopped between ``sbatch`` and writing it, from Slurm by the attempt's name (so
        it is never submitted twice)."""
        handle = folder.read_json(_HANDLE_FILE)
        if handle or not (folder.run / "job.sbatch").exists():
            return handle
        result = await asyncio.to_thread(
            subprocess.run, ["squeue", "-h", "-t", "all", "--name", self.job_name(job), "-o", "%i"],
            capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise BackendUnavailable(f"Slurm does not answer (squeue: {result.stderr.strip()})")
        ids = result.stdout.split()
        if not ids:
            return None
        handle = {"slurm_id": ids[0], "command": job.command, "exit_file": str(folder.run / _EXIT_FILE)}
        folder.write_json(_HANDLE_FILE, handle)
        folder.say(f"found its Slurm job {ids[0]} again (submitted just before the server stopped)")
        return handle

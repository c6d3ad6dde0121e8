"""The environment contract every backend gives a job, with the backend's own paths."""
from __future__ import annotations

import os
import posixpath
import re
import uuid
from typing import Mapping

from ..models import JobRecord
from ..spec import substitute
from ..volumes import volume_var

#: Where the job-side package (:mod:`jupyter_jobs.jobside`) is mounted in a container.
JOBSIDE_IN_CONTAINER = "/opt/jupyter-jobs/jobside"
#: Where the job's displays file (``JOB_DISPLAYS``: what a job cell displayed) is mounted in a container.
DISPLAYS_IN_CONTAINER = "/.jupyter-jobs/displays.jsonl"


def job_environment(
    job: JobRecord, *, code: str, outputs: str, datasets: Mapping[str, str], gpus: tuple[int, ...],
    jobside: str = "", displays: str = "", volumes: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Variables of a job: env.vars, then JOB_*, GPUs and the vars of inputs, outputs, datasets and volumes.

    ``code``, ``outputs``, ``datasets``, ``volumes`` (name -> path: ``JOB_VOLUME_<NAME>`` and the
    entry's var), ``displays`` (the file a job cell's rich outputs go to,
    ``JOB_DISPLAYS``) and ``jobside`` (the folder holding ``jupyter_jobs_jobside``,
    appended to ``PYTHONPATH``) are paths as the job sees them (host paths for the local backend,
    ``/code`` ... in a container).
    """
    visible = ",".join(str(i) for i in gpus)
    # The spec's own variables first: what the product sets below always wins (the parser
    # refuses the reserved names; this keeps a record stored before that from overriding them).
    env = dict(job.spec.env)
    env.update({
        "JOB_ID": str(job.id),
        "JOB_NAME": job.name,
        "JOB_ATTEMPT": str(job.attempt),
        "JOB_OUTPUTS": outputs,
        "JOB_CODE": code,
        "JOB_USER": job.owner,
        "JOB_GROUP": job.spec.group,
        "PYTHONUNBUFFERED": "1",
        # Exactly the job's GPUs. Indices are nvidia-smi's, so CUDA must count in PCI order too.
        "CUDA_VISIBLE_DEVICES": visible,
        "NVIDIA_VISIBLE_DEVICES": visible if visible else "void",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    })
    if displays:
        env["JOB_DISPLAYS"] = displays
    if jobside:  # after the spec's own PYTHONPATH: the job's modules win
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), jobside) if p)
    for item in job.spec.inputs:
        if item.var:
            env[item.var] = posixpath.join(code, item.path)
    for item in job.spec.outputs:
        if item.var:
            env[item.var] = posixpath.join(outputs, item.path)
    for ref in job.spec.datasets:
        if ref.var:
            env[ref.var] = datasets[ref.name]
    for volume in job.spec.volumes:
        env[volume_var(volume.name)] = (volumes or {})[volume.name]
        if volume.var:
            env[volume.var] = env[volume_var(volume.name)]
    return env


def job_command(job: JobRecord, env: Mapping[str, str]) -> str:
    """The spec's ``cmd`` with ``${VAR}`` replaced by args and the job's variables.

    A secret variable is never written into the command (it is recorded, shown and in argv): its
    ``${VAR}`` becomes ``"${VAR}"``, which the job's shell expands from its environment.
    """
    values = {**env, **job.spec.args}
    marks = {var: f"JJSECRET{uuid.uuid4().hex}" for var in job.spec.secrets if var not in job.spec.args}
    command = substitute(job.spec.cmd, {**values, **marks})
    for var, mark in marks.items():
        command = command.replace(mark, f'"${{{var}}}"')
    return command


def owner_folder(owner: str) -> str:
    """The owner as one folder name a job sees (``/data/<owner>/<dataset>``): letters, digits and
    ``._-`` kept, anything else ``_``, never ``.``/``..`` nor empty, so no owner name can reach
    another path or be read by a shell as more than a word."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", owner)
    return name if name.strip(".") else name.replace(".", "_") or "user"


#: Run ``$1`` with each later argument (a dataset's folder) bind-mounted read-only over itself, in a mount
#: namespace of the job's own; with ``$2`` set (a uid:gid), back as that user in a user namespace of its own.
_READ_ONLY = (
    '_jj_cmd=$1 _jj_as=$2; shift 2; '
    'for _jj_d; do mount --bind -- "$_jj_d" "$_jj_d" && mount -o remount,bind,ro -- "$_jj_d" '
    '|| { echo "jupyter-jobs: could not make the dataset $_jj_d read-only for the job" >&2; exit 125; }; done; '
    '[ -z "$_jj_as" ] || exec unshare --user --map-user="${_jj_as%:*}" --map-group="${_jj_as#*:}" /bin/sh -c "$_jj_cmd"; '
    'exec /bin/sh -c "$_jj_cmd"'
)


def read_only_datasets(command: str, folders: list[str], as_account: tuple[int, int] | None = None) -> list[str]:
    """argv running ``command`` (a shell command) with ``folders`` read-only, as a container's datasets are.

    ``unshare --mount`` needs root. Anyone else makes the mounts as root of a user namespace of their own
    (``--map-root-user``), then runs the command as themselves again in a nested one, where those mounts
    are locked read-only (the job keeps its uid and gid; supplementary groups read as ``nogroup``). Where
    neither can be had the job fails before its command runs, saying so (exit 125): never with its
    datasets writable. ``as_account`` (uid, gid): the argv runs as that account (a Slurm job submitted for
    its owner), not as this process.
    """
    if not folders:
        return ["/bin/sh", "-c", command]
    uid, gid = as_account or (os.geteuid(), os.getegid())
    root = uid == 0
    as_user = "" if root else f"{uid}:{gid}"
    return ["unshare", *([] if root else ["--user", "--map-root-user"]), "--mount", "--propagation", "private",
            "/bin/sh", "-c", _READ_ONLY, "jupyter-job", command, as_user, *folders]

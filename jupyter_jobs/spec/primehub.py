"""PrimeHub jobs: the job JSON of its API (``displayName``, ``instanceType``, ``image``, ``command``,
``groupName``, ...) or the ``PhJob`` resource that wraps the same fields in ``spec``.

``command`` is PrimeHub's sequence of shell commands, run as written (a ``$`` stays the shell's).
PrimeHub jobs read their files from the group volume; here the scripts the command runs
(``python -u train.py``) are shipped from the spec's folder instead. ``groupName`` becomes the
job's ``group`` (its quota and who sees it, as on PrimeHub) and, with ``userName``, the variables
``PRIMEHUB_GROUP`` and ``PRIMEHUB_USER`` that PrimeHub sets.

A group volume in the command (``cd /project/research; python -u train.py``, PrimeHub's Example 1)
is the writable volume of that name (``Cluster.volumes``): the job mounts it, ``/project/research``
becomes ``${JOB_VOLUME_RESEARCH}`` for the shell, and scripts run after a ``cd`` into it are the
volume's, not shipped. A group volume this server does not have refuses the spec, naming it.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from ..volumes import volume_var
from .foreign import Problems, Site, Translation, escape_dollars, scripts_in

#: PrimeHub's group volume in a command: ``/project/<group>`` as a word of its own or a path's start.
_GROUP_VOLUME = re.compile(r"(?<![\w./$-])/project/([A-Za-z0-9][A-Za-z0-9._-]*)(?=[/\s;&|\"')]|$)")

#: PrimeHub fields with no equivalent, and why they can be left out.
_IGNORED = {
    "groupId": "the group is groupName",
    "userId": "the job's owner is whoever submits it",
    "id": "jupyter-jobs numbers its jobs",
    "ttlSecondsAfterFinished": "finished jobs stay until deleted",
    "status": "set by the server",
    "phase": "set by the server",
    "schedule": "schedules are not supported",
}


def from_primehub(data: Mapping[str, Any], site: Site = Site()) -> Translation:
    """The native spec of a PrimeHub job."""
    problems = Problems("PrimeHub")
    fields: Mapping[str, Any] = data
    labels: dict[str, Any] = {}
    name = None
    if data.get("kind") == "PhJob":
        fields = data.get("spec") if isinstance(data.get("spec"), Mapping) else {}
        metadata = data.get("metadata") if isinstance(data.get("metadata"), Mapping) else {}
        name = metadata.get("name")
        if isinstance(metadata.get("labels"), Mapping):
            labels.update(metadata["labels"])
        for key in sorted(set(metadata) - {"name", "labels"}):
            problems.ignore(f"metadata.{key}", "Kubernetes bookkeeping")
        for key in sorted(set(data) - {"apiVersion", "kind", "metadata", "spec"}):
            problems.ignore(key, _IGNORED.get(key, ""))
        where = "spec."
    else:
        where = ""
    spec: dict[str, Any] = {}
    env: dict[str, Any] = {}
    command = fields.get("command")
    if not isinstance(command, str) or not command.strip():
        problems.refuse(f"{where}command", "required: the shell commands the job runs")
    else:
        spec["cmd"], volumes = _group_volumes(escape_dollars(command), site, problems, f"{where}command")
        # After a `cd` into a group volume, scripts are the volume's own files.
        shipped = command.split("cd /project/")[0] if volumes else command
        scripts = scripts_in(shipped.split())
        if scripts:
            spec["inputs"] = scripts
        if volumes:
            spec["volumes"] = volumes
    for key, value in fields.items():
        if key == "command":
            continue
        if key == "displayName":
            name = value
        elif key == "instanceType":
            spec["instance-type"] = value
        elif key == "image":
            spec["image"] = value
        elif key == "activeDeadlineSeconds":
            spec["max-runtime"] = value
        elif key == "requeueLimit":
            spec["retries"] = value
        elif key == "groupName":  # the job's group (quotas, who sees it), as on PrimeHub
            spec["group"] = value
            env["PRIMEHUB_GROUP"] = value
        elif key == "userName":
            env["PRIMEHUB_USER"] = value
        else:
            problems.ignore(f"{where}{key}", _IGNORED.get(key, ""))
    if name is not None:
        spec["name"] = name
    if labels:
        spec["labels"] = labels
    if env:
        spec["env"] = {"vars": env}
    return problems.finish(spec)


def _group_volumes(cmd: str, site: Site, problems: Problems, field: str) -> tuple[str, list[str]]:
    """``cmd`` with each ``/project/<group>`` as its volume's variable, and the volumes it names."""
    names: list[str] = []
    for name in dict.fromkeys(m.group(1) for m in _GROUP_VOLUME.finditer(cmd)):
        if name in site.volumes or site.assume_mapped:
            names.append(name)
        else:
            problems.refuse(field, f"/project/{name} is PrimeHub's group volume {name!r}, and this server has no "
                            f"volume of that name; ask the admin to add it to c.Cluster.volumes, or ship the "
                            "files as inputs")
    # $$ so the parser leaves it to the shell, which reads it in "..." as well as outside them.
    rewritten = _GROUP_VOLUME.sub(lambda m: f"$${{{volume_var(m.group(1))}}}" if m.group(1) in names else m.group(0), cmd)
    return rewritten, names

"""PrimeHub jobs: the job JSON of its API (``displayName``, ``instanceType``, ``image``, ``command``,
``groupName``, ...) or the ``PhJob`` resource that wraps the same fields in ``spec``.

``command`` is PrimeHub's sequence of shell commands, run as written (a ``$`` stays the shell's).
PrimeHub jobs read their files from the group volume; here the scripts the command runs
(``python -u train.py``) are shipped from the spec's folder instead. ``groupName`` becomes the
job's ``group`` (its quota and who sees it, as on PrimeHub) and, with ``userName``, the variables
``PRIMEHUB_GROUP`` and ``PRIMEHUB_USER`` that PrimeHub sets.
"""
from __future__ import annotations

from typing import Any, Mapping

from .foreign import Problems, Translation, escape_dollars, scripts_in

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


def from_primehub(data: Mapping[str, Any]) -> Translation:
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
        spec["cmd"] = escape_dollars(command)
        scripts = scripts_in(command.split())
        if scripts:
            spec["inputs"] = scripts
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

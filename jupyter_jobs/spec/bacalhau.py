"""Bacalhau job specs (``Type: batch``, ``Tasks[0]`` with a Docker engine), as YAML or as the API's
``{"Job": {...}}``.

The task's ``Entrypoint`` and ``Parameters`` become ``cmd`` word for word (a ``$`` stays the
shell's). Each of ``ResultPaths`` (``{Name: outputs, Path: /outputs}``) becomes an output folder
named ``Name`` with the variable ``NAME`` (``$OUTPUTS``), and the container path is replaced by that
variable wherever the command names it, so the job writes its results where jupyter-jobs collects
them on every backend. ``Resources`` choose the smallest instance type that has them;
``Timeouts.ExecutionTimeout`` is ``max-runtime`` and ``QueueTimeout`` is ``queue-timeout`` (both
seconds); ``Labels``, ``Meta``, ``Priority`` and ``Count`` (``replicas``) keep their meaning.
"""
from __future__ import annotations

import re
import shlex
from typing import Any, Mapping

from .foreign import Problems, Site, Translation, escape_dollars, pick_instance_type, scripts_in

_SERVER_SET = ("ID", "State", "Version", "Revision", "CreateTime", "ModifyTime")
_JOB_KEYS = {"Name", "Type", "Count", "Priority", "Labels", "Meta", "Tasks", "Constraints", "Namespace",
             *_SERVER_SET}
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def from_bacalhau(data: Mapping[str, Any], site: Site) -> Translation:
    """The native spec of a Bacalhau job."""
    problems = Problems("Bacalhau")
    job = data["Job"] if isinstance(data.get("Job"), Mapping) else data
    spec: dict[str, Any] = {}
    if job.get("Type", "batch") != "batch":
        problems.refuse("Type", f"{job.get('Type')!r} jobs run on every node or until stopped; jupyter-jobs runs "
                        "batch jobs, which end: write Type: batch")
    for key, target in (("Name", "name"), ("Priority", "priority"), ("Labels", "labels"), ("Meta", "meta")):
        if key in job:
            spec[target] = job[key]
    if job.get("Count", 1) != 1:
        spec["replicas"] = job["Count"]
    for key in job:
        if key in ("Constraints", "Namespace"):
            problems.ignore(key, "the admin's instance types decide where a job runs")
        elif key in _SERVER_SET:
            problems.ignore(key, "set by Bacalhau's server")
        elif key not in _JOB_KEYS:
            problems.ignore(key)
    tasks = job.get("Tasks")
    if not isinstance(tasks, list) or len(tasks) != 1 or not isinstance(tasks[0], Mapping):
        problems.refuse("Tasks", "give exactly one task (Bacalhau runs one task per job too)")
        return problems.finish(spec)
    _task(tasks[0], spec, site, problems)
    return problems.finish(spec)


def _task(task: Mapping[str, Any], spec: dict[str, Any], site: Site, problems: Problems) -> None:
    outputs = _result_paths(task.get("ResultPaths"), problems)
    if outputs:
        spec["outputs"] = [{"path": name, "var": var} for name, var, _ in outputs]
    engine = task.get("Engine") if isinstance(task.get("Engine"), Mapping) else {}
    if str(engine.get("Type", "")).lower() == "docker":
        _engine(engine, task, spec, outputs, problems)
    else:
        problems.refuse("Tasks[0].Engine.Type", f"{engine.get('Type')!r} is not supported; jupyter-jobs runs "
                        "programs in Docker images (Type: docker)")
    _timeouts(task.get("Timeouts"), spec, problems)
    _resources(task.get("Resources"), spec, site, problems)
    for key in task:
        if key == "InputSources":
            problems.refuse("Tasks[0].InputSources", "jupyter-jobs fetches no data from S3, IPFS or URLs; ship "
                            "the files as inputs of a native spec, or ask the admin for a dataset")
        elif key == "Publisher":
            problems.ignore("Tasks[0].Publisher", "outputs come back through jupyter-jobs")
        elif key == "Network":
            problems.ignore("Tasks[0].Network", "the instance type decides whether a container has a network")
        elif key not in ("Engine", "ResultPaths", "Timeouts", "Resources", "Env"):
            problems.ignore(f"Tasks[0].{key}")


def _engine(engine: Mapping[str, Any], task: Mapping[str, Any], spec: dict[str, Any],
            outputs: list[tuple[str, str, str]], problems: Problems) -> None:
    """``cmd``, ``image`` and ``env.vars`` from a Docker engine's ``Params``."""
    params = engine.get("Params") if isinstance(engine.get("Params"), Mapping) else {}
    words = []
    for key in ("Entrypoint", "Parameters"):
        value = params.get(key) or []
        if isinstance(value, list) and all(isinstance(w, (str, int, float)) for w in value):
            words += [str(w) for w in value]
        else:
            problems.refuse(f"Tasks[0].Engine.Params.{key}", "expected a list of words, e.g. [python3, main.py]")
            return
    if not words:
        problems.refuse("Tasks[0].Engine.Params", "give Entrypoint or Parameters: the image's own command is "
                        "not known here")
    else:
        spec["cmd"] = " ".join(_word(w, outputs) for w in words)
        scripts = scripts_in([part for w in words for part in w.split()])
        if scripts:
            spec["inputs"] = scripts
    if params.get("Image"):
        spec["image"] = params["Image"]
    env = _variables(params.get("EnvironmentVariables"), task.get("Env"), problems)
    if env:
        spec["env"] = {"vars": env}
    for key in params:
        if key == "WorkingDirectory":
            problems.ignore("Tasks[0].Engine.Params.WorkingDirectory", "a job starts in the folder of its files")
        elif key not in ("Image", "Entrypoint", "Parameters", "EnvironmentVariables"):
            problems.ignore(f"Tasks[0].Engine.Params.{key}")


def _result_paths(value: Any, problems: Problems) -> list[tuple[str, str, str]]:
    """``(output folder, variable, container path)`` of each result path."""
    out: list[tuple[str, str, str]] = []
    if not isinstance(value, (list, type(None))):
        problems.refuse("Tasks[0].ResultPaths", "expected a list of {Name: outputs, Path: /outputs}")
        return out
    for index, item in enumerate(value or []):
        if not isinstance(item, Mapping) or not item.get("Name") or not str(item.get("Path", "")).startswith("/"):
            problems.refuse(f"Tasks[0].ResultPaths[{index}]", "expected {Name: outputs, Path: /outputs}")
            continue
        name = str(item["Name"])
        var = re.sub(r"\W", "_", name).upper()
        var = var if re.match(r"^[A-Z_]", var) else f"R_{var}"
        out.append((name, var, str(item["Path"]).rstrip("/") or "/"))
    return out


def _word(word: str, outputs: list[tuple[str, str, str]]) -> str:
    """One word of the command, shell-quoted, with each result path replaced by its output's ``${VAR}``."""
    if not outputs:
        return shlex.quote(escape_dollars(word))
    pattern = "|".join(re.escape(path) for _, _, path in sorted(outputs, key=lambda o: -len(o[2])))
    variables = {path: var for _, var, path in outputs}
    parts, last = [], 0
    for match in re.finditer(rf"(?<![\w.-])({pattern})(?![\w.-])", word):
        if match.start() > last:
            parts.append(shlex.quote(escape_dollars(word[last:match.start()])))
        parts.append("${" + variables[match.group(1)] + "}")
        last = match.end()
    if last < len(word) or not parts:
        parts.append(shlex.quote(escape_dollars(word[last:])))
    return "".join(parts)


def _variables(listed: Any, mapped: Any, problems: Problems) -> dict[str, Any]:
    env: dict[str, Any] = {}
    if not isinstance(listed, (list, type(None))):
        problems.refuse("Tasks[0].Engine.Params.EnvironmentVariables", "expected a list of NAME=value")
        return env
    for index, item in enumerate(listed or []):
        name, sep, value = str(item).partition("=")
        if not sep:
            problems.refuse(f"Tasks[0].Engine.Params.EnvironmentVariables[{index}]", "expected NAME=value")
        else:
            env[name] = value
    if isinstance(mapped, Mapping):
        env.update(mapped)
    return env


def _timeouts(value: Any, spec: dict[str, Any], problems: Problems) -> None:
    if not isinstance(value, Mapping):
        return
    for key, target in (("ExecutionTimeout", "max-runtime"), ("QueueTimeout", "queue-timeout")):
        if value.get(key):  # 0: no timeout
            spec[target] = value[key]
    for key in value:
        if key == "TotalTimeout":
            problems.ignore("Tasks[0].Timeouts.TotalTimeout", "the queue and the run are bounded apart")
        elif key not in ("ExecutionTimeout", "QueueTimeout"):
            problems.ignore(f"Tasks[0].Timeouts.{key}")


def _resources(value: Any, spec: dict[str, Any], site: Site, problems: Problems) -> None:
    if not isinstance(value, Mapping) or not value:
        return
    where = "Tasks[0].Resources"
    try:
        cpus = _cpus(value.get("CPU", 0))
        memory = _mib(value.get("Memory", 0))
        gpus = int(value.get("GPU", 0) or 0)
    except (TypeError, ValueError) as exc:
        problems.refuse(where, f"{exc}; write CPU: \"0.5\", Memory: \"1gb\", GPU: \"1\"")
        return
    for key in value:
        if key not in ("CPU", "Memory", "GPU"):
            problems.ignore(f"{where}.{key}", "instance types do not size it")
    if not site.instance_types:
        problems.ignore(where, "this server's instance types are not known here")
        return
    chosen = pick_instance_type(site.instance_types, cpus, memory, gpus)
    if chosen is None:
        known = ", ".join(f"{t.name} ({t.cpus:g} CPU, {t.memory_mib} MiB, {t.gpus} GPU)" for t in site.instance_types)
        problems.refuse(where, f"no instance type has {cpus:g} CPU, {memory} MiB and {gpus} GPU; there are {known}")
    else:
        spec["instance-type"] = chosen


def _cpus(value: Any) -> float:
    text = str(value).strip()
    try:
        return float(text[:-1]) / 1000 if text.endswith("m") else float(text or 0)
    except ValueError:
        raise ValueError(f"CPU {text!r} is not a number of CPUs") from None


def _mib(value: Any) -> int:
    """MiB from Bacalhau's sizes: ``1gb``, ``512Mb``, ``1Gi``, or bytes."""
    match = _MEMORY.match(str(value))
    if match is None:
        raise ValueError(f"Memory {str(value)!r} is not a size")
    number, unit, binary = float(match[1]), match[2].lower(), match[3].lower().startswith("i")
    base = 1024 if binary else 1000
    size = number * base ** "bkmgt".index(unit or "b")
    return int(-(-size // 2**20))

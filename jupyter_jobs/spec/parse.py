"""Parse and validate job specs (YAML or dicts) into :class:`~jupyter_jobs.models.JobSpec`.

Every problem is reported with the path of the field it is in (``outputs[1].path: ...``)
and what to do about it; all problems of a spec are reported at once.
"""
from __future__ import annotations

import copy
import difflib
import math
import posixpath
import re
import shlex
from typing import Any, Callable, Mapping

from ..errors import FieldProblem, SpecError
from ..models import DatasetRef, InputSpec, JobSpec, OutputSpec, RegistryAuth, VolumeRef
from ..pyenv.spec import PythonEnv, parse_python_env
from ..secrets import name_problem
from ..volumes import volume_var
from .limits import check_document, check_override_key, component_problem, load_yaml

#: Keys a spec may have, in their documented (hyphenated) spelling.
SPEC_KEYS = (
    "name", "desc", "cmd", "args", "inputs", "outputs", "datasets", "env", "image",
    "instance-type", "max-runtime", "retries", "priority", "labels", "working-dir", "replicas",
    "queue-timeout", "meta", "group", "volumes", "registry-auth",
)
#: Variables every job has, usable as ``${JOB_ID}`` in ``cmd``.
BUILTIN_VARS = ("JOB_ID", "JOB_NAME", "JOB_OUTPUTS", "JOB_ATTEMPT", "JOB_DISPLAYS", "JOB_CODE", "JOB_USER",
                "JOB_GROUP")
#: Variables the product sets and a job may not override (GPU confinement, the job contract,
#: how programs are found and loaded); names starting with a prefix in RESERVED_PREFIXES too.
RESERVED_VARS = frozenset({
    "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "NVIDIA_DRIVER_CAPABILITIES",
    "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL", "PATH", "LD_PRELOAD", "LD_AUDIT",
    "LD_LIBRARY_PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE",
})
RESERVED_PREFIXES = ("JOB_", "SLURM_")
#: Longest max-runtime a spec may ask for (an admin ceiling may be lower).
MAX_DURATION = 366 * 86400.0

_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VAR_REF = re.compile(r"\$(\$|\{([^}]*)\})")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|d|h|m|s)", re.IGNORECASE)
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
MAX_NAME = 128


def parse_duration(value: Any) -> float:
    """Parse ``"90s"``, ``"2h"``, ``"1h30m"``, ``"1.5h"`` or a number of seconds.

    Raises
    ------
    ValueError
        With a message saying which forms are accepted.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 15m, 2h or 1h30m")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().replace(" ", "")
        parts = _DURATION_PART.findall(text) if len(text) <= 64 and text.isascii() else []
        if not text or "".join(n + u for n, u in parts).lower() != text.lower():
            raise ValueError(f"{str(value)[:64]!r} is not a duration; write it like 90s, 15m, 2h or 1h30m")
        seconds = sum(float(n) * _UNITS[u.lower()] for n, u in parts)
    if not math.isfinite(seconds) or seconds > MAX_DURATION:
        raise ValueError(f"{str(value)[:64]!r} is too long; the longest max-runtime is {MAX_DURATION / 86400:.0f}d")
    if seconds < 0.001:
        raise ValueError(f"{str(value)[:64]!r} must be at least 1ms")
    return seconds


def load_spec_text(text: str, field: str = "") -> Any:
    """Load YAML within the spec limits (aliases, depth, size); errors become a :class:`SpecError`."""
    return load_yaml(text, field)


class _Checker:
    """Collects field problems while a spec is converted."""

    def __init__(self) -> None:
        self.problems: list[FieldProblem] = []

    def add(self, field: str, message: str) -> None:
        self.problems.append(FieldProblem(field, message))

    def string(self, field: str, value: Any, *, allow_empty: bool = False) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.add(field, f"expected a string, got {_type_name(value)}")
            return None
        text = str(value)
        if not allow_empty and not text.strip():
            self.add(field, "must not be empty")
            return None
        return text

    def integer(self, field: str, value: Any, low: int, high: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(field, f"expected a whole number between {low} and {high}, got {_type_name(value)}")
            return None
        if not low <= value <= high:
            self.add(field, f"{value} is out of range; use a number between {low} and {high}")
            return None
        return value

    def duration(self, field: str, value: Any) -> float | None:
        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.add(field, str(exc))
            return None

    def var_name(self, field: str, value: Any) -> str | None:
        name = self.string(field, value)
        if name is not None and not _VAR_NAME.match(name):
            self.add(field, f"{name!r} is not a valid variable name; use letters, digits and _ (e.g. DATA_DIR)")
            return None
        return name

    def job_var(self, field: str, value: Any) -> str | None:
        """A variable the job's environment will hold: not one the product sets itself."""
        name = self.var_name(field, value)
        if name is not None and (name in RESERVED_VARS or name.startswith(RESERVED_PREFIXES)):
            self.add(field, f"{name} is set by jupyter-jobs (it confines the job to its GPUs, files and "
                            "programs) and cannot be set by a spec; choose another name")
            return None
        return name

    def relative_path(self, field: str, value: Any) -> str | None:
        path = self.string(field, value)
        if path is None:
            return None
        problem = _path_problem(path)
        if problem:
            self.add(field, problem)
            return None
        return posixpath.normpath(path)

    def scalar_map(self, field: str, value: Any, key_check: Callable[[str, Any], Any], *,
                   keep_type: bool = False) -> dict[str, Any]:
        """A mapping of names to scalars, as text; with ``keep_type`` (``args``) a number stays a number and a
        boolean a boolean, as the user wrote it, so a rerun's form and the stored spec show what was given."""
        if not isinstance(value, Mapping):
            self.add(field, f"expected a mapping of names to values, got {_type_name(value)}")
            return {}
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key_check(f"{field}.{key}", key) is None:
                continue
            if isinstance(item, (dict, list)) or item is None:
                self.add(f"{field}.{key}", f"expected a string or number, got {_type_name(item)}")
                continue
            if keep_type and isinstance(item, float) and not math.isfinite(item):
                self.add(f"{field}.{key}", f"{item} is not a number a job can be given; write a finite number")
                continue
            out[str(key)] = item if keep_type and isinstance(item, (str, int, float, bool)) else scalar_text(item)
        return out


def _path_problem(path: str) -> str | None:
    if component_problem(path):
        return f"{path[:60]!r}... {component_problem(path)}"
    if path.startswith("/") or path.startswith("~") or re.match(r"^[A-Za-z]:[\\/]", path):
        return f"{path!r} is absolute; give a path relative to the job folder"
    normal = posixpath.normpath(path.replace("\\", "/"))
    if normal == ".." or normal.startswith("../"):
        return f"{path!r} escapes the job folder; remove the '..'"
    return None


def scalar_text(value: Any) -> str:
    """A spec scalar as the text a command or a variable gets (``true``/``false`` for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _type_name(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "true/false", type(None): "nothing"}
    for klass, name in names.items():
        if isinstance(value, klass):
            return name
    return "a number" if isinstance(value, (int, float)) else type(value).__name__


def _normalise_keys(data: Mapping[str, Any], check: _Checker) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = str(raw_key).replace("_", "-")
        if key not in SPEC_KEYS:
            hint = difflib.get_close_matches(key, SPEC_KEYS, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else f"; known keys: {', '.join(SPEC_KEYS)}"
            check.add(str(raw_key), f"unknown key{suggestion}")
            continue
        out[key] = value
    return out


def _entries(check: _Checker, field: str, value: Any, key: str) -> list[tuple[str, Any, Any]]:
    """Normalise list entries written as ``x``, ``{x: VAR}`` or ``{key: x, var: VAR}``."""
    if not isinstance(value, list):
        check.add(field, f"expected a list, got {_type_name(value)}")
        return []
    out = []
    for index, item in enumerate(value):
        where = f"{field}[{index}]"
        if isinstance(item, Mapping) and key in item and not (len(item) == 1 and isinstance(item[key], Mapping)):
            extra = set(item) - {key, "var"}
            if extra:
                check.add(where, f"unknown key {sorted(extra)[0]!r}; an entry has only {key!r} and 'var'")
            out.append((where, item.get(key), item.get("var")))
        elif isinstance(item, Mapping) and len(item) == 1:
            ((name, var),) = item.items()
            if isinstance(var, Mapping):  # DataSphere's long form: ``- data.csv: {var: CSV}``
                extra = set(var) - {"var"}
                if extra:
                    check.add(f"{where}.{name}", f"unknown key {sorted(extra)[0]!r}; write {{var: NAME}}")
                var = var.get("var")
            out.append((where, name, var))
        elif isinstance(item, (str, int, float)) and not isinstance(item, bool):
            out.append((where, item, None))
        else:
            check.add(where, f"expected a {key} or a mapping {{{key}: ..., var: ...}}, got {_type_name(item)}")
    return out


def _named_entries(check: _Checker, field: str, value: Any, key: str) -> list[tuple[str, str | None]]:
    """Validated ``(path or name, var)`` pairs of an inputs/outputs/datasets/volumes list."""
    out = []
    for where, raw, raw_var in _entries(check, field, value, key):
        if field == "inputs" and isinstance(raw, str) and raw.startswith(("/", "~")):
            check.add(f"{where}.{key}", f"{raw!r} is absolute, and the server reads no files of its own: "
                      "`jupyter jobs run` uploads an absolute input from your machine; else give a path "
                      "relative to the spec's folder")
            continue
        if key == "path":
            text = check.relative_path(f"{where}.{key}", raw)
        else:
            text = check.string(f"{where}.{key}", raw)
        var = None if raw_var is None else check.job_var(f"{where}.var", raw_var)
        if text is not None and (raw_var is None or var is not None):
            out.append((text, var))
    return out


def _parse_python(check: _Checker, value: Any) -> PythonEnv | None:
    """``env.python`` (absent: None, the image or host as it is)."""
    if not isinstance(value, Mapping) or "python" not in value:
        return None
    try:
        return parse_python_env(value["python"])
    except SpecError as exc:
        check.problems.extend(exc.problems)
        return None


def _parse_env(check: _Checker, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        check.add("env", f"expected a mapping with 'vars' and 'python', got {_type_name(value)}")
        return {}
    for key in value:
        if key not in ("vars", "python"):
            check.add(f"env.{key}", "unknown key; env has 'vars' and 'python'")
    raw = value.get("vars", {})
    if isinstance(raw, list):
        merged: dict[str, Any] = {}
        for index, item in enumerate(raw):
            if isinstance(item, str) and "=" in item:
                name, _, val = item.partition("=")
                merged[name] = val
            elif isinstance(item, Mapping) and len(item) == 1:
                merged.update(item)
            elif isinstance(item, str) and _VAR_NAME.match(item):
                check.add(f"env.vars[{index}]", f"{item} has no value; `jupyter jobs run` copies it from the "
                          f"environment it runs in, other clients must send it as {item}=value")
            else:
                check.add(f"env.vars[{index}]", "expected NAME=value or {NAME: value}")
        raw = merged
    if isinstance(raw, Mapping):  # ``{secret: NAME}`` entries are _secret_vars'
        raw = {k: v for k, v in raw.items() if not _is_secret_ref(v)}
    return check.scalar_map("env.vars", raw, check.job_var)


#: How a value names a secret instead of giving itself: ours, and DataSphere's spelling.
SECRET_KEYS = ("secret", "secret-id")


def _is_secret_ref(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) == 1 and str(next(iter(value))).replace("_", "-") in SECRET_KEYS


def _secret_name(check: _Checker, field: str, value: Any) -> str | None:
    """The secret's name in ``{secret: NAME}`` (or ``{secret-id: NAME}``)."""
    if not _is_secret_ref(value):
        check.add(field, "expected {secret: NAME}, naming a secret set with `jupyter jobs secret set NAME`")
        return None
    ((key, name),) = value.items()
    problem = name_problem(name)
    if problem:
        check.add(f"{field}.{key}", problem)
        return None
    return name


def _secret_vars(check: _Checker, value: Any) -> dict[str, str]:
    """``env.vars`` given as ``{secret: NAME}``: ``{variable: secret name}``."""
    raw = value.get("vars") if isinstance(value, Mapping) else None
    if isinstance(raw, list):
        raw = {k: v for item in raw if isinstance(item, Mapping) and len(item) == 1 for k, v in item.items()}
    if not isinstance(raw, Mapping):
        return {}
    out = {}
    for var, ref in raw.items():
        if _is_secret_ref(ref) and check.job_var(f"env.vars.{var}", var) is not None:
            name = _secret_name(check, f"env.vars.{var}", ref)
            if name is not None:
                out[str(var)] = name
    return out


def _registry_auth(check: _Checker, value: Any) -> RegistryAuth | None:
    """``registry-auth: {username: USER, password: {secret: NAME}}``: how the job's image is pulled."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        check.add("registry-auth", f"expected {{username: USER, password: {{secret: NAME}}}}, got {_type_name(value)}")
        return None
    for key in value:
        if key not in ("username", "password"):
            check.add(f"registry-auth.{key}", "unknown key; registry-auth has username and password")
    username = check.string("registry-auth.username", value.get("username"))
    if "password" not in value:
        check.add("registry-auth.password", "required: {secret: NAME}, a secret holding the password or token")
        return None
    if not _is_secret_ref(value["password"]):
        check.add("registry-auth.password", "give the password as {secret: NAME}, never in the spec: store it "
                  "with `jupyter jobs secret set NAME` (the value is read from stdin)")
        return None
    password = _secret_name(check, "registry-auth.password", value["password"])
    return RegistryAuth(username, password) if username is not None and password is not None else None


def parse_spec(data: Any) -> JobSpec:
    """Build a :class:`JobSpec` from a YAML string or an already-loaded mapping.

    Raises
    ------
    SpecError
        Listing every problem, each with its field path and what to do.
    """
    if isinstance(data, (str, bytes)):
        data = load_spec_text(data.decode("utf-8", "replace") if isinstance(data, bytes) else data)
    check = _Checker()
    if not isinstance(data, Mapping):
        raise SpecError(f"a job spec is a mapping with at least 'cmd', got {_type_name(data)}")
    check_document(data)
    spec = _normalise_keys(data, check)

    cmd = spec.get("cmd")
    if cmd is None:
        check.add("cmd", "required; give the command to run, e.g. cmd: python train.py")
    elif isinstance(cmd, list) and all(isinstance(c, (str, int, float)) for c in cmd) and cmd:
        cmd = shlex.join(str(c) for c in cmd)
    else:
        cmd = check.string("cmd", cmd)

    name = check.string("name", spec.get("name", "job")) or "job"
    if len(name) > MAX_NAME:
        check.add("name", f"is {len(name)} characters long; keep it under {MAX_NAME}")
    desc = check.string("desc", spec.get("desc", ""), allow_empty=True) or ""
    group = check.string("group", spec.get("group", ""), allow_empty=True) or ""
    if len(group) > MAX_NAME:
        check.add("group", f"is {len(group)} characters long; keep it under {MAX_NAME}")
    args = check.scalar_map("args", spec.get("args", {}), check.var_name, keep_type=True)

    inputs = tuple(InputSpec(*e) for e in _named_entries(check, "inputs", spec.get("inputs", []), "path"))
    outputs = tuple(OutputSpec(*e) for e in _named_entries(check, "outputs", spec.get("outputs", []), "path"))
    datasets = tuple(DatasetRef(*e) for e in _named_entries(check, "datasets", spec.get("datasets", []), "name"))
    volumes = tuple(VolumeRef(*e) for e in _named_entries(check, "volumes", spec.get("volumes", []), "name"))
    for where, items, key in (("outputs", outputs, "path"), ("inputs", inputs, "path"), ("volumes", volumes, "name")):
        seen: set[str] = set()
        for index, item in enumerate(items):
            if getattr(item, key) in seen:
                check.add(f"{where}[{index}].{key}", f"{getattr(item, key)!r} is listed twice")
            seen.add(getattr(item, key))

    env = _parse_env(check, spec["env"]) if "env" in spec else {}
    secrets = _secret_vars(check, spec.get("env"))
    registry_auth = _registry_auth(check, spec.get("registry-auth"))
    python = _parse_python(check, spec.get("env"))
    image = check.string("image", spec["image"]) if spec.get("image") is not None else None
    instance_type, fallbacks = _instance_types(check, spec.get("instance-type"))
    max_runtime = check.duration("max-runtime", spec.get("max-runtime"))
    queue_timeout = check.duration("queue-timeout", spec.get("queue-timeout"))
    meta = check.scalar_map("meta", spec.get("meta", {}), check.string)
    retries = check.integer("retries", spec.get("retries", 0), 0, 100) or 0
    priority = check.integer("priority", spec.get("priority", 0), -1000, 1000) or 0
    labels = check.scalar_map("labels", spec.get("labels", {}), check.string)
    working_dir = check.relative_path("working-dir", spec.get("working-dir", ".")) or "."
    replicas = check.integer("replicas", spec.get("replicas", 1), 1, 1024) or 1

    if cmd:
        defined = set(args) | set(env) | set(secrets) | set(BUILTIN_VARS)
        defined |= {i.var for i in inputs if i.var} | {o.var for o in outputs if o.var}
        defined |= {d.var for d in datasets if d.var}
        defined |= {v.var for v in volumes if v.var} | {volume_var(v.name) for v in volumes}
        for ref in referenced_vars(cmd):
            if ref not in defined:
                check.add(
                    "cmd",
                    f"${{{ref}}} is not defined; define it under args or env.vars, or as the var of an "
                    f"input, output, dataset or volume (write $${{{ref}}} for a literal ${{{ref}}})",
                )
    if check.problems:
        raise SpecError(check.problems)
    assert cmd is not None
    return JobSpec(
        cmd=cmd, name=name, desc=desc, args=args, inputs=inputs, outputs=outputs, datasets=datasets,
        env=env, image=image, instance_type=instance_type, max_runtime=max_runtime, retries=retries,
        priority=priority, labels=labels, working_dir=working_dir, replicas=replicas, python=python,
        instance_type_fallbacks=fallbacks, queue_timeout=queue_timeout, meta=meta,
        group=group.strip(), volumes=volumes, secrets=secrets, registry_auth=registry_auth,
    )


def _instance_types(check: _Checker, value: Any) -> tuple[str | None, tuple[str, ...]]:
    """``instance-type``: a name, or a list of names tried in order (the first that can ever fit)."""
    if value is None:
        return None, ()
    if not isinstance(value, list):
        return check.string("instance-type", value), ()
    names = [check.string(f"instance-type[{i}]", item) for i, item in enumerate(value)]
    if not value:
        check.add("instance-type", "is an empty list; name at least one instance type")
    if None in names or not names:
        return None, ()
    return names[0], tuple(names[1:])


def referenced_vars(cmd: str) -> list[str]:
    """Names used as ``${NAME}`` in ``cmd`` (``$$`` escapes a dollar)."""
    return [m.group(2) for m in _VAR_REF.finditer(cmd) if m.group(1) != "$"]


def substitute(cmd: str, values: Mapping[str, Any]) -> str:
    """Replace ``${NAME}`` with its shell-quoted value and ``$$`` with ``$``."""

    def replace(match: re.Match) -> str:
        if match.group(1) == "$":
            return "$"
        return shlex.quote(scalar_text(values[match.group(2)]))

    return _VAR_REF.sub(replace, cmd)


def apply_overrides(spec: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``spec`` (a spec mapping) with ``overrides`` applied.

    Keys may be dotted (``args.epochs``, ``env.vars.SEED``); nested mappings are merged and
    any other value replaces what was there. ``None`` removes a key.
    """
    check_document(dict(overrides), "overrides")
    result = copy.deepcopy(dict(spec))
    for key, value in overrides.items():
        parts = check_override_key(str(key))
        _set_path(result, [parts[0].replace("_", "-"), *parts[1:]], value)
    return result


def _set_path(target: dict[str, Any], path: list[str], value: Any) -> None:
    *parents, head = path
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            child = {}
            target[part] = child
        target = child
    if value is None:
        target.pop(head, None)
    elif isinstance(value, Mapping) and isinstance(target.get(head), dict):
        for sub_key, sub_value in value.items():
            _set_path(target[head], [str(sub_key)], sub_value)
    else:
        target[head] = copy.deepcopy(value)


def parse_set_option(text: str) -> tuple[str, Any]:
    """Parse a ``--set key=value`` option; the value is read as a YAML scalar (``20`` is a number)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"--set {text!r}: write it as key=value, e.g. --set args.epochs=20", "overrides")
    return key.strip(), load_spec_text(raw, f"overrides.{key.strip()}") if raw.strip() else ""

"""Bounds on what a spec may be, checked before any work is spent on it.

A spec arrives as text (YAML or JSON) from anyone who can reach the API. Aliases and nesting
are counted while YAML is composed, before anything is expanded; the loaded document is then
walked without recursion, visiting at most :data:`MAX_NODES` values, so a 415-byte alias bomb or
a document nested ten thousand deep costs microseconds and a 400, never the server's loop.

Characters are checked here too: no value may carry NUL, a lone surrogate or another control
character (``cmd`` and ``desc`` may hold newlines and tabs), because every name and path ends up
in a shell script, a file name or a log line.
"""
from __future__ import annotations

import json
import math
import posixpath
import re
from typing import Any, Iterator, Mapping

import yaml

from ..errors import FieldProblem, SpecError

#: Largest spec text accepted (a spec is a few hundred bytes; a cell job's command a few KiB).
MAX_SPEC_BYTES = 1024 * 1024
#: Deepest nesting of mappings and lists (a spec needs 4: env.vars, inputs[0].path).
MAX_DEPTH = 16
#: Most YAML aliases (``*name``) in one document.
MAX_ALIASES = 64
#: Most values visited in one document (aliases count once per use).
MAX_NODES = 20_000
#: Most entries of one list or mapping (labels, args, env.vars, inputs, outputs, datasets).
MAX_ITEMS = 1000
#: Longest ``cmd``/``desc``, and longest other string or key.
MAX_TEXT = 256 * 1024
MAX_STRING = 4096
MAX_KEY = 256
#: Fields whose text may span lines: ``cmd``, ``desc``, and what other platforms' specs translate
#: into ``cmd`` (PrimeHub's ``command``, its ``PhJob`` ``spec``, Bacalhau's ``Tasks`` and ``Job``);
#: the native spec they become is checked again.
MULTILINE = ("cmd", "desc", "command", "spec", "Tasks", "Job")
#: Files of one upload manifest, and the longest path and path component in it.
MAX_FILES = 100_000
MAX_PATH = 4096
MAX_COMPONENT = 255
MAX_PATH_DEPTH = 64

# C0 controls but tab and newline, DEL, C1 controls, and lone surrogates.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
#: A line break kept by YAML in a folded block because the next line is more indented.
_FOLDED_CONTINUATION = re.compile(r"(?<=[^\n])\n[ \t]+(?=\S)")
_CONTROL_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _limit_error(message: str, field: str) -> SpecError:
    return SpecError(message, field)


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that counts aliases and depth while composing, before constructing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _limit_error(f"more than {MAX_ALIASES} YAML aliases (*name); write the values out", "body")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _limit_error(f"nested deeper than {MAX_DEPTH} levels", "body")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_scalar(self, node: Any) -> Any:
        value = super().construct_scalar(node)
        if node.style == ">" and isinstance(value, str):
            # YAML folds a ``>`` block's lines into one, except lines indented more than the first:
            # those keep their line break, so ``cmd: >`` with indented options ran as several shell
            # commands. The author wrote ``>`` to mean one line: fold those too (a blank line still
            # starts a new line, as in YAML).
            value = _FOLDED_CONTINUATION.sub(" ", value)
        return value


def load_yaml(text: str, field: str = "") -> Any:
    """Load one YAML document within the limits; YAML errors become a :class:`SpecError`."""
    if len(text) > MAX_SPEC_BYTES:
        raise _limit_error(f"is {len(text)} characters long; a spec may have at most {MAX_SPEC_BYTES}", field or "body")
    loader = None
    try:
        loader = _BoundedLoader(text)  # the reader refuses unprintable characters right here
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"not valid YAML{where}: {problem}", field) from None
    except RecursionError:
        raise _limit_error(f"nested deeper than {MAX_DEPTH} levels", field or "body") from None
    except ValueError as exc:  # a constructor's refusal, e.g. an integer with 5,000 digits
        raise SpecError(f"not valid YAML: {exc}", field) from None
    finally:
        if loader is not None:
            loader.dispose()


def load_json(raw: bytes | str, field: str = "body", hint: str = "") -> Any:
    """``json.loads`` with NaN/Infinity refused and deep nesting a :class:`SpecError`."""

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    try:
        return json.loads(raw, parse_constant=no_constant)
    except RecursionError:
        raise _limit_error(f"nested deeper than {MAX_DEPTH} levels", field) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise SpecError(f"not valid JSON: {exc}{hint}", field) from None


def _child(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _walk(data: Any, root: str) -> Iterator[tuple[str, int, Any]]:
    """``(field path, depth, value)`` of every value, depth first, without recursion."""
    stack: list[tuple[str, int, Any]] = [(root, 0, data)]
    while stack:
        path, depth, value = stack.pop()
        yield path, depth, value
        if isinstance(value, (Mapping, list)) and len(value) > MAX_ITEMS:
            continue  # refused whole; its entries are not looked at
        if isinstance(value, Mapping):
            stack.extend((_child(path, str(k)), depth + 1, v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((_child(path, i), depth + 1, v) for i, v in reversed(list(enumerate(value))))


def text_problem(text: str, field: str) -> str | None:
    """Why ``text`` may not be the value of ``field`` (a control character, or too long), or None."""
    top = field.removeprefix("overrides.").split(".")[0].split("[")[0]
    multiline = top in MULTILINE
    limit = MAX_TEXT if multiline else MAX_STRING
    if len(text) > limit:
        return f"is {len(text)} characters long; the limit is {limit}"
    bad = (_CONTROL if multiline else _CONTROL_LINE).search(text)
    if bad:
        char = bad.group()
        kind = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
        allowed = " (only newlines and tabs are allowed here)" if multiline else ""
        return f"contains {kind} ({char!r}) at position {bad.start()}; remove it{allowed}"
    return None


def check_document(data: Any, root: str = "") -> None:
    """Refuse a loaded document that is too big, too deep, or carries forbidden characters.

    Raises
    ------
    SpecError
        Naming each field at fault (at most 20 are listed).
    """
    problems: list[FieldProblem] = []
    for count, (path, depth, value) in enumerate(_walk(data, root)):
        if count >= MAX_NODES:
            raise _limit_error(f"has more than {MAX_NODES} values; a job spec is far smaller", root or "body")
        if depth > MAX_DEPTH:
            raise _limit_error(f"nested deeper than {MAX_DEPTH} levels", path or "body")
        if isinstance(value, (Mapping, list)) and len(value) > MAX_ITEMS:
            problems.append(FieldProblem(path, f"has {len(value)} entries; the limit is {MAX_ITEMS}"))
            continue
        if isinstance(value, Mapping):
            for key in value:
                text = str(key)
                if len(text) > MAX_KEY:
                    problems.append(FieldProblem(_child(path, text[:40] + "..."), f"the key is {len(text)} characters long; the limit is {MAX_KEY}"))
                elif _CONTROL_LINE.search(text):
                    problems.append(FieldProblem(path, f"the key {text!r} contains a control character or a lone surrogate; rename it"))
        elif isinstance(value, str):
            problem = text_problem(value, path)
            if problem:
                problems.append(FieldProblem(path, problem))
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(FieldProblem(path, "is not a finite number"))
        if len(problems) >= 20:
            break
    if problems:
        raise SpecError(problems)


def component_problem(path: str) -> str | None:
    """Why a relative path cannot name a file (a name longer than file systems store), or None."""
    if any(len(part.encode("utf-8", "surrogatepass")) > MAX_COMPONENT for part in path.split("/")):
        return f"has a name longer than {MAX_COMPONENT} bytes, which no file system stores"
    return None


def check_short_text(value: Any, field: str) -> None:
    """Refuse a request argument (``base_dir``, an ``Idempotency-Key``) that is not a short
    string a file system and a log line can hold; ``None`` (not given) passes."""
    if value is None:
        return
    if not isinstance(value, str) or len(value) > MAX_KEY or text_problem(value, field) or component_problem(value):
        raise SpecError(f"expected a short string without control characters (at most {MAX_KEY})", field)


def check_override_key(key: str) -> list[str]:
    """The parts of a dotted override key (``args.epochs``), refusing absurd ones."""
    if len(key) > MAX_KEY or key.count(".") >= MAX_DEPTH:
        raise SpecError(f"{key[:60]!r}... is not a spec field; write keys like args.epochs or env.vars.SEED", "overrides")
    problem = text_problem(key, "overrides")
    if problem:
        raise SpecError(f"the key {problem}", "overrides")
    parts = key.split(".")
    if not all(parts):
        raise SpecError(f"{key!r} has an empty part; write keys like args.epochs or env.vars.SEED", "overrides")
    return parts


def check_manifest(files: Any) -> dict[str, str]:
    """Validate an upload manifest ``{relative path: sha256}``; return it with normalised paths.

    Refuses names with control characters, absolute or escaping paths, components longer than
    a file system allows, and a path that is both a file and a folder (``a`` and ``a/b``).
    """
    if not isinstance(files, Mapping):
        raise SpecError("expected a mapping of relative paths to SHA-256 digests", "files")
    if len(files) > MAX_FILES:
        raise SpecError(f"lists {len(files)} files; the limit is {MAX_FILES} (ship a dataset instead)", "files")
    problems: list[FieldProblem] = []
    normal: dict[str, str] = {}
    for rel, digest in files.items():
        rel = str(rel)
        where = f"files[{rel[:80]!r}]"
        problem = text_problem(rel, "files") if len(rel) <= MAX_PATH else f"is longer than {MAX_PATH} characters"
        path = posixpath.normpath(rel) if not problem else ""
        if problem:
            pass
        elif path.startswith("/") or path in (".", "..") or path.startswith("../"):
            problem = "must be a relative path inside the job folder"
        elif path.count("/") >= MAX_PATH_DEPTH:
            problem = f"is nested deeper than {MAX_PATH_DEPTH} folders"
        elif component_problem(path):
            problem = component_problem(path)
        elif path in normal:
            problem = f"is listed twice (as {path!r})"
        if problem:
            problems.append(FieldProblem(where, problem))
        else:
            normal[path] = digest
        if len(problems) >= 20:
            break
    names = set(normal)
    for path in normal:
        parent = posixpath.dirname(path)
        while parent:
            if parent in names:
                problems.append(FieldProblem(f"files[{parent!r}]", f"is a file, but {path!r} puts files inside it"))
                names.discard(parent)  # say it once
            parent = posixpath.dirname(parent)
        if len(problems) >= 20:
            break
    if problems:
        raise SpecError(problems)
    return normal

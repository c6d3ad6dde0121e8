"""Job specs: parse and validate user input into :class:`~jupyter_jobs.models.JobSpec`.

``parse`` turns a spec (YAML text or a mapping) into the typed spec, naming every problem by
its field path; ``limits`` bounds what a spec may be (size, depth, aliases, characters) before
any work is spent on it.
"""
from .limits import check_document, check_manifest, load_json, load_yaml
from .parse import (
    BUILTIN_VARS, RESERVED_VARS, SPEC_KEYS, apply_overrides, load_spec_text, parse_duration, parse_set_option,
    parse_spec, referenced_vars, substitute,
)

__all__ = [
    "BUILTIN_VARS", "RESERVED_VARS", "SPEC_KEYS", "apply_overrides", "check_document", "check_manifest",
    "load_json", "load_spec_text", "load_yaml", "parse_duration", "parse_set_option", "parse_spec",
    "referenced_vars", "substitute",
]

"""Hooks of the schemathesis run (tests/test_schemathesis.py).

Everything a generated request carries is fuzzed as generated, except what a job would
execute: a generated ``cmd`` becomes ``echo <it, quoted>`` (so the parser and the store still
see every string schemathesis makes up, while the CI machine only ever runs ``echo``), and
overrides of ``cmd`` in reruns are dropped; and a log is never followed (a running job streams for minutes).
"""
import shlex

import schemathesis
import yaml


def _harmless(spec):
    if isinstance(spec, dict) and "cmd" in spec:
        cmd = spec["cmd"]
        text = " ".join(map(str, cmd)) if isinstance(cmd, list) else str(cmd)
        spec = {**spec, "cmd": "echo " + shlex.quote(text[:200] or "x")}
    return spec


def _sanitise(body):
    if isinstance(body, dict) and isinstance(body.get("overrides"), dict):
        kept = {k: v for k, v in body["overrides"].items() if str(k).split(".")[0].replace("_", "-") != "cmd"}
        return {**body, "overrides": kept}
    if isinstance(body, str):
        try:
            loaded = yaml.safe_load(body)
        except Exception:
            return body
        return yaml.safe_dump(_harmless(loaded)) if isinstance(loaded, dict) and "cmd" in loaded else body
    return _harmless(body)


@schemathesis.hook
def map_body(context, body):
    return _sanitise(body)


@schemathesis.hook
def map_query(context, query):
    # Following the log (or displays) of a job that runs (the `sleep 600` one, and its reruns) streams until it ends, far
    # longer than a request may take here: a generated `follow` is kept as text but made false. Following
    # is tried by the tests of the log route (tests/test_handlers.py, tests/test_jobs_e2e.py).
    operation = getattr(context, "operation", None)
    if isinstance(query, dict) and "follow" in query and operation is not None and operation.path.endswith(("/logs", "/displays")):
        return {**query, "follow": "0"}
    return query

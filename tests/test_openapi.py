"""docs/api/openapi.yaml documents every route and method the extension serves."""
from pathlib import Path

import yaml

from jupyter_jobs.api import ROUTES

SPEC = yaml.safe_load((Path(__file__).resolve().parents[1] / "docs" / "api" / "openapi.yaml").read_text())


def openapi_path(pattern: str, handler) -> set[tuple[str, str]]:
    path = pattern.rstrip("/?").replace("/?", "").replace("/secrets/([^/]+)", "/secrets/{name}")
    path = path.replace("/blobs/([^/]+)", "/blobs/{sha256}").replace("([^/]+)", "{id}").replace("(cancel|rerun)", "ACTION").replace("(.+)", "{path}")
    ours = [c for c in handler.__mro__ if c.__module__.startswith("jupyter_jobs")]  # a route's handler and its bases
    methods = {m for m in ("get", "post", "put", "delete") if any(m.upper() in vars(c) or m in vars(c) for c in ours)}
    path = path.replace("(pause|resume|run-now)", "SCHEDULE_ACTION")
    paths = [path.replace("ACTION", a) for a in ("cancel", "rerun")] if "/ACTION" in path else [path]
    paths = [p.replace("SCHEDULE_ACTION", a) for p in paths for a in ("pause", "resume", "run-now")] \
        if "SCHEDULE_ACTION" in path else paths
    return {(p, m) for p in paths for m in methods}


def test_every_route_is_documented():
    served = set().union(*(openapi_path(p, h) for p, h in ROUTES))
    documented = {(path, method) for path, item in SPEC["paths"].items() for method in item if method != "parameters"}
    assert served == documented


def test_statuses_match_the_state_machine():
    from jupyter_jobs.states import JobStatus

    assert SPEC["components"]["schemas"]["Job"]["properties"]["status"]["enum"] == [s.value for s in JobStatus]

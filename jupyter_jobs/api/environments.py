"""Python environments built for jobs: listed and pruned."""
from __future__ import annotations

import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..errors import SpecError
from ..manager import server_user
from .base import JobsAPIHandler


class EnvironmentsHandler(JobsAPIHandler):
    """The cache of jobs' Python environments (``env.python``): hashes and sizes, no job or owner."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json(await self.manager.environments.report())


class EnvironmentsPruneHandler(JobsAPIHandler):
    """Remove least recently used environments past a size: the cache is the server's, so its own user
    (on a single-user server: the one user) and admins only."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        access = await self.access()
        if access.user != server_user():
            access.require_admin("prune the environment cache")
        limit = prune_limit(await self.body(default={}))
        self.write_json(await self.manager.environments.prune_and_report(limit))


def prune_limit(body: Any) -> int | None:
    """The ``max_bytes`` of a prune request; None when it names none (the configured limit)."""
    if not isinstance(body, dict):
        raise SpecError('expected {"max_bytes": <bytes>}, or no body for the configured limit', "body")
    unknown = sorted(set(body) - {"max_bytes"})
    if unknown:
        raise SpecError(f"unknown key {unknown[0]!r}; the only one is max_bytes", "body")
    if "max_bytes" not in body:
        return None
    value = body["max_bytes"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpecError(f"{json.dumps(value)[:40]} is not a size; give a whole number of bytes >= 0 (0 removes "
                        "every environment no active job uses)", "max_bytes")
    return value

"""Secrets a job may name: listed (never their values), set and removed."""
from __future__ import annotations

import asyncio
import urllib.parse

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web

from ..errors import SecretError
from .base import API, JobsAPIHandler


class SecretsHandler(JobsAPIHandler):
    """The requesting user's secrets: names and when each was set, never values."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json({"secrets": await asyncio.to_thread(self.manager.secrets.list, self.username)})


class SecretHandler(JobsAPIHandler):
    """One of the requesting user's secrets: ``PUT`` sets it from ``{"value": ...}``, ``DELETE`` removes it.
    Secrets are always the requester's own (an admin's too): a job uses its owner's."""

    @web.authenticated
    @authorized
    async def put(self, name: str) -> None:
        name = urllib.parse.unquote(name)
        body = await self.body(default={})
        if not isinstance(body, dict) or set(body) != {"value"}:
            raise SecretError('expected {"value": "..."}, the secret\'s value as a string', "body")
        entry, created = await asyncio.to_thread(self.manager.secrets.set, self.username, name, body["value"])
        self.set_status(201 if created else 200)
        self.set_header("Location", url_path_join(self.base_url, API, "secrets", name))
        self.write_json(entry)

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self.manager.secrets.delete, self.username, urllib.parse.unquote(name))
        self.set_status(204)
        self.finish()

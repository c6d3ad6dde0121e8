"""Who calls the service: JupyterHub says, through its own helpers.

The identity provider is JupyterHub's (``JupyterHubIdentityProvider``: a Hub token in the
``Authorization`` header, or the service's OAuth cookie in a browser), and every request must carry
the service's access scope (``access:services!service=<name>``). The authorizer adds one decision
of ours: whether the caller is an admin of jobs, which is the custom scope
``custom:jupyter-jobs:admin`` (granted in the Hub's ``load_roles``).

A user's groups come from the Hub: from the user model the token resolved to when the token may
read them, else from the Hub's API with the service's own token (``read:users:groups`` in the
service's role), remembered for a minute.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import quote

from jupyterhub.singleuser.extension import JupyterHubAuthorizer, JupyterHubIdentityProvider
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ..access import ADMIN_RESOURCE

#: The custom scope that makes a Hub user an admin of every job (JupyterHub's ``custom_scopes``).
ADMIN_SCOPE = "custom:jupyter-jobs:admin"
#: Seconds a user's groups, as read from the Hub, are used before they are read again.
GROUPS_TTL = 60.0
#: Seconds before the Hub is asked again after it did not answer, and how long it is waited for.
RETRY_AFTER = 10.0
HUB_TIMEOUT = 5.0


class HubJobsAuthorizer(JupyterHubAuthorizer):
    """The Hub's access check on everything, and the admin scope for :data:`ADMIN_RESOURCE`."""

    #: Tells :func:`jupyter_jobs.access.is_admin` that this authorizer tells admins apart.
    knows_admins = True

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        if not super().is_authorized(handler, user, action, resource):
            return False
        if resource == ADMIN_RESOURCE:
            return bool(self.hub_auth.check_scopes({ADMIN_SCOPE}, user.hub_user))
        return True


class HubGroups:
    """The Hub groups of a user, read with the service's token and kept for :data:`GROUPS_TTL`.

    One read at a time per user; when the Hub does not answer, what was known is used (or no groups)
    and asked again only after :data:`RETRY_AFTER`, so a slow Hub never holds every request.
    """

    def __init__(self, identity: JupyterHubIdentityProvider) -> None:
        self.identity = identity
        self._cache: dict[str, tuple[float, tuple[str, ...]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def of(self, user: Any) -> tuple[str, ...]:
        model = getattr(user, "hub_user", None) or {}
        if "groups" in model:  # the caller's token may read its own groups
            return tuple(model["groups"] or ())
        name = model.get("name") or getattr(user, "username", "")
        async with self._locks.setdefault(name, asyncio.Lock()):
            cached = self._cache.get(name)
            if cached and time.monotonic() < cached[0]:
                return cached[1]
            groups = await self._read(name)
            if groups is None:  # the Hub did not answer: what was known, for a little while
                groups = cached[1] if cached else ()
                self._cache[name] = (time.monotonic() + RETRY_AFTER, groups)
            else:
                self._cache[name] = (time.monotonic() + GROUPS_TTL, groups)
            return groups

    async def _read(self, name: str) -> tuple[str, ...] | None:
        hub_auth = self.identity.hub_auth
        request = HTTPRequest(f"{hub_auth.api_url}/users/{quote(name, safe='')}",
                              headers={"Authorization": f"token {hub_auth.api_token}"},
                              connect_timeout=HUB_TIMEOUT, request_timeout=HUB_TIMEOUT)
        try:
            response = await AsyncHTTPClient().fetch(request)
            return tuple(json.loads(response.body).get("groups") or ())
        except (HTTPClientError, OSError, ValueError) as exc:
            self.identity.log.warning("jupyter-jobs: could not read the Hub groups of %s: %s", name, exc)
            return None


class HubJobsIdentity(JupyterHubIdentityProvider):
    """JupyterHub's identity provider (configured from the service's ``JUPYTERHUB_*`` environment), whose
    users carry their Hub ``groups``, where the handlers' access decision reads them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.groups = HubGroups(self)

    async def get_user(self, handler: Any) -> Any:
        user = await super().get_user(handler)
        if user is None:
            return None
        if user.hub_user.get("kind", "user") != "user":  # a Hub service owns no jobs: its name is no account
            self.log.warning("jupyter-jobs: refusing Hub %s %s: only users submit jobs", user.hub_user.get("kind"),
                             user.username)
            handler._jupyterhub_user = None
            return None
        if not hasattr(user, "groups"):
            user.groups = await self.groups.of(user)
        return user

"""What this site offers: instance types, datasets, volumes, and the server's configuration."""
from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from .base import JobsAPIHandler


class InstanceTypesHandler(JobsAPIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        cluster = self.manager.cluster
        types = []
        for itype in cluster.types:
            data = itype.to_json()
            data["default"] = itype.name == cluster.default_type
            types.append(data)
        self.write_json({"instance_types": types})


class DatasetsHandler(JobsAPIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json({"datasets": [d.to_json() for d in self.manager.cluster.sets]})


class VolumesHandler(JobsAPIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        """The writable volumes this user's jobs may mount (a volume of groups they are not in is left out)."""
        access = await self.access()
        self.write_json({"volumes": [v.to_json() for v in self.manager.cluster.known_volumes
                                     if access.may_mount(v.groups, server_user=self.manager.single_user())]})


class ConfigHandler(JobsAPIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        access = await self.access()
        self.write_json({**self.manager.describe(), "user": access.user, "admin": access.admin,
                         "groups": sorted(access.groups)})

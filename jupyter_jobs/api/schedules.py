"""REST handlers of schedules under ``/jupyter-jobs/api/schedules``: parse, decide access, call
:class:`~jupyter_jobs.schedules.Schedules`, serialise (errors as in :mod:`.base`)."""
from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web

from ..errors import ScheduleNotFound
from ..manager import server_user
from ..schedule_store import Schedule
from ..store import parse_id
from .base import API, JobsAPIHandler


class ScheduleAPIHandler(JobsAPIHandler):
    def schedule_json(self, schedule: Schedule) -> dict[str, Any]:
        data = self.manager.schedules.to_json(schedule)
        data["url"] = url_path_join(self.base_url, API, "schedules", str(schedule.id))
        data["jobs_url"] = url_path_join(self.base_url, API, "jobs") + f"?schedule={schedule.id}"
        return data

    def schedule(self, raw: str) -> Schedule:
        schedule_id = parse_id(raw)
        if schedule_id is None:
            raise ScheduleNotFound(raw[:40])
        return self.manager.schedules.get(schedule_id)


class SchedulesHandler(ScheduleAPIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        access = await self.access()
        scope = access.list_scope(self.get_argument("owner", None), server_user=server_user())
        schedules = self.manager.schedules.list(**scope)
        self.write_json({"schedules": [self.schedule_json(s) for s in schedules]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = await self.body(allow_yaml=True)
        schedule = await self.manager.schedules.create(body, owner=self.username, access=await self.access())
        data = self.schedule_json(schedule)
        self.set_status(201)
        self.set_header("Location", data["url"])
        self.write_json(data)


class ScheduleHandler(ScheduleAPIHandler):
    @web.authenticated
    @authorized
    async def get(self, raw_id: str) -> None:
        access = await self.access()
        self.write_json(self.schedule_json(access.visible_schedule(self.schedule(raw_id))))

    @web.authenticated
    @authorized
    async def delete(self, raw_id: str) -> None:
        access = await self.access()
        self.manager.schedules.delete(access.acting_schedule(self.schedule(raw_id), "delete").id)
        self.set_status(204)
        self.finish()


class ScheduleActionHandler(ScheduleAPIHandler):
    @web.authenticated
    @authorized
    async def post(self, raw_id: str, action: str) -> None:
        access = await self.access()
        schedule_id = access.acting_schedule(self.schedule(raw_id), action).id
        schedules = self.manager.schedules
        if action == "run-now":
            job = await schedules.run_now(schedule_id, by=self.username)
            self.set_status(201)
            self.set_header("Location", self.job_url(job.id))
            self.write_json(self.job_json(job))
            return
        schedule = schedules.pause(schedule_id) if action == "pause" else schedules.resume(schedule_id)
        self.write_json(self.schedule_json(schedule))


_SCHEDULE = r"/schedules/([^/]+)"
ROUTES = [
    (r"/schedules/?", SchedulesHandler),
    (_SCHEDULE + r"/?", ScheduleHandler),
    (_SCHEDULE + r"/(pause|resume|run-now)", ScheduleActionHandler),
]

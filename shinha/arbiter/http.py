"""The arbiter's HTTP interface: GET /cluster, the master's heartbeat to its spares, and the
database endpoints `shinha db switchover|promote NODE` ask (shinha.arbiter.dbapi)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from shinha.arbiter.dbapi import Action, DatabaseApi, NotLeadingError
from shinha.daemon.http import refusal
from shinha.errors import Fenced
from shinha.http.server import MAX_CLIENT_BODY, check_secret, json_response, read_model
from shinha.wire import DatabaseChange, Heartbeat

if TYPE_CHECKING:
    from shinha.arbiter.daemon import ArbiterDaemon


class ArbiterInterface:
    """The arbiter's own handlers (the common ones are shinha.daemon.http's)."""

    def __init__(self, secret: str, arbiter: ArbiterDaemon, database: DatabaseApi) -> None:
        self.secret = secret
        self.arbiter = arbiter
        self.database = database

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/cluster", self.cluster)
        app.router.add_post("/arbiter/heartbeat", self.heartbeat)
        app.router.add_post("/db/switchover", self.switchover)
        app.router.add_post("/db/promote", self.promote)

    async def cluster(self, request: web.Request) -> web.Response:
        return json_response(self.arbiter.cluster())

    async def heartbeat(self, request: web.Request) -> web.Response:
        check_secret(request, self.secret)
        beat = await read_model(request, Heartbeat)
        try:
            return json_response(self.arbiter.take_heartbeat(beat))
        except Fenced as exc:
            return refusal(exc)

    async def switchover(self, request: web.Request) -> web.Response:
        """Planned change of primary to a replica that has every transaction: nothing lost."""
        check_secret(request, self.secret)
        change = await read_model(request, DatabaseChange, MAX_CLIENT_BODY)
        return await self._change("switchover", change)

    async def promote(self, request: web.Request) -> web.Response:
        """Promote a node when the primary is lost (refused while another is writable)."""
        check_secret(request, self.secret)
        change = await read_model(request, DatabaseChange, MAX_CLIENT_BODY)
        return await self._change("promote", change)

    async def _change(self, action: Action, change: DatabaseChange) -> web.Response:
        try:
            return json_response(await self.database.change(action, change))
        except NotLeadingError as exc:
            return json_response(exc.reply, status=409)

"""The receiver's HTTP interface: POST /api/results and /api/commands, from outside the
cluster. 202 means every item of the request is on disk and will be stored."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from shinha.http.server import MAX_CLIENT_BODY, check_secret, json_response, read_model
from shinha.wire import CommandLines, PassiveBatch

if TYPE_CHECKING:
    from shinha.receiver.daemon import ReceiverDaemon


class ReceiverInterface:
    """The front door's handlers."""

    def __init__(self, secret: str, receiver: ReceiverDaemon) -> None:
        self.secret = secret
        self.receiver = receiver

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/results", self.results)
        app.router.add_post("/api/commands", self.commands)

    async def results(self, request: web.Request) -> web.Response:
        check_secret(request, self.secret)
        batch = await read_model(request, PassiveBatch, MAX_CLIENT_BODY)
        return json_response(await self.receiver.take_results(batch), status=202)

    async def commands(self, request: web.Request) -> web.Response:
        check_secret(request, self.secret)
        batch = await read_model(request, CommandLines, MAX_CLIENT_BODY)
        return json_response(await self.receiver.take_commands(batch), status=202)

"""The HTTP interface every daemon serves: /ping, /status, /metrics and /dispatch. Each
handler reads the request, calls one method of the daemon and answers."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from aiohttp import web

from shinha.errors import Fenced
from shinha.http.server import check_secret, json_response, read_model
from shinha.wire import Dispatch, FencedRefusal

if TYPE_CHECKING:
    from shinha.daemon.base import Daemon


class DaemonInterface:
    """The common endpoints of a daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/ping", self.ping)
        app.router.add_get("/status", self.status)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_post("/dispatch", self.dispatch)

    async def ping(self, request: web.Request) -> web.Response:
        arbiter = request.headers.get("X-Shinha-Arbiter", "")
        epoch: int | None = None
        if arbiter:
            with contextlib.suppress(ValueError):
                epoch = int(request.headers.get("X-Shinha-Epoch", "-1"))
        return json_response(self.daemon.ping(arbiter, epoch,
                                              request.headers.get("X-Shinha-Proof", "")))

    async def status(self, request: web.Request) -> web.Response:
        return json_response(self.daemon.status())

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=self.daemon.render_metrics(),
                            content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def dispatch(self, request: web.Request) -> web.Response:
        check_secret(request, self.daemon.secret)
        dispatch = await read_model(request, Dispatch)
        try:
            reply = await self.daemon.take_dispatch(dispatch)
        except Fenced as exc:
            return refusal(exc)
        return json_response(reply)


def refusal(exc: Fenced) -> web.Response:
    """The answer to a request from an older epoch (409)."""
    return json_response(FencedRefusal(epoch=exc.held, message=str(exc)), status=409)

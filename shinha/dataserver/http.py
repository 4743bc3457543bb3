"""The data-server's HTTP interface: the schedulers' ingest and state reads, the pages of
states and history the API serves, and the arbiter's question before a database failover.
The handlers read the query or the body and answer with the daemon's model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from shinha.errors import RequestError
from shinha.http.server import check_secret, json_response, read_model
from shinha.wire import DatabaseReachQuery, IngestBatch, StateQuery

if TYPE_CHECKING:
    from shinha.dataserver.daemon import DataserverDaemon

#: The largest page of states or history one request gets.
MAX_PAGE = 1000


class DataserverInterface:
    """The data-server's handlers (the election's are shinha.daemon.election's)."""

    def __init__(self, secret: str, dataserver: DataserverDaemon) -> None:
        self.secret = secret
        self.dataserver = dataserver

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/ingest", self.ingest)
        app.router.add_post("/api/states", self.states)
        app.router.add_get("/api/hosts", self.hosts)
        app.router.add_get("/api/services", self.services)
        app.router.add_get("/api/services/{host}/{service}/history", self.history)
        app.router.add_get("/api/hosts/{host}/history", self.host_history)
        app.router.add_post("/db/reach", self.reach)

    async def ingest(self, request: web.Request) -> web.Response:
        check_secret(request, self.secret)
        batch = await read_model(request, IngestBatch)
        return json_response(await self.dataserver.ingest(batch))

    async def states(self, request: web.Request) -> web.Response:
        check_secret(request, self.secret)
        query = await read_model(request, StateQuery)
        return json_response(await self.dataserver.states(query))

    async def hosts(self, request: web.Request) -> web.Response:
        offset, limit = _paging(request)
        state = _int_param(request, "state")
        return json_response(await self.dataserver.hosts(offset, limit, state,
                                                         _consistency(request)))

    async def services(self, request: web.Request) -> web.Response:
        offset, limit = _paging(request)
        state = _int_param(request, "state")
        host = request.query.get("host") or None
        problems = request.query.get("problems", "0") not in ("", "0", "false")
        return json_response(await self.dataserver.services(
            offset, limit, host, state, problems, _consistency(request)))

    async def history(self, request: web.Request) -> web.Response:
        return await self._history_of(request, request.match_info["service"])

    async def host_history(self, request: web.Request) -> web.Response:
        return await self._history_of(request, "")

    async def _history_of(self, request: web.Request, service: str) -> web.Response:
        offset, limit = _paging(request)
        return json_response(await self.dataserver.history(
            request.match_info["host"], service, offset, limit, _consistency(request)))

    async def reach(self, request: web.Request) -> web.Response:
        check_secret(request, self.secret)
        query = await read_model(request, DatabaseReachQuery)
        return json_response(await self.dataserver.reach(query))


def _consistency(request: web.Request) -> str:
    return request.query.get("consistency", "primary")


def _int_param(request: web.Request, name: str, default: int | None = None,
               low: int = 0, high: int = 1 << 31) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise RequestError(400, "invalid", f"{name}: must be a whole number, got {raw!r}",
                           name) from None
    if not low <= value <= high:
        raise RequestError(400, "invalid", f"{name}: must be between {low} and {high}", name)
    return value


def _paging(request: web.Request) -> tuple[int, int]:
    offset = _int_param(request, "offset", 0) or 0
    limit = _int_param(request, "limit", 100, low=1, high=MAX_PAGE) or 100
    return offset, limit

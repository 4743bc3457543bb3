"""The data-server daemon: the only one that touches the database. Schedulers push results,
states and events to it; the console and scripts query it (`/api/hosts`, `/api/services`,
`/api/services/{host}/{service}/history`)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from shinha.daemon.base import Daemon, DaemonContext
from shinha.daemon.election import Election, election_peers
from shinha.dataserver.sqlite import SqliteStore
from shinha.dataserver.store import Store
from shinha.errors import RequestError
from shinha.http.server import check_secret, json_response, read_model
from shinha.wire import Event, IngestBatch, StateAnswer, StateQuery, StateRow, Wire

log = logging.getLogger(__name__)
MAX_PAGE = 1000


class StatePage(Wire):
    total: int
    offset: int
    limit: int
    items: list[StateRow]


class HistoryPage(Wire):
    total: int
    offset: int
    limit: int
    items: list[dict[str, Any]]


class DataserverDaemon(Daemon):
    """Storage and queries."""

    role = "dataserver"

    def __init__(self, ctx: DaemonContext) -> None:
        super().__init__(ctx)
        self.store: Store = SqliteStore(self._db_path())
        servers = dict(ctx.config.daemons.get("dataserver", {}))
        self.election = Election(ctx.link, election_peers(ctx.link, servers,
                                                          ctx.config.default_realm),
                                 self.client, self.clock, self.secret)
        options = self._module_options()
        self.retention = float(options.get("retention_days", "30")) * 86400
        self.stale_after = float(options.get("stale_after", "7200"))
        self.jobs_interval = float(options.get("jobs_interval", "60"))
        self.job_runs = 0

    def _module_options(self) -> dict[str, str]:
        for name in self.link.modules:
            module = self.config.modules.get(name)
            if module is not None and module.module_type == "sqlite":
                return dict(module.options)
        return {}

    def _db_path(self) -> Path:
        for name in self.link.modules:
            module = self.config.modules.get(name)
            if module is not None and module.module_type == "sqlite":
                path = Path(module.options.get("path", "store.db"))
                return path if path.is_absolute() else self.state.path / path
        return self.state.path / "store.db"

    def election_state(self) -> tuple[str, int, list[str]]:
        view = self.election.view()
        return view.master, view.term, view.down

    async def on_start(self) -> None:
        self.tasks.spawn(self.election.run(), "election")
        self.tasks.spawn(self._master_jobs(), "master-jobs")

    async def _master_jobs(self) -> None:
        """Jobs that must run once in the cluster: only on the master data-server."""
        while True:
            await asyncio.sleep(self.jobs_interval)
            if not self.election.is_master():
                continue
            now = self.clock.time()
            purged = await self.store.purge(now - self.retention)
            stale = await self.store.sweep_stale(now - self.stale_after, now)
            events = await self._downtime_bookkeeping(now)
            self.job_runs += 1
            self.metrics.inc("master_jobs_total", help_text="Master-only job rounds run here.")
            log.info("dataserver %s: master jobs (term %d): %d purged, %d stale, "
                     "%d downtime events", self.name, self.election.term, purged, stale, events)

    async def _downtime_bookkeeping(self, now: float) -> int:
        """Record each downtime's start and end once (event ids are deterministic, and
        ingest is idempotent by event id)."""
        events: list[Event] = []
        offset = 0
        while True:
            total, rows = await self.store.list_services(offset, 1000)
            for row in rows:
                for d in row.downtimes:
                    for kind, at in (("downtime_start", d.start), ("downtime_end", d.end)):
                        if at <= now:
                            events.append(Event(event_id=f"{kind}-{d.downtime_id}"[:64],
                                                time=at, host=row.host, service=row.service,
                                                kind=kind, detail=d.downtime_id))
            offset += len(rows)
            if not rows or offset >= total:
                break
        if events:
            await self.store.ingest(IngestBatch(scheduler=f"dataserver:{self.name}",
                                                events=events))
        return len(events)

    def add_routes(self, app: web.Application) -> None:
        self.election.add_routes(app)
        app.router.add_post("/api/ingest", self._ingest)
        app.router.add_post("/api/states", self._states)
        app.router.add_get("/api/hosts", self._hosts)
        app.router.add_get("/api/services", self._services)
        app.router.add_get("/api/services/{host}/{service}/history", self._history)
        app.router.add_get("/api/hosts/{host}/history", self._host_history)

    async def on_prepare(self) -> None:
        self.state.path.mkdir(parents=True, exist_ok=True)
        await self.store.open()

    async def on_closed(self) -> None:
        await self.store.close()

    def owns(self) -> dict[str, Any]:
        view = self.election.view()
        return {"store": str(self._db_path()),
                "election": view.model_dump(exclude={"schema_version"}),
                "master_job_runs": self.job_runs,
                "stored_new": int(self.metrics.get("results_stored_total", kind="new")),
                "only_bumped": int(self.metrics.get("results_stored_total", kind="bumped")),
                "duplicates": int(self.metrics.get("results_stored_total", kind="duplicate"))}

    async def _ingest(self, request: web.Request) -> web.Response:
        check_secret(request, self.secret)
        batch = await read_model(request, IngestBatch)
        reply = await self.store.ingest(batch)
        help_text = "Results ingested: new rows, only-bumped, duplicates."
        self.metrics.inc("results_stored_total", reply.stored_new, help_text, kind="new")
        self.metrics.inc("results_stored_total", reply.only_bumped, help_text, kind="bumped")
        self.metrics.inc("results_stored_total", reply.duplicates, help_text, kind="duplicate")
        return json_response(reply)

    async def _states(self, request: web.Request) -> web.Response:
        check_secret(request, self.secret)
        query = await read_model(request, StateQuery)
        return json_response(StateAnswer(states=await self.store.states(query.hosts)))

    async def _hosts(self, request: web.Request) -> web.Response:
        offset, limit = _paging(request)
        state = _int_param(request, "state")
        total, rows = await self.store.list_hosts(offset, limit, state)
        return json_response(StatePage(total=total, offset=offset, limit=limit, items=rows))

    async def _services(self, request: web.Request) -> web.Response:
        offset, limit = _paging(request)
        state = _int_param(request, "state")
        host = request.query.get("host") or None
        problems = request.query.get("problems", "0") not in ("", "0", "false")
        total, rows = await self.store.list_services(offset, limit, host, state, problems)
        return json_response(StatePage(total=total, offset=offset, limit=limit, items=rows))

    async def _history(self, request: web.Request) -> web.Response:
        offset, limit = _paging(request)
        total, rows = await self.store.history(request.match_info["host"],
                                               request.match_info["service"], offset, limit)
        return json_response(HistoryPage(total=total, offset=offset, limit=limit, items=rows))

    async def _host_history(self, request: web.Request) -> web.Response:
        offset, limit = _paging(request)
        total, rows = await self.store.history(request.match_info["host"], "", offset, limit)
        return json_response(HistoryPage(total=total, offset=offset, limit=limit, items=rows))


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

"""The data-server daemon: the only one that touches the database. Schedulers push results,
states and events to it; the console and scripts query it (`/api/hosts`, `/api/services`,
`/api/services/{host}/{service}/history`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

from aiohttp import web

from shinha.clock import Every
from shinha.config.objects import Module
from shinha.daemon.base import Daemon, DaemonContext
from shinha.daemon.election import Election, election_peers
from shinha.dataserver.http import DataserverInterface
from shinha.dataserver.mariadb import MariadbStore
from shinha.dataserver.sqlite import SqliteStore
from shinha.dataserver.store import Store
from shinha.db.options import Node, module_options
from shinha.db.probe import node_of, probe
from shinha.errors import RequestError, StorageError
from shinha.wire import (
    DatabaseReach,
    DatabaseReachQuery,
    DataserverOwns,
    Dispatch,
    Event,
    HistoryPage,
    IngestBatch,
    IngestReply,
    StateAnswer,
    StatePage,
    StateQuery,
    StateRow,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Storage modules a data-server may list (the first one listed is used).
STORAGE_TYPES = ("sqlite", "mariadb")


class DataserverDaemon(Daemon):
    """Storage and queries."""

    role = "dataserver"

    def __init__(self, ctx: DaemonContext) -> None:
        super().__init__(ctx)
        self.store: Store = self._make_store()
        self._storage_ok = True
        servers = dict(ctx.config.daemons.get("dataserver", {}))
        self.election = Election(ctx.link, election_peers(ctx.link, servers,
                                                          ctx.config.default_realm),
                                 self.client, self.clock, self.secret)
        options = self._module_options()
        self.retention = float(options.get("retention_days", "30")) * 86400
        self.stale_after = float(options.get("stale_after", "7200"))
        self.jobs_interval = float(options.get("jobs_interval", "60"))
        self.job_runs = 0

    def _storage_module(self) -> Module | None:
        for name in self.link.modules:
            module = self.config.modules.get(name)
            if module is not None and module.module_type in STORAGE_TYPES:
                return module
        return None

    def _module_options(self) -> dict[str, str]:
        module = self._storage_module()
        return dict(module.options) if module is not None else {}

    def _make_store(self) -> Store:
        module = self._storage_module()
        if module is None or module.module_type != "mariadb":
            return SqliteStore(self._db_path())
        # No primary until an arbiter's dispatch publishes one (the scheduler keeps its
        # results meanwhile).
        return MariadbStore(module_options(module, self.config.resources),
                            published_only=True)

    def apply_database(self, primary: Node | None, epoch: int) -> bool:
        """Write to `primary` under database `epoch` from now on (the arbiter's dispatch
        publishes them); an older epoch is refused. Return whether anything changed."""
        if not isinstance(self.store, MariadbStore):
            return False
        return self.store.set_primary(primary, epoch)

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

    async def apply_dispatch(self, dispatch: Dispatch) -> bool:
        changed = await super().apply_dispatch(dispatch)
        database = dispatch.topology.database
        # No primary named: the arbiter has not checked the nodes yet (just took the lead).
        if database is not None and database.primary and isinstance(self.store, MariadbStore):
            changed = self.apply_database(node_of(database.primary), database.epoch) or changed
        return changed

    def database_epoch(self) -> int:
        return self.store.primary.epoch if isinstance(self.store, MariadbStore) else 0

    async def on_start(self) -> None:
        self.loops.start("election", self.election.run)
        # Not critical: a chore failing (a purge, on one bad row) must not take storage down
        # on every data-server in turn as each becomes the master.
        self.loops.start("master-jobs", self._master_jobs, critical=False)

    async def _master_jobs(self) -> None:
        """Jobs that must run once in the cluster: only on the master data-server."""
        every = Every(self.clock, self.jobs_interval)
        while True:
            await every.tick()
            if not self.election.is_master():
                continue
            now = self.clock.time()
            try:
                purged = await self.store.purge(now - self.retention)
                stale = await self.store.sweep_stale(now - self.stale_after, now)
                events = await self._downtime_bookkeeping(now)
            except StorageError as exc:  # the data tier failing over: next round
                log.warning("dataserver %s: master jobs skipped: %s", self.name, exc)
                continue
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
        DataserverInterface(self.secret, self).add_routes(app)

    async def on_prepare(self) -> None:
        self.state.path.mkdir(parents=True, exist_ok=True)
        await self.store.open()

    async def on_closed(self) -> None:
        await self.store.close()

    def owns(self) -> DataserverOwns:
        store = self.store

        def stored(kind: str) -> int:
            return int(self.metrics.get("results_stored_total", kind=kind))

        return DataserverOwns(
            store=store.describe() if isinstance(store, MariadbStore) else str(self._db_path()),
            election=self.election.view(), master_job_runs=self.job_runs,
            stored_new=stored("new"), only_bumped=stored("bumped"),
            duplicates=stored("duplicate"))

    async def ingest(self, batch: IngestBatch) -> IngestReply:
        """Store a scheduler's batch; 503 (sent again) when the store cannot take it."""
        try:
            reply = await self.store.ingest(batch)
        except StorageError as exc:
            # 503: the scheduler keeps the batch in its outbox and sends it again.
            if self._storage_ok:
                log.warning("dataserver %s: cannot store ingests: %s", self.name, exc)
            self._storage_ok = False
            raise RequestError(503, "storage_unavailable", "the batch was not stored in full, "
                               "send it again (what was stored is known by its ids): "
                               f"{exc}") from None
        if not self._storage_ok:
            log.info("dataserver %s: storing ingests again", self.name)
        self._storage_ok = True
        help_text = "Results ingested: new rows, only-bumped, duplicates."
        self.metrics.inc("results_stored_total", reply.stored_new, help_text, kind="new")
        self.metrics.inc("results_stored_total", reply.only_bumped, help_text, kind="bumped")
        self.metrics.inc("results_stored_total", reply.duplicates, help_text, kind="duplicate")
        return reply

    async def states(self, query: StateQuery) -> StateAnswer:
        """The state rows of these hosts (a scheduler resuming its part)."""
        return StateAnswer(states=await self._read(self.store.states(query.hosts)))

    async def _read(self, work: Awaitable[T]) -> T:
        """A read; a database that cannot answer is a 503 (ask again, or another
        data-server), not a 500."""
        try:
            return await work
        except StorageError as exc:
            raise RequestError(503, "storage_unavailable", f"cannot read now: {exc}") from None

    async def _source(self, consistency: str) -> tuple[Node | None, str, float | None]:
        """Where a read goes: the primary, or with ?consistency=replica a replica (MariaDB),
        with its lag."""
        if consistency not in ("primary", "replica"):
            raise RequestError(400, "invalid", "consistency: primary or replica",
                               "consistency")
        if not isinstance(self.store, MariadbStore):
            return None, "", None
        primary = self.store.primary.node
        served = primary.name if primary else ""
        database = self.topology.database
        if consistency == "primary" or database is None:
            return None, served, None
        errors: list[str] = []
        for name in database.replicas:
            replica = node_of(name)
            try:
                lag = await self.store.replica_lag(replica)
            except StorageError as exc:
                errors.append(str(exc))
                continue
            return replica, replica.name, lag
        raise RequestError(503, "storage_unavailable", "no replica answers: "
                           + ("; ".join(errors) or "none published"), "consistency")

    async def hosts(self, offset: int, limit: int, state: int | None,
                    consistency: str) -> StatePage:
        """A page of the hosts' states."""
        replica, served, lag = await self._source(consistency)
        total, rows = await self._read(self._list_hosts(offset, limit, state, replica))
        return StatePage(total=total, offset=offset, limit=limit, items=rows,
                         served_by=served, lag=lag)

    async def services(self, offset: int, limit: int, host: str | None, state: int | None,
                       problems: bool, consistency: str) -> StatePage:
        """A page of the services' states."""
        replica, served, lag = await self._source(consistency)
        total, rows = await self._read(self._list_services(offset, limit, host, state,
                                                           problems, replica))
        return StatePage(total=total, offset=offset, limit=limit, items=rows,
                         served_by=served, lag=lag)

    async def history(self, host: str, service: str, offset: int, limit: int,
                      consistency: str) -> HistoryPage:
        """A page of the history of a service (of a host, with service '')."""
        replica, served, lag = await self._source(consistency)
        if replica is not None:
            assert isinstance(self.store, MariadbStore)
            work = self.store.history(host, service, offset, limit, replica=replica)
        else:
            work = self.store.history(host, service, offset, limit)
        total, rows = await self._read(work)
        return HistoryPage(total=total, offset=offset, limit=limit, items=rows,
                           served_by=served, lag=lag)

    def _list_hosts(self, offset: int, limit: int, state: int | None, replica: Node | None
                    ) -> Awaitable[tuple[int, list[StateRow]]]:
        if replica is not None:
            assert isinstance(self.store, MariadbStore)
            return self.store.list_hosts(offset, limit, state, replica=replica)
        return self.store.list_hosts(offset, limit, state)

    def _list_services(self, offset: int, limit: int, host: str | None, state: int | None,
                       problems: bool, replica: Node | None
                       ) -> Awaitable[tuple[int, list[StateRow]]]:
        if replica is not None:
            assert isinstance(self.store, MariadbStore)
            return self.store.list_services(offset, limit, host, state, problems,
                                            replica=replica)
        return self.store.list_services(offset, limit, host, state, problems)

    async def reach(self, query: DatabaseReachQuery) -> DatabaseReach:
        """The arbiter asks, before a database failover: can this data-server reach the
        node? (A failover happens only when no data-server can.)"""
        if not isinstance(self.store, MariadbStore):
            raise RequestError(400, "invalid", "this data-server stores into SQLite", "node")
        options = self.store.options
        node = next((n for n in options.ha_hosts if n.name == query.node), None)
        if node is None:
            raise RequestError(400, "invalid", f"node: {query.node!r} is not in ha_hosts",
                               "node")
        status = await probe(node, options)
        return DatabaseReach(node=node.name, reachable=status.reachable, error=status.error)


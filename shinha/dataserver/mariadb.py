"""The MariaDB backend: the same Store as SQLite's, on the published primary of a replicated
set of nodes (module_type mariadb; DESIGN.md §8).

It writes only to the node it was told is the primary, under the database epoch it was told
(`set_primary`). Every write transaction starts by reading the fence row under a shared lock
(shinha/db/fence.py): a node that is read-only, or holds another database epoch, refuses
before anything is written.

Ingests run side by side (up to WRITERS at once, each on its own connection), so that one
ingest's statements run on the server while the next one is planned here: on a small host
the client's and the server's work overlap instead of taking turns. What keeps them correct
is the database, not this process (other data-servers write too):
- an ingest reads its checks' baselines with `FOR UPDATE`: two ingests that touch the same
  check take turns on its states row, so a baseline is still true when it is written over;
- a check, result id or event id that two ingests both find new is inserted by both: the
  unique key makes the second wait for the first and then fail with a duplicate key, and the
  second is run again from the start (it then finds them known);
- the counters are updated last, each transaction on its own slot of them (schema.py
  ADD_COUNTERS), so that ingests do not queue there for each other's commit.
Sweeps and purges lock the rows they change, as any writer does.

An ingest is a handful of round trips whatever its size: the ids, the baselines, the new
check rows and the result rows (INSERT … RETURNING gives their ids), then every update as
one statement list; one commit. Reads go to the primary, or to a replica when asked (its lag:
`replica_lag`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from shinha.clock import Clock, SystemClock
from shinha.dataserver.sqlite import ID_RETENTION, PURGE_CHUNK
from shinha.dataserver.store import (
    COUNTERS,
    EVENT_COLUMNS,
    PROBLEM_STATES,
    RESULT_COLUMNS,
    Baseline,
    IngestPlan,
    Key,
    Store,
    check_page,
    history_entries,
    plan_ingest,
    state_from_record,
)
from shinha.db import ingest, schema
from shinha.db.conn import (
    POOL_SIZE,
    STATEMENT_TIMEOUT,
    DatabaseConflict,
    NodePool,
    Session,
    endpoint,
)
from shinha.db.fence import check_fence
from shinha.db.options import MariadbOptions, Node
from shinha.errors import (
    DatabaseError,
    DatabaseFenced,
    DatabaseReadOnly,
    DatabaseUnreachable,
    StorageError,
)
from shinha.wire import HistoryEntry, IngestBatch, IngestReply, StateRow

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Ids per `IN (...)` list.
CHUNK = 1000
#: Times a write transaction that lost a race with another writer is run again.
WRITE_ATTEMPTS = 8
#: Write transactions this store runs at once (each on its own connection).
WRITERS = 4
#: Results from which one batch is stored as two transactions side by side.
SPLIT_FROM = 200


@dataclass(frozen=True, slots=True)
class Primary:
    """The node this store writes to and the database epoch it writes under."""

    node: Node | None
    epoch: int


class MariadbStore(Store):
    """The store on MariaDB: `options` is the module's (shinha/db/options.py).

    The primary is the first of ha_hosts at database epoch 0 until `set_primary` says
    otherwise — or none at all with `published_only` (a data-server: it writes nowhere until
    an arbiter publishes the primary, not even to a node of another cluster listed first).
    Result ids are remembered `id_retention` seconds, as in SqliteStore.
    """

    def __init__(self, options: MariadbOptions, clock: Clock | None = None,
                 id_retention: float = ID_RETENTION,
                 statement_timeout: float = STATEMENT_TIMEOUT,
                 pool_size: int = POOL_SIZE, published_only: bool = False) -> None:
        self.options = options
        self.id_retention = id_retention
        self.statement_timeout = statement_timeout
        self.pool_size = pool_size
        self._clock = clock or SystemClock()
        self._primary = Primary(None if published_only else options.ha_hosts[0], 0)
        self._pools: dict[tuple[Node, bool], NodePool] = {}
        self._prepared: set[Node] = set()
        self._writers = asyncio.Semaphore(WRITERS)
        self._executor: ThreadPoolExecutor | None = None
        self._open = False

    # --- which node --------------------------------------------------------------------------

    @property
    def primary(self) -> Primary:
        return self._primary

    def set_primary(self, node: Node | None, db_epoch: int) -> bool:
        """Write to `node` under `db_epoch` from now on; return whether anything changed.

        Safe while writes run: each transaction takes the primary once, when it starts; one
        that a newer primary outdates (its node gone, read-only, or fenced) is run again on
        the new one. An epoch lower than the one held is refused, as a dispatch is.
        """
        held = self._primary
        if db_epoch < held.epoch or (db_epoch == held.epoch and node != held.node):
            log.warning("database primary %s at database epoch %d refused: this data-server "
                        "holds %s at epoch %d", node.name if node else "(none)", db_epoch,
                        held.node.name if held.node else "(none)", held.epoch)
            return False
        if db_epoch == held.epoch:
            return False
        self._primary = Primary(node, db_epoch)
        log.info("database primary is now %s (database epoch %d)",
                 node.name if node else "(none)", db_epoch)
        return True

    def describe(self) -> str:
        """Where the store writes, for /status: no account, no password."""
        node = self._primary.node
        return (f"mariadb {node.name if node else '(no primary)'}/{self.options.database} "
                f"(database epoch {self._primary.epoch})")

    def _pool(self, node: Node, admin: bool = False) -> NodePool:
        pool = self._pools.get((node, admin))
        if pool is None:
            ep = endpoint(self.options, node, admin=admin, database=not admin,
                          statement_timeout=self.statement_timeout)
            pool = self._pools[(node, admin)] = NodePool(ep, self.pool_size)
        return pool

    def _where(self, node: Node) -> str:
        return f"database {node.name} `{self.options.database}`"

    # --- life cycle ------------------------------------------------------------------------

    async def open(self) -> None:
        if self._open:
            raise StorageError(f"{self.describe()}: the store is already open")
        self._open = True
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shinha-mariadb")
        node = self._primary.node
        if node is None:
            return
        try:
            await self._prepare(node)
        except (DatabaseUnreachable, DatabaseReadOnly) as exc:
            # The data tier may be failing over: the schema is checked at the first use.
            log.warning("%s; the schema will be checked when it answers", exc)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if not self._open:
            return
        for _ in range(WRITERS):  # the writes in progress finish first
            await self._writers.acquire()
        try:
            if not self._open:
                return
            self._open = False
            pools, self._pools = self._pools, {}
            for pool in pools.values():
                pool.close()
            self._prepared.clear()
            executor, self._executor = self._executor, None
            if executor is not None:
                executor.shutdown(wait=False)
        finally:
            for _ in range(WRITERS):
                self._writers.release()

    async def _prepare(self, node: Node) -> None:
        if node in self._prepared:
            return
        async with self._pool(node).session() as session:
            await schema.prepare(session, self._where(node))
            row = await session.fetchone("SELECT @@global.innodb_flush_log_at_trx_commit, "
                                         "@@global.sync_binlog, @@global.log_bin")
        if row and (int(row[0]) != 1 or (int(row[2]) and int(row[1]) != 1)):
            log.warning("%s: innodb_flush_log_at_trx_commit=%s, sync_binlog=%s: a power cut "
                        "can lose results this data-server acknowledged; set both to 1",
                        node.name, row[0], row[1])
        self._prepared.add(node)

    def _check_open(self) -> None:
        if not self._open:
            raise StorageError(f"{self.describe()}: the store is not open")

    # --- transactions ------------------------------------------------------------------------

    async def _write(self, fn: Callable[[Session], Awaitable[T]]) -> T:
        """Run `fn` in one fenced write transaction on the primary, and commit."""
        self._check_open()
        async with self._writers:
            self._check_open()
            attempt, fresh = 0, False
            while True:
                primary = self._primary
                node = primary.node
                if node is None:
                    raise DatabaseUnreachable("(no primary)", "no database primary is "
                                              f"published (database epoch {primary.epoch})")
                pool = self._pool(node)
                reused = committing = False
                try:
                    await self._prepare(node)
                    async with pool.session(fresh) as session:
                        reused = session.statements > 0
                        await session.begin()
                        await check_fence(session, primary.epoch)
                        result = await fn(session)
                        committing = True
                        await session.commit()
                        return result
                except DatabaseConflict:
                    attempt += 1
                    if attempt >= WRITE_ATTEMPTS:
                        raise
                    await asyncio.sleep(random.uniform(0.5, 1.0) * 0.02 * 2 ** attempt)
                except (DatabaseUnreachable, DatabaseReadOnly, DatabaseFenced) as exc:
                    attempt += 1
                    if isinstance(exc, DatabaseUnreachable):
                        pool.drop_idle()
                    if self._primary is not primary and attempt < WRITE_ATTEMPTS:
                        continue  # a newer primary was published meanwhile: write there
                    if isinstance(exc, DatabaseUnreachable) and reused and not committing \
                            and not fresh:
                        fresh = True  # an idle connection the server had dropped: once more
                        continue
                    raise

    async def _read(self, fn: Callable[[Session], Awaitable[T]], replica: Node | None) -> T:
        """Run `fn` in one read-only transaction on `replica`, else on the primary."""
        self._check_open()
        node = replica or self._primary.node
        if node is None:
            raise DatabaseUnreachable("(no primary)", "no database primary is published "
                                      f"(database epoch {self._primary.epoch})")
        if replica is None:
            await self._prepare(node)
        pool = self._pool(node)
        for fresh in (False, True):
            reused = False
            try:
                async with pool.session(fresh) as session:
                    reused = session.statements > 0
                    await session.begin(read_only=True)
                    result = await fn(session)
                    await session.commit()
                    return result
            except DatabaseUnreachable:
                pool.drop_idle()
                if fresh or not reused:
                    raise
        raise AssertionError("unreachable")

    # --- writes ----------------------------------------------------------------------------

    async def ingest(self, batch: IngestBatch) -> IngestReply:
        if not (batch.results or batch.states or batch.events):
            return IngestReply(accepted=[], stored_new=0, only_bumped=0, duplicates=0)
        now = self._clock.time()
        parts = _split(batch)
        if len(parts) == 1:
            return await self._write(lambda s: self._ingest_tx(s, batch, now))
        # Its halves side by side: one is planned here while the server runs the other's
        # statements. A half stored before the other failed is stored: the resent batch
        # finds its ids known (idempotent), as for any batch resent.
        replies = await asyncio.gather(*(self._ingest_part(part, now) for part in parts))
        return IngestReply(accepted=[i for r in replies for i in r.accepted],
                           stored_new=sum(r.stored_new for r in replies),
                           only_bumped=sum(r.only_bumped for r in replies),
                           duplicates=sum(r.duplicates for r in replies))

    async def _ingest_part(self, batch: IngestBatch, now: float) -> IngestReply:
        return await self._write(lambda s: self._ingest_tx(s, batch, now))

    async def _ingest_tx(self, s: Session, batch: IngestBatch, now: float) -> IngestReply:
        # The checks first: an ingest of the same results that held them has committed once
        # they are ours, so its ids are seen as known below (a race lost later is run again).
        keys = sorted({(r.host, r.service) for r in batch.results})  # one lock order
        baselines, texts = await _baselines(s, keys)
        known_results = await _existing(s, "SELECT result_id FROM seen_results WHERE "
                                        "result_id IN ({})", [r.result_id for r in batch.results])
        known_events = await _existing(s, "SELECT event_id FROM events WHERE event_id IN ({})",
                                       [e.event_id for e in batch.events])
        # The CPU work runs on the store's thread, so that the event loop keeps serving; the
        # server writes the ids taken meanwhile.
        fresh = list(dict.fromkeys(r.result_id for r in batch.results
                                   if r.result_id not in known_results))
        taking = asyncio.ensure_future(s.run_list(ingest.ids_taken(fresh, now)))
        planning = asyncio.ensure_future(self._cpu(lambda: _plan(
            batch, known_results, known_events, baselines, now)))
        try:
            await asyncio.wait((taking, planning))
        except BaseException:
            taking.cancel()  # the session is closed then: the server rolls back
            planning.cancel()
            raise
        taking.result()
        plan, firsts = planning.result()
        if plan.fresh_ids != fresh:
            raise StorageError(f"{self.describe()}: ids taken {len(fresh)} differ from the "
                               f"plan's {len(plan.fresh_ids)}: refused (a bug)")
        check_ids = ingest.known_checks(plan)
        for sql in firsts:
            check_ids.update(((h, v), int(i)) for i, h, v in await s.fetchall(sql))
        row_ids: dict[str, int] = {}
        for sql in await self._cpu(lambda: ingest.result_rows(plan, check_ids)):
            row_ids.update((str(rid), int(i)) for i, rid in await s.fetchall(sql))
        slot = random.randrange(schema.COUNTER_SLOTS)
        await s.run_list(await self._cpu(lambda: ingest.the_rest(
            plan, check_ids, row_ids, texts, now, self.id_retention, slot)))
        return plan.reply()

    async def _cpu(self, fn: Callable[[], T]) -> T:
        executor = self._executor
        if executor is None:
            raise StorageError(f"{self.describe()}: the store is not open")
        return await asyncio.get_running_loop().run_in_executor(executor, fn)

    async def sweep_stale(self, older_than: float, now: float) -> int:
        async def sweep(s: Session) -> int:
            return await s.execute(
                "UPDATE states SET state = 3, state_type = 'HARD', output = %s, "
                "last_state_change = %s, updated_at = %s WHERE service <> '' "
                "AND last_check > 0 AND last_check < %s AND state NOT IN (3, 4)",
                (f"(no result since {older_than:.0f}: stale)", now, now, older_than))

        return await self._write(sweep)

    async def purge(self, older_than: float) -> int:
        deleted = 0
        while True:
            # One chunk per transaction: ingests run between the chunks.
            counted, more = await self._write(lambda s: _purge_chunk(s, older_than))
            deleted += counted
            if not more:
                return deleted

    # --- reads -----------------------------------------------------------------------------

    async def states(self, hosts: list[str], *, replica: Node | None = None) -> list[StateRow]:
        async def read(s: Session) -> list[StateRow]:
            rows: list[StateRow] = []
            for chunk in _chunks(sorted(set(hosts))):
                sql = (f"SELECT {schema.STATE_COLS} FROM states WHERE host IN "
                       f"({_marks(chunk)}) ORDER BY host, service")
                rows.extend(state_from_record(r) for r in await s.fetchall(sql, chunk))
            return rows

        return await self._read(read, replica)

    async def list_hosts(self, offset: int, limit: int, state: int | None = None, *,
                         replica: Node | None = None) -> tuple[int, list[StateRow]]:
        return await self._list(offset, limit, "service = ''", None, state, False, "host",
                                replica)

    async def list_services(self, offset: int, limit: int, host: str | None = None,
                            state: int | None = None, problems: bool = False, *,
                            replica: Node | None = None) -> tuple[int, list[StateRow]]:
        return await self._list(offset, limit, "service <> ''", host, state, problems,
                                "host, service", replica)

    async def _list(self, offset: int, limit: int, kind: str, host: str | None,
                     state: int | None, problems: bool, order: str,
                     replica: Node | None) -> tuple[int, list[StateRow]]:
        check_page(offset, limit)
        where: list[str] = [kind]
        params: list[Any] = []
        if host is not None:
            where.append("host = %s")
            params.append(host)
        if state is not None:
            where.append("state = %s")
            params.append(state)
        if problems:
            where.append(f"state IN ({', '.join(str(s) for s in PROBLEM_STATES)})")
        clause = " AND ".join(where)

        async def read(s: Session) -> tuple[int, list[StateRow]]:
            total = await s.fetchone(f"SELECT count(*) FROM states WHERE {clause}", params)
            records = await s.fetchall(f"SELECT {schema.STATE_COLS} FROM states WHERE {clause} "
                                       f"ORDER BY {order} LIMIT %s OFFSET %s",
                                       [*params, limit, offset])
            return int(total[0] if total else 0), [state_from_record(r) for r in records]

        return await self._read(read, replica)

    async def history(self, host: str, service: str, offset: int, limit: int, *,
                      replica: Node | None = None) -> tuple[int, list[HistoryEntry]]:
        check_page(offset, limit)
        return await self._read(lambda s: _history(s, host, service, offset, limit), replica)

    async def counters(self, *, replica: Node | None = None) -> dict[str, int]:
        async def read(s: Session) -> dict[str, int]:
            values = dict.fromkeys(COUNTERS, 0)
            for name, value in await s.fetchall("SELECT name, value FROM counters"):
                base = str(name).partition("@")[0]  # a slot's row (schema.ADD_COUNTERS)
                if base in values:
                    values[base] += int(value)
            return values

        return await self._read(read, replica)

    async def replica_lag(self, node: Node) -> float | None:
        """How far `node` is behind its primary, in seconds (Seconds_Behind_Master); None
        while its replication threads are stopped. DatabaseError if it is not a replica."""
        self._check_open()
        async with self._pool(node, admin=True).session() as session:
            rows = await session.fetchdicts("SHOW SLAVE STATUS")
        if not rows:
            raise DatabaseError(node.name, "is not a replica (SHOW SLAVE STATUS is empty)")
        lag = rows[0].get("Seconds_Behind_Master")
        return None if lag is None else float(lag)


# --- statements of one transaction ------------------------------------------------------------


def _split(batch: IngestBatch) -> list[IngestBatch]:
    """A big batch in two halves by check (every item of a check in the same half), else
    the batch alone."""
    if len(batch.results) < SPLIT_FROM:
        return [batch]
    keys = sorted({(r.host, r.service) for r in batch.results})
    first = set(keys[:len(keys) // 2])
    if not first:
        return [batch]
    halves = [IngestBatch(scheduler=batch.scheduler, epoch=batch.epoch) for _ in range(2)]
    for r in batch.results:
        halves[(r.host, r.service) not in first].results.append(r)
    for row in batch.states:
        halves[(row.host, row.service) not in first].states.append(row)
    for e in batch.events:
        halves[(e.host, e.service) not in first].events.append(e)
    return halves


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


def _marks(items: list[Any]) -> str:
    return ", ".join(["%s"] * len(items))


async def _existing(s: Session, sql: str, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(list(set(ids))):
        found.update(str(r[0]) for r in await s.fetchall(sql.format(_marks(chunk)), chunk))
    return found


async def _baselines(s: Session,
                     keys: list[Key]) -> tuple[dict[Key, Baseline], dict[Key, ingest.Texts]]:
    found: dict[Key, Baseline] = {}
    texts: dict[Key, ingest.Texts] = {}
    for start in range(0, len(keys), CHUNK // 2):
        chunk = keys[start:start + CHUNK // 2]
        # Forced: past a few hundred pairs the optimizer may prefer a full scan.
        sql = (f"SELECT {schema.BASELINE_COLUMNS} FROM states FORCE INDEX (states_key) "
               "WHERE (host, service) IN "
               f"({', '.join(['(%s, %s)'] * len(chunk))}) FOR UPDATE")
        for record in await s.fetchall(sql, [v for k in chunk for v in k]):
            key = (record[0], record[1])
            found[key] = Baseline(*record[2:8])
            texts[key] = (record[8], record[9], record[10])
    return found, texts


def _plan(batch: IngestBatch, known_results: set[str], known_events: set[str],
          baselines: dict[Key, Baseline], now: float) -> tuple[IngestPlan, list[str]]:
    plan = plan_ingest(batch, known_results, known_events, baselines, now)
    return plan, ingest.new_checks(plan)


async def _purge_chunk(s: Session, older_than: float) -> tuple[int, bool]:
    results = await s.execute(
        "DELETE FROM results WHERE last_seen < %s AND id NOT IN (SELECT res_row FROM states "
        "WHERE res_row IS NOT NULL) LIMIT %s", (older_than, PURGE_CHUNK))
    events = await s.execute("DELETE FROM events WHERE time < %s LIMIT %s",
                             (older_than, PURGE_CHUNK))
    seen = await s.execute("DELETE FROM seen_results WHERE received < %s LIMIT %s",
                           (older_than, PURGE_CHUNK))
    return results + events, max(results, events, seen) >= PURGE_CHUNK


async def _history(s: Session, host: str, service: str, offset: int,
                   limit: int) -> tuple[int, list[HistoryEntry]]:
    current = await s.fetchone("SELECT id, res_row, res_hits, res_time FROM states "
                               "WHERE host = %s AND service = %s", (host, service))
    check_id, res_row, res_hits, res_time = current or (-1, None, 0, 0.0)
    counted = await s.fetchone(
        "SELECT (SELECT count(*) FROM results WHERE check_id = %s) + (SELECT count(*) FROM "
        "events WHERE host = %s AND service = %s)", (check_id, host, service))
    # Page over ids first, then read the rows of that page only.
    page = await s.fetchall(
        "SELECT 'r' AS src, id, time FROM results WHERE check_id = %s UNION ALL "
        "SELECT 'e' AS src, id, time FROM events WHERE host = %s AND service = %s "
        "ORDER BY time DESC, src ASC, id DESC LIMIT %s OFFSET %s",
        (check_id, host, service, limit, offset))
    result_ids = [i for src, i, _ in page if src == "r"]
    event_ids = [i for src, i, _ in page if src == "e"]
    results: list[tuple[Any, ...]] = []
    if result_ids:
        results = await s.fetchall(f"SELECT {', '.join(RESULT_COLUMNS)} FROM results "
                                   f"WHERE id IN ({_marks(result_ids)})", result_ids)
    events: list[tuple[Any, ...]] = []
    if event_ids:
        events = await s.fetchall(f"SELECT id, {', '.join(EVENT_COLUMNS)} FROM events "
                                  f"WHERE id IN ({_marks(event_ids)})", event_ids)
    total = int(counted[0]) if counted else 0
    return total, history_entries(page, results, events, (res_row, res_hits, res_time))

"""The embedded SQLite backend: one file in the data-server's state dir, WAL, one thread.

Every statement runs on one dedicated thread, so the event loop never waits on the disk and
the connection never needs a lock. Durability: WAL with synchronous=FULL, so each commit
fsyncs the WAL before `ingest` returns. NORMAL would survive a killed process (the OS still
holds the written WAL) but can lose the last commits on a power cut or kernel crash, and a
result the scheduler was told is stored must survive those too (nothing lost, DESIGN.md §7).
The cost is one fsync per batch, not per result.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from shinha.clock import Clock, SystemClock
from shinha.dataserver.store import (
    COUNTERS,
    EVENT_COLUMNS,
    MIGRATIONS,
    PROBLEM_STATES,
    RESULT_COLUMNS,
    RESULT_INSERT_COLUMNS,
    STATE_COLUMNS,
    STORE_SCHEMA_VERSION,
    Baseline,
    ColumnTypes,
    IngestPlan,
    Key,
    Store,
    check_page,
    check_schema_version,
    column_defs,
    event_params,
    first_state,
    history_entries,
    plan_ingest,
    result_params,
    state_from_record,
    state_params,
)
from shinha.errors import StorageError
from shinha.wire import Event, HistoryEntry, IngestBatch, IngestReply, StateRow

T = TypeVar("T")

#: The file name used when the store is given a directory (the daemon's state dir).
DB_FILENAME = "dataserver.sqlite3"
#: Ids per `IN (...)` list: far below SQLite's variable limit, big enough to be few queries.
CHUNK = 500
#: How long result ids are remembered by default (seconds).
ID_RETENTION = 86_400.0
#: Rows per purge transaction, so that ingests interleave with a long purge.
PURGE_CHUNK = 5_000

#: How SQLite stores the fields of a StateRow or an Event.
COLUMN_TYPES = ColumnTypes(integer="INTEGER", real="REAL", boolean="INTEGER", text="TEXT",
                           choice="TEXT", json="TEXT")
# Types and statements stay close to what MariaDB takes too; the SQLite-only parts are
# WITHOUT ROWID (InnoDB clusters on the primary key anyway) and the upsert below. The
# columns that carry a StateRow or an Event come from the model (store.column_defs).
SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE states (
    id INTEGER PRIMARY KEY,
    {column_defs(StateRow, COLUMN_TYPES, {"updated_at": "REAL NOT NULL DEFAULT 0",
                                          "alert": "TEXT NOT NULL DEFAULT '{{}}'"})},
    res_row INTEGER, res_sig TEXT NOT NULL DEFAULT '',
    res_hits INTEGER NOT NULL DEFAULT 0, res_time REAL NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX states_key ON states (host, service);
CREATE INDEX states_hosts ON states (service, host);
CREATE INDEX states_state ON states (state);
CREATE TABLE results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    check_id INTEGER NOT NULL, result_id TEXT NOT NULL,
    time REAL NOT NULL, last_seen REAL NOT NULL, hits INTEGER NOT NULL,
    return_code INTEGER NOT NULL, output TEXT NOT NULL, long_output TEXT NOT NULL,
    perfdata TEXT NOT NULL, started REAL NOT NULL, latency REAL NOT NULL,
    timed_out INTEGER NOT NULL, passive INTEGER NOT NULL, poller TEXT NOT NULL
);
CREATE INDEX results_history ON results (check_id, time);
CREATE INDEX results_age ON results (last_seen);
CREATE TABLE seen_results (
    result_id TEXT PRIMARY KEY, received REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX seen_results_age ON seen_results (received);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    {column_defs(Event, COLUMN_TYPES, {"event_id": "TEXT NOT NULL UNIQUE"})}
);
CREATE INDEX events_history ON events (host, service, time);
CREATE INDEX events_age ON events (time);
"""

_STATE_COLS = ", ".join(STATE_COLUMNS)
_STATE_MARKS = ", ".join("?" * len(STATE_COLUMNS))
INSERT_STATE = f"INSERT INTO states ({_STATE_COLS}) VALUES ({_STATE_MARKS})"
# The scheduler owns every StateRow field; last_check only moves forward because a bump in
# the same batch may already have set it from a result that finished later.
UPSERT_STATE = (INSERT_STATE + " ON CONFLICT (host, service) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in STATE_COLUMNS[2:]
                            if c != "last_check")
                + ", last_check = max(states.last_check, excluded.last_check)"
                # A row older than the stored one (a scheduler that lost its part and does not
                # know it yet) never overwrites a newer one.
                + " WHERE excluded.updated_at >= states.updated_at")
INSERT_RESULT = (f"INSERT INTO results ({', '.join(RESULT_INSERT_COLUMNS)}) "
                 f"VALUES ({', '.join('?' * len(RESULT_INSERT_COLUMNS))})")
INSERT_EVENT = (f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})")
BASELINE = ("SELECT id, res_row, res_sig, res_hits, res_time, last_check FROM states "
            "WHERE host = ? AND service = ?")
# The data columns stay as they are (NULL given) when every result of the batch was late.
BUMP = ("UPDATE states SET res_row = ?, res_sig = ?, res_hits = ?, res_time = ?, "
        "last_check = ?, output = coalesce(?, output), long_output = coalesce(?, long_output), "
        "perfdata = coalesce(?, perfdata), last_result_id = coalesce(?, last_result_id) "
        "WHERE id = ?")


class SqliteStore(Store):
    """The embedded store: `path` is the database file, or a directory to hold DB_FILENAME.

    Result ids are remembered `id_retention` seconds (a resend later than that is taken as
    new): long enough to outlast any retry, short enough that the ids, one row per result
    even when only-new-data stores none, do not outgrow the results.
    """

    def __init__(self, path: Path, clock: Clock | None = None,
                 id_retention: float = ID_RETENTION) -> None:
        self.path = path / DB_FILENAME if path.is_dir() else path
        self.id_retention = id_retention
        self._clock = clock or SystemClock()
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    # --- life cycle ------------------------------------------------------------------------

    async def open(self) -> None:
        if self._executor is not None:
            raise StorageError(f"{self.path}: the store is already open")
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shinha-sqlite")
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._open_sync)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            # Queued behind whatever was submitted before: those finish first.
            await asyncio.get_running_loop().run_in_executor(executor, self._close_sync)
        finally:
            executor.shutdown(wait=True)

    def _open_sync(self) -> None:
        if sqlite3.sqlite_version_info < (3, 24, 0):
            raise StorageError(f"SQLite {sqlite3.sqlite_version} is too old: the data-server "
                               "needs 3.24 or later (upsert)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the database {self.path}: {exc}") from exc
        try:
            self._prepare(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StorageError(f"{self.path} is not a shinha data-server database, or it is "
                               f"corrupt ({exc}); move it aside to start afresh") from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(f"{self.path}: cannot use WAL mode (got {mode!r}); put the state "
                               "dir on a local filesystem")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: the id and state indexes stay hot
        conn.execute("PRAGMA journal_size_limit = 67108864")
        conn.execute("PRAGMA temp_store = MEMORY")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            with _transaction(conn):
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                             (str(STORE_SCHEMA_VERSION),))
                conn.executemany("INSERT INTO counters (name, value) VALUES (?, 0)",
                                 [(name,) for name in COUNTERS])
            return
        if "meta" not in tables:
            raise StorageError(f"{self.path} is an SQLite database but not a shinha "
                               "data-server's (no meta table); give the data-server its own file")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = check_schema_version(str(self.path), row[0] if row else None)
        for target in range(version + 1, STORE_SCHEMA_VERSION + 1):
            with _transaction(conn):
                for statement in MIGRATIONS[target]:
                    conn.execute(statement)
                conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                             (str(target),))

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute("PRAGMA optimize")
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: {exc}") from exc
        finally:
            conn.close()

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        executor = self._executor
        if executor is None:
            raise StorageError(f"{self.path}: the store is not open")
        return await asyncio.get_running_loop().run_in_executor(executor, self._run, fn)

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise StorageError(f"{self.path}: the store is closed")
        try:
            return fn(conn)
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: {exc}") from exc

    # --- writes ----------------------------------------------------------------------------

    async def ingest(self, batch: IngestBatch) -> IngestReply:
        if not (batch.results or batch.states or batch.events):
            return IngestReply(accepted=[], stored_new=0, only_bumped=0, duplicates=0)
        now = self._clock.time()
        return await self._call(lambda conn: self._ingest_sync(conn, batch, now))

    def _ingest_sync(self, conn: sqlite3.Connection, batch: IngestBatch,
                     now: float) -> IngestReply:
        with _transaction(conn):
            known_results = _existing(conn, "SELECT result_id FROM seen_results WHERE "
                                      "result_id IN ({})", [r.result_id for r in batch.results])
            known_events = _existing(conn, "SELECT event_id FROM events WHERE event_id IN ({})",
                                     [e.event_id for e in batch.events])
            baselines: dict[Key, Baseline] = {}
            for result in batch.results:
                key = (result.host, result.service)
                if key not in baselines:
                    record = conn.execute(BASELINE, key).fetchone()
                    baselines[key] = Baseline(*record) if record else Baseline()
            plan = plan_ingest(batch, known_results, known_events, baselines, now)
            _apply(conn, plan, now)
            # Forget expired ids as fast as new ones come (twice, to catch up), so the table
            # stays at rate x retention with no background task and no long transaction.
            conn.execute("DELETE FROM seen_results WHERE result_id IN (SELECT result_id FROM "
                         "seen_results WHERE received < ? ORDER BY received LIMIT ?)",
                         (now - self.id_retention, 2 * len(plan.fresh_ids)))
        return plan.reply()

    async def sweep_stale(self, older_than: float, now: float) -> int:
        def sweep(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                cur = conn.execute(
                    "UPDATE states SET state = 3, state_type = 'HARD', output = ?, "
                    "last_state_change = ?, updated_at = ? WHERE service <> '' "
                    "AND last_check > 0 AND last_check < ? AND state NOT IN (3, 4)",
                    (f"(no result since {older_than:.0f}: stale)", now, now, older_than))
                return int(cur.rowcount)

        return await self._call(sweep)

    async def purge(self, older_than: float) -> int:
        deleted = 0
        while True:
            # One chunk per job: ingests queued meanwhile run between the chunks.
            counted, more = await self._call(lambda conn: _purge_chunk(conn, older_than))
            deleted += counted
            if not more:
                return deleted

    # --- reads -----------------------------------------------------------------------------

    async def states(self, hosts: list[str]) -> list[StateRow]:
        def read(conn: sqlite3.Connection) -> list[StateRow]:
            rows: list[StateRow] = []
            for chunk in _chunks(sorted(set(hosts))):
                sql = (f"SELECT {_STATE_COLS} FROM states WHERE host IN ({_marks(chunk)}) "
                       "ORDER BY host, service")
                rows.extend(state_from_record(r) for r in conn.execute(sql, chunk))
            return rows

        return await self._call(read)

    async def list_hosts(self, offset: int, limit: int,
                         state: int | None = None) -> tuple[int, list[StateRow]]:
        return await self._list(offset, limit, "service = ''", None, state, False, "host")

    async def list_services(self, offset: int, limit: int, host: str | None = None,
                            state: int | None = None,
                            problems: bool = False) -> tuple[int, list[StateRow]]:
        return await self._list(offset, limit, "service <> ''", host, state, problems,
                                "host, service")

    async def _list(self, offset: int, limit: int, kind: str, host: str | None,
                    state: int | None, problems: bool, order: str) -> tuple[int, list[StateRow]]:
        check_page(offset, limit)
        where: list[str] = [kind]
        params: list[Any] = []
        if host is not None:
            where.append("host = ?")
            params.append(host)
        if state is not None:
            where.append("state = ?")
            params.append(state)
        if problems:
            where.append(f"state IN ({', '.join(str(s) for s in PROBLEM_STATES)})")
        return await self._call(lambda conn: _page(conn, where, params, order, offset, limit))

    async def history(self, host: str, service: str, offset: int,
                      limit: int) -> tuple[int, list[HistoryEntry]]:
        check_page(offset, limit)
        return await self._call(lambda conn: _history(conn, host, service, offset, limit))

    async def counters(self) -> dict[str, int]:
        def read(conn: sqlite3.Connection) -> dict[str, int]:
            values = dict(conn.execute("SELECT name, value FROM counters").fetchall())
            return {name: int(values.get(name, 0)) for name in COUNTERS}

        return await self._call(read)


# --- statements run on the store's thread -----------------------------------------------------


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front: the baseline read and the writes that depend on
    # it are one atomic step even if another process (a backup, the sqlite3 shell) writes.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            # A failed COMMIT (disk full, I/O error) leaves the transaction open; the error
            # that matters is the one being raised, not a failing rollback.
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


def _marks(items: list[Any]) -> str:
    return ", ".join("?" * len(items))


def _existing(conn: sqlite3.Connection, sql: str, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(list(set(ids))):
        found.update(r[0] for r in conn.execute(sql.format(_marks(chunk)), chunk))
    return found


def _apply(conn: sqlite3.Connection, plan: IngestPlan, now: float) -> None:
    conn.executemany("INSERT INTO seen_results (result_id, received) VALUES (?, ?)",
                     [(rid, now) for rid in plan.fresh_ids])
    retired: list[tuple[int, float, int]] = []
    bumps: list[tuple[Any, ...]] = []
    for check in plan.checks:
        newest = check.newest
        check_id = check.base.check_id
        if check_id is None:
            assert newest is not None, "a check's first result is always its newest"
            check_id = conn.execute(INSERT_STATE, first_state(newest.result, newest.time,
                                                              newest.perfdata)).lastrowid
            assert check_id is not None, "an INSERT gives its row id"
        if check.retire is not None and check.base.row is not None:
            retired.append((check.retire[0], check.retire[1], check.base.row))
        res_row = check.base.row
        for index, row in enumerate(check.rows):
            cursor = conn.execute(INSERT_RESULT, result_params(check_id, row))
            if index == check.current:
                res_row = cursor.lastrowid
        data = ((newest.result.output, newest.result.long_output, newest.perfdata,
                 newest.result.result_id) if newest else (None, None, None, None))
        bumps.append((res_row, check.sig, check.hits, check.seen, check.last_check, *data,
                      check_id))
    conn.executemany("UPDATE results SET hits = ?, last_seen = ? WHERE id = ?", retired)
    conn.executemany(BUMP, bumps)
    conn.executemany(UPSERT_STATE, [state_params(s) for s in plan.states])
    conn.executemany(INSERT_EVENT, [event_params(e) for e in plan.events])
    conn.executemany("UPDATE counters SET value = value + ? WHERE name = ?",
                     [(n, name) for name, n in plan.counter_deltas().items() if n])


def _purge_chunk(conn: sqlite3.Connection, older_than: float) -> tuple[int, bool]:
    with _transaction(conn):
        results = conn.execute(
            "DELETE FROM results WHERE id IN (SELECT id FROM results WHERE last_seen < ? AND id "
            "NOT IN (SELECT res_row FROM states WHERE res_row IS NOT NULL) LIMIT ?)",
            (older_than, PURGE_CHUNK)).rowcount
        events = conn.execute(
            "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE time < ? LIMIT ?)",
            (older_than, PURGE_CHUNK)).rowcount
        seen = conn.execute(
            "DELETE FROM seen_results WHERE result_id IN (SELECT result_id FROM seen_results "
            "WHERE received < ? LIMIT ?)", (older_than, PURGE_CHUNK)).rowcount
    more = max(results, events, seen) >= PURGE_CHUNK
    return results + events, more


def _page(conn: sqlite3.Connection, where: list[str], params: list[Any], order: str,
          offset: int, limit: int) -> tuple[int, list[StateRow]]:
    clause = " AND ".join(where)
    total = conn.execute(f"SELECT count(*) FROM states WHERE {clause}", params).fetchone()[0]
    records = conn.execute(f"SELECT {_STATE_COLS} FROM states WHERE {clause} ORDER BY {order} "
                           "LIMIT ? OFFSET ?", [*params, limit, offset])
    return int(total), [state_from_record(r) for r in records]


def _history(conn: sqlite3.Connection, host: str, service: str, offset: int,
             limit: int) -> tuple[int, list[HistoryEntry]]:
    current = conn.execute("SELECT id, res_row, res_hits, res_time FROM states "
                           "WHERE host = ? AND service = ?", (host, service)).fetchone()
    check_id, res_row, res_hits, res_time = current or (-1, None, 0, 0.0)
    total = (conn.execute("SELECT count(*) FROM results WHERE check_id = ?",
                          (check_id,)).fetchone()[0]
             + conn.execute("SELECT count(*) FROM events WHERE host = ? AND service = ?",
                            (host, service)).fetchone()[0])
    # Page over ids first, then read the rows of that page only.
    page = conn.execute(
        "SELECT 'r' AS src, id, time FROM results WHERE check_id = ? UNION ALL "
        "SELECT 'e' AS src, id, time FROM events WHERE host = ? AND service = ? "
        "ORDER BY time DESC, src ASC, id DESC LIMIT ? OFFSET ?",
        (check_id, host, service, limit, offset)).fetchall()
    result_ids = [i for src, i, _ in page if src == "r"]
    event_ids = [i for src, i, _ in page if src == "e"]
    results: list[Any] = []
    if result_ids:
        results = conn.execute(f"SELECT {', '.join(RESULT_COLUMNS)} FROM results "
                               f"WHERE id IN ({_marks(result_ids)})", result_ids).fetchall()
    events: list[Any] = []
    if event_ids:
        events = conn.execute(f"SELECT id, {', '.join(EVENT_COLUMNS)} FROM events "
                              f"WHERE id IN ({_marks(event_ids)})", event_ids).fetchall()
    return int(total), history_entries(page, results, events, (res_row, res_hits, res_time))

"""The data-server's schema on MariaDB (InnoDB, utf8mb4), and the statements of the store.

The tables, columns and indexes are SQLite's (shinha/dataserver/sqlite.py) with MariaDB
types, plus `shinha_fence`: one row holding the database epoch that every write transaction
checks (shinha/db/fence.py). The columns of the states and events tables are made from their
models (StateRow, Event: store.column_defs), the column lists of the statements come from
shinha/dataserver/store.py, and a test compares the two schemas column by column, so the
backends cannot drift apart unseen.

Names and ids are compared byte for byte, as SQLite does: the collation is utf8mb4_nopad_bin
(`Web1` is not `web1`, `a ` is not `a`). Texts that a plugin or an operator writes are
MEDIUMTEXT (a passive result may carry a 64 KiB output and a 1 MiB long output).
"""

from __future__ import annotations

from shinha.dataserver.store import (
    COUNTERS,
    EVENT_COLUMNS,
    MIGRATIONS,
    RESULT_INSERT_COLUMNS,
    STATE_COLUMNS,
    STORE_SCHEMA_VERSION,
    ColumnTypes,
    check_schema_version,
    column_defs,
)
from shinha.db.conn import Session
from shinha.errors import StorageError
from shinha.wire import Event, StateRow

_TABLE = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin"
#: Longest host, service, event id (an index on host and service stays under InnoDB's 3072
#: bytes in utf8mb4).
NAME = "VARCHAR(255)"
#: How MariaDB stores the fields of a StateRow or an Event: texts that a plugin or an
#: operator writes are MEDIUMTEXT, a choice among a few words VARCHAR(16).
COLUMN_TYPES = ColumnTypes(integer="INTEGER", real="DOUBLE", boolean="TINYINT",
                           text="MEDIUMTEXT", choice="VARCHAR(16)", json="MEDIUMTEXT")
#: The StateRow columns whose type is not the one of their kind: indexed names, short texts,
#: a column added by a migration.
STATE_SPECIAL = {"host": f"{NAME} NOT NULL", "service": f"{NAME} NOT NULL",
                 "ack_author": "TEXT NOT NULL", "ack_comment": "TEXT NOT NULL",
                 "last_result_id": "VARCHAR(255) NOT NULL",
                 "updated_at": "DOUBLE NOT NULL DEFAULT 0",
                 "alert": "MEDIUMTEXT NOT NULL DEFAULT '{}'"}
EVENT_SPECIAL = {"event_id": f"{NAME} NOT NULL", "host": f"{NAME} NOT NULL",
                 "service": f"{NAME} NOT NULL", "kind": "VARCHAR(32) NOT NULL",
                 "state_type": "VARCHAR(16) NOT NULL"}

#: Table name -> its CREATE statement, in the order they are made: meta first, so that a
#: creation cut short is completed at the next start instead of refused as a foreign database.
TABLES: dict[str, str] = {
    "meta": "CREATE TABLE IF NOT EXISTS meta (`key` VARCHAR(64) NOT NULL PRIMARY KEY, "
            "value TEXT NOT NULL)" + _TABLE,
    "counters": "CREATE TABLE IF NOT EXISTS counters (name VARCHAR(64) NOT NULL PRIMARY KEY, "
                "value BIGINT NOT NULL)" + _TABLE,
    "states": f"""CREATE TABLE IF NOT EXISTS states (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        {column_defs(StateRow, COLUMN_TYPES, STATE_SPECIAL)},
        res_row BIGINT NULL, res_sig VARCHAR(64) NOT NULL DEFAULT '',
        res_hits BIGINT NOT NULL DEFAULT 0, res_time DOUBLE NOT NULL DEFAULT 0,
        UNIQUE KEY states_key (host, service),
        KEY states_hosts (service, host),
        KEY states_state (state)
    )""" + _TABLE,
    "results": """CREATE TABLE IF NOT EXISTS results (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        check_id BIGINT NOT NULL, result_id VARCHAR(64) NOT NULL,
        time DOUBLE NOT NULL, last_seen DOUBLE NOT NULL, hits BIGINT NOT NULL,
        return_code INTEGER NOT NULL, output MEDIUMTEXT NOT NULL,
        long_output MEDIUMTEXT NOT NULL, perfdata MEDIUMTEXT NOT NULL, started DOUBLE NOT NULL,
        latency DOUBLE NOT NULL, timed_out TINYINT NOT NULL, passive TINYINT NOT NULL,
        poller TEXT NOT NULL,
        KEY results_history (check_id, time),
        KEY results_age (last_seen)
    )""" + _TABLE,
    "seen_results": """CREATE TABLE IF NOT EXISTS seen_results (
        result_id VARCHAR(64) NOT NULL PRIMARY KEY, received DOUBLE NOT NULL,
        KEY seen_results_age (received)
    )""" + _TABLE,
    "events": f"""CREATE TABLE IF NOT EXISTS events (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        {column_defs(Event, COLUMN_TYPES, EVENT_SPECIAL)},
        UNIQUE KEY events_event_id (event_id),
        KEY events_history (host, service, time),
        KEY events_age (time)
    )""" + _TABLE,
    # One row (id 1): the database epoch of the primary that may be written.
    "shinha_fence": "CREATE TABLE IF NOT EXISTS shinha_fence (id TINYINT NOT NULL PRIMARY KEY "
                    "CHECK (id = 1), epoch BIGINT NOT NULL, changed_at DOUBLE NOT NULL)"
                    + _TABLE,
}
#: The rows a new database starts with (INSERT IGNORE: a concurrent creator may be first).
SEED: dict[str, tuple[str, ...]] = {
    "meta": (f"INSERT IGNORE INTO meta (`key`, value) VALUES ('schema_version', "
             f"'{STORE_SCHEMA_VERSION}')",),
    "counters": tuple(f"INSERT IGNORE INTO counters (name, value) VALUES ('{name}', 0)"
                      for name in COUNTERS),
    "shinha_fence": ("INSERT IGNORE INTO shinha_fence (id, epoch, changed_at) "
                     "VALUES (1, 0, 0)",),
}
#: Tables that are SQLite's too (shinha_fence is MariaDB's alone).
SHARED_TABLES = tuple(t for t in TABLES if t != "shinha_fence")

# --- the store's statements (%s placeholders; rows are added as literal `(…)` tuples) --------

STATE_COLS = ", ".join(STATE_COLUMNS)
STATE_ROW = "(" + ", ".join(["%s"] * len(STATE_COLUMNS)) + ")"
INSERT_STATES = f"INSERT INTO states ({STATE_COLS}) VALUES "
_NEWER = "VALUES(updated_at) >= updated_at"
# The scheduler owns every StateRow field, but an older row (a scheduler that lost its part
# and does not know it yet) never overwrites a newer one, and last_check never goes back.
# Assignments run left to right: updated_at, which the others compare with, comes last.
UPSERT_STATES_TAIL = (" ON DUPLICATE KEY UPDATE "
                      + ", ".join(f"{c} = IF({_NEWER}, VALUES({c}), {c})"
                                  for c in STATE_COLUMNS[2:]
                                  if c not in ("last_check", "updated_at"))
                      + f", last_check = IF({_NEWER}, GREATEST(last_check, VALUES(last_check)),"
                      " last_check), updated_at = GREATEST(updated_at, VALUES(updated_at))")
RESULT_ROW = "(" + ", ".join(["%s"] * len(RESULT_INSERT_COLUMNS)) + ")"
INSERT_RESULTS = f"INSERT INTO results ({', '.join(RESULT_INSERT_COLUMNS)}) VALUES "
EVENT_ROW = "(" + ", ".join(["%s"] * len(EVENT_COLUMNS)) + ")"
INSERT_EVENTS = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES "
#: What an ingest reads of each check: its key, its Baseline, and the texts it shows now.
BASELINE_COLUMNS = ("host, service, id, res_row, res_sig, res_hits, res_time, last_check, "
                    "output, long_output, perfdata")
# Many rows updated by id in one statement: the rows are a derived table (a header naming
# the columns, then VALUES), joined on id. One statement, not one per row: the server parses,
# locks and logs once.
BUMP_COLUMNS = ("id", "res_row", "res_sig", "res_hits", "res_time", "last_check", "output",
                "long_output", "perfdata", "last_result_id")
# The data columns stay as they are (NULL given) when every result of the batch was late.
BUMP_SET = ", ".join(f"t.{c} = v.{c}" if c in ("res_row", "res_sig", "res_hits", "res_time",
                                               "last_check")
                     else f"t.{c} = coalesce(v.{c}, t.{c})" for c in BUMP_COLUMNS[1:])
#: The same when the texts the check shows do not change (most bumps): no long texts in the
#: statement, so the server's temporary tables stay small and in memory.
LIGHT_BUMP_COLUMNS = ("id", "res_row", "res_sig", "res_hits", "res_time", "last_check",
                      "last_result_id")
LIGHT_BUMP_SET = ", ".join(f"t.{c} = v.{c}" for c in LIGHT_BUMP_COLUMNS[1:-1]) + \
    ", t.last_result_id = coalesce(v.last_result_id, t.last_result_id)"
RETIRE_COLUMNS = ("id", "hits", "last_seen")
RETIRE_SET = "t.hits = v.hits, t.last_seen = v.last_seen"


def joined_update(table: str, columns: tuple[str, ...], assignments: str) -> tuple[str, str, str]:
    """The head, one row's template, and the tail of an `UPDATE table t JOIN (rows) v`;
    the tail ends with `WHERE t.id IN (`, to be followed by the rows' ids and `)`.

    The id list and the index hint give the optimizer a range on the table's primary key:
    without them, while the table's statistics said it was near empty (they lag behind a
    table that grows fast), it scanned the whole table once per statement.
    """
    names = ", ".join(f"NULL AS {c}" for c in columns)
    head = (f"UPDATE {table} t FORCE INDEX (PRIMARY) JOIN (SELECT {names} FROM DUAL WHERE 0 "
            "UNION ALL VALUES ")
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    return head, row, f") v ON t.id = v.id SET {assignments} WHERE t.id IN ("


#: A counter is the sum of its rows: `name` (seeded) and `name@slot`. Each write
#: transaction adds to the rows of one slot (chosen at random among COUNTER_SLOTS): on one
#: row per counter, concurrent ingests would queue there and commit one after the other, each
#: waiting for the other's fsync, where slots let them commit together (group commit).
COUNTER_SLOTS = 16
ADD_COUNTERS = "INSERT INTO counters (name, value) VALUES "
ADD_COUNTERS_TAIL = " ON DUPLICATE KEY UPDATE value = value + VALUES(value)"


# --- creation and migration --------------------------------------------------------------------


async def prepare(session: Session, where: str) -> None:
    """Create the schema in an empty database, complete or migrate an older one; refuse a
    newer one and a database that is not a data-server's."""
    tables = await table_names(session)
    if tables and "meta" not in tables:
        raise StorageError(f"{where} holds tables but is not a shinha data-server's "
                           "database (no meta table); give the data-server its own database")
    if "meta" in tables:
        version = check_schema_version(where, await _version(session))
        if version < STORE_SCHEMA_VERSION:
            await _migrate(session, where)
    missing = [name for name in TABLES if name not in tables]
    for name in missing:
        await session.execute(TABLES[name])
        for statement in SEED.get(name, ()):
            await session.execute(statement)


async def table_names(session: Session) -> set[str]:
    rows = await session.fetchall("SELECT table_name FROM information_schema.tables "
                                  "WHERE table_schema = DATABASE()")
    return {str(r[0]) for r in rows}


async def _version(session: Session) -> object:
    row = await session.fetchone("SELECT value FROM meta WHERE `key` = 'schema_version'")
    return row[0] if row else None


async def _migrate(session: Session, where: str) -> None:
    # DDL commits by itself in MariaDB: a named lock keeps two data-servers from migrating at
    # once, and IF NOT EXISTS makes a migration cut short (before the version moved) re-runnable.
    lock = "CONCAT('shinha_schema_', DATABASE())"
    got = await session.fetchone(f"SELECT GET_LOCK({lock}, 60)")
    if not got or got[0] != 1:
        raise StorageError(f"{where}: another data-server is migrating the schema (no lock "
                           "within 60 s); start again once it is done")
    try:
        version = check_schema_version(where, await _version(session))
        for target in range(version + 1, STORE_SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[target]:
                await session.execute(idempotent(statement))
            await session.execute("UPDATE meta SET value = %s WHERE `key` = 'schema_version'",
                                  (str(target),))
    finally:
        if not session.broken:
            await session.execute(f"SELECT RELEASE_LOCK({lock})")


def idempotent(statement: str) -> str:
    """A portable migration statement made safe to run twice on MariaDB."""
    for plain, guarded in (("ADD COLUMN ", "ADD COLUMN IF NOT EXISTS "),
                           ("DROP COLUMN ", "DROP COLUMN IF EXISTS "),
                           ("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS "),
                           ("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ")):
        if plain in statement and guarded not in statement:
            statement = statement.replace(plain, guarded)
    return statement

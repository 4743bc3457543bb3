"""The store suite's backends: the same tests run on an SQLite file and on a real MariaDB node
(tests/mariadb.py), each test with a database of its own."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path
from typing import Any

from shinha.clock import Clock
from shinha.dataserver.mariadb import MariadbStore
from shinha.dataserver.sqlite import ID_RETENTION, SqliteStore
from shinha.dataserver.store import Store
from shinha.db.options import MariadbOptions, mariadb_options
from tests.mariadb import MariaDB, make_users

USER = "shinha"
PASSWORD = "shinha-pass-123"
_DATABASES = itertools.count(1)


class Backend:
    """One database for one test, and raw SQL on it (to check rows, or to age a schema)."""

    kind = ""

    def store(self, clock: Clock | None = None, id_retention: float = ID_RETENTION) -> Store:
        raise NotImplementedError

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def scalar(self, query: str) -> int:
        return int(self.sql(query)[0][0])

    def spec(self) -> str:
        """What a child process needs to open this store (`open_spec`)."""
        raise NotImplementedError


class SqliteBackend(Backend):
    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def store(self, clock: Clock | None = None, id_retention: float = ID_RETENTION) -> Store:
        return SqliteStore(self.path, clock=clock, id_retention=id_retention)

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.path) as conn:
            return [tuple(r) for r in conn.execute(query).fetchall()]

    def spec(self) -> str:
        return json.dumps({"kind": "sqlite", "path": str(self.path)})


class MariadbBackend(Backend):
    kind = "mariadb"

    def __init__(self, node: MariaDB, database: str | None = None) -> None:
        self.node = node
        self.database = database or f"store_{next(_DATABASES)}"
        make_users(node, database=self.database, user=USER, password=PASSWORD)
        self.options = options(node, self.database)

    def store(self, clock: Clock | None = None, id_retention: float = ID_RETENTION) -> Store:
        return MariadbStore(self.options, clock=clock, id_retention=id_retention)

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.node.sql(query, self.database)]

    def spec(self) -> str:
        return json.dumps({"kind": "mariadb", "options": self.options.model_dump(mode="json")})


def options(node: MariaDB, database: str, **extra: str) -> MariadbOptions:
    """The options of a storage module writing to `database` on `node`."""
    values = {"ha_hosts": node.node, "database": database, "dbuser": USER, "dbpass": PASSWORD,
              **extra}
    return mariadb_options("store-test", values, {})


def writable_node(root: Path, address: str, server_id: int) -> MariaDB:
    """Start a node and make it writable, as a promotion does."""
    node = MariaDB(root, address, server_id).start()
    node.sql("SET GLOBAL read_only = 0")
    return node


def open_spec(spec: str) -> Store:
    """The store a `Backend.spec()` describes (for child processes)."""
    values = json.loads(spec)
    if values["kind"] == "sqlite":
        return SqliteStore(Path(values["path"]))
    return MariadbStore(MariadbOptions.model_validate(values["options"]))

"""The asyncmy boundary: connections to one MariaDB node, statements with timeouts, and the
mapping of every asyncmy error to our own (shinha.errors).

A `Session` is one open connection; a `NodePool` keeps a few per node. A connection that
timed out, lost its server, or was interrupted mid-statement (a cancelled task) is closed,
never reused: the protocol state it is in is unknown. Messages name the node and the account,
never a password.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import asyncmy
from asyncmy.constants import CLIENT

from shinha.db.options import MariadbOptions, Node
from shinha.errors import (
    DatabaseError,
    DatabaseFull,
    DatabaseReadOnly,
    DatabaseUnreachable,
    StorageError,
)

#: Seconds a statement (or a commit) may take before the node is taken as unreachable: a
#: stopped or cut-off primary costs an ingest this long before it answers 503.
STATEMENT_TIMEOUT = 10.0
#: Connections a pool keeps open per node.
POOL_SIZE = 4
#: Bytes per statement text we build (multi-row inserts, statement lists): far below the
#: server's max_allowed_packet (16 MiB by default), big enough to be few round trips.
MAX_STATEMENT = 1 << 20
#: Every session runs with these, whatever the server's defaults: our SQL relies on them
#: (sql_notes=0: no "already exists" notes, which asyncmy would fetch and log).
SESSION_SETUP = ("SET SESSION tx_isolation = 'READ-COMMITTED', "
                 "SESSION sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,"
                 "NO_ENGINE_SUBSTITUTION', SESSION innodb_lock_wait_timeout = {lock_wait}, "
                 "SESSION sql_notes = 0")

# Client-side and server-side codes that mean "the node is gone (or going)".
_UNREACHABLE = frozenset({
    1040,  # too many connections
    1053,  # server shutdown in progress
    1077, 1078, 1079, 1080,  # shutdown
    1152, 1153, 1154, 1155, 1156, 1157, 1158, 1159, 1160, 1161,  # aborted / net errors
    1927,  # connection killed
    2002, 2003, 2004, 2005, 2006, 2011, 2012, 2013, 2026, 2055,
})
_READ_ONLY = frozenset({1290, 1836})  # --read-only; "running in read-only mode"
_FULL = frozenset({1021, 1114})  # disk full; table full
#: How the server says ENOSPC when it comes from a file write (error 3, 1026, 1030 …).
_ENOSPC_TEXTS = ("Errcode: 28", "error 28 ", "No space left on device")
_ACCESS = frozenset({1044, 1045, 1698})  # the account cannot log in or use the database
_PRIVILEGE = frozenset({1142, 1143, 1227, 1370})  # logged in, but lacks a privilege
#: Two writers collided (deadlock, lock wait timeout, a duplicate key a concurrent writer
#: inserted first): the transaction was rolled back and may simply be run again.
_CONFLICT = frozenset({1062, 1205, 1213})


class DatabaseConflict(DatabaseError):
    """The transaction lost a race with another writer and was rolled back: run it again."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and as whom to connect: one node, one account."""

    node: Node
    user: str
    password: str = field(repr=False)
    database: str = ""
    module: str = ""  # the storage module these settings come from, for messages
    connect_timeout: float = 2.0
    statement_timeout: float = STATEMENT_TIMEOUT
    tls: ssl.SSLContext | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.node.name


def endpoint(options: MariadbOptions, node: Node, *, admin: bool = False,
             database: bool = True, statement_timeout: float = STATEMENT_TIMEOUT) -> Endpoint:
    """The endpoint of `node` for the data account (or the promoting one, `admin`)."""
    return Endpoint(node=node, user=options.admin_user if admin else options.dbuser,
                    password=options.admin_pass if admin else options.dbpass,
                    database=options.database if database else "",
                    module=options.module_name, connect_timeout=options.connect_timeout,
                    statement_timeout=statement_timeout, tls=tls_context(options))


def tls_context(options: MariadbOptions) -> ssl.SSLContext | None:
    """The TLS context the module's ssl_* options ask for; None when they ask for none."""
    if not (options.ssl_ca or options.ssl_cert or options.ssl_verify_server_cert):
        return None
    try:
        context = ssl.create_default_context(cafile=options.ssl_ca or None)
        if options.ssl_cert:
            context.load_cert_chain(options.ssl_cert, options.ssl_key or None)
    except (OSError, ssl.SSLError) as exc:
        raise StorageError(f"module {options.module_name}: cannot load the TLS files "
                           f"(ssl_ca, ssl_cert, ssl_key): {exc}") from exc
    context.check_hostname = options.ssl_verify_server_cert
    if not (options.ssl_ca or options.ssl_verify_server_cert):
        context.verify_mode = ssl.CERT_NONE  # encrypted, server not authenticated
    return context


def map_error(exc: BaseException, ep: Endpoint) -> DatabaseError:
    """Our exception for an asyncmy/OS error raised while talking to `ep`."""
    code, text = _code_and_text(exc)
    if ep.password:
        text = text.replace(ep.password, "[secret]")
    whose = f"module {ep.module}" if ep.module else "the module"
    if code in _READ_ONLY:
        return DatabaseReadOnly(ep.name, "is read-only (a replica, or a node back from a "
                                "failure): it is never written until it is the published "
                                "primary")
    if code in _FULL or any(t in text for t in _ENOSPC_TEXTS):
        return DatabaseFull(ep.name, f"its disk is full ({code}: {text}): nothing was written; "
                            "free space on this node (binary logs: PURGE BINARY LOGS, or "
                            "expire_logs_days) — the schedulers keep their results until "
                            "it writes again")
    if code in _ACCESS:
        return DatabaseError(ep.name, f"access denied for user {ep.user!r} ({text}): check "
                             f"dbuser/dbpass (or ha_dbuser/ha_dbpass) of {whose}, and that "
                             f"the account exists on this node with a grant on "
                             f"`{ep.database or '*'}` (`shinha db init` makes them)")
    if code == 1049:
        return DatabaseError(ep.name, f"has no database `{ep.database}`: create it "
                             "(`shinha db init`), or fix `database` of " + whose)
    if code in _PRIVILEGE:
        return DatabaseError(ep.name, f"user {ep.user!r} lacks a privilege: {text}; grant "
                             "it (`shinha db init` makes the accounts)")
    if code in _CONFLICT:
        return DatabaseConflict(ep.name, f"conflict with another writer ({code}: {text})")
    if code in _UNREACHABLE or isinstance(exc, OSError | asyncmy.errors.InterfaceError):
        return DatabaseUnreachable(ep.name, f"unreachable ({text})")
    return DatabaseError(ep.name, f"error {code}: {text}" if code else text)


def _code_and_text(exc: BaseException) -> tuple[int, str]:
    args = exc.args
    if isinstance(exc, asyncmy.errors.MySQLError) and len(args) >= 2 \
            and isinstance(args[0], int):
        return args[0], str(args[1])
    return 0, str(exc) or type(exc).__name__


class Session:
    """One open connection to one node; statements run with the endpoint's timeout."""

    def __init__(self, ep: Endpoint, raw: asyncmy.Connection) -> None:
        self.endpoint = ep
        self._raw = raw
        self.broken = False
        self.in_transaction = False
        self.statements = 0  # run on this connection since it was opened

    @property
    def node(self) -> Node:
        return self.endpoint.node

    async def _guard(self, what: str, coro: Any) -> Any:
        """Await `coro` within the statement timeout; map its errors; close on doubt."""
        self.statements += 1
        try:
            async with asyncio.timeout(self.endpoint.statement_timeout):
                return await coro
        except TimeoutError:
            self.close()
            raise DatabaseUnreachable(self.endpoint.name, f"no answer to {what} within "
                                      f"{self.endpoint.statement_timeout:g} s") from None
        except (asyncmy.errors.MySQLError, OSError) as exc:
            error = map_error(exc, self.endpoint)
            if isinstance(error, DatabaseUnreachable):
                self.close()
            raise error from None
        except BaseException:
            # Cancelled mid-statement: the reply may still be on its way, so the connection
            # cannot be used for anything else.
            self.close()
            raise

    async def execute(self, sql: str, args: Sequence[Any] | None = None) -> int:
        """Run one statement (or several, `;`-separated); return the first one's row count."""
        return int(await self._guard("a statement", self._execute(sql, args, False)))

    async def fetchall(self, sql: str, args: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one query; return its rows."""
        rows: list[tuple[Any, ...]] = await self._guard("a query",
                                                        self._execute(sql, args, True))
        return rows

    async def fetchone(self, sql: str,
                       args: Sequence[Any] | None = None) -> tuple[Any, ...] | None:
        rows = await self.fetchall(sql, args)
        return rows[0] if rows else None

    async def fetchdicts(self, sql: str) -> list[dict[str, Any]]:
        """Run one query; return its rows as dicts by column name (SHOW … statements)."""
        rows: list[dict[str, Any]] = await self._guard("a query", self._execute(sql, None, None))
        return rows

    async def _execute(self, sql: str, args: Sequence[Any] | None, rows: bool | None) -> Any:
        # rows: True for tuples, None for dicts, False for the row count.
        if args is not None:
            sql = self.literal(sql, args)
        cursor = self._raw.cursor()
        count = await cursor.execute(sql)
        fetched = list(await cursor.fetchall()) if rows is not False else []
        names = [d[0] for d in cursor.description or ()]
        while await cursor.nextset():  # drain the other results of a statement list
            pass
        await cursor.close()
        if rows is None:
            return [dict(zip(names, r, strict=True)) for r in fetched]
        return [tuple(r) for r in fetched] if rows else count

    @staticmethod
    def literal(template: str, args: Sequence[Any]) -> str:
        """`template` with `args` escaped in, as execute does (see `sql_literal`)."""
        return template % tuple(map(sql_literal, args))

    async def run_list(self, statements: Sequence[str]) -> None:
        """Run literal statements, as few round trips as MAX_STATEMENT allows."""
        for chunk in pack(list(statements), ";"):
            await self.execute(chunk)

    async def begin(self, read_only: bool = False) -> None:
        sql = "START TRANSACTION READ ONLY" if read_only else "BEGIN"
        await self._guard(sql, self._execute(sql, None, False))
        self.in_transaction = True

    async def commit(self) -> None:
        await self._guard("COMMIT", self._raw.commit())
        self.in_transaction = False

    async def rollback(self) -> None:
        """Roll back; a connection that cannot is closed (the server rolls back then)."""
        self.in_transaction = False
        if self.broken:
            return
        with suppress(DatabaseError):
            await self._guard("ROLLBACK", self._raw.rollback())
            return
        self.close()

    def close(self) -> None:
        if not self.broken:
            self.broken = True
            self._raw.close()


def sql_literal(value: Any) -> str:
    """One value as a MariaDB literal.

    What asyncmy's own escaping does, several times faster on long texts (it dominated the
    cost of an ingest). Sound because every session runs in utf8mb4 (no multi-byte escape
    tricks) with a sql_mode we set, without NO_BACKSLASH_ESCAPES: inside '…', a backslash
    and a quote must be escaped; NUL and Ctrl-Z are escaped as mysql_real_escape_string does.
    """
    kind = type(value)  # exact types first: this runs for every value of every row
    if kind is str:
        if "\\" in value or "'" in value or "\0" in value or "\x1a" in value:
            value = (value.replace("\\", "\\\\").replace("'", "\\'")
                     .replace("\0", "\\0").replace("\x1a", "\\Z"))
        return f"'{value}'"
    if kind is int:
        return str(value)
    if kind is float:
        text = repr(value)
        if "e" in text:
            return text
        if "n" in text:  # inf, nan
            raise StorageError(f"cannot store the number {value!r}")
        return text + "e0"  # a DOUBLE literal, not a DECIMAL one
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, str | float):
        return sql_literal(str(value) if isinstance(value, str) else float(value))
    raise TypeError(f"no SQL literal for a {kind.__name__}")


def pack(parts: list[str], separator: str, prefix: str = "", suffix: str = "",
         limit: int = MAX_STATEMENT) -> list[str]:
    """Join `parts` into statements of at most about `limit` characters each."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for part in parts:
        if current and size + len(part) > limit:
            chunks.append(prefix + separator.join(current) + suffix)
            current, size = [], 0
        current.append(part)
        size += len(part) + len(separator)
    if current:
        chunks.append(prefix + separator.join(current) + suffix)
    return chunks


async def connect(ep: Endpoint) -> Session:
    """Open one connection to `ep` (raise DatabaseUnreachable within connect_timeout)."""
    lock_wait = max(1, int(ep.statement_timeout / 2))  # a lock wait is a conflict, not a dead node
    try:
        async with asyncio.timeout(ep.connect_timeout):
            raw = await asyncmy.connect(
                host=ep.node.host, port=ep.node.port, user=ep.user, password=ep.password,
                database=ep.database or None, charset="utf8mb4", autocommit=True,
                connect_timeout=max(1, int(ep.connect_timeout + 0.999)), ssl=ep.tls,
                client_flag=CLIENT.MULTI_STATEMENTS,
                init_command=SESSION_SETUP.format(lock_wait=lock_wait))
    except TimeoutError:
        raise DatabaseUnreachable(ep.name, f"no connection within {ep.connect_timeout:g} s "
                                  "(connect_timeout)") from None
    except (asyncmy.errors.MySQLError, OSError) as exc:
        raise map_error(exc, ep) from None
    return Session(ep, raw)


class NodePool:
    """A few open sessions to one node, handed out one task at a time."""

    def __init__(self, ep: Endpoint, size: int = POOL_SIZE) -> None:
        self.endpoint = ep
        self._free: list[Session] = []
        self._slots = asyncio.Semaphore(size)
        self._closed = False

    @asynccontextmanager
    async def session(self, fresh: bool = False) -> AsyncIterator[Session]:
        """A session for the block; `fresh` skips the idle ones (which may be stale)."""
        if self._closed:
            raise StorageError(f"database {self.endpoint.name}: the pool is closed")
        async with self._slots:
            if fresh:
                self.drop_idle()
            session = self._free.pop() if self._free else await connect(self.endpoint)
            try:
                yield session
            finally:
                if session.in_transaction:
                    await session.rollback()
                if not session.broken and not self._closed:
                    self._free.append(session)
                else:
                    session.close()

    def drop_idle(self) -> None:
        """Close the idle sessions (after a lost connection, they are likely dead too)."""
        idle, self._free = self._free, []
        for session in idle:
            session.close()

    def close(self) -> None:
        """Close the idle sessions now; those in use close when they are given back."""
        self._closed = True
        self.drop_idle()

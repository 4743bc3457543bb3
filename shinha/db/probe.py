"""What one MariaDB node says about itself: reachable, read_only, GTID positions, its
replication threads, the cluster it belongs to and the database epoch it holds.

`probe` never raises for a node that does not answer: the answer *is* the status. It talks
through shinha.db.conn with the admin account (ha_dbuser), no database selected.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from shinha.db.conn import STATEMENT_TIMEOUT, Endpoint, Session, connect, endpoint, tls_context
from shinha.db.gtid import position
from shinha.db.options import MariadbOptions, Node
from shinha.errors import DatabaseError, DatabaseUnreachable
from shinha.wire import ErrorKind, NodeStatus

CLUSTER_TABLE = "shinha_cluster"
FENCE_TABLE = "shinha_fence"

ER_BAD_DB = 1049
ER_NO_SUCH_TABLE = 1146


def node_of(name: str) -> Node:
    """The Node of a `host:port` name (a NodeStatus's node, a replica's primary)."""
    host, _, port = name.rpartition(":")
    return Node(host=host, port=int(port))


def admin_endpoint(options: MariadbOptions, node: Node, user: str | None = None,
                   password: str | None = None,
                   statement_timeout: float = STATEMENT_TIMEOUT) -> Endpoint:
    """The admin account's endpoint of `node` (ha_dbuser), or `user`'s when given; no
    database selected: it may not exist yet."""
    if user is None:
        return endpoint(options, node, admin=True, database=False,
                        statement_timeout=statement_timeout)
    return Endpoint(node=node, user=user, password=password or "", module=options.module_name,
                    connect_timeout=options.connect_timeout,
                    statement_timeout=statement_timeout, tls=tls_context(options))


@asynccontextmanager
async def admin_session(options: MariadbOptions, node: Node, user: str | None = None,
                        password: str | None = None,
                        statement_timeout: float = STATEMENT_TIMEOUT) -> AsyncIterator[Session]:
    """One admin connection to `node` for the block (see admin_endpoint)."""
    session = await connect(admin_endpoint(options, node, user, password, statement_timeout))
    try:
        # Notes ("slave already stopped", "database does not exist") are expected here.
        await session.execute("SET SESSION sql_notes = 0")
        yield session
    finally:
        session.close()


def _on(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.upper() in ("1", "ON", "YES", "TRUE")
    return bool(value)


async def _node_state(s: Session, database: str) -> dict[str, Any]:
    base = (await s.fetchdicts(
        "SELECT @@server_id AS server_id, @@version AS version, @@read_only AS read_only, "
        "@@log_bin AS log_bin, @@log_slave_updates AS log_slave_updates, "
        "@@gtid_strict_mode AS gtid_strict_mode, @@gtid_current_pos AS gtid_current_pos, "
        "@@gtid_binlog_pos AS gtid_binlog_pos, @@gtid_slave_pos AS gtid_slave_pos, "
        "@@rpl_semi_sync_master_enabled AS semi_sync_master_enabled, "
        "@@rpl_semi_sync_slave_enabled AS semi_sync_slave_enabled"))[0]
    state: dict[str, Any] = {k: base[k] for k in ("server_id", "version", "gtid_current_pos",
                                                  "gtid_binlog_pos", "gtid_slave_pos")}
    for key in ("read_only", "log_bin", "log_slave_updates", "gtid_strict_mode",
                "semi_sync_master_enabled", "semi_sync_slave_enabled"):
        state[key] = _on(base[key])
    semi = await s.fetchdicts("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_status'")
    state["semi_sync_master_status"] = _on(semi[0]["Value"]) if semi else None
    state.update(replica_fields(await s.fetchdicts("SHOW SLAVE STATUS")))
    state["cluster_id"] = await _optional(
        s, f"SELECT cluster_id FROM `{database}`.`{CLUSTER_TABLE}` WHERE id = 1")
    epoch = await _optional(s, f"SELECT epoch FROM `{database}`.`{FENCE_TABLE}` WHERE id = 1")
    state["db_epoch"] = int(epoch) if epoch is not None else None
    count = await s.fetchone("SELECT COUNT(*) FROM information_schema.tables "
                             "WHERE table_schema = %s", (database,))
    state["table_count"] = int(count[0]) if count else 0
    return state


def replica_fields(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """NodeStatus fields from SHOW SLAVE STATUS (no row: not a replica)."""
    if not rows or not rows[0].get("Master_Host"):
        return {"is_replica": False}
    r = rows[0]
    io_pos, read_pos = r.get("Gtid_IO_Pos") or "", r.get("Read_Master_Log_Pos")
    if io_pos:
        applied = None  # decided on the GTID positions by the caller
    else:
        applied = (r.get("Relay_Master_Log_File") == r.get("Master_Log_File")
                   and r.get("Exec_Master_Log_Pos") == read_pos)
    behind = r.get("Seconds_Behind_Master")
    return {
        "is_replica": True,
        "replicates_from": f"{r['Master_Host']}:{r['Master_Port']}",
        "io_state": str(r.get("Slave_IO_Running") or ""),
        "io_running": r.get("Slave_IO_Running") == "Yes",
        "sql_running": r.get("Slave_SQL_Running") == "Yes",
        "seconds_behind": int(behind) if behind is not None else None,
        "last_io_errno": int(r.get("Last_IO_Errno") or 0),
        "last_io_error": str(r.get("Last_IO_Error") or ""),
        "last_sql_errno": int(r.get("Last_SQL_Errno") or 0),
        "last_sql_error": str(r.get("Last_SQL_Error") or ""),
        "gtid_io_pos": io_pos,
        "relay_log_applied": applied,
    }


async def _optional(s: Session, sql: str) -> Any:
    """A value from a table that may not exist yet (a node not initialised)."""
    try:
        row = await s.fetchone(sql)
        return row[0] if row else None
    except DatabaseError as exc:
        text = str(exc)
        if f"error {ER_NO_SUCH_TABLE}:" in text or f"error {ER_BAD_DB}:" in text \
                or "has no database" in text:
            return None
        raise


async def read_status(s: Session, database: str) -> NodeStatus:
    """The status of the node an open admin session is connected to."""
    checked = time.time()
    state = await _node_state(s, database)
    if state["is_replica"] and state["relay_log_applied"] is None:
        state["relay_log_applied"] = position(state["gtid_slave_pos"]).covers(
            position(state["gtid_io_pos"]))
    return NodeStatus(node=s.node.name, reachable=True, checked_at=checked, **state)


async def probe(node: Node, options: MariadbOptions, timeout: float | None = None,
                user: str | None = None, password: str | None = None) -> NodeStatus:
    """Return what `node` says about itself; an unreachable node is a status, not an error."""
    checked = time.time()
    budget = timeout or options.connect_timeout * 3
    try:
        async with (asyncio.timeout(budget),
                    admin_session(options, node, user, password, budget) as s):
            return await read_status(s, options.database)
    except DatabaseError as exc:
        message = str(exc).removeprefix(f"database {node.name}: ")
        kind: ErrorKind = "error"
        if isinstance(exc, DatabaseUnreachable):
            kind = "timeout" if " within " in message else "unreachable"
            message += (f"; is mariadbd running on {node.name}, and is ha_hosts of "
                        f"{options.module_name or 'the mariadb module'} right?")
        elif "access denied" in message:
            kind = "auth"
        return NodeStatus(node=node.name, reachable=False, error=message, error_kind=kind,
                          checked_at=checked)
    except TimeoutError:
        return NodeStatus(node=node.name, reachable=False, error_kind="timeout", checked_at=checked,
                          error=f"no answer within {budget:g} s (is mariadbd on {node.name} "
                          "stopped or overloaded?)")


async def probe_all(options: MariadbOptions, timeout: float | None = None,
                    user: str | None = None, password: str | None = None) -> list[NodeStatus]:
    """Probe every node of ha_hosts at once, then the writable ones again: a primary's
    position is read after its replicas', so that a replica never seems ahead of it (which
    would read as diverged) for having been asked a moment later. In ha_hosts order."""
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(probe(n, options, timeout, user, password))
                 for n in options.ha_hosts]
    found = [t.result() for t in tasks]
    for i, s in enumerate(found):
        if s.reachable and s.read_only is False and not s.is_replica:
            found[i] = await probe(options.ha_hosts[i], options, timeout, user, password)
    return found

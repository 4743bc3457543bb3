"""`shinha db init`: set a cluster of MariaDB nodes up with one command — the accounts on
every node, the data-servers' schema, the cluster marker and the database epoch on the
primary, a clone of it on every other node, GTID replication running (DESIGN.md §8).

It refuses to overwrite a node that holds data unless told to (`force`), and says which.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence

from pydantic import BaseModel

from shinha.db import schema
from shinha.db.admin import clone_replica, primary_settings, wait_caught_up
from shinha.db.conn import Session
from shinha.db.options import MariadbOptions, Node
from shinha.db.probe import CLUSTER_TABLE, admin_session, node_of, probe_all
from shinha.db.steps import deadline, in_step, run_step, step_value
from shinha.errors import DatabaseError, DatabaseUnreachable
from shinha.wire import NodeStatus

log = logging.getLogger("shinha.db")

CLUSTER_DDL = (f"CREATE TABLE IF NOT EXISTS {CLUSTER_TABLE} (id TINYINT NOT NULL PRIMARY KEY, "
               "cluster_id CHAR(36) NOT NULL, created_at DOUBLE NOT NULL) ENGINE=InnoDB")


class InitReport(BaseModel):
    """What `init` set up."""

    cluster_id: str
    primary: Node
    replicas: list[Node]
    gtid_pos: str
    semi_sync: bool
    warnings: list[str] = []


async def init(options: MariadbOptions, force: bool = False, *,
               bootstrap_user: str | None = None, bootstrap_password: str | None = None,
               timeout: float = 600.0) -> InitReport:
    """Set the cluster up: accounts on every node, the schema, cluster marker and fence on
    the primary (the first node of ha_hosts, or the cluster's current primary), a clone of it
    on every other node, GTID replication running. Refuses to overwrite data unless `force`.

    `bootstrap_user` is an account able to create users (e.g. root) for when the admin
    account does not exist yet; the admin account itself is used when it is None.
    """
    user = bootstrap_user or options.admin_user
    password = (bootstrap_password or "") if bootstrap_user else options.admin_pass
    async with deadline(options.ha_hosts[0], "shinha db init", timeout):
        found = await probe_all(options, user=user, password=password)
        source = _init_source(options, found, force)
        warnings = _check_init(options, found, source, force)
        for node in options.ha_hosts:
            async with admin_session(options, node, user, password) as s:
                await _make_accounts(s, options)
        cluster_id = await _prepare_primary(options, found[options.ha_hosts.index(source)])
        replicas = [n for n in options.ha_hosts if n != source]
        for node in replicas:
            await clone_replica(options, source, node, timeout)
        async with admin_session(options, source) as s:
            await primary_settings(s, options)
            await run_step(s, "SET GLOBAL read_only = 0", what="making the primary writable")
            pos = str(await step_value(s, "SELECT @@gtid_binlog_pos"))
        for node in replicas:
            async with admin_session(options, node, statement_timeout=timeout) as s:
                await wait_caught_up(s, options, pos, options.connect_timeout * 10,
                                      source.name)
    log.info("database cluster %s initialised: primary %s, replicas %s", cluster_id,
             source.name, ", ".join(n.name for n in replicas) or "none")
    return InitReport(cluster_id=cluster_id, primary=source, replicas=replicas, gtid_pos=pos,
                      semi_sync=options.semi_sync, warnings=warnings)


def _init_source(options: MariadbOptions, found: Sequence[NodeStatus], force: bool) -> Node:
    for s in found:
        if not s.reachable:
            error = DatabaseUnreachable if s.error_kind in ("unreachable", "timeout") \
                else DatabaseError
            raise error(s.node, s.error + " (shinha db init needs every node of "
                        "ha_hosts)")
    heads = [s for s in found if s.cluster_id and s.read_only is False and not s.is_replica]
    if len({s.cluster_id for s in heads}) == 1 and len(heads) == 1:
        # The cluster already runs: clone from its primary, wherever it now is.
        return node_of(heads[0].node)
    if len(heads) > 1 and not force:
        raise DatabaseError(heads[0].node, "several writable nodes hold a shinha_cluster "
                            "marker (" + ", ".join(h.node for h in heads) + "): which "
                            "one is the primary? Make the others read-only, or list the "
                            "primary first in ha_hosts and run with --force")
    return options.ha_hosts[0]


def _check_init(options: MariadbOptions, found: Sequence[NodeStatus], source: Node,
                force: bool) -> list[str]:
    warnings: list[str] = []
    seen: dict[int | None, str] = {}
    for s in found:
        if not s.log_bin or not s.log_slave_updates:
            raise DatabaseError(s.node, "binary logging is off (log_bin="
                                f"{int(bool(s.log_bin))}, log_slave_updates="
                                f"{int(bool(s.log_slave_updates))}): set log_bin, "
                                "log_slave_updates=1 and a server_id of its own in this "
                                "node's my.cnf, and restart it")
        if s.server_id in seen:
            raise DatabaseError(s.node, f"has server_id {s.server_id} like "
                                f"{seen[s.server_id]}: give each node a server_id of "
                                "its own (my.cnf) and restart it")
        seen[s.server_id] = s.node
    if options.admin_user == options.dbuser:
        warnings.append("ha_dbuser is not set: the data-servers' account gets the admin "
                        "privileges, and with them the power to write through read_only")
    if force:
        return warnings
    refusals = []
    for s in found:
        holds = s.table_count
        if not holds and s.cluster_id is None:
            if s.node == source.name and s.is_replica:
                refusals.append(f"{s.node} (the primary to be) is a replica of "
                                f"{s.replicates_from}")
            continue
        what = (f"{s.node} {'(the primary to be) ' if s.node == source.name else ''}already "
                f"holds database `{options.database}` ({holds} tables"
                + (f", cluster {s.cluster_id}" if s.cluster_id else "") + ")")
        refusals.append(what)
    if refusals:
        raise DatabaseError(refusals[0].split()[0], "refusing to overwrite data: "
                            + "; ".join(refusals) + ". Run `shinha db init --force` to keep "
                            f"the data of {source.name} and replace the others' with a "
                            "clone of it")
    return warnings


async def _make_accounts(s: Session, options: MariadbOptions) -> None:
    """The admin, data-server and replication accounts, on this node only (not binlogged:
    each node gets its own, and a clone does not carry the mysql schema)."""
    await run_step(s, "SET SESSION sql_log_bin = 0")
    accounts = [(options.admin_user, options.admin_pass,
                 ["GRANT ALL PRIVILEGES ON *.* TO %s@%s WITH GRANT OPTION"]),
                (options.repl_dbuser, options.repl_dbpass,
                 ["GRANT REPLICATION SLAVE ON *.* TO %s@%s"])]
    if options.dbuser != options.admin_user:
        accounts.append((options.dbuser, options.dbpass,
                         [f"GRANT ALL PRIVILEGES ON `{options.database}`.* TO %s@%s"]))
    for user, password, grants in accounts:
        what = f"creating account {user!r}"
        await run_step(s, "CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s",
                   (user, "%", password), what=what)
        # An account made before keeps no stale password: the module's is the truth.
        await run_step(s, "ALTER USER %s@%s IDENTIFIED BY %s", (user, "%", password),
                   what=what)
        for grant in grants:
            await run_step(s, grant, (user, "%"), what=what)


async def _prepare_primary(options: MariadbOptions, status: NodeStatus) -> str:
    """The database, the data-servers' schema (fence included), the cluster marker; return
    the cluster id (a new one, or the one the primary already holds)."""
    db = options.database
    async with admin_session(options, node_of(status.node)) as s:
        if status.is_replica:
            await run_step(s, "STOP SLAVE", what="stopping its replication")
            await run_step(s, "RESET SLAVE ALL", what="forgetting its primary")
        await run_step(s, "SET GLOBAL gtid_strict_mode = 1", what="setting gtid_strict_mode")
        await run_step(s, f"CREATE DATABASE IF NOT EXISTS `{db}`", what="creating the database")
        await run_step(s, f"USE `{db}`")
        # Before our marker: schema.prepare refuses a database of foreign tables.
        try:
            await schema.prepare(s, f"database {status.node}/{db}")
        except DatabaseError as exc:
            raise in_step(exc, "creating the schema") from None
        await run_step(s, CLUSTER_DDL, what="creating the cluster marker")
        await run_step(s, f"INSERT IGNORE INTO {CLUSTER_TABLE} VALUES (1, %s, %s)",
                   (str(uuid.uuid4()), time.time()), what="writing the cluster marker")
        return str(await step_value(s, f"SELECT cluster_id FROM {CLUSTER_TABLE} WHERE id = 1"))

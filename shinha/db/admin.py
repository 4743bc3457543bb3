"""Replication administration of the MariaDB nodes with the admin account (ha_dbuser): clone a
replica, promote a replica, re-point a node at a primary, switch over (setting a cluster up
is shinha/db/setup.py).

Every action has a deadline and fails with a DatabaseError that names the node and says what
to do. A node is made read-only before anything else is done to it, and a promoted node has
its database epoch written before it becomes writable, so that no stale writer gets a window.
The leading arbiter calls `fail_over` (or `elect` then `promote`); the CLI calls the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from pydantic import BaseModel

from shinha.db.clone import dump_into
from shinha.db.conn import Session
from shinha.db.failover import (
    cluster_identity,
    diverged,
    elect,
    errant,
    history,
    position,
    primaries,
    received,
    replication_problem,
)
from shinha.db.fence import write_fence
from shinha.db.gtid import GtidPosition
from shinha.db.options import MariadbOptions, Node
from shinha.db.probe import (
    admin_session,
    node_of,
    probe_all,
    read_status,
)
from shinha.db.steps import deadline, in_step, run_step, step_value
from shinha.errors import DatabaseError, DatabaseFenced, DatabaseUnreachable
from shinha.wire import NodeStatus

log = logging.getLogger("shinha.db")

#: IO-thread errors that retrying will not cure: access denied, binlog missing or diverged,
#: another node with our server_id.
_FATAL_IO = frozenset({1045, 1236, 1593})


class Promotion(BaseModel):
    """What a promotion did: the new primary, its database epoch, the nodes re-pointed."""

    primary: Node
    epoch: int
    gtid_pos: str
    repointed: list[Node] = []
    #: Nodes left as they were, each with why and what to do.
    skipped: list[str] = []


async def clone_replica(options: MariadbOptions, source: Node, node: Node,
                        timeout: float) -> None:
    """Replace `node`'s database with a consistent dump of `source`'s, then replicate."""
    async with admin_session(options, node) as s:
        await run_step(s, "SET GLOBAL read_only = 1", what="making it read-only")
        await run_step(s, "STOP SLAVE", what="stopping its replication")
        await run_step(s, "RESET SLAVE ALL", what="forgetting its primary")
        await run_step(s, "SET SESSION sql_log_bin = 0")
        await run_step(s, f"DROP DATABASE IF EXISTS `{options.database}`",
                   what="dropping its old copy")
        await dump_into(options, source, node, timeout)
        pos = str(await step_value(s, "SELECT @@gtid_slave_pos"))
        # The clone's history becomes its binlog state, so that once promoted it numbers its
        # transactions on from there (gtid_strict_mode), not from 1. (The value is given as
        # a literal: `= @@gtid_slave_pos` hangs the server.)
        await run_step(s, "RESET MASTER", what="resetting its binlog")
        await run_step(s, "SET GLOBAL gtid_binlog_state = %s", (pos,),
                   what="setting its binlog state")
        await _start_replica(s, options, source)
    log.info("cloned %s to %s at %s", source.name, node.name, pos)


# --- the pieces every action shares ------------------------------------------------------------

async def primary_settings(s: Session, options: MariadbOptions) -> None:
    await run_step(s, "SET GLOBAL gtid_strict_mode = 1", what="setting gtid_strict_mode")
    await run_step(s, "SET GLOBAL rpl_semi_sync_slave_enabled = 0", what="setting semi-sync")
    if options.semi_sync:
        await run_step(s, "SET GLOBAL rpl_semi_sync_master_wait_point = 'AFTER_SYNC'",
                   what="setting semi-sync")
        await run_step(s, "SET GLOBAL rpl_semi_sync_master_timeout = %s",
                   (int(options.semi_sync_timeout * 1000),), what="setting semi-sync")
    await run_step(s, f"SET GLOBAL rpl_semi_sync_master_enabled = {int(options.semi_sync)}",
               what="setting semi-sync")


async def _start_replica(s: Session, options: MariadbOptions, primary: Node) -> None:
    """CHANGE MASTER to `primary` from gtid_slave_pos, START SLAVE, wait for both threads."""
    await run_step(s, "SET GLOBAL gtid_strict_mode = 1", what="setting gtid_strict_mode")
    await run_step(s, "SET GLOBAL rpl_semi_sync_master_enabled = 0", what="setting semi-sync")
    await run_step(s, f"SET GLOBAL rpl_semi_sync_slave_enabled = {int(options.semi_sync)}",
               what="setting semi-sync")
    await run_step(s, "CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s, "
               "MASTER_PASSWORD = %s, MASTER_USE_GTID = slave_pos, "
               "MASTER_CONNECT_RETRY = 1, MASTER_HEARTBEAT_PERIOD = 1",
               (primary.host, primary.port, options.repl_dbuser, options.repl_dbpass),
               what=f"pointing it at {primary.name}")
    async with admin_session(options, primary) as p:
        target = position(await step_value(p, "SELECT @@gtid_binlog_pos",
                                       what=f"reading {primary.name}'s position"))
    await run_step(s, "START SLAVE", what="starting replication")
    await _wait_replicating(s, options, primary, target, options.connect_timeout * 5)


async def _wait_replicating(s: Session, options: MariadbOptions, primary: Node,
                            target: GtidPosition, timeout: float) -> None:
    """Wait until both threads run and the replica received `target` (the primary's
    position when replication started): "Yes" alone comes before the primary has accepted
    the position asked for, and a refusal (1236) follows it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = await read_status(s, options.database)
        if status.io_running and status.sql_running and received(status).covers(target):
            return
        problem = replication_problem(status)
        if status.last_io_errno == 1045:
            problem = (f"the replication account cannot log in to {primary.name} "
                       f"({status.last_io_error}): check repl_dbuser/repl_dbpass, and run "
                       "shinha db init to create it on every node")
        if (status.last_io_errno in _FATAL_IO or status.last_sql_errno
                or asyncio.get_running_loop().time() >= deadline):
            raise DatabaseError(s.node.name, (problem or f"replication from {primary.name} "
                                f"did not start within {timeout:g} s (IO {status.io_state})")
                                + "; the node stays read-only")
        await asyncio.sleep(0.1)


async def wait_caught_up(s: Session, options: MariadbOptions, pos: str, timeout: float,
                          primary: str) -> None:
    """Wait until the replica on `s` has applied every transaction up to `pos`."""
    done = await step_value(s, "SELECT MASTER_GTID_WAIT(%s, %s)", (pos, timeout),
                        what=f"waiting to apply {pos}")
    if done != 0:
        status = await read_status(s, options.database)
        problem = replication_problem(status)
        raise DatabaseError(s.node.name, f"has not applied {primary}'s transactions up to "
                            f"{pos} within {timeout:g} s (applied {status.gtid_slave_pos})"
                            + (f": {problem}" if problem else ""))


def _status_of(statuses: Sequence[NodeStatus], node: Node,
               options: MariadbOptions) -> NodeStatus:
    for s in statuses:
        if s.node == node.name:
            if not s.reachable:
                error = DatabaseUnreachable if s.error_kind in ("unreachable", "timeout") \
                    else DatabaseError
                raise error(node.name, s.error)
            return s
    raise DatabaseError(node.name, "is not in ha_hosts of "
                        f"{options.module_name or 'the mariadb module'} ("
                        + ", ".join(n.name for n in options.ha_hosts) + ")")


def _member(s: NodeStatus, cluster: str | None) -> None:
    if s.cluster_id is None:
        raise DatabaseError(s.node, "holds no shinha_cluster marker: it is not part of "
                            "the cluster yet (shinha db init --force clones the primary to it)")
    if s.cluster_id != cluster:
        raise DatabaseError(s.node, f"belongs to another cluster ({s.cluster_id}; this "
                            f"one is {cluster}): remove it from ha_hosts, or make it a member "
                            "with shinha db init --force (its data is replaced)")


# --- promote, repoint, switchover ----------------------------------------------------------------

async def promote(options: MariadbOptions, node: Node, epoch: int,
                  others: Sequence[Node] | None = None, *,
                  timeout: float = 60.0) -> Promotion:
    """Make replica `node` the primary of database epoch `epoch`: apply its relay log, stop
    and forget its replication, write the epoch, lift read_only, then re-point `others`
    (default: every other reachable node of the cluster) at it.

    Also what makes a primary that came back read-only writable again (same epoch).
    """
    async with deadline(node, f"promoting {node.name}", timeout):
        statuses = await probe_all(options)
        st = _status_of(statuses, node, options)
        cluster = cluster_identity(statuses)
        _member(st, cluster)
        _check_promotable(st, statuses, cluster, epoch)
        async with admin_session(options, node, statement_timeout=timeout) as s:
            if st.is_replica:
                await wait_caught_up(s, options, str(received(st)), max(1.0, timeout / 2),
                                      st.replicates_from)
                await run_step(s, "STOP SLAVE", what="stopping its replication")
                await run_step(s, "RESET SLAVE ALL", what="forgetting its primary")
            try:
                await write_fence(node, epoch, options)
            except DatabaseError as exc:
                raise in_step(exc, f"writing database epoch {epoch}") from None
            await primary_settings(s, options)
            await run_step(s, "SET GLOBAL read_only = 0", what="making it writable")
            pos = str(await step_value(s, "SELECT @@gtid_binlog_pos"))
        log.info("promoted %s, database epoch %d", node.name, epoch)
        promotion = Promotion(primary=node, epoch=epoch, gtid_pos=pos)
        targets = None if others is None else {n.name for n in others}
        for o in statuses:
            if o.node == node.name or (targets is not None and o.node not in targets):
                continue
            if not o.reachable and o.error_kind in ("unreachable", "timeout"):
                promotion.skipped.append(f"{o.node}: unreachable; re-point it once back "
                                         f"(shinha db repoint {o.node})")
            elif not o.reachable:
                promotion.skipped.append(f"{o.node}: {o.error}")
            elif o.cluster_id != cluster:
                promotion.skipped.append(f"{o.node}: not a member of this cluster")
            else:
                try:
                    await repoint(options, node_of(o.node), node, timeout=max(5.0, timeout / 3))
                except DatabaseError as exc:
                    promotion.skipped.append(str(exc))
                else:
                    promotion.repointed.append(node_of(o.node))
    return promotion


def _check_promotable(st: NodeStatus, statuses: Sequence[NodeStatus], cluster: str | None,
                      epoch: int) -> None:
    name = st.node
    others = [s for s in statuses if s.node != st.node]
    heads = primaries(others, cluster)
    if heads:
        head = heads[0].node
        raise DatabaseError(name, f"{head} is a writable primary: promoting {name} now "
                            "would make two. For a planned change run `shinha db switchover "
                            f"{name}`; else stop {head} first")
    # The primary itself (writable) may be "promoted" again: a new epoch, the others
    # re-pointed. A read-only node replicating from no one (a primary back from a restart)
    # may be, when no reachable node holds more than it.
    already = not st.is_replica and st.read_only is False
    if errant(st):
        raise DatabaseError(name, "holds transactions of its own that its primary never had "
                            "(diverged): it cannot be promoted")
    for o in others:
        if already or not o.reachable or o.cluster_id != cluster or errant(o):
            continue
        lacking = received(o).missing_from(received(st))
        if lacking:
            raise DatabaseError(name, f"{o.node} holds transactions {name} lacks ("
                                + ", ".join(map(str, lacking)) + f"): promote {o.node}"
                                " instead, or wait for it to be re-pointed")
    held = st.db_epoch or 0
    if held > epoch:
        raise DatabaseFenced(name, held, epoch)


async def repoint(options: MariadbOptions, node: Node, primary: Node, *,
                  timeout: float = 30.0) -> None:
    """Make `node` a read-only replica of `primary` (GTID, from what it holds): read_only
    first (once it is known to be of this cluster), then refuse if it diverged, then CHANGE
    MASTER and START SLAVE."""
    async with (deadline(node, f"re-pointing {node.name} at {primary.name}", timeout),
                admin_session(options, node) as s):
        async with admin_session(options, primary) as p:
            st = await read_status(s, options.database)
            head = await read_status(p, options.database)
            if st.cluster_id is None or st.cluster_id != head.cluster_id:
                _member(st, head.cluster_id)  # another cluster's node: not ours to touch
            await run_step(s, "SET GLOBAL read_only = 1", what="making it read-only")
            # The node first, the primary after: whatever the node got from the primary
            # (directly or through another replica) is in the primary's answer.
            st = await read_status(s, options.database)
            head = await read_status(p, options.database)
        if diverged(head, st):
            lacking = history(st).missing_from(history(head))
            raise DatabaseError(node.name, f"has diverged from {primary.name} (holds "
                                + (", ".join(map(str, lacking)) or "transactions")
                                + " it lacks): it stays read-only and out of replication; "
                                "`shinha db rejoin NODE` salvages what it holds into the "
                                "primary, then resyncs it")
        if (st.is_replica and st.replicates_from == primary.name and st.io_running
                and st.sql_running):
            return
        await run_step(s, "STOP SLAVE", what="stopping its replication")
        # Read again once stopped: it may have applied more since.
        st = await read_status(s, options.database)
        start = history(st)
        if start != position(st.gtid_slave_pos):
            # A former primary: it replicates on from what its binlog holds.
            await run_step(s, "SET GLOBAL gtid_slave_pos = %s", (str(start),),
                       what="setting its replication position")
        await _start_replica(s, options, primary)
    log.info("re-pointed %s at %s", node.name, primary.name)


#: Demoting a node is re-pointing it (read_only first, then replication).
demote = repoint


async def switchover(options: MariadbOptions, node: Node, epoch: int, *,
                     old_primary: Node | None = None, timeout: float = 60.0) -> Promotion:
    """Planned change of primary with nothing lost: the old primary read-only, the
    candidate waits for every transaction of it, is promoted, the old one re-pointed.
    `old_primary` (default: the one writable node of the cluster) must be that node."""
    async with deadline(node, f"switching over to {node.name}", timeout):
        statuses = await probe_all(options)
        st = _status_of(statuses, node, options)
        cluster = cluster_identity(statuses)
        _member(st, cluster)
        old = _switchover_from(st, primaries(statuses, cluster))
        if old_primary is not None and old.node != old_primary.name:
            raise DatabaseError(node.name, f"the writable primary is {old.node}, not "
                                f"{old_primary.name}: nothing switched")
        async with admin_session(options, node_of(old.node)) as p:
            await run_step(p, "SET GLOBAL read_only = 1", what="making the old primary read-only")
            try:
                pos = str(await step_value(p, "SELECT @@gtid_binlog_pos"))
                async with admin_session(options, node, statement_timeout=timeout) as s:
                    await wait_caught_up(s, options, pos, max(1.0, timeout / 3),
                                          old.node)
            except DatabaseError:
                await run_step(p, "SET GLOBAL read_only = 0", what="giving the old primary back")
                raise
        log.info("switchover: %s has every transaction of %s (%s)", node.name, old.node,
                 pos)
        return await promote(options, node, epoch, timeout=timeout)


def _switchover_from(st: NodeStatus, heads: list[NodeStatus]) -> NodeStatus:
    name = st.node
    if not heads:
        raise DatabaseError(name, "no writable primary answers: nothing to switch over "
                            f"from; use `shinha db promote {name}`")
    if len(heads) > 1:
        raise DatabaseError(name, "two writable primaries (" + ", ".join(
            h.node for h in heads) + "): split brain; make one read-only first")
    old = heads[0]
    if old.node == st.node:
        raise DatabaseError(name, "is already the primary")
    if not st.is_replica or st.replicates_from != old.node:
        raise DatabaseError(name, f"is not a replica of the primary {old.node}: "
                            f"re-point it first (shinha db repoint {name})")
    if diverged(old, st):
        raise DatabaseError(name, f"has diverged from {old.node}: it cannot take over")
    problem = replication_problem(st)
    if problem:
        raise DatabaseError(name, problem)
    return old


async def fail_over(options: MariadbOptions, old_primary: Node, epoch: int, *,
                    cluster_id: str | None = None, timeout: float = 60.0) -> Promotion:
    """The arbiter's failover: elect the replica to promote in place of the lost
    `old_primary` and promote it with `epoch`; DatabaseError when none can be, saying why
    (`elect(...).retry` tells whether waiting may help)."""
    statuses = await probe_all(options)
    election = elect(statuses, old_primary, options.ha_hosts, cluster_id=cluster_id)
    if election.candidate is None:
        raise DatabaseError(old_primary.name, "no failover: " + election.reason)
    log.info("database primary %s is down; %s", old_primary.name, election.reason)
    return await promote(options, election.candidate, epoch, timeout=timeout)

"""The database epoch, written into the database itself: a fencing token every write checks.

The promotion (the leading arbiter) writes the new epoch on the new primary with
`write_fence`; every write transaction of a data-server starts with `check_fence`, which reads
the fence row under a shared lock. The two meet on that row: `write_fence` waits until the
writers already inside their transaction have finished, and every transaction that starts
after it sees the new epoch, so a data-server that still holds an older epoch cannot commit
on the new primary — whatever its view of the cluster.
"""

from __future__ import annotations

import time

from shinha.db.conn import Session, connect, endpoint
from shinha.db.options import MariadbOptions, Node
from shinha.db.schema import TABLES, table_names
from shinha.errors import DatabaseError, DatabaseFenced, DatabaseReadOnly

CHECK = "SELECT epoch, @@global.read_only FROM shinha_fence WHERE id = 1 LOCK IN SHARE MODE"


async def check_fence(session: Session, epoch: int) -> None:
    """Inside a write transaction: refuse a read-only node, or a database epoch other than
    `epoch`; the row stays share-locked until the transaction ends."""
    row = await session.fetchone(CHECK)
    name = session.node.name
    if row is None:
        raise DatabaseError(name, "has no database epoch (the shinha_fence row is missing): "
                            "not a shinha database, or its schema is incomplete; run "
                            "`shinha db init`")
    held, read_only = int(row[0]), int(row[1])
    if read_only:
        raise DatabaseReadOnly(name, "is read-only (read_only=1): a replica, or a node back "
                               "from a failure, is never written until it is promoted")
    if held != epoch:
        raise DatabaseFenced(name, held, epoch)


async def write_fence(node: Node, epoch: int, options: MariadbOptions) -> None:
    """Set the database epoch on `node`, the primary just promoted (writable already).

    Waits for the write transactions in flight there to end. Never lowers the epoch: a node
    that holds a higher one raises DatabaseFenced (a stale promoter). Uses the promoting
    account (ha_dbuser, else dbuser).
    """
    session = await connect(endpoint(options, node, admin=True))
    try:
        if "shinha_fence" not in await table_names(session):  # a node with no schema yet
            await session.execute(TABLES["shinha_fence"])
        await session.begin()
        row = await session.fetchone("SELECT epoch FROM shinha_fence WHERE id = 1 FOR UPDATE")
        if row is not None and int(row[0]) > epoch:
            await session.rollback()
            raise DatabaseFenced(node.name, int(row[0]), epoch)
        await session.execute("INSERT INTO shinha_fence (id, epoch, changed_at) VALUES "
                              "(1, %s, %s) ON DUPLICATE KEY UPDATE epoch = VALUES(epoch), "
                              "changed_at = VALUES(changed_at)", (epoch, time.time()))
        await session.commit()
    finally:
        session.close()


async def read_fence(node: Node, options: MariadbOptions) -> int:
    """The database epoch `node` holds (any node, a replica too); DatabaseError if none."""
    session = await connect(endpoint(options, node))
    try:
        row = await session.fetchone("SELECT epoch FROM shinha_fence WHERE id = 1")
    finally:
        session.close()
    if row is None:
        raise DatabaseError(node.name, "has no database epoch (no shinha_fence row)")
    return int(row[0])

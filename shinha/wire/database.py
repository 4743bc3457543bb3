"""The MariaDB tier on the wire: the topology the leading arbiter publishes, every node as a
probe found it (in `/cluster` and `shinha db status --json`), a data-server's reach of a node,
an operator's switchover or promotion."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from shinha.wire.base import MAX_EPOCH, Finite, Int64, Wire


class DatabaseTopology(Finite):
    """The replicated data tier as the leading arbiter publishes it: data-servers write only
    to `primary`, under `epoch` (also written in the database: a writer holding an older
    one cannot commit there)."""

    epoch: int = Field(0, ge=0, le=MAX_EPOCH)
    primary: str = Field("", description="host:port of the node to write to; empty: none "
                         "(writes wait, schedulers keep their outboxes).")
    replicas: list[str] = Field(default_factory=list)
    diverged: list[str] = Field(default_factory=list, description="Nodes with transactions "
                                "the primary lacks: shown, never used.")
    unprotected: bool = Field(False, description="Semi-sync fell back to asynchronous.")


class DatabaseReachQuery(Wire):
    """Arbiter → data-server before a database failover: can you reach this node?"""

    node: str = Field(min_length=3, max_length=300)


class DatabaseReach(Wire):
    node: str
    reachable: bool
    error: str = ""


class DatabaseChange(Wire):
    """`shinha db switchover|promote NODE` → the leading arbiter: make NODE the primary."""

    node: str = Field(min_length=3, max_length=300, description="host:port, as written in "
                      "ha_hosts.")
    timeout: float = Field(60.0, gt=0, le=3600, description="Seconds the change may take.")


class DatabaseChangeReply(Wire):
    """What the leading arbiter did; it has published the new primary when it answers."""

    action: Literal["switchover", "promote"]
    old_primary: str = Field(description="The primary published before ('' when none was).")
    primary: str
    previous_epoch: Int64
    epoch: Int64
    seconds: float
    repointed: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list, description="Nodes left as they were, "
                               "each with why and what to do.")


#: How a probe failed: the node did not answer, not in time, refused the account, or erred.
ErrorKind = Literal["", "unreachable", "timeout", "auth", "error"]
#: The version of NodeStatus's own shape (it is printed by `shinha db status --json` too).
NODE_STATUS_VERSION = 1


class NodeStatus(Finite):
    """One node as a probe found it."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = NODE_STATUS_VERSION
    #: host:port, as written in ha_hosts.
    node: str
    reachable: bool = False
    error: str = ""
    error_kind: ErrorKind = ""
    #: Wall time of the probe (shown); the decision logic never reads it.
    checked_at: float = 0.0
    server_id: int | None = None
    version: str = ""
    read_only: bool | None = None
    log_bin: bool | None = None
    log_slave_updates: bool | None = None
    gtid_strict_mode: bool | None = None
    gtid_current_pos: str = ""
    gtid_binlog_pos: str = ""
    gtid_slave_pos: str = ""
    #: A replica's received position (SHOW SLAVE STATUS Gtid_IO_Pos).
    gtid_io_pos: str = ""
    is_replica: bool = False
    #: host:port of the primary it replicates from ('' when not a replica).
    replicates_from: str = ""
    io_running: bool = False
    #: Slave_IO_Running as MariaDB says it: Yes, No, Connecting, Preparing.
    io_state: str = ""
    sql_running: bool = False
    seconds_behind: int | None = None
    last_io_errno: int = 0
    last_io_error: str = ""
    last_sql_errno: int = 0
    last_sql_error: str = ""
    #: The SQL thread has executed everything the IO thread received.
    relay_log_applied: bool = True
    semi_sync_master_enabled: bool | None = None
    #: Rpl_semi_sync_master_status: OFF while enabled means it fell back to asynchronous.
    semi_sync_master_status: bool | None = None
    semi_sync_slave_enabled: bool | None = None
    #: The `shinha_cluster` marker that `shinha db init` writes; None: not initialised.
    cluster_id: str | None = None
    #: The database epoch in `shinha_fence`; None when the table is not there.
    db_epoch: int | None = None
    #: Tables in the cluster's database (`database` of the module) on this node.
    table_count: int = 0


class NodeReport(NodeStatus):
    """A node in `shinha db status --json`: as probed, with its role in the cluster."""

    role: str = Field(description="primary, replica, diverged, standalone, foreign, "
                      "uninitialised, unreachable")
    problem: str = Field("", description="What is wrong with its replication, if anything.")


class DatabaseStatus(Finite):
    """The document `shinha db status --json` prints."""

    # `schema` would shadow a (deprecated) BaseModel method: the field is `version`.
    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True)

    version: int = Field(1, alias="schema", description="The version of this document.")
    module: str
    database: str
    cluster_id: str | None
    primary: str | None = Field(description="The one writable primary; None when there is "
                                "none, or several.")
    db_epoch: int | None = Field(description="The highest database epoch a node holds.")
    nodes: list[NodeReport]
    problems: list[str]

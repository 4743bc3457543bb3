"""The MariaDB tier on the wire: the topology the leading arbiter publishes, a data-server's
reach of a node, an operator's switchover or promotion."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

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

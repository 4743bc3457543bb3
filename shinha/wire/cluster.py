"""The operator's first look, `GET /cluster` on an arbiter: every daemon, alive or dead, what
it holds, and the database tier (shinha/arbiter/view.py builds it)."""

from __future__ import annotations

from pydantic import Field

from shinha.wire.base import Finite, Wire
from shinha.wire.database import DatabaseTopology, NodeStatus


class DaemonView(Finite):
    """One daemon in the cluster view."""

    name: str
    role: str
    address: str
    port: int
    host_name: str
    spare: bool
    alive: bool
    attempts: int
    last_contact: float | None
    epoch: int
    config_hash: str
    holds: str = Field("", description="The part (scheduler), the daemon a spare replaces, "
                       "or the arbiter's role.")
    degraded: str = Field("", description="Why this daemon's work is not done, if it is not.")
    in_sync: bool = Field(False, description="It holds the epoch, configuration, topology "
                          "and part the arbiter means it to (no dispatch pending).")
    election: str = Field("", description="Pollers, data-servers: the master its election "
                          "names, the term, who it sees down.")


class DatabaseView(Finite):
    """The MariaDB tier: what the leading arbiter publishes, and every node as probed."""

    topology: DatabaseTopology
    nodes: list[NodeStatus]


class ClusterView(Wire):
    arbiter: str
    epoch: int
    config_hash: str
    leading: bool
    spare_config_mismatch: bool = False
    daemons: list[DaemonView]
    unplaced_hosts: int
    unowned_checks: int
    problems: list[str]
    database: DatabaseView | None = None

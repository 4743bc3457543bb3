"""What a daemon says of itself (`/ping`, `/status`), and the heartbeats of the master-token
election among the servers of one role (shinha/daemon/election.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shinha.wire.base import MAX_EPOCH, Finite, Int64, Role, Wire

#: ok; degraded while a critical loop is retrying; stopping once a stop has begun.
Health = Literal["ok", "degraded", "stopping"]


class LoopView(Finite):
    """One supervised background loop of a daemon."""

    name: str
    critical: bool = Field(description="Whether the daemon stops when it fails for good.")
    state: Literal["running", "retrying", "stopped"]
    failures: Int64 = Field(0, description="Failures in a row (0 once it runs steadily).")
    last_error: str = ""


class PingReply(Wire):
    role: Role
    name: str
    epoch: Int64
    config_hash: str = ""
    part_hash: str = ""
    topology_hash: str = ""
    leader: str = Field("", description="The arbiter that last reached us at our epoch.")
    leader_seen_ago: float | None = Field(None, description="Seconds since that arbiter's "
                                          "last authenticated call.")
    leading: bool = Field(False, description="Arbiters: whether it dispatches now.")
    election_master: str = ""
    election_term: Int64 = 0
    election_down: list[str] = Field(default_factory=list)
    db_epoch: int = Field(0, ge=0, le=MAX_EPOCH, description="Data-servers: the database "
                          "epoch they write under (a new leading arbiter starts above it).")
    nonce: str = Field("", max_length=64, description="What an arbiter's next ping proves "
                       "the secret with (an HMAC of it).")
    health: Health = "ok"
    degraded: list[str] = Field(default_factory=list, description="The critical loops "
                                "retrying now (health degraded).")


class PeerView(Finite):
    """What one daemon knows of a peer."""

    name: str
    role: Role
    address: str
    alive: bool
    attempts: Int64 = 0
    last_contact: float | None = Field(None, description="Wall time of the last answer.")


class StatusReply(Wire):
    role: Role
    name: str
    version: str
    pid: Int64
    started_at: float
    active: bool = Field(description="Working (a master, or a spare in use) rather than idle.")
    spare: bool
    epoch: Int64
    config_hash: str
    part_hash: str = ""
    health: Health = "ok"
    loops: list[LoopView] = Field(default_factory=list)
    peers: list[PeerView] = Field(default_factory=list)
    owns: dict[str, object] = Field(default_factory=dict)


class ElectionBeat(Wire):
    """One server's heartbeat to its peers: who it is and what it believes."""

    name: str
    token: int = Field(ge=0, le=7)
    master: str = ""
    term: int = Field(0, ge=0, le=MAX_EPOCH)


class ElectionView(Wire):
    """What one server's election says now: the master, the term, who is down."""

    master: str
    term: int
    down: list[str]
    alive: list[str]

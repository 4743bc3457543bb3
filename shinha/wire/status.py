"""What a daemon says of itself (`/ping`, `/status`), and the heartbeats of the master-token
election among the servers of one role (shinha/daemon/election.py)."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import ConfigDict, Field, model_validator

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


class ElectionBeat(Wire):
    """One server's heartbeat to its peers: who it is and what it believes."""

    name: str
    token: int = Field(ge=0, le=7)
    master: str = ""
    term: int = Field(0, ge=0, le=MAX_EPOCH)


class ElectionView(Finite):
    """What one server's election says now: the master, the term, who is down."""

    model_config = ConfigDict(extra="forbid")

    master: str
    term: int
    down: list[str]
    alive: list[str]


# --- what each role holds (/status `owns`) ------------------------------------------------


class Owns(Finite):
    """Base of what a daemon holds, one model a role: strict, so that a key a daemon sends
    and its model lacks is refused (and a reader learns of it), not dropped."""

    model_config = ConfigDict(extra="forbid")


class ArbiterOwns(Owns):
    leading: bool
    highest_epoch_seen: Int64
    parts: list[str] = Field(description="The schedulers' parts of the current cut.")
    hosts: Int64
    services: Int64
    standing_in: dict[str, str] = Field(description="spare -> the daemon it replaces")
    degraded: dict[str, str] = Field(description="daemon -> why its work is not done")
    config_mismatch: bool = Field(description="A spare: its configuration is not its "
                                  "master's.")
    fenced: str = Field(description="Why it stays passive: the daemons follow another "
                        "arbiter at a higher epoch ('' when not).")
    master: str | None = Field(description="The master (non-spare) arbiter of the tree.")


def _sampled() -> Any:
    """A latency figure: the key is absent from the JSON until there are samples."""
    return Field(None, exclude_if=lambda v: v is None)


class SchedulerOwns(Owns):
    part: str | None
    hosts: Int64
    services: Int64
    checks: Int64
    problems: Int64
    pending: Int64
    in_flight: Int64 = Field(description="Checks handed to a poller, no result yet.")
    ready: Int64 = Field(description="Checks due, waiting for a poller to pull them.")
    outbox: Int64 = Field(description="Items not yet stored by a data-server.")
    states_loaded: bool
    results_total: Int64
    actions_pending: Int64 = Field(0, description="Notifications and event handlers recorded "
                                   "and not done yet.")
    actions_done: Int64 = Field(0, description="Notifications and event handlers run since "
                                "start (outcome recorded).")
    flapping: Int64 = Field(0, description="Hosts and services flapping now.")
    latency_p50: float | None = _sampled()
    latency_p99: float | None = _sampled()
    latency_max: float | None = _sampled()
    latency_samples: Int64 | None = _sampled()
    pollers_seen: list[str]


class PollerOwns(Owns):
    election: ElectionView
    covering: list[str] = Field(description="Downed pollers whose checks it takes now.")
    schedulers: list[str]
    running: Int64
    unacked: Int64 = Field(description="Results no scheduler acknowledged yet.")
    capacity: Int64
    tags: list[str]


class DataserverOwns(Owns):
    store: str = Field(description="Where it stores (no account, no password).")
    election: ElectionView
    master_job_runs: Int64
    stored_new: Int64
    only_bumped: Int64
    duplicates: Int64


class ReceiverOwns(Owns):
    queued: Int64
    dead_letters: Int64
    waiting_for_a_scheduler: Int64
    schedulers_unreachable: list[str]
    schedulers_refusing: list[str]
    journal_failing: bool


#: The model of each role's `owns`.
OWNS_BY_ROLE: dict[Role, type[Owns]] = {
    "arbiter": ArbiterOwns, "scheduler": SchedulerOwns, "poller": PollerOwns,
    "dataserver": DataserverOwns, "receiver": ReceiverOwns}
#: What a daemon holds, as its /status says: one of the roles' models.
RoleOwns = ArbiterOwns | SchedulerOwns | PollerOwns | DataserverOwns | ReceiverOwns


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
    owns: RoleOwns | None = Field(None, description="What it holds: the model of its role "
                              "(ArbiterOwns, SchedulerOwns, …).")

    @model_validator(mode="after")
    def _owns_of_its_role(self) -> Self:
        # The union alone takes any member whose fields match: a daemon saying it holds
        # another role's things is a bug, refused here rather than served.
        expected = OWNS_BY_ROLE[self.role]
        if self.owns is not None and type(self.owns) is not expected:
            raise ValueError(f"owns: a {self.role} holds {expected.__name__}, not "
                             f"{type(self.owns).__name__}")
        return self

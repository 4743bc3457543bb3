"""Every message that crosses the wire between daemons: versioned pydantic models.

No Python class names, no pickle: each payload is JSON validated into one of these models, and
a request whose body does not validate gets a 400 naming the field at fault.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shinha.config.objects import Command, Host, Service
from shinha.config.timeperiod import Timeperiod

SCHEMA_VERSION = 1
#: Every integer on the wire fits a database's BIGINT (a 400-digit one is a 400, not a 500).
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
#: Epochs are counters: this bound keeps a forged one from breaking arithmetic and metrics.
MAX_EPOCH = 2**53
Role = Literal["arbiter", "scheduler", "poller", "dataserver", "receiver"]
ROLES: tuple[Role, ...] = ("arbiter", "scheduler", "poller", "dataserver", "receiver")


class Finite(BaseModel):
    """Base of every model on the wire: no NaN or infinity in any number (JSON cannot carry
    them, and one of them in a queue blocked a receiver for good)."""

    model_config = ConfigDict(allow_inf_nan=False)


class Wire(Finite):
    """Base of every wire payload: strict about unknown fields, carries the schema version."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)


class Fence(Finite):
    """Who dispatched this, under which epoch, from which configuration."""

    model_config = ConfigDict(extra="forbid")

    epoch: int = Field(ge=0, le=MAX_EPOCH)
    arbiter: str = Field(max_length=255)
    config_hash: str = Field(max_length=128)


class DaemonRef(Finite):
    """How to reach a daemon."""

    model_config = ConfigDict(extra="forbid")

    name: str
    role: Role
    address: str
    port: Int64
    use_ssl: bool = False
    spare: bool = False
    realm: str = ""

    @property
    def url(self) -> str:
        scheme = "https" if self.use_ssl else "http"
        return f"{scheme}://{self.address}:{self.port}"


# --- health and status -------------------------------------------------------------------

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


# --- dispatch ------------------------------------------------------------------------------


class CheckSettings(Finite):
    """Main-file settings a scheduler needs to run its part."""

    interval_length: Int64 = 60
    service_check_timeout: Int64 = 60
    host_check_timeout: Int64 = 30
    service_check_timeout_state: Literal["c", "u", "w", "o"] = "c"
    max_plugins_output_length: Int64 = 8192


class SchedulerPart(Finite):
    """One scheduler's share of the monitored objects, everything it needs to run them."""

    part_id: str
    part_hash: str
    realm: str
    hosts: list[Host]
    services: list[Service]
    commands: list[Command]
    timeperiods: list[Timeperiod]
    resources: dict[str, str] = Field(default_factory=dict, repr=False)
    settings: CheckSettings = Field(default_factory=CheckSettings)


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


class Topology(Finite):
    """Where the active daemons are and who owns which host; sent to every daemon."""

    schedulers: list[DaemonRef] = Field(default_factory=list)
    pollers: list[DaemonRef] = Field(default_factory=list)
    dataservers: list[DaemonRef] = Field(default_factory=list)
    receivers: list[DaemonRef] = Field(default_factory=list)
    host_owner: dict[str, str] = Field(default_factory=dict, description="host -> scheduler")
    poller_standins: dict[str, str] = Field(default_factory=dict, description="dead poller -> "
                                            "the spare that pulls its checks")
    database: DatabaseTopology | None = Field(None, description="The MariaDB tier, when the "
                                              "data-servers use one.")


class ReceiverCatalog(Finite):
    """What a receiver accepts at its door: every configured host and each host's services."""

    catalog_hash: str = Field(max_length=64)
    services: dict[str, list[str]] = Field(default_factory=dict, description="host -> the "
                                           "services it has (none: the host alone)")


class Dispatch(Wire):
    """What an arbiter sends a daemon: the fence, the topology, and for a scheduler its part."""

    fence: Fence
    topology: Topology
    part: SchedulerPart | None = None
    catalog: ReceiverCatalog | None = Field(None, description="Receivers: what they accept.")
    part_hash: str = Field("", max_length=64, description="The hash of the part (schedulers) "
                           "or catalog (receivers) to hold: sent alone, without the part or "
                           "catalog, to a daemon that holds it already.")


class DispatchReply(Wire):
    accepted: bool
    reconfigured: bool = Field(description="False when the daemon already held this part.")
    epoch: Int64
    part_hash: str = ""
    topology_hash: str = ""


class Heartbeat(Wire):
    """Master arbiter → spare, every second: 'I lead, at this epoch, with this config'."""

    fence: Fence


class HeartbeatReply(Wire):
    epoch: Int64
    leading: bool
    config_hash: str


class FencedRefusal(Wire):
    """409: the request came from an epoch lower than the one this daemon holds."""

    error: Literal["stale_epoch"] = "stale_epoch"
    epoch: Int64
    message: str


# --- checks --------------------------------------------------------------------------------


class PerfDatum(Finite):
    """One `label=value[UOM];[warn];[crit];[min];[max]` item of plugin performance data."""

    label: str
    value: float | None
    uom: str = ""
    warn: str = ""
    crit: str = ""
    min: float | None = None
    max: float | None = None


class CheckJob(Wire):
    """A check a poller must run now."""

    job_id: str
    host: str
    service: str = Field("", description="Empty for a host check.")
    command_line: str
    module_type: str = Field("fork", description="fork: a plugin; tcp, http: native checks.")
    timeout: float = Field(gt=0)
    timeout_state: int = Field(2, ge=0, le=3)
    due: float = Field(description="Wall time it was due.")
    poller_tag: str = "None"


class CheckResult(Wire):
    """The outcome of one check run (active or passive). `result_id` makes writes idempotent."""

    result_id: str = Field(min_length=8, max_length=64)
    job_id: str = ""
    host: str = Field(min_length=1)
    service: str = ""
    return_code: int = Field(ge=0, le=3)
    output: str = ""
    long_output: str = ""
    perfdata: list[PerfDatum] = Field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    latency: float = 0.0
    timed_out: bool = False
    passive: bool = False
    poller: str = ""


class PullRequest(Wire):
    poller: str
    instance: str = Field("", max_length=64, description="Changes at every poller start: "
                          "checks handed to an older instance are orphans at once.")
    tags: list[str] = Field(default_factory=lambda: ["None"])
    covering: list[str] = Field(default_factory=list, description="Downed pollers whose checks "
                                "this one takes over (master-token election).")
    spread: list[tuple[str, int]] = Field(default_factory=list, description="takeover spread: "
                                          "the alive pollers (name, weight) sharing them.")
    silence: float = Field(0.0, ge=0, description="A covered poller must have been silent this "
                           "long at the scheduler too (2 × server_threshold).")
    max_jobs: int = Field(64, ge=1, le=10_000)
    wait: float = Field(1.0, ge=0, le=30)


class PullReply(Wire):
    jobs: list[CheckJob]


class ResultBatch(Wire):
    poller: str
    results: list[CheckResult] = Field(max_length=10_000)


class ResultAck(Wire):
    """Which results are now safe (a data-server holds them) and which must be sent again."""

    acked: list[str]
    retry: list[str] = Field(default_factory=list)
    rerouted: dict[str, str] = Field(default_factory=dict, description="result -> scheduler "
                                     "that owns its host now")


# --- storage -------------------------------------------------------------------------------


class StateRow(Finite):
    """The current state of one host (service "") or service: what a scheduler resumes from."""

    host: str
    service: str = ""
    state: int = Field(0, ge=0, le=4, description="0-3; 4 = PENDING (never checked)")
    state_type: Literal["SOFT", "HARD"] = "HARD"
    attempt: Int64 = 1
    last_check: float = 0.0
    last_state_change: float = 0.0
    last_hard_state: Int64 = 0
    last_hard_state_change: float = 0.0
    output: str = ""
    long_output: str = ""
    perfdata: list[PerfDatum] = Field(default_factory=list)
    acknowledged: bool = False
    ack_author: str = ""
    ack_comment: str = ""
    ack_sticky: bool = False
    downtimes: list[Downtime] = Field(default_factory=list)
    last_result_id: str = ""
    updated_at: float = Field(0.0, description="Wall time of the last change by a scheduler: "
                              "the newer row wins when a scheduler takes a part back.")


class Downtime(Finite):
    downtime_id: str
    host: str
    service: str = ""
    start: float
    end: float
    fixed: bool = True
    duration: float = 0
    author: str = ""
    comment: str = ""


class Event(Finite):
    """A state change, an acknowledgement, a downtime: the history of a host or service."""

    event_id: str
    time: float
    host: str
    service: str = ""
    kind: Literal["state", "ack", "unack", "downtime_start", "downtime_end", "downtime_add",
                  "downtime_remove", "command"]
    state: Int64 | None = None
    state_type: str = ""
    attempt: Int64 = 0
    output: str = ""
    detail: str = ""


class IngestBatch(Wire):
    scheduler: str
    epoch: int = Field(0, ge=0, le=MAX_EPOCH)
    results: list[CheckResult] = Field(default_factory=list, max_length=50_000)
    states: list[StateRow] = Field(default_factory=list, max_length=50_000)
    events: list[Event] = Field(default_factory=list, max_length=50_000)


class IngestReply(Wire):
    accepted: list[str]
    stored_new: Int64
    only_bumped: Int64
    duplicates: Int64


class StateQuery(Wire):
    hosts: list[str] = Field(max_length=200_000)


class StateAnswer(Wire):
    states: list[StateRow]


# --- receiver ------------------------------------------------------------------------------


class PassiveResult(Finite):
    """A passive result as an operator or agent sends it to a receiver."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, max_length=255)
    service: str = Field("", max_length=255)
    return_code: int = Field(ge=0, le=3)
    output: str = Field("", max_length=65_536)
    long_output: str = Field("", max_length=1_048_576)
    perfdata: str = Field("", max_length=65_536)
    time: float | None = None
    result_id: str | None = Field(None, min_length=8, max_length=64)


class PassiveBatch(Wire):
    results: list[PassiveResult] = Field(min_length=1, max_length=10_000)


class CommandLines(Wire):
    commands: list[str] = Field(min_length=1, max_length=10_000)


class ExternalCommand(Finite):
    """A parsed external command, routed to the scheduler of its host."""

    command_id: str
    name: str
    host: str
    service: str = ""
    args: list[str] = Field(default_factory=list)
    entry_time: float


class SchedulerInbox(Wire):
    """What a receiver hands a scheduler: passive results and commands."""

    results: list[CheckResult] = Field(default_factory=list, max_length=10_000)
    commands: list[ExternalCommand] = Field(default_factory=list, max_length=10_000)


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


class NotLeading(Finite):
    """409 from an arbiter that does not lead: only the leading one acts."""

    error: Literal["not_leading"] = "not_leading"
    message: str
    leader: str = Field("", description="The arbiter the daemons last saw leading ('' when "
                        "none is known).")


class InboxAck(Wire):
    taken: list[str]
    not_mine: list[str] = Field(default_factory=list, description="For another scheduler "
                                "(the receiver's topology is older): sent again later.")
    invalid: dict[str, str] = Field(default_factory=dict, description="id -> why this "
                                    "scheduler will never take it (a service its host does "
                                    "not have): the receiver moves it aside.")


class Accepted(Wire):
    """202: the receiver holds these (queued until their scheduler takes them)."""

    accepted: Int64
    ids: list[str]


class ErrorBody(Finite):
    """Every 4xx/5xx body."""

    error: str
    message: str
    field: str | None = None


StateRow.model_rebuild()

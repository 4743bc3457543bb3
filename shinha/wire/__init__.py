"""Every message that crosses the wire between daemons: versioned pydantic models.

No Python class names, no pickle: each payload is JSON validated into one of these models, and
a request whose body does not validate gets a 400 naming the field at fault. The models live
in the modules of this package by subject; import them from here (`from shinha.wire import
CheckResult`).
"""

from __future__ import annotations

from shinha.wire.base import (
    MAX_EPOCH,
    ROLES,
    SCHEMA_VERSION,
    DaemonRef,
    ErrorBody,
    Fence,
    FencedRefusal,
    Finite,
    Int64,
    NotLeading,
    Role,
    Wire,
)
from shinha.wire.checks import (
    CheckJob,
    CheckResult,
    PerfDatum,
    PullReply,
    PullRequest,
    ResultAck,
    ResultBatch,
)
from shinha.wire.database import (
    DatabaseChange,
    DatabaseChangeReply,
    DatabaseReach,
    DatabaseReachQuery,
    DatabaseTopology,
)
from shinha.wire.dispatch import (
    CheckSettings,
    Dispatch,
    DispatchReply,
    Heartbeat,
    HeartbeatReply,
    ReceiverCatalog,
    SchedulerPart,
    Topology,
)
from shinha.wire.passive import (
    Accepted,
    CommandLines,
    ExternalCommand,
    InboxAck,
    PassiveBatch,
    PassiveResult,
    SchedulerInbox,
)
from shinha.wire.status import (
    Health,
    LoopView,
    PeerView,
    PingReply,
    StatusReply,
)
from shinha.wire.storage import (
    Downtime,
    Event,
    IngestBatch,
    IngestReply,
    StateAnswer,
    StateQuery,
    StateRow,
)

__all__ = [
    "MAX_EPOCH",
    "ROLES",
    "SCHEMA_VERSION",
    "Accepted",
    "CheckJob",
    "CheckResult",
    "CheckSettings",
    "CommandLines",
    "DaemonRef",
    "DatabaseChange",
    "DatabaseChangeReply",
    "DatabaseReach",
    "DatabaseReachQuery",
    "DatabaseTopology",
    "Dispatch",
    "DispatchReply",
    "Downtime",
    "ErrorBody",
    "Event",
    "ExternalCommand",
    "Fence",
    "FencedRefusal",
    "Finite",
    "Health",
    "Heartbeat",
    "HeartbeatReply",
    "InboxAck",
    "IngestBatch",
    "IngestReply",
    "Int64",
    "LoopView",
    "NotLeading",
    "PassiveBatch",
    "PassiveResult",
    "PeerView",
    "PerfDatum",
    "PingReply",
    "PullReply",
    "PullRequest",
    "ReceiverCatalog",
    "ResultAck",
    "ResultBatch",
    "Role",
    "SchedulerInbox",
    "SchedulerPart",
    "StateAnswer",
    "StateQuery",
    "StateRow",
    "StatusReply",
    "Topology",
    "Wire",
]

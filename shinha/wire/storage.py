"""What a scheduler stores through a data-server and resumes from: state rows, results,
events."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from shinha.wire.alerting import AlertState
from shinha.wire.base import MAX_EPOCH, Finite, Int64, Wire
from shinha.wire.checks import CheckResult, PerfDatum


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
    alert: AlertState = Field(default_factory=AlertState, description="Notification number, "
                              "flapping history, notifications recorded and not yet run.")


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
                  "downtime_remove", "command", "notification", "eventhandler",
                  "flapping_start", "flapping_stop"]
    state: Int64 | None = None
    state_type: str = ""
    attempt: Int64 = 0
    output: str = ""
    detail: str = ""
    notification_type: str = Field("", description="Notifications: PROBLEM, RECOVERY, …")
    contact: str = Field("", description="Notifications: who was notified.")
    command: str = Field("", description="Notifications and event handlers: the command run.")
    return_code: Int64 | None = Field(None, description="Its exit code (None: not run).")
    action_id: str = Field("", description="Notifications and event handlers: the id passed "
                           "to the command; a resend after a crash has the same.")


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


class StatePage(Wire):
    """One page of host or service rows (`GET /api/hosts`, `/api/services`)."""

    total: int
    offset: int
    limit: int
    items: list[StateRow]
    served_by: str = Field("", description="The database node that answered (MariaDB).")
    lag: float | None = Field(None, description="?consistency=replica: the replica's lag "
                              "behind the primary, seconds.")


class ResultEntry(Finite):
    """A stored result in a check's history: `hits` results alike (only new data) folded into
    one row, the first at `time`, the last at `last_seen`."""

    type: Literal["result"] = "result"
    result_id: str
    time: float
    last_seen: float
    hits: Int64
    state: int = Field(description="The result's return code.")
    output: str
    long_output: str
    perfdata: list[PerfDatum]
    started: float
    latency: float
    timed_out: bool
    passive: bool
    poller: str


class EventEntry(Event):
    """An event in a check's history."""

    type: Literal["event"] = "event"


#: One item of a check's history: a stored result or an event, told apart by `type`.
HistoryEntry = Annotated[ResultEntry | EventEntry, Field(discriminator="type")]


class HistoryPage(Wire):
    """One page of a check's history, newest first (`GET /api/…/history`)."""

    total: int
    offset: int
    limit: int
    items: list[HistoryEntry]
    served_by: str = ""
    lag: float | None = None


StateRow.model_rebuild()

"""The Nagios state machine of one host or service: SOFT and HARD states, attempts, acks.

A non-OK result after an OK state starts SOFT at attempt 1 (HARD at once when
max_check_attempts is 1); each further non-OK result adds an attempt, and the state becomes
HARD at max_check_attempts. An OK result ends any problem (a soft or a hard recovery). A
non-sticky acknowledgement ends with any state change, a sticky one only with the recovery.
Host plugins' WARNING counts as UP and UNKNOWN as DOWN, as in Nagios 4.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shinha.ids import new_id
from shinha.wire import AlertState, Downtime, Event, PerfDatum, StateRow

PENDING = 4
#: The fields a CheckState shares with a StateRow: all of StateRow's, host and service first.
ROW_FIELDS = tuple(StateRow.model_fields)
SERVICE_STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN", "PENDING")
HOST_STATES = ("UP", "DOWN", "UNREACHABLE", "UNREACHABLE", "PENDING")


def host_state(return_code: int) -> int:
    """Map a host plugin's exit code to UP (0) or DOWN (1)."""
    return 0 if return_code in (0, 1) else 1


@dataclass(slots=True)
class CheckState:
    """What the scheduler knows of one host (service "") or service right now: the fields of
    a StateRow, by the same names, in the same order (tests/test_scheduler_state.py holds
    them to it), and max_attempts, the scheduler's own."""

    host: str
    service: str
    max_attempts: int
    state: int = PENDING
    state_type: str = "HARD"
    attempt: int = 1
    last_check: float = 0.0
    last_state_change: float = 0.0
    last_hard_state: int = 0
    last_hard_state_change: float = 0.0
    output: str = ""
    long_output: str = ""
    perfdata: list[PerfDatum] = field(default_factory=list)
    acknowledged: bool = False
    ack_author: str = ""
    ack_comment: str = ""
    ack_sticky: bool = False
    downtimes: list[Downtime] = field(default_factory=list)
    last_result_id: str = ""
    updated_at: float = 0.0
    alert: AlertState = field(default_factory=AlertState)

    @property
    def is_host(self) -> bool:
        return not self.service

    @property
    def problem(self) -> bool:
        return self.state not in (0, PENDING)

    def in_downtime(self, now: float) -> bool:
        return any(d.start <= now < d.end for d in self.downtimes)

    def row(self) -> StateRow:
        # pydantic reads StateRow's fields from this object's attributes of the same names.
        return StateRow.model_validate(self, from_attributes=True)

    def resume(self, row: StateRow) -> None:
        """Take the stored state of this host or service (after a failover or a restart)."""
        stored = vars(row)
        for name in ROW_FIELDS[2:]:  # all but the key (host, service)
            setattr(self, name, stored[name])
        self.attempt = min(max(1, row.attempt), self.max_attempts)
        self.perfdata = list(row.perfdata)
        self.downtimes = list(row.downtimes)

    def name(self, state: int | None = None) -> str:
        value = self.state if state is None else state
        return (HOST_STATES if self.is_host else SERVICE_STATES)[value]

    def apply(self, state: int, now: float, output: str, long_output: str,
              perfdata: list[PerfDatum], result_id: str) -> list[Event]:
        """Take one check result; return the events it caused (state changes, ack ended)."""
        prev_state, prev_type = self.state, self.state_type
        events: list[Event] = []
        self.updated_at = max(self.updated_at, now)
        if state == 0:
            self.attempt = 1
            self.state_type = "HARD"
        elif prev_state in (0, PENDING):
            self.attempt = 1
            self.state_type = "HARD" if self.max_attempts <= 1 else "SOFT"
        elif prev_type == "SOFT":
            self.attempt = min(self.attempt + 1, self.max_attempts)
            self.state_type = "HARD" if self.attempt >= self.max_attempts else "SOFT"
        else:
            self.attempt = self.max_attempts
            self.state_type = "HARD"
        self.state = state
        self.last_check = now
        self.output, self.long_output, self.perfdata = output, long_output, perfdata
        self.last_result_id = result_id
        changed = state != prev_state or self.state_type != prev_type
        if state != prev_state:
            self.last_state_change = now
        if self.state_type == "HARD" and (state != self.last_hard_state or prev_state == PENDING):
            self.last_hard_state = state
            self.last_hard_state_change = now
        if changed:
            events.append(self.event("state", now, output))
        if self.acknowledged and (state == 0 or (state != prev_state and not self.ack_sticky)):
            self.acknowledged = False
            self.ack_author = self.ack_comment = ""
            events.append(self.event("unack", now, "acknowledgement ended by a state change"))
        return events

    def acknowledge(self, author: str, comment: str, sticky: bool, now: float) -> list[Event]:
        """Acknowledge the current problem (ignored, as in Nagios, when there is none)."""
        if not self.problem:
            return []
        self.updated_at = max(self.updated_at, now)
        self.acknowledged, self.ack_author, self.ack_comment = True, author, comment
        self.ack_sticky = sticky
        return [self.event("ack", now, f"{author}: {comment}")]

    def unacknowledge(self, now: float) -> list[Event]:
        if not self.acknowledged:
            return []
        self.updated_at = max(self.updated_at, now)
        self.acknowledged = False
        self.ack_author = self.ack_comment = ""
        return [self.event("unack", now, "acknowledgement removed")]

    def add_downtime(self, downtime: Downtime, now: float) -> list[Event]:
        if any(d.downtime_id == downtime.downtime_id for d in self.downtimes):
            return []
        self.updated_at = max(self.updated_at, now)
        self.downtimes.append(downtime)
        return [self.event("downtime_add", now, f"{downtime.author}: {downtime.comment}",
                            detail=downtime.downtime_id)]

    def remove_downtime(self, downtime_id: str, now: float) -> list[Event]:
        kept = [d for d in self.downtimes if d.downtime_id != downtime_id]
        if len(kept) == len(self.downtimes):
            return []
        self.updated_at = max(self.updated_at, now)
        self.downtimes = kept
        return [self.event("downtime_remove", now, "downtime removed", detail=downtime_id)]

    def expire_downtimes(self, now: float) -> list[Event]:
        """Drop downtimes whose end has passed."""
        if not self.downtimes:
            return []
        ended = [d for d in self.downtimes if d.end <= now]
        if not ended:
            return []
        self.updated_at = max(self.updated_at, now)
        self.downtimes = [d for d in self.downtimes if d.end > now]
        return [self.event("downtime_end", now, "downtime ended", detail=d.downtime_id)
                for d in ended]

    def event(self, kind: str, now: float, output: str, detail: str = "") -> Event:
        return Event(event_id=new_id(), time=now, host=self.host, service=self.service,
                     kind=kind,
                     state=self.state, state_type=self.state_type, attempt=self.attempt,
                     output=output, detail=detail)


"""Alerting on the wire: what a scheduler's part carries for notifications, escalations,
dependencies and event handlers, and the notification state a scheduler keeps with each
host's or service's state row (so a spare scheduler continues it)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shinha.wire.base import Finite, Int64

#: What a notification is about (Nagios's $NOTIFICATIONTYPE$).
NotificationType = Literal["PROBLEM", "RECOVERY", "ACKNOWLEDGEMENT", "FLAPPINGSTART",
                           "FLAPPINGSTOP", "FLAPPINGDISABLED", "DOWNTIMESTART", "DOWNTIMEEND",
                           "DOWNTIMECANCELLED", "CUSTOM"]
ActionKind = Literal["notification", "eventhandler"]


class AlertSettings(Finite):
    """Main-file settings of alerting (Nagios's names and defaults)."""

    enable_notifications: bool = True
    enable_event_handlers: bool = True
    enable_flap_detection: bool = True
    global_host_event_handler: str = ""
    global_service_event_handler: str = ""
    notification_timeout: Int64 = Field(30, ge=1)
    event_handler_timeout: Int64 = Field(30, ge=1)
    low_service_flap_threshold: float = Field(5.0, ge=0, le=100)
    high_service_flap_threshold: float = Field(20.0, ge=0, le=100)
    low_host_flap_threshold: float = Field(5.0, ge=0, le=100)
    high_host_flap_threshold: float = Field(20.0, ge=0, le=100)
    #: Seconds a host state stays fresh enough not to check a parent again on demand.
    cached_host_check_horizon: Int64 = Field(15, ge=0)


class Escalation(Finite):
    """One host escalation (service "") or service escalation, resolved to one host or
    service and to contact names (groups expanded)."""

    host: str
    service: str = ""
    first_notification: Int64 = Field(1, ge=0)
    last_notification: Int64 = Field(0, ge=0, description="0: no last one.")
    notification_interval: float = Field(-1.0, description="interval_length units; "
                                         "< 0: the host's or service's own.")
    first_notification_time: float = Field(-1.0, description="Shinken's time-based "
                                           "escalations: from this long (interval_length "
                                           "units) after the problem's first notification; "
                                           "< 0: by number.")
    last_notification_time: float = Field(-1.0, description="…until this long; 0 or < 0: no "
                                          "end.")
    escalation_period: str = ""
    escalation_options: list[str] = Field(default_factory=list, description="States it "
                                          "applies to (d,u,r / w,u,c,r); empty: all.")
    contacts: list[str] = Field(default_factory=list)
    source: str = Field("", description="file:line of its definition.")


class Dependency(Finite):
    """One host dependency (services "") or service dependency, resolved: the dependent
    host or service depends on the master one."""

    host: str
    service: str = ""
    master_host: str
    master_service: str = ""
    execution_failure_criteria: list[str] = Field(default_factory=list, description="Master "
                                                  "states that skip the dependent's checks "
                                                  "(o,w,u,c,p / o,d,u,p); empty or n: never.")
    notification_failure_criteria: list[str] = Field(default_factory=list, description="Master "
                                                     "states that silence the dependent's "
                                                     "notifications; empty or n: never.")
    inherits_parent: bool = False
    dependency_period: str = ""
    source: str = Field("", description="file:line of its definition.")


class PendingAction(Finite):
    """A notification or event handler recorded before it runs; it leaves the state row when
    its outcome is recorded. After a crash in between, the scheduler that resumes the row runs
    it again with the same action_id (at most one resend, never a lost one)."""

    action_id: str = Field(min_length=8, max_length=128)
    kind: ActionKind
    notification_id: str = ""
    notification_type: str = ""
    number: Int64 = 0
    contact: str = ""
    command: str = Field("", description="The command's name.")
    call: str = Field("", description="`command!arg…` as configured, not expanded: the line is "
                      "expanded when handed out, so no $USERn$ secret is stored.")
    macros: dict[str, str] = Field(default_factory=dict, description="The run-time macros at "
                                   "the decision ($NOTIFICATIONTYPE$, $SERVICESTATE$, …).")
    timeout: float = Field(30.0, gt=0)
    poller_tag: str = "None"
    created: float = 0.0


class AlertState(Finite):
    """What alerting remembers of one host or service, stored in its state row."""

    notification_number: Int64 = Field(0, description="Notifications sent about the current "
                                       "problem ($NOTIFICATIONNUMBER$); 0 after a recovery.")
    last_notification: float = 0.0
    first_notification: float = Field(0.0, description="When the problem's first notification "
                                      "went (time-based escalations count from it).")
    next_notification: float = 0.0
    no_more_notifications: bool = False
    notifications_disabled: bool = Field(False, description="Turned off by an external "
                                         "command (DISABLE_SVC_NOTIFICATIONS…).")
    notified_on: list[int] = Field(default_factory=list, description="Problem states notified "
                                   "since the last recovery: a recovery notifies only after one.")
    last_notified_contacts: list[str] = Field(default_factory=list)
    escalated: bool = False
    last_time_ok: float = Field(0.0, description="Last time the check was OK/UP "
                                "(first_notification_delay counts from it).")
    flap_history: list[int] = Field(default_factory=list, description="The last 21 states.")
    is_flapping: bool = False
    flapping_recovery: bool = Field(False, description="Flapping began in a notified problem: "
                                    "if it ends in OK, that recovery is notified then.")
    percent_state_change: float = 0.0
    downtimes_started: list[str] = Field(default_factory=list, description="Downtimes whose "
                                         "start was announced (DOWNTIMESTART sent or due).")
    pending: list[PendingAction] = Field(default_factory=list)

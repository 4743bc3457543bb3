"""Apply Nagios external commands to a scheduler's checks (the receiver parsed them)."""

from __future__ import annotations

from collections.abc import Callable

from shinha.scheduler.items import CheckItem, Key
from shinha.wire import Downtime, Event, ExternalCommand


class CommandOutcome:
    """What a command did: events to store, checks whose state row changed, checks to run."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.touched: list[CheckItem] = []
        self.force: list[CheckItem] = []


def _flag(value: str) -> bool:
    return value.strip() not in ("", "0")


def _float(value: str, default: float = 0.0) -> float:
    try:
        return float(value)
    except ValueError:
        return default


def apply_command(cmd: ExternalCommand, items: dict[Key, CheckItem], now: float
                  ) -> CommandOutcome | None:
    """Apply one command; None when it names no check of this scheduler."""
    handler = HANDLERS.get(cmd.name)
    if handler is None:
        return None
    return handler(cmd, items, now)


def _target(cmd: ExternalCommand, items: dict[Key, CheckItem]) -> CheckItem | None:
    return items.get((cmd.host, cmd.service))


def _ack(cmd: ExternalCommand, items: dict[Key, CheckItem], now: float) -> CommandOutcome | None:
    item = _target(cmd, items)
    if item is None:
        return None
    # ACKNOWLEDGE_SVC_PROBLEM;host;svc;sticky;notify;persistent;author;comment
    args = cmd.args + [""] * (5 - len(cmd.args))
    out = CommandOutcome()
    # As in Nagios, sticky 2 keeps the acknowledgement until the recovery; anything else ends
    # it with any state change.
    out.events = item.state.acknowledge(args[3], args[4], sticky=args[0].strip() == "2",
                                        now=now)
    if _flag(args[1]):  # notify: the contacts get an ACKNOWLEDGEMENT notification
        out.events = [e.model_copy(update={"detail": "notify"}) if e.kind == "ack" else e
                      for e in out.events]
    out.touched.append(item)
    return out


def _notifications(cmd: ExternalCommand, items: dict[Key, CheckItem], now: float
                   ) -> CommandOutcome | None:
    item = _target(cmd, items)
    if item is None:
        return None
    out = CommandOutcome()
    disabled = cmd.name.startswith("DISABLE")
    alert = item.state.alert
    if alert.notifications_disabled != disabled:
        alert.notifications_disabled = disabled
        item.state.updated_at = max(item.state.updated_at, now)
        out.events = [item.state.event("command", now, f"notifications "
                                        f"{'disabled' if disabled else 'enabled'}",
                                        detail=cmd.name)]
    out.touched.append(item)
    return out


def _custom(cmd: ExternalCommand, items: dict[Key, CheckItem], now: float
            ) -> CommandOutcome | None:
    item = _target(cmd, items)
    if item is None:
        return None
    # SEND_CUSTOM_SVC_NOTIFICATION;host;svc;options;author;comment
    args = cmd.args + [""] * (3 - len(cmd.args))
    out = CommandOutcome()
    event = item.state.event("command", now, args[2], detail="custom_notification")
    out.events = [event.model_copy(update={"contact": args[1]})]  # the author
    out.touched.append(item)
    return out


def _unack(cmd: ExternalCommand, items: dict[Key, CheckItem], now: float
           ) -> CommandOutcome | None:
    item = _target(cmd, items)
    if item is None:
        return None
    out = CommandOutcome()
    out.events = item.state.unacknowledge(now)
    out.touched.append(item)
    return out


def _force(cmd: ExternalCommand, items: dict[Key, CheckItem], now: float
           ) -> CommandOutcome | None:
    item = _target(cmd, items)
    if item is None:
        return None
    out = CommandOutcome()
    out.force.append(item)
    return out


def _downtime(cmd: ExternalCommand, items: dict[Key, CheckItem], now: float
              ) -> CommandOutcome | None:
    item = _target(cmd, items)
    if item is None:
        return None
    # SCHEDULE_SVC_DOWNTIME;host;svc;start;end;fixed;trigger_id;duration;author;comment
    args = cmd.args + [""] * (7 - len(cmd.args))
    start, end = _float(args[0], now), _float(args[1], now)
    downtime = Downtime(downtime_id=cmd.command_id, host=cmd.host, service=cmd.service,
                        start=start, end=end, fixed=_flag(args[2]), duration=_float(args[4]),
                        author=args[5], comment=args[6])
    out = CommandOutcome()
    out.events = item.state.add_downtime(downtime, now)
    out.touched.append(item)
    return out


def _del_downtime(cmd: ExternalCommand, items: dict[Key, CheckItem], now: float
                  ) -> CommandOutcome | None:
    # DEL_SVC_DOWNTIME;downtime_id: the receiver cannot know the host, so every scheduler
    # sees it and the one that holds the downtime removes it.
    downtime_id = cmd.args[0] if cmd.args else ""
    out = CommandOutcome()
    for item in items.values():
        if item.state.downtimes:
            events = item.state.remove_downtime(downtime_id, now)
            if events:
                out.events += events
                out.touched.append(item)
    return out if out.touched else None


HANDLERS: dict[str, Callable[[ExternalCommand, dict[Key, CheckItem], float],
                             CommandOutcome | None]] = {
    "ACKNOWLEDGE_SVC_PROBLEM": _ack,
    "ACKNOWLEDGE_HOST_PROBLEM": _ack,
    "REMOVE_SVC_ACKNOWLEDGEMENT": _unack,
    "REMOVE_HOST_ACKNOWLEDGEMENT": _unack,
    "SCHEDULE_FORCED_SVC_CHECK": _force,
    "SCHEDULE_FORCED_HOST_CHECK": _force,
    "SCHEDULE_SVC_CHECK": _force,
    "SCHEDULE_HOST_CHECK": _force,
    "SCHEDULE_SVC_DOWNTIME": _downtime,
    "SCHEDULE_HOST_DOWNTIME": _downtime,
    "DEL_SVC_DOWNTIME": _del_downtime,
    "DEL_HOST_DOWNTIME": _del_downtime,
    "REMOVE_SVC_DOWNTIME": _del_downtime,
    "REMOVE_HOST_DOWNTIME": _del_downtime,
    "ENABLE_SVC_NOTIFICATIONS": _notifications,
    "DISABLE_SVC_NOTIFICATIONS": _notifications,
    "ENABLE_HOST_NOTIFICATIONS": _notifications,
    "DISABLE_HOST_NOTIFICATIONS": _notifications,
    "SEND_CUSTOM_SVC_NOTIFICATION": _custom,
    "SEND_CUSTOM_HOST_NOTIFICATION": _custom,
}

"""Notifications and event handlers as jobs for the pollers: the action a poller runs, and the
run-time macros of its command line ($NOTIFICATIONTYPE$, $SERVICESTATE$, $CONTACTEMAIL$, …),
expanded by the one macro function (shinha.config.macros)."""

from __future__ import annotations

import time as _time
from dataclasses import dataclass

from shinha.config.macros import MacroContext, command_line, split_check_command
from shinha.config.objects import Command, Contact, Host, Service
from shinha.scheduler.notify import Notice
from shinha.scheduler.state import CheckState
from shinha.wire import CheckJob, PendingAction, PerfDatum

Key = tuple[str, str]


@dataclass(slots=True)
class ActionItem:
    """A recorded action waiting for, or held by, a poller. It quacks like a CheckItem where
    the hand-out needs it (key, job_id, poller, poller_tag, timeout, job_json)."""

    key: Key
    pending: PendingAction
    poller: str
    #: The expanded command line (in memory only: it may hold $USERn$ secrets).
    command_line: str = ""

    @property
    def job_id(self) -> str:
        return self.pending.action_id

    @property
    def poller_tag(self) -> str:
        return self.pending.poller_tag

    @property
    def timeout(self) -> float:
        return self.pending.timeout

    def job_json(self) -> str:
        p = self.pending
        return CheckJob(job_id=p.action_id, host=self.key[0], service=self.key[1],
                        command_line=self.command_line, timeout=p.timeout, timeout_state=3,
                        due=p.created, poller_tag=p.poller_tag,
                        kind=p.kind).model_dump_json()


def perfdata_text(perfdata: list[PerfDatum]) -> str:
    """Perfdata back to its plugin form (`label=value[UOM];warn;crit;min;max`)."""
    out = []
    for d in perfdata:
        label = f"'{d.label}'" if " " in d.label or "=" in d.label else d.label
        value = "" if d.value is None else f"{d.value:g}"
        tail = [d.warn, d.crit, "" if d.min is None else f"{d.min:g}",
                "" if d.max is None else f"{d.max:g}"]
        while tail and not tail[-1]:
            tail.pop()
        out.append(";".join([f"{label}={value}{d.uom}", *tail]))
    return " ".join(out)


def state_macros(state: CheckState, host: CheckState | None, now: float) -> dict[str, str]:
    """$HOST…$ (and $SERVICE…$ for a service) macros of the current state."""
    host_state = state if state.is_host else host
    macros: dict[str, str] = {}
    if host_state is not None:
        macros.update(_state("HOST", host_state, now))
    if not state.is_host:
        macros.update(_state("SERVICE", state, now))
    stamp = _time.localtime(now)
    macros.update({
        "TIMET": str(int(now)),
        "LONGDATETIME": _time.strftime("%a %b %d %H:%M:%S %Z %Y", stamp),
        "SHORTDATETIME": _time.strftime("%Y-%m-%d %H:%M:%S", stamp),
        "DATE": _time.strftime("%Y-%m-%d", stamp), "TIME": _time.strftime("%H:%M:%S", stamp),
    })
    return macros


def _state(prefix: str, s: CheckState, now: float) -> dict[str, str]:
    long_prefix = "LONG" + prefix
    return {
        f"{prefix}STATE": s.name(), f"{prefix}STATEID": str(s.state),
        f"{prefix}STATETYPE": s.state_type, f"{prefix}ATTEMPT": str(s.attempt),
        f"{prefix}OUTPUT": s.output, f"{long_prefix}OUTPUT": s.long_output,
        f"{prefix}PERFDATA": perfdata_text(s.perfdata),
        f"LAST{prefix}CHECK": str(int(s.last_check)),
        f"LAST{prefix}STATECHANGE": str(int(s.last_state_change)),
        f"LAST{prefix}STATE": s.name(s.last_hard_state),
        f"LAST{prefix}STATEID": str(s.last_hard_state),
        f"{prefix}DURATIONSEC": str(max(0, int(now - s.last_state_change))),
        f"{prefix}ACKAUTHOR": s.ack_author, f"{prefix}ACKCOMMENT": s.ack_comment,
        f"{prefix}PERCENTCHANGE": f"{s.alert.percent_state_change:.2f}",
        f"{prefix}NOTIFICATIONNUMBER": str(s.alert.notification_number),
    }


def notice_macros(notice: Notice, notification_id: str, is_host: bool,
                  recipients: list[str]) -> dict[str, str]:
    """$NOTIFICATION…$ macros of one notification."""
    which = "HOST" if is_host else "SERVICE"
    return {
        "NOTIFICATIONTYPE": notice.type, "NOTIFICATIONNUMBER": str(notice.number),
        f"{which}NOTIFICATIONNUMBER": str(notice.number),
        f"{which}NOTIFICATIONID": notification_id, "NOTIFICATIONID": notification_id,
        "NOTIFICATIONAUTHOR": notice.author, "NOTIFICATIONAUTHORNAME": notice.author,
        "NOTIFICATIONAUTHORALIAS": notice.author, "NOTIFICATIONCOMMENT": notice.comment,
        "NOTIFICATIONRECIPIENTS": ",".join(recipients),
        "NOTIFICATIONISESCALATED": "1" if notice.escalated else "0",
    }


def expand_command(call: str, commands: dict[str, Command], host: Host, service: Service | None,
                   resources: dict[str, str], runtime: dict[str, str],
                   contact: Contact | None = None) -> tuple[str, Command] | None:
    """The command line of `name!arg1!…` with every macro expanded; None if no such command."""
    name, _ = split_check_command(call)
    command = commands.get(name)
    if command is None:
        return None
    ctx = MacroContext(host=host, service=service, resources=resources, runtime=runtime,
                       contact=contact)
    return command_line(call, command.command_line, ctx), command

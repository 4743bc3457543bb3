"""Nagios 4's notification rules, without I/O: whether a host or service notifies now, of
what, to whom (escalations), and what that changes in its notification state.

The order of the checks follows Nagios's `check_service_notification_viability`: global and
object switches and the notification period first; a SOFT state never notifies; an
acknowledged problem, a failed notification dependency, a state not in
`notification_options`, a recovery of a problem nobody was told about, the
`first_notification_delay`, flapping, a service whose host is not UP and a downtime each
silence it; a problem already notified waits for `notification_interval` (0: once).
One difference, documented: a host that is UNREACHABLE (every parent down) does not send
problem notifications — like Shinken's impacts, the down parent is the one problem notified.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shinha.config.objects import Contact
from shinha.scheduler.state import PENDING, CheckState
from shinha.wire import AlertSettings, AlertState, Escalation

SERVICE_LETTERS = ("o", "w", "c", "u")
HOST_LETTERS = ("o", "d", "u")
ALL_SERVICE_OPTIONS = frozenset({"w", "u", "c", "r", "f", "s"})
ALL_HOST_OPTIONS = frozenset({"d", "u", "r", "f", "s"})
#: The option letter a non-normal notification type needs, on the object and the contact.
TYPE_OPTION = {"FLAPPINGSTART": "f", "FLAPPINGSTOP": "f", "FLAPPINGDISABLED": "f",
               "DOWNTIMESTART": "s", "DOWNTIMEEND": "s", "DOWNTIMECANCELLED": "s"}
InPeriod = Callable[[str, float], bool]


def letter(is_host: bool, state: int) -> str:
    """The option letter of a state: o/w/c/u for services, o/d/u for hosts, p for PENDING."""
    if state == PENDING:
        return "p"
    return (HOST_LETTERS if is_host else SERVICE_LETTERS)[min(state, 3 if not is_host else 2)]


def options(given: Iterable[str], is_host: bool) -> frozenset[str]:
    """notification_options as a set of letters; none given: all; `n`: none."""
    letters = frozenset(o.strip().lower() for o in given if o.strip())
    if not letters or "a" in letters:
        return ALL_HOST_OPTIONS if is_host else ALL_SERVICE_OPTIONS
    return frozenset() if "n" in letters else letters


@dataclass(slots=True)
class Rules:
    """The notification settings of one host or service, in seconds."""

    is_host: bool
    contacts: tuple[str, ...]
    options: frozenset[str]
    interval: float
    first_delay: float
    period: str
    enabled: bool
    volatile: bool
    escalations: tuple[Escalation, ...] = ()


@dataclass(slots=True)
class Context:
    """What the rules need to know beyond the object itself, at `now`."""

    now: float
    settings: AlertSettings
    in_period: InPeriod
    #: The host's state, for a service (None for a host).
    host: CheckState | None = None
    #: A notification dependency fails (its master is in a failure state).
    dependency_fails: bool = False
    #: Seconds in one interval_length unit (escalations' notification_interval).
    unit: float = 60.0


@dataclass(slots=True)
class Notice:
    """A notification to send: its type, number and the contacts it goes to."""

    type: str
    number: int
    contacts: tuple[str, ...]
    escalated: bool = False
    author: str = ""
    comment: str = ""
    #: The shortest notification interval of the escalations that apply (seconds).
    interval: float | None = None


def _in_downtime(state: CheckState, ctx: Context) -> bool:
    return state.in_downtime(ctx.now) or (ctx.host is not None and ctx.host.in_downtime(ctx.now))


def normal(state: CheckState, rules: Rules, ctx: Context) -> Notice | None:
    """A PROBLEM or RECOVERY notification due after a check result, or None."""
    a = state.alert
    if not ctx.settings.enable_notifications or not rules.enabled or a.notifications_disabled:
        return None
    if state.state_type != "HARD" or state.state == PENDING:
        return None
    if rules.period and not ctx.in_period(rules.period, ctx.now):
        return None
    recovery = state.state == 0
    if not recovery and state.acknowledged:
        return None
    if ctx.dependency_fails:
        return None
    if recovery:
        if "r" not in rules.options or not a.notified_on:
            return None
    else:
        if letter(rules.is_host, state.state) not in rules.options:
            return None
        if rules.is_host and state.state == 2:
            return None  # unreachable behind down parents: an impact, not a problem
        if a.notification_number == 0 and rules.first_delay > 0:
            since = a.last_time_ok or state.last_hard_state_change
            if ctx.now < since + rules.first_delay:
                return None
    if a.is_flapping:
        return None
    # A recovery of a notified problem goes out from here on, in a downtime or while the
    # host is down too (Nagios: "recovery notifications are good to go at this point").
    if not recovery:
        if ctx.host is not None and ctx.host.state in (1, 2):
            return None
        if _in_downtime(state, ctx):
            return None
        if a.notification_number > 0 and not rules.volatile and (
                a.no_more_notifications or ctx.now < a.next_notification):
            return None
    number = a.notification_number + 1
    # A recovery is escalated like the problem it ends (Nagios counts it one back).
    contacts, escalated, interval = escalate(state, rules, ctx,
                                             number - 1 if recovery else number)
    return Notice("RECOVERY" if recovery else "PROBLEM", number, contacts, escalated,
                  interval=interval)


def special(kind: str, state: CheckState, rules: Rules, ctx: Context, author: str = "",
            comment: str = "") -> Notice | None:
    """An ACKNOWLEDGEMENT, CUSTOM, FLAPPING* or DOWNTIME* notification, or None. A CUSTOM
    one is sent whatever the switches, periods and options (Nagios's forced custom one)."""
    if kind == "CUSTOM":
        contacts, escalated, _ = escalate(state, rules, ctx, state.alert.notification_number)
        return Notice(kind, state.alert.notification_number, contacts, escalated, author,
                      comment)
    if (not ctx.settings.enable_notifications or not rules.enabled
            or state.alert.notifications_disabled):
        return None
    if rules.period and not ctx.in_period(rules.period, ctx.now):
        return None
    if kind == "ACKNOWLEDGEMENT" and not state.problem:
        return None
    option = TYPE_OPTION.get(kind)
    if option is not None and option not in rules.options:
        return None
    if kind.startswith("FLAPPING") and _in_downtime(state, ctx):
        return None
    number = state.alert.notification_number
    contacts, escalated, _ = escalate(state, rules, ctx, number)
    return Notice(kind, number, contacts, escalated, author, comment)


def escalate(state: CheckState, rules: Rules, ctx: Context,
             number: int) -> tuple[tuple[str, ...], bool, float | None]:
    """The contacts of notification `number` and whether it is escalated, and the shortest
    interval (seconds) of the escalations that apply (None: none applies). When any
    escalation applies, its contacts are notified instead of the object's own (Nagios)."""
    want = "r" if state.state == 0 else letter(rules.is_host, state.state)
    # Shinken's time-based escalations count from the problem's first notification.
    since = ctx.now - state.alert.first_notification if state.alert.first_notification else 0.0
    valid = [e for e in rules.escalations
             if _in_range(e, number, since, ctx.unit)
             and (not e.escalation_options or want in e.escalation_options)
             and (not e.escalation_period or ctx.in_period(e.escalation_period, ctx.now))]
    if not valid:
        return rules.contacts, False, None
    contacts: dict[str, None] = {}
    for e in valid:
        contacts.update(dict.fromkeys(e.contacts))
    # Escalations without an interval of their own do not count (Nagios): the shortest of the
    # others, even if longer than the object's; none: the object's.
    intervals = [e.notification_interval * ctx.unit for e in valid
                 if e.notification_interval >= 0]
    return tuple(contacts), True, min(intervals) if intervals else None


def _in_range(e: Escalation, number: int, since: float, unit: float) -> bool:
    """Whether notification `number`, `since` seconds after the problem's first one, is in
    the escalation's range: by number, or by time (Shinken's first/last_notification_time)."""
    if e.first_notification_time >= 0:
        return since >= e.first_notification_time * unit and (
            e.last_notification_time <= 0 or since <= e.last_notification_time * unit)
    return e.first_notification <= number and (
        e.last_notification == 0 or number <= e.last_notification)


def contact_takes(contact: Contact, notice: Notice, state: CheckState, is_host: bool,
                  in_period: InPeriod, now: float) -> bool:
    """Whether `contact` gets `notice` (its own switches, period and options)."""
    if not (contact.host_notifications_enabled if is_host
            else contact.service_notifications_enabled):
        return False
    period = contact.host_notification_period if is_host else contact.service_notification_period
    if period and not in_period(period, now):
        return False
    opts = options(contact.host_notification_options if is_host
                   else contact.service_notification_options, is_host)
    option = TYPE_OPTION.get(notice.type)
    if option is not None:
        return option in opts
    if notice.type == "RECOVERY":
        # Told of the recovery only if told of (a state of) the problem.
        return "r" in opts and any(letter(is_host, s) in opts for s in state.alert.notified_on)
    if notice.type in ("PROBLEM", "ACKNOWLEDGEMENT"):
        return letter(is_host, state.state) in opts
    return True  # CUSTOM


def sent(alert: AlertState, notice: Notice, state: int, rules: Rules, ctx: Context,
         contacts: list[str]) -> None:
    """Record that a PROBLEM or RECOVERY notification went to `contacts` (not empty)."""
    alert.notification_number = notice.number
    alert.last_notification = ctx.now
    alert.last_notified_contacts = contacts
    alert.escalated = notice.escalated
    if notice.type == "RECOVERY":
        return
    if not alert.first_notification:
        alert.first_notification = ctx.now
    interval = rules.interval if notice.interval is None else notice.interval
    alert.next_notification = ctx.now + interval
    alert.no_more_notifications = interval == 0 and not rules.volatile
    if state not in alert.notified_on:
        alert.notified_on.append(state)


def recovered(alert: AlertState) -> None:
    """A hard recovery: the problem's notification state starts over."""
    alert.notification_number = 0
    alert.first_notification = 0.0
    alert.notified_on = []
    alert.next_notification = 0.0
    alert.no_more_notifications = False
    alert.escalated = False


def hard_change(alert: AlertState) -> None:
    """A change of hard state (WARNING to CRITICAL…): the next notification may go at once."""
    alert.last_notification = alert.next_notification = 0.0
    alert.no_more_notifications = False

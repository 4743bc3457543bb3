"""Nagios 4's alerting rules in a scheduler's Alerter, without I/O: state sequences in,
notifications and events out, time injected (interval_length=1: one unit is one second).

Each test feeds check results (and acknowledgements, downtimes) to a real Alerter built from a
SchedulerPart of config objects, and asserts the exact sequence of notifications (type, number,
contact), event handlers and events that come out:

- notifications: SOFT states never notify; a HARD problem notifies #1, then again every
  notification_interval (0: once); a hard state change notifies at once; a recovery only after a
  notified problem, and the number starts over; notification_options; first_notification_delay;
  notification_period; notifications_enabled and enable_notifications;
- acknowledgements (ACKNOWLEDGEMENT, silence, a non-sticky ack ends on a state change);
- downtimes (DOWNTIMESTART / DOWNTIMEEND, silence, the host's downtime silences its services);
- services of a DOWN or UNREACHABLE host, UNREACHABLE hosts;
- contacts (options, switches, periods, groups, recoveries only to those told of the problem);
- escalations (numbers, options, interval, period); volatile services;
- flapping (the weighted percentage by hand, FLAPPINGSTART / FLAPPINGSTOP, options);
- notification and execution dependencies (inherits_parent, dependency_period);
- event handlers (when they run, their macros, the global handler first, the switches);
- the macros of a notification, and every action recorded in the state's `alert.pending`.

Flap detection is off in these worlds unless a test asks for it (a few quick state changes
reach the default 20%).

Details checked against Nagios 4's source (base/notifications.c, base/flapping.c,
base/checks.c): a recovery of a notified problem goes out during a downtime or while the host
is DOWN; acknowledgements go to contacts with the state in their options; a service without
notification_period takes the host's; the host's notification dependencies silence its
services; escalations without an interval do not count for the next notification time;
flapping ends at exactly the low threshold; a soft recovery's event handler sees SOFT. The
UNREACHABLE host that sends no problem notification is shinha's documented choice
(shinha/scheduler/notify.py), tested as such.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from shinha.clock import ManualClock
from shinha.config.objects import Command, Contact, Contactgroup, Host, Service
from shinha.config.timeperiod import Timeperiod, parse_entry
from shinha.daemon.metrics import Metrics
from shinha.http.client import PeerClient
from shinha.ids import new_id
from shinha.scheduler import flapping
from shinha.scheduler.alerter import Alerter
from shinha.scheduler.commands import apply_command
from shinha.scheduler.dependencies import Kind
from shinha.scheduler.handout import Handout
from shinha.scheduler.items import CheckItem, Key, build_items
from shinha.scheduler.outbox import Outbox
from shinha.scheduler.state import host_state
from shinha.wire import (
    AlertSettings,
    CheckResult,
    Dependency,
    Downtime,
    Escalation,
    Event,
    ExternalCommand,
    PendingAction,
    SchedulerPart,
    Topology,
)
from shinha.wire.dispatch import CheckSettings

#: Monday 4 January 2027, 12:00 local time: every test's time 0.
T0 = datetime(2027, 1, 4, 12, 0).timestamp()
H1: Key = ("h1", "")
S1: Key = ("h1", "s1")

NOTIFY_LINE = ("notify $NOTIFICATIONTYPE$ n=$NOTIFICATIONNUMBER$ id=$SERVICENOTIFICATIONID$ "
               "to=$CONTACTNAME$ mail=$CONTACTEMAIL$ foo=$_CONTACTFOO$ host=$HOSTSTATE$ "
               "svc=$SERVICESTATE$ by=$NOTIFICATIONAUTHOR$ says=$NOTIFICATIONCOMMENT$")
COMMANDS = [
    Command(command_name="ok", command_line="/bin/true"),
    Command(command_name="notify", command_line=NOTIFY_LINE),
    Command(command_name="host-notify", command_line="host-notify $NOTIFICATIONTYPE$ "
            "n=$NOTIFICATIONNUMBER$ $HOSTSTATE$ to=$CONTACTNAME$"),
    Command(command_name="handler", command_line="handle $SERVICESTATE$ $SERVICESTATETYPE$ "
            "$SERVICEATTEMPT$"),
    Command(command_name="global", command_line="global $SERVICESTATE$"),
]


def period(name: str, *entries: str) -> Timeperiod:
    return Timeperiod(timeperiod_name=name, ranges=tuple(parse_entry(e) for e in entries))


PERIODS = [
    period("noon", "monday 12:00-13:00"),  # T0 .. T0+3600
    period("morning", "monday 00:00-12:00"),  # before T0
    period("never"),
]


def contact(name: str, **kw: Any) -> Contact:
    return Contact(contact_name=name, email=f"{name}@example.com",
                   service_notification_commands=("notify",),
                   host_notification_commands=("host-notify",), **kw)


def service(name: str = "s1", host: str = "h1", **kw: Any) -> Service:
    fields: dict[str, Any] = {"check_command": "ok", "contacts": ("alice",),
                              "max_check_attempts": 2, "notification_interval": 10}
    fields.update(kw)
    return Service(host_name=host, service_description=name, **fields)


def host(name: str = "h1", **kw: Any) -> Host:
    fields: dict[str, Any] = {"check_command": "ok", "contacts": ("alice",),
                              "max_check_attempts": 1, "notification_interval": 10}
    fields.update(kw)
    return Host(host_name=name, **fields)


Note = tuple[str, int, str]


@dataclass
class Fed:
    """What one result (or command, or downtime sweep) produced."""

    events: list[Event]
    actions: list[PendingAction]
    #: The command line each action is handed out with, by action id.
    expanded: dict[str, str] = field(default_factory=dict)

    @property
    def notes(self) -> list[Note]:
        """The notifications as (type, number, contact), in order."""
        return [(a.notification_type, a.number, a.contact) for a in self.actions
                if a.kind == "notification"]

    @property
    def handlers(self) -> list[str]:
        return [self.expanded[a.action_id] for a in self.actions if a.kind == "eventhandler"]

    @property
    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    @property
    def lines(self) -> list[str]:
        return [self.expanded[a.action_id] for a in self.actions if a.kind == "notification"]


class World:
    """A part, its items and an Alerter built from real small objects."""

    def __init__(self, services: Sequence[Service] = (), hosts: Sequence[Host] | None = None,
                 contacts: Sequence[Contact] | None = None, *, flap: bool = False,
                 **part: Any) -> None:
        """Flap detection is off unless `flap`: a few quick state changes reach 20%."""
        part.setdefault("alerting", AlertSettings(enable_flap_detection=flap))
        self.part = SchedulerPart(
            part_id="p1", part_hash="x", realm="All",
            hosts=list(hosts if hosts is not None else [host()]),
            services=list(services), commands=COMMANDS, timeperiods=PERIODS,
            settings=CheckSettings(interval_length=1),
            contacts=list(contacts if contacts is not None else [contact("alice")]), **part)
        self.items = build_items(self.part)
        clock = ManualClock(wall=T0)
        metrics = Metrics()
        handout = Handout("s", clock, metrics, reschedule=lambda item, due: None,
                          topology=Topology, pollers={}, stopping=asyncio.Event())
        self.alerter = Alerter("s", clock, metrics, outbox=Outbox("s", PeerClient("secret")),
                               handout=handout, items=lambda: self.items)
        self.alerter.load(self.part, self.items)

    def item(self, key: Key) -> CheckItem:
        return self.items[key]

    def feed(self, key: Key, code: int, t: float, *, unreachable: bool = False) -> Fed:
        """One check result with exit `code` at T0+t (a host's UNREACHABLE: unreachable)."""
        item = self.items[key]
        state = code
        if not key[1]:
            state = 2 if unreachable else host_state(code)
        result = CheckResult(result_id=new_id(), host=key[0], service=key[1],
                             return_code=code, output=f"code {code}", finished=T0 + t)
        events, actions = self.alerter.judge(item, state, T0 + t, T0 + t, result)
        return self._recorded(item, Fed(events, actions))

    def feeds(self, key: Key, steps: Iterable[tuple[float, int]]) -> list[list[Note]]:
        """Several results: the notifications of each."""
        return [self.feed(key, code, t).notes for t, code in steps]

    def ack(self, key: Key, t: float, *, sticky: bool = False, author: str = "bob",
            comment: str = "on it", notify: bool = True) -> Fed:
        """ACKNOWLEDGE_SVC_PROBLEM (or _HOST_) through the scheduler's command path."""
        item = self.items[key]
        cmd = ExternalCommand(command_id=new_id(), name="ACKNOWLEDGE_SVC_PROBLEM"
                              if key[1] else "ACKNOWLEDGE_HOST_PROBLEM", host=key[0],
                              service=key[1], entry_time=T0 + t, args=["2" if sticky else "1",
                                                    "1" if notify else "0", "1", author,
                                                    comment])
        outcome = apply_command(cmd, self.items, T0 + t)
        assert outcome is not None
        events = outcome.events
        return self._recorded(item, Fed(events, self.alerter.after_events(item, events,
                                                                          T0 + t)))

    def downtime(self, key: Key, start: float, end: float, t: float = 0.0) -> str:
        """Schedule a fixed downtime from T0+start to T0+end (at T0+t); return its id."""
        item = self.items[key]
        d = Downtime(downtime_id=new_id(), host=key[0], service=key[1], start=T0 + start,
                     end=T0 + end, author="bob", comment="maintenance")
        events = item.state.add_downtime(d, T0 + t)
        assert self.alerter.after_events(item, events, T0 + t) == []
        return d.downtime_id

    def downtimes(self, key: Key, t: float) -> Fed:
        item = self.items[key]
        events: list[Event] = []
        return self._recorded(item, Fed(events, self.alerter.downtimes(item, T0 + t, events)))

    def _recorded(self, item: CheckItem, fed: Fed) -> Fed:
        for action in fed.actions:  # recorded before it runs
            assert action in item.state.alert.pending
            line = self.alerter.expand(item.key, action)
            assert line is not None, action
            fed.expanded[action.action_id] = line
        return fed


def problem(n: int, *contacts: str) -> list[Note]:
    return [("PROBLEM", n, c) for c in contacts or ("alice",)]


def recovery(n: int, *contacts: str) -> list[Note]:
    return [("RECOVERY", n, c) for c in contacts or ("alice",)]


# --- notifications: the basic rules ---------------------------------------------------------


def test_soft_states_never_notify_and_a_hard_problem_renotifies_every_interval() -> None:
    w = World([service(max_check_attempts=3, notification_interval=10)])
    steps = [(0, 0), (1, 2), (2, 2), (3, 2), (5, 2), (12, 2), (13, 2), (23, 2), (33, 2)]
    assert w.feeds(S1, steps) == [[], [], [], problem(1), [], [], problem(2), problem(3),
                                  problem(4)]
    st = w.item(S1).state
    assert (st.state_type, st.attempt, st.alert.notification_number) == ("HARD", 3, 4)


def test_soft_problem_and_soft_recovery_do_not_notify() -> None:
    w = World([service(max_check_attempts=3)])
    assert w.feeds(S1, [(0, 0), (1, 2), (2, 1), (3, 0), (4, 0)]) == [[]] * 5


def test_notification_interval_zero_notifies_once() -> None:
    w = World([service(notification_interval=0)])
    steps = [(0, 0), (1, 2), (2, 2), (100, 2), (10_000, 2)]
    assert w.feeds(S1, steps) == [[], [], problem(1), [], []]


def test_hard_state_change_notifies_at_once_with_the_next_number() -> None:
    w = World([service()])
    steps = [(0, 0), (1, 1), (2, 1), (3, 2), (4, 2), (13, 2), (14, 1)]
    assert w.feeds(S1, steps) == [[], [], problem(1), problem(2), [], problem(3), problem(4)]


def test_recovery_follows_a_notified_problem_and_resets_the_number() -> None:
    w = World([service()])
    steps = [(0, 0), (1, 2), (2, 2), (12, 2), (13, 0), (14, 0), (20, 2), (21, 2)]
    assert w.feeds(S1, steps) == [[], [], problem(1), problem(2), recovery(3), [], [],
                                  problem(1)]
    assert w.item(S1).state.alert.notified_on == [2]


def test_no_recovery_for_a_problem_never_notified() -> None:
    # CRITICAL is not in the options: the HARD problem is not notified, nor its recovery.
    w = World([service(notification_options=("w", "r"))])
    assert w.feeds(S1, [(0, 0), (1, 2), (2, 2), (3, 0)]) == [[], [], [], []]
    assert w.item(S1).state.alert.notification_number == 0


def test_notification_options_select_states_and_recovery() -> None:
    w = World([service(notification_options=("c", "r"))])
    steps = [(0, 0), (1, 1), (2, 1), (3, 2), (4, 0)]
    assert w.feeds(S1, steps) == [[], [], [], problem(1), recovery(2)]
    w = World([service(notification_options=("w", "c"))])
    assert w.feeds(S1, steps) == [[], [], problem(1), problem(2), []]
    w = World([service(notification_options=("n",))])
    assert w.feeds(S1, steps) == [[]] * 5


def test_first_notification_delay_counts_from_the_last_ok() -> None:
    w = World([service(first_notification_delay=30)])
    steps = [(0, 0), (5, 2), (6, 2), (29, 2), (30, 2), (31, 2), (40, 2)]
    assert w.feeds(S1, steps) == [[], [], [], [], problem(1), [], problem(2)]


def test_first_notification_delay_holds_each_new_problem_not_recoveries() -> None:
    w = World([service(first_notification_delay=30)])
    # The next problem waits again, from the last OK (31).
    steps = [(0, 0), (5, 2), (6, 2), (30, 2), (31, 0), (32, 2), (33, 2), (60, 2), (61, 2)]
    assert w.feeds(S1, steps) == [[], [], [], problem(1), recovery(2), [], [], [],
                                  problem(1)]


def test_notification_period() -> None:
    # "noon" is T0 .. T0+3600: inside it notifies, outside it does not.
    w = World([service(notification_period="noon")])
    steps = [(0, 0), (1, 2), (2, 2), (3590, 2), (3610, 2), (3700, 0)]
    assert w.feeds(S1, steps) == [[], [], problem(1), problem(2), [], []]
    w = World([service(notification_period="morning")])
    assert w.feeds(S1, [(0, 0), (1, 2), (2, 2), (3, 0)]) == [[]] * 4


def test_service_without_notification_period_uses_its_hosts() -> None:
    w = World([service()], hosts=[host(notification_period="morning")])
    assert w.feeds(S1, [(0, 0), (1, 2), (2, 2)]) == [[], [], []]


@pytest.mark.parametrize("how", ["object", "global"])
def test_notifications_disabled(how: str) -> None:
    if how == "object":
        w = World([service(notifications_enabled=False)])
    else:
        w = World([service()], alerting=AlertSettings(enable_notifications=False))
    assert w.feeds(S1, [(0, 0), (1, 2), (2, 2), (20, 2), (21, 0)]) == [[]] * 5


def test_volatile_service_notifies_every_hard_problem_result() -> None:
    w = World([service(is_volatile=True, max_check_attempts=1)])
    steps = [(0, 0), (1, 2), (2, 2), (3, 2), (4, 1), (5, 0), (6, 0)]
    assert w.feeds(S1, steps) == [[], problem(1), problem(2), problem(3), problem(4),
                                  recovery(5), []]
    w = World([service(is_volatile=True, max_check_attempts=3)])
    assert w.feeds(S1, [(0, 0), (1, 2), (2, 2), (3, 2), (4, 2)]) == [
        [], [], [], problem(1), problem(2)]


def test_host_problem_and_recovery() -> None:
    w = World([], hosts=[host(max_check_attempts=2)])
    steps = [(0, 0), (1, 2), (2, 2), (3, 2), (12, 2), (13, 0)]
    assert w.feeds(H1, steps) == [[], [], problem(1), [], problem(2), recovery(3)]
    line = w.feed(H1, 2, 20).lines
    assert line == []  # SOFT again
    assert w.feed(H1, 2, 21).lines == ["host-notify PROBLEM n=1 DOWN to=alice"]


# --- acknowledgements -----------------------------------------------------------------------


def test_acknowledgement_notifies_and_silences_until_a_state_change() -> None:
    w = World([service()])
    assert w.feeds(S1, [(0, 0), (1, 2), (2, 2)]) == [[], [], problem(1)]
    acked = w.ack(S1, 3)
    assert acked.kinds == ["ack"]
    assert acked.notes == [("ACKNOWLEDGEMENT", 1, "alice")]
    assert "by=bob says=on it" in acked.lines[0]
    assert w.feeds(S1, [(20, 2), (40, 2)]) == [[], []]
    changed = w.feed(S1, 1, 41)  # non-sticky: ends with the change to WARNING
    assert changed.kinds == ["state", "unack"]
    assert changed.notes == problem(2)
    assert w.feeds(S1, [(42, 1), (51, 1)]) == [[], problem(3)]


def test_acknowledgement_without_its_notify_flag_does_not_notify() -> None:
    w = World([service()])
    assert w.feeds(S1, [(0, 0), (1, 2), (2, 2)]) == [[], [], problem(1)]
    acked = w.ack(S1, 3, notify=False)
    assert acked.kinds == ["ack"]
    assert acked.notes == []
    assert w.feeds(S1, [(20, 2), (40, 2)]) == [[], []]  # silenced all the same


def test_sticky_acknowledgement_lasts_until_the_recovery() -> None:
    w = World([service()])
    assert w.feeds(S1, [(0, 0), (1, 2), (2, 2)]) == [[], [], problem(1)]
    assert w.ack(S1, 3, sticky=True).notes == [("ACKNOWLEDGEMENT", 1, "alice")]
    assert w.feeds(S1, [(4, 1), (30, 1), (31, 2), (60, 2)]) == [[], [], [], []]
    assert w.feed(S1, 0, 61).notes == recovery(2)
    assert w.feeds(S1, [(62, 2), (63, 2)]) == [[], problem(1)]


def test_no_acknowledgement_without_a_problem() -> None:
    w = World([service()])
    w.feed(S1, 0, 0)
    assert w.ack(S1, 1).actions == []
    assert not w.item(S1).state.acknowledged


# --- downtimes ------------------------------------------------------------------------------


def test_downtime_silences_problems_and_announces_its_start_and_end() -> None:
    w = World([service()])
    w.downtime(S1, start=10, end=30)
    assert w.feeds(S1, [(0, 0), (1, 2), (2, 2)]) == [[], [], problem(1)]
    assert w.downtimes(S1, 9).actions == []
    started = w.downtimes(S1, 10)
    assert (started.kinds, started.notes) == (["downtime_start"], [("DOWNTIMESTART", 1,
                                                                     "alice")])
    assert w.downtimes(S1, 11).actions == []
    assert w.feeds(S1, [(12, 2), (25, 2), (26, 1)]) == [[], [], []]
    ended = w.downtimes(S1, 30)
    assert (ended.kinds, ended.notes) == (["downtime_end"], [("DOWNTIMEEND", 1, "alice")])
    assert w.feed(S1, 1, 31).notes == problem(2)


def test_overlapping_downtimes_announce_one_start_and_one_end() -> None:
    w = World([service()])
    w.downtime(S1, start=10, end=30)
    w.downtime(S1, start=20, end=40)
    w.feed(S1, 0, 0)
    feds = [w.downtimes(S1, t) for t in (10, 20, 30, 40)]
    assert [(f.kinds, f.notes) for f in feds] == [
        (["downtime_start"], [("DOWNTIMESTART", 0, "alice")]), (["downtime_start"], []),
        (["downtime_end"], []), (["downtime_end"], [("DOWNTIMEEND", 0, "alice")])]


def test_downtime_notifications_need_s_in_the_options() -> None:
    w = World([service(notification_options=("w", "c", "r"))])
    w.downtime(S1, start=10, end=30)
    assert w.feeds(S1, [(0, 0), (1, 2), (2, 2)]) == [[], [], problem(1)]
    started = w.downtimes(S1, 10)
    assert (started.kinds, started.notes) == (["downtime_start"], [])
    ended = w.downtimes(S1, 30)
    assert (ended.kinds, ended.notes) == (["downtime_end"], [])


def test_downtime_sweep_starts_and_ends_downtimes() -> None:
    w = World([service()])

    async def go() -> list[list[str]]:
        w.downtime(S1, start=10, end=30)
        out = []
        for t in (5, 10, 30):
            w.alerter.sweep_downtimes(T0 + t)
            out.append([a.notification_type for a in w.item(S1).state.alert.pending])
        return out

    assert asyncio.run(go()) == [[], ["DOWNTIMESTART"], ["DOWNTIMESTART", "DOWNTIMEEND"]]
    assert S1 not in w.alerter.with_downtimes


def test_service_in_its_hosts_downtime_does_not_notify() -> None:
    w = World([service()])
    w.downtime(H1, start=0, end=100)
    w.downtimes(H1, 0)
    assert w.feeds(S1, [(1, 0), (2, 2), (3, 2), (50, 2)]) == [[], [], [], []]
    assert w.feed(S1, 2, 101).notes == problem(1)


def test_recovery_of_a_notified_problem_is_sent_during_a_downtime() -> None:
    w = World([service(notification_options=("w", "c", "r"))])
    assert w.feeds(S1, [(0, 0), (1, 2), (2, 2)]) == [[], [], problem(1)]
    w.downtime(S1, start=5, end=100)
    w.downtimes(S1, 5)
    assert w.feed(S1, 0, 10).notes == recovery(2)


# --- hosts down or unreachable --------------------------------------------------------------


def test_services_of_a_down_host_do_not_notify() -> None:
    w = World([service()])
    assert w.feed(H1, 2, 0).notes == problem(1)
    assert w.feeds(S1, [(1, 0), (2, 2), (3, 2), (20, 2)]) == [[], [], [], []]
    assert w.feed(H1, 0, 21).notes == recovery(2)
    assert w.feed(S1, 2, 22).notes == problem(1)


def test_unreachable_host_sends_no_problem_nor_do_its_services() -> None:
    w = World([service()], hosts=[host("gw"), host(parents=("gw",))])
    assert w.feed(("gw", ""), 2, 0).notes == problem(1)
    unreachable = w.feed(H1, 2, 1, unreachable=True)
    assert (w.item(H1).state.name(), unreachable.notes) == ("UNREACHABLE", [])
    assert [w.feed(H1, 2, t, unreachable=True).notes for t in (20, 40)] == [[], []]
    assert w.feeds(S1, [(2, 0), (3, 2), (4, 2)]) == [[], [], []]


def test_service_recovery_is_sent_while_its_host_is_down() -> None:
    w = World([service()])
    w.feed(H1, 0, 0)
    assert w.feeds(S1, [(1, 0), (2, 2), (3, 2)]) == [[], [], problem(1)]
    assert w.feed(H1, 2, 4).notes == problem(1)
    assert w.feed(S1, 0, 5).notes == recovery(2)


# --- contacts -------------------------------------------------------------------------------


def test_contact_options_and_recovery_only_to_those_told_of_the_problem() -> None:
    people = [contact("alice"), contact("bob", service_notification_options=("c", "r"))]
    w = World([service(contacts=("alice", "bob"))], contacts=people)
    # WARNING: only alice; its recovery: only alice (bob was never told of a WARNING).
    steps = [(0, 0), (1, 1), (2, 1), (3, 0)]
    assert w.feeds(S1, steps) == [[], [], problem(1, "alice"), recovery(2, "alice")]
    # CRITICAL then WARNING: bob was told of the CRITICAL, so he is told of the recovery.
    steps = [(10, 2), (11, 2), (12, 1), (13, 0)]
    assert w.feeds(S1, steps) == [[], problem(1, "alice", "bob"), problem(2, "alice"),
                                  recovery(3, "alice", "bob")]


def test_contact_switches_and_periods() -> None:
    people = [contact("alice"), contact("bob", service_notifications_enabled=False),
              contact("carol", service_notification_period="morning"),
              contact("dave", service_notification_period="noon"),
              contact("erin", service_notification_options=("n",)),
              contact("frank", host_notifications_enabled=False)]
    names = tuple(c.contact_name for c in people)
    w = World([service(contacts=names)], contacts=people)
    assert w.feeds(S1, [(0, 0), (1, 2), (2, 2), (3, 0)]) == [
        [], [], problem(1, "alice", "dave", "frank"), recovery(2, "alice", "dave", "frank")]


def test_nobody_takes_it_no_notification_is_counted() -> None:
    people = [contact("bob", service_notification_options=("w",))]
    w = World([service(contacts=("bob",))], contacts=people)
    assert w.feeds(S1, [(0, 0), (1, 2), (2, 2)]) == [[], [], []]
    assert w.item(S1).state.alert.notification_number == 0
    assert w.feeds(S1, [(3, 1)]) == [problem(1, "bob")]


def test_contact_groups_are_expanded_without_duplicates() -> None:
    people = [contact("alice"), contact("bob"), contact("carol")]
    groups = [Contactgroup(contactgroup_name="ops", members=("bob", "alice", "carol"))]
    w = World([service(contacts=("alice",), contact_groups=("ops",))], contacts=people,
              contactgroups=groups)
    assert w.feeds(S1, [(0, 0), (1, 2), (2, 2)]) == [[], [], problem(1, "alice", "bob",
                                                                     "carol")]


def test_acknowledgement_goes_only_to_contacts_of_the_state() -> None:
    people = [contact("alice"), contact("bob", service_notification_options=("c", "r"))]
    w = World([service(contacts=("alice", "bob"))], contacts=people)
    assert w.feeds(S1, [(0, 0), (1, 1), (2, 1)]) == [[], [], problem(1, "alice")]
    assert w.ack(S1, 3).notes == [("ACKNOWLEDGEMENT", 1, "alice")]


# --- escalations ----------------------------------------------------------------------------


def escalated_world(**esc: Any) -> World:
    fields: dict[str, Any] = {"host": "h1", "service": "s1", "first_notification": 2,
                              "last_notification": 3, "contacts": ["bob"]}
    fields.update(esc)
    return World([service()], contacts=[contact("alice"), contact("bob")],
                 escalations=[Escalation(**fields)])


def test_escalation_replaces_the_contacts_of_its_notifications() -> None:
    w = escalated_world()
    steps = [(0, 0), (1, 2), (2, 2), (12, 2), (22, 2), (32, 2), (42, 2)]
    assert w.feeds(S1, steps) == [[], [], problem(1), problem(2, "bob"), problem(3, "bob"),
                                  problem(4), problem(5)]
    # The recovery goes to who was told of the last problem (#5: not escalated).
    assert w.feed(S1, 0, 43).notes == recovery(6)


def test_escalated_recovery_goes_to_the_escalations_contacts() -> None:
    w = escalated_world()
    assert w.feeds(S1, [(0, 0), (1, 2), (2, 2), (12, 2), (13, 0)]) == [
        [], [], problem(1), problem(2, "bob"), recovery(3, "bob")]


def test_time_based_escalation_counts_from_the_first_notification() -> None:
    """Shinken's escalation objects by time: first/last_notification_time (interval_length
    units, 1 s here) after the problem's first notification, whatever the number."""
    w = World([service()], contacts=[contact("alice"), contact("bob")],
              escalations=[Escalation(host="h1", service="s1", first_notification_time=15,
                                      last_notification_time=25, contacts=["bob"])])
    # #1 at 2; #2 at 12 (10 s after: alice); #3 at 22 (20 s: bob); #4 at 32 (30 s: alice).
    steps = [(0, 0), (1, 2), (2, 2), (12, 2), (22, 2), (32, 2)]
    assert w.feeds(S1, steps) == [[], [], problem(1), problem(2), problem(3, "bob"),
                                  problem(4)]
    # A recovery starts over: the next problem's time counts from its own first notification.
    assert w.feed(S1, 0, 33).notes == recovery(5)
    assert w.feeds(S1, [(40, 2), (41, 2), (51, 2), (61, 2)]) == [
        [], problem(1), problem(2), problem(3, "bob")]


def test_escalation_options() -> None:
    w = escalated_world(escalation_options=["c"])
    steps = [(0, 0), (1, 1), (2, 1), (12, 1), (13, 2), (14, 0)]
    assert w.feeds(S1, steps) == [[], [], problem(1), problem(2), problem(3, "bob"),
                                  recovery(4)]


def test_escalation_interval_shortens_the_renotification() -> None:
    w = escalated_world(notification_interval=2)
    steps = [(0, 0), (1, 2), (2, 2), (11, 2), (12, 2), (13, 2), (14, 2), (15, 2), (16, 2),
             (25, 2), (26, 2)]
    assert w.feeds(S1, steps) == [[], [], problem(1), [], problem(2, "bob"), [],
                                  problem(3, "bob"), [], problem(4), [], problem(5)]


def test_overlapping_escalations_use_the_shortest_interval_and_all_contacts() -> None:
    escalations = [Escalation(host="h1", service="s1", first_notification=2, contacts=["bob"],
                              notification_interval=4),
                   Escalation(host="h1", service="s1", first_notification=2,
                              last_notification=2, contacts=["carol", "bob"],
                              notification_interval=2)]
    w = World([service()], contacts=[contact("alice"), contact("bob"), contact("carol")],
              escalations=escalations)
    steps = [(0, 0), (1, 2), (2, 2), (12, 2), (13, 2), (14, 2), (17, 2), (18, 2)]
    assert w.feeds(S1, steps) == [[], [], problem(1), problem(2, "bob", "carol"), [],
                                  problem(3, "bob"), [], problem(4, "bob")]


def test_escalation_without_interval_does_not_shorten_another_escalations() -> None:
    escalations = [Escalation(host="h1", service="s1", first_notification=2, contacts=["bob"]),
                   Escalation(host="h1", service="s1", first_notification=2, contacts=["bob"],
                              notification_interval=30)]
    w = World([service()], contacts=[contact("alice"), contact("bob")],
              escalations=escalations)
    steps = [(0, 0), (1, 2), (2, 2), (12, 2), (22, 2), (42, 2)]
    assert w.feeds(S1, steps) == [[], [], problem(1), problem(2, "bob"), [],
                                  problem(3, "bob")]


@pytest.mark.parametrize(("period_name", "escalated"), [("noon", True), ("morning", False)])
def test_escalation_period(period_name: str, escalated: bool) -> None:
    w = escalated_world(escalation_period=period_name)
    assert w.feeds(S1, [(0, 0), (1, 2), (2, 2), (12, 2)]) == [
        [], [], problem(1), problem(2, "bob" if escalated else "alice")]


# --- flapping -------------------------------------------------------------------------------


def weight(x: int) -> float:
    """Nagios's weight of the x-th of the 20 transitions (1: the oldest)."""
    return 0.75 + (x - 1) * (1.25 - 0.75) / 19


def test_percent_state_change_by_hand() -> None:
    assert flapping.percent_state_change([0]) == 0.0
    assert flapping.percent_state_change([0, 2]) == pytest.approx(1.25 * 5)
    # [0,2,0,2,0]: the missing 16 older states equal the first: transitions 17..20.
    assert flapping.percent_state_change([0, 2, 0, 2, 0]) == pytest.approx(460 / 19)
    assert flapping.percent_state_change([0, 2] * 10 + [0]) == pytest.approx(100.0)
    assert flapping.percent_state_change([2] + [0] * 20) == pytest.approx(3.75)
    assert flapping.percent_state_change([0, 1, 2] + [2] * 18) == pytest.approx(
        (weight(1) + weight(2)) * 5)


def test_flapping_start_and_stop() -> None:
    w = World([service(max_check_attempts=1)], flap=True)
    st = w.item(S1).state
    first = [w.feed(S1, code, t) for t, code in [(0, 0), (1, 2), (2, 0), (3, 2)]]
    assert [f.notes for f in first] == [[], problem(1), recovery(2), problem(1)]
    assert st.alert.percent_state_change == round((weight(19) + weight(20)) * 5 +
                                                  weight(18) * 5, 2)  # 18.36
    start = w.feed(S1, 0, 4)  # 460/19 = 24.21% >= 20
    assert st.alert.percent_state_change == 24.21
    assert start.kinds == ["state", "flapping_start"]
    assert start.notes == [("FLAPPINGSTART", 1, "alice")]  # no RECOVERY while flapping
    during = w.feed(S1, 2, 5)
    assert (during.kinds, during.notes) == (["state"], [])
    stops = []
    for k in range(1, 25):
        fed = w.feed(S1, 0, 5 + k)
        if fed.notes or "flapping_stop" in fed.kinds:
            stops.append((k, fed.kinds, fed.notes, st.alert.percent_state_change))
    # History [0,2,0,2,0,2] then OKs: after 20 OKs only one transition is left, the oldest.
    assert stops == [(20, ["flapping_stop"], [("FLAPPINGSTOP", 0, "alice")], 3.75)]
    assert w.feeds(S1, [(40, 2), (41, 0)]) == [problem(1), recovery(2)]


def test_flapping_that_began_in_a_notified_problem_notifies_its_recovery_when_it_ends(
        ) -> None:
    """Nagios's check_flapping_recovery_notification: the recovery that came while it
    flapped is notified when the flapping ends in OK."""
    w = World([service(max_check_attempts=1, high_flap_threshold=15)], flap=True)
    st = w.item(S1).state
    assert [w.feed(S1, c, t).notes for t, c in [(0, 0), (1, 2), (2, 1)]] == [
        [], problem(1), [("PROBLEM", 2, "alice")]]
    start = w.feed(S1, 2, 3)  # 18.36% >= 15, in a notified problem
    assert start.notes == [("FLAPPINGSTART", 2, "alice")]
    assert w.feed(S1, 0, 4).notes == []  # the recovery waits while it flaps
    ends = [(k, fed.notes) for k in range(1, 25) if (fed := w.feed(S1, 0, 4 + k)).notes]
    assert [notes for _, notes in ends] == [
        [("FLAPPINGSTOP", 2, "alice"), ("RECOVERY", 3, "alice")]]
    assert st.alert.notification_number == 0 and st.alert.notified_on == []
    assert w.feeds(S1, [(40, 2)]) == [problem(1)]


def test_flapping_stops_as_soon_as_below_the_low_threshold() -> None:
    # As above, with a low threshold of 7.7: the stop comes one OK earlier, at 7.63%.
    w = World([service(max_check_attempts=1, low_flap_threshold=7.7)], flap=True)
    for t, code in enumerate([0, 2, 0, 2, 0, 2]):
        w.feed(S1, code, t)
    assert w.item(S1).state.alert.is_flapping
    stops = [(k, w.item(S1).state.alert.percent_state_change) for k in range(1, 25)
             if "flapping_stop" in w.feed(S1, 0, 5 + k).kinds]
    assert stops == [(19, round((weight(1) + weight(2)) * 5, 2))]  # 7.63


def test_no_flapping_notifications_during_a_downtime() -> None:
    w = World([service(max_check_attempts=1)], flap=True)
    w.downtime(H1, start=0, end=100)
    w.downtimes(H1, 0)
    feds = [w.feed(S1, 2 * (t % 2), t) for t in range(5)]
    assert (feds[-1].kinds, [n for f in feds for n in f.notes]) == (
        ["state", "flapping_start"], [])


def test_flapping_thresholds_of_the_object_and_of_the_settings() -> None:
    w = World([service(max_check_attempts=1, high_flap_threshold=12, low_flap_threshold=1)],
              flap=True)
    kinds = [w.feed(S1, c, t).kinds for t, c in [(0, 0), (1, 2), (2, 0)]]
    assert kinds == [["state"], ["state"], ["state", "flapping_start"]]  # 12.37% >= 12
    w = World([service(max_check_attempts=1)],
              alerting=AlertSettings(high_service_flap_threshold=6.25))
    kinds = [w.feed(S1, c, t).kinds for t, c in [(0, 0), (1, 2)]]
    assert kinds == [["state"], ["state", "flapping_start"]]


def test_flapping_stops_at_exactly_the_low_threshold() -> None:
    w = World([service(max_check_attempts=1, high_flap_threshold=6, low_flap_threshold=3.75)],
              flap=True)
    kinds = [w.feed(S1, c, t).kinds for t, c in enumerate([0, 2])]
    assert kinds[-1] == ["state", "flapping_start"]  # 6.25%
    stop = [k for k in range(1, 25) if "flapping_stop" in w.feed(S1, 2, 1 + k).kinds]
    assert stop == [19]  # [0, 2, 2, ...]: one transition, the oldest: 3.75%


@pytest.mark.parametrize("how", ["object", "global"])
def test_flap_detection_disabled(how: str) -> None:
    if how == "object":
        w = World([service(max_check_attempts=1, flap_detection_enabled=False)], flap=True)
    else:
        w = World([service(max_check_attempts=1)],
                  alerting=AlertSettings(enable_flap_detection=False))
    feds = [w.feed(S1, 2 * (t % 2), t) for t in range(12)]
    assert [k for f in feds for k in f.kinds if k != "state"] == []
    assert [n for f in feds for n in f.notes] == [
        (kind, 1 if kind == "PROBLEM" else 2, "alice")
        for _ in range(6) for kind in ("PROBLEM", "RECOVERY")][:-1]
    assert not w.item(S1).state.alert.is_flapping


def test_flap_detection_options_exclude_states_from_the_history() -> None:
    w = World([service(max_check_attempts=1, flap_detection_options=("o",))], flap=True)
    feds = [w.feed(S1, 2 * (t % 2), t) for t in range(12)]
    assert [k for f in feds for k in f.kinds if k != "state"] == []
    assert w.item(S1).state.alert.flap_history == [0] * 6
    w = World([service(max_check_attempts=1, flap_detection_options=("o", "c"))], flap=True)
    feds = [w.feed(S1, 2 * (t % 2), t) for t in range(5)]
    assert feds[-1].kinds == ["state", "flapping_start"]


def test_flapping_notifications_need_f_in_the_options() -> None:
    w = World([service(max_check_attempts=1, notification_options=("c", "r"))], flap=True)
    feds = [w.feed(S1, 2 * (t % 2), t) for t in range(5)]
    assert (feds[-1].kinds, feds[-1].notes) == (["state", "flapping_start"], [])
    people = [contact("alice"), contact("bob", service_notification_options=("c", "r"))]
    w = World([service(max_check_attempts=1, contacts=("alice", "bob"))], contacts=people,
              flap=True)
    feds = [w.feed(S1, 2 * (t % 2), t) for t in range(5)]
    assert feds[-1].notes == [("FLAPPINGSTART", 1, "alice")]


# --- dependencies ---------------------------------------------------------------------------


def dependent_world(*deps: Dependency) -> World:
    return World([service("s1"), service("s2"), service("s3")], dependencies=list(deps))


S2: Key = ("h1", "s2")
S3: Key = ("h1", "s3")


def test_notification_dependency_silences_the_dependent() -> None:
    w = dependent_world(Dependency(host="h1", service="s2", master_host="h1",
                                   master_service="s1", notification_failure_criteria=["c"]))
    assert w.feeds(S1, [(0, 0), (1, 2), (2, 2)]) == [[], [], problem(1)]
    assert w.feeds(S2, [(3, 0), (4, 2), (5, 2), (20, 2)]) == [[], [], [], []]
    w.feeds(S1, [(21, 1), (22, 1)])  # the master's hard state is WARNING now
    assert w.feeds(S2, [(23, 2)]) == [problem(1)]


def test_dependencies_use_the_masters_hard_state() -> None:
    w = dependent_world(Dependency(host="h1", service="s2", master_host="h1",
                                   master_service="s1", execution_failure_criteria=["c"],
                                   notification_failure_criteria=["c"]))
    items = w.items

    def fails(kind: Kind, t: float) -> bool:
        return w.alerter.dependencies.fails(S2, kind, T0 + t, items)

    w.feed(S1, 0, 0)
    assert (fails("execution", 0), fails("notification", 0)) == (False, False)
    w.feed(S1, 2, 1)  # SOFT CRITICAL
    assert fails("execution", 1) is False
    w.feed(S1, 2, 2)  # HARD CRITICAL
    assert (fails("execution", 2), fails("notification", 2)) == (True, True)
    w.feed(S1, 0, 3)
    assert fails("execution", 3) is False


def test_master_never_checked_fails_only_with_p() -> None:
    pending = Dependency(host="h1", service="s2", master_host="h1", master_service="s1",
                         execution_failure_criteria=["p"])
    w = dependent_world(pending)
    assert w.alerter.dependencies.fails(S2, "execution", T0, w.items)
    w.feed(S1, 0, 0)
    assert not w.alerter.dependencies.fails(S2, "execution", T0, w.items)


@pytest.mark.parametrize("inherits", [True, False])
def test_inherits_parent(inherits: bool) -> None:
    w = dependent_world(
        Dependency(host="h1", service="s2", master_host="h1", master_service="s1",
                   execution_failure_criteria=["c"]),
        Dependency(host="h1", service="s3", master_host="h1", master_service="s2",
                   execution_failure_criteria=["c"], inherits_parent=inherits))
    w.feeds(S1, [(0, 2), (1, 2)])
    w.feeds(S2, [(0, 0)])
    assert w.alerter.dependencies.fails(S2, "execution", T0 + 2, w.items)
    assert w.alerter.dependencies.fails(S3, "execution", T0 + 2, w.items) is inherits


@pytest.mark.parametrize(("period_name", "silenced"), [("noon", True), ("morning", False)])
def test_dependency_period(period_name: str, silenced: bool) -> None:
    w = dependent_world(Dependency(host="h1", service="s2", master_host="h1",
                                   master_service="s1", notification_failure_criteria=["c"],
                                   dependency_period=period_name))
    w.feeds(S1, [(0, 2), (1, 2)])
    assert w.feeds(S2, [(2, 2), (3, 2)]) == [[], [] if silenced else problem(1)]


def test_host_notification_dependency_silences_its_services() -> None:
    w = World([service()], hosts=[host("h0"), host()],
              dependencies=[Dependency(host="h1", master_host="h0",
                                       notification_failure_criteria=["d"])])
    w.feed(H1, 0, 0)
    assert w.feed(("h0", ""), 2, 1).notes == problem(1)
    assert w.feeds(S1, [(2, 0), (3, 2), (4, 2)]) == [[], [], []]


# --- event handlers -------------------------------------------------------------------------


def test_event_handler_runs_on_soft_problems_hard_changes_and_recoveries() -> None:
    w = World([service(max_check_attempts=3, event_handler="handler")])
    w.feed(S1, 0, 0)
    steps = [(1, 0), (2, 2), (3, 2), (4, 2), (5, 2), (6, 1), (7, 1), (8, 0), (9, 0),
             (10, 1), (11, 0), (12, 0)]
    handlers = [w.feed(S1, code, t).handlers for t, code in steps]
    assert handlers[:10] == [
        [], ["handle CRITICAL SOFT 1"], ["handle CRITICAL SOFT 2"],
        ["handle CRITICAL HARD 3"], [], ["handle WARNING HARD 3"], [], ["handle OK HARD 1"],
        [], ["handle WARNING SOFT 1"]]
    assert [len(h) for h in handlers[10:]] == [1, 0]  # a soft recovery runs it, once


def test_soft_recovery_handler_sees_a_soft_state() -> None:
    w = World([service(max_check_attempts=3, event_handler="handler")])
    w.feed(S1, 0, 0)
    handlers = [w.feed(S1, c, t).handlers for t, c in [(1, 0), (2, 3), (3, 0), (4, 0)]]
    assert handlers[:2] == [[], ["handle UNKNOWN SOFT 1"]]
    assert [line.rsplit(" ", 1)[0] for h in handlers[2:] for line in h] == ["handle OK SOFT"]


def test_global_service_event_handler_runs_first() -> None:
    w = World([service(max_check_attempts=1, event_handler="handler")],
              alerting=AlertSettings(global_service_event_handler="global"))
    w.feed(S1, 0, 0)
    assert w.feed(S1, 2, 1).handlers == ["global CRITICAL", "handle CRITICAL HARD 1"]
    w = World([service(max_check_attempts=1)],
              alerting=AlertSettings(global_service_event_handler="global"))
    w.feed(S1, 0, 0)
    assert w.feed(S1, 2, 1).handlers == ["global CRITICAL"]


@pytest.mark.parametrize("how", ["object", "global"])
def test_event_handlers_disabled(how: str) -> None:
    if how == "object":
        w = World([service(event_handler="handler", event_handler_enabled=False)],
                  alerting=AlertSettings(global_service_event_handler="global"))
    else:
        w = World([service(event_handler="handler")],
                  alerting=AlertSettings(enable_event_handlers=False,
                                         global_service_event_handler="global"))
    assert [w.feed(S1, c, t).handlers for t, c in [(0, 0), (1, 2), (2, 2), (3, 0)]] == [
        [], [], [], []]


# --- macros and records ---------------------------------------------------------------------


def test_notification_macros() -> None:
    people = [contact("alice", customs={"FOO": "bar"}), contact("bob", customs={"FOO": "baz"})]
    w = World([service(contacts=("alice", "bob"))], contacts=people)
    w.feed(H1, 0, 0)
    w.feeds(S1, [(0, 0), (1, 2)])
    first = w.feed(S1, 2, 2)
    ids = {a.notification_id for a in first.actions}
    assert len(ids) == 1
    [nid] = ids
    assert first.lines == [
        f"notify PROBLEM n=1 id={nid} to=alice mail=alice@example.com foo=bar host=UP "
        f"svc=CRITICAL by= says=",
        f"notify PROBLEM n=1 id={nid} to=bob mail=bob@example.com foo=baz host=UP "
        f"svc=CRITICAL by= says="]
    second = w.feed(S1, 2, 12)
    [nid2] = {a.notification_id for a in second.actions}
    assert nid2 != nid
    assert second.lines[0].startswith(f"notify PROBLEM n=2 id={nid2} to=alice")
    assert w.feed(S1, 0, 13).lines[1].startswith("notify RECOVERY n=3 ")


def test_every_action_is_recorded_pending_in_the_state() -> None:
    w = World([service(max_check_attempts=1, event_handler="handler")])
    w.feed(S1, 0, 0)
    pending = w.item(S1).state.alert.pending
    pending.clear()
    fed = w.feed(S1, 2, 1)
    assert [(a.kind, a.command) for a in fed.actions] == [("notification", "notify"),
                                                          ("eventhandler", "handler")]
    assert pending == fed.actions
    assert all(a.created == T0 + 1 and a.timeout == 30.0 for a in fed.actions)
    acked = w.ack(S1, 2)
    assert pending == fed.actions + acked.actions

"""Alerting in a scheduler: after each result, command or downtime boundary, decide the
notifications (shinha.scheduler.notify), flapping (shinha.scheduler.flapping) and event
handlers; record them in the state row before they run; hand them to the pollers once the
data tier holds that row; record each outcome as an event when a poller returns it.

"Recorded before, outcome after": an action enters the row's `alert.pending` with its id in
the same write as the state that caused it, and is handed out only once that write is durable.
Its outcome removes it from `pending` and stores a notification (or eventhandler) event, the
action id as event id. A scheduler that resumes a row with actions pending hands them out again
with the same id: a crash between run and record costs at most one resend, never a loss.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from shinha.clock import Clock
from shinha.config.objects import Command, Contact, Host, Service
from shinha.config.timeperiod import Timeperiod
from shinha.daemon.metrics import Metrics
from shinha.ids import new_id
from shinha.scheduler import flapping, notify
from shinha.scheduler.actions import (
    ActionItem,
    expand_command,
    notice_macros,
    state_macros,
)
from shinha.scheduler.dependencies import Dependencies
from shinha.scheduler.handout import Handout
from shinha.scheduler.items import CheckItem, Key
from shinha.scheduler.notify import Notice, Rules
from shinha.scheduler.outbox import Outbox
from shinha.scheduler.state import CheckState
from shinha.wire import (
    AlertSettings,
    CheckResult,
    Escalation,
    Event,
    PendingAction,
    SchedulerPart,
)

log = logging.getLogger(__name__)


class Alerter:
    """Notifications, flapping and event handlers of one part."""

    def __init__(self, name: str, clock: Clock, metrics: Metrics, *, outbox: Outbox,
                 handout: Handout, items: Callable[[], dict[Key, CheckItem]]) -> None:
        self.name = name
        self.clock = clock
        self.metrics = metrics
        self.outbox = outbox
        self.handout = handout
        self.items = items
        self.settings = AlertSettings()
        self.unit = 60.0
        self.hosts: dict[str, Host] = {}
        self.services: dict[Key, Service] = {}
        self.commands: dict[str, Command] = {}
        self.contacts: dict[str, Contact] = {}
        self.groups: dict[str, tuple[str, ...]] = {}
        self.periods: dict[str, Timeperiod] = {}
        self.escalations: dict[Key, list[Escalation]] = {}
        self.resources: dict[str, str] = {}
        self.dependencies = Dependencies(self._in_period)
        self.children: dict[str, list[str]] = {}
        self._rules: dict[Key, Rules] = {}
        #: Actions whose record is on its way to the data tier (not to be handed out yet).
        self.unrecorded: set[str] = set()
        #: Hosts and services with downtimes (the downtime sweep looks at these only).
        self.with_downtimes: set[Key] = set()
        self.sent_total = 0

    # --- configuration ------------------------------------------------------------------------

    def load(self, part: SchedulerPart, items: dict[Key, CheckItem]) -> None:
        """Take a new part (its items are built)."""
        self.settings = part.alerting
        self.unit = float(part.settings.interval_length)
        self.hosts = {h.host_name: h for h in part.hosts}
        self.services = {(s.host_name, s.service_description): s for s in part.services}
        self.commands = {c.command_name: c for c in part.commands}
        self.contacts = {c.contact_name: c for c in part.contacts}
        self.groups = {g.contactgroup_name: tuple(g.members) for g in part.contactgroups}
        self.periods = {p.timeperiod_name: p for p in part.timeperiods}
        self.resources = part.resources
        self.escalations = {}
        for esc in part.escalations:
            self.escalations.setdefault((esc.host, esc.service), []).append(esc)
        self.dependencies.load(part.dependencies, items)
        self.children = {}
        for (host, service), item in items.items():
            if not service:
                for parent in item.parents:
                    self.children.setdefault(parent, []).append(host)
        self._rules = {}
        self.with_downtimes = {key for key, item in items.items() if item.state.downtimes}

    def rules(self, item: CheckItem) -> Rules:
        rules = self._rules.get(item.key)
        if rules is None:
            rules = self._rules[item.key] = self._make_rules(item)
        return rules

    def _make_rules(self, item: CheckItem) -> Rules:
        obj = self._object(item.key)
        is_host = not item.key[1]
        contacts: dict[str, None] = dict.fromkeys(obj.contacts)
        for group in obj.contact_groups:
            contacts.update(dict.fromkeys(self.groups.get(group, ())))
        # A service without a notification_period takes its host's (Nagios).
        period = obj.notification_period or (
            "" if is_host else self.hosts[item.key[0]].notification_period)
        return Rules(is_host=is_host, contacts=tuple(contacts),
                     options=notify.options(obj.notification_options, is_host),
                     interval=obj.notification_interval * self.unit,
                     first_delay=obj.first_notification_delay * self.unit,
                     period=period, enabled=obj.notifications_enabled,
                     volatile=isinstance(obj, Service) and obj.is_volatile,
                     escalations=tuple(self.escalations.get(item.key, ())))

    def _object(self, key: Key) -> Host | Service:
        return self.hosts[key[0]] if not key[1] else self.services[key]

    def _in_period(self, name: str, wall: float) -> bool:
        period = self.periods.get(name)
        if period is None:
            return True
        return period.is_valid(datetime.fromtimestamp(wall).astimezone(), self.periods)

    def _context(self, item: CheckItem, wall: float) -> notify.Context:
        items = self.items()
        host = None if item.state.is_host else items.get((item.key[0], ""))
        # A service is also silenced by its host's notification dependencies (Nagios).
        fails = self.dependencies.fails(item.key, "notification", wall, items) or (
            host is not None
            and self.dependencies.fails(host.key, "notification", wall, items))
        return notify.Context(
            now=wall, settings=self.settings, in_period=self._in_period,
            host=host.state if host is not None else None, dependency_fails=fails,
            unit=self.unit)

    # --- after a result -----------------------------------------------------------------------

    def judge(self, item: CheckItem, state: int, when: float, wall: float,
              result: CheckResult) -> tuple[list[Event], list[PendingAction]]:
        """Run the state machine of `item` on one result (`state` already mapped for hosts,
        timed `when`) at wall time `wall`; then downtimes, flapping, notifications and event
        handlers. Returns the events to store and the actions recorded in the state."""
        st = item.state
        prev_state, prev_type, prev_hard = st.state, st.state_type, st.last_hard_state
        events = st.apply(state, when, result.output, result.long_output, result.perfdata,
                          result.result_id)
        actions = self.downtimes(item, wall, events)
        actions += self.after_result(item, prev_state, prev_type, prev_hard, events, wall)
        return events, actions

    def after_result(self, item: CheckItem, prev_state: int, prev_type: str, prev_hard: int,
                     events: list[Event], wall: float) -> list[PendingAction]:
        """Flapping, notifications and event handlers after the state machine took a result;
        events it causes are appended to `events`. Returns the actions recorded."""
        st, a = item.state, item.state.alert
        actions: list[PendingAction] = []
        if st.state == 0:
            a.last_time_ok = wall
        flap_actions, flap = self._flapping(item, events, wall)
        actions += flap_actions
        hard_change = st.state_type == "HARD" and st.state != prev_hard
        if hard_change:
            notify.hard_change(a)
        # Flapping that began in a notified problem and ends in OK notifies that recovery
        # (Nagios's check_flapping_recovery_notification).
        late_recovery = flap == "stop" and a.flapping_recovery and st.state == 0
        if flap == "stop":
            a.flapping_recovery = False
        if st.state_type == "HARD" and (st.problem or hard_change or late_recovery):
            notice = notify.normal(st, self.rules(item), self._context(item, wall))
            if notice is not None:
                actions += self._notify(item, notice, wall)
        if st.state == 0 and (hard_change or late_recovery) and not (
                a.is_flapping and a.flapping_recovery):
            notify.recovered(a)
        changed = st.state != prev_state or st.state_type != prev_type
        if changed or (st.state_type == "SOFT" and st.problem):
            # A soft recovery is SOFT while its handler runs (Nagios), HARD after.
            soft_recovery = st.state == 0 and prev_type == "SOFT" and prev_state not in (0, 4)
            actions += self._handlers(item, wall, soft_recovery)
        a.pending.extend(actions)
        return actions

    def _flapping(self, item: CheckItem, events: list[Event], wall: float
                  ) -> tuple[list[PendingAction], flapping.Change]:
        obj = self._object(item.key)
        st = item.state
        if not (self.settings.enable_flap_detection and obj.flap_detection_enabled):
            return [], None
        letter = notify.letter(st.is_host, st.state)
        opts = {o.strip() for o in obj.flap_detection_options} - {"a"}
        if opts and letter not in opts and not (letter == "o" and "r" in opts):
            return [], None
        s = self.settings
        low = obj.low_flap_threshold or (s.low_host_flap_threshold if st.is_host
                                         else s.low_service_flap_threshold)
        high = obj.high_flap_threshold or (s.high_host_flap_threshold if st.is_host
                                           else s.high_service_flap_threshold)
        change = flapping.record(st.alert, st.state, low, high)
        if change is None:
            return [], None
        if change == "start":
            st.alert.flapping_recovery = st.alert.notification_number > 0 and st.problem
        kind = "flapping_start" if change == "start" else "flapping_stop"
        events.append(_event(st, kind, wall, f"{st.alert.percent_state_change:.1f}% state "
                             f"change (thresholds {low:g}/{high:g})"))
        log.info("%s/%s %s flapping (%.1f%% state change)", st.host, st.service or "(host)",
                 "started" if change == "start" else "stopped", st.alert.percent_state_change)
        notice = notify.special("FLAPPINGSTART" if change == "start" else "FLAPPINGSTOP", st,
                                self.rules(item), self._context(item, wall))
        return (self._notify(item, notice, wall) if notice is not None else []), change

    # --- notifications and handlers -----------------------------------------------------------

    def _notify(self, item: CheckItem, notice: Notice, wall: float) -> list[PendingAction]:
        """The actions of one notification (one per contact and command); for a PROBLEM or
        RECOVERY, the notification state moves on only if some contact takes it."""
        st = item.state
        rules = self.rules(item)
        takers = [c for name in notice.contacts
                  if (c := self.contacts.get(name)) is not None
                  and notify.contact_takes(c, notice, st, st.is_host, self._in_period, wall)]
        if not takers:
            return []
        if notice.type in ("PROBLEM", "RECOVERY"):
            notify.sent(st.alert, notice, st.state, rules, self._context(item, wall),
                        [c.contact_name for c in takers])
        notification_id = new_id()
        host_state = None if st.is_host else self.items().get((st.host, ""))
        runtime = state_macros(st, host_state.state if host_state else None, wall)
        runtime.update(notice_macros(notice, notification_id, st.is_host,
                                     [c.contact_name for c in takers]))
        actions = []
        for contact in takers:
            calls = (contact.host_notification_commands if st.is_host
                     else contact.service_notification_commands)
            for call in calls:
                command = self.commands.get(call.split("!", 1)[0].strip())
                if command is None:
                    continue
                actions.append(PendingAction(
                    action_id=new_id(), kind="notification", notification_id=notification_id,
                    notification_type=notice.type, number=notice.number,
                    contact=contact.contact_name, command=command.command_name, call=call,
                    macros=runtime, timeout=float(self.settings.notification_timeout),
                    poller_tag=command.reactionner_tag, created=wall))
        log.info("%s/%s: %s notification #%d to %s", st.host, st.service or "(host)",
                 notice.type, notice.number, ", ".join(c.contact_name for c in takers))
        self.metrics.inc("notifications_total", help_text="Notifications decided, by type.",
                         type=notice.type)
        return actions

    def _handlers(self, item: CheckItem, wall: float, soft_recovery: bool = False
                  ) -> list[PendingAction]:
        st = item.state
        obj = self._object(item.key)
        if not self.settings.enable_event_handlers or not obj.event_handler_enabled:
            return []
        calls = [self.settings.global_host_event_handler if st.is_host
                 else self.settings.global_service_event_handler, obj.event_handler]
        host_state = None if st.is_host else self.items().get((st.host, ""))
        runtime = state_macros(st, host_state.state if host_state else None, wall)
        if soft_recovery:
            runtime["HOSTSTATETYPE" if st.is_host else "SERVICESTATETYPE"] = "SOFT"
        actions = []
        for call in calls:
            command = self.commands.get(call.split("!", 1)[0].strip()) if call else None
            if command is None:
                continue
            actions.append(PendingAction(
                action_id=new_id(), kind="eventhandler", command=command.command_name,
                call=call, macros=runtime, timeout=float(self.settings.event_handler_timeout),
                poller_tag=command.reactionner_tag, created=wall))
        return actions

    # --- commands and downtimes ---------------------------------------------------------------

    def after_events(self, item: CheckItem, events: list[Event], wall: float
                     ) -> list[PendingAction]:
        """Notifications of an acknowledgement or of a downtime removed while it ran."""
        st = item.state
        actions: list[PendingAction] = []
        for event in list(events):
            if (event.host, event.service) != item.key:
                continue
            notice = None
            if event.kind == "ack" and event.detail == "notify":
                notice = notify.special("ACKNOWLEDGEMENT", st, self.rules(item),
                                        self._context(item, wall), st.ack_author,
                                        st.ack_comment)
            elif event.kind == "command" and event.detail == "custom_notification":
                notice = notify.special("CUSTOM", st, self.rules(item),
                                        self._context(item, wall), event.contact,
                                        event.output)
            elif event.kind == "downtime_add":
                self.with_downtimes.add(item.key)
            elif event.kind == "downtime_remove" and event.detail in st.alert.downtimes_started:
                st.alert.downtimes_started.remove(event.detail)
                if not st.alert.downtimes_started:
                    notice = notify.special("DOWNTIMECANCELLED", st, self.rules(item),
                                            self._context(item, wall))
            if notice is not None:
                actions += self._notify(item, notice, wall)
        st.alert.pending.extend(actions)
        return actions

    def downtimes(self, item: CheckItem, wall: float, events: list[Event]
                  ) -> list[PendingAction]:
        """Start and end the downtimes of `item` that are due: downtime events, and the
        DOWNTIMESTART / DOWNTIMEEND notifications (not while another downtime runs)."""
        st, a = item.state, item.state.alert
        actions: list[PendingAction] = []
        for d in st.downtimes:
            if d.start <= wall < d.end and d.downtime_id not in a.downtimes_started:
                first = not a.downtimes_started
                a.downtimes_started.append(d.downtime_id)
                st.updated_at = max(st.updated_at, wall)
                events.append(_event(st, "downtime_start", wall, f"{d.author}: {d.comment}",
                                     d.downtime_id))
                notice = notify.special("DOWNTIMESTART", st, self.rules(item),
                                        self._context(item, wall)) if first else None
                if notice is not None:
                    actions += self._notify(item, notice, wall)
        ended = st.expire_downtimes(wall)
        if ended:
            events += ended
            was_running = bool(a.downtimes_started)
            live = {d.downtime_id for d in st.downtimes}
            a.downtimes_started = [i for i in a.downtimes_started if i in live]
            if was_running and not a.downtimes_started:
                notice = notify.special("DOWNTIMEEND", st, self.rules(item),
                                        self._context(item, wall))
                if notice is not None:
                    actions += self._notify(item, notice, wall)
        if not st.downtimes:
            self.with_downtimes.discard(item.key)
        a.pending.extend(actions)
        return actions

    def sweep_downtimes(self, wall: float) -> None:
        """Start and end due downtimes of the part (the scheduler calls this every second)."""
        items = self.items()
        for key in list(self.with_downtimes):
            item = items.get(key)
            if item is None:
                self.with_downtimes.discard(key)
                continue
            events: list[Event] = []
            actions = self.downtimes(item, wall, events)
            if events or actions:
                future = self.outbox.add_writes([item.state.row()], events)
                self.when_recorded(future, item, actions)

    # --- recorded, handed out, done -----------------------------------------------------------

    def when_recorded(self, future: asyncio.Future[bool] | None, item: CheckItem,
                      actions: list[PendingAction]) -> None:
        """Hand `actions` out once the write that records them is durable."""
        if not actions or future is None:
            return
        self.unrecorded.update(a.action_id for a in actions)

        def done(f: asyncio.Future[bool]) -> None:
            self.unrecorded.difference_update(a.action_id for a in actions)
            if f.cancelled() or not f.result():
                return  # not recorded: the scheduler stops; nothing ran
            for action in actions:
                if action in item.state.alert.pending:
                    self._hand_out(item, action)

        future.add_done_callback(done)

    def resume(self, items: dict[Key, CheckItem]) -> int:
        """Hand out again the recorded actions of the part (after a takeover, a restart, a
        new part): those the data tier holds, with their ids."""
        queued = 0
        for item in items.values():
            for action in item.state.alert.pending:
                if action.action_id not in self.handout.in_flight and \
                        action.action_id not in self.unrecorded:
                    self._hand_out(item, action)
                    queued += 1
        if queued:
            log.warning("scheduler %s: %d notifications and event handlers recorded but not "
                        "done are handed out again (same ids)", self.name, queued)
        return queued

    def expand(self, key: Key, action: PendingAction) -> str | None:
        """The command line of a recorded action, expanded now with the part's resources and
        the macros recorded with it; None when its command or contact is no longer defined."""
        contact = None
        if action.kind == "notification":
            contact = self.contacts.get(action.contact)
            if contact is None:
                return None
        host = self.hosts.get(key[0])
        if host is None:
            return None
        built = expand_command(action.call, self.commands, host, self.services.get(key),
                               self.resources, action.macros, contact)
        return built[0] if built is not None else None

    def _hand_out(self, item: CheckItem, action: PendingAction) -> None:
        line = self.expand(item.key, action)
        if line is None:
            # The configuration changed since it was recorded: record it as not run.
            log.warning("%s/%s: %s %s dropped: its command or contact is no longer defined",
                        item.key[0], item.key[1] or "(host)", action.kind, action.command)
            result = CheckResult(result_id=new_id(), job_id=action.action_id, host=item.key[0],
                                 service=item.key[1], return_code=3, kind=action.kind,
                                 output=f"not run: command {action.command!r} or contact "
                                 f"{action.contact!r} is no longer defined")
            self.outcome(item, result)
            return
        self.handout.queue_action(ActionItem(item.key, action, item.poller, line))

    def outcome(self, item: CheckItem, result: CheckResult) -> asyncio.Future[bool] | None:
        """A poller ran an action: record its outcome. None: already recorded."""
        self.handout.settle(result.job_id)
        st = item.state
        action = next((p for p in st.alert.pending if p.action_id == result.job_id), None)
        if action is None:
            return None
        st.alert.pending.remove(action)
        wall = self.clock.time()
        st.updated_at = max(st.updated_at, wall)
        event = Event(event_id=action.action_id, time=wall, host=st.host, service=st.service,
                      kind=action.kind, state=st.state, state_type=st.state_type,
                      attempt=st.attempt, output=result.output[:4096],
                      detail=f"#{action.number} {action.notification_id}"
                      if action.kind == "notification" else "",
                      notification_type=action.notification_type, contact=action.contact,
                      command=action.command, return_code=result.return_code,
                      action_id=action.action_id)
        if result.return_code != 0 or result.timed_out:
            log.warning("%s/%s: %s %s failed (exit %d): %s", st.host, st.service or "(host)",
                        action.kind, action.command, result.return_code, result.output[:200])
        self.sent_total += 1
        self.metrics.inc("actions_done_total", help_text="Notifications and event handlers "
                         "run, by kind.", kind=action.kind)
        return self.outbox.add_writes([st.row()], [event])


def _event(st: CheckState, kind: str, wall: float, output: str, detail: str = "") -> Event:
    return Event(event_id=new_id(), time=wall, host=st.host, service=st.service,
                 kind=kind,
                 state=st.state, state_type=st.state_type, attempt=st.attempt, output=output,
                 detail=detail)

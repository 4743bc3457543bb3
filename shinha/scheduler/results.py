"""Taking results back: the pollers' results and the receivers' inbox (passive results and
commands) run the state machine of their checks and are queued for the data tier; the
sender is acknowledged once the data tier holds them."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from shinha.clock import Clock, wait_all
from shinha.daemon.metrics import Metrics
from shinha.scheduler.alerter import Alerter
from shinha.scheduler.commands import apply_command
from shinha.scheduler.handout import Handout
from shinha.scheduler.items import CheckItem, Key
from shinha.scheduler.outbox import Outbox
from shinha.scheduler.state import host_state
from shinha.wire import (
    CheckResult,
    InboxAck,
    ResultAck,
    ResultBatch,
    SchedulerInbox,
    Topology,
)

log = logging.getLogger(__name__)

LATENCY_WINDOW = 20_000
#: How long a poller's result POST waits for the data tier before answering "retry".
DURABLE_WAIT = 10.0


class Results:
    """Applies results and commands to the checks of the part, and queues them for the
    data tier."""

    def __init__(self, name: str, clock: Clock, metrics: Metrics, *, outbox: Outbox,
                 handout: Handout, items: Callable[[], dict[Key, CheckItem]],
                 loading: Callable[[], bool], reschedule: Callable[[CheckItem, float], None],
                 topology: Callable[[], Topology], max_future: float,
                 alerter: Alerter) -> None:
        """`items` reads the checks of the part held now; `loading` says whether its states
        are still being loaded (nothing is applied then); `reschedule` puts a check in the
        timetable (and wakes its loop when that is sooner)."""
        self.name = name
        self.clock = clock
        self.metrics = metrics
        self.outbox = outbox
        self.handout = handout
        self.items = items
        self.loading = loading
        self.reschedule = reschedule
        self.topology = topology
        self.max_future = max_future
        self.alerter = alerter
        #: Latency (start minus due) of the last active results, for /status and the bench.
        self.latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.results_total = 0

    def latency_stats(self) -> dict[str, float]:
        if not self.latencies:
            return {}
        ordered = sorted(self.latencies)
        n = len(ordered)
        return {"latency_p50": round(ordered[n // 2], 4),
                "latency_p99": round(ordered[min(n - 1, int(n * 0.99))], 4),
                "latency_max": round(ordered[-1], 4), "latency_samples": n}

    async def take_batch(self, batch: ResultBatch) -> ResultAck:
        """Take a poller's results."""
        self.handout.seen(batch.poller)
        return await self.take_results(batch.results)

    async def take_results(self, results: list[CheckResult]) -> ResultAck:
        if self.loading():
            # The part's states are not loaded yet: applying a result now would run the state
            # machine from PENDING and invent state changes. Ask for them again shortly.
            return ResultAck(acked=[r.result_id for r in results
                                    if self.outbox.is_durable(r.result_id)],
                             retry=[r.result_id for r in results
                                    if not self.outbox.is_durable(r.result_id)])
        items = self.items()
        acked: list[str] = []
        waiting: dict[str, asyncio.Future[bool]] = {}
        rerouted: dict[str, str] = {}
        for result in results:
            rid = result.result_id
            if self.outbox.is_durable(rid):
                acked.append(rid)
                continue
            pending = self.outbox.waiter(rid)
            if pending is not None:
                waiting[rid] = pending
                continue
            item = items.get((result.host, result.service))
            if item is not None and result.kind != "check":
                # A notification or event handler ran: its outcome changes no state.
                done = self.alerter.outcome(item, result)
                if done is None:
                    acked.append(rid)  # recorded already (a resend)
                else:
                    waiting[rid] = done
                continue
            if item is None:
                owner = self.topology().host_owner.get(result.host)
                if owner and owner != self.name:
                    rerouted[rid] = owner
                else:
                    log.warning("scheduler %s: result for unknown %s/%s dropped", self.name,
                                result.host, result.service or "(host)")
                    acked.append(rid)
                continue
            future = self._apply(items, item, result)
            if future is not None:
                waiting[rid] = future
        if waiting:
            await wait_all(self.clock, waiting.values(), DURABLE_WAIT)
        retry: list[str] = []
        for rid, future in waiting.items():
            (acked if future.done() and future.result() else retry).append(rid)
        return ResultAck(acked=acked, retry=retry, rerouted=rerouted)

    def _apply(self, items: dict[Key, CheckItem], item: CheckItem,
               result: CheckResult) -> asyncio.Future[bool] | None:
        """Run the state machine on one result and queue it for the data tier."""
        now_mono, wall = self.clock.monotonic(), self.clock.time()
        if not result.passive and result.job_id:
            self.handout.settle(result.job_id)
            if item.job_id == result.job_id:
                item.job_id = ""
        state = result.return_code
        st = item.state
        prev_state = st.state
        if item.state.is_host:
            state = host_state(state)
            if state == 1 and item.parents and all(
                    items.get((p, ""), item).state.state in (1, 2) for p in item.parents):
                state = 2
        # A result timed in the future (a sender's clock ahead, a bad passive time) would pin
        # the check there: no later result nor the stale sweep could move it.
        when = min(result.finished or wall, wall + self.max_future)
        if when != result.finished:
            result = result.model_copy(update={"finished": when,
                                               "started": min(result.started or when, when)})
        events, actions = self.alerter.judge(item, state, when, wall, result)
        for event in events:
            if event.kind == "state":
                log.info("%s/%s is %s %s (attempt %d/%d): %s", item.key[0],
                         item.key[1] or "(host)", item.state.name(), item.state.state_type,
                         item.state.attempt, item.state.max_attempts, result.output[:120])
        if st.state != prev_state:
            self._check_related(items, item, now_mono, wall)
        if item.active and not result.passive:
            interval = item.interval()
            if item.state.state_type == "SOFT" and item.state.problem:
                due = now_mono + interval  # a retry counts from the failure
            else:
                # Keep the cadence: one interval after the previous due time, not after the
                # result (which would stretch every cycle by the check's latency and runtime).
                due = max(item.next_due + interval, now_mono)
            self.reschedule(item, due)
        self.metrics.inc("results_total", help_text="Results taken.",
                         kind="passive" if result.passive else "active")
        self.results_total += 1
        if not result.passive:
            self.latencies.append(result.latency)
        future = self.outbox.add(result, item.state.row(), events)
        self.alerter.when_recorded(future, item, actions)
        return future

    def _check_related(self, items: dict[Key, CheckItem], item: CheckItem, now_mono: float,
                       wall: float) -> None:
        """On-demand checks after a state change (Nagios's reachability logic): a host
        that changed state has its child hosts checked at once (DOWN becomes UNREACHABLE
        behind it, or UP again); a host or service that went bad has its parents or its
        host checked at once, unless their last check is fresher than
        cached_host_check_horizon."""
        st = item.state
        horizon = self.alerter.settings.cached_host_check_horizon
        related: list[CheckItem] = []
        if st.is_host:
            related += [child for name in self.alerter.children.get(st.host, ())
                        if (child := items.get((name, ""))) is not None]
            if st.problem:
                related += [parent for name in item.parents
                            if (parent := items.get((name, ""))) is not None
                            and parent.state.last_check < wall - horizon]
        elif st.problem:
            host = items.get((st.host, ""))
            if host is not None and host.state.last_check < wall - horizon:
                related.append(host)
        for other in related:
            if other.active and not self.handout.running(other):
                self.reschedule(other, now_mono)

    # --- receivers ----------------------------------------------------------------------------

    async def take_inbox(self, inbox: SchedulerInbox) -> InboxAck:
        """Take what a receiver routed here: passive results and external commands."""
        if self.loading():
            return InboxAck(taken=[])  # the receiver keeps them and retries
        not_mine: list[str] = []
        invalid: dict[str, str] = {}
        ack = await self.take_results([r for r in inbox.results
                                       if (r.host, r.service) in self.items()])
        items = self.items()  # the part may have changed meanwhile
        for r in inbox.results:
            if (r.host, r.service) not in items:
                self._not_taken(items, r.result_id, r.host, r.service, not_mine, invalid)
        taken = list(ack.acked)
        futures: dict[str, asyncio.Future[bool]] = {}
        wall = self.clock.time()
        for cmd in inbox.commands:
            outcome = apply_command(cmd, items, wall)
            if outcome is None:
                if cmd.host:
                    self._not_taken(items, cmd.command_id, cmd.host, cmd.service, not_mine,
                                    invalid)
                else:
                    not_mine.append(cmd.command_id)  # a downtime id another scheduler holds
                continue
            for item in outcome.force:
                self.reschedule(item, self.clock.monotonic())
            actions = {item.key: self.alerter.after_events(item, outcome.events, wall)
                       for item in outcome.touched}
            future = self.outbox.add_writes([i.state.row() for i in outcome.touched],
                                            outcome.events)
            for item in outcome.touched:
                self.alerter.when_recorded(future, item, actions[item.key])
            futures[cmd.command_id] = future
        if futures:
            await wait_all(self.clock, futures.values(), DURABLE_WAIT)
        taken += [cid for cid, f in futures.items() if f.done() and f.result()]
        return InboxAck(taken=taken, not_mine=not_mine, invalid=invalid)

    @staticmethod
    def _not_taken(items: dict[Key, CheckItem], key: str, host: str, service: str,
                   not_mine: list[str], invalid: dict[str, str]) -> None:
        """Sort an item this scheduler did not take: another scheduler's (the receiver's
        topology differs from ours: it routes the item again, or holds it while its host has
        no scheduler), or one nobody will ever take (a service its host does not have)."""
        if (host, "") in items:
            invalid[key] = (f"service {service!r} is not configured on host {host!r}"
                            if service else f"host {host!r} takes no such command")
        else:
            not_mine.append(key)

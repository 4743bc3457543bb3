"""The scheduler daemon: holds one part, runs its timetable, hands checks to the pollers that
own them (long-poll), takes results back, re-queues orphans, and pushes to the data tier."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from shinha.clock import Every
from shinha.config.timeperiod import Timeperiod
from shinha.daemon.base import Daemon, DaemonContext
from shinha.errors import PeerError
from shinha.scheduler.alerter import Alerter
from shinha.scheduler.handout import Handout
from shinha.scheduler.http import SchedulerInterface
from shinha.scheduler.items import (
    CheckItem,
    Key,
    Timetable,
    build_items,
    initial_offset,
    period_allows,
)
from shinha.scheduler.outbox import Outbox
from shinha.scheduler.results import Results
from shinha.scheduler.state import PENDING
from shinha.wire import (
    DaemonRef,
    Dispatch,
    SchedulerOwns,
    SchedulerPart,
    StateAnswer,
    StateQuery,
    Topology,
)

log = logging.getLogger(__name__)

#: First checks: spread over at least this many seconds, at about this many per second.
INITIAL_SPREAD_MIN = 5.0
INITIAL_SPREAD_RATE = 200.0
#: Longest wait between two pushes of the outbox that the data tier refused.
RETRY_MAX = 0.5


class SchedulerDaemon(Daemon):
    """Runs the state machine of one part."""

    role = "scheduler"

    def __init__(self, ctx: DaemonContext) -> None:
        super().__init__(ctx)
        self.part: SchedulerPart | None = None
        self.items: dict[Key, CheckItem] = {}
        self.periods: dict[str, Timeperiod] = {}
        self.timetable = Timetable()
        self.outbox = Outbox(self.name, self.client)
        self.loaded = asyncio.Event()
        self.wakeup = asyncio.Event()
        #: When the timetable loop looks at the timetable next (monotonic).
        self.wake_at = float("inf")
        self.handout = Handout(self.name, self.clock, self.metrics,
                               reschedule=self.reschedule, topology=self._topology,
                               pollers=ctx.config.daemons.get("poller", {}),
                               stopping=self.stopping)
        self.alerter = Alerter(self.name, self.clock, self.metrics, outbox=self.outbox,
                               handout=self.handout, items=self._items)
        self.results = Results(self.name, self.clock, self.metrics, outbox=self.outbox,
                               handout=self.handout, items=self._items,
                               loading=self._loading, reschedule=self.reschedule,
                               topology=self._topology,
                               max_future=float(ctx.config.main.passive_result_max_future),
                               alerter=self.alerter)

    # --- routes and loops -------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        SchedulerInterface(self.secret, self.handout, self.results).add_routes(app)

    async def on_start(self) -> None:
        self.loops.start("timetable", self._timetable_loop)
        self.loops.start("orphans", self.handout.orphan_loop)
        self.loops.start("push", self._push_loop)
        self.loops.start("downtimes", self._downtime_loop)

    async def on_stop(self) -> None:
        # Pollers waiting in a pull get their (empty) answer now: nothing more is handed out.
        self.handout.release_pulls()
        # Flush what the data tier has not taken yet (the push loop runs meanwhile too), also
        # what requests in flight still bring, until the stop stage's deadline.
        delay = 0.05
        while len(self.outbox) or self.outbox.awaited() or self.requests_in_flight:
            if not len(self.outbox):
                await self.clock.sleep(0.01)  # a push in flight, or a request, brings more
                continue
            if await self.outbox.push(self._dataservers(), self.link.timeout, self.epoch):
                delay = 0.05
                continue
            if self.outbox.tier_gone():
                # Every data-server stops too (or is gone): nothing to wait for. What is not
                # stored was not acknowledged: its pollers and receivers send it again.
                left = self.outbox.give_up()
                log.info("scheduler %s: no data-server takes results now (stopping or not "
                         "listening): %d results left with their senders", self.name, left)
                return
            await self.clock.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    def drain_pending(self) -> list[str]:
        return [f"{len(self.outbox)} results not yet taken by the data tier"] \
            if len(self.outbox) else []

    @property
    def part_hash(self) -> str:
        return self.part.part_hash if self.part else ""

    @property
    def active(self) -> bool:
        return self.part is not None

    def owns(self) -> SchedulerOwns:
        problems = sum(1 for i in self.items.values() if i.state.problem)
        actions = sum(len(i.state.alert.pending) for i in self.items.values())
        flapping = sum(1 for i in self.items.values() if i.state.alert.is_flapping)
        pending = sum(1 for i in self.items.values() if i.state.state == PENDING)
        part = self.part
        return SchedulerOwns(
            part=part.part_id if part else None, hosts=len(part.hosts) if part else 0,
            services=len(part.services) if part else 0, checks=len(self.items),
            problems=problems, pending=pending, in_flight=len(self.handout.in_flight),
            ready=self.handout.queued(), outbox=len(self.outbox),
            states_loaded=self.loaded.is_set(), results_total=self.results.results_total,
            actions_pending=actions, actions_done=self.alerter.sent_total, flapping=flapping,
            **self.results.latency_stats(), pollers_seen=sorted(self.handout.pollers_seen))

    def _items(self) -> dict[Key, CheckItem]:
        return self.items

    def _loading(self) -> bool:
        """Whether the part's states are being loaded (no result is applied meanwhile)."""
        return self.part is not None and not self.loaded.is_set()

    def _topology(self) -> Topology:
        return self.topology

    # --- dispatch -----------------------------------------------------------------------------

    async def apply_dispatch(self, dispatch: Dispatch) -> bool:
        standins_before = set(self.topology.poller_standins)
        topology_changed = await super().apply_dispatch(dispatch)
        for dead in sorted(set(self.topology.poller_standins) - standins_before):
            # The arbiter declared this poller dead and a spare pulls its checks now: what
            # it held will never come back, re-queue it at once (not at its orphan deadline).
            self.handout.requeue_held_by(dead)
        part = dispatch.part
        if part is None and dispatch.part_hash:
            # The arbiter believes we hold this part already: nothing to take. If we do not
            # (our ping was older), our reply's part_hash says so and the part comes next.
            if dispatch.part_hash == self.part_hash and topology_changed and self.loaded.is_set():
                self.tasks.spawn(self._refresh_states(), "refresh-states")
            return topology_changed
        if part is None:
            if self.part is not None:
                self._drop_part()
                return True
            return topology_changed
        self.metrics.inc("parts_received_total", help_text="Dispatches that carried a whole "
                         "part (a part already held is sent as its hash alone).")
        if self.part is not None and part.part_hash == self.part.part_hash:
            # Idempotent: the same part is not reconfigured. The topology changed (a spare
            # held some work meanwhile?): take any newer state the data tier has.
            if topology_changed and self.loaded.is_set():
                self.tasks.spawn(self._refresh_states(), "refresh-states")
            return topology_changed
        self._take_part(part)
        return True

    def _drop_part(self) -> None:
        """Give the part back (the scheduler it stood in for is back)."""
        assert self.part is not None
        log.warning("scheduler %s: part %s released", self.name, self.part.part_id)
        self.part = None
        self.items = {}
        self.handout.reset()
        self.timetable = Timetable()
        self.loaded.clear()

    async def _refresh_states(self) -> None:
        """Take rows the data tier holds that are newer than ours (updated_at)."""
        try:
            answer = await self._query_states(sorted({key[0] for key in self.items}))
        except PeerError as exc:
            log.warning("scheduler %s: could not refresh states: %s", self.name, exc)
            return
        taken = 0
        for row in answer.states:
            item = self.items.get((row.host, row.service))
            if item is not None and row.updated_at > item.state.updated_at:
                item.state.resume(row)
                if row.downtimes:
                    self.alerter.with_downtimes.add(item.key)
                taken += 1
        if taken:
            log.info("scheduler %s: %d newer states taken from the data tier", self.name,
                     taken)
            self.alerter.resume(self.items)

    def _take_part(self, part: SchedulerPart) -> None:
        previous = self.items
        self.part = part
        self.periods = {p.timeperiod_name: p for p in part.timeperiods}
        self.items = build_items(part)
        self.alerter.load(part, self.items)
        kept = 0
        for key, item in self.items.items():
            old = previous.get(key)
            if old is not None:
                item.state = old.state
                item.state.max_attempts = max(1, item.state.max_attempts)
                kept += 1
        self.handout.reset()
        self.timetable = Timetable()
        self.loaded.clear()
        log.info("scheduler %s: part %s (%d hosts, %d services, hash %s), %d states kept",
                 self.name, part.part_id, len(part.hosts), len(part.services),
                 part.part_hash, kept)
        self.tasks.spawn(self._load_states(set(self.items) - set(previous)), "load-states")

    async def _load_states(self, fresh: set[Key]) -> None:
        """Resume from the data tier before the first check: no PENDING after a failover."""
        hosts = sorted({key[0] for key in fresh})
        loaded = 0
        delay = 0.2
        deadline = self.clock.monotonic() + max(self.link.data_timeout, 5)
        while hosts:
            try:
                answer = await self._query_states(hosts)
            except PeerError as exc:
                if self.clock.monotonic() > deadline:
                    log.error("scheduler %s: could not load states from the data tier (%s); "
                              "starting PENDING", self.name, exc)
                    break
                await self.clock.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            for row in answer.states:
                item = self.items.get((row.host, row.service))
                if item is not None and (row.host, row.service) in fresh:
                    item.state.resume(row)
                    loaded += 1
            break
        log.info("scheduler %s: %d states loaded from the data tier", self.name, loaded)
        self._schedule_all()
        self.alerter.with_downtimes = {k for k, i in self.items.items() if i.state.downtimes}
        self.alerter.resume(self.items)
        self.loaded.set()

    async def _query_states(self, hosts: list[str]) -> StateAnswer:
        servers = self._dataservers()
        if not servers:
            raise PeerError("dataserver", "no data-server in the topology")
        last: PeerError | None = None
        for server in servers:
            try:
                return await self.client.call(server, "POST", "/api/states",
                                              StateQuery(hosts=hosts), StateAnswer,
                                              self.link.data_timeout)
            except PeerError as exc:
                last = exc
        assert last is not None
        raise last

    def _schedule_all(self) -> None:
        now, wall = self.clock.monotonic(), self.clock.time()
        # First checks spread over a window that grows with the number of checks (about
        # 200 first checks a second), never longer than a check's own interval: results
        # come quickly on a small site, and a large one gets no thundering herd.
        active = sum(1 for item in self.items.values() if item.active)
        window = max(INITIAL_SPREAD_MIN, active / INITIAL_SPREAD_RATE)
        for item in self.items.values():
            if not item.active:
                continue
            interval = item.interval()
            if item.state.last_check > 0:
                # Resume the timetable: next check one interval after the last one.
                due = now + max(0.0, item.state.last_check + interval - wall)
                due = min(due, now + interval)
            else:
                due = now + initial_offset(item.key, min(interval, window))
            self.timetable.schedule(item, due)
        self.wakeup.set()

    def _dataservers(self) -> list[DaemonRef]:
        servers = list(self.topology.dataservers)
        return sorted(servers, key=lambda s: s.spare)

    # --- the timetable ----------------------------------------------------------------------

    async def _timetable_loop(self) -> None:
        while True:
            now = self.clock.monotonic()
            for item in self.timetable.pop_due(now, self.items):
                self._make_ready(item, now)
            nxt = self.timetable.next_due()
            timeout = 1.0 if nxt is None else min(1.0, max(0.0, nxt - self.clock.monotonic()))
            # Sleep until the next due check; a result only wakes the loop when it schedules
            # something sooner (a wake-up per result was a tenth of the scheduler's CPU).
            self.wake_at = self.clock.monotonic() + timeout
            self.wakeup.clear()
            timer = self.clock.call_at(self.wake_at, self.wakeup.set)
            try:
                await self.wakeup.wait()
            finally:
                timer.cancel()

    def _make_ready(self, item: CheckItem, now: float) -> None:
        if self.handout.running(item):
            return  # still running: its result reschedules it
        wall = self.clock.time()
        wait = period_allows(item, self.periods, wall)
        if wait != 0.0:
            if wait > 0:
                self.timetable.schedule(item, now + wait)
            return
        if self.alerter.dependencies.fails(item.key, "execution", wall, self.items):
            # A master is in a failure state: skip this run (Nagios), try at the next one.
            self.metrics.inc("checks_skipped_total", help_text="Checks not run because an "
                             "execution dependency failed.")
            self.timetable.schedule(item, now + item.interval())
            return
        self.handout.make_ready(item, now, wall)

    def reschedule(self, item: CheckItem, due: float) -> None:
        """Put `item` in the timetable at `due`; wake the timetable loop when that is before
        it would look again."""
        self.timetable.schedule(item, due)
        if due < self.wake_at:
            self.wakeup.set()

    async def _downtime_loop(self) -> None:
        """Start and end downtimes on time (their notifications and events)."""
        every = Every(self.clock, 1.0)
        while True:
            await every.tick()
            if self.loaded.is_set():
                self.alerter.sweep_downtimes(self.clock.time())

    async def _push_loop(self) -> None:
        delay = 0.05
        while True:
            await self.clock.wait(self.outbox.wakeup, 1.0)
            self.outbox.wakeup.clear()
            await self.clock.sleep(delay)  # let a batch gather
            ok = await self.outbox.push(self._dataservers(), self.link.data_timeout,
                                        self.epoch)
            # Refused: again soon, so that results flow within half a second of a new
            # database primary being published (a retry costs one request).
            delay = 0.05 if ok else min(max(delay * 2, 0.2), RETRY_MAX)
            if len(self.outbox):
                self.outbox.wakeup.set()

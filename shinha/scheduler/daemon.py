"""The scheduler daemon: holds one part, runs its timetable, hands checks to the pollers that
own them (long-poll), takes results back, re-queues orphans, and pushes to the data tier."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from aiohttp import web

from shinha.clock import Every, wait_all
from shinha.config.timeperiod import Timeperiod
from shinha.daemon.base import Daemon, DaemonContext
from shinha.errors import PeerError
from shinha.http.server import check_secret, json_response, read_model
from shinha.ids import new_id
from shinha.rendezvous import rendezvous
from shinha.scheduler.commands import apply_command
from shinha.scheduler.items import (
    CheckItem,
    Key,
    Timetable,
    build_items,
    initial_offset,
    period_allows,
    pull_reply,
)
from shinha.scheduler.outbox import Outbox
from shinha.scheduler.state import PENDING, host_state
from shinha.wire import (
    CheckResult,
    DaemonRef,
    Dispatch,
    InboxAck,
    PullRequest,
    ResultAck,
    ResultBatch,
    SchedulerInbox,
    SchedulerOwns,
    SchedulerPart,
    StateAnswer,
    StateQuery,
)

log = logging.getLogger(__name__)

#: Seconds past its timeout before a handed-out check counts as orphaned and is re-queued.
ORPHAN_GRACE = 5.0
#: How often the checks handed out are looked over for ones past their deadline.
ORPHAN_SWEEP = 1.0
#: First checks: spread over at least this many seconds, at about this many per second.
INITIAL_SPREAD_MIN = 5.0
INITIAL_SPREAD_RATE = 200.0
LATENCY_WINDOW = 20_000
#: How long a poller's result POST waits for the data tier before answering "retry".
DURABLE_WAIT = 10.0
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
        self.ready: dict[str, deque[CheckItem]] = {}
        self.ready_events: dict[str, asyncio.Event] = {}
        self.in_flight: dict[str, tuple[CheckItem, float]] = {}
        self.outbox = Outbox(self.name, self.client)
        self.loaded = asyncio.Event()
        self.wakeup = asyncio.Event()
        #: When the timetable loop looks at the timetable next (monotonic).
        self.wake_at = float("inf")
        self.pollers_seen: dict[str, float] = {}
        self.poller_instances: dict[str, str] = {}
        #: When each poller last pulled (monotonic): a covered poller must be silent here too.
        self.last_pull: dict[str, float] = {}
        self.started_mono = ctx.clock.monotonic()
        #: Pollers whose checks others cover now (their in-flight checks were re-queued).
        self.covered: set[str] = set()
        self._spread_cache: dict[tuple[tuple[tuple[str, int], ...], str],
                                 list[tuple[str, int]]] = {}
        #: Latency (start minus due) of the last active results, for /status and the bench.
        self.latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.results_total = 0
        #: job id -> (poller instance it was handed to)
        self.handed_to: dict[str, str] = {}
        self.max_future = float(ctx.config.main.passive_result_max_future)

    # --- routes and loops -------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/checks/pull", self._pull)
        app.router.add_post("/checks/results", self._results)
        app.router.add_post("/inbox", self._inbox)

    async def on_start(self) -> None:
        self.loops.start("timetable", self._timetable_loop)
        self.loops.start("orphans", self._orphan_loop)
        self.loops.start("push", self._push_loop)

    async def on_stop(self) -> None:
        # Pollers waiting in a pull get their (empty) answer now: nothing more is handed out.
        for event in self.ready_events.values():
            event.set()
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
        pending = sum(1 for i in self.items.values() if i.state.state == PENDING)
        part = self.part
        return SchedulerOwns(
            part=part.part_id if part else None, hosts=len(part.hosts) if part else 0,
            services=len(part.services) if part else 0, checks=len(self.items),
            problems=problems, pending=pending, in_flight=len(self.in_flight),
            ready=sum(len(q) for q in self.ready.values()), outbox=len(self.outbox),
            states_loaded=self.loaded.is_set(), results_total=self.results_total,
            **self._latency_stats(), pollers_seen=sorted(self.pollers_seen))

    def _latency_stats(self) -> dict[str, float]:
        if not self.latencies:
            return {}
        ordered = sorted(self.latencies)
        n = len(ordered)
        return {"latency_p50": round(ordered[n // 2], 4),
                "latency_p99": round(ordered[min(n - 1, int(n * 0.99))], 4),
                "latency_max": round(ordered[-1], 4), "latency_samples": n}

    # --- dispatch -----------------------------------------------------------------------------

    async def apply_dispatch(self, dispatch: Dispatch) -> bool:
        standins_before = set(self.topology.poller_standins)
        topology_changed = await super().apply_dispatch(dispatch)
        for dead in sorted(set(self.topology.poller_standins) - standins_before):
            # The arbiter declared this poller dead and a spare pulls its checks now: what
            # it held will never come back, re-queue it at once (not at its orphan deadline).
            self._requeue_held_by(dead)
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
        self.ready = {}
        self.in_flight = {}
        self.handed_to = {}
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
                taken += 1
        if taken:
            log.info("scheduler %s: %d newer states taken from the data tier", self.name,
                     taken)

    def _take_part(self, part: SchedulerPart) -> None:
        previous = self.items
        self.part = part
        self.periods = {p.timeperiod_name: p for p in part.timeperiods}
        self.items = build_items(part)
        kept = 0
        for key, item in self.items.items():
            old = previous.get(key)
            if old is not None:
                item.state = old.state
                item.state.max_attempts = max(1, item.state.max_attempts)
                kept += 1
        self.ready = {}
        self.in_flight = {}
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
        if item.job_id and item.job_id in self.in_flight:
            return  # still running: its result reschedules it
        wall = self.clock.time()
        wait = period_allows(item, self.periods, wall)
        if wait != 0.0:
            if wait > 0:
                self.timetable.schedule(item, now + wait)
            return
        item.scheduled_wall = wall - max(0.0, now - item.next_due)
        item.job_id = new_id()
        self.in_flight[item.job_id] = (item, 0.0)
        queue = self.ready.setdefault(item.poller, deque())
        queue.append(item)
        event = self.ready_events.get(item.poller)
        if event is not None:
            event.set()

    def _requeue_held_by(self, poller: str) -> None:
        """Re-queue every check handed to `poller` (any of its instances)."""
        instance = self.poller_instances.get(poller)
        if instance:
            self._orphan_instance(poller, instance)
        self.covered.add(poller)

    def _orphan_instance(self, poller: str, instance: str) -> None:
        """A poller restarted: what its previous instance held will never come back."""
        now = self.clock.monotonic()
        lost = [job_id for job_id, held_by in self.handed_to.items() if held_by == instance]
        for job_id in lost:
            self.handed_to.pop(job_id, None)
            entry = self.in_flight.pop(job_id, None)
            if entry is None:
                continue
            item = entry[0]
            item.job_id = ""
            self.metrics.inc("orphans_total", help_text="Checks handed out that never "
                             "came back and were re-queued.")
            self.timetable.schedule(item, now)
        if lost:
            log.warning("scheduler %s: %d checks held by poller %s (restarted, or silent and "
                        "covered by another) re-queued", self.name, len(lost), poller)
            self.wakeup.set()

    async def _orphan_loop(self) -> None:
        every = Every(self.clock, ORPHAN_SWEEP)
        while True:
            await every.tick()
            now = self.clock.monotonic()
            orphans = [(job_id, item) for job_id, (item, deadline) in self.in_flight.items()
                       if deadline and deadline < now]
            for job_id, item in orphans:
                del self.in_flight[job_id]
                self.handed_to.pop(job_id, None)
                item.job_id = ""
                self.metrics.inc("orphans_total", help_text="Checks handed out that never "
                                 "came back and were re-queued.")
                log.warning("scheduler %s: check %s/%s on poller %s never came back; "
                            "re-queued", self.name, item.key[0], item.key[1] or "(host)",
                            item.poller)
                self.timetable.schedule(item, now)
            if orphans:
                self.wakeup.set()

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

    # --- pollers ----------------------------------------------------------------------------

    async def _pull(self, request: web.Request) -> web.Response:
        check_secret(request, self.secret)
        pull = await read_model(request, PullRequest)
        self.pollers_seen[pull.poller] = self.clock.time()
        self.last_pull[pull.poller] = self.clock.monotonic()
        self.covered.discard(pull.poller)
        previous = self.poller_instances.get(pull.poller)
        if pull.instance and previous != pull.instance:
            self.poller_instances[pull.poller] = pull.instance
            if previous:
                self._orphan_instance(pull.poller, previous)
        jobs = self._take_jobs(pull)
        if not jobs and pull.wait > 0:
            event = self.ready_events.setdefault(pull.poller, asyncio.Event())
            event.clear()
            await self.clock.wait(event, pull.wait)
            jobs = self._take_jobs(pull)
        return web.Response(body=pull_reply(jobs), content_type="application/json")

    def _take_jobs(self, pull: PullRequest) -> list[str]:
        """The JSON of the jobs this pull takes."""
        if self.stopping.is_set():
            return []  # a pull in flight when the stop began: nothing more is handed out
        # A spare poller also takes the checks of the dead pollers it stands in for.
        owners = [pull.poller, *(dead for dead, spare in self.topology.poller_standins.items()
                                 if spare == pull.poller)]
        jobs: list[str] = []
        for owner in owners:
            queue = self.ready.get(owner)
            if queue:
                self._take_from(queue, pull, jobs)
        for owner in self._coverable(pull):
            queue = self.ready.get(owner)
            if queue:
                self._take_from(queue, pull, jobs, spread=pull.spread)
        return jobs

    def _coverable(self, pull: PullRequest) -> list[str]:
        """The downed pollers whose checks this puller may take: also silent from this
        scheduler's point of view (no double polling of a slow-but-alive poller), and not
        already replaced by a spare."""
        if not pull.covering:
            return []
        now = self.clock.monotonic()
        out = []
        for owner in pull.covering:
            if owner == pull.poller or owner in self.topology.poller_standins:
                continue
            last = self.last_pull.get(owner, self.started_mono)
            if now - last >= pull.silence:
                out.append(owner)
                if owner not in self.covered:
                    # What the silent poller was handed before it fell silent will not come
                    # back: re-queue it now rather than at its orphan deadline.
                    self._requeue_held_by(owner)
        return out

    def _take_from(self, queue: deque[CheckItem], pull: PullRequest,
                   jobs: list[str], spread: list[tuple[str, int]] | None = None) -> None:
        now = self.clock.monotonic()
        skipped: list[CheckItem] = []
        while queue and len(jobs) < pull.max_jobs:
            item = queue.popleft()
            if item.job_id not in self.in_flight:
                continue
            if item.poller_tag not in pull.tags or (
                    spread and rendezvous(f"{item.key[0]}\0{item.key[1]}",
                                          self._spread_for_tag(spread, item.poller_tag))
                    != pull.poller):
                skipped.append(item)
                continue
            job = item.job_json()
            self.in_flight[item.job_id] = (item, now + item.timeout + ORPHAN_GRACE)
            self.metrics.inc("checks_handed_total", help_text="Checks given to pollers, by the "
                             "poller that took them and the poller that owns them.",
                             poller=pull.poller, owner=item.poller)
            if pull.instance:
                self.handed_to[item.job_id] = pull.instance
            jobs.append(job)
        queue.extendleft(reversed(skipped))

    def _spread_for_tag(self, spread: list[tuple[str, int]], tag: str
                        ) -> list[tuple[str, int]]:
        """The pollers of a spread takeover that may run checks tagged `tag` (their
        poller_tags, from the configuration every daemon shares): a check is hashed among
        them only, else one hashed to a poller without its tag would not run at all."""
        key = (tuple(spread), tag)
        eligible = self._spread_cache.get(key)
        if eligible is None:
            pollers = self.config.daemons.get("poller", {})
            eligible = [(name, weight) for name, weight in spread
                        if tag in getattr(pollers.get(name), "poller_tags", ("None",))]
            if len(self._spread_cache) > 1024:
                self._spread_cache.clear()
            self._spread_cache[key] = eligible
        return eligible

    async def _results(self, request: web.Request) -> web.Response:
        check_secret(request, self.secret)
        batch = await read_model(request, ResultBatch)
        self.pollers_seen[batch.poller] = self.clock.time()
        ack = await self._take_results(batch.results)
        return json_response(ack)

    async def _take_results(self, results: list[CheckResult]) -> ResultAck:
        if self.part is not None and not self.loaded.is_set():
            # The part's states are not loaded yet: applying a result now would run the state
            # machine from PENDING and invent state changes. Ask for them again shortly.
            return ResultAck(acked=[r.result_id for r in results
                                    if self.outbox.is_durable(r.result_id)],
                             retry=[r.result_id for r in results
                                    if not self.outbox.is_durable(r.result_id)])
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
            item = self.items.get((result.host, result.service))
            if item is None:
                owner = self.topology.host_owner.get(result.host)
                if owner and owner != self.name:
                    rerouted[rid] = owner
                else:
                    log.warning("scheduler %s: result for unknown %s/%s dropped", self.name,
                                result.host, result.service or "(host)")
                    acked.append(rid)
                continue
            future = self._apply(item, result)
            if future is not None:
                waiting[rid] = future
        if waiting:
            await wait_all(self.clock, waiting.values(), DURABLE_WAIT)
        retry: list[str] = []
        for rid, future in waiting.items():
            (acked if future.done() and future.result() else retry).append(rid)
        return ResultAck(acked=acked, retry=retry, rerouted=rerouted)

    def _apply(self, item: CheckItem, result: CheckResult) -> asyncio.Future[bool] | None:
        """Run the state machine on one result and queue it for the data tier."""
        now_mono, wall = self.clock.monotonic(), self.clock.time()
        if not result.passive and result.job_id:
            self.in_flight.pop(result.job_id, None)
            self.handed_to.pop(result.job_id, None)
            if item.job_id == result.job_id:
                item.job_id = ""
        state = result.return_code
        if item.state.is_host:
            state = host_state(state)
            if state == 1 and item.parents and all(
                    self.items.get((p, ""), item).state.state in (1, 2) for p in item.parents):
                state = 2
        # A result timed in the future (a sender's clock ahead, a bad passive time) would pin
        # the check there: no later result nor the stale sweep could move it.
        when = min(result.finished or wall, wall + self.max_future)
        if when != result.finished:
            result = result.model_copy(update={"finished": when,
                                               "started": min(result.started or when, when)})
        events = item.state.apply(state, when, result.output,
                                  result.long_output, result.perfdata, result.result_id)
        for event in events:
            if event.kind == "state":
                log.info("%s/%s is %s %s (attempt %d/%d): %s", item.key[0],
                         item.key[1] or "(host)", item.state.name(), item.state.state_type,
                         item.state.attempt, item.state.max_attempts, result.output[:120])
        events += item.state.expire_downtimes(wall)
        if item.active and not result.passive:
            interval = item.interval()
            if item.state.state_type == "SOFT" and item.state.problem:
                due = now_mono + interval  # a retry counts from the failure
            else:
                # Keep the cadence: one interval after the previous due time, not after the
                # result (which would stretch every cycle by the check's latency and runtime).
                due = max(item.next_due + interval, now_mono)
            self.timetable.schedule(item, due)
            if due < self.wake_at:
                self.wakeup.set()  # due before the timetable loop would look again
        self.metrics.inc("results_total", help_text="Results taken.",
                         kind="passive" if result.passive else "active")
        self.results_total += 1
        if not result.passive:
            self.latencies.append(result.latency)
        return self.outbox.add(result, item.state.row(), events)

    # --- receivers ----------------------------------------------------------------------------

    async def _inbox(self, request: web.Request) -> web.Response:
        check_secret(request, self.secret)
        inbox = await read_model(request, SchedulerInbox)
        if self.part is not None and not self.loaded.is_set():
            return json_response(InboxAck(taken=[]))  # the receiver keeps them and retries
        not_mine: list[str] = []
        invalid: dict[str, str] = {}
        ack = await self._take_results([r for r in inbox.results
                                        if (r.host, r.service) in self.items])
        for r in inbox.results:
            if (r.host, r.service) not in self.items:
                self._not_taken(r.result_id, r.host, r.service, not_mine, invalid)
        taken = list(ack.acked)
        futures: dict[str, asyncio.Future[bool]] = {}
        wall = self.clock.time()
        for cmd in inbox.commands:
            outcome = apply_command(cmd, self.items, wall)
            if outcome is None:
                if cmd.host:
                    self._not_taken(cmd.command_id, cmd.host, cmd.service, not_mine, invalid)
                else:
                    not_mine.append(cmd.command_id)  # a downtime id another scheduler holds
                continue
            for item in outcome.force:
                self.timetable.schedule(item, self.clock.monotonic())
                self.wakeup.set()
            futures[cmd.command_id] = self.outbox.add_writes(
                [i.state.row() for i in outcome.touched], outcome.events)
        if futures:
            await wait_all(self.clock, futures.values(), DURABLE_WAIT)
        taken += [cid for cid, f in futures.items() if f.done() and f.result()]
        return json_response(InboxAck(taken=taken, not_mine=not_mine, invalid=invalid))

    def _not_taken(self, key: str, host: str, service: str, not_mine: list[str],
                   invalid: dict[str, str]) -> None:
        """Sort an item this scheduler did not take: another scheduler's (the receiver's
        topology differs from ours: it routes the item again, or holds it while its host has
        no scheduler), or one nobody will ever take (a service its host does not have)."""
        if (host, "") in self.items:
            invalid[key] = (f"service {service!r} is not configured on host {host!r}"
                            if service else f"host {host!r} takes no such command")
        else:
            not_mine.append(key)



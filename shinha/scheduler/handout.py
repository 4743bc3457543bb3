"""The hand-out of checks to pollers: a ready queue per poller, the checks handed out and
their deadlines, which poller instance holds what, a spare's or a covering poller's takeover,
and the re-queueing of checks that will never come back (orphans)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping

from shinha.clock import Clock, Every
from shinha.config.daemons import DaemonLink
from shinha.daemon.metrics import Metrics
from shinha.ids import new_id
from shinha.rendezvous import rendezvous
from shinha.scheduler.actions import ActionItem
from shinha.scheduler.items import CheckItem, pull_reply
from shinha.wire import PullRequest, Topology

log = logging.getLogger(__name__)

#: What a poller is handed: a check, or a notification or event handler.
Job = CheckItem | ActionItem

#: Seconds past its timeout before a handed-out check counts as orphaned and is re-queued.
ORPHAN_GRACE = 5.0
#: How often the checks handed out are looked over for ones past their deadline.
ORPHAN_SWEEP = 1.0


class Handout:
    """Hands the checks due to the pollers that pull them, and takes back the orphans."""

    def __init__(self, name: str, clock: Clock, metrics: Metrics, *,
                 reschedule: Callable[[CheckItem, float], None],
                 topology: Callable[[], Topology], pollers: Mapping[str, DaemonLink],
                 stopping: asyncio.Event) -> None:
        """`reschedule` puts a check back in the timetable (and wakes its loop when that is
        sooner); `topology` reads the topology of the last dispatch; `pollers` are the
        pollers of the configuration (their poller_tags)."""
        self.name = name
        self.clock = clock
        self.metrics = metrics
        self.reschedule = reschedule
        self.topology = topology
        self.pollers = pollers
        self.stopping = stopping
        self.ready: dict[str, deque[Job]] = {}
        self.ready_events: dict[str, asyncio.Event] = {}
        #: job id -> (check or action, deadline: monotonic, 0.0 while not handed out yet)
        self.in_flight: dict[str, tuple[Job, float]] = {}
        #: job id -> (poller instance it was handed to)
        self.handed_to: dict[str, str] = {}
        self.pollers_seen: dict[str, float] = {}
        self.poller_instances: dict[str, str] = {}
        #: When each poller last pulled (monotonic): a covered poller must be silent here too.
        self.last_pull: dict[str, float] = {}
        self.started_mono = clock.monotonic()
        #: Pollers whose checks others cover now (their in-flight checks were re-queued).
        self.covered: set[str] = set()
        self._spread_cache: dict[tuple[tuple[tuple[str, int], ...], str],
                                 list[tuple[str, int]]] = {}

    def reset(self) -> None:
        """Forget the checks queued and handed out (the part changed)."""
        self.ready = {}
        self.in_flight = {}
        self.handed_to = {}

    def queued(self) -> int:
        return sum(len(q) for q in self.ready.values())

    def running(self, item: CheckItem) -> bool:
        """Whether `item` is queued or handed out now (its result reschedules it)."""
        return bool(item.job_id) and item.job_id in self.in_flight

    def make_ready(self, item: CheckItem, now: float, wall: float) -> None:
        """Queue a check that is due for its poller, and wake that poller's pull."""
        item.scheduled_wall = wall - max(0.0, now - item.next_due)
        item.job_id = new_id()
        self._enqueue(item)

    def queue_action(self, action: ActionItem) -> None:
        """Queue a recorded notification or event handler for the poller of its check (a
        spare or a covering poller takes it as it takes that poller's checks)."""
        if action.job_id in self.in_flight:
            return
        self._enqueue(action)

    def _enqueue(self, job: Job) -> None:
        self.in_flight[job.job_id] = (job, 0.0)
        queue = self.ready.setdefault(job.poller, deque())
        # Notifications and event handlers go before the checks waiting: a storm of due
        # checks must not hold back the page that tells of it.
        if isinstance(job, ActionItem):
            queue.appendleft(job)
        else:
            queue.append(job)
        event = self.ready_events.get(job.poller)
        if event is not None:
            event.set()

    def settle(self, job_id: str) -> None:
        """A handed-out check came back."""
        self.in_flight.pop(job_id, None)
        self.handed_to.pop(job_id, None)

    def seen(self, poller: str) -> None:
        self.pollers_seen[poller] = self.clock.time()

    def release_pulls(self) -> None:
        """Answer the pulls waiting now (nothing more is handed out: the daemon stops)."""
        for event in self.ready_events.values():
            event.set()

    # --- pulls --------------------------------------------------------------------------------

    async def pull(self, pull: PullRequest) -> bytes:
        """The JSON answer of a poller's pull: the jobs it takes, after waiting up to
        `pull.wait` for one when none is ready."""
        self.seen(pull.poller)
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
        return pull_reply(jobs)

    def _take_jobs(self, pull: PullRequest) -> list[str]:
        """The JSON of the jobs this pull takes."""
        if self.stopping.is_set():
            return []  # a pull in flight when the stop began: nothing more is handed out
        # A spare poller also takes the checks of the dead pollers it stands in for.
        standins = self.topology().poller_standins
        owners = [pull.poller, *(dead for dead, spare in standins.items()
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
        standins = self.topology().poller_standins
        out = []
        for owner in pull.covering:
            if owner == pull.poller or owner in standins:
                continue
            last = self.last_pull.get(owner, self.started_mono)
            if now - last >= pull.silence:
                out.append(owner)
                if owner not in self.covered:
                    # What the silent poller was handed before it fell silent will not come
                    # back: re-queue it now rather than at its orphan deadline.
                    self.requeue_held_by(owner)
        return out

    def _take_from(self, queue: deque[Job], pull: PullRequest,
                   jobs: list[str], spread: list[tuple[str, int]] | None = None) -> None:
        now = self.clock.monotonic()
        skipped: list[Job] = []
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
            eligible = [(name, weight) for name, weight in spread
                        if tag in getattr(self.pollers.get(name), "poller_tags", ("None",))]
            if len(self._spread_cache) > 1024:
                self._spread_cache.clear()
            self._spread_cache[key] = eligible
        return eligible

    # --- orphans ------------------------------------------------------------------------------

    def requeue_held_by(self, poller: str) -> None:
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
            self._requeue(entry[0], now)
        if lost:
            log.warning("scheduler %s: %d checks held by poller %s (restarted, or silent and "
                        "covered by another) re-queued", self.name, len(lost), poller)

    async def orphan_loop(self) -> None:
        """Re-queue the checks handed out that are past their deadline."""
        every = Every(self.clock, ORPHAN_SWEEP)
        while True:
            await every.tick()
            self.sweep_orphans()

    def sweep_orphans(self) -> None:
        now = self.clock.monotonic()
        orphans = [(job_id, item) for job_id, (item, deadline) in self.in_flight.items()
                   if deadline and deadline < now]
        for job_id, item in orphans:
            del self.in_flight[job_id]
            self.handed_to.pop(job_id, None)
            log.warning("scheduler %s: check %s/%s on poller %s never came back; "
                        "re-queued", self.name, item.key[0], item.key[1] or "(host)",
                        item.poller)
            self._requeue(item, now)

    def _requeue(self, item: Job, now: float) -> None:
        """Put a check handed out that will never come back in the timetable again; queue
        an action again at once, with its id (at most one resend)."""
        if isinstance(item, ActionItem):
            self._enqueue(item)
            return
        item.job_id = ""
        self.metrics.inc("orphans_total", help_text="Checks handed out that never "
                         "came back and were re-queued.")
        self.reschedule(item, now)

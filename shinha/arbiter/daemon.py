"""The arbiter: owns the configuration, cuts it into parts, dispatches them, watches every
daemon, swaps in spares, and serves the cluster view (`GET /cluster`).

Leadership (docs/high-availability.md): the master heartbeats its spare every second; the
spare takes the lead after `max_check_attempts × check_interval` of the master's definition
without an authenticated heartbeat. Taking the lead means an epoch above every epoch seen,
persisted before anything is dispatched. A master that is passive (just started, or fenced)
takes the lead by reaching the spare with a heartbeat one epoch higher, which makes the spare
stand down; if it cannot reach the spare it leads only when no satellite has heard from
another arbiter at a higher epoch within that window.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from shinha.arbiter.assign import Assignment, assign
from shinha.arbiter.dbapi import DatabaseApi
from shinha.arbiter.http import ArbiterInterface
from shinha.arbiter.partition import Plan, cut
from shinha.arbiter.view import cluster_view
from shinha.clock import Every
from shinha.config.daemons import Arbiter, DaemonLink
from shinha.config.loader import Config
from shinha.config.staging import stage_off_loop
from shinha.daemon.base import Daemon, DaemonContext, daemon_ref
from shinha.daemon.peers import PeerLink
from shinha.db.options import Node, cluster_database
from shinha.errors import ConfigError, Fenced, PeerError, StaleEpoch
from shinha.http.auth import ping_proof
from shinha.wire import (
    ArbiterOwns,
    ClusterView,
    DatabaseReach,
    DatabaseReachQuery,
    Dispatch,
    DispatchReply,
    Fence,
    Heartbeat,
    HeartbeatReply,
    PingReply,
)
from shinha.wirejson import json_bytes

if TYPE_CHECKING:
    from shinha.arbiter.dbwatch import DatabaseWatch as DatabaseWatchT

log = logging.getLogger(__name__)
HEARTBEAT_INTERVAL = 1.0
#: How often a spare looks at how long the master has been silent.
SPARE_TICK = 0.25


class ArbiterDaemon(Daemon):
    """A master or spare arbiter."""

    role = "arbiter"

    def __init__(self, ctx: DaemonContext) -> None:
        super().__init__(ctx)
        self.links: dict[str, PeerLink] = {}
        self.arbiters: dict[str, PeerLink] = {}
        self.last_ping: dict[str, PingReply] = {}
        #: The nonce each daemon handed out last: our next ping proves the secret with it.
        self._ping_nonces: dict[str, str] = {}
        self.plan = Plan()
        self.assignment = Assignment()
        self.leading = False
        self.highest_seen = 0
        self.problems: list[str] = []
        self.last_heartbeat = 0.0
        self.master_config_hash = ""
        self.fenced_note = ""
        self.took_lead_at: float | None = None
        self.lease_until = 0.0
        self._watchers: list[asyncio.Task[None]] = []
        self._dispatching = asyncio.Lock()
        # One dispatch at a time per daemon, and when each last completed: a watcher and a
        # dispatch round may both find a daemon behind, and a ping answered before a
        # dispatch landed must not make it look behind again.
        self._dispatch_locks: dict[str, asyncio.Lock] = {}
        self._dispatched_at: dict[str, float] = {}
        #: daemon -> (our topology hash, the hash it reported) of its last dispatch.
        self._acked_topology: dict[str, tuple[str, str]] = {}
        self._build_links()
        self.database = cluster_database(ctx.config)
        self.dbwatch: DatabaseWatchT | None = None

    # --- peers --------------------------------------------------------------------------------

    def _daemons(self) -> list[DaemonLink]:
        return [d for role, daemons in self.config.daemons.items() if role != "arbiter"
                for d in daemons.values()]

    def _build_links(self) -> None:
        self.links = {d.name: PeerLink(daemon_ref(d), d.max_check_attempts,
                                       float(d.check_interval)) for d in self._daemons()}
        self.arbiters = {
            a.name: PeerLink(daemon_ref(a), a.max_check_attempts, float(a.check_interval))
            for a in self.config.daemons.get("arbiter", {}).values() if a.name != self.name}

    def peers(self) -> list[PeerLink]:
        return [*self.links.values(), *self.arbiters.values()]

    def definition(self, link: PeerLink) -> DaemonLink:
        return self.config.daemons[link.ref.role][link.name]

    def window(self, arbiter: str) -> float:
        """How long an arbiter may stay silent before it counts as gone: its own
        max_check_attempts × check_interval."""
        d = self.config.daemons.get("arbiter", {}).get(arbiter)
        d = d if isinstance(d, Arbiter) else self.link
        return float(d.max_check_attempts * d.check_interval)

    def _master(self) -> DaemonLink | None:
        return next((a for a in self.config.daemons.get("arbiter", {}).values()
                     if not a.spare), None)

    # --- life cycle -------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        ArbiterInterface(self.secret, self, DatabaseApi(self)).add_routes(app)

    @property
    def active(self) -> bool:
        return self.leading

    def leading_now(self) -> bool:
        """Leading, and not just back from a freeze longer than the window (a lease)."""
        return self.leading and self.clock.monotonic() <= self.lease_until

    def owns(self) -> ArbiterOwns:
        master = self._master()
        return ArbiterOwns(
            leading=self.leading, highest_epoch_seen=self.highest_seen,
            parts=sorted(self.plan.parts), hosts=len(self.config.hosts),
            services=len(self.config.services), standing_in=self.assignment.standing_in,
            degraded=self.assignment.degraded,
            config_mismatch=bool(self.master_config_hash
                                 and self.master_config_hash != self.config.config_hash),
            fenced=self.fenced_note, master=master.name if master else None)

    async def on_start(self) -> None:
        self.last_heartbeat = self.clock.monotonic()
        self.highest_seen = self.epoch
        self.fence = Fence(epoch=self.epoch, arbiter=self.name,
                           config_hash=self.config.config_hash)
        # Cut in a worker thread: on a large tree it takes seconds, and the server already
        # answers (a spare's heartbeats, pings).
        self._set_plan(await asyncio.to_thread(cut, self.config))
        self._start_watchers()
        self.loops.start("leadership", self._spare_loop if self.link.spare else self._master_loop)
        if self.database is not None:
            from shinha.arbiter.dbwatch import DatabaseWatch  # asyncmy only when configured

            self.dbwatch = DatabaseWatch(self.name, self.database, self.state, self.clock,
                                         self._confirm_database_down, self._publish)
            self.loops.start("database-watch", functools.partial(self.dbwatch.run,
                                                                 self.leading_now))

    async def _publish(self) -> None:
        """The database watch changed what it publishes: tell every daemon."""
        if self.leading_now():
            self._reassign()
            await self._dispatch_round()

    async def _confirm_database_down(self, node: Node) -> bool:
        """Whether no alive data-server reaches `node` either (one that does vetoes the
        failover; one that does not answer has no say)."""
        servers = [link for link in self.links.values() if link.ref.role == "dataserver"
                   and link.alive and link.ever_seen]

        async def ask(link: PeerLink) -> bool | None:
            try:
                reply = await self.client.call(link.ref, "POST", "/db/reach",
                                               DatabaseReachQuery(node=node.name),
                                               DatabaseReach,
                                               float(self.definition(link).timeout) + 3.0)
            except PeerError:
                return None
            if reply.reachable:
                log.warning("arbiter %s: data-server %s still reaches database %s", self.name,
                            link.name, node.name)
            return reply.reachable

        answers = await asyncio.gather(*(ask(link) for link in servers))
        return not any(a is True for a in answers)

    def _start_watchers(self) -> None:
        for task in self._watchers:
            task.cancel()
        self._watchers = [self.loops.start(f"watch-{link.name}",
                                           functools.partial(self._watch, link))
                          for link in self.links.values()]

    # --- leadership ---------------------------------------------------------------------------

    async def _master_loop(self) -> None:
        spares = [link for link in self.arbiters.values() if link.ref.spare]
        window = self.window(self.name)
        every = Every(self.clock, HEARTBEAT_INTERVAL, first=0.0)
        while True:
            await every.tick()
            now = self.clock.monotonic()
            if self.leading and now > self.lease_until:
                # This process was frozen (SIGSTOP, a stalled VM) past the window: a spare may
                # lead by now. Claim the lead again instead of dispatching from the past.
                frozen = now - self.lease_until + window
                self._stand_down(f"this arbiter was frozen for {frozen:.1f} s")
            if self.leading:
                self.lease_until = now + window
                for spare in spares:
                    await self._send_heartbeat(spare, self.epoch)
            else:
                await self._try_to_lead(spares)

    async def _try_to_lead(self, spares: list[PeerLink]) -> None:
        replies = await self._ping_all()  # learn the highest epoch around before claiming
        claim = max([self.epoch, self.highest_seen, *(r.epoch for r in replies)]) + 1
        reached = False
        for spare in spares:
            if await self._send_heartbeat(spare, claim):
                reached = True
        if reached:
            await self._take_lead(claim, "the spare stood down")
            return
        if self.highest_seen >= claim:
            # A spare refused the claim (409): it is reachable and leads at an epoch not
            # below it. Leading at `claim` anyway would make two leaders at one epoch; the
            # next round claims above it, through the spare.
            log.info("arbiter %s: epoch %d is held already (%d); claiming above it next round",
                     self.name, claim, self.highest_seen)
            return
        if spares:
            replies = await self._ping_all()
            claim = max([claim, *(r.epoch + 1 for r in replies)])
            fenced_by = [r for r in replies
                         if r.epoch >= claim - 1 and r.leader and r.leader != self.name
                         and r.leader_seen_ago is not None
                         and r.leader_seen_ago < self.window(r.leader)]
            if fenced_by:
                note = (f"{fenced_by[0].name} follows arbiter {fenced_by[0].leader} at epoch "
                        f"{fenced_by[0].epoch}; waiting to reach the spare")
                if note != self.fenced_note:
                    log.warning("arbiter %s stays passive: %s", self.name, note)
                    self.fenced_note = note
                return
            self.fenced_note = ""
            await self._take_lead(claim, "no spare reachable and no other arbiter leads")
            return
        replies = await self._ping_all()
        claim = max([claim, *(r.epoch + 1 for r in replies)])
        await self._take_lead(claim, "master arbiter")

    async def _send_heartbeat(self, spare: PeerLink, epoch: int) -> bool:
        """Heartbeat a spare at `epoch`; True when it took it (it does not lead, then)."""
        fence = Fence(epoch=epoch, arbiter=self.name, config_hash=self.config.config_hash)
        try:
            reply = await self.client.call(spare.ref, "POST", "/arbiter/heartbeat",
                                           Heartbeat(fence=fence), HeartbeatReply,
                                           float(self.definition_of_arbiter(spare).timeout))
        except StaleEpoch as exc:
            self.highest_seen = max(self.highest_seen, exc.epoch)
            self._stand_down(f"spare {spare.name} holds epoch {exc.epoch}")
            return False
        except PeerError as exc:
            spare.failure(str(exc), self.clock.monotonic())
            return False
        spare.success(self.clock.monotonic(), self.clock.time())
        spare.epoch = reply.epoch
        if reply.config_hash != self.config.config_hash and not spare.part_hash:
            log.warning("arbiter %s: spare %s runs config %s, this arbiter %s: copy the same "
                        "etc/ to every host (the same etc/ on every host)", self.name, spare.name,
                        reply.config_hash, self.config.config_hash)
        spare.part_hash = reply.config_hash
        return True

    def definition_of_arbiter(self, link: PeerLink) -> DaemonLink:
        return self.config.daemons["arbiter"][link.name]

    async def _spare_loop(self) -> None:
        master = self._master()
        window = self.window(master.name) if master else self.window(self.name)
        tick = self.clock.monotonic()
        every = Every(self.clock, SPARE_TICK)
        while True:
            await every.tick()
            now = self.clock.monotonic()
            if now - tick > window:
                # Frozen past the window: the master may be back. Give it a whole window to
                # reach us before we claim anything.
                self._stand_down(f"this arbiter was frozen for {now - tick:.1f} s")
                self.last_heartbeat = now
            tick = now
            if self.leading:
                self.lease_until = now + window
            silent = now - self.last_heartbeat
            if not self.leading and silent > window:
                replies = await self._ping_all()
                claim = max([self.epoch, self.highest_seen, *(r.epoch for r in replies)]) + 1
                await self._take_lead(claim, f"no heartbeat from the master for {silent:.1f} s "
                                      f"(window {window:.0f} s)")
                tick = self.clock.monotonic()  # the takeover's own awaits are not a freeze

    def take_heartbeat(self, beat: Heartbeat) -> HeartbeatReply:
        """The master's heartbeat: a spare stands down; raise Fenced for an older epoch."""
        if self.leading and beat.fence.epoch <= self.epoch:
            # We dispatch at this epoch: taking the lead back needs a higher one.
            raise Fenced(self.epoch, beat.fence.epoch)
        self.accept_epoch(beat.fence.epoch)
        self.highest_seen = max(self.highest_seen, beat.fence.epoch)
        self.last_heartbeat = self.clock.monotonic()
        master = self.arbiters.get(beat.fence.arbiter)
        if master is not None:
            master.success(self.last_heartbeat, self.clock.time())
            master.epoch = beat.fence.epoch
        if beat.fence.config_hash != self.master_config_hash:
            self.master_config_hash = beat.fence.config_hash
            if beat.fence.config_hash != self.config.config_hash:
                log.warning("arbiter %s: the master %s runs config %s, this spare %s: the etc/ "
                            "trees differ (copy the same etc/ to every host)", self.name,
                            beat.fence.arbiter, beat.fence.config_hash,
                            self.config.config_hash)
        self._stand_down(f"master {beat.fence.arbiter} is back at epoch {beat.fence.epoch}")
        return HeartbeatReply(epoch=self.epoch, leading=self.leading,
                              config_hash=self.config.config_hash)

    async def _take_lead(self, epoch: int, why: str) -> None:
        self.accept_epoch(epoch)
        self.highest_seen = max(self.highest_seen, epoch)
        # Learn who is alive and compute the assignment *before* leading: a watcher that
        # wakes meanwhile must not dispatch a previous (or empty) assignment.
        await self._ping_all()
        self.fence = Fence(epoch=self.epoch, arbiter=self.name,
                           config_hash=self.config.config_hash)
        self._reassign()
        self.leading = True
        self.took_lead_at = self.clock.monotonic()
        self.lease_until = self.took_lead_at + self.window(self.name)
        log.warning("arbiter %s takes the lead at epoch %d: %s", self.name, self.epoch, why)
        self.metrics.inc("leadership_taken_total", help_text="Times this arbiter took the lead.")
        # Not awaited here: the leadership loop must go on heartbeating, and a scheduler
        # taking a large part holds the dispatch for seconds (100,000 services: past the
        # spare's window, which then took the lead too).
        self.tasks.spawn(self._dispatch_round(), "dispatch-round")

    def _stand_down(self, why: str) -> None:
        if self.leading:
            self.leading = False
            self.assignment = Assignment()  # a later stint starts from what it sees then
            log.warning("arbiter %s stands down: %s", self.name, why)

    # --- watching and dispatching -------------------------------------------------------------

    def _set_plan(self, new: Plan) -> None:
        """Take a cut of the configuration (see `cut`); log what it could not place."""
        self.plan = new
        problems: list[str] = []
        if self.plan.unplaced_hosts:
            problems.append(f"{len(self.plan.unplaced_hosts)} hosts have no scheduler in "
                            "their realm")
        if self.plan.unowned_checks:
            problems.append(f"{len(self.plan.unowned_checks)} checks have no poller with "
                            "their poller_tag in their realm")
        for text in problems:
            if text not in self.problems:
                log.error("arbiter %s: %s", self.name, text)
        self.problems = problems

    def _reassign(self) -> None:
        alive = {name for name, link in self.links.items() if link.alive and link.ever_seen}
        before = self.assignment
        self.assignment = assign(self.config, self.plan, alive,
                                 self.dbwatch.topology() if self.dbwatch else None)
        for spare, replaced in self.assignment.standing_in.items():
            if before.standing_in.get(spare) != replaced:
                log.warning("arbiter %s: %s stands in for dead %s", self.name, spare, replaced)
        for spare, replaced in before.standing_in.items():
            if spare not in self.assignment.standing_in:
                log.warning("arbiter %s: %s released (%s is back)", self.name, spare, replaced)
        for name, why in self.assignment.degraded.items():
            if before.degraded.get(name) != why:
                log.error("arbiter %s: %s is %s", self.name, name, why)

    async def _watch(self, link: PeerLink) -> None:
        """Ping one daemon every check_interval; dispatch to it when it needs it."""
        while True:
            # Until a daemon has answered once (it may still be starting), ask every second.
            await self.clock.sleep(link.check_interval if link.ever_seen else 1.0)
            was_alive = link.alive and link.ever_seen
            reply = await self._ping_peer(link)
            now_alive = link.alive and link.ever_seen
            if not self.leading:
                continue
            if was_alive != now_alive:
                self._reassign()
                await self._dispatch_round()
            elif reply is not None and self.needs_dispatch(link):
                await self._dispatch_one(link)

    async def _ping_all(self) -> list[PingReply]:
        replies = await asyncio.gather(*(self._ping_peer(link) for link in self.links.values()))
        return [r for r in replies if r is not None]

    async def _ping_peer(self, link: PeerLink) -> PingReply | None:
        headers: dict[str, str] | None = None
        nonce = self._ping_nonces.get(link.name, "")
        if self.leading and nonce:
            headers = {"X-Shinha-Arbiter": self.name, "X-Shinha-Epoch": str(self.epoch),
                       "X-Shinha-Proof": ping_proof(self.secret, nonce, self.name,
                                                    self.epoch, link.name)}
        asked = self.clock.monotonic()
        try:
            reply = await self.client.call(link.ref, "GET", "/ping", None, PingReply,
                                           float(self.definition(link).timeout), headers)
        except PeerError as exc:
            link.failure(str(exc), self.clock.monotonic())
            return None
        link.success(self.clock.monotonic(), self.clock.time())
        self._ping_nonces[link.name] = reply.nonce
        if self.dbwatch is not None and reply.role == "dataserver":
            self.dbwatch.seen_epochs[link.name] = reply.db_epoch
        self.highest_seen = max(self.highest_seen, reply.epoch)
        if asked < self._dispatched_at.get(link.name, 0.0):
            return reply  # it answered before our dispatch reached it: what it holds is older
        link.epoch = reply.epoch
        link.part_hash = reply.part_hash
        self.last_ping[link.name] = reply
        return reply

    def needs_dispatch(self, link: PeerLink) -> bool:
        reply = self.last_ping.get(link.name)
        if reply is None or not link.alive:
            return False
        part = self.assignment.parts.get(link.name)
        expected_part = part.part_hash if part else ""
        # The topology hash the daemon reported when it took this assignment's topology: a
        # daemon of another version parses it into another model (a field it does not know),
        # and its own hash of it differs from ours for good — not a reason to dispatch again.
        acked = self._acked_topology.get(link.name)
        expected = (acked[1] if acked and acked[0] == self.assignment.topology_hash
                    else self.assignment.topology_hash)
        if link.ref.role == "receiver":
            expected_part = self.plan.catalog.catalog_hash
        return (reply.epoch != self.epoch or reply.config_hash != self.config.config_hash
                or reply.topology_hash != expected
                or (link.ref.role in ("scheduler", "receiver")
                    and reply.part_hash != expected_part))

    async def _dispatch_round(self) -> None:
        async with self._dispatching:
            await asyncio.gather(*(self._dispatch_one(link) for link in self.links.values()
                                   if link.alive and link.ever_seen
                                   and self.needs_dispatch(link)))

    async def _dispatch_one(self, link: PeerLink) -> None:
        lock = self._dispatch_locks.setdefault(link.name, asyncio.Lock())
        async with lock:
            # Another path may have brought it up to date while this one waited.
            if self.needs_dispatch(link):
                await self._send_dispatch(link)

    async def _send_dispatch(self, link: PeerLink) -> None:
        if not self.leading_now() or self.fence is None:
            return
        role = link.ref.role
        part = self.assignment.parts.get(link.name) if role == "scheduler" else None
        catalog = self.plan.catalog if role == "receiver" else None
        held = part.part_hash if part else catalog.catalog_hash if catalog else ""
        if held and link.part_hash == held:
            # It holds them already (a topology change, a new epoch): the hash alone. Parsing
            # an unchanged 100,000-service part again cost the scheduler seconds and memory.
            part = catalog = None
        # What this dispatch carries, as of now: the assignment may change while it is sent.
        topology, topology_hash = self.assignment.topology, self.assignment.topology_hash
        dispatch = Dispatch(fence=self.fence, topology=topology, part=part, catalog=catalog,
                            part_hash=held)
        # A large part is serialized in a worker thread, in slices: whole, on the loop, 100,000
        # services held it for a second (shinha.wirejson).
        body = (dispatch if part is None and catalog is None
                else await asyncio.to_thread(json_bytes, dispatch))
        try:
            reply = await self.client.call(link.ref, "POST", "/dispatch", body,
                                           DispatchReply,
                                           float(self.definition(link).data_timeout))
        except StaleEpoch as exc:
            self.highest_seen = max(self.highest_seen, exc.epoch)
            self._stand_down(f"{link.name} holds epoch {exc.epoch}, above ours ({self.epoch})")
            return
        except PeerError as exc:
            log.warning("arbiter %s: dispatch to %s failed: %s", self.name, link.name, exc)
            return
        previous = self.last_ping.get(link.name)
        if previous is not None:
            self.last_ping[link.name] = previous.model_copy(update={
                "epoch": reply.epoch, "config_hash": self.config.config_hash,
                "part_hash": reply.part_hash, "topology_hash": reply.topology_hash})
        link.epoch = reply.epoch
        link.part_hash = reply.part_hash
        # Filed under the topology sent: if the assignment changed meanwhile, needs_dispatch
        # sees that the daemon does not hold the new one and dispatches again.
        self._acked_topology[link.name] = (topology_hash, reply.topology_hash)
        self._dispatched_at[link.name] = self.clock.monotonic()
        self.metrics.inc("dispatches_sent_total", help_text="Dispatches sent.",
                         role=link.ref.role, reconfigured=str(reply.reconfigured).lower())
        log.info("arbiter %s: Dispatch OK to %s %s (epoch %d%s%s)", self.name, link.ref.role,
                 link.name, reply.epoch, f", part {reply.part_hash}" if reply.part_hash else "",
                 "" if reply.reconfigured else ", unchanged")

    async def reload(self) -> None:
        """SIGHUP: read, validate and cut the tree in a worker thread while this arbiter goes
        on heartbeating, then swap it in; on errors keep running the old one and say why."""
        try:
            staged = await stage_off_loop(self.config.main_file, cut, self.config.config_hash)
        except ConfigError as exc:
            for diag in exc.diagnostics[:20]:
                log.error("reload: %s", diag)
            log.error("arbiter %s: reload refused, %d errors; still running config %s",
                      self.name, len(exc.diagnostics), self.config.config_hash)
            return
        if staged is None:
            log.info("arbiter %s: reload: configuration unchanged", self.name)
            return
        # The old tree is freed in _swap, on the loop: 0.06 s for 100,000 services (their
        # objects share most values); in a thread it would be one call holding the GIL too.
        self._swap(staged.config, staged.prepared)
        if self.leading:
            await self._dispatch_round()

    def _swap(self, config: Config, new_plan: Plan) -> None:
        """Replace the configuration in one step (no await: nothing on the loop ever sees
        half of it); the links, the plan, the assignment and the fence follow."""
        old = self.config.config_hash
        old_links = self.links
        self.config = self.ctx.config = config
        self._build_links()
        for name, link in self.links.items():
            if name in old_links:
                prev = old_links[name]
                link.alive, link.attempts, link.ever_seen = prev.alive, prev.attempts, \
                    prev.ever_seen
        log.info("arbiter %s: reloaded configuration %s -> %s", self.name, old,
                 self.config.config_hash)
        self._set_plan(new_plan)
        self._start_watchers()
        if self.leading:
            self.fence = Fence(epoch=self.epoch, arbiter=self.name,
                               config_hash=self.config.config_hash)
            self._reassign()

    # --- the cluster view ---------------------------------------------------------------------

    def cluster(self) -> ClusterView:
        return cluster_view(self)


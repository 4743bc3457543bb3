"""The leading arbiter's watch over the MariaDB nodes: it alone decides a promotion.

Every `ha_check_interval` it probes every node of `ha_hosts`. After `ha_connect_retries`
failed checks of the primary in a row — and only once the alive data-servers confirm that they
cannot reach it either — it promotes the replica with the most advanced GTID position that has
applied its relay log, re-points the other replicas, writes the new **database epoch** into the
new primary (every write transaction checks it) and publishes primary and epoch in its
dispatch. Never on one failed check, never twice within `failover_min_interval`. A node that
comes back is made a replica of the primary (read_only first), unless it holds transactions
the primary lacks: then it is *diverged*, shown and never used.

A new leader (the spare arbiter, a restarted master) starts from what the nodes say: the
highest epoch in their fence rows, above the data-servers' epochs too, and the writable node
that holds it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from shinha.clock import Clock, Every
from shinha.daemon.state import StateDir
from shinha.db import admin
from shinha.db.admin import Promotion
from shinha.db.failover import AntiFlap, cluster_identity, diverged, replication_problem
from shinha.db.options import MariadbOptions, Node
from shinha.db.probe import probe_all
from shinha.errors import DatabaseError
from shinha.wire import DatabaseTopology, NodeStatus

log = logging.getLogger(__name__)

Confirm = Callable[[Node], Awaitable[bool]]


class DatabaseWatch:
    """Probes, decides, acts; `topology()` is what the arbiter dispatches."""

    def __init__(self, arbiter: str, options: MariadbOptions, state: StateDir, clock: Clock,
                 confirm: Confirm, publish: Callable[[], Awaitable[None]]) -> None:
        self.arbiter = arbiter
        self.options = options
        self.state = state
        self.clock = clock
        self.confirm = confirm
        self.publish = publish
        self.nodes = list(options.ha_hosts)
        self.by_name = {n.name: n for n in self.nodes}
        self.epoch = int(state.load("db_epoch", {"epoch": 0}).get("epoch", 0))
        self.primary: Node | None = None
        self.statuses: dict[str, NodeStatus] = {}
        self.failures = 0
        self.flap = AntiFlap(options.failover_min_interval)
        self.diverged: set[str] = set()
        #: The cluster (shinha_cluster marker) of the primary, as last seen (kept in the
        #: state): a new leader never makes a node of another cluster its primary.
        self.cluster_id: str | None = state.load("db_cluster", {}).get("cluster_id")
        self.unprotected = False
        #: Epochs the data-servers hold (from their pings): a new leader starts above them.
        self.seen_epochs: dict[str, int] = {}
        self._said: set[str] = set()
        #: Leading, and this stint's first round has begun: the primary may be published.
        self._publishing = False
        #: Consecutive failed checks of each node, counted while leading or not: a new
        #: leader fails a lost primary over as soon as the previous leader would have.
        self.down_streak: dict[str, int] = {}
        #: One actor on the nodes at a time: the loop's round, or an operator's switchover or
        #: promote (a round in the middle of a switchover would see the old primary read-only
        #: and make it writable again).
        self._acting = asyncio.Lock()

    # --- what the arbiter publishes and shows -------------------------------------------------

    def topology(self) -> DatabaseTopology:
        # Only what this stint as leader checked: a leader's first dispatch, sent before its
        # first round, would otherwise carry the primary of an earlier stint (outdated).
        primary = self.primary.name if self.primary and self._publishing else ""
        return DatabaseTopology(
            epoch=self.epoch, primary=primary,
            replicas=[n.name for n in self.nodes if n.name != primary
                      and n.name not in self.diverged and not self._foreign(n.name)],
            diverged=sorted(self.diverged), unprotected=self.unprotected)

    def _foreign(self, name: str) -> bool:
        """True for a node that answers with another cluster's marker, or none."""
        status = self.statuses.get(name)
        return (status is not None and status.reachable and self.cluster_id is not None
                and status.cluster_id != self.cluster_id)

    def view(self) -> list[NodeStatus]:
        return [self.statuses[n.name] for n in self.nodes if n.name in self.statuses]

    def _say(self, key: str, level: int, message: str, *args: object) -> None:
        """Log a condition once while it lasts (forget() lets it be said again)."""
        if key not in self._said:
            self._said.add(key)
            log.log(level, message, *args)

    def _forget(self, prefix: str) -> None:
        self._said = {k for k in self._said if not k.startswith(prefix)}

    # --- the loop -----------------------------------------------------------------------------

    async def run(self, leading: Callable[[], bool]) -> None:
        """Check every node each ha_check_interval (drift-corrected), act while leading."""
        every = Every(self.clock, self.options.ha_check_interval, first=0.0)
        was_leading = False
        while True:
            await every.tick()
            now_leading = leading()
            if now_leading and not was_leading:
                self.primary = None  # a new stint: learn the primary from the nodes
                self.failures = 0
            was_leading = self._publishing = now_leading
            await self.check(acting=now_leading)

    async def check(self, acting: bool) -> None:
        """One round: probe every node; when acting, keep a primary published."""
        async with self._acting:
            await self._check(acting)

    async def _check(self, acting: bool) -> None:
        # probe_all reads a writable node again after its replicas: a replica read a moment
        # later must not look ahead of its primary (it would read as diverged).
        self.statuses = {s.node: s for s in await probe_all(self.options)}
        for name, st in self.statuses.items():
            self.down_streak[name] = 0 if st.reachable else self.down_streak.get(name, 0) + 1
        self._learn_cluster()
        if not acting:
            return
        if self.primary is None:
            await self._bootstrap()
            return
        status = self.statuses[self.primary.name]
        if status.reachable:
            if self.failures:
                log.warning("database primary %s answers again", self.primary.name)
            self.failures = 0
            self._forget("primary-")
            await self._keep_primary_writable(status)
            await self._tend_replicas(status)
            self._track_semi_sync(status)
            return
        self.failures += 1
        self._say("primary-down", logging.WARNING, "database primary %s is down (%s)",
                  self.primary.name, status.error)
        if self.failures < self.options.ha_connect_retries:
            return
        await self._fail_over(self.primary)

    # --- bootstrap: learn (or choose) the primary --------------------------------------------

    def _learn_cluster(self) -> None:
        """Remember the primary's cluster: the published primary's marker while it answers,
        else the marker of the one writable node that replicas of its cluster follow."""
        found: set[str] = set()
        primary = self.statuses.get(self.primary.name) if self.primary else None
        if primary is not None and primary.reachable and primary.cluster_id:
            found.add(primary.cluster_id)
        else:
            for head in self.statuses.values():
                if head.reachable and head.read_only is False and not head.is_replica \
                        and head.cluster_id and any(
                            r.reachable and r.replicates_from == head.node
                            and r.cluster_id == head.cluster_id for r in self.statuses.values()):
                    found.add(head.cluster_id)
        if len(found) == 1 and (cluster := found.pop()) != self.cluster_id:
            self.cluster_id = cluster
            self.state.save("db_cluster", {"cluster_id": cluster})

    async def _bootstrap(self) -> None:
        answering = [s for s in self.statuses.values() if s.reachable]
        if not answering:
            self._say("boot-none", logging.ERROR, "no database node of %s answers; data "
                      "writes wait", ", ".join(n.name for n in self.nodes))
            return
        # Never a node of another cluster (listed in ha_hosts by mistake), even when it is
        # the only one that answers: its database is not ours to write.
        cluster = self.cluster_id or cluster_identity(answering)
        reachable = [s for s in answering if s.cluster_id is not None
                     and s.cluster_id == cluster]
        for s in answering:
            if s not in reachable:
                self._say_foreign(s, cluster)
        if not reachable:
            self._say("boot-none", logging.ERROR, "no database node of cluster %s answers; "
                      "data writes wait", cluster or "(none: run shinha db init)")
            return
        fences = [s.db_epoch or 0 for s in reachable]
        top = max([self.epoch, *fences, *self.seen_epochs.values()])
        # The node already primary: writable or holding the highest fence, not a replica.
        heads = [s for s in reachable if not s.is_replica]
        if not heads:
            lost = self._followed(reachable)
            if lost is not None:
                await self._adopt_lost(lost, max(1, top))
                return
            self._say("boot-heads", logging.ERROR, "every reachable database node is a "
                      "replica: none to write to (promote one: shinha db promote NODE)")
            return
        best = max(heads, key=lambda s: ((s.db_epoch or 0), not s.read_only,
                                         -self._rank(s.node)))
        for other in heads:
            if other is not best and diverged(best, other):
                self._mark_diverged(other, best)
        node = self.by_name[best.node]
        # Epoch 1 at the least: the data-servers start at 0 with the first of ha_hosts, and a
        # published primary must always be a newer epoch than that guess.
        epoch = max(1, top if (best.db_epoch or 0) == top else top + 1)
        try:
            if best.read_only is not False or (best.db_epoch or 0) != epoch:
                # Back from a restart read-only, or behind the epoch the data-servers hold:
                # (re)make it the primary of `epoch`, the other nodes its replicas.
                await admin.promote(self.options, node, epoch, [
                    self.by_name[s.node] for s in reachable if s.node != best.node
                    and s.node not in self.diverged])
        except DatabaseError as exc:
            self._say("boot-fail", logging.ERROR, "cannot make %s the database primary: %s",
                      node.name, exc)
            return
        self._forget("boot-")
        changed = self.primary != node or self.epoch != epoch
        self.primary, self.epoch = node, epoch
        self.state.save("db_epoch", {"epoch": epoch})
        if changed:
            log.warning("database primary is %s, database epoch %d", node.name, epoch)
            await self.publish()

    def _rank(self, name: str) -> int:
        return next((i for i, n in enumerate(self.nodes) if n.name == name), len(self.nodes))

    def _followed(self, reachable: list[NodeStatus]) -> Node | None:
        """The node of ha_hosts that the reachable replicas follow, when it does not answer:
        the primary a previous leader published, lost before this arbiter led."""
        sources = [s.replicates_from for s in reachable if s.is_replica and s.replicates_from]
        if not sources:
            return None
        name = max(sources, key=sources.count)
        status = self.statuses.get(name)
        if name not in self.by_name or status is None or status.reachable:
            return None
        return self.by_name[name]

    async def _adopt_lost(self, node: Node, epoch: int) -> None:
        """A new leader (the spare, a restarted master) while the primary is down: take it
        as the primary it was, so that this leader fails over as the previous one would
        have — after ha_connect_retries failed checks (this one counts) and once the
        data-servers confirm — instead of waiting for an operator to promote a replica."""
        self._forget("boot-")
        failures = max(1, self.down_streak.get(node.name, 1))
        self.primary, self.epoch, self.failures = node, epoch, failures
        self.state.save("db_epoch", {"epoch": epoch})
        self._say("primary-down", logging.WARNING, "database primary %s is down (%s); the "
                  "replicas follow it: %d failed checks of %d before a failover", node.name,
                  self.statuses[node.name].error, failures, self.options.ha_connect_retries)
        await self.publish()
        if failures >= self.options.ha_connect_retries:
            await self._fail_over(node)

    # --- failover -------------------------------------------------------------------------------

    async def _fail_over(self, old: Node) -> None:
        now = self.clock.monotonic()
        wait = self.flap.wait(now)
        if wait > 0:
            self._say("primary-flap", logging.WARNING, "database failover held back for "
                      "%.0f s more (failover_min_interval %.0f s after the last one)", wait,
                      self.options.failover_min_interval)
            return
        if not await self.confirm(old):
            self._say("primary-unconfirmed", logging.WARNING, "database primary %s does not "
                      "answer this arbiter, but a data-server still reaches it: no failover",
                      old.name)
            return
        epoch = max([self.epoch, *(s.db_epoch or 0 for s in self.view()),
                     *self.seen_epochs.values()]) + 1
        try:
            promotion = await admin.fail_over(self.options, old, epoch,
                                              cluster_id=self.cluster_id)
        except DatabaseError as exc:
            self._say("primary-nocandidate", logging.ERROR, "database primary %s is down and "
                      "no replica can be promoted yet: %s", old.name, exc)
            return
        candidate = promotion.primary
        for skipped in promotion.skipped:
            log.warning("database failover: %s", skipped)
        self.flap.record(now)
        self.primary, self.epoch, self.failures = candidate, epoch, 0
        self.state.save("db_epoch", {"epoch": epoch})
        self._forget("primary-")
        log.warning("promoted %s, database epoch %d (primary %s was down)", candidate.name,
                    epoch, old.name)
        await self.publish()

    def _next_epoch(self) -> int:
        return max([self.epoch, *(s.db_epoch or 0 for s in self.view()),
                    *self.seen_epochs.values()]) + 1

    async def switchover(self, node: Node, timeout: float = 60.0) -> Promotion:
        """A planned change of primary to replica `node`, nothing lost: what `shinha db
        switchover` asks the leading arbiter to do. Published before it returns."""
        async with self._acting:
            if self.primary is None:
                raise DatabaseError(node.name, "no primary is published yet: wait for the "
                                    "arbiter to find it (shinha status), or promote "
                                    "one (shinha db promote NODE)")
            epoch = self._next_epoch()
            promotion = await admin.switchover(self.options, node, epoch,
                                               old_primary=self.primary, timeout=timeout)
            old = self.primary
            self._now_primary(node, epoch)
            log.warning("switched the database primary over from %s to %s, database epoch %d",
                        old.name, node.name, epoch)
        await self.publish()
        return promotion

    async def promote(self, node: Node, timeout: float = 60.0) -> Promotion:
        """Promote `node` at the operator's word (the primary is lost, or none is known):
        what `shinha db promote NODE` asks the leading arbiter to do. No anti-flap and no
        data-server confirmation (the operator decided), but never while another node is
        a writable primary. Published before it returns."""
        async with self._acting:
            old = self.primary
            epoch = self._next_epoch()
            promotion = await admin.promote(self.options, node, epoch, timeout=timeout)
            self.diverged.discard(node.name)
            self._now_primary(node, epoch)
            log.warning("promoted %s at the operator's word, database epoch %d (primary was "
                        "%s)", node.name, epoch, old.name if old else "unknown")
        await self.publish()
        return promotion

    def _now_primary(self, node: Node, epoch: int) -> None:
        self.flap.record(self.clock.monotonic())
        self.primary, self.epoch, self.failures = node, epoch, 0
        self.state.save("db_epoch", {"epoch": epoch})
        self._forget("primary-")
        self._forget("boot-")

    # --- keeping the others in line ---------------------------------------------------------

    async def _keep_primary_writable(self, status: NodeStatus) -> None:
        """The primary restarted (it comes back read-only by its own configuration) before a
        failover was due: it is still the primary, make it writable again."""
        assert self.primary is not None
        if status.read_only and not status.is_replica:
            try:
                await admin.promote(self.options, self.primary, self.epoch, [])
            except DatabaseError as exc:
                self._say("primary-ro", logging.ERROR, "database primary %s is read-only and "
                          "cannot be made writable: %s", self.primary.name, exc)
                return
            log.warning("database primary %s was read-only (restarted?): writable again",
                        self.primary.name)

    async def _tend_replicas(self, primary: NodeStatus) -> None:
        assert self.primary is not None
        for node in self.nodes:
            if node.name == self.primary.name:
                continue
            status = self.statuses.get(node.name)
            if status is None or not status.reachable:
                refused = status is not None and status.error_kind in ("auth", "error")
                self._say(f"replica-down-{node.name}", logging.WARNING,
                          "database node %s %s (%s)", node.name,
                          "cannot be used" if refused else "is down",
                          status.error if status else "not checked yet")
                continue
            if f"replica-down-{node.name}" in self._said:
                log.warning("database node %s is back", node.name)
                self._forget(f"replica-down-{node.name}")
            if status.cluster_id is None or status.cluster_id != primary.cluster_id:
                self._say_foreign(status, primary.cluster_id)
                continue
            self._forget(f"foreign-{node.name}")
            if node.name in self.diverged:
                if not (status.is_replica and status.replicates_from == self.primary.name
                        and not diverged(primary, status)):
                    continue
                self.diverged.discard(node.name)  # resynced (shinha db rejoin)
                log.warning("database node %s is no longer diverged: a replica of %s again",
                            node.name, self.primary.name)
            if status.is_replica and status.replicates_from == self.primary.name:
                if not status.read_only:
                    await self._repoint(node)  # read_only first, whatever else it does
                elif problem := replication_problem(status):
                    if status.io_state == "No" and not status.sql_running and not (
                            status.last_io_errno or status.last_sql_errno):
                        # Stopped, not broken (a restart with skip_slave_start): start it.
                        await self._repoint(node)
                    else:
                        self._say(f"broken-{node.name}", logging.ERROR, "database node %s: "
                                  "%s", node.name, problem)
                else:
                    if f"broken-{node.name}" in self._said:
                        log.warning("database node %s replicates again", node.name)
                    self._forget(f"broken-{node.name}")
                continue
            if diverged(primary, status):
                self._mark_diverged(status, primary)
                continue
            await self._repoint(node)

    async def _repoint(self, node: Node) -> None:
        assert self.primary is not None
        try:
            await admin.repoint(self.options, node, self.primary)
        except DatabaseError as exc:
            self._say(f"repoint-{node.name}", logging.ERROR, "cannot make %s a replica of %s: "
                      "%s", node.name, self.primary.name, exc)
            return
        log.warning("database node %s is a replica of %s again", node.name, self.primary.name)

    def _say_foreign(self, status: NodeStatus, cluster: str | None) -> None:
        what = (f"belongs to another cluster ({status.cluster_id}; this one is {cluster})"
                if status.cluster_id else "holds no shinha_cluster marker (not initialised)")
        self._say(f"foreign-{status.node}", logging.ERROR, "database node %s %s: it is never "
                  "used; remove it from ha_hosts, or make it a member with shinha db init "
                  "--force (its data is replaced)", status.node, what)

    def _mark_diverged(self, status: NodeStatus, primary: NodeStatus) -> None:
        if status.node not in self.diverged:
            self.diverged.add(status.node)
            log.error("database node %s is diverged: it holds transactions the primary %s "
                      "lacks (%s vs %s); it is never used until resynced: shinha db "
                      "rejoin %s", status.node, primary.node, status.gtid_current_pos,
                      primary.gtid_current_pos, status.node)

    def _track_semi_sync(self, status: NodeStatus) -> None:
        if not self.options.semi_sync:
            return
        unprotected = status.semi_sync_master_status is False
        if unprotected != self.unprotected:
            self.unprotected = unprotected
            if unprotected:
                log.error("database primary %s: semi-sync fell back to asynchronous (no "
                          "replica answered in time): commits are unprotected", status.node)
            else:
                log.warning("database primary %s: semi-sync protects commits again",
                            status.node)

"""Failover decisions, as pure functions of node probes: no I/O, no clock of their own.

GTID positions are MariaDB's `domain-server_id-seqno` lists. Within one domain, seqnos grow
along the one history every node shares (gtid_strict_mode), so "more advanced" is compared
per domain by seqno; a node holding a GTID its primary lacks is *diverged* (split brain).
The candidate of a failover is, as in MaxScale's mariadbmon, the replica of the lost primary
that received the most; unlike it, we never take a less advanced one because the best has
not applied its relay log yet — we wait for it, since the others lack what it holds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from shinha.db.gtid import Gtid, GtidPosition, position
from shinha.db.options import Node
from shinha.db.probe import node_of
from shinha.wire import NodeStatus

__all__ = ["AntiFlap", "Election", "FailoverGate", "Gtid", "GtidPosition", "choose_candidate",
           "cluster_identity", "diverged", "elect", "errant", "next_epoch", "position",
           "primaries", "received", "role"]

#: MariaDB's "Got fatal error 1236 from master": the replica asked for a GTID the primary's
#: binlog does not hold (purged, or the replica diverged: the text says which it thinks).
ER_MASTER_FATAL_READING_BINLOG = 1236


def history(status: NodeStatus) -> GtidPosition:
    """What a node holds: its binlog, and what it applied as a replica (a clone whose binlog
    was reset holds the primary's history in gtid_slave_pos only)."""
    return position(status.gtid_binlog_pos).merged(position(status.gtid_slave_pos))


def received(status: NodeStatus) -> GtidPosition:
    """What a replica holds or has in its relay log, applied or not."""
    return history(status).merged(position(status.gtid_io_pos))


def errant(status: NodeStatus) -> bool:
    """True when a replica wrote transactions of its own (its own server_id in its binlog
    past what it replicated): a write that bypassed read_only, or a stale primary."""
    if not status.reachable or not status.is_replica or status.server_id is None:
        return False
    binlog, applied = position(status.gtid_binlog_pos), position(status.gtid_slave_pos)
    for d, g in binlog.items():
        if g.server_id == status.server_id and (d not in applied
                                                 or g.seqno > applied[d].seqno):
            return True
    return False


def diverged(primary_status: NodeStatus, node_status: NodeStatus) -> bool:
    """True when the node holds transactions the primary lacks (split brain).

    `primary_status` must have been read after `node_status` (probe_all does so): else a
    transaction the primary committed in between would seem the node's alone. Without an
    answer from the primary, only the node's own errant writes are evidence.
    """
    if node_status.node == primary_status.node or not node_status.reachable:
        return False
    if errant(node_status):
        return True
    if not primary_status.reachable:
        return False
    if history(node_status).missing_from(history(primary_status)):
        return True
    # A GTID with a lower seqno but another server_id is invisible in positions; MariaDB
    # itself says so (strict mode) when the replica asks the primary for it.
    return (node_status.replicates_from == primary_status.node
            and node_status.last_io_errno == ER_MASTER_FATAL_READING_BINLOG
            and "diverged" in node_status.last_io_error)


def cluster_identity(statuses: Sequence[NodeStatus], primary: Node | None = None) -> str | None:
    """The cluster the nodes belong to: the primary's marker when it answers, else the one
    most reachable nodes hold (ties: the first in ha_hosts order)."""
    if primary is not None:
        for s in statuses:
            if s.node == primary.name and s.reachable and s.cluster_id:
                return s.cluster_id
        replicas = [s.cluster_id for s in statuses if s.reachable and s.cluster_id
                    and s.replicates_from == primary.name]
        if replicas:
            return _most_common(replicas)
    ids = [s.cluster_id for s in statuses if s.reachable and s.cluster_id]
    return _most_common(ids) if ids else None


def _most_common(ids: list[str]) -> str:
    counts = Counter(ids)
    best = max(counts.values())
    return next(i for i in ids if counts[i] == best)


def primaries(statuses: Sequence[NodeStatus], cluster_id: str | None) -> list[NodeStatus]:
    """The writable nodes of the cluster that replicate from no one (more than one: split
    brain)."""
    return [s for s in statuses if s.reachable and s.read_only is False and not s.is_replica
            and s.cluster_id is not None and s.cluster_id == cluster_id]


Role = Literal["primary", "replica", "diverged", "standalone", "foreign", "uninitialised",
               "unreachable"]


def role(status: NodeStatus, statuses: Sequence[NodeStatus], cluster_id: str | None) -> Role:
    """What a node is in the cluster, as `shinha db status` shows it."""
    if not status.reachable:
        return "unreachable"
    if status.cluster_id is None:
        return "uninitialised"
    if status.cluster_id != cluster_id:
        return "foreign"
    heads = primaries(statuses, cluster_id)
    if status in heads:
        return "primary"
    if any(diverged(head, status) for head in heads) or errant(status):
        return "diverged"
    return "replica" if status.is_replica else "standalone"


def next_epoch(statuses: Sequence[NodeStatus]) -> int:
    """One past the highest database epoch any reachable node holds."""
    return max((s.db_epoch for s in statuses if s.reachable and s.db_epoch is not None),
               default=0) + 1


@dataclass(frozen=True, slots=True)
class Election:
    """The outcome of choosing a new primary: a candidate, or why there is none yet."""

    candidate: Node | None
    reason: str
    #: True when waiting may change the answer (the best replica is still applying its
    #: relay log); False when an operator must act.
    retry: bool = False


def elect(statuses: Sequence[NodeStatus], old_primary: Node,
          ha_hosts: Sequence[Node] | None = None, *,
          cluster_id: str | None = None) -> Election:
    """Choose the replica of `old_primary` to promote: the most advanced by GTID, once it
    has applied its relay log; never a diverged node nor one of another cluster. Ties go to
    the first in `ha_hosts` order (default: the order of `statuses`)."""
    if ha_hosts is not None:
        rank = {n.name: i for i, n in enumerate(ha_hosts)}
        statuses = sorted(statuses, key=lambda s: rank.get(s.node, len(rank)))
    cluster = cluster_id or cluster_identity(statuses, old_primary)
    if cluster is None:
        return Election(None, "no node answers with a shinha_cluster marker "
                        "(run: shinha db init)")
    old = next((s for s in statuses if s.node == old_primary.name), None)
    eligible: list[NodeStatus] = []
    rejected: list[str] = []
    for s in statuses:
        if s.node == old_primary.name:
            continue
        why = _ineligible(s, old_primary, cluster, old)
        if why:
            rejected.append(f"{s.node}: {why}")
        else:
            eligible.append(s)
    if not eligible:
        return Election(None, "no replica can be promoted: " + ("; ".join(rejected)
                                                                 or "ha_hosts lists no other"))
    # The most advanced: covers the others where it can, else the most seqnos; then order.
    best = eligible[0]
    for s in eligible[1:]:
        if _better(received(s), received(best)):
            best = s
    if not best.relay_log_applied:
        if best.last_sql_errno or not best.sql_running:
            return Election(None, f"{best.node} is the most advanced replica but its SQL "
                            f"thread is stopped ({_sql_error(best)}): fix it, or promote "
                            "another by hand knowing that what it lacks is lost")
        return Election(None, f"waiting for {best.node} to apply its relay log "
                        f"(received {received(best)}, applied {history(best)})", retry=True)
    behind = [s.node for s in eligible
              if s is not best and received(s).missing_from(received(best))]
    reason = f"{best.node} is the most advanced replica at {received(best)}"
    if behind:
        reason += " (" + ", ".join(behind) + " hold transactions it lacks: they will diverge)"
    return Election(node_of(best.node), reason)


def choose_candidate(statuses: Sequence[NodeStatus], old_primary: Node,
                     ha_hosts: Sequence[Node] | None = None, *,
                     cluster_id: str | None = None) -> Node | None:
    """The replica to promote in place of `old_primary`, or None (see `elect` for why)."""
    return elect(statuses, old_primary, ha_hosts, cluster_id=cluster_id).candidate


def _better(a: GtidPosition, b: GtidPosition) -> bool:
    if a.covers(b) != b.covers(a):
        return a.covers(b)
    return a.total() > b.total()


def _ineligible(s: NodeStatus, old_primary: Node, cluster: str,
                old: NodeStatus | None) -> str:
    if not s.reachable:
        return "unreachable" + (f" ({s.error})" if s.error else "")
    if s.cluster_id != cluster:
        return ("belongs to another cluster" if s.cluster_id
                else "holds no shinha_cluster marker (not initialised)")
    if not s.is_replica:
        return "not a replica"
    if s.replicates_from != old_primary.name:
        return f"replicates from {s.replicates_from}, not from {old_primary.name}"
    if errant(s) or (old is not None and diverged(old, s)):
        return "diverged (holds transactions the primary lacks)"
    return ""


def _sql_error(s: NodeStatus) -> str:
    return f"error {s.last_sql_errno}: {s.last_sql_error}" if s.last_sql_errno else "stopped"


def replication_problem(s: NodeStatus) -> str:
    """What is wrong with a replica's replication, in words an operator can act on; ''."""
    if not s.reachable or not s.is_replica:
        return ""
    if s.last_sql_errno == 1062:
        return (f"replication broken on {s.node}: duplicate key ({s.last_sql_error}); "
                "the replica holds rows the primary also wrote: resync it "
                f"(shinha db rejoin {s.node})")
    if s.last_sql_errno:
        return f"replication SQL thread on {s.node} stopped: {_sql_error(s)}"
    if s.last_io_errno == ER_MASTER_FATAL_READING_BINLOG:
        kind = ("the replica diverged" if "diverged" in s.last_io_error
                else "the primary no longer has the binlog it needs")
        return (f"replication from {s.replicates_from} broken on {s.node}: {kind} "
                f"({s.last_io_error}); resync it (shinha db rejoin {s.node})")
    if s.last_io_errno:
        return (f"{s.node} cannot read from {s.replicates_from}: error "
                f"{s.last_io_errno}: {s.last_io_error}")
    if not s.io_running or not s.sql_running:
        return (f"replication on {s.node} is stopped (IO {s.io_state or 'No'}, "
                f"SQL {'Yes' if s.sql_running else 'No'})")
    return ""


class AntiFlap:
    """No second failover within `min_interval` seconds of the previous one. `now` is a
    monotonic clock reading the caller passes in (loop.time(), Clock.monotonic())."""

    def __init__(self, min_interval: float) -> None:
        self.min_interval = min_interval
        self.last: float | None = None

    def wait(self, now: float) -> float:
        """Seconds left before a failover may happen (0: it may now)."""
        if self.last is None:
            return 0.0
        return max(0.0, self.last + self.min_interval - now)

    def record(self, now: float) -> None:
        """A failover (or switchover) happened at `now`."""
        self.last = now


class FailoverGate:
    """When the arbiter may fail over: after `retries` failed checks of the primary in a
    row, once the data-servers confirm, and not within the anti-flap period."""

    def __init__(self, retries: int, min_interval: float) -> None:
        self.retries = retries
        self.flap = AntiFlap(min_interval)
        self.failures = 0

    def observe(self, primary_reachable: bool) -> int:
        """Count one check of the primary; return the failed checks in a row."""
        self.failures = 0 if primary_reachable else self.failures + 1
        return self.failures

    def due(self, now: float, confirmed: bool) -> tuple[bool, str]:
        """Whether to fail over now, and why (or why not)."""
        if self.failures < self.retries:
            return False, f"{self.failures}/{self.retries} failed checks of the primary"
        if not confirmed:
            return False, "the data-servers have not confirmed the primary is unreachable"
        left = self.flap.wait(now)
        if left > 0:
            return False, (f"anti-flap: the previous failover was less than "
                           f"{self.flap.min_interval:g} s ago ({left:.1f} s left)")
        return True, f"{self.failures} failed checks of the primary, confirmed"

    def failed_over(self, now: float) -> None:
        """Record a failover at `now` (starts the anti-flap period, resets the count)."""
        self.flap.record(now)
        self.failures = 0

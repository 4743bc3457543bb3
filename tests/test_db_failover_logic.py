"""The failover decisions as pure functions: GTID positions, the candidate, divergence,
cluster identity, roles, epochs and the anti-flap gate. No database, no clock."""

from __future__ import annotations

from typing import Any

import pytest

from shinha.db.failover import (
    AntiFlap,
    FailoverGate,
    Gtid,
    GtidPosition,
    choose_candidate,
    cluster_identity,
    diverged,
    elect,
    errant,
    next_epoch,
    position,
    primaries,
    replication_problem,
    role,
)
from shinha.db.options import Node
from shinha.db.probe import replica_fields
from shinha.wire import NodeStatus

A, B, C, D = (Node(host=f"127.0.0.{i}", port=3306) for i in (2, 3, 4, 5))
CLUSTER = "c-1"


def primary(node: Node = A, pos: str = "0-1-10", **kw: Any) -> NodeStatus:
    values: dict[str, Any] = {"node": node.name, "reachable": True, "server_id": 1,
                              "read_only": False, "gtid_binlog_pos": pos,
                              "gtid_current_pos": pos, "cluster_id": CLUSTER, "db_epoch": 1}
    values.update(kw)
    return NodeStatus(**values)


def replica(node: Node, pos: str, server_id: int, io_pos: str | None = None,
            of: Node = A, **kw: Any) -> NodeStatus:
    values: dict[str, Any] = {
        "node": node.name, "reachable": True, "server_id": server_id, "read_only": True,
        "gtid_binlog_pos": pos, "gtid_slave_pos": pos, "gtid_current_pos": pos,
        "gtid_io_pos": io_pos if io_pos is not None else pos, "is_replica": True,
        "replicates_from": of.name, "io_running": True, "io_state": "Yes",
        "sql_running": True, "relay_log_applied": io_pos is None or io_pos == pos,
        "cluster_id": CLUSTER, "db_epoch": 1}
    values.update(kw)
    return NodeStatus(**values)


def down(node: Node) -> NodeStatus:
    return NodeStatus(node=node.name, reachable=False, error="refused",
                      error_kind="unreachable")


# --- GTID positions ------------------------------------------------------------------------------

def test_parse_and_print_multi_domain() -> None:
    pos = position(" 1-3-7,0-1-42\n")
    assert pos[0] == Gtid(0, 1, 42) and pos[1] == Gtid(1, 3, 7)
    assert str(pos) == "0-1-42,1-3-7"  # sorted by domain
    assert position("") == GtidPosition() and len(position(None)) == 0
    assert position("0-1-18446744073709551615")[0].seqno == 2**64 - 1


@pytest.mark.parametrize("text", ["0-1", "a-b-c", "0-1-2-3", "0-1-2,0-3-4",
                                  "0-4294967296-1", "0-1-18446744073709551616"])
def test_parse_refuses_bad_positions(text: str) -> None:
    with pytest.raises(ValueError):
        position(text)


def test_covers_is_per_domain_by_seqno() -> None:
    assert position("0-1-10,1-2-5").covers(position("0-1-9,1-2-5"))
    assert position("0-2-10").covers(position("0-1-10"))  # seqno only: divergence is apart
    assert not position("0-1-10").covers(position("0-1-10,1-2-1"))  # a domain it lacks
    assert not position("0-1-9,1-2-9").covers(position("0-1-10,1-2-1"))
    assert position("0-1-1").covers(GtidPosition())


def test_merged_and_missing_from() -> None:
    a, b = position("0-1-10,1-2-3"), position("0-1-8,1-2-5,2-3-1")
    assert str(a.merged(b)) == "0-1-10,1-2-5,2-3-1"
    assert a.missing_from(b) == [Gtid(0, 1, 10)]
    assert b.missing_from(a) == [Gtid(1, 2, 5), Gtid(2, 3, 1)]
    # Same seqno from another server: two histories.
    assert position("0-2-10").missing_from(position("0-1-10")) == [Gtid(0, 2, 10)]
    assert position("0-1-10").missing_from(position("0-1-10")) == []


# --- the candidate -------------------------------------------------------------------------------

def test_the_most_advanced_replica_is_chosen() -> None:
    statuses = [down(A), replica(B, "0-1-8", 2), replica(C, "0-1-10", 3), replica(D, "0-1-9", 4)]
    assert choose_candidate(statuses, A) == C


def test_received_counts_but_waits_for_the_relay_log() -> None:
    # C received 12 but applied 10: it is the best, and we wait for it rather than take B.
    statuses = [down(A), replica(B, "0-1-11", 2), replica(C, "0-1-10", 3, io_pos="0-1-12")]
    election = elect(statuses, A)
    assert election.candidate is None and election.retry
    assert "127.0.0.4:3306" in election.reason and "relay log" in election.reason
    applied = [down(A), replica(B, "0-1-11", 2), replica(C, "0-1-12", 3)]
    assert choose_candidate(applied, A) == C


def test_a_best_replica_with_a_stopped_sql_thread_is_no_candidate_and_says_so() -> None:
    statuses = [down(A), replica(B, "0-1-9", 2),
                replica(C, "0-1-10", 3, io_pos="0-1-12", sql_running=False,
                        last_sql_errno=1062, last_sql_error="Duplicate entry '7'")]
    election = elect(statuses, A)
    assert election.candidate is None and not election.retry
    assert "1062" in election.reason


def test_ties_go_to_ha_hosts_order() -> None:
    statuses = [down(A), replica(D, "0-1-10", 4), replica(C, "0-1-10", 3),
                replica(B, "0-1-10", 2)]
    assert choose_candidate(statuses, A) == D  # statuses order by default
    assert choose_candidate(statuses, A, [A, B, C, D]) == B
    assert choose_candidate(statuses, A, [A, C, B, D]) == C


def test_multi_domain_positions_that_do_not_cover_each_other() -> None:
    # B covers C: B wins although C's sum is larger elsewhere? No: covering wins first.
    b = replica(B, "0-1-10,1-1-5", 2)
    c = replica(C, "0-1-10,1-1-4", 3)
    assert choose_candidate([down(A), c, b], A) == B
    # Neither covers the other: the most transactions, and the reason warns of the other.
    d = replica(D, "0-1-12,1-1-1", 4)
    election = elect([down(A), b, d], A)
    assert election.candidate == B  # 15 seqnos against 13
    assert "127.0.0.5:3306" in election.reason and "diverge" in election.reason


def test_never_a_diverged_node() -> None:
    # C wrote a transaction of its own (server_id 3) past what it replicated.
    c = replica(C, "0-3-11", 3)
    c = c.model_copy(update={"gtid_slave_pos": "0-1-10"})
    assert errant(c)
    assert choose_candidate([down(A), replica(B, "0-1-9", 2), c], A) == B
    # The old primary answers (a partition): its view counts too.
    d = replica(D, "0-1-12", 4)
    assert diverged(primary(A, "0-1-11"), d)
    assert choose_candidate([primary(A, "0-1-11"), replica(B, "0-1-9", 2), d], A) == B


def test_never_a_node_of_another_cluster_nor_an_uninitialised_one() -> None:
    foreign = replica(C, "0-1-50", 3, cluster_id="other")
    blank = replica(D, "0-1-60", 4, cluster_id=None)
    statuses = [down(A), replica(B, "0-1-9", 2), foreign, blank]
    assert choose_candidate(statuses, A) == B
    election = elect([down(A), foreign, blank], A, cluster_id=CLUSTER)
    assert election.candidate is None
    assert "another cluster" in election.reason and "not initialised" in election.reason


def test_only_replicas_of_the_lost_primary_reachable_and_not_the_primary_itself() -> None:
    statuses = [down(A), down(B), replica(C, "0-1-9", 3, of=D),
                primary(D, "0-4-3", server_id=4, read_only=True)]
    election = elect(statuses, A, cluster_id=CLUSTER)
    assert election.candidate is None
    assert "unreachable" in election.reason and "replicates from 127.0.0.5:3306" in \
        election.reason and "not a replica" in election.reason
    assert choose_candidate([down(A)], A) is None


# --- divergence ----------------------------------------------------------------------------------

def test_diverged_by_position() -> None:
    head = primary(A, "0-1-10")
    assert not diverged(head, replica(B, "0-1-10", 2))
    assert not diverged(head, replica(B, "0-1-7", 2))  # behind is not diverged
    assert diverged(head, replica(B, "0-1-11", 2))  # ahead of its primary
    assert diverged(head, replica(B, "0-2-10", 2, gtid_slave_pos="0-1-9"))  # same seqno
    assert diverged(head, replica(B, "0-1-10,1-2-1", 2, gtid_slave_pos="0-1-10"))
    # A former primary, standalone, with a commit that never reached the new primary.
    old = primary(A, "0-1-11", read_only=True)
    assert diverged(primary(B, "0-1-10", server_id=2), old)
    assert not diverged(primary(B, "0-2-12", server_id=2), primary(A, "0-1-10"))


def test_diverged_as_mariadb_says_when_seqnos_cannot_tell() -> None:
    # The old primary's 0-1-11 against the new primary's 0-2-15: lower seqno, other history.
    head = primary(B, "0-2-15", server_id=2)
    old = replica(A, "0-1-11", 1, of=B, io_running=False, io_state="No",
                  last_io_errno=1236, last_io_error="Got fatal error 1236 from master: "
                  "'Error: connecting slave requested to start from GTID 0-1-11, which is "
                  "not in the master's binlog. ... the slave has diverged'")
    assert diverged(head, old)
    assert "diverged" in replication_problem(old)
    purged = old.model_copy(update={"last_io_error": "Got fatal error 1236: purged"})
    assert not diverged(head, purged)
    assert "no longer has the binlog" in replication_problem(purged)


def test_diverged_needs_evidence() -> None:
    # The primary does not answer: only the node's own errant writes count.
    assert not diverged(down(A), replica(B, "0-1-99", 2))
    assert diverged(down(A), replica(B, "0-2-11", 2, gtid_slave_pos="0-1-10"))
    assert not diverged(primary(A), down(B))
    assert not diverged(primary(A), primary(A))


def test_a_clone_whose_binlog_was_reset_is_no_errant() -> None:
    clone = replica(B, "", 2, gtid_slave_pos="0-1-10", gtid_io_pos="0-1-10")
    assert not errant(clone) and not diverged(primary(A, "0-1-10"), clone)
    promoted = primary(B, "0-2-12", server_id=2, gtid_slave_pos="0-1-10")
    assert not errant(promoted)  # not a replica any more


# --- cluster identity, roles, epochs -------------------------------------------------------------

def test_cluster_identity() -> None:
    foreign = primary(D, "0-9-3", server_id=9, cluster_id="other")
    statuses = [primary(A), replica(B, "0-1-10", 2), foreign]
    assert cluster_identity(statuses) == CLUSTER  # most nodes
    assert cluster_identity(statuses, D) == "other"  # the primary's own, when it answers
    assert cluster_identity([down(A), replica(B, "0-1-10", 2), foreign], A) == CLUSTER
    assert cluster_identity([foreign, primary(A)]) == "other"  # tie: ha_hosts order
    assert cluster_identity([down(A)]) is None


def test_roles() -> None:
    head = primary(A)
    statuses = [head, replica(B, "0-1-10", 2), replica(C, "0-1-11", 3),
                primary(D, "0-9-1", server_id=9, cluster_id="other"),
                down(Node(host="127.0.0.6", port=3306)),
                primary(Node(host="127.0.0.7", port=3306), cluster_id=None),
                primary(Node(host="127.0.0.8", port=3306), "0-1-9", read_only=True)]
    roles = [role(s, statuses, CLUSTER) for s in statuses]
    assert roles == ["primary", "replica", "diverged", "foreign", "unreachable",
                     "uninitialised", "standalone"]
    assert primaries(statuses, CLUSTER) == [head]


def test_next_epoch_is_above_every_reachable_fence() -> None:
    assert next_epoch([primary(A, db_epoch=3), replica(B, "0-1-10", 2, db_epoch=4),
                       down(C)]) == 5
    assert next_epoch([down(A), replica(B, "0-1-1", 2, db_epoch=None)]) == 1


def test_replica_fields_from_show_slave_status() -> None:
    assert replica_fields([]) == {"is_replica": False}
    row = {"Master_Host": "127.0.0.2", "Master_Port": 3306, "Slave_IO_Running": "Connecting",
           "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": None, "Last_IO_Errno": 2003,
           "Last_IO_Error": "can't connect", "Last_SQL_Errno": 0, "Last_SQL_Error": "",
           "Gtid_IO_Pos": "", "Master_Log_File": "b.1", "Relay_Master_Log_File": "b.1",
           "Read_Master_Log_Pos": 900, "Exec_Master_Log_Pos": 800}
    fields = replica_fields([row])
    assert fields["replicates_from"] == "127.0.0.2:3306" and not fields["io_running"]
    assert fields["io_state"] == "Connecting" and fields["relay_log_applied"] is False
    assert fields["seconds_behind"] is None and fields["last_io_errno"] == 2003
    fields = replica_fields([{**row, "Exec_Master_Log_Pos": 900}])
    assert fields["relay_log_applied"] is True


# --- anti-flap -----------------------------------------------------------------------------------

def test_anti_flap_on_the_clock_passed_in() -> None:
    flap = AntiFlap(60.0)
    assert flap.wait(1000.0) == 0
    flap.record(1000.0)
    assert flap.wait(1000.0) == 60.0 and flap.wait(1059.5) == pytest.approx(0.5)
    assert flap.wait(1060.0) == 0


def test_the_gate_needs_retries_confirmation_and_the_anti_flap_period() -> None:
    gate = FailoverGate(retries=3, min_interval=30.0)
    assert gate.observe(False) == 1
    assert gate.due(0.0, confirmed=True)[0] is False  # never on one failed check
    gate.observe(False)
    assert gate.observe(True) == 0  # the primary answered: start over
    for _ in range(3):
        gate.observe(False)
    due, why = gate.due(0.0, confirmed=False)
    assert not due and "confirmed" in why
    assert gate.due(0.0, confirmed=True)[0]
    gate.failed_over(0.0)
    for _ in range(3):
        gate.observe(False)
    due, why = gate.due(10.0, confirmed=True)
    assert not due and "anti-flap" in why and "20.0 s left" in why
    assert gate.due(30.0, confirmed=True)[0]

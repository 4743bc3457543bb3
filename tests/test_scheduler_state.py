"""The Nagios state machine of one check: SOFT/HARD, attempts, recoveries, acks, downtimes."""

from __future__ import annotations

import dataclasses

from shinha.scheduler.state import PENDING, ROW_FIELDS, CheckState, host_state
from shinha.wire import Downtime, PerfDatum, StateRow


def run(st: CheckState, *codes: int, start: float = 100.0) -> list[tuple[int, str, int]]:
    seen = []
    for n, code in enumerate(codes):
        st.apply(code, start + n, f"out {n}", "", [], f"r{n}")
        seen.append((st.state, st.state_type, st.attempt))
    return seen


def test_problem_goes_soft_then_hard_at_max_attempts() -> None:
    st = CheckState("h", "s", max_attempts=3)
    assert st.state == PENDING
    assert run(st, 0, 2, 2, 2, 2) == [
        (0, "HARD", 1), (2, "SOFT", 1), (2, "SOFT", 2), (2, "HARD", 3), (2, "HARD", 3)]


def test_max_attempts_one_is_hard_at_once() -> None:
    st = CheckState("h", "s", max_attempts=1)
    assert run(st, 0, 2) == [(0, "HARD", 1), (2, "HARD", 1)]


def test_soft_recovery_and_hard_recovery() -> None:
    st = CheckState("h", "s", max_attempts=3)
    assert run(st, 0, 1, 0) == [(0, "HARD", 1), (1, "SOFT", 1), (0, "HARD", 1)]
    st = CheckState("h", "s", max_attempts=2)
    assert run(st, 2, 2, 0)[-1] == (0, "HARD", 1)
    assert st.last_hard_state == 0


def test_state_change_within_a_soft_problem_keeps_counting() -> None:
    st = CheckState("h", "s", max_attempts=3)
    assert run(st, 0, 1, 2, 2) == [(0, "HARD", 1), (1, "SOFT", 1), (2, "SOFT", 2),
                                   (2, "HARD", 3)]


def test_events_on_changes_only() -> None:
    st = CheckState("h", "s", max_attempts=3)
    kinds = [len(st.apply(c, 1.0 + i, "x", "", [], f"r{i}")) for i, c in enumerate(
        [0, 0, 2, 2, 2, 2])]
    # first result, OK->SOFT, SOFT attempt 2 (no change), ->HARD, HARD again (no change)
    assert kinds == [1, 0, 1, 0, 1, 0]


def test_last_state_change_and_last_hard_state_change() -> None:
    st = CheckState("h", "s", max_attempts=2)
    st.apply(0, 10.0, "", "", [], "a")
    st.apply(2, 20.0, "", "", [], "b")
    st.apply(2, 30.0, "", "", [], "c")
    assert st.last_state_change == 20.0
    assert (st.last_hard_state, st.last_hard_state_change) == (2, 30.0)


def test_non_sticky_ack_ends_with_a_state_change_sticky_only_with_recovery() -> None:
    st = CheckState("h", "s", max_attempts=1)
    run(st, 2)
    assert st.acknowledge("alice", "looking", sticky=False, now=1.0)
    st.apply(1, 2.0, "", "", [], "x")
    assert not st.acknowledged
    st.acknowledge("bob", "sticky", sticky=True, now=3.0)
    st.apply(2, 4.0, "", "", [], "y")
    assert st.acknowledged and st.ack_author == "bob"
    events = st.apply(0, 5.0, "", "", [], "z")
    assert not st.acknowledged and any(e.kind == "unack" for e in events)


def test_ack_ignored_without_a_problem() -> None:
    st = CheckState("h", "s", max_attempts=1)
    run(st, 0)
    assert st.acknowledge("a", "b", sticky=False, now=1.0) == []
    assert not st.acknowledged


def test_downtimes_added_removed_expired() -> None:
    st = CheckState("h", "s", max_attempts=1)
    d = Downtime(downtime_id="d1", host="h", service="s", start=10, end=20)
    assert st.add_downtime(d, 5)
    assert st.add_downtime(d, 5) == []  # idempotent by id
    assert st.in_downtime(15) and not st.in_downtime(25)
    assert [e.kind for e in st.expire_downtimes(21)] == ["downtime_end"]
    assert not st.downtimes
    st.add_downtime(d, 5)
    assert [e.kind for e in st.remove_downtime("d1", 6)] == ["downtime_remove"]


def test_resume_from_a_stored_row_keeps_state_ack_and_attempts() -> None:
    row = StateRow(host="h", service="s", state=2, state_type="SOFT", attempt=2,
                   acknowledged=True, ack_author="alice", last_check=50.0)
    st = CheckState("h", "s", max_attempts=3)
    st.resume(row)
    assert (st.state, st.state_type, st.attempt, st.acknowledged) == (2, "SOFT", 2, True)
    st.apply(2, 60.0, "", "", [], "n")
    assert (st.state_type, st.attempt) == ("HARD", 3)
    assert st.row().model_dump() == st.row().model_dump()


def test_host_plugin_codes_map_like_nagios_4() -> None:
    assert [host_state(c) for c in range(4)] == [0, 0, 1, 1]


def test_job_json_is_the_check_job() -> None:
    """A scheduler hands out jobs as JSON made from a per-item prefix: it must be exactly the
    CheckJob, whatever the command line holds."""
    from shinha.scheduler.items import CheckItem
    from shinha.wire import CheckJob

    line = 'check_x -a "quoted \\\\ back" \u00e9t\u00e9 \'single\' $ { } \n tab\t'
    item = CheckItem(key=("h\u00f4te", "svc \"1\""), state=CheckState("h", "s", max_attempts=3),
                     command_line=line, module_type="tcp", timeout=12.5, timeout_state=3,
                     check_interval=60.0, retry_interval=30.0, active=True, passive=True,
                     poller="poller-1", poller_tag="dmz", check_period="")
    seen = set()
    for run_number in range(3):
        item.job_id = f"job{run_number:08d}"
        item.scheduled_wall = 1_700_000_000.123456 + run_number
        job = CheckJob.model_validate_json(item.job_json())
        assert job == CheckJob(job_id=item.job_id, host="h\u00f4te", service='svc "1"',
                               command_line=line, module_type="tcp", timeout=12.5,
                               timeout_state=3, due=item.scheduled_wall, poller_tag="dmz")
        seen.add(job.job_id)
    assert len(seen) == 3


def test_check_state_carries_every_field_of_a_state_row() -> None:
    """One declaration of the state row: CheckState has StateRow's fields, by the same names
    and in the same order, so that row() and resume() map them one to one."""
    fields = [f.name for f in dataclasses.fields(CheckState) if f.name != "max_attempts"]
    assert fields == list(StateRow.model_fields) == list(ROW_FIELDS)


def test_row_and_resume_carry_every_field() -> None:
    stored = StateRow(host="h", service="s", state=2, state_type="SOFT", attempt=2,
                      last_check=90.0, last_state_change=80.0, last_hard_state=1,
                      last_hard_state_change=70.0, output="o", long_output="lo",
                      perfdata=[PerfDatum(label="t", value=1.0)], acknowledged=True,
                      ack_author="a", ack_comment="c", ack_sticky=True,
                      downtimes=[Downtime(downtime_id="d", host="h", service="s", start=1.0,
                                          end=2.0)],
                      last_result_id="r", updated_at=95.0)
    # Every field differs from its default: a field row() or resume() left out shows.
    assert all(getattr(stored, n) != f.default for n, f in StateRow.model_fields.items()
               if n != "host")
    st = CheckState("h", "s", max_attempts=3)
    st.resume(stored)
    assert st.row() == stored
    assert st.perfdata is not stored.perfdata and st.downtimes is not stored.downtimes

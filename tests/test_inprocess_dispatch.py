"""Dispatch, in-process on a manual clock: an arbiter, a scheduler, a data-server and a poller.

- A scheduler that holds its part is sent the part's hash alone when only the topology
  changes: it keeps the part it has (it parsed a 100,000-service part again before, seconds
  and tens of MiB each time).
- A dispatch answered after the assignment changed is filed under the topology it carried:
  the daemon is dispatched the new one next, instead of being taken as up to date.
- A daemon that starts a moment after the arbiter is not declared dead by the pings the
  arbiter sends back to back while it claims the lead.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tests.inprocess import InProcess, Tree, until

ARB, SCHED, DS, POLL = "arbiter-1", "scheduler-1", "dataserver-1", "poller-1"
OBJECTS = """
define command {
  command_name ok
  command_line /bin/true
}
define host {
  host_name h1
  address 127.0.0.1
  check_command ok
  check_interval 60
}
"""


def tree(tmp_path: Path) -> Tree:
    t = Tree(tmp_path / "etc", OBJECTS, main="interval_length=1\n")
    t.add("arbiter", ARB, check_interval=1, max_check_attempts=3, timeout=2)
    t.add("scheduler", SCHED, check_interval=1, max_check_attempts=3, timeout=2)
    t.add("dataserver", DS, check_interval=1, max_check_attempts=3, timeout=2)
    t.add("poller", POLL, check_interval=1, max_check_attempts=3, timeout=2, min_workers=1,
          max_workers=1)
    return t


def in_sync(c: InProcess, *names: str) -> bool:
    arbiter = c.arbiter(ARB)
    return arbiter.leading and all(
        n in arbiter.last_ping and arbiter.links[n].alive and arbiter.links[n].epoch
        == arbiter.epoch and not arbiter.needs_dispatch(arbiter.links[n]) for n in names)


def test_a_topology_change_sends_the_part_hash_alone(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "shinha.scheduler.daemon")

    async def go() -> None:
        c = InProcess(tree(tmp_path))
        try:
            await c.start(DS, SCHED, ARB)
            await c.clock.run_until(lambda: in_sync(c, SCHED, DS), 30, "scheduler dispatched")
            sched = c.scheduler(SCHED)
            part = sched.part
            assert part is not None and sched.topology.pollers == []
            takes = [r for r in caplog.records if " part " in r.getMessage()]
            assert len(takes) == 1
            assert await c.metric(SCHED, "shinha_parts_received_total") == 1
            # A poller comes up: a new topology for everyone, the same part.
            await c.start(POLL)
            await c.clock.run_until(lambda: [p.name for p in sched.topology.pollers] == [POLL]
                                    and in_sync(c, SCHED, POLL), 30, "the new topology")
            assert sched.part is part
            assert await c.metric(SCHED, "shinha_parts_received_total") == 1  # not sent again
            assert [r for r in caplog.records if " part " in r.getMessage()] == takes
            # A scheduler that does not hold the hash it is sent (restarted since its last
            # ping) answers with its own, and is sent the whole part.
            await c.stop(SCHED)
            await c.start(SCHED)
            await c.clock.run_until(lambda: c.scheduler(SCHED).part is not None
                                    and in_sync(c, SCHED), 30, "the part sent again")
            restarted = c.scheduler(SCHED).part
            assert restarted is not None and restarted.part_hash == part.part_hash
        finally:
            await c.stop_all()

    asyncio.run(go())


def test_a_dispatch_answered_after_the_assignment_changed_is_not_taken_for_the_new_one(
        tmp_path: Path) -> None:
    async def go() -> None:
        c = InProcess(tree(tmp_path))
        try:
            await c.start(DS, SCHED, ARB)
            await c.clock.run_until(lambda: in_sync(c, SCHED, DS), 30, "scheduler dispatched")
            arbiter, sched = c.arbiter(ARB), c.scheduler(SCHED)
            await c.start(POLL)
            link = arbiter.links[POLL]
            link.success(c.clock.monotonic(), c.clock.time())  # as its first ping would
            # A dispatch leaves with the topology of now; the poller joins the assignment
            # while it is on its way.
            sending = asyncio.create_task(arbiter._send_dispatch(arbiter.links[SCHED]))
            await asyncio.sleep(0)
            arbiter._reassign()
            await sending
            assert [p.name for p in sched.topology.pollers] == []  # it got the older one
            assert arbiter.needs_dispatch(arbiter.links[SCHED])
            await c.clock.run_until(lambda: [p.name for p in sched.topology.pollers] == [POLL],
                                    30, "the new topology dispatched")
        finally:
            await c.stop_all()

    asyncio.run(go())


def test_a_satellite_starting_after_the_arbiter_is_not_declared_dead_at_once(
        tmp_path: Path) -> None:
    async def go() -> None:
        c = InProcess(tree(tmp_path))
        try:
            await c.start(ARB)
            await c.clock.run_for(0)  # the first round: the arbiter claims the lead
            arbiter = c.arbiter(ARB)
            await until(lambda: arbiter.leading, "the arbiter to lead")
            link = arbiter.links[SCHED]
            assert link.alive and link.attempts <= 1, (link.alive, link.attempts)
            # Not listening for a whole check, then up: never declared dead on the way.
            await c.clock.run_for(1.0)
            assert link.alive
            await c.start(DS, SCHED)
            await c.clock.run_until(lambda: in_sync(c, SCHED), 30, "scheduler dispatched")
            assert link.alive and link.attempts == 0
        finally:
            await c.stop_all()

    asyncio.run(go())

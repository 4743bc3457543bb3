"""Arbiter leadership, in-process on a manual clock: a master and a spare arbiter (and a
receiver as the satellite that learns the epochs, or none).

- The master leads at once (it reaches the spare with a heartbeat one epoch higher); the
  spare stays idle while the heartbeats flow.
- The master stops: the spare leads once its window (max_check_attempts × check_interval of
  the master's definition) has passed without a heartbeat — within one spare tick after it,
  never before — at a higher epoch, and dispatches it.
- The master comes back (a new process, its epoch on disk): it is passive, learns the
  current epoch and takes the lead back through the spare one epoch higher; the spare stands
  down. Without a satellite to learn the epoch from, its first claim is refused by the
  leading spare and it claims one higher at its next round.
- A master whose loop stalls past its window (a freeze) stops dispatching when its lease
  runs out, the spare leads, and the master, resumed, stands down and takes the lead back
  through the spare.
- Never do both arbiters lead (hold a valid lease) at the same clock time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from shinha.arbiter.daemon import HEARTBEAT_INTERVAL, SPARE_TICK, ArbiterDaemon
from tests.inprocess import InProcess, Tree, run_watching, until

MASTER, SPARE, RECV = "arbiter-master", "arbiter-spare", "receiver-1"
CHECK_INTERVAL, ATTEMPTS = 1, 3
WINDOW = float(CHECK_INTERVAL * ATTEMPTS)


@asynccontextmanager
async def arbiters(tmp_path: Path, satellite: bool) -> AsyncIterator[InProcess]:
    tree = Tree(tmp_path / "etc")
    tree.add("arbiter", MASTER, check_interval=CHECK_INTERVAL, max_check_attempts=ATTEMPTS,
             timeout=2)
    tree.add("arbiter", SPARE, spare=1, check_interval=CHECK_INTERVAL,
             max_check_attempts=ATTEMPTS, timeout=2)
    if satellite:
        tree.add("receiver", RECV, check_interval=CHECK_INTERVAL, timeout=2)
    c = InProcess(tree)
    try:
        if satellite:
            await c.start(RECV)
        await c.start(SPARE, MASTER)
        yield c
    finally:
        await c.stop_all()


def one_leader(c: InProcess) -> Callable[[], None]:
    """The invariant: at no clock time do two arbiters hold a valid lease."""
    def check() -> None:
        leading = [n for n, d in c.daemons.items()
                   if isinstance(d, ArbiterDaemon) and d.leading_now()]
        assert len(leading) <= 1, f"two leaders at {c.clock.monotonic()}: {leading}"
    return check


async def satellite_at(c: InProcess, epoch: int, leader: str) -> None:
    """The receiver took the leader's dispatch (a task of the arbiter's: real I/O)."""
    recv = c.daemons[RECV]
    await until(lambda: (recv.epoch, recv.leader) == (epoch, leader),
                f"{RECV} at epoch {epoch} from {leader}")


def test_the_spare_leads_after_the_window_and_the_master_takes_it_back(
        tmp_path: Path) -> None:
    async def go() -> None:
        async with arbiters(tmp_path, satellite=True) as c:
            clock, check = c.clock, one_leader(c)
            master, spare = c.arbiter(MASTER), c.arbiter(SPARE)
            await clock.run_for(0)  # the master's first round
            assert master.leading and master.epoch == 1 and master.took_lead_at == clock.monotonic()
            assert not spare.leading and spare.epoch == 1
            await satellite_at(c, 1, MASTER)

            # Heartbeats flow: the spare stays idle, never more than a period without one.
            def idle() -> None:
                check()
                assert not spare.leading and master.leading_now()
                assert clock.monotonic() - spare.last_heartbeat <= HEARTBEAT_INTERVAL

            await run_watching(clock, 10 * WINDOW, idle)
            assert spare.metrics.get("leadership_taken_total") == 0

            # The master stops right after a heartbeat.
            await clock.run_until(lambda: spare.last_heartbeat == clock.monotonic(),
                                  HEARTBEAT_INTERVAL, "a heartbeat")
            last = spare.last_heartbeat
            await c.stop(MASTER)
            await clock.run_until(lambda: (check(), spare.leading)[1], 2 * WINDOW,
                                  "the spare to lead")
            assert spare.took_lead_at is not None
            took = spare.took_lead_at - last
            assert WINDOW < took <= WINDOW + SPARE_TICK, took
            assert spare.epoch == 2 and spare.metrics.get("leadership_taken_total") == 1
            await satellite_at(c, 2, SPARE)
            await run_watching(clock, 2 * WINDOW, check)
            assert spare.leading_now()

            # The master comes back (a new process; epoch 1 on disk). It is passive, learns
            # epoch 2 from the receiver, and claims 3 through the spare, which stands down.
            await c.start(MASTER)
            master = c.arbiter(MASTER)
            assert not master.leading and master.epoch == 1
            await clock.run_for(0)
            assert master.leading and master.epoch == 3
            assert not spare.leading and spare.epoch == 3
            await satellite_at(c, 3, MASTER)
            await run_watching(clock, 3 * WINDOW, idle)
            assert master.metrics.get("leadership_taken_total") == 1

    asyncio.run(go())


def test_a_returning_master_refused_by_the_leading_spare_claims_higher(
        tmp_path: Path) -> None:
    async def go() -> None:
        async with arbiters(tmp_path, satellite=False) as c:
            clock, check = c.clock, one_leader(c)
            spare = c.arbiter(SPARE)
            await clock.run_for(0)
            assert c.arbiter(MASTER).leading and c.arbiter(MASTER).epoch == 1
            await run_watching(clock, 2.0, check)
            await c.stop(MASTER)
            await clock.run_until(lambda: (check(), spare.leading)[1], 2 * WINDOW,
                                  "the spare to lead")
            assert spare.epoch == 2

            # Back with epoch 1 and no satellite to learn from: it claims 2, which the
            # leading spare refuses (not above its own). It stays passive and knows better.
            await c.start(MASTER)
            master = c.arbiter(MASTER)
            await clock.run_for(0)
            check()
            assert spare.leading and spare.epoch == 2
            assert not master.leading and master.highest_seen == 2
            # Its next round claims 3: the spare stands down, the master leads.
            tried = clock.monotonic()
            await clock.run_until(lambda: (check(), master.leading)[1], 2 * HEARTBEAT_INTERVAL,
                                  "the master to lead again")
            assert clock.monotonic() - tried == HEARTBEAT_INTERVAL
            assert master.epoch == 3 and spare.epoch == 3 and not spare.leading
            await run_watching(clock, 2 * WINDOW, check)
            assert master.leading_now() and not spare.leading

    asyncio.run(go())


def test_a_master_frozen_past_its_window_stands_down_and_takes_the_lead_back(
        tmp_path: Path) -> None:
    async def go() -> None:
        async with arbiters(tmp_path, satellite=True) as c:
            clock, check = c.clock, one_leader(c)
            master, spare = c.arbiter(MASTER), c.arbiter(SPARE)
            await clock.run_for(0)
            await satellite_at(c, 1, MASTER)
            await run_watching(clock, 2.0, check)

            # The master's leadership loop stalls (what a SIGSTOP does to it): no heartbeat,
            # no lease renewal. It still believes it leads, but its lease runs out.
            [loop] = [t for t in asyncio.all_tasks() if t.get_name() == f"{MASTER}:leadership"]
            loop.cancel()
            await until(loop.done, "the loop to stop")
            await clock.run_until(lambda: (check(), spare.leading)[1], 2 * WINDOW,
                                  "the spare to lead")
            assert master.leading and not master.leading_now()  # its lease ran out first
            assert spare.epoch == 2
            await satellite_at(c, 2, SPARE)
            await run_watching(clock, WINDOW, check)

            # The loop runs again: the master finds its lease expired, stands down, and
            # claims the lead through the spare one epoch above what the receiver holds.
            master.loops.start("leadership", master._master_loop)
            await clock.run_for(0)
            check()
            assert master.leading and master.epoch == 3 and master.leading_now()
            assert not spare.leading and spare.epoch == 3
            await satellite_at(c, 3, MASTER)
            await run_watching(clock, 2 * WINDOW, check)

    asyncio.run(go())

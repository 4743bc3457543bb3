"""The injectable clock: the real one sleeps on the event loop's clock, the manual one steps
through due timers and waits for the tasks it woke; `Every` does not drift."""

from __future__ import annotations

import asyncio
import time

import pytest

from shinha.clock import ClockStuck, Every, ManualClock, SystemClock, wait_all


def test_run_for_steps_each_timer_at_its_own_time() -> None:
    async def go() -> list[float]:
        clock = ManualClock(start=0.0)
        seen: list[float] = []

        async def loop() -> None:
            while True:
                await clock.sleep(0.3)
                seen.append(round(clock.monotonic(), 6))

        task = asyncio.create_task(loop())
        await clock.run_for(1.0)
        assert clock.monotonic() == 1.0
        task.cancel()
        return seen

    assert asyncio.run(go()) == [0.3, 0.6, 0.9]


def test_every_keeps_its_period_when_a_round_runs_long() -> None:
    async def go() -> tuple[list[float], int]:
        clock = ManualClock(start=0.0)
        every = Every(clock, 1.0)
        rounds: list[float] = []

        async def loop() -> None:
            while True:
                await every.tick()
                rounds.append(clock.monotonic())
                await clock.sleep(0.4 if len(rounds) != 3 else 2.5)  # the work of a round

        task = asyncio.create_task(loop())
        await clock.run_for(8.0)
        task.cancel()
        return rounds, every.skipped

    rounds, skipped = asyncio.run(go())
    # Rounds at 1, 2, 3, never shifted by the 0.4 s each takes. The third ran 2.5 s (to 5.5):
    # the round due at 4 runs at once, the one due at 5 is skipped (no burst), and the period
    # starts again from 5.5.
    assert rounds == [1.0, 2.0, 3.0, 5.5, 6.5, 7.5]
    assert skipped == 1


def test_wait_returns_when_the_event_is_set_or_at_the_timeout() -> None:
    async def go() -> None:
        clock = ManualClock(start=0.0)
        event = asyncio.Event()
        waiter = asyncio.create_task(clock.wait(event, 5.0))
        await clock.run_for(4.9)
        assert not waiter.done()
        event.set()
        assert await waiter is True
        assert clock.pending() == []  # the timer went with it
        event.clear()
        waiter = asyncio.create_task(clock.wait(event, 5.0))
        await clock.run_for(5.0)
        assert waiter.done() and waiter.result() is False

    asyncio.run(go())


def test_a_cancelled_wait_raises_and_leaves_no_timer() -> None:
    async def go() -> None:
        clock = ManualClock(start=0.0)
        waiter = asyncio.create_task(clock.wait(asyncio.Event(), 5.0))
        await clock.settle()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert clock.pending() == []
        sleeper = asyncio.create_task(clock.sleep(3.0))
        await clock.settle()
        sleeper.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sleeper
        assert clock.pending() == []

    asyncio.run(go())


def test_run_for_waits_for_woken_tasks_to_finish_their_round() -> None:
    """A task woken by the clock that then waits on I/O (here a real 20 ms) is let finish its
    round before time moves on: time never passes under a round in progress."""
    async def go() -> list[float]:
        clock = ManualClock(start=0.0)
        ends: list[float] = []

        async def loop() -> None:
            while True:
                await clock.sleep(1.0)
                await asyncio.sleep(0.02)  # real I/O, outside the clock
                ends.append(clock.monotonic())

        task = asyncio.create_task(loop())
        await clock.run_for(3.0)
        task.cancel()
        return ends

    assert asyncio.run(go()) == [1.0, 2.0, 3.0]


def test_a_round_that_never_sleeps_again_is_reported() -> None:
    async def go() -> None:
        clock = ManualClock(start=0.0, settle_timeout=0.1)

        async def stuck() -> None:
            await clock.sleep(1.0)
            await asyncio.Event().wait()

        task = asyncio.create_task(stuck(), name="stuck-loop")
        with pytest.raises(ClockStuck, match="stuck-loop"):
            await clock.run_for(2.0)
        task.cancel()

    asyncio.run(go())


def test_run_until_measures_clock_time() -> None:
    async def go() -> float:
        clock = ManualClock(start=0.0)
        state = {"n": 0}

        async def loop() -> None:
            every = Every(clock, 0.25)
            while True:
                await every.tick()
                state["n"] += 1

        task = asyncio.create_task(loop())
        took = await clock.run_until(lambda: state["n"] >= 10, limit=60.0, what="ten rounds")
        task.cancel()
        return took

    assert asyncio.run(go()) == 2.5


def test_the_system_clock_sleeps_until_a_deadline_on_the_loop_clock() -> None:
    async def go() -> tuple[float, bool, bool]:
        clock = SystemClock()
        start = time.monotonic()
        await clock.sleep_until(start + 0.05)
        slept = time.monotonic() - start
        event = asyncio.Event()
        timed_out = await clock.wait(event, 0.01)
        asyncio.get_running_loop().call_later(0.01, event.set)
        woken = await clock.wait(event, 5.0)
        return slept, timed_out, woken

    slept, timed_out, woken = asyncio.run(go())
    assert 0.045 <= slept < 1.0
    assert (timed_out, woken) == (False, True)


def test_the_manual_clock_never_goes_back() -> None:
    """run_for(-1) used to set the monotonic clock one second back (and advance(-1) too):
    a loop on Every would then see a round due in its future, a deadline not yet passed."""
    async def go() -> None:
        clock = ManualClock(start=10.0)
        for bad in (-1.0, -1e-9, float("nan")):
            with pytest.raises(ValueError, match="does not go back"):
                await clock.run_for(bad)
            with pytest.raises(ValueError, match="does not go back"):
                clock.advance(bad)
        assert clock.monotonic() == 10.0
        await clock.run_for(0.0)
        clock.advance(0.0)
        assert clock.monotonic() == 10.0

    asyncio.run(go())


def test_wait_all_waits_for_every_future_or_the_timeout_on_the_clock() -> None:
    async def go() -> None:
        clock = ManualClock(start=0.0)
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[bool]] = [loop.create_future() for _ in range(3)]
        waiter = asyncio.create_task(wait_all(clock, futures, 10.0))
        await clock.run_for(5.0)
        futures[0].set_result(True)
        futures[2].set_result(False)
        await clock.run_for(1.0)
        assert not waiter.done()
        futures[1].set_result(True)
        assert await waiter is True
        assert clock.pending() == []
        # One never completes: False after 10 s of the clock, not before; nothing left behind.
        late: asyncio.Future[bool] = loop.create_future()
        waiter = asyncio.create_task(wait_all(clock, [late, futures[0]], 10.0))
        await clock.run_for(9.9)
        assert not waiter.done()
        await clock.run_for(0.1)
        assert waiter.done() and waiter.result() is False
        assert clock.pending() == [] and not late.done()
        assert await wait_all(clock, [], 1.0) is True  # nothing to wait for

    asyncio.run(go())

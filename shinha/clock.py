"""Time, injectable: daemons read the clock and sleep through it, so that tests can drive it.

Every periodic loop of a daemon sleeps through its `Clock`, never through `asyncio.sleep`:

- `SystemClock` is the real one. Deadlines are points on the event loop's clock
  (`loop.call_at`), which is CLOCK_MONOTONIC like `time.monotonic()`.
- `ManualClock` moves only when a test says so. `advance()` jumps; `run_for()` steps from one
  due timer to the next (burst mode) and, after each step, waits until every task it woke is
  asleep on the clock again, so a test sees each loop's round complete before time moves on.

`Every` is a drift-corrected period: a loop that runs a little late does not push its later
rounds back, and a round that overran whole periods skips them instead of running them in a
burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic time for intervals and deadlines; wall time only for stored timestamps."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    def call_at(self, deadline: float, callback: Callable[[], None]) -> Timer: ...

    async def sleep(self, seconds: float) -> None: ...

    async def sleep_until(self, deadline: float) -> None: ...

    async def wait(self, event: asyncio.Event, timeout: float) -> bool: ...


async def _sleep_until(clock: Clock, deadline: float) -> None:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def wake() -> None:
        if not future.done():
            future.set_result(None)

    timer = clock.call_at(deadline, wake)
    try:
        await future
    finally:
        timer.cancel()


async def _wait(clock: Clock, event: asyncio.Event, timeout: float) -> bool:
    """Wait for `event` at most `timeout` seconds of `clock`; True if it is set."""
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    def expire() -> None:
        waiter.cancel()

    timer = clock.call_at(clock.monotonic() + max(0.0, timeout), expire)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
    finally:
        timer.cancel()
        waiter.cancel()
    if not event.is_set():
        # Our own timer cancelled the waiter; a cancellation of this task from outside
        # must still propagate.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
    return event.is_set()


async def wait_all(clock: Clock, futures: Iterable[asyncio.Future[Any]], timeout: float) -> bool:
    """Wait until every one of `futures` is done, at most `timeout` seconds of `clock` (what
    `asyncio.wait(futures, timeout=…)` does on the loop's clock); True if all are done."""
    pending = [f for f in futures if not f.done()]
    if not pending:
        return True
    done = asyncio.Event()
    left = len(pending)

    def one(_: asyncio.Future[Any]) -> None:
        nonlocal left
        left -= 1
        if not left:
            done.set()

    for future in pending:
        future.add_done_callback(one)
    try:
        return await clock.wait(done, timeout)
    finally:
        for future in pending:
            future.remove_done_callback(one)


class SystemClock:
    """The real clock: the event loop's monotonic time and the system's wall time."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def call_at(self, deadline: float, callback: Callable[[], None]) -> Timer:
        loop = asyncio.get_running_loop()
        # time.monotonic() and loop.time() share CLOCK_MONOTONIC (asyncio and uvloop alike).
        return loop.call_at(loop.time() + (deadline - time.monotonic()), callback)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def sleep_until(self, deadline: float) -> None:
        await _sleep_until(self, deadline)

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        return await _wait(self, event, timeout)


class Every:
    """A period that does not drift: round k is due at start + k × period."""

    def __init__(self, clock: Clock, period: float, *, first: float | None = None) -> None:
        self.clock = clock
        self.period = period
        self.due = clock.monotonic() + (period if first is None else first)
        self.skipped = 0

    async def tick(self) -> None:
        """Sleep until the next round is due. A round late by less than a period keeps the
        grid; one later than that runs at once, the rounds it overlapped are skipped, and the
        grid starts again from now."""
        await self.clock.sleep_until(self.due)
        now = self.clock.monotonic()
        late = now - self.due
        if self.period > 0 and late >= self.period:
            self.skipped += int(late // self.period)
            self.due = now + self.period
        else:
            self.due += self.period

    def reset(self, first: float = 0.0) -> None:
        """Start the period again `first` seconds from now."""
        self.due = self.clock.monotonic() + first


class _ManualTimer:
    __slots__ = ("callback", "cancelled", "deadline", "owner")

    def __init__(self, deadline: float, callback: Callable[[], None],
                 owner: asyncio.Task[object] | None) -> None:
        self.deadline = deadline
        self.callback = callback
        self.owner = owner
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ClockStuck(AssertionError):
    """A task woken by ManualClock.run_for did not go back to sleep on the clock in time."""


def _forward(seconds: float) -> None:
    if not seconds >= 0:  # NaN too
        raise ValueError(f"a monotonic clock does not go back: {seconds!r} s")


class ManualClock:
    """A clock that moves only when told: for tests that must control time."""

    def __init__(self, start: float = 1_000_000.0, wall: float = 1_800_000_000.0,
                 settle_timeout: float = 10.0) -> None:
        self._mono = start
        self._wall_offset = wall - start
        self._heap: list[tuple[float, int, _ManualTimer]] = []
        self._seq = itertools.count()
        #: Real seconds run_for waits for the tasks it woke to sleep again.
        self.settle_timeout = settle_timeout

    def monotonic(self) -> float:
        return self._mono

    def time(self) -> float:
        return self._mono + self._wall_offset

    def call_at(self, deadline: float, callback: Callable[[], None]) -> Timer:
        owner: asyncio.Task[object] | None = None
        with contextlib.suppress(RuntimeError):
            owner = asyncio.current_task()
        timer = _ManualTimer(deadline, callback, owner)
        heapq.heappush(self._heap, (deadline, next(self._seq), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        await _sleep_until(self, self._mono + max(0.0, seconds))

    async def sleep_until(self, deadline: float) -> None:
        await _sleep_until(self, deadline)

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        return await _wait(self, event, timeout)

    # --- what tests use ---------------------------------------------------------------------

    def pending(self) -> list[float]:
        """The deadlines of the live timers, soonest first."""
        self._prune()
        return sorted(t.deadline for _, _, t in self._heap if not t.cancelled)

    def sleepers(self) -> set[asyncio.Task[object]]:
        """The tasks with a live timer on this clock."""
        return {t.owner for _, _, t in self._heap if not t.cancelled and t.owner is not None}

    def advance(self, seconds: float) -> None:
        """Jump forward and fire every timer whose time has come (no waiting)."""
        _forward(seconds)
        self._mono += seconds
        self._fire_due()

    async def run_for(self, seconds: float) -> None:
        """Step through the next `seconds`: fire each due timer at its own time, then let the
        tasks it woke run until they sleep on the clock again (or end)."""
        _forward(seconds)
        target = self._mono + seconds
        await self.settle()
        while True:
            self._prune()
            if not self._heap or self._heap[0][0] > target:
                break
            self._mono = max(self._mono, self._heap[0][0])
            woken = self._fire_due()
            await self.settle(woken)
        self._mono = target

    async def run_until(self, predicate: Callable[[], object], limit: float,
                        what: str = "the condition") -> float:
        """Step time until `predicate()` holds; return the clock seconds it took."""
        start = self._mono
        await self.settle()
        while not predicate():
            self._prune()
            if not self._heap or self._heap[0][0] > start + limit:
                raise AssertionError(f"{what}: not within {limit} s of clock time")
            await self.run_for(max(0.0, self._heap[0][0] - self._mono))
        return self._mono - start

    async def settle(self, woken: set[asyncio.Task[object]] | None = None) -> None:
        """Let the loop run until every task in `woken` sleeps on the clock again or ended."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self.settle_timeout
        for _ in range(3):
            await asyncio.sleep(0)
        busy = set(woken or ())
        while True:
            asleep = self.sleepers()
            busy = {t for t in busy if not t.done() and t not in asleep}
            if not busy:
                break
            if loop.time() > end:
                raise ClockStuck("still running after the clock moved: "
                                 + ", ".join(sorted(t.get_name() for t in busy)))
            await asyncio.sleep(0.0005)  # their I/O (a request on loopback) runs in real time
        for _ in range(3):
            await asyncio.sleep(0)

    def _fire_due(self) -> set[asyncio.Task[object]]:
        woken: set[asyncio.Task[object]] = set()
        while self._heap and self._heap[0][0] <= self._mono:
            _, _, timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            timer.cancelled = True
            if timer.owner is not None:
                woken.add(timer.owner)
            timer.callback()
        return woken

    def _prune(self) -> None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)

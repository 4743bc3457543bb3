"""Time, injectable: daemons read the clock through this so that tests can control it."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic time for intervals and deadlines; wall time only for stored timestamps."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: the event loop's monotonic time and the system's wall time."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that moves only when told: for state-machine tests that must control time."""

    def __init__(self, start: float = 1_000_000.0, wall: float = 1_800_000_000.0) -> None:
        self._mono = start
        self._wall_offset = wall - start
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self._mono

    def time(self) -> float:
        return self._mono + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._mono + max(0.0, seconds), future))
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose time has come."""
        self._mono += seconds
        due = [(t, f) for t, f in self._waiters if t <= self._mono]
        self._waiters = [(t, f) for t, f in self._waiters if t > self._mono]
        for _, future in due:
            if not future.done():
                future.set_result(None)

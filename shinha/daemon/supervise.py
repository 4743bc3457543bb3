"""Supervised background loops.

A role declares each lifelong loop (`Supervisor.start(name, run, critical=...)`). A loop that
raises is run again after a bounded, jittered backoff; its failure and its recovery are logged
once each, not at every retry. While a critical loop is retrying the daemon's health is
"degraded" (`/ping`, `/status`). A critical loop that fails for good — more failures in a row
than its retries, or a non-retryable error (`DaemonError`, `LoopFailed`, `ConfigError`) — asks
the daemon to stop with a non-zero exit, so that systemd restarts it and the spares take over
instead of a daemon that answers `/ping` while doing nothing. A loop that is not critical (a
periodic chore) is retried for as long as the daemon runs, every `Backoff.most` seconds once it
has used its retries.

Per-request tasks (a check being run, a batch being sent) are not loops: they stay one-shot
tasks of the daemon's TaskRegistry. The supervisor's own tasks live there too, so the daemon's
stop cancels both.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from shinha.clock import Clock
from shinha.daemon.tasks import TaskRegistry
from shinha.errors import ConfigError, DaemonError, LoopFailed
from shinha.wire import Health, LoopView

log = logging.getLogger(__name__)

LoopRun = Callable[[], Coroutine[Any, Any, None]]
#: Errors that retrying cannot cure: the loop fails for good at once.
NON_RETRYABLE: tuple[type[BaseException], ...] = (DaemonError, ConfigError)
#: The environment variable of the test-only fault (see Fault); read by the process entry.
FAULT_ENV = "SHINHA_TEST_LOOP_FAULT"


@dataclass(frozen=True, slots=True)
class Backoff:
    """How a failed loop is retried (seconds)."""

    #: First wait; each failure in a row doubles it, up to `most`; ±20 % jitter.
    first: float = 0.5
    most: float = 8.0
    #: Failures in a row retried; one more and a critical loop has failed for good
    #: (0.5 + 1 + 2 + 4 + 8 ≈ 15 s of retrying with the defaults).
    retries: int = 5
    #: A run this long without failing is a recovery: health back to ok, failures reset.
    settle: float = 5.0

    def delay(self, failures: int, rng: random.Random) -> float:
        base = min(self.most, self.first * 2.0 ** max(0, failures - 1))
        return base * rng.uniform(0.8, 1.2)


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault injected for tests (never set in production): the loop `loop` raises at the
    start of each of its first `times` runs (0: every run); `fatal` raises a non-retryable
    error instead. Given as `LOOP`, `LOOP:N`, `LOOP:always` or `LOOP:fatal`."""

    loop: str
    times: int = 1
    fatal: bool = False

    @classmethod
    def parse(cls, text: str) -> Fault:
        loop, _, how = text.strip().partition(":")
        if not loop:
            raise ValueError(f"{FAULT_ENV}={text!r}: expected LOOP[:N|:always|:fatal]")
        if how in ("", "always", "fatal"):
            return cls(loop, times=0 if how else 1, fatal=how == "fatal")
        if how.isdigit() and int(how) > 0:
            return cls(loop, times=int(how))
        raise ValueError(f"{FAULT_ENV}={text!r}: expected LOOP[:N|:always|:fatal]")


class InjectedFault(RuntimeError):
    """Raised by a loop a test Fault names."""


class LoopEnded(RuntimeError):
    """A lifelong loop returned: nothing runs it any more."""


class _Loop:
    """The supervision state of one loop."""

    def __init__(self, name: str, run: LoopRun, critical: bool) -> None:
        self.name = name
        self.run = run
        self.critical = critical
        self.runs = 0
        self.failures = 0
        self.retrying = False
        self.stopped = False
        self.last_error = ""
        self.settle: asyncio.Task[None] | None = None

    def view(self) -> LoopView:
        state = "stopped" if self.stopped else "retrying" if self.retrying else "running"
        return LoopView(name=self.name, critical=self.critical, state=state,
                        failures=self.failures, last_error=self.last_error)


class Supervisor:
    """Runs a daemon's lifelong loops, retries them, and reports their health."""

    def __init__(self, owner: str, tasks: TaskRegistry, clock: Clock,
                 on_fatal: Callable[[str, BaseException], None],
                 backoff: Backoff | None = None, fault: Fault | None = None,
                 rng: random.Random | None = None) -> None:
        self.owner = owner
        self.tasks = tasks
        self.clock = clock
        self.on_fatal = on_fatal
        self.backoff = backoff or Backoff()
        self.fault = fault
        self.rng = rng or random.Random()
        self._loops: dict[asyncio.Task[None], _Loop] = {}

    def start(self, name: str, run: LoopRun, *, critical: bool = True) -> asyncio.Task[None]:
        """Run `run()` for as long as the daemon runs; cancel the returned task to end it."""
        loop = _Loop(name, run, critical)
        task = self.tasks.spawn(self._supervise(loop), name)
        self._loops[task] = loop
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[Any]) -> None:
        loop = self._loops.pop(task, None)
        if loop is not None and loop.settle is not None:
            loop.settle.cancel()

    def health(self) -> tuple[Health, list[str]]:
        """ok, or degraded with the critical loops retrying (or failed for good)."""
        bad = sorted(loop.name for loop in self._loops.values()
                     if loop.critical and (loop.retrying or loop.stopped))
        return ("degraded" if bad else "ok"), bad

    def views(self) -> list[LoopView]:
        return sorted((loop.view() for loop in self._loops.values()), key=lambda v: v.name)

    # --- one loop ---------------------------------------------------------------------------

    async def _supervise(self, loop: _Loop) -> None:
        while True:
            if loop.retrying:
                loop.settle = self.tasks.spawn(self._settle(loop), f"{loop.name}-settle")
            try:
                await self._run_once(loop)
                error: BaseException = LoopEnded("the loop returned")
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise  # the daemon (or the role) ends this loop
                error = LoopEnded("the loop was cancelled from inside")
            except Exception as exc:  # noqa: BLE001 - any failure of a loop is what is supervised
                error = exc
            finally:
                if loop.settle is not None:
                    loop.settle.cancel()
                    loop.settle = None
            delay = self._failed(loop, error)
            if delay is None:
                # Failed for good: it stays in the health report until the daemon stops.
                await asyncio.Event().wait()
                return
            await self.clock.sleep(delay)

    async def _run_once(self, loop: _Loop) -> None:
        loop.runs += 1
        fault = self.fault
        if fault is not None and fault.loop == loop.name and (
                fault.times == 0 or loop.runs <= fault.times):
            if fault.fatal:
                raise LoopFailed(f"test fault injected ({FAULT_ENV})")
            raise InjectedFault(f"test fault injected ({FAULT_ENV}), run {loop.runs}")
        await loop.run()

    async def _settle(self, loop: _Loop) -> None:
        await self.clock.sleep(self.backoff.settle)
        log.warning("%s: loop %s recovered (%d failures in a row before)", self.owner,
                    loop.name, loop.failures)
        loop.retrying = False
        loop.failures = 0
        loop.settle = None

    def _failed(self, loop: _Loop, error: BaseException) -> float | None:
        """Count a failure; return the wait before the next run, or None if the loop is done
        for good (a critical one has asked the daemon to stop)."""
        loop.failures += 1
        loop.last_error = describe(error)
        fatal = isinstance(error, NON_RETRYABLE)
        first = not loop.retrying
        if fatal or (loop.critical and loop.failures > self.backoff.retries):
            loop.stopped = True
            why = "not retryable" if fatal else f"{loop.failures} failures in a row"
            if loop.critical:
                log.error("%s: loop %s failed for good (%s): %s; stopping the daemon (exit "
                          "1) so that it is restarted and spares take over", self.owner,
                          loop.name, why, loop.last_error, exc_info=error if first else None)
                self.on_fatal(loop.name, error)
            else:
                log.error("%s: loop %s stopped for good (%s): %s; the daemon goes on without "
                          "it", self.owner, loop.name, why, loop.last_error,
                          exc_info=error if first else None)
            return None
        delay = self.backoff.delay(loop.failures, self.rng)
        loop.retrying = True
        if first:
            log.warning("%s: loop %s failed: %s; retrying in %.1f s%s", self.owner, loop.name,
                        loop.last_error, delay,
                        " (the daemon is degraded meanwhile)" if loop.critical else "",
                        exc_info=error)
        elif not loop.critical and loop.failures == self.backoff.retries + 1:
            log.error("%s: loop %s keeps failing (%d times in a row): %s; retrying every "
                      "%.0f s", self.owner, loop.name, loop.failures, loop.last_error,
                      self.backoff.most)
        else:
            log.debug("%s: loop %s failed again (%d in a row): %s", self.owner, loop.name,
                      loop.failures, loop.last_error)
        return delay


def describe(error: BaseException) -> str:
    """`Type: message`, on one line and short: for logs and /status."""
    text = str(error).replace("\n", " ")
    name = type(error).__name__
    return (f"{name}: {text}" if text else name)[:300]

"""Supervised loops, in-process with a manual clock: a loop raising once is retried and
recovers (health degraded, then ok again); one that keeps failing, or raises a non-retryable
error, asks the daemon to stop with a non-zero exit; a loop that is not critical never does.
Then the same through a real daemon class: /ping and /status say degraded and which loop."""

from __future__ import annotations

import asyncio
import logging
import random
import textwrap
from pathlib import Path

import aiohttp
import pytest

from shinha.clock import ManualClock
from shinha.config import load_config
from shinha.daemon.base import EXIT_FAILED, DaemonContext
from shinha.daemon.supervise import Backoff, Fault, Supervisor
from shinha.daemon.tasks import TaskRegistry
from shinha.errors import LoopFailed, PeerUnreachable
from shinha.receiver.daemon import ReceiverDaemon
from tests.cluster import free_port
from tests.inprocess import until

SECRET = "supervise-test-secret"
BACKOFF = Backoff(first=1.0, most=4.0, retries=3, settle=10.0)


class Harness:
    """A supervisor on a manual clock, and what it reported as fatal."""

    def __init__(self, fault: Fault | None = None) -> None:
        self.clock = ManualClock()
        self.tasks = TaskRegistry("test")
        self.fatal: list[tuple[str, BaseException]] = []
        self.sup = Supervisor("poller p1", self.tasks, self.clock,
                              lambda name, exc: self.fatal.append((name, exc)),
                              backoff=BACKOFF, fault=fault, rng=random.Random(1))

    def sleepers(self) -> int:
        return len(self.clock.pending())

    async def advance(self, seconds: float) -> None:
        """Move the clock once a sleeper waits on it, then let the woken run."""
        await until(lambda: self.sleepers() > 0, "a loop to sleep on the clock")
        self.clock.advance(seconds)
        await asyncio.sleep(0)


def lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == level and r.name == "shinha.daemon.supervise"]


def test_a_loop_raising_once_is_retried_degraded_then_recovers(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    runs: list[int] = []
    steady = asyncio.Event()

    async def go() -> None:
        h = Harness()

        async def pull() -> None:
            runs.append(len(runs) + 1)
            if len(runs) == 1:
                raise PeerUnreachable("scheduler-1", "connection refused")
            steady.set()
            await asyncio.Event().wait()  # runs for good now

        h.sup.start("pull", pull)
        await until(lambda: h.sup.health() == ("degraded", ["pull"]), "degraded")
        [view] = h.sup.views()
        assert (view.state, view.failures) == ("retrying", 1)
        assert view.last_error == "PeerUnreachable: scheduler-1: connection refused"
        # Backoff: first retry after about BACKOFF.first (±20 %), on the injected clock.
        await h.advance(BACKOFF.first * 1.2)
        await until(steady.is_set, "the second run")
        assert h.sup.health()[0] == "degraded"  # not yet settled
        await h.advance(BACKOFF.settle)
        await until(lambda: h.sup.health() == ("ok", []), "health back to ok")
        assert h.sup.views()[0].state == "running" and h.sup.views()[0].failures == 0
        assert not h.fatal
        await h.tasks.cancel_all(1.0)

    asyncio.run(go())
    assert runs == [1, 2]
    warnings = lines(caplog, logging.WARNING)
    assert len(warnings) == 2, warnings  # one per transition: failed, recovered
    assert warnings[0].startswith("poller p1: loop pull failed: PeerUnreachable")
    assert "recovered" in warnings[1]
    assert not lines(caplog, logging.ERROR)


def test_a_critical_loop_failing_for_good_asks_the_daemon_to_stop(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def go() -> Harness:
        h = Harness()

        async def timetable() -> None:
            raise KeyError("h1")

        h.sup.start("timetable", timetable)
        for _ in range(BACKOFF.retries):
            await h.advance(BACKOFF.most * 1.2)
        await until(lambda: h.fatal, "the loop to fail for good")
        assert h.sup.health() == ("degraded", ["timetable"])
        assert h.sup.views()[0].state == "stopped"
        await h.tasks.cancel_all(1.0)
        return h

    h = asyncio.run(go())
    [(name, exc)] = h.fatal
    assert name == "timetable" and isinstance(exc, KeyError)
    [error] = lines(caplog, logging.ERROR)
    assert error.startswith(f"poller p1: loop timetable failed for good "
                            f"({BACKOFF.retries + 1} failures in a row): KeyError: 'h1'")
    assert "stopping the daemon (exit 1)" in error
    assert len(lines(caplog, logging.WARNING)) == 1  # the first failure; retries at DEBUG


def test_a_non_retryable_error_stops_at_once() -> None:
    async def go() -> Harness:
        h = Harness()

        async def push() -> None:
            raise LoopFailed("the state dir is gone")

        h.sup.start("push", push)
        await until(lambda: h.fatal, "the loop to fail for good")
        assert h.sleepers() == 0  # no retry was planned
        await h.tasks.cancel_all(1.0)
        return h

    assert [name for name, _ in asyncio.run(go()).fatal] == ["push"]


def test_a_loop_that_is_not_critical_is_retried_for_as_long_as_the_daemon_runs(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    runs = [0]

    async def go() -> Harness:
        h = Harness()

        async def chores() -> None:
            runs[0] += 1
            raise OSError("disk full")

        h.sup.start("master-jobs", chores, critical=False)
        for _ in range(BACKOFF.retries * 3):
            await h.advance(BACKOFF.most * 1.2)
        await until(lambda: runs[0] == BACKOFF.retries * 3 + 1, "every retry to run")
        assert h.sup.health() == ("ok", [])  # not critical: the daemon is not degraded
        assert h.sup.views()[0].state == "retrying"
        await h.tasks.cancel_all(1.0)
        return h

    assert not asyncio.run(go()).fatal
    assert len(lines(caplog, logging.WARNING)) == 1
    [error] = lines(caplog, logging.ERROR)
    assert "keeps failing" in error and "retrying every 4 s" in error


def test_a_loop_that_returns_is_a_failure_and_a_cancelled_one_is_not() -> None:
    async def go() -> Harness:
        h = Harness()

        async def quits() -> None:
            return

        async def forever() -> None:
            await asyncio.Event().wait()

        h.sup.start("election", quits)
        task = h.sup.start("pull-s1", forever)
        await until(lambda: h.sup.health()[1] == ["election"], "a returned loop to count")
        task.cancel()  # what a role does when a scheduler leaves the topology
        await until(lambda: [v.name for v in h.sup.views()] == ["election"],
                    "the cancelled loop forgotten")
        await h.tasks.cancel_all(1.0)
        return h

    assert not asyncio.run(go()).fatal


def test_the_fault_for_tests_parses() -> None:
    assert Fault.parse("timetable") == Fault("timetable", 1)
    assert Fault.parse("pull-s1:3") == Fault("pull-s1", 3)
    assert Fault.parse("push:always") == Fault("push", 0)
    assert Fault.parse("push:fatal") == Fault("push", 0, fatal=True)
    for bad in ("", ":3", "push:0", "push:sometimes"):
        with pytest.raises(ValueError, match="SHINHA_TEST_LOOP_FAULT"):
            Fault.parse(bad)


# --- through a daemon class ---------------------------------------------------------------------


def receiver(tmp_path: Path, fault: Fault) -> ReceiverDaemon:
    (tmp_path / "shinha.cfg").write_text(
        f"cfg_file=objects.cfg\ncluster_secret={SECRET}\nworkdir=var\n")
    (tmp_path / "objects.cfg").write_text(textwrap.dedent(f"""\
        define receiver {{
            receiver_name receiver-1
            address       127.0.0.1
            port          {free_port()}
        }}
        """))
    loaded = load_config(tmp_path / "shinha.cfg")
    assert loaded.ok and loaded.config is not None, loaded.errors
    config = loaded.config
    link = config.daemons["receiver"]["receiver-1"]
    return ReceiverDaemon(DaemonContext(config=config, link=link, state_root=tmp_path / "var",
                                        clock=ManualClock(), fault=fault))


def test_a_daemon_says_degraded_while_its_loop_retries_then_ok(tmp_path: Path) -> None:
    daemon = receiver(tmp_path, Fault("forward", times=1))
    clock = daemon.clock
    assert isinstance(clock, ManualClock)

    async def go() -> None:
        await daemon.start()
        try:
            async with aiohttp.ClientSession(daemon.ref.url) as http:
                async def get(path: str) -> dict[str, object]:
                    async with http.get(path) as reply:
                        assert reply.status == 200
                        body: dict[str, object] = await reply.json()
                        return body

                ping = await get("/ping")
                assert (ping["health"], ping["degraded"]) == ("degraded", ["forward"])
                status = await get("/status")
                assert status["health"] == "degraded"
                [forward] = [v for v in status["loops"]  # type: ignore[attr-defined]
                             if v["name"] == "forward"]
                assert forward["state"] == "retrying" and forward["critical"]
                assert "test fault injected" in forward["last_error"]
                clock.advance(10.0)  # past the backoff: the loop runs again, and stays up
                await until(lambda: any(d > clock.monotonic() + 2 for d in clock.pending())
                            and daemon.loops.views()[0].failures == 1, "the settle timer")
                clock.advance(10.0)  # past the settle time
                await until(lambda: daemon.health() == ("ok", []), "health ok")
                assert (await get("/ping"))["health"] == "ok"
        finally:
            await daemon.stop()
        assert daemon.exit_code == 0

    asyncio.run(go())


def test_a_daemon_whose_critical_loop_fails_for_good_asks_to_exit_non_zero(
        tmp_path: Path) -> None:
    daemon = receiver(tmp_path, Fault("forward", fatal=True))

    async def go() -> None:
        await daemon.start()
        try:
            await asyncio.wait_for(daemon.stop_requested.wait(), 5)
        finally:
            await daemon.stop()

    asyncio.run(go())
    assert daemon.exit_code == EXIT_FAILED

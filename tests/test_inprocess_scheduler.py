"""The scheduler, in-process on a manual clock, with a real arbiter and a real SQLite
data-server; the test plays the poller through the scheduler's pull and result endpoints.

- The timetable: a check becomes ready exactly when it is due (its first run spread by its
  key, then check_interval × interval_length after the previous due time, or
  retry_interval × interval_length after a failure), and never before.
- The long-poll: a pull that finds nothing waits on the clock, answered when a check becomes
  ready or empty after its `wait`.
- Orphans: a check handed out that never comes back is re-queued at the first sweep after its
  deadline (timeout + ORPHAN_GRACE), counted in shinha_orphans_total, and not before; one
  that comes back is not. A poller that restarted (a new instance) has its checks re-queued
  at its next pull.
- The outbox: results taken while the data-server is down are kept, retried with backoff on
  the clock, answered "retry" after DURABLE_WAIT, and stored once the data-server is back —
  each once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from shinha.ids import new_id
from shinha.scheduler.daemon import INITIAL_SPREAD_MIN
from shinha.scheduler.handout import ORPHAN_GRACE, ORPHAN_SWEEP
from shinha.scheduler.items import Key, initial_offset
from shinha.scheduler.results import DURABLE_WAIT
from shinha.wire import CheckJob, CheckResult, PullReply, PullRequest, ResultAck, ResultBatch
from tests.inprocess import InProcess, Tree, until

SCHED, DS, ARB, POLLER = "scheduler-1", "dataserver-1", "arbiter-1", "poller-1"
INTERVAL_LENGTH = 10
TIMEOUT = 10  # the command's timeout: a handed-out check is an orphan TIMEOUT + grace later
S1, S2 = ("h1", "s1"), ("h1", "s2")
#: check_interval, retry_interval (in interval_length units)
INTERVALS = {S1: (3, 1), S2: (5, 2)}

OBJECTS = f"""\
define command {{
  command_name ok
  command_line /bin/true
  timeout {TIMEOUT}
}}
define host {{
  host_name h1
  address 127.0.0.1
}}
""" + "".join(f"""\
define service {{
  host_name h1
  service_description {key[1]}
  check_command ok
  check_interval {check}
  retry_interval {retry}
  max_check_attempts 3
}}
""" for key, (check, retry) in INTERVALS.items())


@asynccontextmanager
async def site(tmp_path: Path) -> AsyncIterator[InProcess]:
    """An arbiter, a scheduler and a data-server in-process; poller-1 is defined (it owns the
    checks) but never started: the test pulls in its name."""
    tree = Tree(tmp_path / "etc", OBJECTS, main=f"interval_length={INTERVAL_LENGTH}\n")
    for name, role in ((ARB, "arbiter"), (SCHED, "scheduler"), (DS, "dataserver"),
                       (POLLER, "poller")):
        tree.add(role, name, check_interval=1, timeout=2, data_timeout=5)
    c = InProcess(tree)
    try:
        await c.start(DS, SCHED, ARB)
        await c.clock.run_for(0)  # the arbiter's first round: it leads and dispatches
        sched = c.scheduler(SCHED)
        await until(sched.loaded.is_set, "the scheduler to load its states")
        yield c
    finally:
        await c.stop_all()


def run(test: Callable[[InProcess], Coroutine[Any, Any, None]], tmp_path: Path) -> None:
    async def go() -> None:
        async with site(tmp_path) as c:
            await test(c)

    asyncio.run(go())


async def pull(c: InProcess, instance: str = "instance-1", wait: float = 0) -> list[CheckJob]:
    request = PullRequest(poller=POLLER, instance=instance, wait=wait)
    code, body = await c.request(SCHED, "POST", "/checks/pull", request.model_dump(mode="json"))
    assert code == 200, (code, body)
    return PullReply.model_validate(body).jobs


def result(c: InProcess, job: CheckJob, code: int = 0) -> CheckResult:
    now = c.clock.time()
    return CheckResult(result_id=new_id(), job_id=job.job_id, host=job.host,
                       service=job.service, return_code=code, output=f"code {code}",
                       started=now, finished=now, poller=POLLER)


async def post(c: InProcess, results: list[CheckResult]) -> asyncio.Task[tuple[int, Any]]:
    """POST the results as poller-1 does; return the request (it is answered once they are
    durable, or "retry" after DURABLE_WAIT) when the scheduler has taken them."""
    batch = ResultBatch(poller=POLLER, results=results).model_dump(mode="json")
    task = asyncio.create_task(c.request(SCHED, "POST", "/checks/results", batch))
    outbox = c.scheduler(SCHED).outbox
    await until(lambda: task.done() or all(
        outbox.waiter(r.result_id) is not None or outbox.is_durable(r.result_id)
        for r in results), "the scheduler to take the results")
    return task


async def answer(task: asyncio.Task[tuple[int, Any]]) -> ResultAck:
    await until(task.done, "the answer to the results")
    code, body = task.result()
    assert code == 200, (code, body)
    return ResultAck.model_validate(body)


async def send(c: InProcess, results: list[CheckResult]) -> ResultAck:
    """Post results with the data tier up: durable at the next push (on the clock)."""
    task = await post(c, results)
    outbox = c.scheduler(SCHED).outbox
    await c.clock.run_until(lambda: all(outbox.is_durable(r.result_id) for r in results), 2.0,
                            "the results pushed to the data-server")
    return await answer(task)


async def ready_times(c: InProcess, keys: set[Key], limit: float) -> dict[Key, float]:
    """Step the clock until each of `keys` is in poller-1's ready queue; the clock time each
    first was (the predicate is looked at after every step of the clock)."""
    sched = c.scheduler(SCHED)
    seen: dict[Key, float] = {}

    def look() -> bool:
        for item in sched.handout.ready.get(POLLER, ()):
            if item.key in keys and item.job_id in sched.handout.in_flight:
                seen.setdefault(item.key, c.clock.monotonic())
        return set(seen) == keys

    await c.clock.run_until(look, limit, f"{sorted(keys)} ready")
    return seen


def test_checks_become_ready_exactly_when_due_never_before(tmp_path: Path) -> None:
    async def go(c: InProcess) -> None:
        sched, clock = c.scheduler(SCHED), c.clock
        loaded = clock.monotonic()
        check = {k: ci * INTERVAL_LENGTH for k, (ci, _) in INTERVALS.items()}
        retry = {k: ri * INTERVAL_LENGTH for k, (_, ri) in INTERVALS.items()}
        # First runs: spread by key over min(interval, INITIAL_SPREAD_MIN) from the load.
        first = {k: loaded + initial_offset(k, min(check[k], INITIAL_SPREAD_MIN))
                 for k in INTERVALS}
        assert {k: sched.items[k].next_due for k in INTERVALS} == pytest.approx(first)
        assert not sched.handout.ready.get(POLLER)
        seen = await ready_times(c, {S1, S2}, INITIAL_SPREAD_MIN)
        assert seen == pytest.approx(first)  # at its due time, at no step before
        assert (await c.status(SCHED))["owns"]["ready"] == 2

        jobs = {(j.host, j.service): j for j in await pull(c)}
        assert set(jobs) == {S1, S2}
        for key, job in jobs.items():
            # The job says when it was due (wall time), not when it was pulled.
            assert job.due == pytest.approx(clock.time() - (clock.monotonic() - first[key]))
        assert not sched.handout.ready[POLLER] and (await c.status(SCHED))["owns"]["in_flight"] == 2

        # s1 comes back OK: its next run keeps the cadence (one check_interval after its
        # previous due time, not after the result). s2 comes back CRITICAL: a SOFT problem
        # is checked again retry_interval after the failure.
        await clock.run_for(1.0)
        failed_at = clock.monotonic()
        ack = await send(c, [result(c, jobs[S1], 0), result(c, jobs[S2], 2)])
        assert len(ack.acked) == 2 and not ack.retry
        assert (sched.items[S2].state.state_type, sched.items[S2].state.attempt) == ("SOFT", 1)
        expected = {S1: first[S1] + check[S1], S2: failed_at + retry[S2]}
        assert {k: sched.items[k].next_due for k in INTERVALS} == pytest.approx(expected)
        seen = await ready_times(c, {S1, S2}, max(check.values()) + 1)
        assert seen == pytest.approx(expected)

        # Both OK again: s2 back to its check_interval, counted from its retry's due time.
        jobs = {(j.host, j.service): j for j in await pull(c)}
        ack = await send(c, [result(c, jobs[S1]), result(c, jobs[S2])])
        assert len(ack.acked) == 2
        expected = {S1: expected[S1] + check[S1], S2: expected[S2] + check[S2]}
        seen = await ready_times(c, {S1, S2}, max(check.values()) + 1)
        assert seen == pytest.approx(expected)
        assert sched.results.results_total == 4

    run(go, tmp_path)


def test_a_long_poll_waits_on_the_clock(tmp_path: Path) -> None:
    async def go(c: InProcess) -> None:
        sched, clock = c.scheduler(SCHED), c.clock
        first = min(INTERVALS, key=lambda k: sched.items[k].next_due)
        due = sched.items[first].next_due
        assert due > clock.monotonic() and not sched.handout.ready.get(POLLER)
        # Nothing is ready: the pull waits, and is answered when the first check is due.
        waiting = asyncio.create_task(pull(c, wait=30))
        await until(lambda: any(d == clock.monotonic() + 30 for d in clock.pending()),
                    "the pull to wait")
        await clock.run_until(lambda: sched.items[first].job_id, 30, "a check ready")
        await until(waiting.done, "the pull answered")
        assert clock.monotonic() == pytest.approx(due)
        assert [(j.host, j.service) for j in waiting.result()] == [first]

        # Take the other one too, and answer both: nothing is due for 30 s then. A pull
        # waits its 20 s of the clock and is answered empty.
        await ready_times(c, set(INTERVALS) - {first}, INITIAL_SPREAD_MIN)
        jobs = [*waiting.result(), *await pull(c)]
        await send(c, [result(c, job) for job in jobs])
        assert min(item.next_due for item in sched.items.values() if item.active) > (
            clock.monotonic() + 20)
        asked = clock.monotonic()
        waiting = asyncio.create_task(pull(c, wait=20))
        await until(lambda: any(d == asked + 20 for d in clock.pending()), "the pull to wait")
        await clock.run_for(20 - 0.25)
        assert not waiting.done()
        await clock.run_for(0.25)
        await until(waiting.done, "the pull answered")
        assert waiting.result() == []

    run(go, tmp_path)


def test_a_check_that_never_comes_back_is_requeued_after_its_deadline(tmp_path: Path) -> None:
    async def go(c: InProcess) -> None:
        sched, clock = c.scheduler(SCHED), c.clock
        await ready_times(c, {S1, S2}, INITIAL_SPREAD_MIN)
        handed = clock.monotonic()
        jobs = {(j.host, j.service): j for j in await pull(c)}
        deadline = handed + TIMEOUT + ORPHAN_GRACE
        assert {job_id: d for job_id, (_, d) in sched.handout.in_flight.items()} == pytest.approx(
            {jobs[S1].job_id: deadline, jobs[S2].job_id: deadline})
        # s2 comes back (late, but before its deadline): not an orphan. s1 never does.
        await clock.run_for(TIMEOUT + 2.0)
        await send(c, [result(c, jobs[S2])])
        orphan = jobs[S1].job_id
        await clock.run_for(deadline - clock.monotonic())
        assert clock.monotonic() == pytest.approx(deadline)
        assert orphan in sched.handout.in_flight and sched.metrics.get("orphans_total") == 0
        await clock.run_until(lambda: orphan not in sched.handout.in_flight, 30.0, "s1 re-queued")
        requeued = clock.monotonic()
        assert deadline < requeued <= deadline + ORPHAN_SWEEP, requeued - handed
        assert sched.metrics.get("orphans_total") == 1
        assert await c.metric(SCHED, "shinha_orphans_total") == 1
        # It is ready again at once, under a new job id, and handed out again.
        await until(lambda: sched.items[S1].job_id not in ("", orphan), "s1 ready again")
        [again] = await pull(c)
        assert (again.host, again.service) == S1 and again.job_id != orphan
        # Nothing else becomes an orphan: s2's next run is not due before its interval.
        await clock.run_for(ORPHAN_SWEEP * 3)
        assert sched.metrics.get("orphans_total") == 1

    run(go, tmp_path)


def test_a_check_held_by_a_poller_that_restarted_is_requeued_at_once(tmp_path: Path) -> None:
    async def go(c: InProcess) -> None:
        sched, clock = c.scheduler(SCHED), c.clock
        await ready_times(c, {S1, S2}, INITIAL_SPREAD_MIN)
        jobs = {(j.host, j.service): j for j in await pull(c, instance="before")}
        await clock.run_for(1.0)
        # The poller pulls again as a new instance (it restarted): what the previous one
        # held will never come back, and is re-queued now, not at its deadline.
        assert await pull(c, instance="after") == []
        assert not any(j.job_id in sched.handout.in_flight for j in jobs.values())
        assert sched.metrics.get("orphans_total") == 2
        await until(lambda: len(sched.handout.ready.get(POLLER, ())) == 2, "both ready again")
        assert {(j.host, j.service) for j in await pull(c, instance="after")} == {S1, S2}

    run(go, tmp_path)


def test_results_wait_in_the_outbox_while_the_data_server_is_down(tmp_path: Path) -> None:
    async def go(c: InProcess) -> None:
        sched, clock, outbox = c.scheduler(SCHED), c.clock, c.scheduler(SCHED).outbox
        await ready_times(c, {S1, S2}, INITIAL_SPREAD_MIN)
        jobs = await pull(c)
        await c.stop(DS)
        results = [result(c, job) for job in jobs]
        ids = {r.result_id for r in results}
        taken = clock.monotonic()
        first = await post(c, results)
        assert sched.results.results_total == 2 and len(outbox.results) == 2

        # Every push fails; the next one comes after 0.05 s, then 0.2, 0.4 and 0.5 s apart.
        tries: list[float] = []
        for n in range(1, 6):
            await clock.run_until(lambda: outbox.failures >= len(tries) + 1, 1.0,
                                  f"push {n}")
            tries.append(clock.monotonic() - taken)
        assert [b - a for a, b in zip([0.0, *tries], tries, strict=False)] == pytest.approx(
            [0.05, 0.2, 0.4, 0.5, 0.5])
        assert len(outbox.results) == 2 and not outbox.durable

        # Not durable within DURABLE_WAIT of the clock: the poller is told to send again.
        assert sched.requests_in_flight == 1
        await clock.run_until(lambda: not sched.requests_in_flight, DURABLE_WAIT,
                              "the answer 'retry'")
        assert clock.monotonic() - taken == pytest.approx(DURABLE_WAIT)
        ack = await answer(first)
        assert set(ack.retry) == ids and not ack.acked
        # It does, the same results (same ids): they are not taken twice.
        again = await post(c, results)
        assert sched.results.results_total == 2 and len(outbox.results) == 2
        await clock.run_for(5.0)
        assert not again.done() and len(outbox.results) == 2

        # The arbiter has declared the data-server dead meanwhile: the topology has none.
        assert not sched.topology.dataservers and not c.arbiter(ARB).links[DS].alive
        # The data-server is back (the same SQLite file): the arbiter sees it alive and puts
        # it back in the topology, and the next push stores them.
        await c.start(DS)
        took = await clock.run_until(lambda: not len(outbox), 5.0, "the outbox flushed")
        assert 0 < took <= 1.0 + 0.5  # the arbiter's next ping, then one backoff at most
        ack = await answer(again)
        assert set(ack.acked) == ids and not ack.retry

        # Stored once each: the history holds each result once, nothing was a duplicate.
        for r in results:
            code, page = await c.request(DS, "GET", f"/api/services/{r.host}/{r.service}"
                                         "/history?limit=100", secret=False)
            assert code == 200, page
            rows = [row for row in page["items"] if row["type"] == "result"]
            assert [(row["result_id"], row["hits"]) for row in rows] == [(r.result_id, 1)]
        status = await c.status(DS)
        assert (status["owns"]["stored_new"], status["owns"]["duplicates"]) == (2, 0)
        # Sent once more (a poller that never got the answer): acknowledged, not stored.
        ack = await send(c, results)
        assert set(ack.acked) == ids
        assert (await c.status(DS))["owns"]["duplicates"] == 0
        assert sched.results.results_total == 2

    run(go, tmp_path)

"""The data-server's store, on both backends (SQLite, and a real MariaDB node): idempotency,
only-new-data, queries, durability, errors. Tests of one backend's own matters (an SQLite
file's corruption, its fsync setting) say so in their name."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from shinha.clock import ManualClock
from shinha.dataserver.sqlite import DB_FILENAME, SqliteStore
from shinha.dataserver.store import STORE_SCHEMA_VERSION, Store
from shinha.db.schema import SHARED_TABLES
from shinha.errors import StorageError
from shinha.wire import (
    AlertState,
    CheckResult,
    Downtime,
    Event,
    EventEntry,
    HistoryEntry,
    IngestBatch,
    PerfDatum,
    ResultEntry,
    StateRow,
)
from tests import mariadb
from tests.stores import Backend, MariadbBackend, SqliteBackend, writable_node

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


@pytest.fixture(scope="module")
def mariadb_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[mariadb.MariaDB]:
    """One writable mariadbd for the module; each test gets a database of its own on it."""
    mariadb.require()
    node = writable_node(tmp_path_factory.mktemp("store-mariadb"), "127.0.0.2", 1)
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(params=["sqlite", "mariadb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return SqliteBackend(tmp_path / "s.db")
    return MariadbBackend(request.getfixturevalue("mariadb_node"))


def run(fn: Callable[[Store], Awaitable[T]], backend: Backend) -> T:
    """Open the backend's store, run `fn` with it on a fresh event loop, close it."""

    async def main() -> T:
        async with backend.store() as store:
            return await fn(store)

    return asyncio.run(main())


def result(rid: str, host: str = "web1", service: str = "HTTP", rc: int = 0,
           output: str = "OK", value: float = 1.0, finished: float = 1000.0) -> CheckResult:
    return CheckResult(result_id=f"result-{rid}", host=host, service=service, return_code=rc,
                       output=output, finished=finished,
                       perfdata=[PerfDatum(label="time", value=value, uom="s", warn="2")])


def batch(results: list[CheckResult] | None = None, states: list[StateRow] | None = None,
          events: list[Event] | None = None) -> IngestBatch:
    return IngestBatch(scheduler="scheduler-1", results=results or [], states=states or [],
                       events=events or [])


def event(eid: str, at: float, kind: str = "state", state: int | None = 2) -> Event:
    return Event.model_validate({"event_id": eid, "time": at, "host": "web1",
                                 "service": "HTTP", "kind": kind, "state": state,
                                 "state_type": "HARD", "output": f"went {state}"})


def results(items: list[HistoryEntry]) -> list[ResultEntry]:
    """The stored results of a history page (no event among them)."""
    assert all(isinstance(i, ResultEntry) for i in items), items
    return [i for i in items if isinstance(i, ResultEntry)]


def entry_id(item: HistoryEntry) -> str:
    return item.result_id if isinstance(item, ResultEntry) else item.event_id


def result_rows(backend: Backend) -> int:
    return backend.scalar("SELECT count(*) FROM results")


def stored_new(backend: Backend) -> int:
    # MariaDB adds to slots of a counter (`stored_new@3`): the counter is their sum.
    return backend.scalar("SELECT coalesce(sum(value), 0) FROM counters WHERE "
                          "name = 'stored_new' OR name LIKE 'stored_new@%'")


# --- idempotency and only-new-data -------------------------------------------------------


def test_same_batch_twice_is_stored_once(backend: Backend) -> None:
    sent = batch([result("a", service="A"), result("b", service="B"),
                  result("c", service="C")])

    async def go(store: Store) -> None:
        first = await store.ingest(sent)
        again = await store.ingest(sent)
        assert (first.stored_new, first.only_bumped, first.duplicates) == (3, 0, 0)
        assert (again.stored_new, again.only_bumped, again.duplicates) == (0, 0, 3)
        assert again.accepted == first.accepted == ["result-a", "result-b", "result-c"]
        assert await store.counters() == {"stored_new": 3, "only_bumped": 0, "duplicates": 3,
                                          "results": 3, "events": 0}

    run(go, backend)
    assert result_rows(backend) == 3


def test_a_result_repeated_inside_one_batch_is_a_duplicate(backend: Backend) -> None:
    async def go(store: Store) -> None:
        reply = await store.ingest(batch([result("a"), result("a"), result("b", rc=2)]))
        assert reply.accepted == ["result-a", "result-b"]
        assert (reply.stored_new, reply.duplicates) == (2, 1)

    run(go, backend)


def test_only_new_data_bumps_unchanged_results_and_stores_changes(backend: Backend) -> None:
    async def go(store: Store) -> None:
        steps = [result("1", finished=100), result("2", finished=160),
                 result("3", finished=220), result("4", value=1.5, finished=280),
                 result("5", value=1.5, output="OK slow", finished=340),
                 result("6", value=1.5, output="OK slow", rc=1, finished=400),
                 result("7", value=1.5, output="OK slow", rc=1, finished=460)]
        replies = [await store.ingest(batch([r])) for r in steps]
        assert [(r.stored_new, r.only_bumped) for r in replies] == [
            (1, 0), (0, 1), (0, 1), (1, 0), (1, 0), (1, 0), (0, 1)]
        [row] = await store.states(["web1"])
        assert (row.last_check, row.last_result_id, row.output) == (460, "result-7", "OK slow")
        total, items = await store.history("web1", "HTTP", 0, 10)
        assert total == 4
        # Newest first; each row stands for the results folded into it and says until when.
        assert [(i.result_id, i.hits, i.time, i.last_seen) for i in results(items)] == [
            ("result-6", 2, 400, 460), ("result-5", 1, 340, 340),
            ("result-4", 1, 280, 280), ("result-1", 3, 100, 220)]
        newest = results(items)[0]
        assert newest.state == 1
        assert newest.perfdata == [PerfDatum(label="time", value=1.5, uom="s", warn="2")]
        assert await store.counters() == {"stored_new": 4, "only_bumped": 3, "duplicates": 0,
                                          "results": 7, "events": 0}

    run(go, backend)


def test_only_new_data_within_one_batch_in_time_order(backend: Backend) -> None:
    async def go(store: Store) -> None:
        # Sent out of order: compared in the order they happened.
        reply = await store.ingest(batch([result("3", rc=2, finished=300),
                                          result("1", finished=100),
                                          result("2", finished=200)]))
        assert (reply.stored_new, reply.only_bumped) == (2, 1)
        _, items = await store.history("web1", "HTTP", 0, 10)
        assert [(i.result_id, i.hits, i.last_seen) for i in results(items)] == [
            ("result-3", 1, 300), ("result-1", 2, 200)]

    run(go, backend)


def test_a_late_result_goes_to_history_without_replacing_the_current_one(
        backend: Backend) -> None:
    async def go(store: Store) -> None:
        await store.ingest(batch([result("new", finished=500)]))
        late = await store.ingest(batch([result("old", rc=2, output="BAD", finished=400)]))
        assert late.stored_new == 1
        again = await store.ingest(batch([result("newer", finished=560)]))
        assert again.only_bumped == 1  # still compared with the newest result, not the late one
        [row] = await store.states(["web1"])
        assert (row.output, row.last_check) == ("OK", 560)
        _, items = await store.history("web1", "HTTP", 0, 10)
        assert [i.result_id for i in results(items)] == ["result-new", "result-old"]

    run(go, backend)


# --- current states ------------------------------------------------------------------------


def full_state(**changes: Any) -> StateRow:
    values: dict[str, Any] = dict(
        host="web1", service="HTTP", state=2, state_type="SOFT", attempt=2, last_check=900.0,
        last_state_change=840.0, last_hard_state=0, last_hard_state_change=100.0,
        output="CRITICAL - refused", long_output="line 2\nline 3",
        perfdata=[PerfDatum(label="time", value=None, min=0.0, max=10.0)],
        acknowledged=True, ack_author="alice", ack_comment="on it", ack_sticky=True,
        downtimes=[Downtime(downtime_id="dt-1", host="web1", service="HTTP", start=1000.0,
                            end=4600.0, fixed=False, duration=600, author="bob",
                            comment="patching")],
        last_result_id="result-x")
    values.update(changes)
    return StateRow.model_validate(values)


def test_states_round_trip_with_acknowledgements_and_downtimes(backend: Backend) -> None:
    sent = [full_state(), full_state(service="", state=0, state_type="HARD",
                                     acknowledged=False, downtimes=[]),
            full_state(host="db1"), StateRow(host="web2")]

    async def go(store: Store) -> None:
        await store.ingest(batch(states=sent))
        assert await store.states(["web1", "db1", "nowhere"]) == sorted(
            sent[:3], key=lambda s: (s.host, s.service))
        # The scheduler is the authority: an upsert replaces every field it sends.
        cleared = full_state(acknowledged=False, ack_author="", ack_comment="",
                             ack_sticky=False, downtimes=[], state=0, state_type="HARD",
                             last_check=960.0)
        await store.ingest(batch(states=[cleared]))
        assert [s for s in await store.states(["web1"]) if s.service] == [cleared]

    run(go, backend)


def test_a_result_for_an_unknown_check_creates_its_state_and_the_scheduler_overrides_it(
        backend: Backend) -> None:
    async def go(store: Store) -> None:
        await store.ingest(batch([result("a", rc=2, output="BAD", finished=50)]))
        [first] = await store.states(["web1"])
        assert (first.state, first.output, first.last_result_id) == (2, "BAD", "result-a")
        soft = StateRow(host="web1", service="HTTP", state=2, state_type="SOFT", attempt=1,
                        last_check=110, output="BAD", last_result_id="result-b")
        reply = await store.ingest(batch([result("b", rc=2, output="BAD", finished=110)],
                                         states=[soft]))
        assert reply.only_bumped == 1
        assert await store.states(["web1"]) == [soft]

    run(go, backend)


def test_texts_and_names_round_trip_exactly(backend: Backend) -> None:
    # Quotes, backslashes, NUL, Ctrl-Z, 4-byte UTF-8; names that differ only by case or a
    # trailing space are different checks, as they are to Nagios.
    tricky = "it's \\ \"quoted\" \x00 nul \x1a ctrl-z; DROP TABLE states; -- ✓ 🚀 \\'"
    hosts = ["Web1", "web1", "web1 ", "wéb1"]

    async def go(store: Store) -> None:
        sent = [StateRow(host=h, service="HTTP", output=tricky, long_output=tricky * 3,
                         ack_comment=tricky, last_check=1.5e-7 + i, updated_at=1e9 + 0.125)
                for i, h in enumerate(hosts)]
        await store.ingest(batch(states=sent))
        await store.ingest(batch([result("t", host="web1", service="HTTP", output=tricky,
                                         value=1e-300, finished=2e9)]))
        rows = {r.host: r for r in await store.states(hosts)}
        assert sorted(rows) == sorted(hosts)
        assert [rows[h] for h in hosts if h != "web1"] == [s for s in sent if s.host != "web1"]
        bumped = rows["web1"]  # the result is newer: its texts replace the scheduler's
        assert (bumped.output, bumped.ack_comment, bumped.last_check) == (tricky, tricky, 2e9)
        [entry] = results((await store.history("web1", "HTTP", 0, 10))[1])
        assert entry.output == tricky and entry.perfdata[0].value == 1e-300

    run(go, backend)


def test_paging_and_filters(backend: Backend) -> None:
    hosts = [StateRow(host=f"host{h:02d}", state=1 if h % 4 == 0 else 0) for h in range(10)]
    services = [StateRow(host=f"host{h:02d}", service=f"svc{s}", state=(h + s) % 5)
                for h in range(10) for s in range(6)]

    async def go(store: Store) -> None:
        await store.ingest(batch(states=hosts + services))
        total, page = await store.list_hosts(3, 4)
        assert total == 10 and [r.host for r in page] == ["host03", "host04", "host05", "host06"]
        total, page = await store.list_hosts(0, 10, state=1)
        assert total == 3 and [r.host for r in page] == ["host00", "host04", "host08"]
        total, page = await store.list_hosts(20, 5)
        assert (total, page) == (10, [])
        total, page = await store.list_services(0, 100)
        assert total == 60 and page == sorted(services, key=lambda r: (r.host, r.service))
        total, page = await store.list_services(2, 3, host="host07")
        assert total == 6 and [r.service for r in page] == ["svc2", "svc3", "svc4"]
        total, page = await store.list_services(0, 100, state=4)
        assert total == 12 and all(r.state == 4 for r in page)
        total, page = await store.list_services(0, 5, problems=True)
        assert total == 36 and len(page) == 5 and all(r.state in (1, 2, 3) for r in page)
        total, page = await store.list_services(0, 100, host="host01", problems=True, state=2)
        assert total == 1 and [r.service for r in page] == ["svc1"]
        with pytest.raises(ValueError):
            await store.list_hosts(-1, 10)

    run(go, backend)


# --- events and history ----------------------------------------------------------------------


def test_events_are_idempotent_and_history_merges_them_newest_first(backend: Backend) -> None:
    events = [event("e-crit", 300), event("e-ack", 350, kind="ack", state=None)]

    async def go(store: Store) -> None:
        await store.ingest(batch([result("1", finished=100), result("2", rc=2, finished=300)],
                                 events=events))
        await store.ingest(batch(events=[*events, event("e-ok", 400, state=0)]))
        assert (await store.counters())["events"] == 3
        await store.ingest(batch([result("3", finished=400)]))
        total, items = await store.history("web1", "HTTP", 0, 100)
        assert total == 6
        assert [(i.type, entry_id(i)) for i in items] == [
            ("event", "e-ok"), ("result", "result-3"), ("event", "e-ack"),
            ("event", "e-crit"), ("result", "result-2"), ("result", "result-1")]
        assert isinstance(ack := items[2], EventEntry)
        assert ack.kind == "ack" and ack.state is None
        _, page = await store.history("web1", "HTTP", 2, 3)
        assert page == items[2:5]
        assert await store.history("web1", "nothing", 0, 10) == (0, [])

    run(go, backend)


def test_purge_keeps_the_current_result_and_forgets_old_ids(backend: Backend) -> None:
    async def go() -> None:
        store = backend.store(clock=ManualClock(wall=1000.0))
        await store.open()
        await store.ingest(batch([result("1", finished=100), result("2", rc=2, finished=200),
                                  result("3", rc=0, finished=300),
                                  result("4", rc=0, finished=9000)],
                                 events=[event("e1", 200), event("e2", 9000)]))
        # result-3 stands for results 3 and 4 (last seen 9000): it stays with the newer event.
        assert await store.purge(older_than=5000) == 3
        total, items = await store.history("web1", "HTTP", 0, 10)
        assert total == 2
        assert [entry_id(i) for i in items] == ["e2", "result-3"]
        # The ids were received at 1000: forgotten, so a resent result counts again.
        reply = await store.ingest(batch([result("4", rc=0, finished=9000)]))
        assert (reply.duplicates, reply.only_bumped) == (0, 1)
        await store.close()

    asyncio.run(go())


def test_result_ids_expire_after_the_retention_as_new_ones_arrive(backend: Backend) -> None:
    async def go() -> None:
        clock = ManualClock(wall=10_000.0)
        store = backend.store(clock=clock, id_retention=3600)
        await store.open()
        await store.ingest(batch([result("a", finished=100)]))
        clock.advance(3000)
        await store.ingest(batch([result("b", finished=200)]))
        assert (await store.ingest(batch([result("a", finished=100)]))).duplicates == 1
        clock.advance(700)
        await store.ingest(batch([result("c", finished=300)]))  # a is 3700 s old: forgotten
        again = await store.ingest(batch([result("a", finished=100), result("b")]))
        assert (again.duplicates, again.only_bumped) == (1, 1)
        await store.close()

    asyncio.run(go())


# --- concurrency ---------------------------------------------------------------------------


def test_concurrent_ingests_land_exactly_once(backend: Backend) -> None:
    # 40 senders of 5 batches each; every sender resends 20 ids of its neighbour's.
    def ids_of(sender: int) -> list[int]:
        return list(range(sender * 100, sender * 100 + 100)) + list(
            range(((sender + 1) % 40) * 100, ((sender + 1) % 40) * 100 + 20))

    def make(i: int) -> CheckResult:
        return result(f"{i:06d}", host=f"h{i % 13}", service=f"s{i % 17}", rc=i % 3,
                      output=f"out {i % 5}", finished=float(i))

    async def send(store: Store, sender: int) -> list[tuple[int, int, int]]:
        ids = ids_of(sender)
        replies = []
        for start in range(0, len(ids), 24):
            reply = await store.ingest(batch([make(i) for i in ids[start:start + 24]]))
            assert len(reply.accepted) == len(ids[start:start + 24])
            replies.append((reply.stored_new, reply.only_bumped, reply.duplicates))
        return replies

    async def go(store: Store) -> None:
        replies = await asyncio.gather(*(send(store, s) for s in range(40)))
        flat = [r for rs in replies for r in rs]
        assert sum(new + bumped for new, bumped, _ in flat) == 4000
        assert sum(dup for _, _, dup in flat) == 800
        counters = await store.counters()
        assert counters["results"] == 4000 and counters["duplicates"] == 800

    run(go, backend)
    assert backend.scalar("SELECT count(*) FROM seen_results") == 4000
    assert result_rows(backend) == stored_new(backend)


# --- durability ----------------------------------------------------------------------------

CHILD = textwrap.dedent("""\
    import asyncio, sys
    from tests.stores import open_spec
    from shinha.wire import CheckResult, IngestBatch, StateRow

    async def main() -> None:
        store = open_spec(sys.argv[1])
        await store.open()
        n = 0
        while True:
            results = [CheckResult(result_id=f"r-{n:05d}-{i:03d}", host=f"h{i % 7}",
                                   service=f"s{i}", return_code=0,
                                   output=f"out {n // 3 if i % 2 else 0}",
                                   finished=1000.0 + n) for i in range(100)]
            states = [StateRow(host=r.host, service=r.service, last_check=r.finished,
                               output=r.output, last_result_id=r.result_id) for r in results]
            reply = await store.ingest(IngestBatch(scheduler="s", results=results,
                                                   states=states))
            print(n, " ".join(reply.accepted), flush=True)
            n += 1

    asyncio.run(main())
""")


def test_sigkill_right_after_ingest_loses_nothing_accepted(backend: Backend) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, backend.spec()],
                             stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    accepted: list[str] = []
    last = -1
    try:
        assert child.stdout is not None
        while last < 30:
            line = child.stdout.readline()
            assert line, "the child died before accepting 30 batches"
            number, *ids = line.split()
            last = int(number)
            accepted += ids
        # Killed while it is already inside its next ingest: no clean shutdown at all.
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert len(accepted) == 3100

    async def go(store: Store) -> None:
        counters = await store.counters()
        # Everything accepted is there; batches the child committed after the last line we
        # read may be too, but only whole ones.
        assert counters["results"] >= 3100 and counters["results"] % 100 == 0
        # Resent with other content: every id is known, none is stored again.
        resent = await store.ingest(batch([CheckResult(result_id=rid, host="h0", return_code=2)
                                           for rid in accepted]))
        assert (resent.duplicates, resent.stored_new, resent.only_bumped) == (3100, 0, 0)
        rows = await store.states([f"h{i}" for i in range(7)])
        assert len(rows) == 100 and min(r.last_check for r in rows) >= 1000.0 + last
        assert counters["stored_new"] + counters["only_bumped"] == counters["results"]

    run(go, backend)
    if isinstance(backend, SqliteBackend):
        assert backend.sql("PRAGMA integrity_check")[0][0] == "ok"
    assert result_rows(backend) == stored_new(backend)


def test_sqlite_fsyncs_each_commit(tmp_path: Path) -> None:
    async def go(store: Store) -> tuple[Any, ...]:
        assert isinstance(store, SqliteStore)
        # Private on purpose: the durability choice is a per-connection setting.
        return await store._call(lambda c: (c.execute("PRAGMA journal_mode").fetchone()[0],
                                            c.execute("PRAGMA synchronous").fetchone()[0]))

    assert run(go, SqliteBackend(tmp_path / "s.db")) == ("wal", 2)  # 2 = FULL


def test_counters_survive_a_restart(backend: Backend) -> None:
    async def first(store: Store) -> None:
        await store.ingest(batch([result("a"), result("b")]))

    async def second(store: Store) -> dict[str, int]:
        return await store.counters()

    run(first, backend)
    assert run(second, backend)["only_bumped"] == 1


def test_sqlite_given_a_directory_uses_the_default_file(tmp_path: Path) -> None:
    async def first(store: Store) -> None:
        await store.ingest(batch([result("a"), result("b")]))

    run(first, SqliteBackend(tmp_path))
    assert (tmp_path / DB_FILENAME).exists()


# --- refusals ------------------------------------------------------------------------------


def test_a_newer_schema_is_refused(backend: Backend) -> None:
    run(Store.counters, backend)
    backend.sql("UPDATE meta SET value = '99' WHERE `key` = 'schema_version'")
    with pytest.raises(StorageError,
                       match=f"schema version 99, newer than the {STORE_SCHEMA_VERSION}"):
        run(Store.counters, backend)


def test_a_version_1_database_is_migrated_and_keeps_its_rows(backend: Backend) -> None:
    run(Store.counters, backend)
    # Made to look like a version-1 database.
    backend.sql("ALTER TABLE states DROP COLUMN updated_at")
    backend.sql("ALTER TABLE states DROP COLUMN alert")
    for column in ("notification_type", "contact", "command", "return_code", "action_id"):
        backend.sql(f"ALTER TABLE events DROP COLUMN {column}")
    backend.sql("INSERT INTO states (host, service, state, state_type, attempt, "
                "last_check, last_state_change, last_hard_state, last_hard_state_change, "
                "output, long_output, perfdata, acknowledged, ack_author, ack_comment, "
                "ack_sticky, downtimes, last_result_id) VALUES ('h', 's', 2, 'HARD', 3, "
                "1, 1, 2, 1, 'old', '', '[]', 1, 'alice', 'c', 0, '[]', 'r')")
    backend.sql("UPDATE meta SET value = '1' WHERE `key` = 'schema_version'")

    async def states(store: Store) -> list[StateRow]:
        return await store.states(["h"])

    rows = run(states, backend)
    assert [(r.output, r.acknowledged, r.updated_at) for r in rows] == [("old", True, 0.0)]
    assert rows[0].alert == AlertState()
    assert int(backend.scalar("SELECT value FROM meta WHERE `key` = 'schema_version'")) == 3


def test_sqlite_refuses_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not a database\n" * 400)
    with pytest.raises(StorageError, match="not a shinha data-server database, or it is corrupt"):
        run(Store.counters, SqliteBackend(path))


def test_a_foreign_database_is_refused(backend: Backend) -> None:
    backend.sql("CREATE TABLE something (x INTEGER)")
    with pytest.raises(StorageError, match="not a shinha data-server's"):
        run(Store.counters, backend)


def test_a_closed_store_refuses_calls(backend: Backend) -> None:
    async def go() -> None:
        store = backend.store()
        with pytest.raises(StorageError, match="not open"):
            await store.counters()
        await store.open()
        await store.close()
        with pytest.raises(StorageError, match="not open"):
            await store.ingest(batch([result("a")]))

    asyncio.run(go())


def test_both_backends_have_the_same_tables_and_columns(tmp_path: Path,
                                                        mariadb_node: mariadb.MariaDB) -> None:
    """The schemas are written twice (SQLite's and MariaDB's types differ): they must not
    drift apart."""
    lite, maria = SqliteBackend(tmp_path / "s.db"), MariadbBackend(mariadb_node)
    run(Store.counters, lite)
    run(Store.counters, maria)
    for table in SHARED_TABLES:
        in_sqlite = [r[1] for r in lite.sql(f"PRAGMA table_info({table})")]
        in_mariadb = [r[0] for r in maria.sql(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            f"DATABASE() AND table_name = '{table}' ORDER BY ordinal_position")]
        assert in_sqlite and in_sqlite == in_mariadb, table
    indexes = {r[0] for r in lite.sql("SELECT name FROM sqlite_master WHERE type = 'index' "
                                      "AND name NOT LIKE 'sqlite_%'")}
    assert indexes <= {r[0] for r in maria.sql(
        "SELECT DISTINCT index_name FROM information_schema.statistics "
        "WHERE table_schema = DATABASE()")}

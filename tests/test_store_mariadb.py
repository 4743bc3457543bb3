"""The MariaDB store's own matters, on real mariadbd processes: the database epoch fences
stale writers, read-only nodes and bad accounts are refused with the node named, a killed
server loses no acknowledged batch, and reads can go to a replica."""

from __future__ import annotations

import asyncio
import random
import socket
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from shinha.config import load_config
from shinha.daemon import process
from shinha.daemon.base import DaemonContext
from shinha.dataserver.daemon import DataserverDaemon
from shinha.dataserver.mariadb import MariadbStore
from shinha.db.conn import Session, connect, endpoint, sql_literal
from shinha.db.fence import read_fence, write_fence
from shinha.db.options import Node, mariadb_options
from shinha.errors import (
    DatabaseError,
    DatabaseFenced,
    DatabaseFull,
    DatabaseReadOnly,
    DatabaseUnreachable,
    StorageError,
)
from shinha.wire import CheckResult, IngestBatch
from tests import mariadb
from tests.cluster import free_port
from tests.fs import fill, small_tmpfs
from tests.stores import PASSWORD, USER, MariadbBackend, options, writable_node


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[mariadb.MariaDB]:
    mariadb.require()
    server = writable_node(tmp_path_factory.mktemp("store-mariadb-own"), "127.0.0.2", 2)
    try:
        yield server
    finally:
        server.stop()


def as_node(server: mariadb.MariaDB) -> Node:
    return Node(host=server.address, port=server.port)


def result(rid: str, service: str = "HTTP", rc: int = 0) -> CheckResult:
    return CheckResult(result_id=f"result-{rid}", host="web1", service=service,
                       return_code=rc, output=f"rc {rc}", finished=1000.0)


def batch(*results: CheckResult) -> IngestBatch:
    return IngestBatch(scheduler="scheduler-1", results=list(results))


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 20,
                     interval: float = 0.2) -> None:
    """Poll a blocking predicate (off the loop) until it holds; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            seen = getattr(predicate, "last", "")
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}: {seen}")
        await asyncio.sleep(interval)


class LockWaits:
    """True once `count` transactions wait for a row lock. InnoDB refreshes what innodb_trx
    shows only when it was not read for 0.1 s: poll it more slowly than that."""

    def __init__(self, server: mariadb.MariaDB, count: int) -> None:
        self.server = server
        self.count = count
        self.last: list[list[str]] = []

    def __call__(self) -> bool:
        self.last = self.server.sql("SELECT trx_state, trx_query FROM "
                                    "information_schema.innodb_trx")
        return sum(1 for state, _ in self.last if state == "LOCK WAIT") >= self.count


async def session(backend: MariadbBackend) -> Session:
    """A connection of the data-server's account, to hold locks as another writer would."""
    return await connect(endpoint(backend.options, backend.options.ha_hosts[0]))


# --- the database epoch ------------------------------------------------------------------------


def test_the_fence_refuses_a_stale_writer(node: mariadb.MariaDB) -> None:
    backend = MariadbBackend(node)
    here = as_node(node)

    async def go() -> None:
        old, new = MariadbStore(backend.options), MariadbStore(backend.options)
        assert old.set_primary(here, 1) and new.set_primary(here, 2)
        async with old, new:
            await write_fence(here, 1, backend.options)
            assert (await old.ingest(batch(result("a")))).stored_new == 1
            # Not promoted to epoch 2 yet: the newer writer waits for the fence too.
            with pytest.raises(DatabaseFenced):
                await new.ingest(batch(result("b", "B")))
            await write_fence(here, 2, backend.options)
            with pytest.raises(DatabaseFenced, match=f"database {node.node}: holds database "
                               "epoch 2, this writer 1") as refused:
                await old.ingest(batch(result("b", "B"), result("c", "C")))
            assert (refused.value.held, refused.value.mine) == (2, 1)
            with pytest.raises(DatabaseFenced):
                await old.purge(older_than=1e12)
            assert await old.counters() == await new.counters()
            assert (await new.counters())["results"] == 1
            assert backend.scalar("SELECT count(*) FROM results WHERE result_id <> "
                                  "'result-a'") == 0
            assert backend.scalar("SELECT count(*) FROM seen_results") == 1
            assert (await new.ingest(batch(result("b", "B")))).stored_new == 1
            # The epoch never goes back, whoever asks.
            with pytest.raises(DatabaseFenced):
                await write_fence(here, 1, backend.options)
            assert await read_fence(here, backend.options) == 2
            assert not old.set_primary(here, 1)  # lower than the epoch it holds: refused

    asyncio.run(go())


def test_the_fence_waits_for_the_writer_in_flight_then_refuses_it(
        node: mariadb.MariaDB) -> None:
    backend = MariadbBackend(node)
    here = as_node(node)

    async def go() -> None:
        async with MariadbStore(backend.options) as store:
            await write_fence(here, 2, backend.options)
            store.set_primary(here, 2)
            assert (await store.ingest(batch(result("first")))).stored_new == 1
            other = await session(backend)
            try:
                # Another writer holds the check: the ingest passes the fence, then waits.
                await other.begin()
                await other.fetchall("SELECT id FROM states WHERE host = 'web1' FOR UPDATE")
                ingest = asyncio.ensure_future(store.ingest(batch(result("a", rc=1))))
                await wait_until(LockWaits(node, 1), "the ingest to wait for its turn")
                promote = asyncio.ensure_future(write_fence(here, 3, backend.options))
                await wait_until(LockWaits(node, 2), "the fence to wait for the ingest")
                assert not ingest.done() and not promote.done()
                await other.rollback()
                # Inside before the fence moved: it commits, then the fence moves.
                assert (await ingest).stored_new == 1
                await promote
            finally:
                other.close()
            with pytest.raises(DatabaseFenced):
                await store.ingest(batch(result("b")))
            assert (await store.counters())["results"] == 2

    asyncio.run(go())


def test_a_primary_published_during_an_ingest_takes_it(node: mariadb.MariaDB) -> None:
    backend = MariadbBackend(node)
    here = as_node(node)

    async def go() -> None:
        async with MariadbStore(backend.options) as store:
            await write_fence(here, 1, backend.options)
            store.set_primary(here, 1)
            promoter = await session(backend)
            try:
                # What write_fence holds while it moves the epoch.
                await promoter.begin()
                await promoter.fetchall("SELECT epoch FROM shinha_fence WHERE id = 1 FOR UPDATE")
                ingest = asyncio.ensure_future(store.ingest(batch(result("a"))))
                await wait_until(LockWaits(node, 1), "the ingest to wait on the fence")
                await promoter.execute("UPDATE shinha_fence SET epoch = 4 WHERE id = 1")
                assert store.set_primary(here, 4)  # the dispatch, while the ingest waits
                await promoter.commit()
                assert (await ingest).stored_new == 1  # fenced at 1, done again at 4
            finally:
                promoter.close()
            assert store.primary.epoch == 4

    asyncio.run(go())


def test_concurrent_ingests_of_two_dataservers_count_every_result_once(
        node: mariadb.MariaDB) -> None:
    """Ingests run side by side (several per store, two stores as two data-servers) on the
    same checks, resending each other's results while they are in flight: every result is
    counted once, and each check's hits add up to its results (no lost update)."""
    backend = MariadbBackend(node)
    here = as_node(node)
    rng = random.Random(7)
    checks = [f"S{i}" for i in range(12)]
    sent: list[CheckResult] = []
    plans: list[list[IngestBatch]] = [[] for _ in range(8)]
    for n in range(8 * 15):
        items = []
        for _ in range(30):
            if sent and rng.random() < 0.25:
                items.append(rng.choice(sent))  # a resend, maybe of a batch in flight
                continue
            r = CheckResult(result_id=f"result-{len(sent):04d}", host="web1",
                            service=rng.choice(checks), return_code=rng.choice((0, 0, 1)),
                            output=rng.choice(("same", "same", "other")),
                            finished=1000.0 + len(sent))
            sent.append(r)
            items.append(r)
        plans[n % 8].append(IngestBatch(scheduler=f"scheduler-{n % 8}", results=items))
    by_check: dict[str, int] = {}
    for r in sent:
        by_check[r.service] = by_check.get(r.service, 0) + 1

    async def push(store: MariadbStore, batches: list[IngestBatch]) -> None:
        for b in batches:
            await store.ingest(b)

    async def go() -> dict[str, int]:
        one, two = MariadbStore(backend.options), MariadbStore(backend.options)
        async with one, two:
            await write_fence(here, 1, backend.options)
            assert one.set_primary(here, 1) and two.set_primary(here, 1)
            await asyncio.gather(*(push(one if i % 2 else two, plan)
                                   for i, plan in enumerate(plans)))
            return await one.counters()

    counters = asyncio.run(go())
    total = sum(len(b.results) for plan in plans for b in plan)
    assert counters["results"] == len(sent)
    assert counters["duplicates"] == total - len(sent)
    assert counters["stored_new"] + counters["only_bumped"] == len(sent)
    assert backend.scalar("SELECT count(*) FROM seen_results") == len(sent)
    assert backend.scalar("SELECT count(DISTINCT result_id) FROM results") == \
        backend.scalar("SELECT count(*) FROM results") == counters["stored_new"]
    # Each check: the retired rows' hits plus the current row's make its results.
    hits = {str(service): int(n) for service, n in backend.sql(
        "SELECT s.service, s.res_hits + coalesce(sum(r.hits), 0) FROM states s LEFT JOIN "
        "results r ON r.check_id = s.id AND r.id <> s.res_row GROUP BY s.id")}
    assert hits == by_check


# --- refusals --------------------------------------------------------------------------------


def test_a_read_only_node_refuses_writes_and_stores_nothing(node: mariadb.MariaDB) -> None:
    backend = MariadbBackend(node)

    async def go() -> None:
        async with MariadbStore(backend.options) as store:
            assert (await store.ingest(batch(result("a")))).stored_new == 1
            node.sql("SET GLOBAL read_only = 1")
            try:
                with pytest.raises(DatabaseReadOnly, match=f"database {node.node}: is read-only"):
                    await store.ingest(batch(result("b", "B"), result("c", "C")))
                with pytest.raises(DatabaseReadOnly):
                    await store.sweep_stale(older_than=1e12, now=1e12)
                assert (await store.counters())["results"] == 1  # reads still work
            finally:
                node.sql("SET GLOBAL read_only = 0")
            assert backend.scalar("SELECT count(*) FROM results") == 1
            assert (await store.ingest(batch(result("b", "B")))).stored_new == 1

    asyncio.run(go())


def test_a_full_disk_is_named_and_loses_nothing(tmp_path: Path) -> None:
    """The primary's disk fills up: the ingest fails naming the node and the full disk; once
    space is freed the batch sent again is stored, every result exactly once."""
    with small_tmpfs(tmp_path / "node1", "300M") as disk:
        server = writable_node(tmp_path, "127.0.0.2", 1)
        try:
            backend = MariadbBackend(server)

            def big(tag: str) -> IngestBatch:
                return IngestBatch(scheduler="scheduler-1", results=[CheckResult(
                    result_id=f"{tag}-{i:06d}", host="web1", service=f"S{i % 50}",
                    return_code=0, output=f"{tag} {i} " + "x" * 200, finished=1000.0 + i)
                    for i in range(2000)])

            async def go() -> dict[str, int]:
                async with MariadbStore(backend.options, statement_timeout=10) as store:
                    await store.ingest(batch(result("first")))
                    filler = fill(disk)
                    with pytest.raises(DatabaseFull, match=f"database {server.node}: its "
                                       "disk is full") as full:
                        await store.ingest(big("full"))
                    assert full.value.node == server.node
                    filler.unlink()
                    reply = await store.ingest(big("full"))  # the scheduler sends it again
                    assert reply.stored_new + reply.duplicates == 2000
                    return await store.counters()

            counters = asyncio.run(go())
            assert counters["results"] == 2001
            assert backend.scalar("SELECT count(*) FROM results") == 2001
            assert backend.scalar("SELECT count(DISTINCT result_id) FROM results") == 2001
        finally:
            server.stop()


def test_wrong_credentials_name_the_node_and_the_user_never_the_password(
        node: mariadb.MariaDB, caplog: pytest.LogCaptureFixture) -> None:
    backend = MariadbBackend(node)
    secret = "Wrong-Secret-Pass-42"
    store = MariadbStore(options(node, backend.database, dbpass=secret))
    with pytest.raises(DatabaseError) as refused:
        asyncio.run(store.open())
    message = str(refused.value)
    assert message.startswith(f"database {node.node}: access denied for user '{USER}'")
    assert "dbpass" in message and "shinha db init" in message
    assert secret not in message and secret not in caplog.text


def test_an_unreachable_node_is_named_and_open_waits_for_it() -> None:
    port = free_port("127.0.0.2")
    opts = mariadb_options("m", {"ha_hosts": f"127.0.0.2:{port}", "dbpass": PASSWORD,
                                 "connect_timeout": "1"}, {})

    async def go() -> None:
        async with MariadbStore(opts) as store:  # a data tier failing over: start anyway
            with pytest.raises(DatabaseUnreachable, match=f"database 127.0.0.2:{port}: "
                               "unreachable"):
                await store.ingest(batch(result("a")))
            with pytest.raises(DatabaseUnreachable):
                await store.counters()

    asyncio.run(go())


def test_a_node_that_never_answers_times_out() -> None:
    with socket.socket() as listener:  # accepts connections (backlog), never greets
        listener.bind(("127.0.0.2", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        opts = mariadb_options("m", {"ha_hosts": f"127.0.0.2:{port}", "dbpass": PASSWORD,
                                     "connect_timeout": "0.5"}, {})

        async def go() -> None:
            async with MariadbStore(opts) as store:
                started = time.monotonic()
                with pytest.raises(DatabaseUnreachable, match=r"no connection within 0\.5 s"):
                    await store.ingest(batch(result("a")))
                assert time.monotonic() - started < 5

        asyncio.run(go())


def test_no_primary_published_refuses_writes() -> None:
    opts = mariadb_options("m", {"ha_hosts": "127.0.0.2:3306"}, {})

    async def go() -> None:
        store = MariadbStore(opts)
        assert store.set_primary(None, 3)
        async with store:
            with pytest.raises(DatabaseUnreachable, match="no database primary is published "
                               r"\(database epoch 3\)"):
                await store.ingest(batch(result("a")))

    asyncio.run(go())


# --- a killed server ---------------------------------------------------------------------------


def test_kill_9_during_an_ingest_then_the_batch_resent_is_stored_once(tmp_path: Path) -> None:
    mariadb.require()
    server = writable_node(tmp_path, "127.0.0.3", 3)
    try:
        backend = MariadbBackend(server)
        first = batch(*(result(f"a{i}", f"s{i}") for i in range(50)))
        second = batch(*(result(f"b{i}", f"s{i}", rc=2) for i in range(50)))

        async def go() -> None:
            async with MariadbStore(backend.options) as store:
                assert (await store.ingest(first)).stored_new == 50
                other = await session(backend)
                # Hold one check's row: the ingest stops half-way through its writes.
                await other.begin()
                await other.fetchall("SELECT id FROM states WHERE service = 's37' FOR UPDATE")
                ingest = asyncio.ensure_future(store.ingest(second))
                await wait_until(LockWaits(server, 1), "the ingest to be half-way")
                await asyncio.to_thread(server.kill)
                with pytest.raises(DatabaseUnreachable, match=f"database {server.node}"):
                    await ingest
                other.close()
                await asyncio.to_thread(server.start)
                server.sql("SET GLOBAL read_only = 0")  # promoted again
                again = await store.ingest(second)
                assert (again.stored_new, again.duplicates) == (50, 0)
                twice = await store.ingest(second)
                assert (twice.stored_new, twice.duplicates) == (0, 50)
                counters = await store.counters()
                assert (counters["results"], counters["stored_new"]) == (100, 100)

        asyncio.run(go())
        assert backend.scalar("SELECT count(*) FROM results") == 100
        assert backend.scalar("SELECT count(DISTINCT result_id) FROM results") == 100
        assert backend.scalar("SELECT count(*) FROM seen_results") == 100
    finally:
        server.stop()


# --- reads from a replica ----------------------------------------------------------------------


def test_reads_from_a_replica_and_its_lag(tmp_path: Path) -> None:
    mariadb.require()
    primary = writable_node(tmp_path, "127.0.0.2", 4)
    replica = mariadb.MariaDB(tmp_path, "127.0.0.3", 5).start()
    try:
        backend = MariadbBackend(primary)
        mariadb.make_users(replica, database=backend.database, user=USER, password=PASSWORD)
        for server in (primary, replica):  # replica_lag's privilege
            server.sql(f"SET SESSION sql_log_bin = 0; GRANT SLAVE MONITOR ON *.* TO '{USER}'@'%'")
        primary.sql("SET SESSION sql_log_bin = 0; CREATE USER 'repl'@'%' IDENTIFIED BY "
                    "'repl-pass-123'; GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'")
        replica.sql(f"CHANGE MASTER TO MASTER_HOST='{primary.address}', "
                    f"MASTER_PORT={primary.port}, MASTER_USER='repl', "
                    "MASTER_PASSWORD='repl-pass-123', MASTER_USE_GTID=slave_pos; START SLAVE")
        there = as_node(replica)

        async def go() -> None:
            async with MariadbStore(backend.options) as store:
                await store.ingest(batch(*(result(f"{i}", f"s{i}", rc=i % 3)
                                           for i in range(20))))

                def caught_up() -> bool:
                    # The replica applies the schema asynchronously too: until it has the
                    # table, there is nothing to count.
                    if replica.value("SELECT count(*) FROM information_schema.tables "
                                     f"WHERE table_schema = '{backend.database}' "
                                     "AND table_name = 'results'") != "1":
                        return False
                    return replica.value("SELECT count(*) FROM results",
                                         backend.database) == "20"

                await wait_until(caught_up, "the replica to apply the batch")
                assert await store.states(["web1"], replica=there) == \
                    await store.states(["web1"])
                assert await store.counters(replica=there) == await store.counters()
                assert await store.history("web1", "s4", 0, 10, replica=there) == \
                    await store.history("web1", "s4", 0, 10)
                total, rows = await store.list_services(0, 5, problems=True, replica=there)
                assert total == 13 and len(rows) == 5
                lag = await store.replica_lag(there)
                assert lag is not None and 0 <= lag < 60
                with pytest.raises(DatabaseError, match="is not a replica"):
                    await store.replica_lag(store.options.ha_hosts[0])
                # A replica is never written, even by a store told it is the primary.
                store.set_primary(there, 1)
                with pytest.raises(DatabaseReadOnly):
                    await store.ingest(batch(result("x")))

        asyncio.run(go())
    finally:
        replica.stop()
        primary.stop()


# --- the data-server with a mariadb module -------------------------------------------------------

DB_PASSWORD = "Secret-DB-Pass-77"
SECRET = "cluster-secret-for-the-store-test"


def test_a_dataserver_with_a_mariadb_module_answers_503_and_masks_its_password(
        tmp_path: Path) -> None:
    port = free_port("127.0.0.2")
    (tmp_path / "resource.cfg").write_text(f"$USER5$={DB_PASSWORD}\n")
    (tmp_path / "shinha.cfg").write_text(
        f"cfg_file=objects.cfg\nresource_file=resource.cfg\ncluster_secret={SECRET}\n"
        "workdir=var\n")
    (tmp_path / "objects.cfg").write_text(textwrap.dedent(f"""\
        define module {{
            module_name     store-maria
            module_type     mariadb
            ha_hosts        127.0.0.2:{port}, 127.0.0.3:{port}
            dbpass          $USER5$
            connect_timeout 1
            retention_days  7
        }}
        define dataserver {{
            dataserver_name dataserver-1
            address         127.0.0.1
            port            {free_port()}
            modules         store-maria
        }}
        """))
    loaded = load_config(tmp_path / "shinha.cfg")
    assert loaded.ok and loaded.config is not None, loaded.errors
    config = loaded.config
    assert DB_PASSWORD in process._secrets(config)
    link = config.daemons["dataserver"]["dataserver-1"]
    daemon = DataserverDaemon(DaemonContext(config=config, link=link, state_root=tmp_path))
    assert isinstance(daemon.store, MariadbStore)
    # No primary until an arbiter publishes one: not even the first of ha_hosts.
    assert daemon.store.primary.node is None
    assert daemon.store.primary.epoch == 0 and daemon.retention == 7 * 86400

    async def go() -> None:
        await daemon.store.open()  # the primary is down: the data-server starts anyway
        server = TestServer(daemon.build_app())
        await server.start_server()
        try:
            async def ingest() -> dict[str, str]:
                async with aiohttp.ClientSession() as http:
                    body = batch(result("a")).model_dump_json()
                    async with http.post(server.make_url("/api/ingest"), data=body, headers={
                            "Authorization": f"Bearer {SECRET}"}) as reply:
                        assert reply.status == 503
                        answer: dict[str, str] = await reply.json()
                        assert answer["error"] == "storage_unavailable"
                        return answer

            assert "no database primary is published" in (await ingest())["message"]
            assert daemon.apply_database(Node(host="127.0.0.2", port=port), 1)
            assert f"database 127.0.0.2:{port}: unreachable" in (await ingest())["message"]
            assert daemon.apply_database(Node(host="127.0.0.3", port=port), 2)
            assert not daemon.apply_database(Node(host="127.0.0.2", port=port), 1)
            store = daemon.owns().store
            assert store == f"mariadb 127.0.0.3:{port}/shinha (database epoch 2)"
            assert DB_PASSWORD not in daemon.owns().model_dump_json()
        finally:
            await server.close()
            await daemon.store.close()

    asyncio.run(go())


def test_sql_literals() -> None:
    assert [sql_literal(v) for v in ("it's a \\ \0 \x1a ✓", 7, True, None, 1.5, 1e-300)] == [
        "'it\\'s a \\\\ \\0 \\Z ✓'", "7", "1", "NULL", "1.5e0", "1e-300"]
    for bad in (float("inf"), float("nan")):
        with pytest.raises(StorageError):
            sql_literal(bad)
    with pytest.raises(TypeError):
        sql_literal(b"bytes")

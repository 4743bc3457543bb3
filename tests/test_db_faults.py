"""Faults of the replicated MariaDB tier beyond kill -9 of the primary (tests/test_db_cluster.py),
all with real processes: throw-away mariadbd nodes (tests/mariadb.py) set up by `shinha db
init`, and the daemons of the two-host example (tests/dbcluster.py).

- the primary stopped (SIGSTOP) for half the detection window: no failover;
- the master arbiter and the primary killed together: the spare arbiter promotes the replica;
- writers that missed the new database epoch (a store in this process, a data-server stopped
  through the failover) cannot write; the old primary, restarted, is never written to and
  becomes a replica of the new one;
- semi-sync falls back to asynchronous when the replica stops: shown as unprotected, then
  protected again;
- a node of another cluster and a node our accounts cannot log in to, in ha_hosts: named with
  what to do, and never promoted.

Every result a receiver answered 202 must be stored exactly once on the primary of the end.
Windows are measured on the monotonic clock; waits are on conditions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shinha.dataserver.mariadb import MariadbStore
from shinha.db.options import MariadbOptions, Node, mariadb_options
from shinha.errors import DatabaseFenced, DatabaseReadOnly
from shinha.wire import CheckResult, IngestBatch
from tests import mariadb
from tests.cluster import ROOT, Cluster, wait_for
from tests.dbcluster import (
    ADMIN_PASS,
    BOOT_PASS,
    BOOT_USER,
    DB_PASS,
    REPL_PASS,
    bootstrap_account,
    count_results,
    db_cluster,
    db_init,
    fresh_nodes,
    module,
)
from tests.ha import leaders, ping

#: dbcluster.module's ha_connect_retries × ha_check_interval: failed checks of the primary
#: before a failover may happen.
RETRIES, INTERVAL = 3, 0.5
WINDOW = RETRIES * INTERVAL
ARBITERS = ("arbiter-master", "arbiter-spare")
DS = "dataserver-master"


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[mariadb.MariaDB]]:
    """Two fresh nodes (primary and replica once `shinha db init` ran)."""
    with fresh_nodes(tmp_path / "db") as nodes:
        yield nodes


# --- what the cluster says ----------------------------------------------------------------------

def leader_view(c: Cluster) -> dict[str, Any] | None:
    """The /cluster of the arbiter that leads (None while none answers as leading)."""
    for name in ARBITERS:
        if name not in c.procs or c.procs[name].poll() is not None:
            continue
        try:
            status, view = c.request(name, "GET", "/cluster", timeout=2.0)
        except OSError:
            continue
        if status == 200 and view["leading"]:
            return dict(view)
    return None


def topology(c: Cluster) -> dict[str, Any]:
    """The database topology the leading arbiter publishes ({} when none leads)."""
    view = leader_view(c)
    return dict(view["database"]["topology"]) if view and view["database"] else {}


def published(c: Cluster, node: mariadb.MariaDB, above: int = 0) -> dict[str, Any] | None:
    """The topology, once it publishes `node` as primary at a database epoch above `above`."""
    topo = topology(c)
    return topo if topo.get("primary") == node.node and topo["epoch"] > above else None


def node_view(c: Cluster, node: mariadb.MariaDB) -> dict[str, Any] | None:
    """The leading arbiter's last probe of `node`."""
    view = leader_view(c)
    if not view or not view["database"]:
        return None
    return next((dict(n) for n in view["database"]["nodes"] if n["node"] == node.node), None)


# --- load and what became of it -----------------------------------------------------------------

class Load:
    """Steady passive load: a batch of results to receiver-master every `every` seconds, from
    a thread. `accepted` holds the ids answered 202 (those must be stored exactly once)."""

    def __init__(self, c: Cluster, tag: str, per_batch: int = 4, every: float = 0.1) -> None:
        self.c, self.tag, self.per_batch, self.every = c, tag, per_batch, every
        self.accepted: set[str] = set()
        self.refused = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"load-{tag}", daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> set[str]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        return self.ids()

    def ids(self) -> set[str]:
        with self._lock:
            return set(self.accepted)

    def more(self, n: int = 20, timeout: float = 30) -> set[str]:
        """Wait until `n` more results than now are accepted; return every accepted id."""
        target = len(self.ids()) + n
        wait_for(lambda: len(self.ids()) >= target, timeout, f"{n} more results accepted")
        return self.ids()

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(self.every):
            ids = [f"{self.tag}-{uuid.uuid4().hex[:16]}" for _ in range(self.per_batch)]
            results = [{"host": f"h{(n + i) % 4}", "service": "PASSIVE",
                        "return_code": (n + i) % 3, "output": f"{self.tag} {n + i}",
                        "result_id": rid} for i, rid in enumerate(ids)]
            n += self.per_batch
            try:
                status, _ = self.c.request("receiver-master", "POST", "/api/results",
                                           {"results": results}, timeout=5.0)
            except OSError:
                status = 0
            with self._lock:
                if status == 202:
                    self.accepted.update(ids)
                else:
                    self.refused += 1


def stored_once(c: Cluster, server: mariadb.MariaDB, ids: set[str], timeout: float,
                what: str) -> None:
    """Wait until every id is in `server`'s results, then require each exactly once."""
    assert ids, "no result was accepted: the load did not run"
    counts: dict[str, int] = {}

    def all_there() -> bool:
        counts.update(count_results(server, ids))
        return all(v >= 1 for v in counts.values())

    try:
        c.wait(all_there, timeout, what)
    except AssertionError:
        missing = sorted(i for i, v in counts.items() if v == 0)
        raise AssertionError(f"{len(missing)} of {len(ids)} accepted results missing on "
                             f"{server.node} (e.g. {missing[:5]})\n{c.tails()}") from None
    twice = {i: v for i, v in counts.items() if v > 1}
    assert not twice, f"stored more than once on {server.node}: {twice}"


def own_writes(server: mariadb.MariaDB) -> int:
    """The last seqno of a transaction that `server` itself originated (domain 0), from
    @@gtid_binlog_state (one domain-server_id-seqno per server that wrote): 0 if none."""
    state = server.value("SELECT @@gtid_binlog_state")
    for gtid in filter(None, state.split(",")):
        domain, server_id, seqno = (int(x) for x in gtid.strip().split("-"))
        if domain == 0 and server_id == server.server_id:
            return seqno
    return 0


def replicates_from(server: mariadb.MariaDB) -> str:
    """host:port of the primary `server` replicates from ('' when it is no replica)."""
    done = subprocess.run([mariadb.CLIENT, f"--socket={server.socket}", "-uroot", "-B", "-e",
                           "SHOW SLAVE STATUS"], capture_output=True, text=True, check=True,
                          timeout=30)
    lines = done.stdout.splitlines()
    if len(lines) < 2:
        return ""
    row = dict(zip(lines[0].split("\t"), lines[1].split("\t"), strict=True))
    if row["Slave_IO_Running"] != "Yes" or row["Slave_SQL_Running"] != "Yes":
        return ""
    return f"{row['Master_Host']}:{row['Master_Port']}"


def checked_again(c: Cluster, server: mariadb.MariaDB, after: float) -> None:
    """Wait for a check of `server` by the leading arbiter that began after `after` (wall
    time, as the probe records it) and found it answering."""
    c.wait(lambda: (n := node_view(c, server)) and n["reachable"] and n["checked_at"] > after,
           20, f"a check of {server.node} after {after:.2f}")


def since(c: Cluster, name: str, mark: int) -> str:
    """What `name` logged after `mark` characters of its log."""
    return c.log(name)[mark:]


def wait_logged(c: Cluster, name: str, mark: int, text: str, timeout: float = 30) -> None:
    """Wait until `name` logs `text` after `mark`."""
    c.wait(lambda: text in since(c, name, mark), timeout, f"{name} to log {text!r}")


# --- 1. a short stop of the primary -------------------------------------------------------------

def test_primary_stopped_shorter_than_the_window_no_failover(
        servers: list[mariadb.MariaDB], tmp_path: Path) -> None:
    primary, _replica = servers
    # connect_timeout 0.2: a check of a stopped node fails after 0.2 s instead of lasting
    # until SIGCONT, so that a stop of half the window makes checks fail: the arbiter must
    # count them and stop short of ha_connect_retries.
    c = db_cluster(tmp_path / "cluster", servers, spares=(), connect_timeout="0.2")
    db_init(c)
    c.start_all()
    try:
        before = c.wait(lambda: published(c, primary), 40, "the arbiter publishes the primary")
        start = len(c.log("arbiter-master"))
        with Load(c, "stop") as load:
            stored_once(c, primary, load.more(), 30, "the first results stored")
            stop_for = WINDOW / 2
            failed_checks = 0
            stops: list[float] = []
            # A stop makes 1 or 2 checks fail when the rounds keep their pace; a loaded
            # machine may delay a round past the stop: stop again (up to 6 times) until the
            # arbiter has seen the primary down at least once.
            for _ in range(6):
                mark = len(c.log("arbiter-master"))
                primary.kill(signal.SIGSTOP)
                stopped = time.monotonic()
                time.sleep(stop_for)  # the fault's length, not a wait for something
                primary.kill(signal.SIGCONT)
                held = time.monotonic() - stopped
                stops.append(held)
                assert held < WINDOW * 0.75, f"the stop lasted {held:.2f} s (window {WINDOW} s)"
                checked_again(c, primary, time.time())
                if f"database primary {primary.node} is down" in since(c, "arbiter-master",
                                                                       mark):
                    failed_checks += 1
                    wait_logged(c, "arbiter-master", mark,
                                f"database primary {primary.node} answers again")
                    break
            assert failed_checks, f"no stop of {stop_for} s made a check fail: {stops}"
            stored_once(c, primary, load.stop(), 60,
                        "every accepted result stored on the primary")
        after = topology(c)
        assert (after["primary"], after["epoch"]) == (before["primary"], before["epoch"])
        log = since(c, "arbiter-master", start)
        assert "promoted" not in log
        # The count never reached ha_connect_retries: no confirmation asked, nothing held back.
        assert "no failover" not in log and "held back" not in log
        assert primary.value("SELECT @@read_only") == "0"
    finally:
        c.stop_all()


# --- 2. the arbiter fails over while the database does -----------------------------------------

def test_master_arbiter_and_primary_killed_together(servers: list[mariadb.MariaDB],
                                                    tmp_path: Path) -> None:
    primary, replica = servers
    c = db_cluster(tmp_path / "cluster", servers, spares=("arbiter",))
    db_init(c)
    c.start_all()
    try:
        before = c.wait(lambda: published(c, primary), 40, "the arbiter publishes the primary")
        assert leaders(c) == ["arbiter-master"]
        with Load(c, "both") as load:
            stored_once(c, primary, load.more(), 30, "the first results stored")
            c.kill("arbiter-master", signal.SIGKILL)
            primary.kill(signal.SIGKILL)
            killed = time.monotonic()
            c.wait(lambda: leaders(c) == ["arbiter-spare"], 30, "the spare arbiter to lead")
            led = time.monotonic() - killed
            after = c.wait(lambda: published(c, replica, above=before["epoch"]), 60,
                           "the spare arbiter to promote the replica")
            promoted = time.monotonic() - killed
            load.more()  # results accepted once the new primary is published
            stored_once(c, replica, load.stop(), 90,
                        "every accepted result on the new primary exactly once")
        log = c.log("arbiter-spare")
        assert f"promoted {replica.node}, database epoch {after['epoch']}" in log, log[-3000:]
        # It took the lost primary over as the primary to fail over from (not "every node is
        # a replica: promote one by hand").
        assert f"database primary {primary.node} is down" in log
        assert "none to write to" not in log
        # Its first dispatch as leader, sent before it checked the nodes, named no outdated
        # primary for the data-servers to refuse.
        assert "refused: this data-server holds" not in c.log(DS), c.log(DS)[-2000:]
        # It counted the failed checks it saw while standing by (it leads > WINDOW after the
        # kill): the failover was due at once, not after another round of retries.
        counted = re.search(r"the replicas follow it: (\d+) failed checks of (\d+)", log)
        assert counted and int(counted.group(1)) >= int(counted.group(2)) == RETRIES, log[-3000:]
        assert replica.value("SELECT @@read_only") == "0"
        assert int(replica.value("SELECT epoch FROM shinha.shinha_fence")) == after["epoch"]
        assert ping(c, DS) is not None and ping(c, DS)["db_epoch"] == after["epoch"]  # type: ignore[index]
        print(f"spare leads {led:.2f} s, replica promoted {promoted:.2f} s after the kills")
    finally:
        c.stop_all()


# --- 3 and 4. stale writers after a failover; the old primary back ----------------------------

def store_options() -> MariadbOptions:
    """The data-servers' module as dbcluster.module writes it, for a store in this process
    (ha_hosts is only the store's first guess: set_primary says where it writes)."""
    return mariadb_options("store-mariadb", {
        "ha_hosts": "127.0.0.1:3306", "database": "shinha", "dbuser": "shinha",
        "dbpass": DB_PASS, "ha_dbuser": "shinha_admin", "ha_dbpass": ADMIN_PASS,
        "repl_dbuser": "shinha_repl", "repl_dbpass": REPL_PASS, "connect_timeout": "2"}, {})


def as_node(server: mariadb.MariaDB) -> Node:
    return Node(host=server.address, port=server.port)


def batch_of(ids: list[str], host: str) -> IngestBatch:
    return IngestBatch(scheduler="scheduler-stale", results=[
        CheckResult(result_id=rid, host=host, service="STALE", return_code=1,
                    output=f"stale {rid}", finished=time.time()) for rid in ids])


async def ingest_as(server: mariadb.MariaDB, epoch: int, batch: IngestBatch) -> object:
    """Ingest `batch` from a store in this process that writes to `server` under `epoch`."""
    store = MariadbStore(store_options())
    assert store.set_primary(as_node(server), epoch)
    await store.open()
    try:
        return await store.ingest(batch)
    finally:
        await store.close()


def written(server: mariadb.MariaDB, ids: list[str], host: str) -> dict[str, int]:
    """What an ingest of `ids` for `host` leaves behind on `server`, table by table."""
    marks = ", ".join(f"'{i}'" for i in ids)
    return {"results": int(server.value(f"SELECT COUNT(*) FROM results WHERE result_id IN "
                                        f"({marks})", "shinha")),
            "seen_results": int(server.value(f"SELECT COUNT(*) FROM seen_results WHERE "
                                             f"result_id IN ({marks})", "shinha")),
            "states": int(server.value(f"SELECT COUNT(*) FROM states WHERE host = '{host}'",
                                       "shinha"))}


def caught_up(replica: mariadb.MariaDB, primary: mariadb.MariaDB) -> bool:
    """The replica has applied every transaction the primary holds (read the primary
    first: what it commits after is not asked for)."""
    target = primary.value("SELECT @@gtid_binlog_pos")
    return replica.value(f"SELECT MASTER_GTID_WAIT('{target}', 0)") == "0"


class ReadOnlyWatch:
    """@@read_only of a node, read again and again from a thread until stopped."""

    def __init__(self, server: mariadb.MariaDB) -> None:
        self.server = server
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="read-only", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(AssertionError):  # not accepting connections yet
                self.seen.append(self.server.value("SELECT @@read_only"))
            self._stop.wait(0.02)

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(timeout=30)
        return self.seen


def test_stale_writers_refused_and_the_old_primary_never_written(
        servers: list[mariadb.MariaDB], tmp_path: Path) -> None:
    primary, replica = servers
    c = db_cluster(tmp_path / "cluster", servers, spares=("dataserver",))
    db_init(c)
    c.start_all()
    try:
        old = c.wait(lambda: published(c, primary), 40, "the arbiter publishes the primary")
        with Load(c, "stale") as load:
            stored_once(c, primary, load.more(), 30, "the first results stored")
            # dataserver-master frozen through the failover, with an ingest waiting in its
            # socket: it resumes holding the old primary and the old database epoch.
            c.kill(DS, signal.SIGSTOP)
            frozen_ids = [f"frozen-{uuid.uuid4().hex[:16]}" for _ in range(5)]
            frozen: dict[str, int] = {}

            def post_frozen() -> None:
                status, _ = c.request(DS, "POST", "/api/ingest", batch_of(
                    frozen_ids, "frozen-host").model_dump(mode="json"), timeout=120)
                frozen["status"] = status

            poster = threading.Thread(target=post_frozen, name="frozen-ingest", daemon=True)
            poster.start()
            # No writer commits now (the schedulers' pushes wait on the frozen data-server):
            # let the replica apply all the primary holds, so that the old primary comes back
            # with nothing the new one lacks (else it is rightly diverged, never a replica).
            wait_for(lambda: caught_up(replica, primary), 30, "the replica caught up")
            primary.kill(signal.SIGKILL)
            killed = time.monotonic()
            new = c.wait(lambda: published(c, replica, above=old["epoch"]), 60,
                         "the replica promoted")
            print(f"promoted {time.monotonic() - killed:.2f} s after the kill "
                  "(one data-server frozen)")

            # 3a. A writer still holding the old epoch cannot commit on the new primary.
            stale_ids = [f"stale-{uuid.uuid4().hex[:16]}" for _ in range(5)]
            with pytest.raises(DatabaseFenced) as fenced:
                asyncio.run(ingest_as(replica, old["epoch"], batch_of(stale_ids, "stale-host")))
            assert (fenced.value.held, fenced.value.mine) == (new["epoch"], old["epoch"])
            assert fenced.value.node == replica.node
            assert written(replica, stale_ids, "stale-host") == {
                "results": 0, "seen_results": 0, "states": 0}
            # The same batch under the new epoch is stored: only the epoch was refused.
            asyncio.run(ingest_as(replica, new["epoch"], batch_of(stale_ids, "stale-host")))
            assert written(replica, stale_ids, "stale-host") == {
                "results": 5, "seen_results": 5, "states": 1}

            # 4. The old primary back: read-only from its start, never written, a replica.
            watch = ReadOnlyWatch(primary)
            primary.start()
            own = own_writes(primary)
            assert own > 0, "the old primary wrote nothing before the kill?"
            with pytest.raises(DatabaseReadOnly):
                asyncio.run(ingest_as(primary, old["epoch"], batch_of(
                    [f"old-{uuid.uuid4().hex[:16]}"], "old-host")))

            # 3b. The frozen data-server resumes with the old primary and epoch.
            c.kill(DS, signal.SIGCONT)
            poster.join(timeout=150)
            assert frozen.get("status") in (200, 503), frozen
            c.wait(lambda: (p := ping(c, DS)) and p["db_epoch"] == new["epoch"], 30,
                   f"{DS} at the new database epoch")
            c.wait(lambda: replicates_from(primary) == replica.node, 60,
                   "the old primary a replica of the new one")
            load.more()  # results accepted with the old primary a replica
            ids = load.stop()
        stored_once(c, replica, ids, 90, "every accepted result on the new primary once")
        # The old primary received all of it by replication, and wrote nothing of its own.
        stored_once(c, primary, ids, 60, "the old primary caught up")
        seen = watch.stop()
        assert seen and set(seen) == {"1"}, f"read_only of the old primary: {seen}"
        assert own_writes(primary) == own, "the old primary wrote after its restart"
        assert primary.value("SELECT @@read_only") == "1"
        # The frozen batch: refused while the data-server held the old epoch, or stored
        # once it held the new one; once at most, never on the old primary.
        on_new = written(replica, frozen_ids, "frozen-host")["results"]
        assert on_new == (5 if frozen["status"] == 200 else 0), (frozen, on_new)
        print(f"the frozen data-server's ingest: {frozen['status']}")
        log = since(c, "arbiter-master", 0)
        assert f"database node {primary.node} is a replica of {replica.node} again" in log
        assert "diverged" not in log
    finally:
        c.stop_all()


# --- 5. semi-sync: unprotected while the replica is stopped -------------------------------------

def test_semi_sync_unprotected_while_the_replica_is_stopped(servers: list[mariadb.MariaDB],
                                                            tmp_path: Path) -> None:
    primary, replica = servers
    c = db_cluster(tmp_path / "cluster", servers, spares=(), semi_sync="1")
    done = db_init(c)
    assert "semi-sync" in done.stdout, done.stdout
    c.start_all()
    try:
        c.wait(lambda: published(c, primary), 40, "the arbiter publishes the primary")
        start = len(c.log("arbiter-master"))
        # What `shinha db init` set up (semi_sync_timeout 1 s: the module's default).
        assert primary.value("SELECT @@rpl_semi_sync_master_enabled") == "1"
        assert primary.value("SELECT @@rpl_semi_sync_master_wait_point") == "AFTER_SYNC"
        assert primary.value("SELECT @@rpl_semi_sync_master_timeout") == "1000"
        assert replica.value("SELECT @@rpl_semi_sync_slave_enabled") == "1"
        with Load(c, "semi") as load:
            stored_once(c, primary, load.more(), 30, "the first results stored")
            c.wait(lambda: (n := node_view(c, primary)) and n["semi_sync_master_status"], 30,
                   "semi-sync on (the replica acknowledges)")
            assert topology(c)["unprotected"] is False
            mark = len(c.log("arbiter-master"))
            replica.kill(signal.SIGSTOP)
            stopped = time.monotonic()
            try:
                c.wait(lambda: topology(c).get("unprotected") is True, 30,
                       "the arbiter to show the primary unprotected")
                took = time.monotonic() - stopped
                # A commit waits semi_sync_timeout (1 s) for the stopped replica, then the
                # primary goes on asynchronously (MariaDB's own default would be 10 s).
                assert 1.0 <= took < 8.0, took
                logged = since(c, "arbiter-master", mark)
                assert (f"database primary {primary.node}: semi-sync fell back to asynchronous"
                        in logged), logged
                assert "commits are unprotected" in logged
                # Commits go on meanwhile, unprotected.
                stored_once(c, primary, load.more(), 30, "results stored while unprotected")
                mark = len(c.log("arbiter-master"))
            finally:
                replica.kill(signal.SIGCONT)
            resumed = time.monotonic()
            c.wait(lambda: topology(c).get("unprotected") is False, 30,
                   "the arbiter to show the primary protected again")
            print(f"unprotected {took:.2f} s after SIGSTOP of the replica, protected again "
                  f"{time.monotonic() - resumed:.2f} s after SIGCONT")
            assert (f"database primary {primary.node}: semi-sync protects commits again"
                    in since(c, "arbiter-master", mark))
            ids = load.stop()
        stored_once(c, primary, ids, 60, "every accepted result on the primary once")
        stored_once(c, replica, ids, 60, "and on the replica")
        assert "promoted" not in since(c, "arbiter-master", start)
    finally:
        c.stop_all()


# --- 6. a node of another cluster, a node we cannot log in to ---------------------------------

def init_alone(root: Path, server: mariadb.MariaDB) -> None:
    """`shinha db init` of a cluster of its own on `server` (same accounts as ours)."""
    root.mkdir(parents=True)
    (root / "resource.cfg").write_text(f"$USER5$={DB_PASS}\n$USER6$={ADMIN_PASS}\n"
                                       f"$USER7$={REPL_PASS}\n")
    (root / "modules.cfg").write_text(module([server]))
    (root / "shinha.cfg").write_text("cfg_file=modules.cfg\nresource_file=resource.cfg\n")
    db_tool(root / "shinha.cfg", "init", "--bootstrap-user", BOOT_USER, check=True)


def db_tool(main: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """`shinha db ARGS -c MAIN`, as an operator runs it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SHINHA_DB_BOOTSTRAP_PASSWORD": BOOT_PASS}
    done = subprocess.run([sys.executable, "-m", "shinha", "db", *args, "-c", str(main)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
                          check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"shinha db {' '.join(args)}:\n{done.stdout}\n{done.stderr}")
    return done


def test_foreign_node_and_wrong_credentials_are_named_and_never_promoted(
        servers: list[mariadb.MariaDB], tmp_path: Path) -> None:
    primary, replica = servers
    stranger = mariadb.MariaDB(tmp_path / "db", "127.0.0.4", 3)
    locked = mariadb.MariaDB(tmp_path / "db", "127.0.0.5", 4)
    c = db_cluster(tmp_path / "cluster", servers, spares=(), failover_min_interval="0")
    try:
        for server in (stranger, locked):
            server.start()
            bootstrap_account(server)
        init_alone(tmp_path / "other-cluster", stranger)  # a cluster of its own
        # ... busier than ours: its GTID seqno is ahead of our primary's (a node compared by
        # position alone would seem to hold transactions our primary lacks: "diverged").
        stranger.sql("CREATE DATABASE other; CREATE TABLE other.t (i INT PRIMARY KEY); "
                     + "".join(f"INSERT INTO other.t VALUES ({i}); " for i in range(100)))
        db_init(c)  # ours: primary and replica
        # Then both listed in our ha_hosts: the stranger holds another cluster's marker, and
        # our accounts do not exist on `locked` (access denied).
        ours = module(servers, failover_min_interval="0")
        assert ours in c.objects
        c.objects = c.objects.replace(ours, module([*servers, stranger, locked],
                                                   failover_min_interval="0"))
        (c.root / "objects.cfg").write_text(c.objects)
        untouched = (stranger.value("SELECT @@gtid_binlog_state"),
                     stranger.value("SELECT epoch FROM shinha.shinha_fence"),
                     stranger.value("SELECT cluster_id FROM shinha.shinha_cluster"))

        # `shinha db status`: each node named, with its role and what is wrong.
        status = db_tool(c.main, "status")
        assert status.returncode == 1, status.stdout
        rows = {line.split()[0]: line for line in status.stdout.splitlines() if line.strip()}
        assert " foreign " in rows[stranger.node], status.stdout
        assert " unreachable " in rows[locked.node] and "access denied" in rows[locked.node]
        problems = [line for line in status.stdout.splitlines() if line.startswith("problem")]
        assert any(stranger.node in p and "foreign" in p for p in problems), problems
        assert any(locked.node in p and "ha_dbuser/ha_dbpass" in p
                   and "shinha db init" in p for p in problems), problems
        assert ADMIN_PASS not in status.stdout + status.stderr

        # The arbiter names both, says what to do, and never touches them.
        c.start_all()
        c.wait(lambda: published(c, primary), 40, "the arbiter publishes the primary")
        foreign = (f"database node {stranger.node} belongs to another cluster ("
                   f"{untouched[2]}; this one is ")
        refused = f"database node {locked.node} cannot be used (access denied"
        c.wait(lambda: foreign in c.log("arbiter-master") and refused in c.log("arbiter-master"),
               20, "the arbiter to name both nodes")
        log = c.log("arbiter-master")
        assert "remove it from ha_hosts, or make it a member with shinha db init --force" in log
        assert "ha_dbuser/ha_dbpass" in log.split(refused, 1)[1].splitlines()[0]
        assert "diverged" not in log
        assert ADMIN_PASS not in log
        view = topology(c)
        assert stranger.node not in view["replicas"] and stranger.node not in view["diverged"]

        with Load(c, "foreign") as load:
            stored_once(c, primary, load.more(), 30, "the first results stored")
            # The primary lost: the replica is promoted, neither of them.
            primary.kill(signal.SIGKILL)
            first = c.wait(lambda: published(c, replica, above=1), 60, "the replica promoted")
            stored_once(c, replica, load.more(), 60, "results stored on the new primary")
            # The new primary lost too: no node of ours is left, and no failover.
            mark = len(c.log("arbiter-master"))
            replica.kill(signal.SIGKILL)
            c.wait(lambda: "no replica can be promoted" in since(c, "arbiter-master", mark),
                   30, "the arbiter to say why it cannot fail over")
            ids = load.stop()
        why = next(line for line in since(c, "arbiter-master", mark).splitlines()
                   if "no replica can be promoted" in line)
        assert f"{stranger.node}: belongs to another cluster" in why, why
        assert f"{locked.node}: unreachable (access denied" in why, why
        assert (topology(c)["primary"], topology(c)["epoch"]) == (replica.node, first["epoch"])
        # What was accepted before the second loss is on the replica's disk (it is down now).
        assert ids

        # A new leader while no node of ours answers (the arbiter restarted): still neither.
        c.kill("arbiter-master", signal.SIGKILL)
        mark = len(c.log("arbiter-master"))
        c.start("arbiter-master")
        c.wait(lambda: "no database node of cluster" in since(c, "arbiter-master", mark), 30,
               "the restarted arbiter to find no node of its cluster")
        seen = time.time()
        c.wait(lambda: (n := node_view(c, stranger)) and n["checked_at"] > seen + 2 * INTERVAL,
               30, "two more rounds of the restarted arbiter")
        after = since(c, "arbiter-master", mark)
        assert "promoted" not in after and "database primary is" not in after, after
        assert topology(c)["primary"] in ("", replica.node)
        assert (stranger.value("SELECT @@gtid_binlog_state"),
                stranger.value("SELECT epoch FROM shinha.shinha_fence"),
                stranger.value("SELECT cluster_id FROM shinha.shinha_cluster")) == untouched
        assert stranger.value("SELECT COUNT(*) FROM shinha.results") == "0"
        assert not replicates_from(stranger)
    finally:
        c.stop_all()
        stranger.stop()
        locked.stop()

"""Replication administration on real mariadbd processes (tests/mariadb.py): `shinha db init`
on two and three nodes, its refusal to overwrite data, status, a switchover under writes with
nothing lost, a diverged node, broken replication, clear errors, and a promotion after kill -9
of the primary. Three nodes are started once for the module; each test starts from a
cluster that `shinha db init --force` (re)builds when it needs one."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncmy
import pytest

from shinha.cli import main as shinha_main
from shinha.dataserver.mariadb import MariadbStore
from shinha.db import admin, setup
from shinha.db.ctl import BOOTSTRAP_PASSWORD_ENV
from shinha.db.failover import choose_candidate, diverged, elect, errant, next_epoch, role
from shinha.db.options import MariadbOptions, Node, mariadb_options
from shinha.db.probe import probe, probe_all
from shinha.db.rejoin import rejoin
from shinha.errors import DatabaseError, DatabaseUnreachable
from shinha.wire import CheckResult, Event, IngestBatch, NodeStatus
from tests import mariadb
from tests.cluster import wait_for

ROOT = Path(__file__).resolve().parents[1]
BOOT_USER, BOOT_PASS = "boot", "boot-pass-123"
ADMIN_PASS, DB_PASS, REPL_PASS = "admin-pass-123", "data-pass-123", "repl-pass-123"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[mariadb.MariaDB]]:
    """Three fresh nodes, read-only, with only a bootstrap account (as root would be)."""
    mariadb.require()
    root = tmp_path_factory.mktemp("db-replication")
    servers = [mariadb.MariaDB(root, f"127.0.0.{i + 2}", i + 1) for i in range(3)]
    try:
        for server in servers:
            server.start()
            bootstrap_account(server)
        yield servers
    finally:
        for server in servers:
            server.stop()


def bootstrap_account(server: mariadb.MariaDB) -> None:
    server.sql(f"SET SESSION sql_log_bin = 0; CREATE USER '{BOOT_USER}'@'%' IDENTIFIED BY "
               f"'{BOOT_PASS}'; GRANT ALL ON *.* TO '{BOOT_USER}'@'%' WITH GRANT OPTION")


def node_of(server: mariadb.MariaDB) -> Node:
    return Node(host=server.address, port=server.port)


def opts(servers: list[mariadb.MariaDB], **extra: Any) -> MariadbOptions:
    values = {"ha_hosts": ",".join(s.node for s in servers), "ha_dbuser": "shinha_admin",
              "ha_dbpass": ADMIN_PASS, "dbpass": DB_PASS, "repl_dbpass": REPL_PASS,
              "connect_timeout": "1", **{k: str(v) for k, v in extra.items()}}
    return mariadb_options("store-mariadb", values, {})


def tree(path: Path, servers: list[mariadb.MariaDB], semi_sync: bool = False,
         admin_pass: str = ADMIN_PASS) -> Path:
    """A main file whose one module is the cluster's (passwords from resource.cfg)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "resource.cfg").write_text(f"$USER2$={admin_pass}\n$USER3$={DB_PASS}\n"
                                       f"$USER4$={REPL_PASS}\n", encoding="utf-8")
    (path / "modules.cfg").write_text(
        "define module {\n  module_name store-mariadb\n  module_type mariadb\n"
        f"  ha_hosts {', '.join(s.node for s in servers)}\n  ha_dbuser shinha_admin\n"
        "  ha_dbpass $USER2$\n  dbpass $USER3$\n  repl_dbpass $USER4$\n"
        f"  connect_timeout 1\n  semi_sync {int(semi_sync)}\n}}\n", encoding="utf-8")
    (path / "shinha.cfg").write_text("cfg_file=modules.cfg\nresource_file=resource.cfg\n",
                                     encoding="utf-8")
    return path / "shinha.cfg"


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def cli(main: Path, *args: str) -> Done:
    """`shinha db ARGS -c MAIN`, in this process (a child process costs a second of imports;
    test_init_on_two_nodes runs the real executable)."""
    out, err = io.StringIO(), io.StringIO()
    previous = os.environ.get(BOOTSTRAP_PASSWORD_ENV)
    os.environ[BOOTSTRAP_PASSWORD_ENV] = BOOT_PASS
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = shinha_main(["db", *args, "-c", str(main)])
    finally:
        if previous is None:
            del os.environ[BOOTSTRAP_PASSWORD_ENV]
        else:
            os.environ[BOOTSTRAP_PASSWORD_ENV] = previous
    return Done(code, out.getvalue(), err.getvalue())


def cli_process(main: Path, *args: str) -> Done:
    """`shinha db ARGS -c MAIN` as the operator runs it: the installed entry point."""
    env = {**os.environ, BOOTSTRAP_PASSWORD_ENV: BOOT_PASS}
    done = subprocess.run([sys.executable, "-m", "shinha", "db", *args, "-c", str(main)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    return Done(done.returncode, done.stdout, done.stderr)


def statuses(options: MariadbOptions) -> list[NodeStatus]:
    return asyncio.run(probe_all(options))


def rebuild(servers: list[mariadb.MariaDB], tmp: Path, semi_sync: bool = False) -> Path:
    """A healthy cluster of `servers` (init --force clones from the current primary)."""
    main = tree(tmp / "rebuild", servers, semi_sync)
    done = cli(main, "init", "--force", "--bootstrap-user", BOOT_USER)
    assert done.returncode == 0, done.stderr
    return main


def count(server: mariadb.MariaDB, table: str) -> int:
    return int(server.value(f"SELECT COUNT(*) FROM shinha.{table}"))


def replicating(server: mariadb.MariaDB) -> dict[str, str]:
    """SHOW SLAVE STATUS as a dict ({} when the node is no replica)."""
    done = subprocess.run([mariadb.CLIENT, f"--socket={server.socket}", "-uroot", "-B", "-e",
                           "SHOW SLAVE STATUS"], capture_output=True, text=True, check=True,
                          timeout=30)
    lines = done.stdout.splitlines()
    if len(lines) < 2:
        return {}
    return dict(zip(lines[0].split("\t"), lines[1].split("\t"), strict=True))


def value_is(server: mariadb.MariaDB, query: str, expected: str) -> Callable[[], bool]:
    """A condition for wait_for: `query` on `server` gives `expected`."""
    return lambda: server.value(query) == expected


def data_user_write(server: mariadb.MariaDB, sql: str) -> subprocess.CompletedProcess[str]:
    """Run `sql` as the data-servers' account over TCP (no SUPER: read_only applies)."""
    return subprocess.run([mariadb.CLIENT, f"-h{server.address}", f"-P{server.port}",
                           "-ushinha", f"-p{DB_PASS}", "shinha", "-e", sql],
                          capture_output=True, text=True, check=False, timeout=30)


def check_replica(server: mariadb.MariaDB, primary: mariadb.MariaDB) -> None:
    status = replicating(server)
    assert status["Master_Host"] == primary.address
    assert status["Master_Port"] == str(primary.port)
    assert status["Using_Gtid"] == "Slave_Pos"
    assert status["Slave_IO_Running"] == "Yes" and status["Slave_SQL_Running"] == "Yes"
    assert server.value("SELECT @@read_only") == "1"
    assert server.value("SELECT @@gtid_strict_mode") == "1"


# --- init ---------------------------------------------------------------------------------------

def test_init_on_two_nodes(nodes: list[mariadb.MariaDB], tmp_path: Path) -> None:
    a, b, _ = nodes
    main = tree(tmp_path, [a, b])
    done = cli_process(main, "init", "--bootstrap-user", BOOT_USER)
    assert done.returncode == 0, done.stderr
    assert f"primary {a.node}" in done.stdout and f"replica {b.node}" in done.stdout
    assert a.value("SELECT @@read_only") == "0" and a.value("SELECT @@gtid_strict_mode") == "1"
    check_replica(b, a)
    # The schema, the marker and the fence came over with the clone.
    assert b.value("SELECT epoch FROM shinha.shinha_fence") == "0"
    cluster_id = a.value("SELECT cluster_id FROM shinha.shinha_cluster")
    assert b.value("SELECT cluster_id FROM shinha.shinha_cluster") == cluster_id
    # A row the data-servers' account writes on the primary reaches the replica, where the
    # same account may log in but not write.
    assert data_user_write(a, "INSERT INTO counters (name, value) VALUES ('two', 2)")\
        .returncode == 0
    wait_for(lambda: b.value("SELECT value FROM shinha.counters WHERE name = 'two'") == "2",
             20, "the row to reach the replica")
    refused = data_user_write(b, "INSERT INTO counters (name, value) VALUES ('no', 1)")
    assert refused.returncode != 0 and "read-only" in refused.stderr
    # Every account exists on every node (a clone does not carry them).
    for server in (a, b):
        users = {r[0] for r in server.sql("SELECT user FROM mysql.user")}
        assert {"shinha", "shinha_admin", "shinha_repl"} <= users


def test_init_refuses_to_overwrite_data_without_force(nodes: list[mariadb.MariaDB],
                                                      tmp_path: Path) -> None:
    a, b, c = nodes
    rebuild([a, b], tmp_path)
    c.sql("SET SESSION sql_log_bin = 0; CREATE DATABASE IF NOT EXISTS shinha; "
          "CREATE TABLE IF NOT EXISTS shinha.precious (id INT PRIMARY KEY); "
          "INSERT IGNORE INTO shinha.precious VALUES (1)")
    main = tree(tmp_path / "three", [a, b, c])
    done = cli(main, "init", "--bootstrap-user", BOOT_USER)
    assert done.returncode == 1
    message = done.stderr
    assert "refusing to overwrite data" in message and "--force" in message
    assert f"{b.node} already holds database `shinha`" in message
    assert f"{c.node} already holds database `shinha` (1 tables)" in message
    assert c.value("SELECT COUNT(*) FROM shinha.precious") == "1"  # untouched
    assert c.sql("SHOW SLAVE STATUS") == []


def test_init_on_three_nodes_with_force_and_semi_sync(nodes: list[mariadb.MariaDB],
                                                      tmp_path: Path) -> None:
    a, b, c = nodes
    rebuild([a, b], tmp_path)
    a.sql("INSERT INTO shinha.counters (name, value) VALUES ('kept', 7) "
          "ON DUPLICATE KEY UPDATE value = 7")
    c.sql("SET SESSION sql_log_bin = 0; CREATE DATABASE IF NOT EXISTS shinha; "
          "CREATE TABLE IF NOT EXISTS shinha.precious (id INT PRIMARY KEY)")
    main = tree(tmp_path / "three", [a, b, c], semi_sync=True)
    done = cli(main, "init", "--force", "--bootstrap-user", BOOT_USER)
    assert done.returncode == 0, done.stderr
    assert "semi-sync" in done.stdout
    for replica in (b, c):
        check_replica(replica, a)
        assert replica.value("SELECT @@rpl_semi_sync_slave_enabled") == "1"
        # The primary's data is kept and cloned; the replica's own tables are gone.
        assert replica.value("SELECT value FROM shinha.counters WHERE name = 'kept'") == "7"
    assert c.value("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = "
                   "'shinha' AND table_name = 'precious'") == "0"
    assert a.value("SELECT @@rpl_semi_sync_master_enabled") == "1"
    assert a.value("SELECT @@rpl_semi_sync_master_wait_point") == "AFTER_SYNC"
    wait_for(lambda: a.sql("SHOW STATUS LIKE 'Rpl_semi_sync_master_clients'")[0][1] == "2",
             20, "both semi-sync replicas to connect")
    a.sql("INSERT INTO shinha.counters (name, value) VALUES ('three', 3)")
    assert a.sql("SHOW STATUS LIKE 'Rpl_semi_sync_master_status'")[0][1] == "ON"
    for replica in (b, c):
        wait_for(value_is(replica, "SELECT value FROM shinha.counters WHERE name = 'three'",
                          "3"), 20, f"the row to reach {replica.node}")


def test_status(nodes: list[mariadb.MariaDB], tmp_path: Path) -> None:
    main = rebuild(nodes, tmp_path)
    done = cli(main, "status", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    view = json.loads(done.stdout)
    head = view["primary"]
    roles = {n["node"]: n["role"] for n in view["nodes"]}
    assert sorted(roles.values()) == ["primary", "replica", "replica"]
    assert roles[head] == "primary" and view["problems"] == []
    for n in view["nodes"]:
        assert n["reachable"] and n["cluster_id"] == view["cluster_id"]
        assert n["db_epoch"] == view["db_epoch"]
        if n["role"] == "replica":
            assert n["replicates_from"] == head and n["read_only"] and n["io_running"]
            assert n["seconds_behind"] == 0 and n["relay_log_applied"]
    text = cli(main, "status")
    assert text.returncode == 0
    lines = text.stdout.splitlines()
    assert lines[1].split()[:6] == ["NODE", "ROLE", "RO", "GTID", "LAG", "IO/SQL"]
    assert any(line.startswith(head) and " primary " in line for line in lines)
    assert ADMIN_PASS not in text.stdout + done.stdout


# --- switchover ---------------------------------------------------------------------------------

class Writer:
    """A data-server stand-in: inserts ids 1, 2, … one commit each into whichever node is
    writable, moving on when the one it writes to turns read-only; records what committed."""

    def __init__(self, servers: list[mariadb.MariaDB]) -> None:
        self.servers = servers
        self.acked: list[int] = []
        self.refused = 0
        self.stop = asyncio.Event()

    async def _connect(self, server: mariadb.MariaDB) -> asyncmy.Connection:
        return await asyncmy.connect(host=server.address, port=server.port, user="shinha",
                                     password=DB_PASS, database="shinha", autocommit=True,
                                     connect_timeout=2)

    async def run(self) -> None:
        next_id, current = 1, 0
        conn: asyncmy.Connection | None = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = await self._connect(self.servers[current])
                async with conn.cursor() as cur:
                    await cur.execute("INSERT INTO sw_test (id) VALUES (%s)", (next_id,))
                self.acked.append(next_id)
                next_id += 1
            except (asyncmy.errors.MySQLError, OSError):
                self.refused += 1  # read-only (1290) or gone: try the next node
                if conn is not None:
                    conn.close()
                conn = None
                current = (current + 1) % len(self.servers)
                await asyncio.sleep(0.01)
        if conn is not None:
            conn.close()


def test_switchover_under_writes_loses_nothing(nodes: list[mariadb.MariaDB],
                                               tmp_path: Path) -> None:
    main = rebuild(nodes, tmp_path, semi_sync=True)
    options = opts(nodes, semi_sync=1)
    before = statuses(options)
    head = next(s for s in nodes if s.node == admin_head(before))
    target = next(s for s in nodes if s is not head)
    head.sql("CREATE TABLE IF NOT EXISTS shinha.sw_test (id INT PRIMARY KEY)")
    epoch = next_epoch(before)

    async def scenario() -> tuple[Writer, admin.Promotion]:
        writer = Writer(nodes)
        task = asyncio.create_task(writer.run())
        while len(writer.acked) < 200:
            await asyncio.sleep(0.01)
        promotion = await admin.switchover(options, node_of(target), epoch, timeout=30)
        switched = len(writer.acked)
        while len(writer.acked) < switched + 200:
            await asyncio.sleep(0.01)
        writer.stop.set()
        await task
        return writer, promotion

    writer, promotion = asyncio.run(scenario())
    assert promotion.primary == node_of(target) and promotion.epoch == epoch
    assert {n.name for n in promotion.repointed} == {s.node for s in nodes if s is not target}, \
        promotion.skipped
    assert writer.refused > 0  # the old primary turned writes away while it was read-only
    assert target.value("SELECT @@read_only") == "0"
    acked = writer.acked
    for server in nodes:
        wait_for(value_is(server, "SELECT COUNT(*) FROM shinha.sw_test", str(len(acked))), 30,
                 f"{server.node} to hold every acknowledged row")
        ids = {int(r[0]) for r in server.sql("SELECT id FROM shinha.sw_test")}
        assert ids == set(acked), "a row acknowledged by the old primary was lost"
        assert server.value("SELECT epoch FROM shinha.shinha_fence") == str(epoch)
        if server is not target:
            check_replica(server, target)
    view = json.loads(cli(main, "status", "--json").stdout)
    assert view["primary"] == target.node and view["db_epoch"] == epoch


def admin_head(found: list[NodeStatus]) -> str:
    heads = [s.node for s in found if s.reachable and s.read_only is False]
    assert len(heads) == 1, heads
    return heads[0]


# --- diverged and broken replicas ----------------------------------------------------------------

def test_a_diverged_node_is_detected_and_never_used(nodes: list[mariadb.MariaDB],
                                                    tmp_path: Path) -> None:
    main = rebuild(nodes, tmp_path)
    options = opts(nodes)
    head_name = admin_head(statuses(options))
    head = next(s for s in nodes if s.node == head_name)
    stray, other = [s for s in nodes if s is not head]
    head.sql("CREATE TABLE IF NOT EXISTS shinha.div_test (id INT PRIMARY KEY)")
    wait_for(lambda: stray.value("SELECT COUNT(*) FROM information_schema.tables WHERE "
                                 "table_name = 'div_test'") == "1", 20, "the table to replicate")
    # Replication stopped, then a write that bypasses read_only, binlogged: split brain.
    stray.sql("STOP SLAVE; INSERT INTO shinha.div_test VALUES (1)")
    found = statuses(options)
    by_name = {s.node: s for s in found}
    assert errant(by_name[stray.node])
    assert diverged(by_name[head.node], by_name[stray.node])
    assert not diverged(by_name[head.node], by_name[other.node])
    assert role(by_name[stray.node], found, by_name[head.node].cluster_id) == "diverged"
    # Even as the most advanced, it is never the candidate.
    assert choose_candidate(found, node_of(head)) == node_of(other)
    view = json.loads(cli(main, "status", "--json").stdout)
    assert {n["node"]: n["role"] for n in view["nodes"]}[stray.node] == "diverged"
    with pytest.raises(DatabaseError, match="diverged") as refused:
        asyncio.run(admin.repoint(options, node_of(stray), node_of(head)))
    assert refused.value.node == stray.node
    assert stray.value("SELECT @@read_only") == "1" and stray.sql("SHOW SLAVE STATUS")
    done = cli(main, "promote", stray.node)
    assert done.returncode == 1 and "writable primary" in done.stderr  # the primary lives
    # The repair: init --force replaces its data with a clone of the primary.
    rebuild(nodes, tmp_path)
    check_replica(stray, head)
    assert count(stray, "div_test") == 0


def test_broken_replication_is_named(nodes: list[mariadb.MariaDB], tmp_path: Path) -> None:
    main = rebuild(nodes, tmp_path)
    options = opts(nodes)
    head = next(s for s in nodes if s.node == admin_head(statuses(options)))
    dup, gap = [s for s in nodes if s is not head]
    head.sql("CREATE TABLE IF NOT EXISTS shinha.dup_test (id INT PRIMARY KEY)")
    wait_for(lambda: dup.value("SELECT COUNT(*) FROM information_schema.tables WHERE "
                               "table_name = 'dup_test'") == "1", 20, "the table to replicate")
    # Duplicate key: the replica holds a row (not binlogged) that the primary then writes.
    dup.sql("SET SESSION sql_log_bin = 0; INSERT INTO shinha.dup_test VALUES (5)")
    head.sql("INSERT INTO shinha.dup_test VALUES (5)")
    wait_for(lambda: replicating(dup).get("Last_SQL_Errno") == "1062", 20,
             "the duplicate key to stop the replica")
    status = asyncio.run(probe(node_of(dup), options))
    with pytest.raises(DatabaseError, match="duplicate key") as refused:
        asyncio.run(admin.switchover(options, node_of(dup), next_epoch([status])))
    assert refused.value.node == dup.node
    assert f"shinha db rejoin {dup.node}" in str(refused.value)
    assert head.value("SELECT @@read_only") == "0"  # nothing was done to the primary
    # Missing binlog: the replica is behind what the primary still has.
    gap.sql("STOP SLAVE")
    head.sql("INSERT INTO shinha.dup_test VALUES (6); FLUSH BINARY LOGS")
    last = head.sql("SHOW BINARY LOGS")[-1][0]

    def purged() -> bool:  # a file a dump thread still reads is kept: until it moves on
        head.sql(f"PURGE BINARY LOGS TO '{last}'")
        return len(head.sql("SHOW BINARY LOGS")) == 1

    wait_for(purged, 20, "the old binlogs to be purged")
    with pytest.raises(DatabaseError, match="no longer has the binlog") as refused:
        asyncio.run(admin.repoint(options, node_of(gap), node_of(head), timeout=20))
    assert refused.value.node == gap.node
    assert f"shinha db rejoin {gap.node}" in str(refused.value)
    for broken in (dup, gap):  # the cure both messages name
        done = cli(main, "rejoin", broken.node)
        assert done.returncode == 0, done.stderr
        check_replica(broken, head)
    assert count(dup, "dup_test") == count(gap, "dup_test") == count(head, "dup_test") == 2


# --- clear errors -------------------------------------------------------------------------------

def test_wrong_credentials_unreachable_node_and_another_cluster(
        nodes: list[mariadb.MariaDB], tmp_path: Path) -> None:
    rebuild(nodes, tmp_path)
    options = opts(nodes)
    head = next(s for s in nodes if s.node == admin_head(statuses(options)))
    replica = next(s for s in nodes if s is not head)
    # Wrong credentials: the node is named, the account and where to fix it, no password.
    wrong = opts(nodes, ha_dbpass="not-the-password")
    status = asyncio.run(probe(node_of(head), wrong))
    assert not status.reachable and status.error_kind == "auth"
    assert "access denied" in status.error and "ha_dbpass" in status.error
    assert "not-the-password" not in status.error
    with pytest.raises(DatabaseError, match="access denied") as refused:
        asyncio.run(admin.promote(wrong, node_of(replica), 99))
    assert refused.value.node == replica.node
    done = cli(tree(tmp_path / "wrong", nodes, admin_pass="not-the-password"), "status")
    assert done.returncode == 1 and "access denied" in done.stdout
    assert "not-the-password" not in done.stdout + done.stderr
    # Unreachable: nothing listens there; a stopped (SIGSTOP) node answers nothing in time.
    nowhere = mariadb.MariaDB(tmp_path, "127.0.0.5", 9)
    with_nowhere = opts([*nodes, nowhere])
    started = time.monotonic()
    status = asyncio.run(probe(node_of(nowhere), with_nowhere))
    assert not status.reachable and status.error_kind == "unreachable"
    assert nowhere.node in status.error
    with pytest.raises(DatabaseUnreachable) as unreachable:
        asyncio.run(admin.promote(with_nowhere, node_of(nowhere), 99))
    assert unreachable.value.node == nowhere.node
    with pytest.raises(DatabaseError, match="needs every node") as refused:
        asyncio.run(setup.init(with_nowhere, force=True))
    assert refused.value.node == nowhere.node
    assert time.monotonic() - started < 10
    replica.kill(signal.SIGSTOP)
    try:
        started = time.monotonic()
        status = asyncio.run(probe(node_of(replica), options, timeout=1.5))
        assert not status.reachable and status.error_kind == "timeout"
        assert time.monotonic() - started < 5
    finally:
        replica.kill(signal.SIGCONT)
    # Another cluster: a fourth node initialised on its own, then listed in ha_hosts.
    stranger = mariadb.MariaDB(tmp_path, "127.0.0.5", 4).start()
    try:
        bootstrap_account(stranger)
        alone = opts([stranger])
        asyncio.run(setup.init(alone, bootstrap_user=BOOT_USER, bootstrap_password=BOOT_PASS))
        mixed = opts([*nodes, stranger])
        found = statuses(mixed)
        assert choose_candidate(found, node_of(head)) != node_of(stranger)
        for action in (admin.promote, admin.switchover):
            with pytest.raises(DatabaseError, match="belongs to another cluster") as foreign:
                asyncio.run(action(mixed, node_of(stranger), 99))
            assert foreign.value.node == stranger.node
        with pytest.raises(DatabaseError, match="belongs to another cluster"):
            asyncio.run(admin.repoint(mixed, node_of(stranger), node_of(head)))
        view = json.loads(cli(tree(tmp_path / "mixed", [*nodes, stranger]), "status",
                              "--json").stdout)
        assert {n["node"]: n["role"] for n in view["nodes"]}[stranger.node] == "foreign"
        assert view["primary"] == head.node
        done = cli(tree(tmp_path / "mixed", [*nodes, stranger]), "init", "--bootstrap-user",
                   BOOT_USER)
        assert done.returncode == 1 and stranger.node in done.stderr
    finally:
        stranger.stop()


def test_promote_and_switchover_refuse_what_makes_no_sense(nodes: list[mariadb.MariaDB],
                                                           tmp_path: Path) -> None:
    main = rebuild(nodes, tmp_path)
    options = opts(nodes)
    head = admin_head(statuses(options))
    replica = next(s.node for s in nodes if s.node != head)
    done = cli(main, "switchover", head)
    assert done.returncode == 1 and "is already the primary" in done.stderr
    done = cli(main, "promote", replica)
    assert done.returncode == 1 and f"{head} is a writable primary" in done.stderr
    assert "shinha db switchover" in done.stderr
    done = cli(main, "promote", "127.0.0.9:3306")
    assert done.returncode == 1 and "not in ha_hosts" in done.stderr


# --- failover after kill -9 ---------------------------------------------------------------------

def test_promote_after_kill_9_of_the_primary(nodes: list[mariadb.MariaDB],
                                             tmp_path: Path) -> None:
    main = rebuild(nodes, tmp_path)
    options = opts(nodes)
    before = statuses(options)
    head = next(s for s in nodes if s.node == admin_head(before))
    behind, ahead = [s for s in nodes if s is not head]
    head.sql("CREATE TABLE IF NOT EXISTS shinha.kill_test (id INT PRIMARY KEY)")
    wait_for(lambda: all(s.value("SELECT COUNT(*) FROM information_schema.tables WHERE "
                                 "table_name = 'kill_test'") == "1" for s in (behind, ahead)),
             20, "the table to replicate")
    behind.sql("STOP SLAVE IO_THREAD")  # this one falls behind
    for i in range(20):
        head.sql(f"INSERT INTO shinha.kill_test VALUES ({i})")
    wait_for(lambda: count(ahead, "kill_test") == 20, 20, "the rows to reach one replica")
    old_epoch = max(s.db_epoch or 0 for s in before)
    head.kill()  # kill -9
    try:
        found = statuses(options)
        assert not next(s for s in found if s.node == head.node).reachable
        election = elect(found, node_of(head), options.ha_hosts)
        assert election.candidate == node_of(ahead), election.reason
        done = cli(main, "promote")  # no NODE: the candidate the election chooses
        assert done.returncode == 0, done.stderr
        epoch = old_epoch + 1
        assert f"promoted {ahead.node}, database epoch {epoch}" in done.stdout
        assert "arbiter publishes" in done.stdout
        assert f"re-pointed {behind.node}" in done.stdout
        assert ahead.value("SELECT @@read_only") == "0"
        check_replica(behind, ahead)
        wait_for(lambda: count(behind, "kill_test") == 20, 20,
                 "the behind replica to catch up from the new primary")
        wait_for(lambda: behind.value("SELECT epoch FROM shinha.shinha_fence") == str(epoch),
                 20, "the epoch to replicate")
        assert ahead.value("SELECT epoch FROM shinha.shinha_fence") == str(epoch)
        # The old primary comes back read-only (its my.cnf), is no primary, then rejoins.
    finally:
        head.start()
    assert head.value("SELECT @@read_only") == "1"
    found = statuses(options)
    back = next(s for s in found if s.node == head.node)
    assert role(back, found, back.cluster_id) == "standalone"
    done = cli(main, "repoint", head.node)
    assert done.returncode == 0, done.stderr
    check_replica(head, ahead)
    wait_for(lambda: head.value("SELECT epoch FROM shinha.shinha_fence") == str(epoch), 20,
             "the returning node to get the new epoch")


def test_rejoin_salvages_what_only_the_old_primary_held(nodes: list[mariadb.MariaDB],
                                                        tmp_path: Path) -> None:
    """Results an old primary acknowledged but never shipped (its replicas had stopped) are
    ingested into the new primary, once each; then the old primary is a replica again."""
    main = rebuild(nodes, tmp_path)
    options = opts(nodes)
    found = statuses(options)
    head = next(s for s in nodes if s.node == admin_head(found))
    new, other = [s for s in nodes if s is not head]
    epoch = max(s.db_epoch or 0 for s in found)

    def batch(tag: str, n: int, output: str = "same") -> IngestBatch:
        return IngestBatch(scheduler="scheduler-1", results=[
            CheckResult(result_id=f"{tag}-{i:04d}", host="web1", service=f"S{i % 3}",
                        return_code=0, output=output if i % 2 else f"{tag} {i}",
                        finished=1000.0 + i) for i in range(n)],
            events=[Event(event_id=f"{tag}-event", time=1000.0, host="web1", kind="command",
                          detail=tag)])

    async def ingest(server: mariadb.MariaDB, at: int, *batches: IngestBatch) -> None:
        store = MariadbStore(options)
        store.set_primary(node_of(server), at)
        async with store:
            for b in batches:
                await store.ingest(b)

    asyncio.run(ingest(head, epoch, batch("before", 30)))
    wait_for(lambda: count(new, "seen_results") == 30 and count(other, "seen_results") == 30,
             20, "the first results to replicate")
    for server in (new, other):
        server.sql("STOP SLAVE")
    asyncio.run(ingest(head, epoch, batch("late", 40)))  # acknowledged, on the head only
    head.kill()
    try:
        promotion = asyncio.run(admin.promote(options, node_of(new), epoch + 1))
        assert promotion.primary == node_of(new)
        asyncio.run(ingest(new, epoch + 1, batch("after", 20)))
    finally:
        head.start()
    # What the arbiter does with a returning node: it cannot replicate (it holds what the
    # new primary lacks), it stays read-only.
    with pytest.raises(DatabaseError, match="diverged"):
        asyncio.run(admin.repoint(options, node_of(head), node_of(new), timeout=20))
    assert head.value("SELECT @@read_only") == "1"
    done = cli(main, "rejoin", head.node)
    assert done.returncode == 0, done.stderr
    assert f"{head.node} is a replica of {new.node} again" in done.stdout
    salvaged = re.search(r"(\d+) results, (\d+) events.*not re-created\): (\d+)", done.stdout,
                         re.S)
    assert salvaged, done.stdout
    results, events, bumps = map(int, salvaged.groups())
    # Every late result is on the new primary once: the rows re-created, the bumps counted.
    ids = {str(r[0]): int(r[1]) for r in new.sql(
        "SELECT result_id, COUNT(*) FROM results GROUP BY result_id", "shinha")}
    seen = {str(r[0]) for r in new.sql("SELECT result_id FROM seen_results", "shinha")}
    rows_late = {i for i in ids if i.startswith("late-")}
    assert results == len(rows_late) > 0
    assert results + bumps == 40
    assert all(n == 1 for n in ids.values())
    assert {i for i in seen if i.startswith("late-")} == rows_late
    assert events == 1
    assert new.value("SELECT COUNT(*) FROM shinha.events WHERE event_id = 'late-event'") == "1"
    assert not [i for i in ids if i.startswith("after-") and i in rows_late]
    # The old primary is a replica of the new one, with its data.
    check_replica(head, new)
    wait_for(lambda: count(head, "seen_results") == count(new, "seen_results"), 30,
             "the rejoined node to hold the primary's data")
    after = {s.node: s for s in statuses(options)}
    assert not diverged(after[new.node], after[head.node])
    # Salvaging twice finds nothing more.
    again = asyncio.run(rejoin(options, node_of(head), node_of(new)))
    assert again.salvaged_results == again.salvaged_events == again.bumps_not_recreated == 0

"""A planned switchover and a manual promote go through the leading arbiter, all real
processes: `shinha db switchover NODE` under steady load moves the primary with a higher
database epoch and loses nothing; the spare arbiter, a wrong secret, a node not in ha_hosts
and a promote while the primary lives are refused with nothing changed; `shinha status`
shows every database node; `shinha db promote NODE` after kill -9 of the primary, while the
anti-flap holds the arbiter's own failover back, publishes the promoted node. One cluster
(two mariadbd nodes, every daemon with a spare) is started for the module; each test reads
where the primary is now (the promote test, which kills a node, runs last)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import mariadb
from tests.cluster import ROOT, Cluster
from tests.dbcluster import bootstrap_account, count_results, database, db_cluster, db_init

ARBITERS = ("arbiter-master", "arbiter-spare")
DATASERVERS = ("dataserver-master", "dataserver-spare")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[Cluster, list[mariadb.MariaDB]]]:
    mariadb.require()
    root = tmp_path_factory.mktemp("db-switchover")
    servers = [mariadb.MariaDB(root / "db", f"127.0.0.{i + 2}", i + 1) for i in range(2)]
    c: Cluster | None = None
    try:
        for server in servers:
            server.start()
            bootstrap_account(server)
        # A long anti-flap period: after a switchover, the arbiter does not fail over by
        # itself, and the promote test can promote by hand.
        c = db_cluster(root / "cluster", servers, failover_min_interval="600")
        db_init(c)
        c.start_all()
        c.wait(lambda: (d := database(c)) and d["topology"]["primary"], 60,
               "the arbiter to publish the primary")
        yield c, servers
    finally:
        if c is not None:
            c.stop_all()
        for server in servers:
            server.stop()


def roles(c: Cluster, servers: list[mariadb.MariaDB]
          ) -> tuple[mariadb.MariaDB, mariadb.MariaDB, int]:
    """(primary, replica, database epoch) as the leading arbiter publishes them, once the
    replica replicates from the primary."""
    def settled() -> tuple[mariadb.MariaDB, mariadb.MariaDB, int] | None:
        d = database(c)
        if not d:
            return None
        topology = d["topology"]
        primary = next((s for s in servers if s.node == topology["primary"]), None)
        replica = next((s for s in servers if s is not primary), None)
        nodes = {n["node"]: n for n in d["nodes"]}
        if primary is None or replica is None or replica.node not in nodes:
            return None
        r = nodes[replica.node]
        if not (r["is_replica"] and r["replicates_from"] == primary.node and r["io_running"]
                and r["sql_running"] and r["read_only"]):
            return None
        return primary, replica, int(topology["epoch"])
    return c.wait(settled, 60, "one published primary and its replica replicating")


def shinha(c: Cluster, *args: str, main: Path | None = None,
           timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`shinha ARGS -c MAIN` as an operator runs it, in a child process."""
    return subprocess.run([sys.executable, "-m", "shinha", *args, "-c", str(main or c.main)],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=timeout, check=False)


def replicates_from(server: mariadb.MariaDB) -> str:
    """host:port of the primary `server` replicates from, by SHOW SLAVE STATUS ('' none)."""
    rows = server.sql("SHOW SLAVE STATUS")
    return f"{rows[0][1]}:{rows[0][3]}" if rows and rows[0][1] else ""


class Load(threading.Thread):
    """Passive results to the receiver, a batch every 50 ms, until stopped. Anything but a
    202 is sent again with the same ids, as a real client does; `acked` holds every id the
    receiver answered 202 for."""

    def __init__(self, c: Cluster) -> None:
        super().__init__(daemon=True)
        self.c = c
        self.acked: list[str] = []
        self.refused = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            ids = [f"sw-{uuid.uuid4().hex[:16]}" for _ in range(3)]
            body = {"results": [{"host": f"h{i}", "service": "PASSIVE", "return_code": i,
                                 "output": f"load {rid}", "result_id": rid}
                                for i, rid in enumerate(ids)]}
            while not self.halt.is_set():
                try:
                    status, _ = self.c.request("receiver-master", "POST", "/api/results",
                                               body, timeout=10)
                except OSError:
                    status = 0
                if status == 202:
                    self.acked.extend(ids)
                    break
                self.refused += 1
                self.halt.wait(0.2)
            self.halt.wait(0.05)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=30)
        assert not self.is_alive(), "the load thread did not stop"


def test_status_lists_every_database_node(
        cluster: tuple[Cluster, list[mariadb.MariaDB]]) -> None:
    c, servers = cluster
    primary, replica, epoch = roles(c, servers)
    done = shinha(c, "status")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"database primary {primary.node}  database epoch {epoch}" in out, out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    # NODE ROLE REACHABLE RO GTID LAG IO/SQL EPOCH
    p, r = lines[primary.node], lines[replica.node]
    assert p[1:4] == ["primary", "yes", "no"], out
    assert r[1:4] == ["replica", "yes", "yes"], out
    assert r[6] == "Yes/Yes" and p[6] == "-", out
    assert p[7] == str(epoch), out
    assert re.fullmatch(r"\d+-\d+-\d+(,\d+-\d+-\d+)*", p[4]), out


def test_switchover_refused_by_the_spare_arbiter_a_wrong_secret_and_bad_requests(
        cluster: tuple[Cluster, list[mariadb.MariaDB]], tmp_path: Path) -> None:
    c, servers = cluster
    primary, replica, epoch = roles(c, servers)
    # The spare arbiter does not lead: it refuses and names the one that does.
    done = shinha(c, "db", "switchover", replica.node, "--arbiter", "arbiter-spare")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "answered 409" in done.stderr and "arbiter-spare does not lead" in done.stderr
    assert "arbiter arbiter-master leads" in done.stderr, done.stderr
    # The same tree with another cluster secret: 401 from the leading arbiter.
    wrong = tmp_path / "wrong-secret"
    wrong.mkdir()
    for cfg in c.root.glob("*.cfg"):
        shutil.copy(cfg, wrong / cfg.name)
    main = wrong / "shinha.cfg"
    main.write_text(re.sub(r"cluster_secret=.*", "cluster_secret=not-the-secret-0123456",
                           main.read_text()))
    done = shinha(c, "db", "switchover", replica.node, main=main)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "arbiter-master answered 401" in done.stderr, done.stderr
    # Straight to the endpoints: no secret, a node not in ha_hosts, a promote while the
    # primary lives.
    status, body = c.request("arbiter-master", "POST", "/db/switchover",
                             {"node": replica.node}, secret=None)
    assert status == 401, body
    status, body = c.request("arbiter-master", "POST", "/db/switchover",
                             {"node": "127.0.0.9:3306"})
    assert status == 400 and body["field"] == "node", body
    assert "not in ha_hosts" in body["message"]
    done = shinha(c, "db", "promote", replica.node)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "answered 409" in done.stderr and f"{primary.node} is a writable primary" \
        in done.stderr, done.stderr
    # Nothing changed.
    assert roles(c, servers) == (primary, replica, epoch)
    assert primary.value("SELECT @@read_only") == "0"
    assert replica.value("SELECT @@read_only") == "1"
    assert replicates_from(replica) == primary.node
    assert "switchover to" not in c.log("arbiter-spare")


def test_planned_switchover_under_load_loses_nothing(
        cluster: tuple[Cluster, list[mariadb.MariaDB]]) -> None:
    c, servers = cluster
    old, new, epoch = roles(c, servers)
    load = Load(c)
    load.start()
    try:
        c.wait(lambda: len(load.acked) >= 60, 60, "the load to flow")
        before = len(load.acked)
        started = time.monotonic()
        done = shinha(c, "db", "switchover", new.node)
        took = time.monotonic() - started
        assert done.returncode == 0, done.stdout + done.stderr + c.tails()
        during = len(load.acked) - before
        # The load goes on after the switchover: the data-servers write to the new primary.
        c.wait(lambda: len(load.acked) >= before + during + 60, 60,
               "results accepted after the switchover")
    finally:
        load.stop()
    match = re.search(rf"switched over from {re.escape(old.node)} to {re.escape(new.node)} "
                      r"in ([\d.]+) s: database epoch (\d+) \(was (\d+)\)", done.stdout)
    assert match, done.stdout
    new_epoch = int(match.group(2))
    assert new_epoch > epoch and int(match.group(3)) == epoch, done.stdout
    assert f"re-pointed {old.node} at it" in done.stdout, done.stdout
    # The arbiter publishes it; the data-servers took it from its dispatch.
    view = database(c)
    assert view["topology"]["primary"] == new.node, view
    assert view["topology"]["epoch"] == new_epoch, view
    for ds in DATASERVERS:
        assert c.get(ds, "/ping")["db_epoch"] == new_epoch, ds
    # The old primary is a read-only replica of the new one.
    assert old.value("SELECT @@read_only") == "1"
    assert new.value("SELECT @@read_only") == "0"
    assert replicates_from(old) == new.node
    assert roles(c, servers) == (new, old, new_epoch)
    # Every result the receiver answered 202 for is on the new primary, once.
    ids = set(load.acked)
    assert len(ids) == len(load.acked)
    counts = c.wait(lambda: (n := count_results(new, ids)) and all(v >= 1 for v in n.values())
                    and n, 120, f"all {len(ids)} acknowledged results on the new primary")
    duplicated = {i: n for i, n in counts.items() if n != 1}
    assert not duplicated, duplicated
    log = c.log("arbiter-master")
    assert f"switched the database primary over from {old.node} to {new.node}" in log
    print(f"\nswitchover {old.node} -> {new.node}: {took:.2f} s for the command "
          f"({match.group(1)} s in the arbiter), {len(ids)} results acknowledged "
          f"({during} while it ran, {load.refused} requests refused and sent again), "
          "0 lost, 0 duplicated")


def test_promote_through_the_arbiter_after_kill_9_of_the_primary(
        cluster: tuple[Cluster, list[mariadb.MariaDB]]) -> None:
    c, servers = cluster
    _, new, _ = roles(c, servers)
    # A switchover first: it starts the anti-flap period, so that the arbiter does not
    # fail over by itself when the primary dies; the operator promotes.
    done = shinha(c, "db", "switchover", new.node)
    assert done.returncode == 0, done.stdout + done.stderr + c.tails()
    lost, survivor, epoch = roles(c, servers)
    assert lost is new
    lost.kill(signal.SIGKILL)
    try:
        c.wait(lambda: "database failover held back" in c.log("arbiter-master"), 60,
               "the arbiter to hold its failover back (anti-flap)")
        started = time.monotonic()
        done = shinha(c, "db", "promote", survivor.node)
        took = time.monotonic() - started
        assert done.returncode == 0, done.stdout + done.stderr + c.tails()
        match = re.search(rf"promoted {re.escape(survivor.node)} \(primary was "
                          rf"{re.escape(lost.node)}\) in [\d.]+ s: database epoch (\d+) "
                          rf"\(was {epoch}\)", done.stdout)
        assert match, done.stdout
        promoted_epoch = int(match.group(1))
        assert promoted_epoch > epoch
        assert f"not re-pointed: {lost.node}: unreachable" in done.stdout, done.stdout
        view = database(c)
        assert view["topology"]["primary"] == survivor.node, view
        assert view["topology"]["epoch"] == promoted_epoch, view
        assert survivor.value("SELECT @@read_only") == "0"
        assert not survivor.sql("SHOW SLAVE STATUS")
        for ds in DATASERVERS:
            assert c.get(ds, "/ping")["db_epoch"] == promoted_epoch, ds
        ids = [f"pr-{uuid.uuid4().hex[:16]}" for _ in range(10)]
        status, body = c.request("receiver-master", "POST", "/api/results", {"results": [
            {"host": f"h{i % 4}", "service": "PASSIVE", "return_code": i % 3,
             "output": f"after promote {rid}", "result_id": rid}
            for i, rid in enumerate(ids)]})
        assert status == 202, body
        c.wait(lambda: all(v == 1 for v in count_results(survivor, set(ids)).values()), 60,
               "results stored on the promoted node")
        assert f"promoted {survivor.node} at the operator's word" in c.log("arbiter-master")
    finally:
        lost.start()
    # Back, it is made a replica of the promoted node (or shown diverged, had it committed
    # something the survivor never received before the kill).
    def back() -> str:
        d = database(c)
        node = next((n for n in d.get("nodes", []) if n["node"] == lost.node), None)
        if node is None or not node["reachable"]:
            return ""
        if lost.node in d["topology"]["diverged"]:
            return "diverged"
        if node["is_replica"] and node["replicates_from"] == survivor.node \
                and node["io_running"] and node["read_only"]:
            return "replica"
        return ""
    outcome = c.wait(back, 90, "the killed node back as a replica (or shown diverged)")
    assert lost.value("SELECT @@read_only") == "1"
    print(f"\npromote {survivor.node} through the arbiter: {took:.2f} s for the command; "
          f"{lost.node} came back as {outcome}")

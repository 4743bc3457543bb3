"""The cluster on a replicated MariaDB tier, all real processes: the leading arbiter
publishes the primary, promotes a replica when the primary dies, fences the old one, and no
result a scheduler acknowledged is lost or stored twice."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import mariadb
from tests.cluster import Cluster, wait_for
from tests.dbcluster import (
    ADMIN_PASS,
    DB_PASS,
    REPL_PASS,
    count_results,
    database,
    db_cluster,
    db_init,
    fresh_nodes,
)
from tests.ha import leaders

DS = "dataserver-master"


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[mariadb.MariaDB]]:
    with fresh_nodes(tmp_path / "db") as nodes:
        yield nodes


def send(c: Cluster, n: int, tag: str) -> list[str]:
    ids = [f"{tag}-{uuid.uuid4().hex[:16]}" for _ in range(n)]
    status, body = c.request("receiver-master", "POST", "/api/results", {"results": [
        {"host": f"h{i % 4}", "service": "PASSIVE", "return_code": i % 3,
         "output": f"{tag} {i}", "result_id": rid} for i, rid in enumerate(ids)]})
    assert status == 202, body
    return ids


def test_primary_killed_replica_promoted_nothing_lost(servers: list[mariadb.MariaDB],
                                                     tmp_path: Path) -> None:
    primary, replica = servers
    c = db_cluster(tmp_path / "cluster", servers)
    db_init(c)
    c.start_all()
    try:
        view = c.wait(lambda: (d := database(c)) and d["topology"]["primary"] == primary.node
                      and d, 40, "the arbiter publishes the primary")
        assert view["topology"]["epoch"] >= 1
        before = send(c, 20, "before")
        wait_for(lambda: all(v == 1 for v in count_results(primary, set(before)).values()),
                 30, "results stored on the primary")
        wait_for(lambda: all(v == 1 for v in count_results(replica, set(before)).values()),
                 30, "and replicated")
        epoch = view["topology"]["epoch"]
        primary.kill(signal.SIGKILL)
        killed = time.monotonic()
        during = send(c, 20, "during")  # accepted while no primary: the receiver keeps them
        c.wait(lambda: (d := database(c)) and d["topology"]["primary"] == replica.node
               and d["topology"]["epoch"] > epoch, 40, "the replica promoted")
        promoted_after = time.monotonic() - killed
        after = send(c, 20, "after")
        ids = set(before + during + after)
        wait_for(lambda: all(v == 1 for v in count_results(replica, ids).values()), 60,
                 "every acknowledged result on the new primary once")
        assert promoted_after < 3 * 0.5 + 10, promoted_after
        log = c.log("arbiter-master")
        assert "promoted " + replica.node in log
        # The old primary comes back read-only and becomes a replica of the new one.
        primary.start()
        wait_for(lambda: primary.value("SELECT @@read_only") == "1" and primary.sql(
            "SHOW SLAVE STATUS"), 60, "the old primary a replica again")
        wait_for(lambda: all(v == 1 for v in count_results(primary, ids).values()), 60,
                 "the old primary caught up")
        assert leaders(c) == ["arbiter-master"]
        # The database passwords (resource.cfg) are nowhere an operator or a scraper looks.
        seen = []
        for name, daemon in c.daemons.items():
            for path in ("/status", "/metrics", *(("/cluster",) if daemon.role == "arbiter"
                                                  else ())):
                status, body = c.request(name, "GET", path)
                assert status == 200, (name, path, status)
                seen.append(json.dumps(body) if not isinstance(body, str) else body)
            seen.append(c.log(name))
        text = "\n".join(seen)
        for password in (DB_PASS, ADMIN_PASS, REPL_PASS):
            assert password not in text
    finally:
        c.stop_all()

"""A whole shinha cluster on a replicated MariaDB tier, for tests and benches of database
failover: real daemons (tests/cluster.py) and real mariadbd nodes (tests/mariadb.py), set up
by `shinha db init` as an operator would."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests import mariadb
from tests.cluster import ROOT, Cluster, ha_cluster

BOOT_USER, BOOT_PASS = "boot", "boot-pass-123"
ADMIN_PASS, DB_PASS, REPL_PASS = "admin-pass-123", "data-pass-123", "repl-pass-123"


def bootstrap_account(server: mariadb.MariaDB) -> None:
    """The one account a fresh server has for `shinha db init` (as root would be)."""
    server.sql(f"SET SESSION sql_log_bin = 0; CREATE USER IF NOT EXISTS '{BOOT_USER}'@'%' "
               f"IDENTIFIED BY '{BOOT_PASS}'; GRANT ALL ON *.* TO '{BOOT_USER}'@'%' "
               "WITH GRANT OPTION")


def module(servers: list[mariadb.MariaDB], **extra: Any) -> str:
    """The `define module` of the MariaDB tier; passwords come from resource macros."""
    options = {"module_name": "store-mariadb", "module_type": "mariadb",
               "ha_hosts": ", ".join(s.node for s in servers), "database": "shinha",
               "dbuser": "shinha", "dbpass": "$USER5$", "ha_dbuser": "shinha_admin",
               "ha_dbpass": "$USER6$", "repl_dbuser": "shinha_repl", "repl_dbpass": "$USER7$",
               "ha_connect_retries": "3", "ha_check_interval": "0.5",
               "failover_min_interval": "10", "connect_timeout": "1", **extra}
    body = "".join(f"  {k} {v}\n" for k, v in options.items())
    return f"define module {{\n{body}}}\n"


def db_cluster(root: Path, servers: list[mariadb.MariaDB], spares: tuple[str, ...] = (
        "arbiter", "scheduler", "poller", "receiver", "dataserver"), hosts: int = 4,
               **extra: Any) -> Cluster:
    """The two-host example with every data-server storing into the MariaDB tier."""
    c = ha_cluster(root, hosts=hosts, spares=spares)
    for d in c.daemons.values():
        if d.role == "dataserver":
            d.extra += "  modules store-mariadb\n"
    c.objects += module(servers, **extra)
    c.write()
    with open(c.root / "resource.cfg", "a") as fh:
        fh.write(f"$USER5$={DB_PASS}\n$USER6$={ADMIN_PASS}\n$USER7$={REPL_PASS}\n")
    return c


def db_init(c: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """`shinha db init` on the cluster's tree, as an operator runs it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SHINHA_DB_BOOTSTRAP_PASSWORD": BOOT_PASS}
    done = subprocess.run([sys.executable, "-m", "shinha", "db", "init", "-c", str(c.main),
                           "--bootstrap-user", BOOT_USER, *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300, check=False)
    if done.returncode != 0:
        raise AssertionError(f"shinha db init failed:\n{done.stdout}\n{done.stderr}")
    return done


def count_results(server: mariadb.MariaDB, ids: set[str]) -> dict[str, int]:
    """How many times each id is in the results table of `server`."""
    rows = server.sql("SELECT result_id, count(*) FROM results GROUP BY result_id",
                      "shinha")
    found = {r[0]: int(r[1]) for r in rows}
    return {i: found.get(i, 0) for i in ids}


@contextlib.contextmanager
def fresh_nodes(root: Path, count: int = 2) -> Iterator[list[mariadb.MariaDB]]:
    """`count` fresh nodes on 127.0.0.2, 127.0.0.3 …, each with only the bootstrap account
    (as root would be), stopped at the end."""
    mariadb.require()
    nodes = [mariadb.MariaDB(root, f"127.0.0.{i + 2}", i + 1) for i in range(count)]
    try:
        for node in nodes:
            node.start()
            bootstrap_account(node)
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def database(c: Cluster) -> dict[str, Any]:
    """The leading arbiter's database view ({} while none leads)."""
    for name in ("arbiter-master", "arbiter-spare"):
        try:
            view = c.get(name, "/cluster")
        except (OSError, AssertionError):
            continue
        if view["leading"]:
            return dict(view["database"])
    return {}

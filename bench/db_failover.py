"""Benchmark: how fast the MariaDB data tier fails over when its primary dies, and that no
result the cluster acknowledged is lost or stored twice by it.

Each round starts from scratch, as an operator would: two throw-away `mariadbd` nodes
(tests/mariadb.py: binary log in ROW format, GTID strict mode, log_slave_updates, read_only=1
at start, durable commits), node 1 on 127.0.0.2 ("host A"), node 2 on 127.0.0.3 ("host B");
the two-host cluster of tests/dbcluster.py (every master daemon on host A, a spare of every
role on host B, both data-servers on the `module_type mariadb` module), set up by
`shinha db init` (node 1 primary, node 2 its GTID replica) and started as real processes.
Under a steady load — passive results POSTed to receiver-master at --rate per second, each
with an id and an output of its own (every id the receiver answered 202 is remembered), and
the active checks of HOSTS hosts, each host and its 4 active services every second (20 checks
a second) — it waits for the leading arbiter to publish node 1 as the primary and for every
check to have a result, lets the load run for STEADY s plus a random part of one
ha_check_interval (so the kill falls anywhere between two probes), then SIGKILLs node 1's
mariadbd. All times are from that kill, in seconds, on this machine's clock; the log lines
carry millisecond timestamps:

  first failed check  the leading arbiter logs "database primary NODE1 is down".
  promoted            ("detected after") the leading arbiter logs "promoted NODE2, database
                      epoch N": it has promoted node 2 (relay log applied, replication
                      stopped, epoch N written to its fence, read_only lifted).
  /cluster            the bench first saw NODE2 as the primary in the leading arbiter's
                      `/cluster` (read every 0.05 s: up to one read late).
  published           the last data-server logs "database primary is now NODE2".
  first write         the first batch committed on the new primary: the earliest of the
                      data-servers' "storing ingests again" lines after the kill. A data-server
                      logs it when an ingest returns committed after one that failed. From the
                      kill on, every ingest fails (node 1 is gone; a data-server writes to node
                      2 only once it is published), on both data-servers (a scheduler tries
                      dataserver-master, then dataserver-spare): so the earliest such line is
                      the first commit on node 2.
  new result seen     cross-check of "first write" from the database side: when the bench
                      first found, on node 2 (read over its socket every 0.05 s), a passive
                      result it POSTed after the kill — one node 1 cannot have stored. Up to
                      one read late, and later than "first write" when the first batch on
                      node 2 held only results sent before the kill. "ingest began" is that
                      result's `seen_results.received`: the data-server's clock when it began
                      the ingest that stored it (before the commit).

The load then goes on for AFTER s, stops; the bench waits until no receiver, poller or
scheduler holds anything, stops the daemons in order (each hands what it holds to one still
running), and reads node 2, the new primary:

  lost        passive ids the receiver answered 202 that are not on node 2, plus active
              results a poller made durable (its "results durable:" debug lines) that node 2
              lacks; an id still pending in a journal after the stop is counted apart.
  duplicates  result ids with more than one `results` row on node 2 (any id, answered or not).

A round is within the bound when both "promoted" and "first write" come at most
ha_connect_retries × ha_check_interval + 2 s after the kill: the arbiter needs
ha_connect_retries failed checks ha_check_interval apart, the first one 0 to one interval
after the kill; the 2 s are for the confirmation by the data-servers, the promotion, the
dispatch and the schedulers' next push (a scheduler retries a refused batch after 0.2, 0.4,
0.8, 1.6 s, then every 2 s: the first write is its first retry after the publication). The run
is valid when every round was measured, within the bound, lost nothing and stored nothing
twice.

    python bench/db_failover.py                      # 5 rounds, 25-45 s each
    python bench/db_failover.py --semi-sync --rounds 3
    python bench/db_failover.py --check-interval 0.5 --keep

The last line of output is one JSON document starting with `{"bench": "db_failover"`; it is
also appended to bench/out/db_failover.jsonl. Exits 1 if the run is not valid. Every process it
starts (the mariadbd nodes, the daemons, `shinha db init`) is stopped at the end, also on
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import append_result, call, compile_shinha, interrupt_on, rounded, scratch_dir
from failover import (
    drain,
    durable_active_ids,
    first_line,
    journaled,
    log_offsets,
    poll,
    shielded,
    stats,
    stop_in_order,
)

from tests import mariadb
from tests.cluster import Cluster
from tests.dbcluster import bootstrap_account, db_cluster, db_init

HOSTS = 4
ARBITERS = ("arbiter-master", "arbiter-spare")
DATASERVERS = ("dataserver-master", "dataserver-spare")
#: Seconds of load on the published primary before the kill (plus up to one check interval).
STEADY = 1.0
#: Seconds of load after the failover is seen, on the new primary.
AFTER = 3.0
ROUND_TIMEOUT = 40.0
#: How often the bench reads /cluster and the new primary while it waits for the failover.
READ_EVERY = 0.05


# -- the load -----------------------------------------------------------------------------------


class PassiveLoad:
    """Passive results POSTed to receiver-master at `rate` per second from a thread, each
    with its own id and output; every id sent is recorded with its time, and the ones the
    receiver answered 202 are remembered as accepted."""

    def __init__(self, c: Cluster, rate: float, tag: str) -> None:
        self.c = c
        self.rate = rate
        self.tag = tag
        self.sent: list[tuple[str, float]] = []  # (result_id, wall time of the POST)
        self.accepted: list[str] = []
        self.errors = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="passive-load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop sending and wait for the request in flight (fine before start, or twice)."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=15)

    def _run(self) -> None:
        began = time.monotonic()
        n = 0
        while not self._stop.is_set():
            wait = began + n / self.rate - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            rid = f"dbf-{self.tag}-{n:06d}"
            body = {"results": [{"host": f"h{n % HOSTS}", "service": "PASSIVE",
                                 "return_code": 0, "result_id": rid,
                                 "output": f"db failover bench {self.tag} #{n}"}]}
            n += 1
            self.sent.append((rid, time.time()))
            try:
                status, reply = self.c.request("receiver-master", "POST", "/api/results", body,
                                               timeout=10.0)
            except (OSError, urllib.error.URLError, ValueError) as exc:
                self.errors += 1
                self.last_error = str(exc)
                continue
            if status == 202:
                self.accepted.append(rid)
            else:
                self.errors += 1
                self.last_error = f"{status}: {reply}"

    def sent_after(self, at: float) -> list[str]:
        return [rid for rid, when in list(self.sent) if when > at]


# -- one round ----------------------------------------------------------------------------------


@dataclass
class Round:
    index: int
    setup: float | None = None  # seconds from nothing to the primary published, load on
    epoch_before: int | None = None
    epoch_after: int | None = None
    first_failed_check: float | None = None
    promoted: float | None = None
    cluster_shown: float | None = None
    published: float | None = None
    first_write: float | None = None
    new_result_seen: float | None = None
    new_result_ingest_began: float | None = None
    passive_accepted: int = 0
    passive_lost: int = 0
    active_results: int = 0
    active_lost: int = 0
    duplicates: int = 0
    journaled: int = 0
    load_errors: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        return self.promoted is not None and self.first_write is not None

    def within(self, bound: float) -> bool:
        return (self.promoted is not None and self.promoted <= bound
                and self.first_write is not None and self.first_write <= bound)

    @property
    def clean(self) -> bool:
        return not (self.passive_lost or self.active_lost or self.duplicates)


def leading_arbiter(c: Cluster) -> str | None:
    for name in ARBITERS:
        reply = call(c, name, "/ping", 1.0)
        if reply and reply.get("leading"):
            return name
    return None


def publishes(c: Cluster, arbiter: str, node: str) -> int | None:
    """The database epoch, when `arbiter` leads and its /cluster publishes `node` as the
    primary."""
    view = call(c, arbiter, "/cluster")
    if not view or not view.get("leading") or not view.get("database"):
        return None
    topology = view["database"]["topology"]
    return int(topology["epoch"]) if topology["primary"] == node else None


def all_checked(c: Cluster) -> bool:
    """Every service of every host has a result, in a HARD state (the FAIL ones CRITICAL)."""
    page = call(c, "dataserver-master", "/api/services?limit=1000")
    return bool(page and len(page["items"]) == HOSTS * 5
                and all(r["state"] != 4 and r["state_type"] == "HARD" for r in page["items"]))


def first_new_result(node: mariadb.MariaDB, ids: list[str]) -> float | None:
    """`received` of the earliest-ingested of `ids` that `node` holds; None if none."""
    if not ids:
        return None
    quoted = ", ".join(f"'{rid}'" for rid in ids)  # our own ids: [a-z0-9-] only
    try:
        rows = node.sql("SELECT min(received) FROM seen_results WHERE result_id IN "
                        f"({quoted})", "shinha")
    except (AssertionError, subprocess.TimeoutExpired):
        return None  # still starting, or busy: read again
    value = rows[0][0] if rows and rows[0] else "NULL"
    return None if value == "NULL" else float(value)


def stored(node: mariadb.MariaDB) -> tuple[dict[str, int], set[str]]:
    """result_id -> number of `results` rows, and every id of `seen_results`, on `node`."""
    rows = {r[0]: int(r[1]) for r in node.sql(
        "SELECT result_id, count(*) FROM results GROUP BY result_id", "shinha")}
    seen = {r[0] for r in node.sql("SELECT result_id FROM seen_results", "shinha")}
    return rows, seen


def run_round(index: int, root: Path, args: argparse.Namespace) -> Round:
    began = time.monotonic()
    r = Round(index)
    servers = [mariadb.MariaDB(root / "db", f"127.0.0.{i + 2}", i + 1) for i in range(2)]
    old, new = servers
    extra: dict[str, Any] = {"ha_check_interval": f"{args.check_interval:g}",
                             "ha_connect_retries": str(args.connect_retries),
                             "failover_min_interval": "60"}
    if args.semi_sync:
        extra["semi_sync"] = "1"
    c: Cluster | None = None
    load: PassiveLoad | None = None
    try:
        for server in servers:
            server.start()
            bootstrap_account(server)
        c = db_cluster(root / "cluster", servers, hosts=HOSTS, **extra)
        db_init(c)
        c.start_all()
        cluster = c
        leader = poll(lambda: leading_arbiter(cluster), 60, "an arbiter leading")
        r.epoch_before = poll(lambda: publishes(cluster, leader, old.node), 60,
                              f"{leader} publishing {old.node} as the primary")
        load = PassiveLoad(c, args.rate, f"r{index}")
        load.start()
        poll(lambda: all_checked(cluster), 60, "every service checked, in a HARD state")
        r.setup = time.monotonic() - began
        time.sleep(STEADY + random.uniform(0, args.check_interval))  # the random moment
        offsets = log_offsets(c)

        assert old.proc is not None
        old.proc.send_signal(signal.SIGKILL)
        t0 = time.time()
        old.proc.wait(timeout=30)

        deadline = time.monotonic() + ROUND_TIMEOUT
        while r.cluster_shown is None or r.new_result_seen is None:
            if time.monotonic() > deadline:
                r.notes.append(f"failover not seen within {ROUND_TIMEOUT:g} s ("
                               f"/cluster {r.cluster_shown}, new result {r.new_result_seen})")
                break
            now = time.time()
            if r.cluster_shown is None:
                r.epoch_after = publishes(c, leader, new.node)
                if r.epoch_after is not None:
                    r.cluster_shown = now - t0
            if r.new_result_seen is None:
                received = first_new_result(new, load.sent_after(t0))
                if received is not None:
                    r.new_result_seen = time.time() - t0
                    r.new_result_ingest_began = received - t0
            time.sleep(READ_EVERY)
        time.sleep(AFTER)  # load on the new primary
        load.stop()
        r.load_errors = load.errors
        read_logs(c, r, leader, offsets, old.node, new.node, t0)
        left = drain(c)
        if left:
            r.notes.append(f"not drained: {left}")
        stop_in_order(c)
        account(c, r, load, new)
    except (TimeoutError, AssertionError) as exc:
        r.notes.append(str(exc).splitlines()[0])
        if c is not None:
            print(c.tails(15), flush=True)
    finally:
        with shielded():
            if load is not None:
                load.stop()
            try:
                if c is not None:
                    c.stop_all()
            finally:
                for server in servers:
                    server.stop()
    r.seconds = time.monotonic() - began
    return r


def read_logs(c: Cluster, r: Round, leader: str, offsets: dict[str, int], old: str, new: str,
              t0: float) -> None:
    """The times of the failover's steps, from the daemons' logs since `offsets`."""
    down = first_line(c, leader, offsets[leader], rf"database primary {old} is down")
    promoted = first_line(c, leader, offsets[leader], rf"promoted {new}, database epoch")
    r.first_failed_check = down[0] - t0 if down else None
    r.promoted = promoted[0] - t0 if promoted else None
    if promoted is None:
        r.notes.append(f"{leader} logged no 'promoted {new}'")
    now_primary = [first_line(c, n, offsets[n], rf"database primary is now {new}")
                   for n in DATASERVERS]
    if all(now_primary):
        r.published = max(p[0] for p in now_primary if p) - t0
    writes = [w for n in DATASERVERS
              if (w := first_line(c, n, offsets[n], r"storing ingests again"))]
    if writes:
        r.first_write = min(w[0] for w in writes) - t0
    else:
        r.notes.append("no data-server logged 'storing ingests again'")


def account(c: Cluster, r: Round, load: PassiveLoad, new: mariadb.MariaDB) -> None:
    """Lost and duplicated results, on the new primary once every daemon has stopped."""
    rows, seen = stored(new)
    pending = journaled(c)
    for rid in load.accepted:
        r.passive_accepted += 1
        if rid not in seen and rid not in rows:
            if rid in pending:
                r.journaled += 1
            else:
                r.passive_lost += 1
    for rid in durable_active_ids(c):
        r.active_results += 1
        if rid not in seen:
            if rid in pending:
                r.journaled += 1
            else:
                r.active_lost += 1
    r.duplicates = sum(1 for n in rows.values() if n > 1)


# -- report -------------------------------------------------------------------------------------

#: (Round attribute, label) of the times, in seconds from the kill.
TIMES: list[tuple[str, str]] = [
    ("first_failed_check", "first failed check"),
    ("promoted", "promoted (detected after)"),
    ("cluster_shown", "  ... shown in /cluster"),
    ("published", "published to the data-servers"),
    ("first_write", "first write on the new primary"),
    ("new_result_seen", "a post-kill result seen there"),
    ("new_result_ingest_began", "  ... its ingest began"),
]
COUNTS = ("passive_accepted", "passive_lost", "active_results", "active_lost", "duplicates",
          "journaled", "load_errors")


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def round_line(r: Round, bound: float) -> str:
    return (f"round {r.index}: first failed check {_fmt(r.first_failed_check)} s, promoted "
            f"{_fmt(r.promoted)} s (/cluster {_fmt(r.cluster_shown)}), published "
            f"{_fmt(r.published)} s, first write {_fmt(r.first_write)} s (post-kill result "
            f"seen {_fmt(r.new_result_seen)}, ingest began {_fmt(r.new_result_ingest_began)}); "
            f"epoch {r.epoch_before} -> {r.epoch_after}; {r.passive_accepted} passive accepted, "
            f"{r.passive_lost} lost; {r.active_results} active durable, {r.active_lost} lost; "
            f"{r.duplicates} duplicates; {'within' if r.within(bound) else 'OUTSIDE'} the "
            f"bound; setup {_fmt(r.setup)} s, round {r.seconds:.0f} s"
            + "".join(f"  [{n}]" for n in r.notes))


def values(rounds: Sequence[Round], key: str) -> list[float]:
    return [float(v) for r in rounds if (v := getattr(r, key)) is not None]


def print_summary(rounds: Sequence[Round], bound: float) -> None:
    print(f"\n{'seconds from the kill':32}{'min':>8}{'median':>8}{'max':>8}")
    for key, label in TIMES:
        s = stats(values(rounds, key))
        cells = (f"{s['min']:>8.2f}{s['median']:>8.2f}{s['max']:>8.2f}" if s
                 else f"{'-':>8}{'-':>8}{'-':>8}")
        print(f"{label:32}{cells}")
    within = sum(r.within(bound) for r in rounds)
    print(f"bound {bound:g} s (promoted and first write): {within} of {len(rounds)} rounds "
          "within")
    totals = {k: sum(getattr(r, k) for r in rounds) for k in COUNTS}
    print(f"{totals['passive_accepted']} passive results accepted, {totals['passive_lost']} "
          f"lost; {totals['active_results']} active results made durable, "
          f"{totals['active_lost']} lost; {totals['duplicates']} duplicates; "
          f"{totals['journaled']} still in a journal; {totals['load_errors']} passive "
          "requests not answered 202")


def record(rounds: Sequence[Round], args: argparse.Namespace, bound: float, seconds: float,
           load_before: tuple[float, float, float], valid: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "bench": "db_failover", "rounds": len(rounds), "semi_sync": args.semi_sync,
        "ha_check_interval": args.check_interval, "ha_connect_retries": args.connect_retries,
        "bound_s": bound, "rate": args.rate, "hosts": HOSTS}
    for key, _ in TIMES:
        doc[f"{key}_s"] = stats(values(rounds, key))
    for key in COUNTS:
        doc[key] = sum(getattr(r, key) for r in rounds)
    doc["lost"] = doc["passive_lost"] + doc["active_lost"]
    doc["per_round"] = [{**{key: rounded(getattr(r, key)) for key, _ in TIMES},
                         "epoch": [r.epoch_before, r.epoch_after],
                         "lost": r.passive_lost + r.active_lost, "duplicates": r.duplicates,
                         "within_bound": r.within(bound), "notes": r.notes}
                        for r in rounds]
    doc["within_bound"] = all(r.within(bound) for r in rounds)
    doc.update({"seconds": round(seconds, 1), "cpus": os.cpu_count(),
                "loadavg_before": [round(x, 2) for x in load_before],
                "loadavg_after": [round(x, 2) for x in os.getloadavg()], "valid": valid})
    return doc


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5, help="failovers, each on a fresh "
                        "cluster (default 5)")
    parser.add_argument("--rate", type=float, default=20.0,
                        help="passive results per second to receiver-master (default 20)")
    parser.add_argument("--check-interval", type=float, default=1.0,
                        help="ha_check_interval of the module, seconds (default 1)")
    parser.add_argument("--connect-retries", type=int, default=3,
                        help="ha_connect_retries of the module (default 3)")
    parser.add_argument("--semi-sync", action="store_true",
                        help="semi_sync 1: AFTER_SYNC semi-synchronous replication")
    parser.add_argument("--keep", action="store_true",
                        help="keep the rounds' trees, databases and logs")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.rate <= 0 or args.check_interval <= 0 \
            or args.connect_retries < 1:
        parser.error("--rounds and --connect-retries must be at least 1, --rate and "
                     "--check-interval above 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not mariadb.available():
        print("mariadb-server is not installed (make deps installs it as root)",
              file=sys.stderr)
        return 1
    # SIGTERM stops the bench as Ctrl-C does: each round's `finally` stops what it started.
    interrupt_on(signal.SIGTERM)
    try:
        with scratch_dir("shinha-bench-db-failover-", "trees, databases and logs",
                         keep=args.keep) as root:
            return bench(args, root)
    finally:
        # tests/mariadb.py keeps one initialised datadir per process to copy from.
        template = mariadb._TEMPLATE
        if template is not None:
            shutil.rmtree(template.parent, ignore_errors=True)


def bench(args: argparse.Namespace, root: Path) -> int:
    began = time.monotonic()
    load_before = os.getloadavg()
    bound = args.connect_retries * args.check_interval + 2.0
    compile_shinha()
    print(f"db failover bench: {args.rounds} rounds, ha_connect_retries {args.connect_retries}"
          f" x ha_check_interval {args.check_interval:g} s + 2 s = bound {bound:g} s, "
          f"semi_sync {int(args.semi_sync)}, passive load {args.rate:g}/s; loadavg "
          f"{load_before[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    rounds: list[Round] = []
    for i in range(args.rounds):
        r = run_round(i + 1, root / f"round-{i + 1}", args)
        rounds.append(r)
        print(f"  {round_line(r, bound)}", flush=True)
    seconds = time.monotonic() - began
    print_summary(rounds, bound)
    valid = all(r.measured and r.within(bound) and r.clean and not r.journaled
                for r in rounds)
    print(f"\n{'VALID' if valid else 'NOT VALID'} (every round measured and within {bound:g} s, "
          f"nothing lost, nothing stored twice): {seconds:.0f} s in all, loadavg now "
          f"{os.getloadavg()[0]:.1f}")
    append_result(record(rounds, args, bound, seconds, load_before, valid))
    return 0 if valid else 1


if __name__ == "__main__":
    sys.exit(main())

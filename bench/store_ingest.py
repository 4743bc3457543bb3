"""Benchmark: how fast the data-server's stores (SQLite, MariaDB) ingest check results.

Ingests N results over S services in batches of B (as a scheduler pushes them), one batch at a
time as one scheduler would; a share of them (default half) repeat their service's previous
state, output and perfdata, so only-new-data bumps them instead of storing a row. The batches
are built before the clock starts: the numbers are the store's (plan, SQL, one durable commit
per batch), not pydantic's. A ticker on the event loop measures how long the loop was held up,
which must stay small (SQLite runs on the store's own thread, MariaDB over asyncmy).

MariaDB runs on a throw-away `mariadbd` the bench starts itself (bench/_mariadb.py) with
durable commits (innodb_flush_log_at_trx_commit=1, sync_binlog=1, binary log on), as a shinha
node runs; `--backend both` (the default) measures both stores on the same batches, `--backend
all` also MariaDB with a semi-synchronous replica (a second throw-away `mariadbd`, AFTER_SYNC:
each commit returns once the replica has it; the run is valid only if none fell back).

    python bench/store_ingest.py                          # 100,000 results, 10,000 services
    python bench/store_ingest.py --backend mariadb --results 20000 --states
    python bench/store_ingest.py --backend sqlite --dir /tmp/x --keep

The last line of output is one JSON document starting with `{"bench": "store_ingest"`, with
one entry per backend under "backends"; it is also appended to bench/out/store_ingest.jsonl.
Exits 1 if the counters are not the expected ones (every result exactly once, the expected
split between new rows and bumps), 2 if a backend cannot run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import _mariadb
from _common import append_result, quantile, run_on_uvloop

from shinha.dataserver.mariadb import MariadbStore
from shinha.dataserver.sqlite import DB_FILENAME, SqliteStore
from shinha.dataserver.store import Store
from shinha.db.options import mariadb_options
from shinha.wire import CheckResult, IngestBatch, PerfDatum, StateRow

TICK = 0.005


def make_batches(results: int, services: int, batch: int, unchanged: float, states: bool,
                 seed: int, streams: int = 1) -> tuple[list[list[IngestBatch]], int]:
    """Build each stream's batches and return them with how many results must be stored as
    new rows."""
    rng = random.Random(seed)
    values = [0.0] * services
    items: list[CheckResult] = []
    expect_new = 0
    for n in range(results):
        s = n % services
        first = n < services
        if first or rng.random() >= unchanged:
            value = values[s]
            while value == values[s]:  # a repeat would be a bump counted as new
                value = round(rng.uniform(0.001, 2.0), 4)
            values[s] = value
            expect_new += 1
        rc = 1 if values[s] > 1.5 else 0
        items.append(CheckResult(
            result_id=uuid.UUID(int=rng.getrandbits(128)).hex, job_id=f"job-{n}",
            host=f"host-{s // 10:05d}", service=f"service-{s % 10}", return_code=rc,
            output=f"{'WARNING' if rc else 'OK'} - response in {values[s]} s",
            perfdata=[PerfDatum(label="time", value=values[s], uom="s", warn="1.5", crit="3",
                                min=0.0),
                      PerfDatum(label="size", value=5120.0, uom="B", min=0.0)],
            started=1_000_000.0 + n * 0.01, finished=1_000_000.0 + n * 0.01 + 0.005,
            latency=0.002, poller="poller-1"))
    batches: list[list[IngestBatch]] = []
    for stream in range(streams):
        # Each scheduler has its own hosts, as each realm's scheduler has.
        mine = [r for n, r in enumerate(items) if (n % services) // 10 % streams == stream]
        batches.append([])
        for start in range(0, len(mine), batch):
            chunk = mine[start:start + batch]
            rows = [StateRow(host=r.host, service=r.service, state=r.return_code,
                             last_check=r.finished, output=r.output, perfdata=r.perfdata,
                             last_result_id=r.result_id) for r in chunk] if states else []
            batches[-1].append(IngestBatch(scheduler=f"scheduler-{stream + 1}", results=chunk,
                                           states=rows))
    return batches, expect_new


async def ticker(stalls: list[float], stop: asyncio.Event) -> None:
    """Record how late each short sleep wakes up: the time the loop was held up."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(TICK)
        stalls.append(max(0.0, loop.time() - before - TICK))


async def ingest_all(store: Store, batches: list[list[IngestBatch]]) -> dict[str, Any]:
    latencies: list[float] = []
    stalls: list[float] = []
    stop = asyncio.Event()
    async def push(stream: list[IngestBatch]) -> None:
        for batch in stream:  # one batch at a time, as a scheduler pushes its outbox
            t0 = time.perf_counter()
            await store.ingest(batch)
            latencies.append(time.perf_counter() - t0)

    async with store:
        tick = asyncio.create_task(ticker(stalls, stop))
        started = time.perf_counter()
        await asyncio.gather(*(push(stream) for stream in batches))
        elapsed = time.perf_counter() - started
        stop.set()
        await tick
        counters = await store.counters()
    return {"elapsed": elapsed, "latencies": latencies, "stalls": stalls,
            "counters": counters}


def db_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob(DB_FILENAME + "*"))


def run_sqlite(directory: Path, batches: list[list[IngestBatch]]) -> tuple[dict[str, Any], int]:
    run = run_on_uvloop(ingest_all(SqliteStore(directory), batches))
    return run, db_size(directory)


def run_mariadb(directory: Path, batches: list[list[IngestBatch]]) -> tuple[dict[str, Any], int]:
    server = _mariadb.BenchMariaDB(directory / "mariadb")
    try:
        server.start()
        server.sql("SET GLOBAL read_only = 0")
        options = mariadb_options("bench", {"ha_hosts": server.node,
                                            "database": _mariadb.DATABASE,
                                            "dbuser": _mariadb.USER,
                                            "dbpass": _mariadb.PASSWORD}, {})
        run = run_on_uvloop(ingest_all(MariadbStore(options), batches))
        return run, server.size()
    finally:
        server.stop()


def run_mariadb_semi_sync(directory: Path,
                          batches: list[list[IngestBatch]]) -> tuple[dict[str, Any], int]:
    """MariaDB with a semi-synchronous replica: every commit waits for the replica."""
    server = _mariadb.BenchMariaDB(directory / "semi-primary")
    replica = _mariadb.BenchMariaDB(directory / "semi-replica", server_id=2)
    try:
        server.start()
        replica.start()
        _mariadb.semi_sync_pair(server, replica)
        before = _mariadb.semi_sync_counts(server)
        options = mariadb_options("bench", {"ha_hosts": server.node,
                                            "database": _mariadb.DATABASE,
                                            "dbuser": _mariadb.USER,
                                            "dbpass": _mariadb.PASSWORD}, {})
        run = run_on_uvloop(ingest_all(MariadbStore(options), batches))
        after = _mariadb.semi_sync_counts(server)
        run["semi_sync"] = {k: after[k] - before.get(k, 0) for k in after}
        return run, server.size()
    finally:
        replica.stop()
        server.stop()


BACKENDS: dict[str, Callable[[Path, list[list[IngestBatch]]], tuple[dict[str, Any], int]]] = {
    "sqlite": run_sqlite, "mariadb": run_mariadb, "mariadb-semi-sync": run_mariadb_semi_sync}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("sqlite", "mariadb", "mariadb-semi-sync", "both",
                                              "all"), default="both",
                        help="both: sqlite and mariadb; all: and mariadb with a semi-sync "
                        "replica")
    parser.add_argument("--results", type=int, default=100_000)
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--unchanged", type=float, default=0.5,
                        help="share of results that repeat their service's previous one")
    parser.add_argument("--states", action="store_true",
                        help="send a StateRow with every result too, as a scheduler may")
    parser.add_argument("--streams", type=int, default=2,
                        help="schedulers pushing at once, each its own hosts, each one batch "
                        "at a time (default 2: a data-server serves every scheduler)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, help="where to put the databases (default: a "
                        "temporary directory, removed afterwards)")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    return parser.parse_args(argv)


def report(name: str, args: argparse.Namespace, run: dict[str, Any], size: int,
           expect_new: int) -> dict[str, Any]:
    """Print one backend's figures; return its entry of the JSON line."""
    counters: dict[str, int] = run["counters"]
    latencies: list[float] = run["latencies"]
    stalls: list[float] = run["stalls"]
    valid = (counters["results"] == args.results and counters["duplicates"] == 0
             and counters["stored_new"] == expect_new)
    if "semi_sync" in run:
        # Every commit acknowledged by the replica: none fell back to asynchronous.
        valid = valid and run["semi_sync"].get("no_tx") == 0 and run["semi_sync"]["yes_tx"] > 0
    rate = args.results / run["elapsed"]
    print(f"{name}: {args.results:,} results over {args.services:,} services in batches of "
          f"{args.batch}{' with states' if args.states else ''} from {args.streams} "
          f"scheduler(s) at once: {run['elapsed']:.2f} s, "
          f"{rate:,.0f} results/s")
    print(f"{name}: batch latency p50 {quantile(latencies, 0.5) * 1000:.1f} ms, "
          f"p99 {quantile(latencies, 0.99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")
    print(f"{name}: stored_new {counters['stored_new']:,} (expected {expect_new:,}), "
          f"only_bumped {counters['only_bumped']:,}, database {size / 2**20:.1f} MiB")
    if "semi_sync" in run:
        print(f"{name}: commits the replica acknowledged: {run['semi_sync'].get('yes_tx')}, "
              f"without it: {run['semi_sync'].get('no_tx')}")
    print(f"{name}: event loop held up: p99 {quantile(stalls, 0.99) * 1000:.1f} ms, "
          f"max {max(stalls) * 1000:.1f} ms over {len(stalls)} ticks")
    return {
        "seconds": round(run["elapsed"], 3),
        "results_per_s": round(rate),
        "batch_p50_ms": round(quantile(latencies, 0.5) * 1000, 2),
        "batch_p99_ms": round(quantile(latencies, 0.99) * 1000, 2),
        "stored_new": counters["stored_new"],
        "only_bumped": counters["only_bumped"],
        "db_mib": round(size / 2**20, 1),
        "loop_stall_p99_ms": round(quantile(stalls, 0.99) * 1000, 2),
        "loop_stall_max_ms": round(max(stalls) * 1000, 2),
        "valid": valid,
        **({"semi_sync": run["semi_sync"]} if "semi_sync" in run else {}),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = {"both": ["sqlite", "mariadb"], "all": list(BACKENDS)}.get(args.backend,
                                                                        [args.backend])
    if any(n.startswith("mariadb") for n in names) and not _mariadb.available():
        print("mariadb-server is not installed (mariadbd, mariadb-install-db): install it, "
              "or run --backend sqlite", file=sys.stderr)
        return 2
    directory = args.dir.resolve() if args.dir else Path(tempfile.mkdtemp(prefix="shinha-"))
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / DB_FILENAME).exists() or (directory / "mariadb").exists():
        print(f"{directory} holds a database already: give an empty --dir", file=sys.stderr)
        return 2
    entries: dict[str, dict[str, Any]] = {}
    try:
        batches, expect_new = make_batches(args.results, args.services, args.batch,
                                           args.unchanged, args.states, args.seed,
                                           args.streams)
        # The prebuilt batches are the bench's, not the store's: keep the collector from
        # walking them (a full pass over 100,000s of models stops every thread for ~1 s).
        gc.collect()
        gc.freeze()
        for name in names:
            run, size = BACKENDS[name](directory, batches)
            entries[name] = report(name, args, run, size, expect_new)
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
    record = {
        "bench": "store_ingest",
        "results": args.results,
        "services": args.services,
        "batch": args.batch,
        "streams": args.streams,
        "unchanged": args.unchanged,
        "states": args.states,
        "backends": entries,
        "valid": all(e["valid"] for e in entries.values()),
    }
    append_result(record)
    return 0 if record["valid"] else 1


if __name__ == "__main__":
    sys.exit(main())

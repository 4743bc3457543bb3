"""Benchmark: how fast the cluster fails over, and that nothing is lost while it does.

Starts the two-"host" cluster of tests/cluster.py (`ha_cluster`: host A, 127.0.0.2, runs every
master daemon; host B, 127.0.0.3, the spare arbiter, scheduler, poller and receiver; one
data-server; every daemon `check_interval 1`, `max_check_attempts 3`, so the spare arbiter's
window is 3 s and a satellite is dead after 3 failed pings a second apart), each daemon its own
process. It keeps a steady load on it: 16 active services and 4 hosts checked every second,
plus passive results POSTed to receiver-master at --rate per second (one per request, each with
a unique output, so each must become its own `results` row; the ids the receiver accepted are
recorded). Then, for each scenario, N rounds of:

  arbiter     SIGKILL arbiter-master; measure; restart it; wait until it leads again.
  scheduler   SIGKILL scheduler-master; measure; restart it; wait until it holds its part again.

Measured in each round (all from the kill, in seconds; times come from the daemons' log lines,
millisecond timestamps on this machine's clock, after /ping and /status confirmed the state):

  detection     arbiter: arbiter-spare logs "takes the lead". scheduler: the leading arbiter
                logs "scheduler-spare stands in for dead scheduler-master".
  dispatch      arbiter: the last satellite has logged its move to the new epoch (every one
                runs the new leader's dispatch). scheduler: scheduler-spare holds the part and
                has logged its states loaded from the data tier.
  topology      scheduler only: the last of the other satellites has the new topology (the
                pollers and receivers send to scheduler-spare from then on).
  first result  the earliest check result produced (its `last_check`) after the kill
                (arbiter: the checks do not stop) or after scheduler-spare took the part (a
                check the spare scheduled); "stored": when the data-server first showed it
                (its current states are read every 0.1 s from a thread).
  failback      from the restart command (process start included) to the restarted daemon
                leading with every satellite at its epoch / holding its part, states loaded.
  pending       scheduler only: PENDING checks on scheduler-spare once its states are loaded
                (every check, the passive ones included, has had a result before: 0 expected).
  reconfigured  arbiter only: "configuration ... applied" lines of the satellites during the
                round (an arbiter failover changes no part and no topology: 0 expected).

After the last round of a scenario the passive load stops, the bench waits until no receiver,
poller or scheduler holds anything, stops the daemons in order (pollers, receivers,
schedulers, then the rest, so each hands what it holds to one still running) and reads the
data-server's SQLite file:

  lost          accepted passive ids with no `results` row, plus active results a poller made
                durable (its "results durable:" debug lines) that `seen_results` lacks. An id
                still pending in a poller's or receiver's journal is not lost (it goes out at
                the next start): it is counted apart, as "journaled".
  duplicates    result ids stored as more than one `results` row.
  state changes state-change events after the warm-up: the load keeps every check in its
                state (OK, or CRITICAL HARD), so any is made up by a failover (0 expected).

These are counted for the round during which the result was accepted or produced (a round
runs from its steady period before the kill to the end of its failback). Lost and duplicates
must be 0; reconfigurations, made-up state changes, PENDING after a takeover and journaled
results are printed as warnings.

    python bench/failover.py                          # 5 rounds of each, 70-105 s
    python bench/failover.py --scenario scheduler --repeat 2 --keep

The last line of output is one JSON document starting with `{"bench": "failover"`; it is also
appended to bench/out/failover.jsonl. Exits 1 if a round could not be measured, a queue did not
drain, or anything was lost or stored twice. Ctrl-C (or SIGTERM) stops every daemon it started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from _common import append_result, call, compile_shinha, interrupt_on, scratch_dir

from tests.cluster import Cluster, ha_cluster

T = TypeVar("T")
#: max_check_attempts (3) x check_interval (1) of every daemon of ha_cluster.
WINDOW = 3.0
HOSTS = 4
ACTIVE_SERVICES = ("s0", "s1", "s2", "FAIL")
SATELLITES = ("scheduler-master", "scheduler-spare", "poller-master", "poller-spare",
              "dataserver-master", "receiver-master", "receiver-spare")
SCENARIOS = ("arbiter", "scheduler")
#: Seconds of steady load (fresh check results) before each kill.
STEADY = 1.5
ROUND_TIMEOUT = 25.0
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
DURABLE = re.compile(r"results durable: (.*)$")


# -- observing the cluster --------------------------------------------------------------------


def leading(c: Cluster, name: str) -> bool:
    reply = call(c, name, "/ping", 1.0)
    return bool(reply and reply.get("leading"))


def epochs(c: Cluster, names: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name in names:
        reply = call(c, name, "/ping", 1.0)
        if reply is not None:
            out[name] = int(reply["epoch"])
    return out


def running(c: Cluster, names: Sequence[str]) -> list[str]:
    return [n for n in names if n in c.procs and c.procs[n].poll() is None]


def settled(c: Cluster, arbiter: str) -> int | None:
    """The epoch, when `arbiter` alone leads and every running satellite holds that epoch."""
    others = [a for a in ("arbiter-master", "arbiter-spare") if a != arbiter]
    if not leading(c, arbiter) or any(leading(c, a) for a in others):
        return None
    reply = call(c, arbiter, "/ping", 1.0)
    if reply is None:
        return None
    epoch = int(reply["epoch"])
    names = running(c, SATELLITES)
    held = epochs(c, names)
    return epoch if len(held) == len(names) and set(held.values()) == {epoch} else None


def owns(c: Cluster, name: str) -> dict[str, Any] | None:
    status = call(c, name, "/status")
    return dict(status["owns"]) if status else None


def holds_part(c: Cluster, scheduler: str) -> dict[str, Any] | None:
    """scheduler's /status `owns` when it holds scheduler-master's part with states loaded."""
    o = owns(c, scheduler)
    return o if o and o.get("part") == "scheduler-master" and o.get("states_loaded") else None


def active_last_checks(c: Cluster) -> list[float]:
    page = call(c, "dataserver-master", "/api/services?limit=1000")
    if page is None:
        return []
    return [float(r["last_check"]) for r in page["items"] if r["service"] in ACTIVE_SERVICES]


def poll(predicate: Callable[[], T | None], timeout: float, what: str,
         interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def fresh_checks(c: Cluster, after: float) -> bool:
    return any(t > after for t in active_last_checks(c))


# -- logs ---------------------------------------------------------------------------------------


def log_path(c: Cluster, name: str) -> Path:
    d = c.daemons[name]
    return c.root / f"{d.role}-{name}.log"


def log_offsets(c: Cluster) -> dict[str, int]:
    return {name: (log_path(c, name).stat().st_size if log_path(c, name).exists() else 0)
            for name in c.daemons}


def log_time(line: str) -> float | None:
    m = LOG_TIME.match(line)
    if m is None:
        return None
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def lines_since(c: Cluster, name: str, offset: int) -> list[tuple[float, str]]:
    """(timestamp, line) of the lines `name` logged past `offset` bytes."""
    path = log_path(c, name)
    if not path.exists():
        return []
    with open(path, "rb") as fh:
        fh.seek(offset)
        text = fh.read().decode(errors="replace")
    out: list[tuple[float, str]] = []
    for line in text.splitlines():
        at = log_time(line)
        if at is not None:
            out.append((at, line))
    return out


def first_line(c: Cluster, name: str, offset: int, pattern: str) -> tuple[float, str] | None:
    regex = re.compile(pattern)
    return next(((at, line) for at, line in lines_since(c, name, offset) if regex.search(line)),
                None)


# -- the passive load ---------------------------------------------------------------------------


class Background:
    """Runs `_run` in a daemon thread from `start()`; `_run` returns once `_stop` is set."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Set `_stop` and wait for the thread (up to 15 s); fine before start or twice."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=15)

    def _run(self) -> None:
        raise NotImplementedError


class PassiveLoad(Background):
    """Sends passive results to receiver-master at a steady rate from a thread, recording the
    id and the acceptance time of each one the receiver accepted (202)."""

    def __init__(self, c: Cluster, rate: float, tag: str) -> None:
        super().__init__("passive-load")
        self.c = c
        self.rate = rate
        self.tag = tag
        self.accepted: list[tuple[str, float]] = []
        self.sent = 0
        self.errors = 0
        self.last_error = ""
        self.max_latency = 0.0

    def _run(self) -> None:
        began = time.monotonic()
        n = 0
        while not self._stop.is_set():
            wait = began + n / self.rate - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            body = {"results": [{"host": f"h{n % HOSTS}", "service": "PASSIVE",
                                 "return_code": 0,
                                 "output": f"bench {self.tag} passive #{n}"}]}
            n += 1
            self.sent += 1
            sent_at = time.monotonic()
            try:
                status, reply = self.c.request("receiver-master", "POST", "/api/results", body,
                                               timeout=10.0)
            except (OSError, urllib.error.URLError, ValueError) as exc:
                self.errors += 1
                self.last_error = str(exc)
                continue
            self.max_latency = max(self.max_latency, time.monotonic() - sent_at)
            if status != 202:
                self.errors += 1
                self.last_error = f"{status}: {reply}"
                continue
            at = time.time()
            for rid in reply["ids"]:
                self.accepted.append((rid, at))


class StateSampler(Background):
    """Reads the data-server's current service states every `interval` from a thread and
    remembers when each (host, service, last_check) was first shown: a row changes every
    second, so every result of an active check is seen, and `first_after` finds the first
    result produced after a moment even when it is read seconds later."""

    def __init__(self, c: Cluster, interval: float = 0.1) -> None:
        super().__init__("state-sampler")
        self.c = c
        self.interval = interval
        self.seen: dict[tuple[str, str, float], float] = {}
        self._lock = threading.Lock()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            page = call(self.c, "dataserver-master", "/api/services?limit=1000")
            if page is None:
                continue
            now = time.time()
            with self._lock:
                for row in page["items"]:
                    if row["service"] in ACTIVE_SERVICES:
                        key = (row["host"], row["service"], float(row["last_check"]))
                        self.seen.setdefault(key, now)

    def first_after(self, after: float) -> tuple[float, float] | None:
        """(last_check, when the data-server first showed it) of the earliest active result
        produced after `after`."""
        with self._lock:
            found = [(key[2], at) for key, at in self.seen.items() if key[2] > after]
        return min(found) if found else None


# -- rounds -----------------------------------------------------------------------------------


@dataclass
class Round:
    scenario: str
    index: int
    start: float = 0.0  # wall time the round began (its steady period)
    end: float = 0.0
    killed_at: float = 0.0
    detection: float | None = None
    dispatch: float | None = None
    topology: float | None = None
    first_result: float | None = None
    first_stored: float | None = None
    failback: float | None = None
    reconfigured: int | None = None
    pending: int | None = None
    passive_accepted: int = 0
    passive_lost: int = 0
    active_results: int = 0
    active_lost: int = 0
    duplicates: int = 0
    state_changes: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        return None not in (self.detection, self.dispatch, self.first_result, self.failback)


def kill(c: Cluster, name: str) -> float:
    """SIGKILL `name`; return the wall time of the kill."""
    proc = c.procs[name]
    proc.send_signal(signal.SIGKILL)
    at = time.time()
    proc.wait(timeout=30)
    return at


def reconfigurations(c: Cluster, offsets: dict[str, int]) -> int:
    """Satellites' "configuration ... applied" lines since `offsets`: each one is a daemon
    whose part or topology changed (an arbiter failover changes neither)."""
    return sum(1 for n in SATELLITES for _, line in lines_since(c, n, offsets[n])
               if re.search(r"configuration from arbiter .* applied", line))


def arbiter_round(c: Cluster, sampler: StateSampler, r: Round) -> None:
    epoch = poll(lambda: settled(c, "arbiter-master"), 30, "arbiter-master settled")
    mark = time.time()
    poll(lambda: fresh_checks(c, mark + STEADY), 15, "steady checks before the kill")
    offsets = log_offsets(c)
    r.killed_at = t0 = kill(c, "arbiter-master")

    # Confirm through the daemons' answers, then time it from their logs.
    new_epoch = poll(lambda: settled(c, "arbiter-spare"), ROUND_TIMEOUT,
                     "arbiter-spare leading with every satellite at its epoch")
    if new_epoch != epoch + 1:
        r.notes.append(f"epoch went {epoch} -> {new_epoch}, expected +1")
    took = first_line(c, "arbiter-spare", offsets["arbiter-spare"], r"takes the lead at epoch")
    if took is not None:
        r.detection = took[0] - t0
    else:
        r.notes.append("arbiter-spare logged no 'takes the lead'")
    moved = [first_line(c, n, offsets[n], rf"epoch \d+ -> {new_epoch}\b") for n in SATELLITES]
    if all(m is not None for m in moved):
        r.dispatch = max(m[0] for m in moved if m is not None) - t0
    else:
        missing = [n for n, m in zip(SATELLITES, moved, strict=True) if m is None]
        r.notes.append(f"no epoch line from {', '.join(missing)}")
    first = poll(lambda: sampler.first_after(t0), ROUND_TIMEOUT, "a check result after the kill")
    r.first_result, r.first_stored = first[0] - t0, first[1] - t0

    restart = time.monotonic()
    c.start("arbiter-master")
    poll(lambda: settled(c, "arbiter-master"), 30, "arbiter-master leading again")
    r.failback = time.monotonic() - restart
    r.reconfigured = reconfigurations(c, offsets)
    if r.reconfigured:
        r.notes.append(f"{r.reconfigured} satellites reconfigured by an arbiter failover")


def scheduler_round(c: Cluster, sampler: StateSampler, r: Round) -> None:
    poll(lambda: settled(c, "arbiter-master"), 30, "arbiter-master settled")
    poll(lambda: holds_part(c, "scheduler-master"), 30, "scheduler-master holding its part")
    poll(lambda: ((o := owns(c, "scheduler-spare")) is not None and o.get("part") is None)
         or None, 30, "scheduler-spare idle")
    mark = time.time()
    poll(lambda: fresh_checks(c, mark + STEADY), 15, "steady checks before the kill")
    offsets = log_offsets(c)
    r.killed_at = t0 = kill(c, "scheduler-master")

    spare = poll(lambda: holds_part(c, "scheduler-spare"), ROUND_TIMEOUT,
                 "scheduler-spare holding the part with its states loaded")
    r.pending = int(spare.get("pending", -1))
    stands = first_line(c, "arbiter-master", offsets["arbiter-master"],
                        r"scheduler-spare stands in for dead scheduler-master")
    if stands is not None:
        r.detection = stands[0] - t0
    else:
        r.notes.append("arbiter-master logged no 'stands in for'")
    took = first_line(c, "scheduler-spare", offsets["scheduler-spare"],
                      r"part scheduler-master \(")
    loaded = first_line(c, "scheduler-spare", offsets["scheduler-spare"],
                        r"states loaded from the data tier")
    if loaded is not None:
        r.dispatch = loaded[0] - t0
    else:
        r.notes.append("scheduler-spare logged no 'states loaded'")
    others = [n for n in running(c, SATELLITES) if n != "scheduler-spare"]
    applied = [first_line(c, n, offsets[n], r"configuration from arbiter .* applied")
               for n in others]
    if all(a is not None for a in applied):
        r.topology = max(a[0] for a in applied if a is not None) - t0
    after = took[0] if took is not None else time.time()
    first = poll(lambda: sampler.first_after(after), ROUND_TIMEOUT,
                 "a check result scheduled by scheduler-spare")
    r.first_result, r.first_stored = first[0] - t0, first[1] - t0

    restart = time.monotonic()
    c.start("scheduler-master")
    poll(lambda: holds_part(c, "scheduler-master") and (
        (o := owns(c, "scheduler-spare")) is not None and o.get("part") is None), 30,
        "scheduler-master holding its part again, scheduler-spare released")
    r.failback = time.monotonic() - restart


ROUNDS: dict[str, Callable[[Cluster, StateSampler, Round], None]] = {
    "arbiter": arbiter_round, "scheduler": scheduler_round}


# -- after the rounds: what the data tier holds ------------------------------------------------


def drain(c: Cluster, timeout: float = 30.0) -> dict[str, int]:
    """Wait until no receiver, poller or scheduler holds anything; return what is left."""
    keys = {"receiver": "queued", "poller": "unacked", "scheduler": "outbox"}
    left: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = {}
        for name in running(c, list(c.daemons)):
            key = keys.get(c.daemons[name].role)
            o = owns(c, name) if key else None
            if key and (o is None or o.get(key)):
                left[name] = int(o.get(key, -1)) if o else -1
        if not left:
            return {}
        time.sleep(0.2)
    return left


def stop_in_order(c: Cluster) -> None:
    """Stop the pollers first (they hand their last results to a running scheduler), then the
    receivers, then the schedulers (they push to a running data-server), then the rest."""
    for role in ("poller", "receiver", "scheduler"):
        procs = [p for n, p in c.procs.items() if c.daemons[n].role == role and p.poll() is None]
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    c.stop_all()


def durable_active_ids(c: Cluster) -> dict[str, float]:
    """id -> time of every result a poller logged as durable in its journal."""
    out: dict[str, float] = {}
    for name in ("poller-master", "poller-spare"):
        for at, line in lines_since(c, name, 0):
            m = DURABLE.search(line)
            if m:
                for rid in m.group(1).split():
                    out.setdefault(rid, at)
    return out


def journaled(c: Cluster) -> set[str]:
    """Ids still pending in a poller's or a receiver's journal after the stop: not stored yet,
    but not lost either (they go out when that daemon starts again)."""
    pending: set[str] = set()
    for path in sorted((c.root / "var").glob("*/*.jsonl")):
        items: dict[str, None] = {}
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    entry = json.loads(line)
                except ValueError:
                    break
                if "put" in entry:
                    items[entry["put"]] = None
                elif "done" in entry:
                    items.pop(entry["done"], None)
        pending.update(items)
    return pending


@dataclass
class Stored:
    """What the data-server's SQLite file holds after the stop."""

    rows: dict[str, int]  # result_id -> number of `results` rows
    seen: set[str]  # `seen_results`
    state_changes: list[tuple[float, str]]  # (time, "host/service -> state type")


def read_store(c: Cluster) -> Stored:
    path = c.root / "var" / "dataserver-dataserver-master" / "store.db"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = {str(rid): int(n) for rid, n in conn.execute(
            "SELECT result_id, count(*) FROM results GROUP BY result_id")}
        seen = {str(rid) for (rid,) in conn.execute("SELECT result_id FROM seen_results")}
        changes = [(float(t), f"{h}/{s or '(host)'} -> {st} {typ}") for t, h, s, st, typ in
                   conn.execute("SELECT time, host, service, state, state_type FROM events "
                                "WHERE kind = 'state' ORDER BY time")]
    finally:
        conn.close()
    return Stored(rows, seen, changes)


def account(rounds: list[Round], passive: list[tuple[str, float]], active: dict[str, float],
            stored: Stored, pending: set[str]) -> dict[str, int]:
    """Count lost and duplicated results, and state changes, into the round they belong to;
    return the totals of the whole run (warm-up included)."""
    def owner(at: float) -> Round | None:
        found = None
        for r in rounds:
            if at >= r.start:
                found = r
        return found

    totals = {"passive_accepted": 0, "passive_lost": 0, "active_results": 0,
              "active_lost": 0, "duplicates": 0, "journaled": 0, "state_changes": 0}
    for rid, at in passive:
        r = owner(at)
        unfinished = rid not in stored.rows and rid in pending
        lost = rid not in stored.rows and not unfinished
        dup = stored.rows.get(rid, 0) > 1
        totals["passive_accepted"] += 1
        totals["passive_lost"] += lost
        totals["journaled"] += unfinished
        totals["duplicates"] += dup
        if r is not None:
            r.passive_accepted += 1
            r.passive_lost += lost
            r.duplicates += dup
    for rid, at in active.items():
        r = owner(at)
        unfinished = rid not in stored.seen and rid in pending
        lost = rid not in stored.seen and not unfinished
        dup = stored.rows.get(rid, 0) > 1
        totals["active_results"] += 1
        totals["active_lost"] += lost
        totals["journaled"] += unfinished
        totals["duplicates"] += dup
        if r is not None:
            r.active_results += 1
            r.active_lost += lost
            r.duplicates += dup
    # Under this load every check keeps its state (OK, or CRITICAL HARD for FAIL) once the
    # warm-up is over: any state change later is one a failover made up.
    for at, _ in stored.state_changes:
        r = owner(at)
        if r is not None:
            r.state_changes += 1
            totals["state_changes"] += 1
    return totals


# -- one scenario -------------------------------------------------------------------------------


@dataclass
class Outcome:
    scenario: str
    rounds: list[Round]
    totals: dict[str, int] = field(default_factory=dict)
    load_errors: int = 0
    load_last_error: str = ""
    load_max_latency: float = 0.0
    left_undrained: dict[str, int] = field(default_factory=dict)
    state_changes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""


def run_scenario(scenario: str, root: Path, repeat: int, rate: float) -> Outcome:
    began = time.monotonic()
    out = Outcome(scenario, [])
    c = ha_cluster(root / scenario, hosts=HOSTS)
    load = PassiveLoad(c, rate, f"{scenario}-{uuid.uuid4().hex[:8]}")
    sampler = StateSampler(c)
    try:
        c.start_all()
        poll(lambda: settled(c, "arbiter-master"), 60, "the cluster settled")
        load.start()
        sampler.start()
        # Warm-up: every check, the passive ones included, has had a result, and the FAIL
        # services are CRITICAL HARD (max_check_attempts 2).
        poll(lambda: ((page := call(c, "dataserver-master", "/api/services?limit=1000"))
             and len(page["items"]) == HOSTS * 5
             and all(r["state"] != 4 and r["state_type"] == "HARD" for r in page["items"]))
             or None, 60, "every service checked, in a HARD state")
        for i in range(repeat):
            r = Round(scenario, i + 1, start=time.time())
            out.rounds.append(r)
            try:
                ROUNDS[scenario](c, sampler, r)
            except TimeoutError as exc:
                r.notes.append(str(exc))
                out.error = f"round {i + 1}: {exc}"
                print(f"  {scenario} round {i + 1}: {exc}\n{c.tails(15)}", flush=True)
                break
            finally:
                r.end = time.time()
            print(f"  {scenario} round {r.index}: {_round_line(r)}", flush=True)
        load.stop()
        out.left_undrained = drain(c)
        sampler.stop()
        stop_in_order(c)
    finally:
        with shielded():
            try:
                load.stop()
                sampler.stop()
            finally:
                c.stop_all()
    out.load_errors, out.load_last_error = load.errors, load.last_error
    out.load_max_latency = load.max_latency
    stored = read_store(c)
    out.totals = account(out.rounds, load.accepted, durable_active_ids(c), stored, journaled(c))
    if out.rounds:
        out.state_changes = [f"{time.strftime('%H:%M:%S', time.localtime(t))} {what}"
                             for t, what in stored.state_changes if t >= out.rounds[0].start]
    out.seconds = time.monotonic() - began
    return out


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _round_line(r: Round) -> str:
    parts = [f"detection {_fmt(r.detection)} s", f"dispatch {_fmt(r.dispatch)} s"]
    if r.scenario == "scheduler":
        parts.append(f"topology {_fmt(r.topology)} s")
    parts += [f"first result {_fmt(r.first_result)} s (stored {_fmt(r.first_stored)} s)",
              f"failback {_fmt(r.failback)} s"]
    if r.pending is not None:
        parts.append(f"pending {r.pending}")
    if r.reconfigured is not None:
        parts.append(f"reconfigured {r.reconfigured}")
    return ", ".join(parts) + "".join(f"  [{n}]" for n in r.notes)


# -- report -----------------------------------------------------------------------------------

#: (Round attribute, label, unit): "s" for seconds, "" for counts.
METRICS: list[tuple[str, str, str]] = [
    ("detection", "detection", "s"),
    ("dispatch", "dispatch", "s"),
    ("topology", "new topology everywhere", "s"),
    ("first_result", "first check result", "s"),
    ("first_stored", "  ... shown by the data-server", "s"),
    ("failback", "failback after a restart", "s"),
    ("pending", "PENDING after takeover", ""),
    ("reconfigured", "satellites reconfigured", ""),
    ("state_changes", "state changes (made up)", ""),
    ("passive_accepted", "passive results accepted", ""),
    ("passive_lost", "passive results lost", ""),
    ("active_results", "active results produced", ""),
    ("active_lost", "active results lost", ""),
    ("duplicates", "duplicates", ""),
]
COUNTED = ("passive_accepted", "passive_lost", "active_results", "active_lost", "duplicates",
           "state_changes")


def stats(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3),
            "max": round(max(values), 3)}


def metric_values(rounds: list[Round], key: str) -> list[float]:
    return [float(v) for r in rounds if (v := getattr(r, key)) is not None]


def print_table(outcomes: list[Outcome]) -> None:
    print(f"{'':31}" + "".join(f"{o.scenario + ' failover':^27}" for o in outcomes))
    print(f"{'per round':31}" + "".join(f"{'min':>9}{'median':>9}{'max':>9}"
                                        for _ in outcomes))
    for key, label, unit in METRICS:
        cells = []
        for o in outcomes:
            s = stats(metric_values(o.rounds, key))
            if s is None:
                cells.append(f"{'-':>9}{'-':>9}{'-':>9}")
            elif unit:
                cells.append(f"{s['min']:>9.2f}{s['median']:>9.2f}{s['max']:>9.2f}")
            else:
                cells.append(f"{s['min']:>9.0f}{s['median']:>9.1f}{s['max']:>9.0f}")
        print(f"{label + (f' ({unit})' if unit else ''):31}" + "".join(cells))
    print()
    for o in outcomes:
        t = o.totals
        print(f"{o.scenario}: {len(o.rounds)} rounds, {o.seconds:.0f} s. Whole run (warm-up "
              f"included): {t.get('passive_accepted', 0)} passive results accepted, "
              f"{t.get('passive_lost', 0)} lost; {t.get('active_results', 0)} active results "
              f"made durable by a poller, {t.get('active_lost', 0)} lost; "
              f"{t.get('duplicates', 0)} duplicates; {t.get('journaled', 0)} still in a "
              "journal at the stop"
              + (f"; passive load errors {o.load_errors} ({o.load_last_error[:120]})"
                 if o.load_errors else "")
              + (f"; NOT DRAINED {o.left_undrained}" if o.left_undrained else "")
              + (f"; ERROR {o.error}" if o.error else ""))
        for change in o.state_changes[:10]:
            print(f"  state change after the warm-up: {change}")


def anomalies(outcomes: list[Outcome]) -> list[str]:
    """What is not a loss but should not happen either."""
    out: list[str] = []
    for o in outcomes:
        reconfigured = sum(r.reconfigured or 0 for r in o.rounds)
        if reconfigured:
            out.append(f"{o.scenario}: {reconfigured} satellite reconfigurations by arbiter "
                       "failovers (the part and the topology did not change)")
        if o.totals.get("state_changes"):
            out.append(f"{o.scenario}: {o.totals['state_changes']} state changes after the "
                       "warm-up")
        pending = [r.pending for r in o.rounds if r.pending]
        if pending:
            out.append(f"{o.scenario}: PENDING checks after a takeover: {pending}")
        if o.totals.get("journaled"):
            out.append(f"{o.scenario}: {o.totals['journaled']} results still in a journal at "
                       "the stop")
    return out


def record(outcomes: list[Outcome], args: argparse.Namespace, seconds: float,
           load_before: tuple[float, float, float], ok: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {"bench": "failover", "repeat": args.repeat, "rate": args.rate,
                           "window_s": WINDOW, "hosts": HOSTS}
    for o in outcomes:
        entry: dict[str, Any] = {}
        for key, _, unit in METRICS:
            if key in COUNTED:
                continue
            s = stats(metric_values(o.rounds, key))
            if s is not None:
                entry[f"{key}_s" if unit else key] = s
        entry.update(o.totals)
        entry["lost"] = o.totals.get("passive_lost", 0) + o.totals.get("active_lost", 0)
        for key in ("passive_lost", "active_lost", "duplicates"):
            entry[f"{key}_per_round"] = [getattr(r, key) for r in o.rounds]
        entry["rounds"] = len(o.rounds)
        entry["rounds_measured"] = sum(r.measured for r in o.rounds)
        entry["passive_load_errors"] = o.load_errors
        entry["receiver_max_latency_s"] = round(o.load_max_latency, 3)
        entry["seconds"] = round(o.seconds, 1)
        if o.left_undrained:
            entry["undrained"] = o.left_undrained
        if o.error:
            entry["error"] = o.error
        doc[o.scenario] = entry
    doc.update({
        "seconds": round(seconds, 1), "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "anomalies": anomalies(outcomes),
        "pass": ok})
    return doc


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5,
                        help="rounds of each scenario (default 5)")
    parser.add_argument("--rate", type=float, default=20.0,
                        help="passive results per second to receiver-master (default 20)")
    parser.add_argument("--scenario", choices=[*SCENARIOS, "both"], default="both")
    parser.add_argument("--keep", action="store_true",
                        help="keep the clusters' trees, databases and logs")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.rate <= 0:
        parser.error("--repeat must be at least 1 and --rate above 0")
    return args


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while the daemons are being stopped: a second Ctrl-C must not
    leave them running."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT,
                                                                      signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM stops the bench as Ctrl-C does: the `finally` of each scenario stops its daemons.
    interrupt_on(signal.SIGTERM)
    with scratch_dir("shinha-bench-failover-", "trees and logs", keep=args.keep) as root:
        return bench(args, root)


def bench(args: argparse.Namespace, root: Path) -> int:
    began = time.monotonic()
    load_before = os.getloadavg()
    compile_shinha()
    scenarios = SCENARIOS if args.scenario == "both" else (args.scenario,)
    print(f"failover bench: {args.repeat} rounds of {', '.join(scenarios)} failover, "
          f"passive load {args.rate:g}/s, window {WINDOW:g} s (check_interval 1 x "
          f"max_check_attempts 3); loadavg {load_before[0]:.1f} on {os.cpu_count()} CPUs",
          flush=True)
    outcomes = []
    for scenario in scenarios:
        outcomes.append(run_scenario(scenario, root, args.repeat, args.rate))
    seconds = time.monotonic() - began
    print()
    print_table(outcomes)
    ok = all(not o.error and len(o.rounds) == args.repeat
             and all(r.measured for r in o.rounds) and not o.left_undrained
             and o.totals.get("passive_lost", 1) == 0 and o.totals.get("active_lost", 1) == 0
             and o.totals.get("duplicates", 1) == 0 for o in outcomes)
    doc = record(outcomes, args, seconds, load_before, ok)
    for text in doc["anomalies"]:
        print(f"WARNING: {text}")
    print(f"\n{'PASS' if ok else 'FAIL'} (nothing lost, nothing stored twice, every round "
          f"measured, every queue drained): {seconds:.0f} s in all")
    append_result(doc)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

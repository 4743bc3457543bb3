"""The chaos harness (issue 9): the two-host HA cluster under steady passive and active load,
one fault after another (kill -9 of the active daemon of each role, SIGSTOP of the master
arbiter past its failover window), each killed daemon restarted after a while as systemd's
`Restart=on-failure` would; then the load stops, the queues drain, and every result the cluster
took is counted in the data tier.

What "took" means, per kind of result:
- passive: the receiver answered 202 for it (a client resends anything else, with the same
  result_id, to the other receiver and later again, as a real client does);
- active: a poller logged it in a "results durable:" line (fsynced in its journal).
Every such result must be stored exactly once across the data-servers (the SQLite data tier is
one file per data-server: docs/high-availability.md, "The data tier"), read through the
data-servers' history API and checked again in their files once they are stopped.

Every random choice (the faults, their order, the moments, the outage lengths) comes from one
seeded RNG, printed with the report: SHINHA_CHAOS_SEED=N replays a run's schedule.
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
import signal
import sqlite3
import statistics
import threading
import time
import urllib.error
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from tests.cluster import HA_OBJECTS, Cluster, ha_cluster, wait_for
from tests.ha import leaders, ping

T = TypeVar("T")

ROLES = ("arbiter", "scheduler", "poller", "dataserver", "receiver")
#: The faults, one kind each: kill -9 of the active daemon of a role, or SIGSTOP of the
#: leading arbiter for longer than its failover window.
KINDS = ("kill-arbiter", "stop-arbiter", "kill-scheduler", "kill-poller", "kill-dataserver",
         "kill-receiver")
DAEMONS = tuple(f"{role}-{kind}" for role in ROLES for kind in ("master", "spare"))
SATELLITES = tuple(n for n in DAEMONS if not n.startswith("arbiter"))
DATASERVERS = ("dataserver-master", "dataserver-spare")
RECEIVERS = ("receiver-master", "receiver-spare")  # in the order a client tries them
POLLERS = ("poller-master", "poller-spare")
SCHEDULERS = ("scheduler-master", "scheduler-spare")
HOSTS = tuple(f"h{i}" for i in range(4))
ACTIVE_SERVICES = ("s0", "s1", "s2", "FAIL")
SERVICES = (*ACTIVE_SERVICES, "PASSIVE")
WINDOW = 3.0  # the arbiters' failover window: max_check_attempts (3) × check_interval (1)
PASSIVE_PREFIX = "chaos-"

# Every active result prints a line of its own, so that "only new data" stores each one as a
# result row of its own (identical outputs are folded into one row): the history API then
# lists every result by its id.
PLUGIN_OK = 'echo "chaos ok $$ $(date +%s.%N)"\nexit 0\n'
PLUGIN_FAIL = 'echo "chaos broken $$ $(date +%s.%N)"\nexit 2\n'


def chaos_objects() -> str:
    """The monitored objects: 4 hosts, each with 3 OK services, a failing one and a passive
    one; every active check (hosts too) runs every second."""
    out = [HA_OBJECTS,
           "define command {\n  command_name chaos_ok\n  command_line $USER2$/chaos_ok.sh\n}\n"
           "define command {\n  command_name chaos_fail\n"
           "  command_line $USER2$/chaos_fail.sh\n}\n"]
    for host in HOSTS:
        out.append(f"define host {{\n  use base\n  host_name {host}\n  address 127.0.0.1\n"
                   "  check_command chaos_ok\n}\n")
        for service in ACTIVE_SERVICES:
            command = "chaos_fail" if service == "FAIL" else "chaos_ok"
            out.append(f"define service {{\n  use fast\n  host_name {host}\n"
                       f"  service_description {service}\n  check_command {command}\n}}\n")
        out.append(f"define service {{\n  use fast\n  host_name {host}\n"
                   "  service_description PASSIVE\n  active_checks_enabled 0\n}\n")
    return "".join(out)


def chaos_cluster(root: Path) -> Cluster:
    """ha_cluster with a spare of every role (data-servers included) and the chaos checks."""
    c = ha_cluster(root, hosts=len(HOSTS), spares=ROLES, services=0)
    c.objects = chaos_objects()
    c.write()
    c.plugin("chaos_ok.sh", PLUGIN_OK)
    c.plugin("chaos_fail.sh", PLUGIN_FAIL)
    return c


# --- the plan ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What one run does; everything random in it comes from `seed`."""

    seed: int
    form: Literal["short", "long"]
    kinds: tuple[str, ...]
    #: steady load before each fault, on top of the condition "results are being stored"
    lead_in: tuple[float, float] = (0.5, 3.0)
    #: how long a killed daemon stays dead (systemd's RestartSec), or the arbiter stopped
    #: beyond the moment its spare leads
    outage: tuple[float, float] = (0.5, 4.0)
    passive_interval: float = 0.1  # one passive batch (1-3 results) every this many seconds


def short_plan(seed: int) -> Plan:
    """A few faults, for every `make test`: a different few each run, from the seed."""
    rng = random.Random(seed)
    return Plan(seed, "short", tuple(rng.sample(KINDS, 4)))


def long_plan(seed: int, rounds: int = 4) -> Plan:
    """Every fault `rounds` times, shuffled, never the same kind twice in a row."""
    rng = random.Random(seed)
    while True:
        kinds = [k for k in KINDS for _ in range(rounds)]
        rng.shuffle(kinds)
        if all(a != b for a, b in itertools.pairwise(kinds)):
            return Plan(seed, "long", tuple(kinds))


# --- the passive load ------------------------------------------------------------------------


class PassiveLoad:
    """A client thread: sends batches of passive results, each result with its own id, to the
    first receiver that answers 202; a batch that got any other answer (or none) is resent,
    same ids, until one does."""

    def __init__(self, c: Cluster, seed: int, interval: float) -> None:
        self.c = c
        self.rng = random.Random(seed)
        self.interval = interval
        self.seed = seed
        self.lock = threading.Lock()
        self.sent: set[str] = set()
        self.acked: set[str] = set()
        self.acked_by: Counter[str] = Counter()
        self.answers: Counter[str] = Counter()  # "receiver status" -> how many
        self.not_accepted = 0  # answers other than 202, timeouts and refused connections
        self.resent = 0  # results sent again (same id) after such an answer
        self.pending: deque[list[dict[str, Any]]] = deque()
        self.stopping = threading.Event()
        self.count = 0
        self.thread = threading.Thread(target=self._run, name="passive-load", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _new_batch(self) -> list[dict[str, Any]]:
        batch = []
        for _ in range(self.rng.randint(1, 3)):
            self.count += 1
            rid = f"{PASSIVE_PREFIX}{self.seed}-{self.count:07d}"
            batch.append({"host": self.rng.choice(HOSTS), "service": "PASSIVE",
                          "return_code": self.rng.randint(0, 2),
                          "output": f"passive {rid}", "time": time.time(),
                          "result_id": rid})
        return batch

    def _send(self, batch: list[dict[str, Any]], again: bool) -> bool:
        ids = [r["result_id"] for r in batch]
        for receiver in RECEIVERS:
            try:
                status, _ = self.c.request(receiver, "POST", "/api/results",
                                           {"results": batch}, timeout=5.0)
            except (OSError, urllib.error.URLError):
                status = 0
            with self.lock:
                if again:
                    self.resent += len(ids)
                again = True
                self.answers[f"{receiver} {status or 'no answer'}"] += 1
                if status == 202:
                    self.acked.update(ids)
                    self.acked_by[receiver] += len(ids)
                    return True
                self.not_accepted += 1
        return False

    def _one(self) -> None:
        again = bool(self.pending)
        if again:
            batch = self.pending.popleft()
        else:
            batch = self._new_batch()
            with self.lock:
                self.sent.update(r["result_id"] for r in batch)
        if not self._send(batch, again):
            self.pending.append(batch)

    def _run(self) -> None:
        while not self.stopping.is_set():
            self._one()
            self.stopping.wait(self.interval)

    def stop(self, timeout: float) -> None:
        """Stop sending new results; resend what is not acknowledged until it is."""
        self.stopping.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the passive load thread did not stop"
        deadline = time.monotonic() + timeout
        while self.pending:
            assert time.monotonic() < deadline, \
                f"{len(self.pending)} passive batches never accepted: {self.answers}"
            self._one()
            if self.pending:
                time.sleep(0.5)  # a client's back-off between resends

    def snapshot(self) -> tuple[int, int, Counter[str]]:
        with self.lock:
            return len(self.sent), len(self.acked), Counter(self.acked_by)


# --- reading the cluster ---------------------------------------------------------------------


def stored_new(c: Cluster, name: str) -> int:
    """How many new results `name` stored since it started (0 if it does not answer)."""
    if ping(c, name) is None:
        return 0
    return int(c.get(name, "/status")["owns"]["stored_new"])


def stored_total(c: Cluster) -> int:
    return sum(stored_new(c, name) for name in DATASERVERS)


def history(c: Cluster, dataserver: str, path: str) -> list[dict[str, Any]]:
    """Every entry of one history, over as many pages as it takes; read again if rows came
    in between the pages (one page is one SQL read, consistent by itself)."""
    for _ in range(10):
        items: list[dict[str, Any]] = []
        total: int | None = None
        while True:
            page = c.get(dataserver, f"{path}?limit=1000&offset={len(items)}")
            total = page["total"] if total is None else total
            items.extend(page["items"])
            if not page["items"] or len(items) >= page["total"]:
                break
        if page["total"] == total:
            return items
    raise AssertionError(f"{dataserver} {path}: rows kept coming while it was read")


def stored_ids(c: Cluster) -> dict[str, Counter[str]]:
    """Every result row, by data-server: result id -> how many rows carry it."""
    out: dict[str, Counter[str]] = {}
    for ds in DATASERVERS:
        counts: Counter[str] = Counter()
        for host in HOSTS:
            paths = [f"/api/hosts/{host}/history"] + [
                f"/api/services/{host}/{s}/history" for s in SERVICES]
            for path in paths:
                counts.update(item["result_id"] for item in history(c, ds, path)
                              if item.get("type") == "result")
        out[ds] = counts
    return out


def durable_ids(c: Cluster) -> set[str]:
    """Every active result a poller logged as made durable (fsynced in its journal)."""
    return {rid for name in POLLERS for line in c.log(name).splitlines()
            if "results durable:" in line
            for rid in line.split("results durable:", 1)[1].split()}


def queues_empty(c: Cluster) -> bool:
    """Nothing waits in a poller, receiver or scheduler queue."""
    return all(c.get(p, "/status")["owns"]["unacked"] == 0 for p in POLLERS) and all(
        c.get(r, "/status")["owns"]["queued"] == 0 for r in RECEIVERS) and all(
        c.get(s, "/status")["owns"]["outbox"] == 0 for s in SCHEDULERS)


def healthy(c: Cluster) -> bool:
    """Back to normal: every daemon up, arbiter-master alone leads with every satellite at
    its epoch and in sync, every master holds its work again (no spare standing in)."""
    if any(c.procs[n].poll() is not None for n in DAEMONS):
        return False
    if leaders(c) != ["arbiter-master"]:
        return False
    epoch = int(c.get("arbiter-master", "/ping")["epoch"])
    for name in SATELLITES:
        reply = ping(c, name)
        if reply is None or int(reply["epoch"]) != epoch:
            return False
    view = c.get("arbiter-master", "/cluster")
    for d in view["daemons"]:
        if d["holds"].startswith("standing in") or (
                d["role"] != "arbiter" and not (d["alive"] and d["in_sync"])):
            return False
    owns = c.get("scheduler-master", "/status")["owns"]
    return bool(owns["part"] == "scheduler-master" and owns["states_loaded"]
                and c.get("scheduler-spare", "/status")["owns"]["part"] is None)


def standing_in(c: Cluster, spare: str, dead: str) -> bool:
    leading = leaders(c)
    if not leading:
        return False
    view = c.get(leading[0], "/cluster")
    return any(d["name"] == spare and d["holds"].startswith(f"standing in for {dead}")
               for d in view["daemons"])


def storage_times(stores: Iterable[Path]) -> tuple[dict[str, list[float]], Counter[str]]:
    """From the data-servers' files: when each result id was stored (per file), and how
    many result rows carry each id across the files."""
    received: dict[str, list[float]] = {}
    rows: Counter[str] = Counter()
    for path in stores:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            for rid, at in conn.execute("SELECT result_id, received FROM seen_results"):
                received.setdefault(rid, []).append(float(at))
            rows.update(r[0] for r in conn.execute("SELECT result_id FROM results"))
    return received, rows


def longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest stretch without a stored result from `start` on, within [start, end]
    (`times` sorted); the whole window if nothing was stored in it."""
    i = bisect.bisect_left(times, start)
    prev, gap = start, 0.0
    while i < len(times) and times[i] <= end:
        gap = max(gap, times[i] - prev)
        prev = times[i]
        i += 1
    return gap if prev > start else end - start


def spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {"max": 0.0, "median": 0.0}
    return {"max": round(max(values), 2), "median": round(statistics.median(values), 2)}


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Fault:
    kind: str
    target: str
    at: float  # wall time of the injection (the data-servers stamp with wall time too)
    reacted: float = 0.0  # seconds until the cluster had worked around it
    outage: float = 0.0  # seconds the daemon stayed dead or stopped
    recovered: float = 0.0  # seconds from the injection to a healthy cluster again
    gap: float = 0.0
    gap_active: float = 0.0
    gap_passive: float = 0.0


@dataclass
class Run:
    plan: Plan
    c: Cluster
    log: Callable[[str], None] = print
    faults: list[Fault] = field(default_factory=list)
    load: PassiveLoad | None = None

    def wait(self, predicate: Callable[[], T | Literal[False] | None], timeout: float,
             what: str) -> T:
        return self.c.wait(predicate, timeout, f"{what} (chaos seed {self.plan.seed})")

    def flowing(self, more: int = 20, timeout: float = 60) -> None:
        """Wait until `more` results more were stored: the load goes through."""
        mark = stored_total(self.c)
        self.wait(lambda: stored_total(self.c) >= mark + more, timeout,
                  f"{more} more results stored")

    def inject(self, kind: str, rng: random.Random) -> Fault:
        c = self.c
        role = kind.split("-", 1)[1]
        target = leaders(c)[0] if role == "arbiter" else f"{role}-master"
        fault = Fault(kind, target, time.time())
        started = time.monotonic()
        if kind == "stop-arbiter":
            c.kill(target, signal.SIGSTOP)
        else:
            c.kill(target, signal.SIGKILL)
        self.log(f"chaos: {kind} {target}")
        # The cluster works around it: the spare takes over, or the load goes on elsewhere.
        spare = target.replace("-master", "-spare")
        if role == "arbiter":
            self.wait(lambda: leaders(c) == [spare], 30, f"{spare} leading")
        elif role == "scheduler":
            self.wait(lambda: c.get(spare, "/status")["owns"]["part"] == target, 30,
                      f"{spare} taking the part")
        elif role == "poller":
            self.wait(lambda: standing_in(c, spare, target), 30,
                      f"{spare} standing in")
        elif role == "dataserver":
            mark = stored_new(c, spare)
            self.wait(lambda: stored_new(c, spare) > mark + 10, 30, f"{spare} storing")
        else:
            assert self.load is not None
            mark = self.load.snapshot()[2][spare]
            self.wait(lambda: self.load is not None and
                      self.load.snapshot()[2][spare] > mark + 10, 30,
                      f"passive results accepted by {spare}")
        fault.reacted = time.monotonic() - started
        # The fault itself: the daemon stays dead (stopped) a while, then systemd restarts it
        # (it is woken up). A stopped arbiter stays stopped at least a second past its window
        # (its spare may lead 2 s after the stop: the last heartbeat came before it).
        dwell = rng.uniform(*self.plan.outage)
        if kind == "stop-arbiter":
            dwell = max(dwell, WINDOW + 1.0 - (time.monotonic() - started))
        time.sleep(dwell)
        fault.outage = time.monotonic() - started
        if kind == "stop-arbiter":
            assert fault.outage > WINDOW, fault
            c.kill(target, signal.SIGCONT)
        else:
            c.start(target)
        self.wait(lambda: healthy(c), 90, f"the cluster healthy again after {kind}")
        fault.recovered = time.monotonic() - started
        self.log(f"chaos: {kind} {target}: worked around in {fault.reacted:.1f} s, "
                 f"back after {fault.outage:.1f} s, healthy after {fault.recovered:.1f} s")
        return fault

    def execute(self) -> dict[str, Any]:
        """Run the plan on a started cluster; return the report (the cluster still runs)."""
        c, plan = self.c, self.plan
        rng = random.Random(plan.seed)
        began = time.monotonic()
        self.wait(lambda: healthy(c), 60, "the cluster up")
        stores = [str(c.get(ds, "/status")["owns"]["store"]) for ds in DATASERVERS]
        self.load = load = PassiveLoad(c, plan.seed, plan.passive_interval)
        load.start()
        load_began = time.time()
        for kind in plan.kinds:
            self.flowing()
            time.sleep(rng.uniform(*plan.lead_in))  # steady load: the fault's random moment
            self.faults.append(self.inject(kind, rng))
        self.flowing()
        load.stop(timeout=120)
        load_ended = time.time()
        self.log("chaos: load stopped, draining")
        # The active checks go on (monitoring does not stop): what counts is every result a
        # poller made durable up to now, and every result stored, whenever.
        try:
            self.wait(lambda: queues_empty(c), 120, "every queue drained")
            drained = ""
        except AssertionError as exc:  # counted all the same: the report says what is missing
            drained = str(exc).splitlines()[0]
        produced = durable_ids(c)
        sent, _, acked_by = load.snapshot()
        acked = set(load.acked)
        expected = produced | acked

        def all_stored() -> dict[str, Counter[str]] | None:
            counts = stored_ids(c)
            seen = set().union(*(set(n) for n in counts.values()))
            return counts if expected <= seen else None

        try:
            counts = wait_for(all_stored, 90, "every result stored", interval=3.0)
        except AssertionError:
            counts = stored_ids(c)  # reported below as lost, with where each one went
        unanswered = [n for n in DAEMONS if ping(c, n) is None]
        total: Counter[str] = Counter()
        for n in counts.values():
            total.update(n)
        lost = sorted(expected - set(total))
        duplicated = sorted(rid for rid, n in total.items() if n > 1)
        return {
            "chaos": plan.form, "seed": plan.seed, "replay": f"SHINHA_CHAOS_SEED={plan.seed}",
            "seconds": round(time.monotonic() - began, 1),
            "load_seconds": round(load_ended - load_began, 1),
            "passive_sent": sent, "passive_acknowledged": len(acked),
            "passive_not_accepted_answers": load.not_accepted,
            "passive_resent": load.resent,
            "passive_acknowledged_by": dict(acked_by),
            "passive_answers": dict(load.answers),
            "active_durable": len(produced),
            "expected": len(expected),
            "stored_rows": sum(total.values()),
            "stored_once": sum(1 for rid in expected if total[rid] == 1),
            "lost": len(lost), "duplicated": len(duplicated),
            "lost_ids": lost[:20], "duplicated_ids": duplicated[:20],
            "by_dataserver": {ds: sum(n.values()) for ds, n in counts.items()},
            "faults": dict(Counter(f.kind for f in self.faults)),
            "unanswered_ping": unanswered,
            "drain_error": drained,
            "_stores": stores,
            "_load_ended": load_ended,
        }

    def finish(self, report: dict[str, Any]) -> dict[str, Any]:
        """With the cluster stopped: check the files themselves, and measure the gaps."""
        stores = [Path(p) for p in report.pop("_stores")]
        load_ended = float(report.pop("_load_ended"))
        received, rows = storage_times(stores)
        every = sorted(t for ts in received.values() for t in ts)
        active = sorted(t for rid, ts in received.items() if not rid.startswith(PASSIVE_PREFIX)
                        for t in ts)
        passive = sorted(t for rid, ts in received.items() if rid.startswith(PASSIVE_PREFIX)
                         for t in ts)
        ends = [f.at for f in self.faults[1:]] + [load_ended]
        for fault, end in zip(self.faults, ends, strict=True):
            fault.gap = longest_gap(every, fault.at, end)
            fault.gap_active = longest_gap(active, fault.at, end)
            fault.gap_passive = longest_gap(passive, fault.at, end)
        report["files_in_two_stores"] = sum(1 for ts in received.values() if len(ts) > 1)
        report["files_duplicated_rows"] = sum(1 for n in rows.values() if n > 1)
        kinds = sorted({f.kind for f in self.faults})
        report["gap"] = spread([f.gap for f in self.faults])
        report["gap_by_kind"] = {k: spread([f.gap for f in self.faults if f.kind == k])
                                 for k in kinds}
        report["gap_active_by_kind"] = {
            k: spread([f.gap_active for f in self.faults if f.kind == k]) for k in kinds}
        report["gap_passive_by_kind"] = {
            k: spread([f.gap_passive for f in self.faults if f.kind == k]) for k in kinds}
        report["recovered_by_kind"] = {
            k: spread([f.recovered for f in self.faults if f.kind == k]) for k in kinds}
        report["fault_log"] = [
            {"kind": f.kind, "target": f.target, "at": round(f.at, 3),
             "gap": round(f.gap, 2), "gap_active": round(f.gap_active, 2),
             "gap_passive": round(f.gap_passive, 2), "reacted": round(f.reacted, 2),
             "outage": round(f.outage, 2), "recovered": round(f.recovered, 2)}
            for f in self.faults]
        return report


def trace(c: Cluster, result_id: str, limit: int = 12) -> str:
    """Every log line that names a result id: where a lost or duplicated result went."""
    lines = [f"{name}: {line}" for name in DAEMONS for line in c.log(name).splitlines()
             if result_id in line and "results durable:" not in line]
    held = [name for name in POLLERS if any(
        result_id in line for line in c.log(name).splitlines() if "results durable:" in line)]
    return (f"{result_id}: made durable by {held or 'no poller'}\n  "
            + "\n  ".join(lines[:limit]))


def report_line(report: dict[str, Any]) -> str:
    return json.dumps(report, sort_keys=False, separators=(",", ":"))

"""Benchmark: how fast the master-token election covers a dead poller, and what is missed.

Starts the cluster of tests/test_election.py, each daemon its own process: one arbiter, one
scheduler, one data-server, and three pollers with `master` tokens 1, 5 and 7 (poller-7 is the
master), `server_threshold` T (--server-threshold, default 1 s) and `takeover` master (the
Pandora behaviour: the master covers) or spread (--takeover spread: every alive poller by
weight). Each poller owns N services of host h (--services, default 20; `poller` property),
checked every second (`check_interval 1`, `interval_length=1`). poller-1's services print a new
output at every run, so the data-server stores every one of their runs as its own row, with the
poller that ran it and when it started.

Then R rounds (--repeat, default 5) of:

  kill      SIGKILL poller-1 (its process is gone at once; the others only notice the silence).
  takeover  the time from the kill to the first of poller-1's checks the scheduler hands to a
            taker: its /metrics `shinha_checks_handed_total{owner="poller-1",poller=...}` summed
            over the other pollers, read every 50 ms (an upper bound, to within a read). A
            round where nothing is handed to a taker within 2 × T + TAKEOVER_WAIT counts as
            one without a takeover (poller-1 is then restarted at once).
  run       confirmation from the data-server: the time from the kill to the start, and to the
            end (the result), of the first stored run of a poller-1 service by another poller.
  missed    until the takeover: N × (first taker run / check interval) runs of poller-1's
            services were due between the kill and the first taker run, minus the runs the
            data-server holds that started in that window. Per covered service: the whole
            intervals between its last run before the kill and its first run after it, but one
            (the overdue run the scheduler keeps queued and a taker runs late), summed.
  stalled   poller-1 services not run with the takeover (first run after the kill more than
            STALLED_AFTER after the first taker run, or by poller-1 once back): the checks the
            scheduler had handed to poller-1 before it died, which wait to be orphaned.
  giveback  --hold seconds (default 3) after the takeover poller-1 is restarted; then the time
            from the restart command to poller-1 running its own checks again (the scheduler
            hands it one), and to the last poller-1 check handed to a taker.
  double    runs of one poller-1 service by two pollers less than half an interval apart (the
            give-back must not poll twice; 0 expected).

The theoretical bound of the takeover is 2 × T (silence before a poller is down) + about one
check interval; it is printed next to the measurements.

    python bench/takeover.py                          # master, T = 1 s, 5 rounds: about 1.5 min
    python bench/takeover.py --takeover spread --server-threshold 2 --repeat 3 --keep

The last line of output is one JSON document starting with `{"bench": "takeover"`; it is also
appended to bench/out/takeover.jsonl. Exits 1 if a round could not be measured, a round had no
takeover, a check ran twice, or (takeover master) a poller other than the master covered.
Ctrl-C (or SIGTERM) stops every daemon it started.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import re
import signal
import statistics
import sys
import threading
import time
import urllib.error
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import append_result, call, interrupt_on, rounded, scratch_dir

from tests.cluster import Cluster

TOKENS = {"poller-1": 1, "poller-5": 5, "poller-7": 7}
VICTIM = "poller-1"
MASTER = "poller-7"
POLLERS = tuple(TOKENS)
OTHERS = tuple(p for p in POLLERS if p != VICTIM)
SCHEDULER = "scheduler-1"
DS = "dataserver-a"
HOST = "h"
#: check_interval 1 with interval_length=1.
CHECK_INTERVAL = 1.0
#: How often the scheduler's /metrics is read.
SAMPLE_PERIOD = 0.05
#: Seconds of steady running (poller-1 back, nobody down) before each kill.
STEADY = 1.5
#: How long past 2 × T to wait for a takeover before calling the round one without.
TAKEOVER_WAIT = 10.0
#: A poller-1 service first run this long after the first taker run is "stalled": it was not
#: part of the takeover (the takers run every queued check of poller-1 at once).
STALLED_AFTER = 2 * CHECK_INTERVAL
HANDED = re.compile(r"^shinha_checks_handed_total\{([^}]*)\}\s+(\S+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')


# -- the cluster -------------------------------------------------------------------------------


def takeover_cluster(root: Path, threshold: int, takeover: str, services: int) -> Cluster:
    """tests/test_election.py's `election_cluster`, with one data-server and N services per
    poller; poller-1's services print a new output every run (each run is its own row)."""
    c = Cluster(root)
    c.add("arbiter", "arbiter-1")
    c.add("scheduler", SCHEDULER)
    c.add("dataserver", DS, extra=f"  master 1\n  server_threshold {threshold}\n"
          "  modules store\n")
    for name, token in TOKENS.items():
        c.add("poller", name, extra=f"  master {token}\n  server_threshold {threshold}\n"
              f"  takeover {takeover}\n  poller_tags None\n")
    objects = ["define module {\n  module_name store\n  module_type sqlite\n"
               "  jobs_interval 1\n  stale_after 600\n}\n",
               "define command {\n  command_name ok\n"
               "  command_line $USER1$/check_dummy 0 fine\n}\n",
               "define command {\n  command_name stamp\n"
               "  command_line /bin/sh -c 'echo OK $(date +%s%N)'\n}\n",
               f"define host {{\n  host_name {HOST}\n  address 127.0.0.1\n}}\n"]
    for name in POLLERS:
        command = "stamp" if name == VICTIM else "ok"
        for n in range(services):
            objects.append(f"define service {{\n  host_name {HOST}\n  service_description "
                           f"{name}-{n}\n  check_command {command}\n  poller {name}\n"
                           "  check_interval 1\n  retry_interval 1\n}\n")
    c.objects = "".join(objects)
    c.write()
    return c


def election(c: Cluster, name: str) -> dict[str, Any] | None:
    status = call(c, name, "/status")
    if not isinstance(status, dict):
        return None
    view = status.get("owns", {}).get("election")
    return dict(view) if isinstance(view, dict) else None


def settled(c: Cluster) -> bool:
    """Every poller names poller-7 master and sees nobody down."""
    for name in POLLERS:
        view = election(c, name)
        if view is None or view.get("master") != MASTER or view.get("down"):
            return False
    return True


def read_handed(c: Cluster) -> dict[tuple[str, str], float]:
    """shinha_checks_handed_total by (owner, poller), from the scheduler's /metrics."""
    status, text = c.request(SCHEDULER, "GET", "/metrics", timeout=2.0)
    if status != 200 or not isinstance(text, str):
        raise ValueError(f"/metrics answered {status}")
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        match = HANDED.match(line)
        if match is None:
            continue
        labels = dict(LABEL.findall(match.group(1)))
        key = (labels.get("owner", ""), labels.get("poller", ""))
        out[key] = out.get(key, 0.0) + float(match.group(2))
    return out


# -- sampling the scheduler's counters ---------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    mono: float
    handed: dict[tuple[str, str], float]

    def get(self, owner: str, pollers: Sequence[str]) -> float:
        return sum(self.handed.get((owner, p), 0.0) for p in pollers)

    def own(self) -> float:
        """poller-1's checks handed to poller-1."""
        return self.get(VICTIM, (VICTIM,))

    def taken(self) -> float:
        """poller-1's checks handed to any other poller."""
        return self.get(VICTIM, OTHERS)


class Sampler(threading.Thread):
    """Reads the scheduler's handed counters every SAMPLE_PERIOD, with the monotonic time."""

    def __init__(self, c: Cluster) -> None:
        super().__init__(name="metrics-sampler", daemon=True)
        self.c = c
        self.samples: list[Sample] = []
        self.lock = threading.Lock()
        self.halt = threading.Event()

    def take(self) -> Sample:
        handed = read_handed(self.c)
        sample = Sample(time.monotonic(), handed)
        with self.lock:
            self.samples.append(sample)
        return sample

    def run(self) -> None:
        while not self.halt.wait(SAMPLE_PERIOD):
            try:
                self.take()
            except (OSError, urllib.error.URLError, ValueError):
                continue

    def since(self, mono: float) -> list[Sample]:
        with self.lock:
            return [s for s in self.samples if s.mono >= mono]

    def latest(self) -> Sample | None:
        with self.lock:
            return self.samples[-1] if self.samples else None

    def first(self, after: float, predicate: Callable[[Sample], bool]) -> Sample | None:
        return next((s for s in self.since(after) if predicate(s)), None)

    def last_change(self, after: float, value: Callable[[Sample], float]) -> float | None:
        """The time of the last sample after `after` whose value differs from the one before."""
        samples = self.since(after)
        last: float | None = None
        for prev, cur in itertools.pairwise(samples):
            if value(cur) != value(prev):
                last = cur.mono
        return last


# -- one round ---------------------------------------------------------------------------------


@dataclass
class Run:
    """One stored run of a poller-1 service."""

    service: str
    started: float
    finished: float
    poller: str


@dataclass
class Round:
    index: int
    #: Kill to the first poller-1 check handed to a taker (scheduler counters, upper bound);
    #: None when none was within 2 × T + TAKEOVER_WAIT.
    takeover: float | None = None
    #: What each taker's /status said it covered when none took anything.
    covering: dict[str, list[str]] = field(default_factory=dict)
    #: Kill to the start and to the end of the first taker run the data-server holds.
    first_run: float | None = None
    first_result: float | None = None
    expected: float | None = None
    ran_in_window: int | None = None
    missed_window: float | None = None
    #: Over the services a taker ran with the takeover: how many, runs missed, longest gap.
    covered: int = 0
    missed_covered: int = 0
    worst_gap: float = 0.0
    #: Services no taker ran before poller-1 came back, their runs missed and longest gap.
    stalled: list[str] = field(default_factory=list)
    missed_stalled: int = 0
    stalled_gap: float = 0.0
    handed_to_dead: float = 0.0
    wrong_taker: float = 0.0
    takers: dict[str, float] = field(default_factory=dict)
    restart: float = 0.0
    giveback_own: float = 0.0
    giveback_taker_stop: float = 0.0
    double_runs: int = 0


def runs_of(c: Cluster, services: Sequence[str]) -> list[Run]:
    out: list[Run] = []
    for service in services:
        for row in c.history(DS, HOST, service):
            if row.get("type") != "result" or row.get("passive"):
                continue
            out.append(Run(service, float(row["started"]), float(row["time"]),
                           str(row["poller"])))
    return out


def one_round(c: Cluster, sampler: Sampler, args: argparse.Namespace, index: int,
              services: list[str]) -> Round:
    threshold = float(args.server_threshold)
    n = len(services)
    r = Round(index)

    # Steady: nobody down everywhere, poller-1 running its checks, no taker running them.
    c.wait(lambda: settled(c), 30 + 4 * threshold, "every poller naming poller-7 master, "
           "nobody down")
    mark = sampler.take()
    c.wait(lambda: (s := sampler.latest()) is not None and s.own() >= mark.own() + n
           and time.monotonic() - mark.mono >= STEADY, 20,
           "poller-1 running a full round of its checks")
    c.wait(lambda: time.monotonic() - max(
        sampler.last_change(mark.mono, Sample.taken) or 0.0, mark.mono) >= STEADY, 20,
           "no other poller running poller-1's checks")

    # Kill.
    before = sampler.take()
    wall_offset = time.time() - time.monotonic()
    t0 = time.monotonic()
    c.kill(VICTIM, signal.SIGKILL)  # returns once the process is reaped
    w0 = t0 + wall_offset
    dead = sampler.take()

    # Takeover: the first of poller-1's checks handed to another poller.
    deadline = t0 + 2 * threshold + TAKEOVER_WAIT
    took = None
    while took is None and time.monotonic() < deadline:
        time.sleep(SAMPLE_PERIOD)
        took = sampler.first(t0, lambda s: s.taken() > before.taken())
    if took is not None:
        r.takeover = took.mono - t0
        r.handed_to_dead = took.own() - dead.own()
        hold_until = took.mono + args.hold
    else:
        # No taker was handed anything: say whether they were covering poller-1.
        for name in OTHERS:
            status = call(c, name, "/status")
            owns = status.get("owns", {}) if isinstance(status, dict) else {}
            r.covering[name] = list(owns.get("covering", []))
        print(f"round {index}: no check of poller-1 handed to a taker within "
              f"{deadline - t0:.0f} s; takers covering: {r.covering}", flush=True)
        latest = sampler.take()
        r.handed_to_dead = latest.own() - dead.own()
        hold_until = time.monotonic()

    # Let the taker run them for a while, then bring poller-1 back.
    while time.monotonic() < hold_until:
        time.sleep(0.05)
    last = sampler.take()
    r.takers = {p: last.get(VICTIM, (p,)) - before.get(VICTIM, (p,)) for p in OTHERS}

    restart_at = time.monotonic()
    own_at_restart = last.own()
    c.start(VICTIM)
    r.restart = time.monotonic() - restart_at
    back = c.wait(lambda: sampler.first(restart_at, lambda s: s.own() > own_at_restart),
                  30, "poller-1 running its own checks again")
    assert back is not None
    r.giveback_own = back.mono - restart_at
    quiet = 2 * threshold + 2

    def taker_quiet() -> bool:
        changed = sampler.last_change(restart_at, Sample.taken) or restart_at
        return time.monotonic() - max(changed, back.mono) >= quiet

    c.wait(taker_quiet, 30 + quiet, "the takers to stop running poller-1's checks")
    stop = sampler.last_change(restart_at, Sample.taken)
    r.giveback_taker_stop = (stop - restart_at) if stop is not None else 0.0
    if args.takeover == "master":
        end = sampler.take()
        r.wrong_taker = sum(end.get(VICTIM, (p,)) - before.get(VICTIM, (p,))
                            for p in OTHERS if p != MASTER)

    # What the data-server holds.
    runs = runs_of(c, services)
    taker_runs = [x for x in runs if x.started >= w0 and x.poller != VICTIM]
    if taker_runs:
        r.first_run = min(x.started for x in taker_runs) - w0
        r.first_result = min(x.finished for x in taker_runs) - w0
    # The window: from the kill to the first taker run (the data-server's times are exact;
    # the handed counters are read every SAMPLE_PERIOD, later under load).
    window = r.first_run if r.first_run is not None else r.takeover
    if window is not None:
        r.expected = n * window / CHECK_INTERVAL
        r.ran_in_window = sum(1 for x in runs if w0 <= x.started < w0 + window)
        r.missed_window = max(0.0, r.expected - r.ran_in_window)
    for service in services:
        mine = sorted((x for x in runs if x.service == service), key=lambda x: x.started)
        prior = [x for x in mine if x.started < w0]
        after = [x for x in mine if x.started >= w0]
        if not prior:
            continue
        gap = (after[0].started if after else time.time()) - prior[-1].started
        # Each service holds at most one overdue run, run late at the takeover: the runs
        # skipped are the whole intervals in the gap but the first.
        missed = max(0, math.floor(gap / CHECK_INTERVAL) - 1)
        # Stalled: not run with the takeover (it was handed to poller-1 before the kill and
        # waits to be orphaned), by a taker later or by poller-1 once it is back.
        late = r.first_run is None or (after and after[0].started
                                       > w0 + r.first_run + STALLED_AFTER)
        if not after or after[0].poller == VICTIM or late:
            r.stalled.append(service)
            r.missed_stalled += missed
            r.stalled_gap = max(r.stalled_gap, gap)
        else:
            r.covered += 1
            r.missed_covered += missed
            r.worst_gap = max(r.worst_gap, gap)
        recent = [x for x in mine if x.started >= w0 - 2 * CHECK_INTERVAL]
        r.double_runs += sum(1 for a, b in itertools.pairwise(recent)
                             if a.poller != b.poller
                             and b.started - a.started < CHECK_INTERVAL / 2)
    return r


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--services", type=int, default=20,
                        help="services per poller, checked every second (default 20)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--server-threshold", type=int, default=1,
                        help="server_threshold of every poller, seconds (default 1)")
    parser.add_argument("--takeover", choices=("master", "spread"), default="master",
                        help="who covers a downed poller (default master)")
    parser.add_argument("--hold", type=float, default=3.0,
                        help="seconds the takers run poller-1's checks before it is "
                        "restarted (default 3)")
    parser.add_argument("--out", type=Path, help="build the cluster here (kept) instead of a "
                        "temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory "
                        "(configuration, logs, database)")
    args = parser.parse_args(argv)
    if args.services < 1 or args.repeat < 1 or args.server_threshold < 1 or args.hold < 0:
        parser.error("--services, --repeat and --server-threshold must be at least 1, "
                     "--hold at least 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGINT too, for when it was started with SIGINT ignored (a background job of a script).
    interrupt_on(signal.SIGTERM, signal.SIGINT)
    with scratch_dir("shinha-takeover-", "cluster directory", args.out, args.keep) as root:
        c = takeover_cluster(root, args.server_threshold, args.takeover, args.services)
        sampler = Sampler(c)
        try:
            return bench(c, sampler, args)
        except KeyboardInterrupt:
            print("\ninterrupted: stopping the cluster", file=sys.stderr)
            return 130
        finally:
            sampler.halt.set()
            c.stop_all()


def bench(c: Cluster, sampler: Sampler, args: argparse.Namespace) -> int:
    threshold = float(args.server_threshold)
    services = [f"{VICTIM}-{n}" for n in range(args.services)]
    pollers = ", ".join(f"{p} (master {t})" for p, t in TOKENS.items())
    print(f"takeover {args.takeover}: pollers {pollers}, {args.services} "
          f"services each every {CHECK_INTERVAL:.0f} s, server_threshold {args.server_threshold}"
          f" s, {args.repeat} rounds, cluster in {c.root}", flush=True)
    started = time.monotonic()
    c.start_all()
    sampler.start()
    c.wait(lambda: settled(c), 30 + 4 * threshold, "every poller naming poller-7 master")
    print(f"cluster up in {time.monotonic() - started:.1f} s", flush=True)

    rounds: list[Round] = []
    failure = ""
    for index in range(1, args.repeat + 1):
        try:
            r = one_round(c, sampler, args, index, services)
        except AssertionError as exc:
            failure = f"round {index}: {exc}"
            print(failure, file=sys.stderr)
            break
        rounds.append(r)
        print(f"round {index}: takeover {opt(r.takeover)} s (first taker run "
              f"{opt(r.first_run)} s, result {opt(r.first_result)} s), missed "
              f"{opt(r.missed_window)} until then, {len(r.stalled)} checks stalled until the "
              f"restart, give-back {r.giveback_own:.2f} s", flush=True)
    if not rounds:
        print(failure or "no round measured", file=sys.stderr)
        return 1
    report(args, rounds, failure)
    return 0 if healthy(rounds) and not failure else 1


def healthy(rounds: list[Round]) -> bool:
    """Every round had a takeover, no check ran twice, only the master covered (master)."""
    return all(r.takeover is not None and r.double_runs == 0 and r.wrong_taker == 0
               for r in rounds)


def opt(x: float | None, width: int = 0) -> str:
    return f"{x:{width}.2f}" if x is not None else f"{'-':>{width}}"


def stats(values: Sequence[float | None]) -> tuple[float, float, float] | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    return min(known), statistics.median(known), max(known)


def report(args: argparse.Namespace, rounds: list[Round], failure: str) -> None:
    threshold = float(args.server_threshold)
    bound = 2 * threshold + CHECK_INTERVAL
    print(f"\n{'round':>5} {'handed':>6} {'run':>5} {'result':>6} {'expect':>6} {'ran':>3} "
          f"{'missed':>6} {'miss/svc':>8} {'gap':>5} {'stalled':>7} {'miss':>4} {'gap':>5} "
          f"{'dead':>4} {'start':>5} {'own':>5} {'stop':>5} {'double':>6}")
    for r in rounds:
        ran = f"{r.ran_in_window:3d}" if r.ran_in_window is not None else "  -"
        print(f"{r.index:>5} {opt(r.takeover, 6)} {opt(r.first_run, 5)} {opt(r.first_result, 6)} "
              f"{opt(r.expected, 6)} {ran} {opt(r.missed_window, 6)} "
              f"{r.missed_covered:8d} {opt(r.worst_gap if r.covered else None, 5)} "
              f"{len(r.stalled):7d} "
              f"{r.missed_stalled:4d} {r.stalled_gap:5.2f} {r.handed_to_dead:4.0f} "
              f"{r.restart:5.2f} {r.giveback_own:5.2f} {r.giveback_taker_stop:5.2f} "
              f"{r.double_runs:6d}")
    print(f"""  handed  kill -> first poller-1 check handed to a taker (scheduler /metrics, read
          every {SAMPLE_PERIOD * 1000:.0f} ms: an upper bound)
  run, result  kill -> start / end of the first taker run the data-server holds
  expect, ran, missed  runs of poller-1's services due between the kill and the first taker
          run, run in that window, and the difference
  miss/svc, gap  over the services a taker covered: runs skipped (whole intervals between
          two runs of a service, but one, summed) and the longest time between two runs
  stalled, miss, gap  services not run with the takeover (handed to poller-1 just before it
          died: re-queued at its restart, or service_check_timeout + 5 s after), their runs
          skipped and longest gap
  dead    poller-1 checks the scheduler handed to poller-1 after its process was reaped
  start   restart command -> poller-1 answering /ping
  own, stop  restart command -> the scheduler hands poller-1 its own checks again / hands the
          last one to a taker
  double  two runs of one poller-1 service by different pollers under half an interval apart""")

    takeover = stats([r.takeover for r in rounds])
    without = [r.index for r in rounds if r.takeover is None]
    first_run = stats([r.first_run for r in rounds])
    first_result = stats([r.first_result for r in rounds])
    missed_w = stats([r.missed_window for r in rounds])
    missed_c = stats([float(r.missed_covered) if r.covered else None for r in rounds])
    gap = stats([r.worst_gap if r.covered else None for r in rounds])
    stalled_n = stats([float(len(r.stalled)) for r in rounds])
    stalled_gap = stats([r.stalled_gap if r.stalled else None for r in rounds])
    start = stats([r.restart for r in rounds])
    own = stats([r.giveback_own for r in rounds])
    stop = stats([r.giveback_taker_stop for r in rounds])
    takers: dict[str, float] = {}
    for r in rounds:
        for p, v in r.takers.items():
            takers[p] = takers.get(p, 0.0) + v
    within = all(r.takeover is not None and r.takeover <= bound for r in rounds)
    doubles = sum(r.double_runs for r in rounds)
    wrong = sum(r.wrong_taker for r in rounds)
    stalled = sum(len(r.stalled) for r in rounds)

    def line(name: str, values: tuple[float, float, float] | None, unit: str = " s") -> str:
        if values is None:
            return f"  {name:<26} -"
        lo, mid, hi = values
        return f"  {name:<26} min {lo:6.2f}{unit}  median {mid:6.2f}{unit}  max {hi:6.2f}{unit}"

    print(f"\ntakeover summary ({args.takeover}, server_threshold {args.server_threshold} s, "
          f"{args.services} services per poller every {CHECK_INTERVAL:.0f} s, {len(rounds)} "
          "rounds)")
    print(line("takeover (handed)", takeover)
          + f"   bound 2 × {threshold:.0f} + {CHECK_INTERVAL:.0f} = {bound:.1f} s: "
          + ("within" if within else "EXCEEDED"))
    if without:
        print(f"  rounds without a takeover  {len(without)} (round {', '.join(map(str, without))}"
              f": nothing of poller-1's handed to a taker within 2 × T + {TAKEOVER_WAIT:.0f} s)")
    print(line("first taker run starts", first_run))
    print(line("first taker result", first_result))
    print(line("missed until the takeover", missed_w, "  "))
    print(line("missed, covered services", missed_c, "  "))
    print(line("longest gap, covered", gap))
    print(line("stalled services", stalled_n, "  "))
    print(line("longest gap, stalled", stalled_gap))
    print(line("restart: /ping answers", start))
    print(line("give-back: own checks", own))
    print(line("give-back: taker stops", stop))
    print("  taken over by              " + ", ".join(f"{p} {v:.0f}"
                                                       for p, v in takers.items()))
    print(f"  double runs                {doubles}"
          + (f"; poller-1 checks covered by a non-master: {wrong:.0f}"
             if args.takeover == "master" else ""))

    def trio(prefix: str, values: tuple[float, float, float] | None) -> dict[str, Any]:
        names = ("min", "median", "max")
        return {f"{prefix}_{n}": (rounded(values[i]) if values else None)
                for i, n in enumerate(names)}

    record: dict[str, Any] = {
        "bench": "takeover",
        "takeover_mode": args.takeover,
        "server_threshold": args.server_threshold,
        "services_per_poller": args.services,
        "check_interval": CHECK_INTERVAL,
        "repeat": args.repeat,
        "rounds": len(rounds),
        "hold": args.hold,
        "bound_seconds": bound,
        **trio("takeover_seconds", takeover),
        "takeover_seconds": [rounded(r.takeover) for r in rounds],
        "rounds_without_takeover": len(without),
        **trio("first_run_seconds", first_run),
        **trio("first_result_seconds", first_result),
        **trio("missed_window", missed_w),
        **trio("missed_covered", missed_c),
        **trio("gap_covered_seconds", gap),
        "stalled": stalled,
        "stalled_per_round": [len(r.stalled) for r in rounds],
        "missed_stalled": sum(r.missed_stalled for r in rounds),
        **trio("gap_stalled_seconds", stalled_gap),
        "handed_to_dead": int(sum(r.handed_to_dead for r in rounds)),
        **trio("restart_seconds", start),
        **trio("giveback_own_seconds", own),
        **trio("giveback_taker_stop_seconds", stop),
        "taken_by": {p: int(v) for p, v in takers.items()},
        "double_runs": doubles,
        "wrong_taker": int(wrong),
        "within_bound": within,
        "ok": not failure and healthy(rounds),
        "error": failure or None,
        "load_average": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    append_result(record)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: notifications of a real cluster when everything goes bad at once — how many run
(against what Nagios's rules, as shinha documents them, say), how fast, and at what CPU cost.

Starts a real cluster through tests/cluster.py (one arbiter, scheduler, poller and data-server,
each its own process on loopback) holding one parent host `router` and H child hosts
(`parents router`), each with S services (--hosts, --services-per-host; default 1,000 x 10 =
10,000 services). interval_length=1; every host and service: check_interval 10 s,
retry_interval 1 s, max_check_attempts 2, notification_interval 0 (notify once: any second
line for one problem is a duplicate, not a re-notification), flap detection off (the flips
below would make them flap after a few phases, which silences notifications), one contact.

Checks are a tiny shell plugin that exits with the number in a flag file: one flag for the
router, one for every child host, one for every service; the bench flips a flag by replacing
the file (atomically), so a whole layer goes bad at once and each check sees it at its next
run (within its 10 s check interval; a retry 1 s later makes it HARD). The contact's host and
service notification commands are a shell script that appends one line
`TYPE HOST SERVICE NUMBER` (SERVICE `-` for a host) to a file: what ran is what that file holds.

Scenarios (--scenario, default both, in one cluster, outage first):

  outage  router, child hosts and services go bad at once. Nagios's rules: the router goes
          DOWN and notifies once; the children are UNREACHABLE (every parent down) and send no
          PROBLEM; a service whose host is not UP does not notify: 1 notification in all.
          Measured: seconds from the flip to the router's line; the lines written once the
          state settled (the data-server shows every service CRITICAL HARD and every host
          non-UP HARD, the scheduler has no action pending, and no line came for --margin s);
          the CPU (utime+stime from /proc/PID/stat) of the scheduler, poller, its workers and
          what they ran (reaped children), data-server, from the flip to the settled state.
          Then everything recovers: 1 RECOVERY line (the router; nobody was told of the rest).
          That count needs the on-demand checks: a child or service that fails has its
          parent or host checked at once only if that one's last check is older than
          cached_host_check_horizon. The bench sets it to 0 (--horizon): hosts here are
          checked every 10 s, under Nagios's default horizon of 15 s, so with the default a
          child or service whose retry comes before its parent's or host's next scheduled
          check would still see it UP and notify — as Nagios would with these intervals (on
          a real site hosts are checked every few minutes, well past the horizon). With
          --horizon 15 the outage shows more lines than the rules' 1; the phase line tells
          which.
  storm   the hosts stay UP and every service goes CRITICAL at once: one PROBLEM line per
          service (no duplicate, none missing). Measured: seconds from the flip to the last
          line (the file's mtime), notifications per second (over flip..last line, and over
          first..last line), the CPU of each daemon over flip..settled. Then recovery: one
          RECOVERY line per service.

Each phase prints expected vs ran (by router / child hosts / services and by type), the
duplicates, the scheduler's own count of notifications decided (`shinha_notifications_total`)
and actions done (`actions_done` of /status), and a pass flag: ran == expected. The CPU of
the daemons over a quiet window before the first flip (checks only) is given as a baseline.
The machine's busy cores come from /proc/stat; "other" is what processes not started by this
bench used meanwhile (another job on the machine makes the numbers unfair).

    python bench/alerting.py                                  # both scenarios, ~3-4 minutes
    python bench/alerting.py --hosts 20 --services-per-host 10 --scenario storm --keep

The last line of output is one JSON document starting with `{"bench": "alerting"`; it is also
appended to bench/out/alerting.jsonl. Exits 1 if a phase could not be measured or did not
pass. Ctrl-C (or SIGTERM) stops every daemon it started.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import append_result, call, compile_shinha, rounded, run_in_scratch
from check_throughput import CpuProbe, background_cores, child_pids

from tests.cluster import Cluster

SCHEDULER, POLLER, DATASERVER, ARBITER = "scheduler-1", "poller-1", "dataserver-1", "arbiter-1"
ROUTER = "router"
#: Seconds (interval_length=1) of every host's and service's checks.
CHECK_INTERVAL = 10
RETRY_INTERVAL = 1
MAX_ATTEMPTS = 2
#: Longest wait for the cluster to take its part and for every first result.
READY_TIMEOUT = 180.0
#: Longest wait for one phase to settle after its flip.
SETTLE_TIMEOUT = 180.0
#: Seconds of the quiet window (checks only) measured before the first flip.
BASELINE = 5.0
#: Seconds between two looks at the notification file; at the scheduler's /status and the
#: data-server (these cost the daemons something: not too often).
POLL_FILE = 0.05
POLL_STATUS = 0.5
POLL_DATASERVER = 1.0
PAGE = 1000
#: "other" cores (processes not started here) above this during a phase: numbers unfair.
NOISY_CORES = 0.25
CPUS = os.cpu_count() or 1

#: The check plugin: exit with the code in the flag file given ($1); a shell builtin reads it.
FLAG_PLUGIN = 'read code < "$1"\necho "flag $code"\nexit "$code"\n'


def child_name(i: int) -> str:
    return f"host-{i:04d}"


def service_name(i: int) -> str:
    return f"svc-{i:02d}"


def objects(hosts: int, per_host: int) -> str:
    """The router, its children, their services, the contact and the commands."""
    common = (f"  check_interval {CHECK_INTERVAL}\n  retry_interval {RETRY_INTERVAL}\n"
              f"  max_check_attempts {MAX_ATTEMPTS}\n  notification_interval 0\n"
              "  flap_detection_enabled 0\n  contacts oncall\n")
    chunks = [
        "define command {\n  command_name flag\n  command_line $USER2$/flag.sh "
        "$USER2$/$ARG1$.flag\n}\n",
        "define command {\n  command_name notify-host\n  command_line $USER2$/notify.sh "
        '"$NOTIFICATIONTYPE$ $HOSTNAME$ - $NOTIFICATIONNUMBER$"\n}\n',
        "define command {\n  command_name notify-service\n  command_line $USER2$/notify.sh "
        '"$NOTIFICATIONTYPE$ $HOSTNAME$ $SERVICEDESC$ $NOTIFICATIONNUMBER$"\n}\n',
        "define contact {\n  contact_name oncall\n  host_notification_commands notify-host\n"
        "  service_notification_commands notify-service\n}\n",
        f"define host {{\n  name bench-host\n  register 0\n  address 127.0.0.1\n{common}}}\n",
        f"define service {{\n  name bench-service\n  register 0\n{common}"
        "  check_command flag!services\n}\n",
        f"define host {{\n  use bench-host\n  host_name {ROUTER}\n"
        "  check_command flag!router\n}\n",
    ]
    for h in range(hosts):
        name = child_name(h)
        chunks.append(f"define host {{\n  use bench-host\n  host_name {name}\n"
                      f"  parents {ROUTER}\n  check_command flag!children\n}}\n")
        for s in range(per_host):
            chunks.append(f"define service {{\n  use bench-service\n  host_name {name}\n"
                          f"  service_description {service_name(s)}\n}}\n")
    return "".join(chunks)


class BenchError(Exception):
    """A phase could not be measured."""


# -- what ran ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    """One line of the notification file."""

    type: str
    host: str
    service: str  # "" for a host
    number: str

    @property
    def who(self) -> str:
        """router, child (a child host) or service."""
        if self.service:
            return "service"
        return "router" if self.host == ROUTER else "child"


class NotificationFile:
    """Reads the lines the notification script appends, from where the last read stopped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines: list[Line] = []
        self.bad: list[str] = []

    def read(self) -> list[Line]:
        """The lines appended since the last read (whole lines only)."""
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        self.offset += end
        new = []
        for raw in data[:end].decode(errors="replace").splitlines():
            words = raw.split()
            if len(words) != 4:
                self.bad.append(raw)
                continue
            new.append(Line(words[0], words[1], "" if words[2] == "-" else words[2], words[3]))
        self.lines += new
        return new

    def mtime(self) -> float | None:
        """Wall time of the last write to the file."""
        try:
            return self.path.stat().st_mtime_ns / 1e9
        except FileNotFoundError:
            return None


# -- the cluster -------------------------------------------------------------------------------


@dataclass(slots=True)
class Phase:
    """One flip and what followed it."""

    name: str  # outage | outage-recovery | storm | storm-recovery
    expected: dict[str, int]  # "TYPE who" -> lines
    lines: list[Line] = field(default_factory=list)
    settled: bool = False
    #: Seconds from the flip: the state settled (before the margin); the first and last line;
    #: the router's line.
    settle_s: float | None = None
    first_line_s: float | None = None
    last_line_s: float | None = None
    router_s: float | None = None
    cpu_s: dict[str, float] = field(default_factory=dict)
    cpu_window_s: float = 0.0
    decided: dict[str, float] = field(default_factory=dict)
    actions_done: int = 0
    actions_pending_end: int | None = None
    error: str | None = None

    @property
    def ran(self) -> dict[str, int]:
        counts = collections.Counter(f"{ln.type} {ln.who}" for ln in self.lines)
        return dict(sorted(counts.items()))

    @property
    def duplicates(self) -> int:
        return len(self.lines) - len({(ln.type, ln.host, ln.service) for ln in self.lines})

    @property
    def expected_total(self) -> int:
        return sum(self.expected.values())

    @property
    def passed(self) -> bool:
        want = {k: v for k, v in self.expected.items() if v}
        return self.settled and self.ran == want and self.duplicates == 0

    @property
    def rate_from_flip(self) -> float | None:
        if not self.lines or not self.last_line_s:
            return None
        return len(self.lines) / self.last_line_s

    @property
    def rate_sending(self) -> float | None:
        if len(self.lines) < 2 or self.first_line_s is None or self.last_line_s is None \
                or self.last_line_s <= self.first_line_s:
            return None
        return (len(self.lines) - 1) / (self.last_line_s - self.first_line_s)

    def cores(self) -> dict[str, float]:
        w = self.cpu_window_s
        return {k: round(v / w, 3) for k, v in self.cpu_s.items()} if w > 0 else {}

    def record(self) -> dict[str, Any]:
        return {"phase": self.name, "expected": self.expected_total, "ran": len(self.lines),
                "expected_by": self.expected, "ran_by": self.ran,
                "duplicates": self.duplicates, "pass": self.passed, "settled": self.settled,
                "settle_s": rounded(self.settle_s), "first_line_s": rounded(self.first_line_s),
                "last_line_s": rounded(self.last_line_s), "router_s": rounded(self.router_s),
                "rate_from_flip": rounded(self.rate_from_flip, 1),
                "rate_sending": rounded(self.rate_sending, 1),
                "cpu_window_s": rounded(self.cpu_window_s),
                "cpu_s": {k: round(v, 3) for k, v in self.cpu_s.items()},
                "cpu_cores": self.cores(), "decided": self.decided,
                "actions_done": self.actions_done,
                "actions_pending_end": self.actions_pending_end, "error": self.error}


class AlertRun:
    """One cluster: arbiter, scheduler, poller, data-server on loopback, the flags and the
    notification file in its tree."""

    def __init__(self, root: Path, hosts: int, per_host: int, margin: float,
                 horizon: int = 0) -> None:
        self.root = root
        self.hosts, self.per_host = hosts, per_host
        self.services = hosts * per_host
        self.margin = margin
        self.cluster = Cluster(root)
        for role in ("arbiter", "scheduler", "poller", "dataserver"):
            self.cluster.add(role, f"{role}-1")
        self.cluster.objects = objects(hosts, per_host)
        self.cluster.write()
        with self.cluster.main.open("a") as main:
            # Every failing service has its host (every failing child its parent) checked on
            # demand: see the module docstring.
            main.write(f"cached_host_check_horizon={horizon}\n")
        self.cluster.plugin("flag.sh", FLAG_PLUGIN)
        self.notified = root / "notifications.log"
        self.cluster.plugin("notify.sh", f'echo "$1" >> {self.notified}\n')
        for flag in ("router", "children", "services"):
            self.flip(flag, 0)
        self.file = NotificationFile(self.notified)

    # -- flags, status --------------------------------------------------------------------------

    def flip(self, flag: str, code: int) -> None:
        """Replace the flag file at once: a check never reads half of it."""
        tmp = self.root / f".{flag}.flag.tmp"
        tmp.write_text(f"{code}\n")
        os.replace(tmp, self.root / f"{flag}.flag")

    def status(self) -> dict[str, Any]:
        body = call(self.cluster, SCHEDULER, "/status", timeout=10.0)
        if not isinstance(body, dict):
            raise BenchError("the scheduler does not answer /status")
        owns: dict[str, Any] = body["owns"]
        return owns

    def decided(self) -> dict[str, float]:
        """shinha_notifications_total of the scheduler, by type."""
        text = call(self.cluster, SCHEDULER, "/metrics", timeout=10.0)
        out: dict[str, float] = {}
        for line in str(text or "").splitlines():
            if line.startswith("shinha_notifications_total{"):
                labels, _, value = line.rpartition(" ")
                kind = labels.split('type="', 1)[1].split('"', 1)[0] if 'type="' in labels \
                    else "?"
                out[kind] = out.get(kind, 0.0) + float(value)
        return out

    def rows(self, what: str, state: int | None = None) -> list[dict[str, Any]]:
        """Every host or service state row of the data-server (with `state`: only those)."""
        out: list[dict[str, Any]] = []
        offset = 0
        while True:
            query = f"/api/{what}?offset={offset}&limit={PAGE}"
            if state is not None:
                query += f"&state={state}"
            page = call(self.cluster, DATASERVER, query, timeout=10.0)
            if not isinstance(page, dict):
                raise BenchError(f"the data-server does not answer {query}")
            out += page["items"]
            offset += PAGE
            if offset >= int(page["total"]):
                return out

    def count(self, what: str, state: int) -> int:
        page = call(self.cluster, DATASERVER, f"/api/{what}?state={state}&limit=1",
                    timeout=10.0)
        return int(page["total"]) if isinstance(page, dict) else -1

    def all_hard(self, services_state: int, hosts_up: bool) -> bool:
        """The data-server shows every service in `services_state` HARD, and every host UP
        HARD (`hosts_up`) or not UP and HARD."""
        if self.count("services", services_state) != self.services:
            return False
        if any(r["state_type"] != "HARD" for r in self.rows("services", services_state)):
            return False
        hosts = self.rows("hosts")
        if len(hosts) != self.hosts + 1:
            return False
        return all(r["state_type"] == "HARD" and (r["state"] == 0) == hosts_up for r in hosts)

    # -- start --------------------------------------------------------------------------------

    def start(self) -> None:
        started = time.monotonic()
        self.cluster.start_all()
        checks = self.services + self.hosts + 1
        self.cluster.wait(lambda: (owns := self.status())["states_loaded"]
                          and owns["checks"] == checks, READY_TIMEOUT,
                          f"the scheduler to take its part of {checks} checks")
        print(f"  cluster up, part taken in {time.monotonic() - started:.1f} s", flush=True)
        started = time.monotonic()
        self.cluster.wait(lambda: self.status()["pending"] == 0 and self.all_hard(0, True),
                          READY_TIMEOUT, "every host and service UP/OK HARD in the data-server")
        print(f"  every first result in and stored in {time.monotonic() - started:.1f} s",
              flush=True)
        if self.file.read():
            raise BenchError(f"notifications before any flip: {self.file.lines[:5]}")

    def probe(self) -> CpuProbe:
        procs = self.cluster.procs
        workers = child_pids(procs[POLLER].pid)
        return CpuProbe(own={"scheduler": [procs[SCHEDULER].pid],
                             "poller": [procs[POLLER].pid], "workers": workers,
                             "dataserver": [procs[DATASERVER].pid],
                             "arbiter": [procs[ARBITER].pid], "bench": [os.getpid()]},
                        reaped={"plugins": workers})

    def baseline(self, seconds: float) -> dict[str, float]:
        """Cores each part uses with checks only."""
        probe = self.probe()
        cpu0, t0 = probe.snapshot(), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = probe.snapshot(), time.monotonic()
        return {k: round(v / (t1 - t0), 3) for k, v in cpu_seconds(cpu0, cpu1).items()}

    # -- one phase ----------------------------------------------------------------------------

    def phase(self, name: str, flips: dict[str, int], expected: dict[str, int],
              services_state: int, hosts_up: bool) -> Phase:
        """Flip the flags; follow the lines until the state settled and no line came for the
        margin."""
        ph = Phase(name, expected)
        self.file.read()
        probe = self.probe()
        decided0 = self.decided()
        done0 = int(self.status()["actions_done"])
        cpu0 = probe.snapshot()
        wall0, t0 = time.time(), time.monotonic()
        for flag, code in flips.items():
            self.flip(flag, code)
        print(f"\n  {name}: flipped {', '.join(f'{f}={c}' for f, c in flips.items())}; "
              f"expecting {ph.expected_total:,} lines", flush=True)
        next_status = next_data = next_print = t0
        pending: int | None = None
        quiet_since: float | None = None  # the state settled, no line since
        cpu_end: dict[str, float] | None = None
        deadline = t0 + SETTLE_TIMEOUT
        while True:
            now = time.monotonic()
            new = self.file.read()
            if new:
                at = (self.file.mtime() or time.time()) - wall0
                ph.lines += new
                if ph.first_line_s is None:
                    ph.first_line_s = at
                if ph.router_s is None and any(ln.who == "router" for ln in new):
                    ph.router_s = at if new[-1].who == "router" else time.time() - wall0
                quiet_since = cpu_end = None
            if now >= next_status:
                pending = int(self.status()["actions_pending"])
                next_status = now + POLL_STATUS
            if now >= next_data and pending == 0 and quiet_since is None:
                next_data = now + POLL_DATASERVER
                if self.all_hard(services_state, hosts_up):
                    quiet_since, cpu_end = time.monotonic(), probe.snapshot()
                    if ph.settle_s is None:
                        ph.settle_s = quiet_since - t0
            if pending and quiet_since is not None:
                quiet_since = cpu_end = None
            if quiet_since is not None and cpu_end is not None \
                    and now - quiet_since >= self.margin:
                ph.settled = True
                ph.cpu_window_s = quiet_since - t0
                break
            if now >= deadline:
                ph.error = (f"not settled after {SETTLE_TIMEOUT:.0f} s ({len(ph.lines)} lines, "
                            f"{pending} actions pending)")
                cpu_end, ph.cpu_window_s = probe.snapshot(), now - t0
                break
            if now >= next_print:
                next_print = now + 5.0
                print(f"    {now - t0:5.1f} s: {len(ph.lines):,} lines, actions pending "
                      f"{pending}", flush=True)
            time.sleep(POLL_FILE)
        if cpu_end["missing"]:
            print(f"    warning: {cpu_end['missing']:.0f} measured processes went away (a "
                  "poller worker replaced?): CPU undercounted", flush=True)
        ph.cpu_s = cpu_seconds(cpu0, cpu_end)
        last = self.file.mtime()
        if ph.lines and last is not None:
            ph.last_line_s = last - wall0
        decided1 = self.decided()
        ph.decided = {k: v - decided0.get(k, 0.0) for k, v in decided1.items()
                      if v - decided0.get(k, 0.0)}
        owns = self.status()
        ph.actions_done = int(owns["actions_done"]) - done0
        ph.actions_pending_end = int(owns["actions_pending"])
        print(phase_line(ph), flush=True)
        return ph

    def stop(self) -> None:
        """Stop in the order that lets each daemon drain into one still running."""
        try:
            for name in (ARBITER, POLLER, SCHEDULER, DATASERVER):
                proc = self.cluster.procs.get(name)
                if proc is not None and proc.poll() is None:
                    self.cluster.kill(name, signal.SIGTERM)
        finally:
            self.cluster.stop_all()


def cpu_seconds(start: dict[str, float], end: dict[str, float]) -> dict[str, float]:
    """CPU seconds of each part between two snapshots; `other`: of everything else."""
    out = {k: end[k] - start[k] for k in start
           if k not in ("machine", "machine_total", "missing")}
    ours = sum(out.values())
    out["ours"] = ours
    out["machine"] = end["machine"] - start["machine"]
    out["other"] = max(0.0, out["machine"] - ours)
    return out


@contextlib.contextmanager
def alert_cluster(root: Path, hosts: int, per_host: int, margin: float, horizon: int
                  ) -> Iterator[AlertRun]:
    run = AlertRun(root, hosts, per_host, margin, horizon)
    try:
        run.start()
        yield run
    finally:
        run.stop()


# -- output ------------------------------------------------------------------------------------


def _s(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f} s"


def phase_line(ph: Phase) -> str:
    ran, want = ph.ran, {k: v for k, v in ph.expected.items() if v}
    keys = sorted(set(ran) | set(want))
    by = ", ".join(f"{k} {ran.get(k, 0):,}/{want.get(k, 0):,}" for k in keys) or "none"
    cpu = "  ".join(f"{k} {v:.2f}" for k, v in ph.cpu_s.items()
                    if k not in ("machine", "other", "bench"))
    cores = ph.cores()
    rate = (f"; {ph.rate_from_flip:,.0f}/s from the flip, {ph.rate_sending or 0:,.0f}/s "
            "first to last line" if ph.rate_from_flip else "")
    noisy = (f"\n      warning: other processes used {cores['other']:.2f} cores meanwhile: "
             "these numbers are not clean") if cores.get("other", 0.0) > NOISY_CORES else ""
    return (f"    {ph.name}: ran {len(ph.lines):,} of {ph.expected_total:,} expected "
            f"({by} ran/expected), duplicates {ph.duplicates}: "
            f"{'PASS' if ph.passed else 'FAIL'}"
            f"\n      settled {_s(ph.settle_s)} after the flip; router's line "
            f"{_s(ph.router_s)}, first {_s(ph.first_line_s)}, last {_s(ph.last_line_s)}{rate}"
            f"\n      scheduler decided {ph.decided or {}}, actions done {ph.actions_done:,}, "
            f"pending at the end {ph.actions_pending_end}"
            f"\n      CPU seconds over {ph.cpu_window_s:.1f} s: {cpu}  (machine "
            f"{ph.cpu_s.get('machine', 0.0):.2f}, other {ph.cpu_s.get('other', 0.0):.2f})"
            + (f"\n      error: {ph.error}" if ph.error else "") + noisy)


# -- the bench ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Method and targets: see the module docstring (bench/alerting.py).")
    parser.add_argument("--hosts", type=int, default=1000,
                        help="child hosts behind the router (default 1000)")
    parser.add_argument("--services-per-host", type=int, default=10,
                        help="services per child host (default 10)")
    parser.add_argument("--scenario", choices=("outage", "storm", "both"), default="both",
                        help="outage (router, children and services at once), storm (every "
                        "service, hosts UP), or both in one cluster (default)")
    parser.add_argument("--margin", type=float, default=3.0,
                        help="seconds without a new line once the state settled before a "
                        "phase is counted (default 3)")
    parser.add_argument("--horizon", type=int, default=0,
                        help="cached_host_check_horizon, seconds (default 0: every failing "
                        "service has its host checked on demand)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the tree, logs and notification file")
    args = parser.parse_args(argv)
    if args.hosts < 1 or args.services_per_host < 1 or args.margin < 0:
        parser.error("--hosts and --services-per-host must be at least 1, --margin >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_in_scratch("shinha-bench-alerting-", "tree, logs and notifications",
                          args.keep, lambda root: bench(args, root))


def bench(args: argparse.Namespace, root: Path) -> int:
    began = time.monotonic()
    background = background_cores(2.0)
    compile_shinha()
    hosts, per_host = args.hosts, args.services_per_host
    services = hosts * per_host
    print(f"alerting: router + {hosts:,} child hosts x {per_host} services = {services:,} "
          f"services, check_interval {CHECK_INTERVAL} s, retry {RETRY_INTERVAL} s, "
          f"max_check_attempts {MAX_ATTEMPTS}; {CPUS} CPUs; background load before starting: "
          f"{background:.2f} cores", flush=True)
    phases: list[Phase] = []
    errors: list[str] = []
    base: dict[str, float] = {}
    try:
        with alert_cluster(root / "cluster", hosts, per_host, args.margin,
                           args.horizon) as run:
            base = run.baseline(BASELINE)
            print("  baseline (checks only), cores: "
                  + "  ".join(f"{k} {v:.2f}" for k, v in base.items()), flush=True)
            if args.scenario in ("outage", "both"):
                phases.append(run.phase(
                    "outage", {"router": 2, "children": 2, "services": 2},
                    {"PROBLEM router": 1, "PROBLEM child": 0, "PROBLEM service": 0},
                    services_state=2, hosts_up=False))
                phases.append(run.phase(
                    "outage-recovery", {"router": 0, "children": 0, "services": 0},
                    {"RECOVERY router": 1, "RECOVERY child": 0, "RECOVERY service": 0},
                    services_state=0, hosts_up=True))
            if args.scenario in ("storm", "both"):
                phases.append(run.phase(
                    "storm", {"services": 2}, {"PROBLEM service": services},
                    services_state=2, hosts_up=True))
                phases.append(run.phase(
                    "storm-recovery", {"services": 0}, {"RECOVERY service": services},
                    services_state=0, hosts_up=True))
            if run.file.bad:
                errors.append(f"{len(run.file.bad)} unreadable notification lines, e.g. "
                              f"{run.file.bad[:3]}")
    except (BenchError, AssertionError, OSError) as exc:
        errors.append(str(exc)[:4000])
        print(f"  FAILED: {str(exc)[:4000]}", flush=True)
    errors += [f"{ph.name}: {ph.error}" for ph in phases if ph.error]
    return report(args, phases, base, errors, time.monotonic() - began, background)


def report(args: argparse.Namespace, phases: list[Phase], base: dict[str, float],
           errors: list[str], seconds: float, background: float) -> int:
    by = {ph.name: ph for ph in phases}
    services = args.hosts * args.services_per_host
    print(f"\nalerting summary (router + {args.hosts:,} hosts x {args.services_per_host} = "
          f"{services:,} services; run took {seconds:.0f} s)")
    for ph in phases:
        print(f"  {ph.name:<16} ran {len(ph.lines):>6,} expected {ph.expected_total:>6,}  "
              f"{'PASS' if ph.passed else 'FAIL'}  last line {_s(ph.last_line_s)}  "
              f"scheduler CPU {ph.cpu_s.get('scheduler', 0.0):.2f} s over "
              f"{ph.cpu_window_s:.1f} s")
    for error in errors:
        print(f"  error: {error[:300]}")
    outage, storm = by.get("outage"), by.get("storm")
    o_rec, s_rec = by.get("outage-recovery"), by.get("storm-recovery")
    wanted = [ph for ph in (outage, o_rec) if args.scenario != "storm"] + \
        [ph for ph in (storm, s_rec) if args.scenario != "outage"]
    passed = bool(wanted) and all(ph is not None and ph.passed for ph in wanted)

    def get(ph: Phase | None, attr: str) -> Any:
        if ph is None:
            return None
        value = getattr(ph, attr)
        return round(value, 3) if isinstance(value, float) else value

    record: dict[str, Any] = {
        "bench": "alerting",
        "hosts": args.hosts,
        "services_per_host": args.services_per_host,
        "services": services,
        "scenario": args.scenario,
        "check_interval": CHECK_INTERVAL,
        "retry_interval": RETRY_INTERVAL,
        "max_check_attempts": MAX_ATTEMPTS,
        "cpus": CPUS,
        "outage_expected": get(outage, "expected_total"),
        "outage_ran": len(outage.lines) if outage else None,
        "outage_ran_by": get(outage, "ran"),
        "outage_router_s": get(outage, "router_s"),
        "outage_settle_s": get(outage, "settle_s"),
        "outage_scheduler_cpu_s": rounded(outage.cpu_s.get("scheduler")) if outage else None,
        "outage_pass": get(outage, "passed"),
        "outage_recovery_expected": get(o_rec, "expected_total"),
        "outage_recovery_ran": len(o_rec.lines) if o_rec else None,
        "outage_recovery_ran_by": get(o_rec, "ran"),
        "outage_recovery_pass": get(o_rec, "passed"),
        "storm_expected": get(storm, "expected_total"),
        "storm_ran": len(storm.lines) if storm else None,
        "storm_duplicates": get(storm, "duplicates"),
        "storm_last_line_s": get(storm, "last_line_s"),
        "storm_rate_from_flip": rounded(storm.rate_from_flip, 1) if storm else None,
        "storm_rate_sending": rounded(storm.rate_sending, 1) if storm else None,
        "storm_scheduler_cpu_s": rounded(storm.cpu_s.get("scheduler")) if storm else None,
        "storm_poller_cpu_s": rounded(storm.cpu_s.get("poller", 0.0)
                                      + storm.cpu_s.get("workers", 0.0)
                                      + storm.cpu_s.get("plugins", 0.0)) if storm else None,
        "storm_pass": get(storm, "passed"),
        "storm_recovery_expected": get(s_rec, "expected_total"),
        "storm_recovery_ran": len(s_rec.lines) if s_rec else None,
        "storm_recovery_last_line_s": get(s_rec, "last_line_s"),
        "storm_recovery_pass": get(s_rec, "passed"),
        "pass": passed,
        "baseline_cores": base,
        "background_cores": background,
        "phases": [ph.record() for ph in phases],
        "errors": errors,
        "seconds": round(seconds, 1),
    }
    append_result(record)
    return 0 if passed and not errors else 1


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: completed checks per second and scheduling latency of one scheduler + one poller.

Starts a real cluster through tests/cluster.py (one arbiter, scheduler, poller and data-server,
each its own process on loopback) holding 10,000 services on 250 hosts (the hosts have no
check_command: only services are checked), and measures two kinds of check:

  (a) a forking plugin: command_line /bin/true;
  (b) the native tcp check (module_type tcp) against a local listener this bench starts (a
      subprocess that accepts and closes).

Each at saturation (check_interval 1 s: 10,000 checks/s offered, more than the poller runs) and
at the target load ((a) check_interval 10 s = 1,000/s offered, (b) 2 s = 5,000/s). After a
warm-up (every service checked once, then a margin) it samples every 0.5 s over a steady
window the scheduler's `GET /status` (`owns.results_total`; `owns.latency_p50/p99/max` over
its last 20,000 active results, latency = start minus due) and the poller's
`shinha_checks_run_total`, and measures the CPU time (utime+stime from /proc/PID/stat) of each
daemon, of the poller's worker processes and of the plugins they ran (the workers' reaped
children). Completed checks/s is the least-squares slope of results_total over the window: the
scheduler takes results in batches of up to 1,000, so a plain difference of two samples is off
by up to 1,000 checks; the poller's own count ("ran") is given next to it. Saturation of (a)
is measured for several poller settings (`max_workers` x `processes_by_worker`, restarting only
the poller between them); the best is used for everything else.

When nagios4 is installed, it runs the same 10,000 /bin/true services (interval_length=1) in the
foreground at check_interval 10 and 1. Its completed checks and latencies come from its service
performance-data file, one line per processed check result ($TIMET$, $SERVICELATENCY$); its
CPU is that of the core, its workers and their reaped plugins.

The machine's busy cores over each window come from /proc/stat; "other" is what processes not
started by this bench used meanwhile (another job on the machine makes the numbers unfair).

Targets (`pass_a`, `pass_b` in the JSON line): (a) >= 1,000 checks/s at saturation, and at
1,000/s offered >= 99% of them done with p99 latency < 1 s (the worst p99 of the window's
samples); (b) at 5,000/s offered >= 99% of them done, or >= 5,000/s at saturation.

    python bench/check_throughput.py                   # everything, 4-6 minutes
    python bench/check_throughput.py --scenario b --window 10 --skip-nagios
    python bench/check_throughput.py --settings 2x128,4x256 --keep

The last line of output is one JSON document starting with `{"bench": "check_throughput"`; it
is also appended to bench/out/check_throughput.jsonl. Exits 1 if a run could not be measured.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    CLK_TCK,
    append_result,
    compile_shinha,
    nagios_command,
    proc_times,
    quantile,
    rounded,
    run_in_scratch,
)

from tests.cluster import Cluster, wait_for

TARGET_A_RATE = 1_000.0
TARGET_A_P99 = 1.0
TARGET_B_RATE = 5_000.0
#: At the target load the offered rate IS the target: a service is not checked more often
#: than its interval, so a run keeps up when it completes 99% of it (nagios4 does 970-1,025/s
#: of its 1,000/s here, depending on the machine's other load).
RATE_TOLERANCE = 0.01
#: "other" cores (processes not started here) above this during a window: numbers unfair.
NOISY_CORES = 0.25
#: check_interval (seconds: interval_length=1) at the target load and at saturation.
TARGET_INTERVAL = {"a": 10, "b": 2}
SATURATION_INTERVAL = 1
SCENARIO_NAMES = {"a": "fork /bin/true", "b": "native tcp"}
#: Poller settings tried for (a) at saturation: worker processes x processes_by_worker.
DEFAULT_SETTINGS = "2x32,2x64,2x256,4x64"
SERVICES_PER_HOST = 40
#: Seconds of margin after every service has had its first check (its PENDING -> OK state
#: change, heavier than the steady state), and after a poller restart.
WARM_MARGIN = 3.0
RESTART_WARM = 5.0
#: Seconds the machine is watched before anything starts, for its background load.
BACKGROUND_SAMPLE = 2.0
#: Seconds between samples of the scheduler's and poller's /status during a window.
SAMPLE_EVERY = 0.5
#: Longest wait for a cluster to take its configuration and run every check once.
READY_TIMEOUT = 120.0
CPUS = os.cpu_count() or 1

SCHEDULER, POLLER, DATASERVER, ARBITER = "scheduler-1", "poller-1", "dataserver-1", "arbiter-1"

#: The tcp listener of scenario (b): accept, close, forever; prints its port first. It stands
#: for the monitored servers, which would not share our two cores: it accepts on the raw file
#: descriptor (no Python socket object per connection), half the CPU of `accept()`.
LISTENER = """
import os, socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(4096)
print(s.getsockname()[1], flush=True)
accept, close = s._accept, os.close
while True:
    close(accept()[0])
"""


# -- CPU from /proc ----------------------------------------------------------------------------


def child_pids(parent: int) -> list[int]:
    """Pids of the processes whose parent is `parent` now."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            times = proc_times(int(entry))
            if times is not None and times.ppid == parent:
                out.append(int(entry))
    return sorted(out)


def machine_busy() -> tuple[float, float]:
    """Busy and total CPU seconds of the whole machine (all cores) from /proc/stat."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    ticks = [int(x) for x in first[1:9]]  # user nice system idle iowait irq softirq steal
    total = sum(ticks)
    return (total - ticks[3] - ticks[4]) / CLK_TCK, total / CLK_TCK


def background_cores(seconds: float) -> float:
    """Cores the machine keeps busy over `seconds` (before the bench starts anything)."""
    busy0, total0 = machine_busy()
    time.sleep(seconds)
    busy1, total1 = machine_busy()
    return round((busy1 - busy0) / (total1 - total0) * CPUS, 3)


@dataclass(slots=True)
class CpuProbe:
    """What to measure: parts by name, each the own CPU of some pids or the CPU of their
    reaped children (plugins reaped by the workers that ran them)."""

    own: dict[str, list[int]] = field(default_factory=dict)
    reaped: dict[str, list[int]] = field(default_factory=dict)

    def snapshot(self) -> dict[str, float]:
        out: dict[str, float] = {}
        missing = 0
        for name, pids in self.own.items():
            out[name] = 0.0
            for pid in pids:
                times = proc_times(pid)
                missing += times is None
                out[name] += times.own if times else 0.0
        for name, pids in self.reaped.items():
            out[name] = 0.0
            for pid in pids:
                times = proc_times(pid)
                out[name] += times.children if times else 0.0
        out["machine"], out["machine_total"] = machine_busy()
        out["missing"] = float(missing)
        return out


def cores(start: Mapping[str, float], end: Mapping[str, float], seconds: float
          ) -> dict[str, float]:
    """CPU cores used by each part between two snapshots; `other`: by everything else."""
    out = {name: round((end[name] - start[name]) / seconds, 3) for name in start
           if name not in ("machine", "machine_total", "missing")}
    ours = sum(out.values())
    out["ours"] = round(ours, 3)
    out["machine"] = round((end["machine"] - start["machine"]) / seconds, 3)
    out["other"] = round(max(0.0, out["machine"] - ours), 3)
    return out


# -- results -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Measured:
    """One steady window of one run."""

    tool: str  # shinha | nagios4
    scenario: str  # a | b
    load: str  # saturation | target
    interval: int
    services: int
    settings: str | None  # workers x processes_by_worker (shinha)
    seconds: float
    checks: int
    #: Completed checks per second (shinha: slope of the scheduler's results_total).
    rate: float
    #: shinha: checks the poller ran per second (its checks_run_total counter).
    run_rate: float | None
    p50: float | None
    p99: float | None
    p99_worst: float | None
    latency_max: float | None
    cpu: dict[str, float]
    queues: dict[str, float] = field(default_factory=dict)

    @property
    def offered(self) -> float:
        return self.services / self.interval

    @property
    def cycle(self) -> float | None:
        """Mean seconds between two checks of one service: the interval plus the time from
        due to the result being taken (shinha reschedules from there)."""
        return self.services / self.rate if self.rate > 0 else None

    @property
    def cpu_ms_per_check(self) -> float | None:
        return self.cpu.get("ours", 0.0) / self.rate * 1000 if self.rate > 0 else None

    def line(self) -> str:
        lat = (f"latency p50 {_s(self.p50)} p99 {_s(self.p99)} max {_s(self.latency_max)}"
               if self.p50 is not None else "latency n/a")
        cpu = "  ".join(f"{k} {v:.2f}" for k, v in self.cpu.items())
        who = f"{self.tool} {self.settings}" if self.settings else self.tool
        per = self.cpu_ms_per_check
        noisy = (f"\n      warning: other processes used {self.cpu['other']:.2f} cores "
                 "meanwhile: these numbers are not clean") if self.cpu.get(
                     "other", 0.0) > NOISY_CORES else ""
        ran = f", poller ran {self.run_rate:,.0f}/s" if self.run_rate is not None else ""
        return (f"  ({self.scenario}) {self.load:<10} {who:<14} {self.rate:8,.0f} checks/s "
                f"(offered {self.offered:,.0f}/s, {self.checks:,} in {self.seconds:.1f} s{ran}, "
                f"cycle {self.cycle or 0:.2f} s)  {lat}\n      cores: {cpu}  "
                f"({per or 0:.2f} ms CPU per check){noisy}")

    def record(self) -> dict[str, Any]:
        return {"tool": self.tool, "scenario": self.scenario, "load": self.load,
                "interval": self.interval, "services": self.services,
                "settings": self.settings, "offered": round(self.offered, 1),
                "seconds": round(self.seconds, 2), "checks": self.checks,
                "rate": round(self.rate, 1), "run_rate": rounded(self.run_rate, 1),
                "cycle_s": rounded(self.cycle),
                "cpu_ms_per_check": rounded(self.cpu_ms_per_check),
                "latency_p50": self.p50, "latency_p99": self.p99,
                "latency_p99_worst": self.p99_worst, "latency_max": self.latency_max,
                "cpu_cores": self.cpu, "queues": self.queues}


def _s(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f} s"


class BenchError(Exception):
    """A run could not be measured."""


class DispatchRefused(BenchError):
    """The scheduler refuses the arbiter's configuration: no shinha run can be measured."""


@dataclass(frozen=True, slots=True)
class Sample:
    """The scheduler's and the poller's /status, and the poller's checks run, at one time."""

    at: float
    scheduler: dict[str, Any]
    poller: dict[str, Any]
    run: float

    @property
    def results(self) -> int:
        return int(self.scheduler["results_total"])


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (time, count) points: a rate robust to counts that move in
    lumps (the scheduler takes results in batches of up to 1,000)."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    den = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / den if den > 0 else 0.0


# -- shinha ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    workers: int
    per_worker: int

    @property
    def label(self) -> str:
        return f"{self.workers}x{self.per_worker}"

    def extra(self) -> str:
        return (f"  min_workers {self.workers}\n  max_workers {self.workers}\n"
                f"  processes_by_worker {self.per_worker}\n")


def parse_settings(text: str) -> list[Settings]:
    out = []
    for part in text.split(","):
        workers, _, per = part.strip().partition("x")
        out.append(Settings(int(workers), int(per)))
    if not out or any(s.workers < 1 or s.per_worker < 1 for s in out):
        raise ValueError("settings are WORKERSxPROCESSES, e.g. 2x64,4x256")
    return out


def host_name(i: int) -> str:
    return f"host-{i:04d}"


def shinha_objects(scenario: str, services: int, per_host: int, interval: int,
                   port: int | None) -> str:
    """Commands, hosts (no check of their own) and services of one scenario."""
    if scenario == "a":
        command = "define command {\n  command_name bench\n  command_line /bin/true\n}\n"
    else:
        command = ("define command {\n  command_name bench\n  module_type tcp\n"
                   f"  command_line host=127.0.0.1 port={port} timeout=2\n}}\n")
    chunks = [command]
    hosts = math.ceil(services / per_host)
    for h in range(hosts):
        name = host_name(h)
        chunks.append(f"define host {{\n  host_name {name}\n  address 127.0.0.1\n}}\n")
        for s in range(min(per_host, services - h * per_host)):
            chunks.append(f"define service {{\n  host_name {name}\n  service_description "
                          f"svc-{s:03d}\n  check_command bench\n  check_interval {interval}\n"
                          f"  retry_interval {interval}\n  max_check_attempts 1\n}}\n")
    return "".join(chunks)


class ShinhaRun:
    """One cluster: arbiter, scheduler, poller, data-server on loopback."""

    def __init__(self, root: Path, objects: str, settings: Settings, services: int) -> None:
        self.cluster = Cluster(root)
        self.services = services
        self.settings = settings
        for role in ("arbiter", "scheduler", "dataserver"):
            self.cluster.add(role, f"{role}-1")
        self.cluster.add("poller", POLLER, extra=settings.extra())
        self.cluster.objects = objects
        self.cluster.write()

    def status(self, name: str) -> dict[str, Any]:
        owns: dict[str, Any] = self.cluster.get(name, "/status")["owns"]
        return owns

    def _part_taken(self) -> bool:
        for line in self.cluster.log(ARBITER).splitlines():
            if f"dispatch to {SCHEDULER} failed" in line and "HTTP 4" in line:
                raise DispatchRefused(f"the scheduler refuses its part; arbiter log: {line}")
        owns = self.status(SCHEDULER)
        return bool(owns["states_loaded"] and owns["services"] == self.services)

    def start(self) -> None:
        started = time.monotonic()
        self.cluster.start_all()
        self.cluster.wait(self._part_taken, READY_TIMEOUT,
                          f"the scheduler to take its part of {self.services} services")
        print(f"    cluster up, part taken in {time.monotonic() - started:.1f} s", flush=True)

    def warm_up(self) -> None:
        """Wait until every service was checked once, then the margin."""
        started = time.monotonic()
        self.cluster.wait(lambda: self.status(SCHEDULER)["results_total"] >= self.services,
                          READY_TIMEOUT, f"{self.services} first results")
        print(f"    first pass done in {time.monotonic() - started:.1f} s", flush=True)
        time.sleep(WARM_MARGIN)

    def restart_poller(self, settings: Settings) -> None:
        self.settings = settings
        self.cluster.kill(POLLER, signal.SIGTERM)
        self.cluster.daemons[POLLER].extra = settings.extra()
        self.cluster.write()
        self.cluster.start(POLLER)
        time.sleep(RESTART_WARM)

    def probe(self, listener: int | None) -> CpuProbe:
        procs = self.cluster.procs
        workers = child_pids(procs[POLLER].pid)
        probe = CpuProbe(own={"scheduler": [procs[SCHEDULER].pid],
                              "poller": [procs[POLLER].pid], "workers": workers,
                              "dataserver": [procs[DATASERVER].pid],
                              "arbiter": [procs[ARBITER].pid], "bench": [os.getpid()]},
                         reaped={"plugins": workers})
        if listener is not None:
            probe.own["listener"] = [listener]
        return probe

    def sample(self) -> Sample:
        scheduler = self.status(SCHEDULER)
        poller = self.status(POLLER)
        metrics = self.cluster.get(POLLER, "/metrics")
        run = sum(float(line.rsplit(" ", 1)[1]) for line in str(metrics).splitlines()
                  if line.startswith("shinha_checks_run_total"))
        return Sample(time.monotonic(), scheduler, poller, run)

    def measure(self, scenario: str, load: str, interval: int, window: float,
                listener: int | None) -> Measured:
        probe = self.probe(listener)
        samples = [self.sample()]
        cpu0, t0 = probe.snapshot(), time.monotonic()
        while (left := t0 + window - time.monotonic()) > 0.05:
            time.sleep(min(SAMPLE_EVERY, left))
            if time.monotonic() < t0 + window - 0.05:
                samples.append(self.sample())
        cpu1, t1 = probe.snapshot(), time.monotonic()
        samples.append(self.sample())
        if cpu1["missing"]:
            print(f"    warning: {cpu1['missing']:.0f} measured processes went away (a poller "
                  "worker replaced?): CPU undercounted", flush=True)
        first, last = samples[0], samples[-1]
        seconds = last.at - first.at
        checks = last.results - first.results
        # A sample's latencies are all from the window once the window holds as many
        # results as the sample (the scheduler keeps its last 20,000).
        inside = [s.scheduler for s in samples if "latency_p99" in s.scheduler
                  and s.results - first.results >= int(s.scheduler["latency_samples"])]
        p99s = [float(s.scheduler["latency_p99"]) for s in samples
                if "latency_p99" in s.scheduler]
        worst = max(float(s["latency_p99"]) for s in inside) if inside else (
            max(p99s) if p99s else None)
        queues = {
            "scheduler_ready_max": max(float(s.scheduler["ready"]) for s in samples),
            "scheduler_in_flight_max": max(float(s.scheduler["in_flight"]) for s in samples),
            "scheduler_outbox_max": max(float(s.scheduler["outbox"]) for s in samples),
            "poller_running_max": max(float(s.poller["running"]) for s in samples),
            "poller_unacked_max": max(float(s.poller["unacked"]) for s in samples),
            "poller_capacity_end": float(last.poller["capacity"]),
            "latency_samples_end": float(last.scheduler.get("latency_samples", 0)),
            "samples": float(len(samples)),
        }
        end = last.scheduler
        return Measured(tool="shinha", scenario=scenario, load=load, interval=interval,
                        services=self.services, settings=self.settings.label,
                        seconds=seconds, checks=checks,
                        rate=slope([(s.at, float(s.results)) for s in samples]),
                        run_rate=(last.run - first.run) / seconds,
                        p50=end.get("latency_p50"), p99=end.get("latency_p99"),
                        p99_worst=worst, latency_max=end.get("latency_max"),
                        cpu=cores(cpu0, cpu1, t1 - t0), queues=queues)

    def stop(self) -> None:
        """Stop in the order that lets each daemon drain into one still running: the
        arbiter (no more dispatches), the poller (returns its results), the scheduler
        (flushes to the data-server), the data-server; then anything left."""
        try:
            for name in (ARBITER, POLLER, SCHEDULER, DATASERVER):
                proc = self.cluster.procs.get(name)
                if proc is not None and proc.poll() is None:
                    self.cluster.kill(name, signal.SIGTERM)
        finally:
            self.cluster.stop_all()


@contextlib.contextmanager
def shinha_cluster(root: Path, objects: str, settings: Settings, services: int
                   ) -> Iterator[ShinhaRun]:
    run = ShinhaRun(root, objects, settings, services)
    try:
        run.start()
        yield run
    finally:
        run.stop()


@contextlib.contextmanager
def tcp_listener() -> Iterator[tuple[int, int]]:
    """Start the listener subprocess; yield (port, pid)."""
    proc = subprocess.Popen([sys.executable, "-c", LISTENER], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            raise BenchError(f"the tcp listener did not start (exit {proc.poll()})")
        yield int(line), proc.pid
    finally:
        proc.kill()
        proc.wait()


# -- nagios4 -----------------------------------------------------------------------------------


def write_nagios(root: Path, services: int, per_host: int, interval: int) -> Path:
    """A tree nagios4 runs as root: the same hosts and /bin/true services as scenario (a)."""
    var = root / "var"
    var.mkdir(parents=True, exist_ok=True)
    days = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
    chunks = [
        "define command {\n  command_name bench\n  command_line /bin/true\n}\n",
        "define timeperiod {\n  timeperiod_name 24x7\n  alias always\n"
        + "".join(f"  {d} 00:00-24:00\n" for d in days) + "}\n",
        "define contact {\n  contact_name admin\n  host_notifications_enabled 0\n"
        "  service_notifications_enabled 0\n  host_notification_period 24x7\n"
        "  service_notification_period 24x7\n  host_notification_options n\n"
        "  service_notification_options n\n  host_notification_commands bench\n"
        "  service_notification_commands bench\n}\n",
    ]
    common = "  contacts admin\n  notification_period 24x7\n  check_period 24x7\n"
    for h in range(math.ceil(services / per_host)):
        name = host_name(h)
        chunks.append(f"define host {{\n  host_name {name}\n  address 127.0.0.1\n"
                      f"  max_check_attempts 1\n{common}}}\n")
        for s in range(min(per_host, services - h * per_host)):
            chunks.append(f"define service {{\n  host_name {name}\n  service_description "
                          f"svc-{s:03d}\n  check_command bench\n  check_interval {interval}\n"
                          f"  retry_interval {interval}\n  max_check_attempts 1\n{common}}}\n")
    (root / "objects.cfg").write_text("".join(chunks), encoding="utf-8")
    main = root / "nagios.cfg"
    main.write_text("\n".join([
        "# generated by bench/check_throughput.py",
        f"cfg_file={root / 'objects.cfg'}",
        f"log_file={var / 'nagios.log'}",
        f"check_result_path={var}",
        f"lock_file={var / 'nagios.lock'}",
        f"temp_file={var / 'nagios.tmp'}",
        f"temp_path={var}",
        f"status_file={var / 'status.dat'}",
        f"state_retention_file={var / 'retention.dat'}",
        "retain_state_information=0",
        f"object_cache_file={var / 'objects.cache'}",
        f"precached_object_file={var / 'objects.precache'}",
        f"command_file={var / 'nagios.cmd'}",
        f"query_socket={var / 'nagios.qh'}",
        f"debug_file={var / 'nagios.debug'}",
        "nagios_user=root",
        "nagios_group=root",
        "interval_length=1",
        # First checks over one interval, as shinha spreads them.
        f"max_service_check_spread={interval}",
        "check_external_commands=0",
        "enable_notifications=0",
        "enable_flap_detection=0",
        "illegal_macro_output_chars=`~$&|'\"<>",
        # One line per processed service check result: when, latency, execution time.
        "process_performance_data=1",
        f"service_perfdata_file={var / 'perfdata'}",
        "service_perfdata_file_template=$TIMET$\t$SERVICELATENCY$\t$SERVICEEXECUTIONTIME$",
        "service_perfdata_file_mode=a",
        "service_perfdata_file_processing_interval=0",
        "",
    ]), encoding="utf-8")
    return main


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    except OSError:
        return 0


def run_nagios(binary: str, root: Path, load: str, services: int, per_host: int,
               interval: int, window: float) -> Measured:
    main = write_nagios(root, services, per_host, interval)
    var = root / "var"
    perfdata = var / "perfdata"
    with (root / "stdout.log").open("wb") as log:
        proc = subprocess.Popen([binary, str(main)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=root, start_new_session=True)
    try:
        started = time.monotonic()
        wait_for(lambda: proc.poll() is not None or (var / "status.dat").exists(), 60,
                 "nagios4 to start")
        if proc.poll() is not None:
            raise BenchError(f"nagios4 exited with {proc.returncode}: "
                             f"{(root / 'stdout.log').read_text(errors='replace')[-2000:]}")
        # The perfdata file is written through stdio buffers: close enough to count a pass.
        wait_for(lambda: proc.poll() is None and _count_lines(perfdata) >= services,
                 READY_TIMEOUT, "nagios4 to check every service once")
        print(f"    nagios4 up, first pass done in {time.monotonic() - started:.1f} s",
              flush=True)
        time.sleep(WARM_MARGIN)
        workers = child_pids(proc.pid)
        probe = CpuProbe(own={"nagios": [proc.pid], "workers": workers},
                         reaped={"plugins": workers})
        # $TIMET$ has whole seconds: the window runs from one second boundary to another.
        w0 = math.ceil(time.time())
        w1 = w0 + max(1, round(window))
        time.sleep(max(0.0, w0 - time.time()))
        cpu0, t0 = probe.snapshot(), time.monotonic()
        time.sleep(max(0.0, w1 - time.time()))
        cpu1, t1 = probe.snapshot(), time.monotonic()
    finally:
        if proc.poll() is None:
            proc.terminate()  # nagios4 flushes its files and stops its workers
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    latencies: list[float] = []
    with perfdata.open(encoding="utf-8", errors="replace") as fh:
        for row in fh:
            parts = row.split("\t")
            if len(parts) >= 2 and parts[0].isdigit() and w0 <= int(parts[0]) < w1:
                latencies.append(float(parts[1]))
    n = len(latencies)
    return Measured(tool="nagios4", scenario="a", load=load, interval=interval,
                    services=services, settings=None, seconds=float(w1 - w0), checks=n,
                    rate=n / (w1 - w0), run_rate=None,
                    p50=round(quantile(latencies, 0.5), 4) if n else None,
                    p99=round(quantile(latencies, 0.99), 4) if n else None,
                    p99_worst=None, latency_max=round(max(latencies), 4) if n else None,
                    cpu=cores(cpu0, cpu1, t1 - t0),
                    queues={"check_workers": float(len(workers))})


# -- the bench ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--services", type=int, default=10_000,
                        help="services (default 10000)")
    parser.add_argument("--services-per-host", type=int, default=SERVICES_PER_HOST,
                        help=f"services per host (default {SERVICES_PER_HOST})")
    parser.add_argument("--window", type=float, default=20.0,
                        help="seconds of each steady window (default 20)")
    parser.add_argument("--sweep-window", type=float,
                        help="seconds of each window of the poller-settings sweep (default: "
                        "half of --window)")
    parser.add_argument("--scenario", choices=("a", "b", "both"), default="both")
    parser.add_argument("--settings", default=DEFAULT_SETTINGS,
                        help="poller settings for (a) at saturation, WORKERSxPROCESSES_BY_"
                        f"WORKER, comma-separated (default {DEFAULT_SETTINGS}); the best "
                        "is used for the other runs (with --scenario b: the first)")
    parser.add_argument("--skip-nagios", action="store_true", help="do not run nagios4")
    parser.add_argument("--keep", action="store_true", help="keep the temporary trees")
    args = parser.parse_args(argv)
    if args.services < 1 or args.services_per_host < 1 or args.window < 2:
        parser.error("--services and --services-per-host must be at least 1, --window 2")
    try:
        args.settings_list = parse_settings(args.settings)
    except ValueError as exc:
        parser.error(f"--settings: {exc}")
    if args.sweep_window is None:
        args.sweep_window = max(5.0, args.window / 2)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_in_scratch("shinha-bench-throughput-", "trees and logs", args.keep,
                          lambda root: bench(args, root))


def bench(args: argparse.Namespace, root: Path) -> int:
    began = time.monotonic()
    background = background_cores(BACKGROUND_SAMPLE)
    compile_shinha()
    services, per_host = args.services, args.services_per_host
    hosts = math.ceil(services / per_host)
    scenarios = ("a", "b") if args.scenario == "both" else (args.scenario,)
    print(f"{services} services on {hosts} hosts, {CPUS} CPUs, window {args.window:.0f} s "
          f"(sweep {args.sweep_window:.0f} s), scenarios {', '.join(scenarios)}; background "
          f"load before starting: {background:.2f} cores", flush=True)
    runs: list[Measured] = []
    sweep: dict[str, float] = {}
    best = args.settings_list[0]
    errors: list[str] = []
    refused: list[str] = []

    def attempt(what: str, body: Callable[[], None]) -> None:
        if refused and what.startswith("("):
            errors.append(f"{what}: not run (the scheduler refuses its part)")
            return
        try:
            body()
        except DispatchRefused as exc:
            refused.append(str(exc))
            errors.append(f"{what}: {exc}")
            print(f"  {what} FAILED: {exc}", flush=True)
        except (BenchError, AssertionError, OSError) as exc:
            errors.append(f"{what}: {exc}")
            print(f"  {what} FAILED: {str(exc)[:4000]}", flush=True)

    def done(m: Measured) -> None:
        runs.append(m)
        print(m.line(), flush=True)

    if "a" in scenarios:
        def a_saturation() -> None:
            nonlocal best
            print(f"\n(a) {SCENARIO_NAMES['a']} at saturation: check_interval "
                  f"{SATURATION_INTERVAL} s, poller settings {args.settings}", flush=True)
            objects = shinha_objects("a", services, per_host, SATURATION_INTERVAL, None)
            with shinha_cluster(root / "a-saturation", objects, args.settings_list[0],
                                services) as run:
                run.warm_up()
                for i, settings in enumerate(args.settings_list):
                    if i:
                        run.restart_poller(settings)
                    m = run.measure("a", "saturation", SATURATION_INTERVAL,
                                    args.sweep_window, None)
                    sweep[settings.label] = round(m.rate, 1)
                    done(m)
            best = max(args.settings_list, key=lambda s: sweep.get(s.label, 0.0))
            print(f"  best poller settings: {best.label} (workers x processes_by_worker)",
                  flush=True)

        def a_target() -> None:
            interval = TARGET_INTERVAL["a"]
            print(f"\n(a) {SCENARIO_NAMES['a']} at the target load: check_interval {interval}"
                  f" s, poller {best.label}", flush=True)
            objects = shinha_objects("a", services, per_host, interval, None)
            with shinha_cluster(root / "a-target", objects, best, services) as run:
                run.warm_up()
                done(run.measure("a", "target", interval, args.window, None))

        attempt("(a) saturation", a_saturation)
        attempt("(a) target", a_target)

    if "b" in scenarios:
        def b_runs() -> None:
            with tcp_listener() as (port, listener):
                for load, interval in (("saturation", SATURATION_INTERVAL),
                                       ("target", TARGET_INTERVAL["b"])):
                    print(f"\n(b) {SCENARIO_NAMES['b']} (listener port {port}) at {load}: "
                          f"check_interval {interval} s, poller {best.label}", flush=True)
                    objects = shinha_objects("b", services, per_host, interval, port)
                    with shinha_cluster(root / f"b-{load}", objects, best, services) as run:
                        run.warm_up()
                        done(run.measure("b", load, interval, args.window, listener))

        attempt("(b)", b_runs)

    nagios = None if args.skip_nagios or "a" not in scenarios else nagios_command()
    if nagios:
        binary = nagios

        def nagios_run(load: str, interval: int) -> Callable[[], None]:
            def body() -> None:
                done(run_nagios(binary, root / f"nagios-{load}", load, services, per_host,
                                interval, args.window))
            return body

        for load, interval in (("target", TARGET_INTERVAL["a"]),
                               ("saturation", SATURATION_INTERVAL)):
            print(f"\nnagios4, (a) {SCENARIO_NAMES['a']} at {load}: check_interval "
                  f"{interval} s", flush=True)
            attempt(f"nagios4 {load}", nagios_run(load, interval))
    elif "a" in scenarios and not args.skip_nagios:
        print("\nnagios4 not found (neither on PATH nor /usr/sbin/nagios4): not compared")

    return report(args, runs, sweep, best, errors, time.monotonic() - began, background)


def _find(runs: list[Measured], tool: str, scenario: str, load: str,
          settings: str | None = None) -> Measured | None:
    found = [m for m in runs if m.tool == tool and m.scenario == scenario and m.load == load
             and (settings is None or m.settings == settings)]
    return found[-1] if found else None


def report(args: argparse.Namespace, runs: list[Measured], sweep: dict[str, float],
           best: Settings, errors: list[str], seconds: float, background: float) -> int:
    a_sat = _find(runs, "shinha", "a", "saturation", best.label)
    a_tgt = _find(runs, "shinha", "a", "target")
    b_sat = _find(runs, "shinha", "b", "saturation")
    b_tgt = _find(runs, "shinha", "b", "target")
    n_tgt = _find(runs, "nagios4", "a", "target")
    n_sat = _find(runs, "nagios4", "a", "saturation")
    keeps_up = 1.0 - RATE_TOLERANCE
    # (a): the poller runs >= 1,000/s, and at 1,000/s offered it keeps up with p99 < 1 s.
    pass_a = (a_sat is not None and a_sat.rate >= TARGET_A_RATE and a_tgt is not None
              and a_tgt.rate >= TARGET_A_RATE * keeps_up and a_tgt.p99_worst is not None
              and a_tgt.p99_worst < TARGET_A_P99) if args.scenario != "b" else None
    # (b): at 5,000/s offered it keeps up (or it runs >= 5,000/s at saturation).
    pass_b = ((b_tgt is not None and b_tgt.rate >= TARGET_B_RATE * keeps_up)
              or (b_sat is not None and b_sat.rate >= TARGET_B_RATE)) \
        if args.scenario != "a" else None

    def rate(m: Measured | None) -> str:
        return f"{m.rate:8,.0f}/s" if m else "     n/a"

    print(f"\ncheck_throughput summary ({args.services} services, window "
          f"{args.window:.0f} s, poller {best.label}; run took {seconds:.0f} s)")
    if sweep:
        print("  (a) saturation by poller settings (workers x processes_by_worker): "
              + ", ".join(f"{k} {v:,.0f}/s" for k, v in sweep.items()))
    for label, m in (("(a) saturation", a_sat), ("(a) target", a_tgt),
                     ("(b) saturation", b_sat), ("(b) target", b_tgt),
                     ("nagios4 (a) target", n_tgt), ("nagios4 (a) saturation", n_sat)):
        if m is None:
            continue
        lat = (f"p50 {_s(m.p50)}  p99 {_s(m.p99)}"
               + (f" (worst in window {_s(m.p99_worst)})" if m.p99_worst is not None else "")
               if m.p50 is not None else "")
        print(f"  {label:<23} {rate(m)} of {m.offered:>6,.0f}/s offered, cycle "
              f"{m.cycle or 0:5.2f} s  {lat}\n  {'':<23} cores {m.cpu.get('ours', 0.0):.2f} = "
              f"{m.cpu_ms_per_check or 0:.2f} ms CPU per check (machine "
              f"{m.cpu.get('machine', 0.0):.2f}, other {m.cpu.get('other', 0.0):.2f})")
    if pass_a is not None:
        print(f"  target (a)  >= {TARGET_A_RATE:,.0f} checks/s at saturation, and at "
              f"{TARGET_A_RATE:,.0f}/s offered >= {TARGET_A_RATE * keeps_up:,.0f}/s done with "
              f"p99 < {TARGET_A_P99:.0f} s: {'PASS' if pass_a else 'FAIL'}")
    if pass_b is not None:
        print(f"  target (b)  at {TARGET_B_RATE:,.0f}/s offered >= "
              f"{TARGET_B_RATE * keeps_up:,.0f}/s done (or >= {TARGET_B_RATE:,.0f}/s at "
              f"saturation): {'PASS' if pass_b else 'FAIL'}")
    for error in errors:
        print(f"  error: {error[:300]}")

    def num(m: Measured | None, attr: str) -> Any:
        if m is None:
            return None
        value = getattr(m, attr)
        if isinstance(value, float) and attr in ("rate", "offered"):
            return round(value, 1)
        return round(value, 3) if isinstance(value, float) else value

    record: dict[str, Any] = {
        "bench": "check_throughput",
        "services": args.services,
        "hosts": math.ceil(args.services / args.services_per_host),
        "cpus": CPUS,
        "window": args.window,
        "sweep_window": args.sweep_window,
        "scenario": args.scenario,
        "poller_settings_best": best.label,
        "a_saturation_by_settings": sweep,
        "a_saturation_rate": num(a_sat, "rate"),
        "a_target_rate": num(a_tgt, "rate"),
        "a_target_offered": num(a_tgt, "offered"),
        "a_target_latency_p50": num(a_tgt, "p50"),
        "a_target_latency_p99": num(a_tgt, "p99"),
        "a_target_latency_p99_worst": num(a_tgt, "p99_worst"),
        "a_target_latency_max": num(a_tgt, "latency_max"),
        "a_target_cycle_s": num(a_tgt, "cycle"),
        "a_target_cpu_ms_per_check": num(a_tgt, "cpu_ms_per_check"),
        "a_target_cpu": a_tgt.cpu if a_tgt else None,
        "a_saturation_cpu_ms_per_check": num(a_sat, "cpu_ms_per_check"),
        "a_saturation_cpu": a_sat.cpu if a_sat else None,
        "b_saturation_rate": num(b_sat, "rate"),
        "b_target_rate": num(b_tgt, "rate"),
        "b_target_offered": num(b_tgt, "offered"),
        "b_target_latency_p50": num(b_tgt, "p50"),
        "b_target_latency_p99": num(b_tgt, "p99"),
        "b_target_latency_max": num(b_tgt, "latency_max"),
        "b_target_cycle_s": num(b_tgt, "cycle"),
        "b_target_cpu_ms_per_check": num(b_tgt, "cpu_ms_per_check"),
        "b_target_cpu": b_tgt.cpu if b_tgt else None,
        "b_saturation_cpu": b_sat.cpu if b_sat else None,
        "nagios4_target_rate": num(n_tgt, "rate"),
        "nagios4_target_latency_p50": num(n_tgt, "p50"),
        "nagios4_target_latency_p99": num(n_tgt, "p99"),
        "nagios4_target_latency_max": num(n_tgt, "latency_max"),
        "nagios4_target_cycle_s": num(n_tgt, "cycle"),
        "nagios4_target_cpu_ms_per_check": num(n_tgt, "cpu_ms_per_check"),
        "nagios4_target_cpu": n_tgt.cpu if n_tgt else None,
        "nagios4_saturation_rate": num(n_sat, "rate"),
        "nagios4_saturation_latency_p50": num(n_sat, "p50"),
        "nagios4_saturation_latency_p99": num(n_sat, "p99"),
        "nagios4_saturation_cpu_ms_per_check": num(n_sat, "cpu_ms_per_check"),
        "nagios4_saturation_cpu": n_sat.cpu if n_sat else None,
        "target_a_rate": TARGET_A_RATE,
        "target_a_p99": TARGET_A_P99,
        "target_b_rate": TARGET_B_RATE,
        "rate_tolerance": RATE_TOLERANCE,
        "background_cores": background,
        "pass_a": pass_a,
        "pass_b": pass_b,
        "errors": errors,
        "runs": [m.record() for m in runs],
        "seconds": round(seconds, 1),
    }
    append_result(record)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

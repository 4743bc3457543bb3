"""Benchmark: the resident memory of each daemon of a running cluster, with `make run`'s small
tree and with a tree of 10,000 services.

Two setups, each a scratch copy of etc/ started with `shinha run` (arbiter, scheduler, poller,
data-server, receiver on 127.0.0.1, the default ports 7768-7773; state in the copy's var/):

  default  etc/ as it is: one host, a dozen services.
  10k      the same daemons (etc/'s realms, arbiters, … modules), the monitored objects
           replaced by bench/config_load.py's generated tree: 1,000 hosts × 10 services
           (--hosts, --services-per-host), every check command `check_dummy 0` (a real
           plugin that costs nothing), every check interval 60 minutes: the first checks
           spread over about a minute (the scheduler's 200 a second), then hardly any.

For each: start the cluster, wait until the arbiter leads and sees every daemon alive and in
sync and the scheduler holds its whole part with no check pending (every first result in, its
outbox empty), let it run --steady seconds (default 10), then read each process --samples
times (default 5, one a second) from /proc:

  RSS   VmRSS of /proc/PID/status: every page mapped, shared libraries counted in full;
  PSS   Pss of /proc/PID/smaps_rollup: shared pages split among the processes mapping them
        (the PSS of all processes adds up to the memory they really take);
  USS   Private_Clean + Private_Dirty of smaps_rollup: what ending the process would free;
  peak  VmHWM of /proc/PID/status: the highest RSS since the process started (loading and
        cutting the tree, a dispatch).

Reported per role, the median over the samples: arbiter, scheduler, poller (its main process),
poller workers (the `shinha.poller.workers` processes the poller starts, one per CPU by
default; summed), data-server, receiver, the `shinha run` launcher, and the total of all of
them (peak: the sum of each process's own peak). Plugins that happen to run are not counted.

The scheduler's RSS depends on how many dispatches it took while the cluster came up (one
more each time the topology changed, e.g. a daemon answering after the arbiter took the lead):
each carries the whole part, parsed in full, and what the parse took is not given back to the
system. The count is reported with each setup; compare runs with the same count.

    python bench/footprint.py                       # both setups: about 2 min
    python bench/footprint.py --setup 10k --hosts 200 --keep

The last line of output is one JSON document starting with `{"bench": "footprint"`; it is
also appended to bench/out/footprint.jsonl. Exits 1 if a cluster did not come up. Ctrl-C (or
SIGTERM) stops every daemon it started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import REPO_DIR, append_result, compile_shinha, interrupt_on, rounded, scratch_dir
from cluster_stop import get, gone, ports_free
from config_load import CHECK_COMMANDS, NOTIFY_COMMANDS, _block, generate, shinha_command

SETUPS = ("default", "10k")
#: `started ROLE NAME pid PID URL …`, as `shinha run` prints each daemon it starts.
STARTED = re.compile(r"^started (\w+)\s+(\S+)\s+pid (\d+)\s+(\S+)\s+log (.+)$")
#: A daemon's log line for each dispatch it took.
APPLIED = "configuration from arbiter"
#: Rows of the table, in order.
ROLES = ("arbiter", "scheduler", "poller", "poller workers", "dataserver", "receiver",
         "launcher")
METRICS = ("rss", "pss", "uss", "peak")
#: Check interval of the 10k tree's hosts and services, in minutes (interval_length 60).
CHECK_INTERVAL_MIN = 60
#: Directories of etc/shinha.cfg that hold what is monitored: the 10k tree replaces them.
OBJECT_DIRS = ("timeperiods", "commands", "templates", "contacts", "hosts", "services")
KIB = 1024.0


# -- the trees ---------------------------------------------------------------------------------


def default_tree(root: Path) -> Path:
    """A copy of etc/ under `root`; its main file."""
    shutil.copytree(REPO_DIR / "etc", root / "etc")
    return root / "etc" / "shinha.cfg"


def big_tree(root: Path, hosts: int, per_host: int) -> Path:
    """A copy of etc/ whose monitored objects are config_load's generated tree, with cheap
    checks and long intervals; its main file."""
    etc = root / "etc"
    shutil.copytree(REPO_DIR / "etc", etc)
    generate(root / "generated", hosts, per_host)
    objects = etc / "objects"
    shutil.move(root / "generated" / "objects", objects)
    shutil.rmtree(root / "generated")
    # Every check a real plugin that forks and answers at once; notifications never fire
    # (everything is OK), but if one did it would not send mail.
    (objects / "commands.cfg").write_text("\n".join(
        [_block("command", [("command_name", name), ("command_line",
                f'$USER1$/check_dummy 0 "{name} OK - $HOSTADDRESS$ $ARG1$"')])
         for name in CHECK_COMMANDS]
        + [_block("command", [("command_name", name), ("command_line", "/bin/true")])
           for name in NOTIFY_COMMANDS]), encoding="utf-8")
    templates = objects / "templates.cfg"
    templates.write_text(re.sub(r"(check_interval\s+)\d+", rf"\g<1>{CHECK_INTERVAL_MIN}",
                                templates.read_text(encoding="utf-8")), encoding="utf-8")
    main = etc / "shinha.cfg"
    lines = [line for line in main.read_text(encoding="utf-8").splitlines()
             if line.removeprefix("cfg_dir=").strip() not in OBJECT_DIRS]
    main.write_text("\n".join([*lines, "cfg_dir=objects", ""]), encoding="utf-8")
    return main


def check_tree(main: Path) -> dict[str, int]:
    """`shinha check-config --json`'s object counts; raise if the tree is not valid."""
    done = subprocess.run([*shinha_command(), "check-config", "--json", str(main)],
                          cwd=REPO_DIR, capture_output=True, text=True, check=False)
    try:
        doc: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        raise RuntimeError(f"check-config printed no JSON:\n{done.stdout}{done.stderr}"
                           ) from None
    if not doc.get("valid"):
        raise RuntimeError(f"the tree {main} is not valid: {doc.get('errors')}")
    return dict(doc.get("counts", {}))


# -- /proc -------------------------------------------------------------------------------------


def memory(pid: int) -> dict[str, float] | None:
    """RSS, PSS, USS and peak RSS of a process in MiB; None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    kib: dict[str, int] = {}
    for text in (status, rollup):
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if value.endswith("kB"):
                kib[key] = int(value.split()[0])
    if "VmRSS" not in kib:  # a zombie: no memory left
        return None
    return {"rss": kib["VmRSS"] / KIB, "pss": kib.get("Pss", 0) / KIB,
            "uss": (kib.get("Private_Clean", 0) + kib.get("Private_Dirty", 0)) / KIB,
            "peak": kib.get("VmHWM", kib["VmRSS"]) / KIB}


def workers_of(poller: int) -> list[int]:
    """The poller's worker processes: its children running shinha.poller.workers."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == poller \
                and b"shinha.poller.workers" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def sample(pids: dict[str, int], launcher: int) -> dict[str, tuple[int, dict[str, float]]]:
    """One reading: per role, its processes and their summed memory."""
    groups: dict[str, list[int]] = {"launcher": [launcher]}
    for role, pid in pids.items():
        groups[role] = [pid]
    if "poller" in pids:
        groups["poller workers"] = workers_of(pids["poller"])
    out: dict[str, tuple[int, dict[str, float]]] = {}
    for role, members in groups.items():
        readings = [m for m in map(memory, members) if m is not None]
        out[role] = (len(readings), {k: sum(r[k] for r in readings) for k in METRICS})
    return out


# -- one setup ---------------------------------------------------------------------------------


@dataclass
class Setup:
    name: str
    hosts: int = 0
    services: int = 0
    up_s: float = 0.0
    #: Dispatches the scheduler took: each one parses its whole part again.
    scheduler_dispatches: int = 0
    procs: dict[str, int] = field(default_factory=dict)
    #: role -> metric -> median MiB over the samples.
    roles: dict[str, dict[str, float]] = field(default_factory=dict)
    total: dict[str, float] = field(default_factory=dict)


def not_ready(urls: dict[str, str], services: int) -> str:
    """What the cluster still lacks, or "" once the arbiter leads and sees every daemon alive
    and in sync, and the scheduler holds its part, every first check done and its results
    passed on to the data tier."""
    try:
        view = get(f"{urls['arbiter']}/cluster")
        owns = get(f"{urls['scheduler']}/status")["owns"]
    except (OSError, urllib.error.URLError, ValueError, KeyError) as exc:
        return f"an answer of the arbiter and the scheduler ({exc})"
    if not view["leading"]:
        return "an arbiter that leads"
    behind = [f"{d['name']} not {'in sync' if d['alive'] else 'alive'}" for d in view["daemons"]
              if not ((d["alive"] and d["in_sync"]) or d["role"] == "arbiter")]
    if len(view["daemons"]) != len(urls) or behind:
        return f"every daemon alive and in sync: {', '.join(behind) or view['daemons']}"
    want = {"services": services, "states_loaded": True, "pending": 0, "outbox": 0}
    lacking = {k: owns.get(k) for k, v in want.items() if owns.get(k) != v}
    return f"the scheduler's part, checked and passed on: {lacking}" if lacking else ""


def run_setup(setup: Setup, main: Path, args: argparse.Namespace, timeout: float) -> None:
    launcher = subprocess.Popen(
        [sys.executable, "-m", "shinha", "run", "-c", str(main)], cwd=REPO_DIR,
        env={**os.environ, "PYTHONPATH": str(REPO_DIR)}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, text=True)
    pids: dict[str, int] = {}
    urls: dict[str, str] = {}
    logs: dict[str, Path] = {}
    workers: set[int] = set()
    out: list[str] = []
    started = time.monotonic()
    try:
        assert launcher.stdout is not None
        while len(pids) < 5:
            line = launcher.stdout.readline()
            if not line:
                raise RuntimeError("shinha run ended early:\n" + "".join(out))
            out.append(line)
            if m := STARTED.match(line):
                pids[m.group(1)] = int(m.group(3))
                urls[m.group(1)] = m.group(4)
                logs[m.group(1)] = Path(m.group(5).strip())
        deadline = started + timeout
        while waiting := not_ready(urls, setup.services):
            if time.monotonic() > deadline or launcher.poll() is not None:
                raise RuntimeError(f"the cluster was not up and checked within {timeout:g} s;"
                                   f" still waiting for {waiting}")
            time.sleep(0.5)
        setup.up_s = time.monotonic() - started
        print(f"  {setup.name}: up, every first check done, in {setup.up_s:.1f} s; "
              f"steady {args.steady:g} s", flush=True)
        time.sleep(args.steady)
        readings = []
        for n in range(args.samples):
            if n:
                time.sleep(args.interval)
            readings.append(sample(pids, launcher.pid))
            workers.update(workers_of(pids["poller"]))
            if launcher.poll() is not None or any(map(gone, pids.values())):
                raise RuntimeError("a daemon ended while it was measured")
        for role in ROLES:
            if role not in readings[0]:
                continue
            setup.procs[role] = max(r[role][0] for r in readings)
            setup.roles[role] = {k: statistics.median(r[role][1][k] for r in readings)
                                 for k in METRICS}
        setup.total = {k: sum(v[k] for v in setup.roles.values()) for k in METRICS}
        setup.scheduler_dispatches = logs["scheduler"].read_text(errors="replace").count(APPLIED)
    finally:
        stop(launcher, [*pids.values(), *workers])


def stop(launcher: subprocess.Popen[str], pids: Sequence[int]) -> None:
    """Stop the cluster as Ctrl-C does (SIGINT to the launcher); kill what is left."""
    if launcher.poll() is None:
        launcher.send_signal(signal.SIGINT)
        try:
            launcher.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# -- output ------------------------------------------------------------------------------------


def print_table(setups: Sequence[Setup]) -> None:
    print("\nfootprint (MiB, median of the samples; peak: VmHWM)")
    print(f"  {'setup':<8} {'role':<15} {'procs':>5} {'RSS':>8} {'PSS':>8} {'USS':>8} "
          f"{'peak':>8}")
    for s in setups:
        rows = [(role, s.procs[role], s.roles[role]) for role in ROLES if role in s.roles]
        rows.append(("total", sum(s.procs.values()), s.total))
        for role, procs, m in rows:
            print(f"  {s.name:<8} {role:<15} {procs:>5} "
                  + " ".join(f"{m[k]:>8.1f}" for k in METRICS))
        print(f"  {s.name:<8} ({s.hosts} hosts, {s.services} services; up in {s.up_s:.1f} s; "
              f"{s.scheduler_dispatches} dispatch{'' if s.scheduler_dispatches == 1 else 'es'} to "
              "the scheduler)")


def record_of(s: Setup) -> dict[str, Any]:
    return {"hosts": s.hosts, "services": s.services, "up_s": rounded(s.up_s, 1),
            "scheduler_dispatches": s.scheduler_dispatches,
            "procs": {role.replace(" ", "_"): n for role, n in s.procs.items()},
            "roles": {role.replace(" ", "_"): {f"{k}_mib": rounded(v, 1) for k, v in m.items()}
                      for role, m in s.roles.items()},
            "total": {f"{k}_mib": rounded(v, 1) for k, v in s.total.items()}}


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--setup", choices=(*SETUPS, "all"), default="all",
                        help="which cluster (default all: both, one after the other)")
    parser.add_argument("--steady", type=float, default=10.0,
                        help="seconds of running once up, before the samples (default 10)")
    parser.add_argument("--samples", type=int, default=5, help="readings (default 5)")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between readings (default 1)")
    parser.add_argument("--hosts", type=int, default=1000,
                        help="hosts of the 10k tree (default 1000)")
    parser.add_argument("--services-per-host", type=int, default=10,
                        help="services per host of the 10k tree (default 10)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds a cluster has to come up (default 300)")
    parser.add_argument("--keep", action="store_true", help="keep the trees, state and logs")
    args = parser.parse_args(argv)
    if args.steady < 0 or args.samples < 1 or args.interval < 0 or args.hosts < 1 \
            or args.services_per_host < 1:
        parser.error("--steady and --interval must be at least 0, --samples, --hosts and "
                     "--services-per-host at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    interrupt_on(signal.SIGTERM)
    busy = ports_free()
    if busy:
        print(f"ports {busy} are taken (is `make run` running?): stop that first",
              file=sys.stderr)
        return 1
    with scratch_dir("shinha-bench-footprint-", "trees, state and logs",
                     keep=args.keep) as root:
        return bench(args, root)


def bench(args: argparse.Namespace, root: Path) -> int:
    names = SETUPS if args.setup == "all" else (args.setup,)
    load_before = os.getloadavg()
    compile_shinha()
    print(f"footprint bench: {', '.join(names)}; steady {args.steady:g} s, {args.samples} "
          f"samples; loadavg {load_before[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    setups: list[Setup] = []
    error = ""
    try:
        for name in names:
            if name == "default":
                main_file = default_tree(root / name)
            else:
                main_file = big_tree(root / name, args.hosts, args.services_per_host)
            counts = check_tree(main_file)
            setup = Setup(name, hosts=counts.get("host", 0), services=counts.get("service", 0))
            print(f"  {name}: {setup.hosts} hosts, {setup.services} services; starting",
                  flush=True)
            run_setup(setup, main_file, args, args.timeout)
            setups.append(setup)
    except RuntimeError as exc:
        error = str(exc)
        print(f"ERROR: {error}", file=sys.stderr)
    if setups:
        print_table(setups)
    append_result({
        "bench": "footprint", "steady_s": args.steady, "samples": args.samples,
        "setups": {s.name: record_of(s) for s in setups},
        "cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
        "error": error or None})
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: how long a whole-cluster stop of the default cluster takes.

Copies `make run`'s etc/ to a scratch directory (its state goes to the copy's var/), starts it
with `shinha run` (arbiter, scheduler, poller, data-server, receiver on 127.0.0.1, the default
ports 7768-7773), waits until the arbiter sees all five alive and the data-server holds check
results, lets it run --steady seconds (default 5), then sends the launcher SIGINT (what Ctrl-C
does; --signal TERM for SIGTERM) and measures, every 5 ms:

  total     from the signal to every process gone: the five daemons and the launcher
            (a daemon counts as gone once it has exited, zombie or reaped);
  daemon    from the signal to each daemon's exit (the launcher stops them in three waves:
            arbiter, receiver and poller; then the scheduler; then the data-server);
  stages    each daemon's own account (its log line "stopped in X s (refuse …, drain …,
            cancel …, close …)").

R rounds (--repeat, default 5), each a fresh start. The budget is the main file's
shutdown_timeout (default 10 s); a stop passes when it is well under it (--limit, default
half the budget).

    python bench/cluster_stop.py                   # 5 rounds, SIGINT: about 1.5 min
    python bench/cluster_stop.py --repeat 3 --signal TERM --keep

The last line of output is one JSON document starting with `{"bench": "cluster_stop"`; it is
also appended to bench/out/cluster_stop.jsonl. Exits 1 if a round failed or went over the
limit. Ctrl-C (or SIGTERM) stops every daemon it started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import REPO_DIR, append_result, compile_shinha, interrupt_on, rounded, scratch_dir

from shinha.config import load_config

ARBITER = "http://127.0.0.1:7770"
DATASERVER = "http://127.0.0.1:7772"
STARTED = re.compile(r"^started (\w+)\s+(\S+)\s+pid (\d+)")
STOPPED = re.compile(r"stopped in ([\d.]+) s \((.*)\)")
STAGE = re.compile(r"(\w+) ([\d.]+) s")
POLL = 0.005


@dataclass
class Round:
    total: float = 0.0
    launcher: float = 0.0
    daemons: dict[str, float] = field(default_factory=dict)
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    late: list[str] = field(default_factory=list)
    killed: bool = False


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return json.loads(resp.read())


def ready() -> bool:
    try:
        view = get(f"{ARBITER}/cluster")
        page = get(f"{DATASERVER}/api/services?limit=100")
    except (OSError, urllib.error.URLError, ValueError):
        return False
    return bool(view["leading"] and len(view["daemons"]) == 5
                and all((d["alive"] and d["in_sync"]) or d["role"] == "arbiter"
                        for d in view["daemons"])
                and any(row["state"] != 4 and row["output"] for row in page["items"]))


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie its parent has not reaped yet."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return text[text.rindex(")") + 2] == "Z"


def ports_free() -> list[int]:
    busy = []
    for port in (7768, 7770, 7771, 7772, 7773):
        with socket.socket() as sock:
            # As the daemons bind: a connection of an earlier run in TIME_WAIT is no obstacle.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy


def one_round(main: Path, log_dir: Path, sig: signal.Signals, steady: float) -> Round:
    offsets = {p.name: p.stat().st_size for p in log_dir.glob("*.log")} \
        if log_dir.exists() else {}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "shinha", "run", "-c", str(main)], cwd=REPO_DIR,
        env={**os.environ, "PYTHONPATH": str(REPO_DIR)}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, text=True)
    pids: dict[str, int] = {}
    out: list[str] = []
    try:
        assert launcher.stdout is not None
        while len(pids) < 5:
            line = launcher.stdout.readline()
            if not line:
                raise RuntimeError("shinha run ended early:\n" + "".join(out))
            out.append(line)
            if m := STARTED.match(line):
                pids[f"{m.group(1)}-{m.group(2)}"] = int(m.group(3))
        deadline = time.monotonic() + 60
        while not ready():
            if time.monotonic() > deadline or launcher.poll() is not None:
                raise RuntimeError("the cluster did not come up within 60 s")
            time.sleep(0.2)
        time.sleep(steady)  # a steady cluster: checks running, results flowing
        result = Round()
        signalled = time.monotonic()
        launcher.send_signal(sig)
        left = dict(pids)
        while left or not result.launcher:
            now = time.monotonic()
            for key, pid in list(left.items()):
                if gone(pid):
                    result.daemons[key] = now - signalled
                    del left[key]
            if not result.launcher and launcher.poll() is not None:
                result.launcher = now - signalled
            if now - signalled > 120:
                raise RuntimeError(f"still running 120 s after the signal: {sorted(left)}")
            time.sleep(POLL)
        result.total = max([result.launcher, *result.daemons.values()])
        rest, _ = launcher.communicate(timeout=5)
        out.append(rest)
        result.killed = "killed" in rest
        for key in pids:
            path = log_dir / f"{key}.log"
            with path.open(errors="replace") as fh:
                fh.seek(offsets.get(path.name, 0))
                text = fh.read()
            result.late += [f"{key}: {line.split(': ', 1)[-1]}" for line in text.splitlines()
                            if "stop stage" in line and "late" in line]
            if m := STOPPED.search(text):
                result.stages[key] = {s: float(t) for s, t in STAGE.findall(m.group(2))}
                result.stages[key]["total"] = float(m.group(1))
        return result
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def print_round(n: int, r: Round) -> None:
    daemons = "  ".join(f"{k.split('-')[0]} {v:.2f}" for k, v in sorted(
        r.daemons.items(), key=lambda kv: kv[1]))
    print(f"round {n}: every process gone {r.total:.2f} s after the signal "
          f"(launcher {r.launcher:.2f} s; {daemons})", flush=True)
    for key, stages in sorted(r.stages.items()):
        parts = ", ".join(f"{s} {t:.2f}" for s, t in stages.items() if s != "total")
        print(f"    {key:<24} stopped in {stages['total']:.2f} s ({parts})")
    for line in r.late:
        print(f"    LATE {line}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--signal", choices=("INT", "TERM"), default="INT",
                        help="what the launcher gets (default INT, as Ctrl-C)")
    parser.add_argument("--steady", type=float, default=5.0,
                        help="seconds of running once up, before the signal (default 5)")
    parser.add_argument("--limit", type=float, default=None,
                        help="a stop passes under this many seconds (default: half of "
                             "shutdown_timeout)")
    parser.add_argument("--keep", action="store_true", help="keep the tree, state and logs")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.steady < 0:
        parser.error("--repeat must be at least 1, --steady at least 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    interrupt_on(signal.SIGTERM)
    busy = ports_free()
    if busy:
        print(f"ports {busy} are taken (is `make run` running?): stop that first",
              file=sys.stderr)
        return 1
    with scratch_dir("shinha-bench-stop-", "tree, state and logs", keep=args.keep) as root:
        shutil.copytree(REPO_DIR / "etc", root / "etc")
        return bench(args, root / "etc" / "shinha.cfg", root / "var" / "log")


def bench(args: argparse.Namespace, main: Path, log_dir: Path) -> int:
    loaded = load_config(main)
    assert loaded.config is not None, loaded.errors
    budget = float(loaded.config.main.shutdown_timeout)
    limit = args.limit if args.limit is not None else budget / 2
    sig = signal.Signals[f"SIG{args.signal}"]
    load_before = os.getloadavg()
    compile_shinha()
    print(f"cluster stop bench: the default cluster (etc/), {args.repeat} rounds, {sig.name} "
          f"to `shinha run`; shutdown_timeout {budget:g} s, limit {limit:g} s; loadavg "
          f"{load_before[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    rounds: list[Round] = []
    error = ""
    try:
        for n in range(1, args.repeat + 1):
            r = one_round(main, log_dir, sig, args.steady)
            rounds.append(r)
            print_round(n, r)
    except RuntimeError as exc:
        error = str(exc)
        print(f"ERROR: {error}", file=sys.stderr)
    totals = [r.total for r in rounds]
    per_daemon: dict[str, dict[str, float | None]] = {}
    for key in sorted({k for r in rounds for k in r.daemons}):
        values = [r.daemons[key] for r in rounds if key in r.daemons]
        own = [r.stages[key]["total"] for r in rounds if key in r.stages]
        per_daemon[key] = {"exit_median_s": rounded(statistics.median(values)),
                           "exit_max_s": rounded(max(values)),
                           "own_stop_median_s": rounded(statistics.median(own)) if own else None}
    ok = (not error and len(rounds) == args.repeat and max(totals) < limit
          and not any(r.late or r.killed for r in rounds))
    if totals:
        print(f"\nwhole-cluster stop: median {statistics.median(totals):.2f} s, max "
              f"{max(totals):.2f} s over {len(totals)} rounds (budget {budget:g} s per daemon)")
    print("PASS" if ok else "FAIL")
    append_result({
        "bench": "cluster_stop", "signal": sig.name, "repeat": args.repeat,
        "steady_s": args.steady, "shutdown_timeout_s": budget, "limit_s": limit,
        "total_median_s": rounded(statistics.median(totals)) if totals else None,
        "total_max_s": rounded(max(totals)) if totals else None,
        "total_s": [rounded(t) for t in totals],
        "launcher_median_s": rounded(statistics.median([r.launcher for r in rounds]))
        if rounds else None,
        "per_daemon": per_daemon,
        "late": [line for r in rounds for line in r.late],
        "killed": sum(r.killed for r in rounds),
        "cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
        "error": error or None, "pass": ok})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

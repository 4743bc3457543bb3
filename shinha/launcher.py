"""`shinha run`: start every daemon defined for this host, each its own process, and stop
them all on Ctrl-C or SIGTERM: upstream first, so that each drains into daemons that still
take its work; a second Ctrl-C or SIGTERM makes them all exit at once. Should this process be
killed, the kernel stops them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from shinha.config import load_cluster
from shinha.config.daemons import DaemonLink
from shinha.config.loader import Config
from shinha.daemon.base import state_root
from shinha.spawn import python_command

ROLE_ORDER = ("dataserver", "scheduler", "poller", "receiver", "arbiter")
#: Stopped together, wave after wave: pollers and receivers hand their work to schedulers,
#: schedulers to data-servers (the arbiter, first, re-dispatches nothing while they stop).
STOP_WAVES = (("arbiter", "receiver", "poller"), ("scheduler",), ("dataserver",))
#: Past its own shutdown_timeout, a daemon of a wave is killed after this many seconds.
KILL_GRACE = 2.0


def local_daemons(config: Config, host: str | None) -> tuple[str, list[DaemonLink]]:
    """The daemons whose host_name is `host`, this machine's name, or else `localhost`."""
    candidates = [host] if host else [socket.gethostname(), socket.getfqdn(), "localhost"]
    for name in candidates:
        found = [d for role in ROLE_ORDER for d in config.daemons.get(role, {}).values()
                 if d.host_name == name]
        if found:
            return name, found
    return candidates[0], []


def run(main_file: str, host: str | None, log_level: str) -> int:
    """Start this host's daemons and supervise them until a signal; return the exit code."""
    # The daemons' part is all this process needs, and all it keeps: the whole tree is
    # checked (below, in a child process) only where an arbiter, which loads it, will run.
    result = load_cluster(main_file)
    if not result.ok or result.config is None:
        for diag in result.errors:
            print(diag, file=sys.stderr)
        print("the configuration has errors: nothing started", file=sys.stderr)
        return 2
    config = result.config
    host_name, daemons = local_daemons(config, host)
    if not daemons:
        print(f"no daemon of {main_file} has host_name {host_name!r}: use --host NAME",
              file=sys.stderr)
        return 2
    if any(d.role == "arbiter" for d in daemons):
        check = subprocess.run(python_command("shinha", "check-config", main_file),
                               capture_output=True, text=True, check=False)
        if check.returncode != 0:
            print(check.stdout + check.stderr, end="", file=sys.stderr)
            print("the configuration has errors: nothing started", file=sys.stderr)
            return 2
    log_dir = state_root(config) / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    children: dict[str, subprocess.Popen[bytes]] = {}
    signals = [0]

    def stop(signum: int, frame: object) -> None:
        signals[0] += 1

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for d in daemons:
        key = f"{d.role}-{d.name}"
        log_path = log_dir / f"{key}.log"
        with open(log_path, "ab") as log_file:
            # --parent-pid: each daemon gets SIGTERM from the kernel if this process dies,
            # even by SIGKILL, instead of running on with no one to stop it.
            children[key] = subprocess.Popen(
                python_command("shinha", "daemon", d.role, d.name, "-c", main_file,
                               "--log-level", log_level, "--parent-pid", str(os.getpid())),
                stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        scheme = "https" if d.use_ssl else "http"
        print(f"started {d.role:<10} {d.name:<20} pid {children[key].pid:<7} "
              f"{scheme}://{d.address}:{d.listen_port}  log {log_path}", flush=True)
    arbiters = [d for d in daemons if d.role == "arbiter"]
    where = arbiters[0] if arbiters else None
    if where is not None:
        print(f"\ncluster view: shinha status -c {main_file}   (or GET "
              f"http://{where.address}:{where.listen_port}/cluster)", flush=True)
    print("Ctrl-C stops them all.", flush=True)
    reported: set[str] = set()
    while not signals[0]:
        # Short: a sleep interrupted by a signal resumes for what is left of it (PEP 475),
        # and the stop begins only when it ends.
        time.sleep(0.05)
        for key, child in children.items():
            code = child.poll()
            if code is not None and key not in reported:
                reported.add(key)
                print(f"{key} exited with code {code} (see {log_dir / (key + '.log')})",
                      file=sys.stderr, flush=True)
        if len(reported) == len(children):
            return 1
    return _stop_all(children, float(config.main.shutdown_timeout), signals)


def _stop_all(children: dict[str, subprocess.Popen[bytes]], budget: float,
              signals: list[int]) -> int:
    """Stop the children wave by wave (STOP_WAVES), each child within `budget` (its
    shutdown_timeout) plus KILL_GRACE; a second signal (signals[0] > 1) makes every child
    left exit at once."""
    began = time.monotonic()
    asked: set[str] = set()
    forced = False
    for wave in STOP_WAVES:
        members = {key: child for key, child in children.items()
                   if key.split("-", 1)[0] in wave and child.poll() is None}
        for key, child in members.items():
            child.send_signal(signal.SIGTERM)
            asked.add(key)
        end = time.monotonic() + budget + KILL_GRACE
        while any(child.poll() is None for child in members.values()):
            if signals[0] > 1 and not forced:
                forced = True
                print("second signal: every daemon exits now", file=sys.stderr, flush=True)
                members = {key: child for key, child in children.items()
                           if child.poll() is None}
                for key in members.keys() - asked:
                    members[key].send_signal(signal.SIGTERM)  # its first: stop
                if members.keys() - asked:
                    time.sleep(0.1)  # two signals at once may arrive as one
                for child in members.values():
                    child.send_signal(signal.SIGTERM)  # its second: exit now
                end = time.monotonic() + KILL_GRACE
            if time.monotonic() > end:
                for key, child in members.items():
                    if child.poll() is None:
                        print(f"{key} did not stop in time: killed", file=sys.stderr,
                              flush=True)
                        child.kill()
                        child.wait()
                break
            time.sleep(0.02)
    print(f"all daemons stopped in {time.monotonic() - began:.1f} s", flush=True)
    return 0


def log_path(config: Config, role: str, name: str) -> Path:
    return state_root(config) / "log" / f"{role}-{name}.log"

"""A master/spare arbiter pair over a large tree (bench/config_load.py's generator), and a
watch of what the spare sees of the master while the master reloads it: tests/test_reload.py
and bench/reload_gap.py share them.

The satellites are the ones a reload reaches without running checks: one scheduler (it gets
the whole part: the largest dispatch an arbiter serializes) and one receiver. No poller, so
that no check runs; no data-server (the scheduler says it cannot load states, and waits).
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.cluster import SECRET, Cluster
from tests.ha import ping

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import config_load  # the bench's tree generator

MASTER, SPARE = "arbiter-master", "arbiter-spare"
SATELLITES = ("scheduler-1", "receiver-1")
#: How often the watch asks: well under the heartbeat period, so that no heartbeat is missed.
POLL = 0.05


def big_cluster(root: Path, hosts: int, per_host: int = 10) -> Cluster:
    """A tree of `hosts` × `per_host` services and its daemons: the arbiters' window is
    3 s (max_check_attempts 3 × check_interval 1), the test clusters' default."""
    c = Cluster(root)
    c.add("arbiter", MASTER, address="127.0.0.2")
    c.add("arbiter", SPARE, address="127.0.0.3", spare=True)
    c.add("scheduler", "scheduler-1", address="127.0.0.2")
    c.add("receiver", "receiver-1", address="127.0.0.2")
    c.write()
    # A scheduler taking a 100,000-service part is busy for seconds: a large data_timeout
    # for that dispatch, and enough attempts that it is not declared dead meanwhile.
    blocks = (c.root / "daemons.cfg").read_text().split("define ")
    blocks = [b.replace("max_check_attempts 3\n", "max_check_attempts 30\n")
              .replace("data_timeout 10\n", "data_timeout 120\n")
              if b.startswith("scheduler") else b for b in blocks]
    (c.root / "daemons.cfg").write_text("define ".join(blocks))
    config_load.generate(root, hosts, per_host)  # objects/, resource.cfg (and its own main)
    c.main.write_text("cfg_file=daemons.cfg\ncfg_dir=objects\nresource_file=resource.cfg\n"
                      f"cluster_secret={SECRET}\nworkdir=var\n")
    return c


def change_tree(c: Cluster, n: int) -> None:
    """Add one service (the n-th added) to the tree: a new configuration hash."""
    path = c.root / "objects" / "services" / "added-by-reload.cfg"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(f"define service {{\n  host_name {config_load._host_name(0)}\n"
                 f"  service_description added {n}\n  use generic-service\n"
                 "  check_command check_tcp!22!5\n}\n")


def settled(c: Cluster, config_hash: str | None = None) -> str | None:
    """The master's config hash once it leads and every satellite holds that hash and its
    epoch (`config_hash`: once that one is the master's)."""
    master = ping(c, MASTER)
    if not master or not master["leading"] or (config_hash
                                                and master["config_hash"] != config_hash):
        return None
    for name in SATELLITES:
        reply = ping(c, name)
        if (not reply or reply["config_hash"] != master["config_hash"]
                or reply["epoch"] != master["epoch"]):
            return None
    return str(master["config_hash"])


def start_big(c: Cluster, timeout: float) -> None:
    """Start the satellites and the master, wait until it leads and has dispatched, then the
    spare, and wait until it has the master's heartbeats: the spare is not started first, so
    that it does not watch the master's first dispatch of the whole tree."""
    try:
        for name in (*SATELLITES, MASTER):
            c.start(name)
        c.wait(lambda: settled(c), timeout, "the master to lead and dispatch to the satellites")
        c.start(SPARE)
        c.wait(lambda: _heard_master(c), 30, "the spare to hear the master")
    except BaseException:
        c.stop_all()
        raise


def _heard_master(c: Cluster) -> bool:
    status = c.get(SPARE, "/status")
    return any(p["name"] == MASTER and p["last_contact"] for p in status["peers"])


@dataclass
class Watch:
    """What the spare saw of the master, and the master's /ping answers, while it ran."""

    #: The spare's receipt times (wall clock) of the master's heartbeats, in order.
    heartbeats: list[float] = field(default_factory=list)
    #: When each /ping of the master was answered (monotonic).
    pings: list[float] = field(default_factory=list)
    spare_led: bool = False
    master_epochs: set[int] = field(default_factory=set)
    master_hashes: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    @staticmethod
    def longest(times: list[float]) -> float:
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    @property
    def heartbeat_gap(self) -> float:
        """The longest time between two heartbeats the spare received."""
        return self.longest(self.heartbeats)

    @property
    def ping_gap(self) -> float:
        """The longest time between two answered pings of the master."""
        return self.longest(self.pings)


def _watch_master(c: Cluster, w: Watch) -> None:
    while not w.stop.is_set():
        try:
            # A long timeout: a stalled loop shows as one long gap, not as failures.
            status, body = c.request(MASTER, "GET", "/ping", secret=None, timeout=30.0)
        except OSError:
            status, body = 0, None
        if status == 200:
            w.pings.append(time.monotonic())
            w.master_epochs.add(int(body["epoch"]))
            if not w.master_hashes or w.master_hashes[-1] != body["config_hash"]:
                w.master_hashes.append(str(body["config_hash"]))
        w.stop.wait(POLL)


def _watch_spare(c: Cluster, w: Watch) -> None:
    while not w.stop.is_set():
        try:
            status, body = c.request(SPARE, "GET", "/status", secret=None, timeout=30.0)
        except OSError:
            status, body = 0, None
        if status == 200:
            w.spare_led = w.spare_led or bool(body["owns"]["leading"])
            for peer in body["peers"]:
                seen = peer.get("last_contact")
                if peer["name"] == MASTER and seen and (not w.heartbeats
                                                        or seen != w.heartbeats[-1]):
                    w.heartbeats.append(float(seen))
        w.stop.wait(POLL)


class Watching:
    """`with Watching(c) as w:` watches the master and the spare in two threads."""

    def __init__(self, c: Cluster) -> None:
        self.watch = Watch()
        self.threads = [threading.Thread(target=fn, args=(c, self.watch), daemon=True)
                        for fn in (_watch_master, _watch_spare)]

    def __enter__(self) -> Watch:
        for t in self.threads:
            t.start()
        return self.watch

    def __exit__(self, *exc: object) -> None:
        self.watch.stop.set()
        for t in self.threads:
            t.join(timeout=40)

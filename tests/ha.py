"""What the HA tests share: the two-"host" cluster's satellites, who leads, which epoch each
satellite holds, and the epoch changes a daemon logged."""

from __future__ import annotations

import re
from typing import Any

from tests.cluster import Cluster

WINDOW = 3.0  # max_check_attempts (3) × check_interval (1)
SATELLITES = ("scheduler-master", "scheduler-spare", "poller-master", "poller-spare",
              "dataserver-master", "receiver-master", "receiver-spare")


def ping(c: Cluster, name: str) -> dict[str, Any] | None:
    """`name`'s /ping reply, or None when it is not running or does not answer."""
    if name not in c.procs or c.procs[name].poll() is not None:
        return None
    try:
        status, body = c.request(name, "GET", "/ping", timeout=1.0)
    except OSError:
        return None
    return body if status == 200 else None


def leaders(c: Cluster) -> list[str]:
    """The arbiters that answer and say they lead."""
    out = []
    for name in ("arbiter-master", "arbiter-spare"):
        reply = ping(c, name)
        if reply and reply.get("leading"):
            out.append(name)
    return out


def satellite_epochs(c: Cluster, names: tuple[str, ...] = SATELLITES) -> dict[str, int]:
    """The epoch each answering satellite holds."""
    out = {}
    for name in names:
        reply = ping(c, name)
        if reply is not None:
            out[name] = int(reply["epoch"])
    return out


def wait_settled(c: Cluster, arbiter: str, timeout: float = 30) -> int:
    """Wait until `arbiter` alone leads and every running satellite holds its epoch."""
    def settled() -> int | None:
        if leaders(c) != [arbiter]:
            return None
        reply = ping(c, arbiter)
        if reply is None:
            return None
        epoch = int(reply["epoch"])
        running = tuple(n for n in SATELLITES if c.procs[n].poll() is None)
        epochs = satellite_epochs(c, running)
        return epoch if len(epochs) == len(running) and set(epochs.values()) == {epoch} \
            else None
    epoch = c.wait(settled, timeout, f"{arbiter} leading with every satellite at its epoch")
    assert epoch is not None
    return epoch


def epoch_changes(c: Cluster, name: str) -> list[tuple[int, int]]:
    """Every (old, new) epoch change `name` logged, in order."""
    return [(int(a), int(b)) for a, b in re.findall(r"epoch (\d+) -> (\d+)", c.log(name))]

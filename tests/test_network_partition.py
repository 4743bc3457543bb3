"""The master arbiter cut off from its spare while both still reach the satellites: a
one-way partition (tests/netns.py) on the two loopback "hosts" of tests/cluster.py.

The spare, hearing no heartbeat, leads after its window; the master, fenced by the
satellites' higher epoch, stands down and stays passive while any satellite still hears the
spare; it takes the lead back only through the spare once the link heals, or by itself once
the spare has gone silent for the satellites too. Never two arbiters dispatching, no ping-pong.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import netns
from tests.cluster import Cluster, ha_cluster
from tests.ha import SATELLITES, WINDOW, epoch_changes, ping, satellite_epochs, wait_settled


def master_leading(c: Cluster) -> bool:
    reply = ping(c, "arbiter-master")
    return bool(reply and reply["leading"])


@pytest.fixture
def cut_off(tmp_path: Path) -> Iterator[tuple[Cluster, int]]:
    """The cluster settled under the master at epoch E, then the master cut off from the
    spare: yields once the spare leads at E + 1 and the master has stood down."""
    netns.require()
    with netns.isolated_network("cut"):
        c = ha_cluster(tmp_path / "cut")
        c.start_all()
        try:
            epoch = wait_settled(c, "arbiter-master")
            spare = c.daemons["arbiter-spare"]
            netns.cut(spare.address, spare.port)
            assert ping(c, "arbiter-spare") is None, "the cut does not hold"
            c.wait(lambda: set(satellite_epochs(c).values()) == {epoch + 1}, 20,
                   "every satellite following the spare")
            assert f"takes the lead at epoch {epoch + 1}" in c.log("arbiter-spare")
            c.wait(lambda: not master_leading(c), 10, "the master to stand down")
            yield c, epoch
        finally:
            c.stop_all()


def test_a_master_cut_off_from_the_spare_stays_passive_and_takes_back_through_it(
        cut_off: tuple[Cluster, int]) -> None:
    c, epoch = cut_off
    # several of the master's rounds (more than a window): it must not claim anything
    mark = time.time()
    c.wait(lambda: min(d["last_contact"] or 0 for d in c.get(
        "arbiter-master", "/cluster")["daemons"] if d["role"] != "arbiter") > mark + WINDOW + 1,
        20, "the master pinging the satellites for more than a window")
    assert not master_leading(c)
    assert set(satellite_epochs(c).values()) == {epoch + 1}
    master_log = c.log("arbiter-master")
    note = (f"stays passive: scheduler-master follows arbiter arbiter-spare at epoch "
            f"{epoch + 1}; waiting to reach the spare")
    assert master_log.count(note) == 1, master_log[-3000:]
    assert "stands down" not in c.log("arbiter-spare")

    netns.heal()
    final = wait_settled(c, "arbiter-master")
    assert final == epoch + 2
    assert f"stands down: master arbiter-master is back at epoch {final}" in \
        c.log("arbiter-spare")
    for name in SATELLITES:  # one step to the spare, one back to the master: no ping-pong
        assert [(a, b) for a, b in epoch_changes(c, name) if b > epoch] == [
            (epoch, epoch + 1), (epoch + 1, epoch + 2)], name


def test_a_master_cut_off_from_a_dead_spare_leads_once_the_satellites_stop_hearing_it(
        cut_off: tuple[Cluster, int]) -> None:
    c, epoch = cut_off
    c.kill("arbiter-spare", signal.SIGKILL)
    killed = time.monotonic()
    final = wait_settled(c, "arbiter-master", timeout=20)
    took = time.monotonic() - killed
    assert final == epoch + 2
    assert took >= WINDOW - 0.5, f"the master led {took:.1f} s after the spare died"
    assert (f"takes the lead at epoch {final}: no spare reachable and no other arbiter "
            "leads") in c.log("arbiter-master")

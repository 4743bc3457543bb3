"""A dead poller's checks in flight are re-queued as soon as a spare stands in for it, not at
their orphan deadline (timeout + grace): the checks it held run again on the spare at once."""

from __future__ import annotations

import time
from pathlib import Path

from tests.cluster import Cluster

DS = "dataserver-1"
SERVICES = 6


def test_checks_held_by_a_dead_poller_run_on_its_stand_in_at_once(tmp_path: Path) -> None:
    c = Cluster(tmp_path / "standin")
    for role in ("arbiter", "scheduler", "dataserver", "receiver"):
        c.add(role, f"{role}-1")
    c.add("poller", "poller-master", address="127.0.0.2")
    c.add("poller", "poller-spare", address="127.0.0.3", spare=True)
    # Every check takes 3 s and may take 60: a poller killed now holds most of them, and
    # their orphan deadline (65 s) is far beyond the stand-in's arrival (about 4 s).
    objects = ["""
define command {
  command_name slow
  command_line $USER2$/slow.sh
  timeout 60
}
define host {
  host_name h
  address 127.0.0.1
  check_command slow
  check_interval 60
}
"""]
    for n in range(SERVICES):
        objects.append(f"define service {{\n  host_name h\n  service_description s{n}\n"
                       "  check_command slow\n  check_interval 1\n  retry_interval 1\n}\n")
    c.objects = "".join(objects)
    c.write()
    c.plugin("slow.sh", "sleep 3\necho \"OK: $(date +%s%N)\"\n")  # each result new
    c.start_all()
    try:
        c.wait(lambda: all((r := c.service(DS, "h", f"s{n}")) and r["state"] == 0
                           for n in range(SERVICES)), 40, "every check ran once")
        c.wait(lambda: c.get("scheduler-1", "/status")["owns"]["in_flight"] >= SERVICES // 2,
               20, "the poller holding checks")
        c.kill("poller-master")
        killed = time.time()

        def run_on_spare() -> bool:
            for n in range(SERVICES):
                history = c.history(DS, "h", f"s{n}")
                if not any(h["type"] == "result" and h.get("poller") == "poller-spare"
                           and h["time"] > killed for h in history):
                    return False
            return True

        # Detection (3 pings 1 s apart) + dispatch + one 3 s run: well under the 65 s the
        # orphan deadline would take.
        c.wait(run_on_spare, 25, "every check run again on the stand-in")
        assert "re-queued" in c.log("scheduler-1")
    finally:
        c.stop_all()

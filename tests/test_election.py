"""Master-token election (Pandora FMS) with real processes: pollers with tokens 1, 5 and 7
take over the checks of downed pollers and give them back; data-servers run master-only jobs
once. server_threshold 1: a server is down after 2 s of silence."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import Cluster

THRESHOLD = 1.0
DOWN_AFTER = 2 * THRESHOLD
DS = "dataserver-a"


def election_cluster(root: Path, tokens: dict[str, int], takeover: str = "master",
                     tags: dict[str, str] | None = None, checks: int = 3,
                     special: int = 1) -> Cluster:
    c = Cluster(root)
    c.add("arbiter", "arbiter-1")
    c.add("scheduler", "scheduler-1")
    jobs = "  modules store\n"
    c.add("dataserver", "dataserver-a", extra=f"  master 2\n  server_threshold 1\n{jobs}")
    c.add("dataserver", "dataserver-b", extra=f"  master 1\n  server_threshold 1\n{jobs}")
    for name, token in tokens.items():
        poller_tags = (tags or {}).get(name, "None")
        c.add("poller", name, extra=f"  master {token}\n  server_threshold 1\n"
              f"  takeover {takeover}\n  poller_tags {poller_tags}\n")
    objects = ["define module {\n  module_name store\n  module_type sqlite\n"
               "  jobs_interval 1\n  stale_after 600\n}\n",
               "define command {\n  command_name ok\n"
               "  command_line $USER1$/check_dummy 0 fine\n}\n",
               "define command {\n  command_name stamp\n"
               "  command_line /bin/sh -c 'echo OK $(date +%s%N)'\n}\n",
               "define host {\n  host_name h\n  address 127.0.0.1\n}\n"]
    for name in tokens:
        for n in range(checks):
            objects.append(f"define service {{\n  host_name h\n  service_description "
                           f"{name}-{n}\n  check_command ok\n  poller {name}\n"
                           "  check_interval 1\n  retry_interval 1\n}\n")
    for name, poller_tags in (tags or {}).items():
        if "special" in poller_tags:
            for n in range(special):
                suffix = f"-{n}" if n else ""
                objects.append(f"define service {{\n  host_name h\n  service_description "
                               f"{name}-special{suffix}\n  check_command stamp\n"
                               f"  poller {name}\n  poller_tag special\n"
                               "  check_interval 1\n}\n")
    c.objects = "".join(objects)
    c.write()
    return c


def handed(c: Cluster, poller: str, owner: str) -> float:
    """How many checks owned by `owner` the scheduler gave to `poller`."""
    text = c.request("scheduler-1", "GET", "/metrics")[1]
    key = f'shinha_checks_handed_total{{owner="{owner}",poller="{poller}"}}'
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(key))


def election(c: Cluster, name: str) -> dict[str, object]:
    return dict(c.get(name, "/status")["owns"]["election"])


def masters(c: Cluster, names: list[str]) -> set[str]:
    return {str(election(c, n)["master"]) for n in names}


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[Cluster]:
    c = election_cluster(tmp_path / "trio", {"poller-1": 1, "poller-5": 5, "poller-7": 7},
                         tags={"poller-1": "None,special"})
    c.start_all()
    c.wait(lambda: masters(c, ["poller-1", "poller-5", "poller-7"]) == {"poller-7"}, 20,
           "every poller naming poller-7 master")
    c.wait(lambda: "poller-1-special" in _results_by(c, "poller-1"), 20,
           "poller-1 running its checks, the special-tagged one included")
    yield c
    c.stop_all()


def test_master_takes_over_a_downed_poller_and_gives_back(trio: Cluster) -> None:
    c = trio
    c.kill("poller-1", signal.SIGKILL)
    killed = time.monotonic()
    c.wait(lambda: handed(c, "poller-7", "poller-1") > 0, 15,
           "poller-7 to take poller-1's checks")
    took = time.monotonic() - killed
    # the issue's bound: 2 × server_threshold + 1 s (bench/takeover.py measures ~2.0 s)
    assert took <= DOWN_AFTER + 1.0, f"takeover took {took:.2f} s"
    assert handed(c, "poller-5", "poller-1") == 0  # takeover master: only the master covers
    # the special-tagged check of poller-1 (a new output every run, so every run is stored):
    # poller-7 lacks the tag, so it is never given it
    assert "poller-1-special" not in _results_by(c, "poller-7")

    # kill the master too: poller-5 becomes master (a new term) and covers both
    term = int(election(c, "poller-5")["term"])  # type: ignore[call-overload]
    c.kill("poller-7", signal.SIGKILL)
    c.wait(lambda: election(c, "poller-5")["master"] == "poller-5", 15, "poller-5 master")
    assert int(election(c, "poller-5")["term"]) > term  # type: ignore[call-overload]
    c.wait(lambda: handed(c, "poller-5", "poller-7") > 0 and
           handed(c, "poller-5", "poller-1") > 0, 15, "poller-5 covering poller-1 and -7")

    # poller-1 comes back: its checks go back to it, nobody else runs them any more
    c.start("poller-1")
    c.wait(lambda: election(c, "poller-5")["down"] == ["poller-7"], 15,
           "poller-5 seeing poller-1 back")
    settle = time.monotonic() + DOWN_AFTER
    c.wait(lambda: time.monotonic() > settle and handed(c, "poller-1", "poller-1") > 0, 15,
           "poller-1 running its own checks again")
    before = handed(c, "poller-5", "poller-1")
    mark = handed(c, "poller-1", "poller-1")
    c.wait(lambda: handed(c, "poller-1", "poller-1") >= mark + 6, 15,
           "two more rounds of poller-1's checks")
    assert handed(c, "poller-5", "poller-1") == before, "poller-5 kept running poller-1's checks"
    assert handed(c, "poller-5", "poller-7") > 0


def test_a_short_stop_causes_no_takeover_and_no_double_run(trio: Cluster) -> None:
    c = trio
    c.kill("poller-1", signal.SIGSTOP)
    time.sleep(THRESHOLD)  # the fault itself: shorter than 2 × server_threshold
    c.kill("poller-1", signal.SIGCONT)
    mark = handed(c, "poller-1", "poller-1")
    c.wait(lambda: handed(c, "poller-1", "poller-1") >= mark + 9, 20,
           "three more rounds of poller-1's checks")
    assert handed(c, "poller-7", "poller-1") == 0
    assert handed(c, "poller-5", "poller-1") == 0
    assert "poller-1 is down" not in c.log("poller-7")


def test_a_tie_of_tokens_names_the_same_master_everywhere(tmp_path: Path) -> None:
    c = election_cluster(tmp_path / "tie", {"poller-c": 4, "poller-a": 4, "poller-b": 4})
    c.start_all()
    try:
        names = ["poller-a", "poller-b", "poller-c"]
        # poller-a (the lowest name) when all three start within each other's grace; else
        # whichever one was elected first keeps the role as the incumbent. Either way, one.
        agreed = c.wait(lambda: len(m := masters(c, names)) == 1 and "" not in m and m, 45,
                        "one master everywhere")
        master = next(iter(agreed))
        c.wait(lambda: len({int(election(c, n)["term"])  # type: ignore[call-overload]
                            for n in names}) == 1, 10, "one term everywhere")
        view = c.get("arbiter-1", "/cluster")
        shown = [d["election"] for d in view["daemons"] if d["role"] == "poller"]
        assert shown and all(s.startswith(f"master {master}") for s in shown), shown
    finally:
        c.stop_all()


def test_spread_takeover_shares_a_downed_pollers_checks(tmp_path: Path) -> None:
    # 16 checks of poller-1: both survivors get a share unless hashing is broken (2^-15)
    c = election_cluster(tmp_path / "spread", {"poller-1": 1, "poller-5": 5, "poller-7": 7},
                         takeover="spread", checks=16)
    c.start_all()
    try:
        c.wait(lambda: handed(c, "poller-1", "poller-1") > 0, 20, "poller-1 running")
        c.kill("poller-1", signal.SIGKILL)
        c.wait(lambda: handed(c, "poller-5", "poller-1") > 0 and
               handed(c, "poller-7", "poller-1") > 0, 20, "both alive pollers covering")
    finally:
        c.stop_all()


def test_spread_takeover_hashes_a_tagged_check_among_the_pollers_with_its_tag(
        tmp_path: Path) -> None:
    """poller-1's 12 checks tagged `special` go to poller-5, the only survivor with that tag;
    hashed among all survivors, about half would land on poller-7 and never run. Its 12
    untagged checks are still shared by both."""
    c = election_cluster(tmp_path / "spread-tags", {"poller-1": 1, "poller-5": 5, "poller-7": 7},
                         takeover="spread", checks=12, special=12,
                         tags={"poller-1": "None,special", "poller-5": "None,special"})
    c.start_all()
    special = {f"poller-1-special{'-' + str(n) if n else ''}" for n in range(12)}
    try:
        c.wait(lambda: special <= _results_by(c, "poller-1"), 30,
               "poller-1 running its 12 special checks")
        c.kill("poller-1", signal.SIGKILL)
        c.wait(lambda: special <= _results_by(c, "poller-5"), 30,
               "poller-5 running every special check of poller-1")
        assert not special & _results_by(c, "poller-7")
        # The 12 untagged ones are still shared by both (all on one: a 2^-12 chance).
        c.wait(lambda: handed(c, "poller-7", "poller-1") > 0, 20, "poller-7 sharing")
    finally:
        c.stop_all()


def test_master_only_jobs_run_once_with_two_dataservers(trio: Cluster) -> None:
    c = trio

    def runs(name: str) -> int:
        return int(c.get(name, "/status")["owns"]["master_job_runs"])

    c.wait(lambda: runs("dataserver-a") >= 3, 20, "the master data-server running its jobs")
    assert runs("dataserver-b") == 0
    assert election(c, "dataserver-b")["master"] == "dataserver-a"
    c.kill("dataserver-a", signal.SIGKILL)
    c.wait(lambda: runs("dataserver-b") >= 2, 20, "dataserver-b taking the jobs over")


def _results_by(c: Cluster, poller: str) -> set[str]:
    """The services of host h with a stored result row made by `poller`."""
    rows = c.get(DS, "/api/services?host=h&limit=1000")["items"]
    return {row["service"] for row in rows for item in c.history(DS, "h", row["service"])
            if item.get("poller") == poller}

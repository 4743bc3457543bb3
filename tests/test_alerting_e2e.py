"""Alerting end to end with real daemon processes (tests/cluster.py): checks run by a plugin
that reads the exit code each host or service should return from a file (the test flips
states by writing files), notifications run by the poller as a real command that appends one
line per run to a file: `TYPE host[/service] NUMBER NOTIFICATIONID`. Every scenario asserts
the exact lines of that file.

- Problem: no PROBLEM before first_notification_delay, exactly one after it; re-notification
  at notification_interval with the number going up; one RECOVERY; the notification events in
  the data-server's history API with the contact, the command and its exit code.
- Acknowledgement through a receiver: one ACKNOWLEDGEMENT line, no re-notification after it.
- Downtime through a receiver: DOWNTIMESTART, no PROBLEM while it runs (the service goes
  HARD CRITICAL inside it), then DOWNTIMEEND and the PROBLEM of the problem still there.
- Parents: a router goes DOWN, then its child hosts (parents router) and their services
  fail: the router is notified, its children are UNREACHABLE (host state 2 in the
  data-server) and nothing is notified about them nor their services; the router's
  recovery is, and only it.
- Flapping: a service alternating between HARD CRITICAL and OK: PROBLEM/RECOVERY until it
  flaps, then FLAPPINGSTART, no PROBLEM while it flaps although it goes HARD CRITICAL again,
  FLAPPINGSTOP once it is stable.
- kill -9 (scheduler-2 and poller-2 are spares): the scheduler killed right after a
  notification ran, in a problem re-notifying every 2 s, then the poller killed while it runs
  one: numbers go 1, 2, 3… with none missing, one id per number, each id on at most two lines
  (one resend with the same id across a crash), at most one extra line per crash, one
  RECOVERY, and one history event per notification id. The scheduler killed while the first
  notification runs: it runs once or twice, same id. The scheduler killed once the HARD
  problem and its notification are recorded but before any poller could take it: the spare
  scheduler hands it out again and it runs exactly once.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.cluster import Cluster

DS = "dataserver-1"
RECEIVER = "receiver-1"

COMMON = """
define command {
  command_name check-host
  command_line $USER2$/check.sh $HOSTNAME$
}
define command {
  command_name check-svc
  command_line $USER2$/check.sh $HOSTNAME$-$SERVICEDESC$
}
define command {
  command_name notify-svc
  command_line $USER2$/notify.sh $NOTIFICATIONTYPE$ $HOSTNAME$/$SERVICEDESC$ \
$NOTIFICATIONNUMBER$ $SERVICENOTIFICATIONID$
}
define command {
  command_name notify-host
  command_line $USER2$/notify.sh $NOTIFICATIONTYPE$ $HOSTNAME$ $NOTIFICATIONNUMBER$ \
$HOSTNOTIFICATIONID$
}
define contact {
  contact_name alice
  email alice@example.com
  service_notification_commands notify-svc
  host_notification_commands notify-host
}
define host {
  name base
  register 0
  address 127.0.0.1
  check_command check-host
  check_interval 1
  retry_interval 1
  max_check_attempts 2
  contacts alice
}
define service {
  name fast
  register 0
  check_command check-svc
  check_interval 1
  retry_interval 1
  max_check_attempts 2
  notification_interval 4
  contacts alice
}
"""


def host(name: str, extra: str = "") -> str:
    return f"define host {{\n  use base\n  host_name {name}\n{extra}}}\n"


def service(host_name: str, desc: str, extra: str = "") -> str:
    return (f"define service {{\n  use fast\n  host_name {host_name}\n"
            f"  service_description {desc}\n{extra}}}\n")


def setup(c: Cluster, objects: str) -> None:
    """Write the tree, the check plugin (exit code from state/<name>, or the next line of
    seq/<name>, the last one kept) and the notification command."""
    c.objects = COMMON + objects
    c.write()
    for d in ("state", "seq"):
        (c.root / d).mkdir(exist_ok=True)
    c.plugin("check.sh", f"""D={c.root}
S="$D/seq/$1"
if [ -s "$S" ]; then
  code=$(head -n 1 "$S")
  if [ "$(wc -l < "$S")" -gt 1 ]; then tail -n +2 "$S" > "$S.tmp" && mv "$S.tmp" "$S"; fi
else
  code=$(cat "$D/state/$1" 2>/dev/null || echo 0)
fi
echo "$(date +%s.%N) $1 $code" >> "$D/checks.log"
echo "code $code"
exit "$code"
""")
    # With slow-notify present, a notification says it started (its id in started.log),
    # then takes 2 s before its line is written. ran.log: when each line was written.
    c.plugin("notify.sh", f'if [ -e {c.root}/slow-notify ]; then\n'
             f'  echo "$4" >> {c.root}/started.log\n  sleep 2\nfi\n'
             f'echo "$1 $2 $3 $4" >> {c.root}/notes.log\n'
             f'echo "$(date +%s.%N) $4" >> {c.root}/ran.log\n')


def start(c: Cluster) -> None:
    """Start every daemon, the arbiter last; the others at once (a start is mostly waiting
    for imports on a loaded machine)."""
    others = [n for n, d in c.daemons.items() if d.role != "arbiter"]
    try:
        with ThreadPoolExecutor(len(others)) as pool:
            list(pool.map(c.start, others))
        for name, d in c.daemons.items():
            if d.role == "arbiter":
                c.start(name)
    except BaseException:
        c.stop_all()
        raise


def set_state(c: Cluster, name: str, code: int) -> None:
    """What check.sh returns for `name` (a host, or host-service) from now on."""
    path = c.root / "state" / name
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{code}\n")
    os.replace(tmp, path)


def set_sequence(c: Cluster, name: str, codes: list[int]) -> None:
    """check.sh returns `codes` one run each, then the last one for good."""
    path = c.root / "seq" / name
    tmp = c.root / "seq" / f".{name}.new"
    tmp.write_text("".join(f"{code}\n" for code in codes))
    os.replace(tmp, path)


def notes(c: Cluster, *targets: str) -> list[list[str]]:
    """The notification lines about `targets` (host or host/service), split in fields."""
    path = c.root / "notes.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.split(" ") for line in lines if line.split(" ")[1] in targets]


def ran_at(c: Cluster, notification_id: str) -> float:
    """When the first line of notification `notification_id` was written."""
    for line in (c.root / "ran.log").read_text().splitlines():
        when, nid = line.split()
        if nid == notification_id:
            return float(when)
    raise KeyError(notification_id)


def kinds(lines: list[list[str]]) -> list[tuple[str, str, str]]:
    """The lines without their notification ids."""
    return [(t, target, number) for t, target, number, _ in lines]


def svc_row(c: Cluster, host_name: str, desc: str) -> dict[str, object]:
    row = c.service(DS, host_name, desc)
    assert row is not None, (host_name, desc)
    return row


def host_row(c: Cluster, name: str) -> dict[str, object] | None:
    for row in c.get(DS, "/api/hosts?limit=1000")["items"]:
        if row["host"] == name:
            return dict(row)
    return None


def is_state(c: Cluster, host_name: str, desc: str, state: int, state_type: str) -> bool:
    row = c.service(DS, host_name, desc)
    return bool(row and row["state"] == state and row["state_type"] == state_type)


def is_hard(c: Cluster, host_name: str, desc: str, state: int) -> bool:
    return is_state(c, host_name, desc, state, "HARD")


def runs(c: Cluster, name: str, after: float = 0.0) -> list[float]:
    """When check.sh ran for `name` (a host, or host-service), after wall time `after`."""
    path = c.root / "checks.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [t for t, who in ((float(line.split()[0]), line.split()[1]) for line in lines)
            if who == name and t > after]


def wait_checked(c: Cluster, host_name: str, desc: str, count: int, after: float) -> None:
    """Wait until `count` checks of host_name/desc that ran after `after` are stored."""
    name = f"{host_name}-{desc}"
    ran = c.wait(lambda: len(r := runs(c, name, after)) >= count and r, 20,
                 f"{count} checks of {name}")
    c.wait(lambda: float(svc_row(c, host_name, desc)["last_check"]) >= ran[count - 1],  # type: ignore[arg-type]
           10, f"the checks of {name} stored")


def command(c: Cluster, line: str) -> None:
    status, reply = c.request(RECEIVER, "POST", "/api/commands",
                              {"commands": [f"[{int(time.time())}] {line}"]})
    assert status == 202, (status, reply)


# --- one cluster for the scenarios that kill nothing ----------------------------------------

OBJECTS = "".join([
    host("h1"), service("h1", "delayed", "  first_notification_delay 6\n"),
    host("h2"), service("h2", "acked"), service("h2", "down"),
    host("router"), host("c1", "  parents router\n"), host("c2", "  parents router\n"),
    service("c1", "app"), service("c2", "app"),
    host("h4"), service("h4", "flappy"),
])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("alerting"))
    for role in ("arbiter", "scheduler", "poller", "dataserver", "receiver"):
        c.add(role, f"{role}-1")
    setup(c, OBJECTS)
    start(c)
    try:
        c.wait(lambda: all(is_hard(c, h, s, 0) for h, s in (
            ("h1", "delayed"), ("h2", "acked"), ("h2", "down"), ("c1", "app"), ("c2", "app"),
            ("h4", "flappy"))), 40, "every service checked OK")
        yield c
    finally:
        c.stop_all()


def test_problem_notifies_after_the_first_delay_renotifies_and_recovers(
        cluster: Cluster) -> None:
    c = cluster
    target = "h1/delayed"
    set_state(c, "h1-delayed", 2)
    flipped = time.time()
    c.wait(lambda: is_hard(c, "h1", "delayed", 2), 20, "h1/delayed HARD CRITICAL")
    # The delay (6 s) counts from the last OK result, which ran before the flip.
    last_ok = max(t for t in runs(c, "h1-delayed") if t < flipped)  # logged after its read
    assert time.time() < last_ok + 6, "HARD came too late to tell the delay apart"
    assert notes(c, target) == [], "notified before first_notification_delay"
    first = c.wait(lambda: notes(c, target), 15, "PROBLEM #1")
    assert kinds(first) == [("PROBLEM", target, "1")]
    first_at = ran_at(c, first[0][3])
    assert first_at >= last_ok + 6, first_at - last_ok
    # #2 at notification_interval (4 s), after checks in between that did not notify.
    lines = c.wait(lambda: len(n := notes(c, target)) >= 2 and n, 15, "PROBLEM #2")
    assert kinds(lines) == [("PROBLEM", target, "1"), ("PROBLEM", target, "2")]
    second_at = ran_at(c, lines[1][3])
    assert second_at - first_at >= 3.0, second_at - first_at
    assert lines[0][3] != lines[1][3], "two notifications, one id"
    set_state(c, "h1-delayed", 0)
    lines = c.wait(lambda: len(n := notes(c, target)) >= 3 and n, 15, "RECOVERY")
    assert kinds(lines) == [("PROBLEM", target, "1"), ("PROBLEM", target, "2"),
                            ("RECOVERY", target, "3")]
    # Once recovered: no more lines (two more checks, OK).
    wait_checked(c, "h1", "delayed", 2, time.time())
    assert len(notes(c, target)) == 3

    def events() -> list[dict[str, object]]:
        return [h for h in c.history(DS, "h1", "delayed")
                if h["type"] == "event" and h["kind"] == "notification"]

    found = c.wait(lambda: len(e := events()) == 3 and e, 10, "3 notification events")
    found.sort(key=lambda e: float(e["time"]))  # type: ignore[arg-type]
    assert [(e["notification_type"], e["contact"], e["command"], e["return_code"])
            for e in found] == [("PROBLEM", "alice", "notify-svc", 0)] * 2 + [
                ("RECOVERY", "alice", "notify-svc", 0)]
    assert all(e["action_id"] for e in found)
    assert len({e["action_id"] for e in found}) == 3
    # each event names the notification (number and id) its line carries
    for event, line in zip(found, lines, strict=True):
        assert event["detail"] == f"#{line[2]} {line[3]}", (event, line)


def test_acknowledgement_notifies_once_and_silences_the_problem(cluster: Cluster) -> None:
    c = cluster
    target = "h2/acked"
    set_state(c, "h2-acked", 2)
    lines = c.wait(lambda: notes(c, target), 20, "PROBLEM #1")
    first_at = time.time()
    assert kinds(lines) == [("PROBLEM", target, "1")]
    command(c, "ACKNOWLEDGE_SVC_PROBLEM;h2;acked;2;1;1;alice;on it")
    lines = c.wait(lambda: len(n := notes(c, target)) >= 2 and n, 20, "ACKNOWLEDGEMENT")
    assert kinds(lines) == [("PROBLEM", target, "1"), ("ACKNOWLEDGEMENT", target, "1")]
    assert lines[1][3] != lines[0][3]
    assert svc_row(c, "h2", "acked")["acknowledged"]
    # #2 was due 4 s after #1: two checks later than that are stored, and nothing came.
    wait_checked(c, "h2", "acked", 2, first_at + 4)
    assert kinds(notes(c, target)) == [("PROBLEM", target, "1"),
                                       ("ACKNOWLEDGEMENT", target, "1")]
    set_state(c, "h2-acked", 0)
    lines = c.wait(lambda: len(n := notes(c, target)) >= 3 and n, 20, "RECOVERY")
    assert kinds(lines) == [("PROBLEM", target, "1"), ("ACKNOWLEDGEMENT", target, "1"),
                            ("RECOVERY", target, "2")]


def test_downtime_silences_the_problem_and_notifies_its_start_and_end(
        cluster: Cluster) -> None:
    c = cluster
    target = "h2/down"
    now = int(time.time())
    command(c, f"SCHEDULE_SVC_DOWNTIME;h2;down;{now};{now + 10};1;0;10;alice;maintenance")
    lines = c.wait(lambda: notes(c, target), 20, "DOWNTIMESTART")
    assert kinds(lines) == [("DOWNTIMESTART", target, "0")]
    set_state(c, "h2-down", 2)
    c.wait(lambda: is_hard(c, "h2", "down", 2), 20, "h2/down HARD CRITICAL")
    assert time.time() < now + 9, "HARD came too late to be inside the downtime"
    # HARD inside the downtime: no PROBLEM, checks after it included.
    wait_checked(c, "h2", "down", 1, time.time())
    assert kinds(notes(c, target)) == [("DOWNTIMESTART", target, "0")]
    # The downtime ends with the problem still there: DOWNTIMEEND, then its PROBLEM.
    lines = c.wait(lambda: len(n := notes(c, target)) >= 3 and n, 20,
                   "DOWNTIMEEND and PROBLEM")
    # Both decided on the same result when the check comes after the end, and run at once:
    # in either order then.
    assert kinds(lines)[0] == ("DOWNTIMESTART", target, "0")
    assert sorted(kinds(lines)[1:]) == [("DOWNTIMEEND", target, "0"),
                                        ("PROBLEM", target, "1")]
    set_state(c, "h2-down", 0)
    lines = c.wait(lambda: len(n := notes(c, target)) >= 4 and n, 20, "RECOVERY")
    assert kinds(lines)[3:] == [("RECOVERY", target, "2")]


def test_children_behind_a_down_router_are_unreachable_and_not_notified(
        cluster: Cluster) -> None:
    c = cluster
    targets = ("router", "c1", "c2", "c1/app", "c2/app")

    def host_is(name: str, state: int, state_type: str = "HARD") -> bool:
        row = host_row(c, name)
        return bool(row and row["state"] == state and row["state_type"] == state_type)

    # As a router failure looks: its own check fails first; then its children's, and their
    # services' (a service HARD before its host's first failed check would be notified: the
    # host's state is the cached one, as in Nagios).
    set_state(c, "router", 2)
    c.wait(lambda: host_is("router", 1, "SOFT") or host_is("router", 1), 20, "router DOWN")
    for name in ("c1", "c2"):
        set_state(c, name, 2)
    c.wait(lambda: host_is("c1", 2) and host_is("c2", 2), 20, "c1 and c2 HARD UNREACHABLE")
    assert host_is("router", 1)
    for name in ("c1-app", "c2-app"):
        set_state(c, name, 2)
    c.wait(lambda: is_hard(c, "c1", "app", 2) and is_hard(c, "c2", "app", 2), 20,
           "the children's services HARD CRITICAL")
    lines = c.wait(lambda: notes(c, *targets), 20, "the router's PROBLEM")
    # Nothing more: each child and service checked twice more, still UNREACHABLE.
    wait_checked(c, "c1", "app", 2, time.time())
    wait_checked(c, "c2", "app", 2, time.time())
    assert host_is("c1", 2) and host_is("c2", 2)
    lines = notes(c, *targets)
    assert kinds(lines) == [("PROBLEM", "router", "1")], lines
    for name in ("router", "c1", "c2", "c1-app", "c2-app"):
        set_state(c, name, 0)
    lines = c.wait(lambda: len(n := notes(c, *targets)) >= 2 and n, 20, "the router's RECOVERY")
    c.wait(lambda: all(host_is(h, 0) for h in ("router", "c1", "c2")), 20, "all UP")
    c.wait(lambda: is_hard(c, "c1", "app", 0) and is_hard(c, "c2", "app", 0), 20,
           "the children's services OK")
    wait_checked(c, "c1", "app", 1, time.time())
    assert kinds(notes(c, *targets)) == [("PROBLEM", "router", "1"),
                                         ("RECOVERY", "router", "2")]


def test_flapping_notifies_start_and_stop_and_silences_problems(cluster: Cluster) -> None:
    c = cluster
    target = "h4/flappy"
    # CRITICAL twice (HARD), OK twice: a HARD problem and a recovery every 4 checks. With the
    # default thresholds (20 %/5 %) it starts flapping at the 3rd recovery; the 4th HARD
    # problem comes while it flaps; then OK for good until it stops.
    set_sequence(c, "h4-flappy", [2, 2, 0, 0] * 3 + [0])
    lines = c.wait(lambda: [n for n in notes(c, target) if n[0] == "FLAPPINGSTART"]
                   and notes(c, target), 30, "FLAPPINGSTART")
    assert kinds(lines) == [("PROBLEM", target, "1"), ("RECOVERY", target, "2"),
                            ("PROBLEM", target, "1"), ("FLAPPINGSTART", target, "1")]
    lines = c.wait(lambda: [n for n in notes(c, target) if n[0] == "FLAPPINGSTOP"]
                   and notes(c, target), 40, "FLAPPINGSTOP")
    assert kinds(lines) == [("PROBLEM", target, "1"), ("RECOVERY", target, "2"),
                            ("PROBLEM", target, "1"), ("FLAPPINGSTART", target, "1"),
                            ("FLAPPINGSTOP", target, "0")]
    states = [h for h in c.history(DS, "h4", "flappy") if h["type"] == "event"
              and h["kind"] == "state" and h["state"] == 2 and h["state_type"] == "HARD"]
    assert len(states) == 3, states  # the one while flapping was HARD and not notified


# --- crashes: a spare scheduler and a spare poller --------------------------------------------

CRASH_OBJECTS = "".join([
    host("h5"),
    service("h5", "long", "  notification_interval 2\n"),
    service("h5", "once", "  notification_interval 0\n"),
    service("h5", "passive", "  notification_interval 0\n  active_checks_enabled 0\n"),
])


@pytest.fixture
def spares(tmp_path: Path) -> Iterator[Cluster]:
    """scheduler-1 and poller-1 on 127.0.0.2, their spares on 127.0.0.3."""
    c = Cluster(tmp_path / "spares")
    for role in ("arbiter", "dataserver", "receiver"):
        c.add(role, f"{role}-1")
    for role in ("scheduler", "poller"):
        c.add(role, f"{role}-1", address="127.0.0.2")
        c.add(role, f"{role}-2", address="127.0.0.3", spare=True)
    setup(c, CRASH_OBJECTS)
    start(c)
    try:
        c.wait(lambda: is_hard(c, "h5", "long", 0) and is_hard(c, "h5", "once", 0), 40,
               "h5's services checked OK")
        yield c
    finally:
        c.stop_all()


def wait_spare_scheduler(c: Cluster) -> None:
    def owns() -> bool:
        o = c.get("scheduler-2", "/status")["owns"]
        return bool(o["part"] == "scheduler-1" and o["states_loaded"])

    c.wait(owns, 30, "scheduler-2 to own scheduler-1's part")


def started(c: Cluster) -> list[str]:
    """The ids of the notifications started while slow-notify was there."""
    path = c.root / "started.log"
    return path.read_text().split() if path.exists() else []


RESENT = "1 notifications and event handlers recorded but not done are handed out again"


def problem_numbers(lines: list[list[str]]) -> list[int]:
    return [int(n[2]) for n in lines if n[0] == "PROBLEM"]


def assert_one_sequence(lines: list[list[str]], crashes: int) -> int:
    """PROBLEM #1, #2, … #n with none missing, then one RECOVERY #n+1; each number under one
    notification id, each id on at most two lines; at most `crashes` lines more than
    notifications. Returns n."""
    numbers = problem_numbers(lines)
    last = max(numbers)
    assert sorted(set(numbers)) == list(range(1, last + 1)), lines
    ids_of: dict[str, set[str]] = {}
    for t, _, number, nid in lines:
        ids_of.setdefault(f"{t} {number}", set()).add(nid)
    assert all(len(ids) == 1 for ids in ids_of.values()), ids_of
    per_id = Counter(n[3] for n in lines)
    assert max(per_id.values()) <= 2, per_id
    recoveries = [n for n in lines if n[0] == "RECOVERY"]
    assert {n[2] for n in recoveries} == {str(last + 1)}, lines
    assert len(lines) <= last + 1 + crashes, lines
    return last


def test_renotifications_go_on_across_killed_scheduler_and_poller(spares: Cluster) -> None:
    c = spares
    target = "h5/long"
    set_state(c, "h5-long", 2)

    def beyond(count: int) -> list[list[str]] | None:
        lines = notes(c, target)
        return lines if problem_numbers(lines) and max(problem_numbers(lines)) >= count \
            else None

    c.wait(lambda: beyond(2), 20, "PROBLEM #2")
    c.kill("scheduler-1", signal.SIGKILL)
    wait_spare_scheduler(c)
    seen = max(problem_numbers(notes(c, target)))
    c.wait(lambda: beyond(seen + 2), 20, "two more notifications from the spare scheduler")
    # The poller is killed while it runs a notification (its line not written yet).
    (c.root / "slow-notify").touch()
    c.wait(lambda: started(c), 10, "a slow notification to start")
    c.kill("poller-1", signal.SIGKILL)
    (c.root / "slow-notify").unlink()
    seen = max(problem_numbers(notes(c, target)))
    c.wait(lambda: beyond(seen + 2), 30, "two more notifications run by the spare poller")
    set_state(c, "h5-long", 0)
    lines = c.wait(lambda: [n for n in notes(c, target) if n[0] == "RECOVERY"]
                   and notes(c, target), 20, "RECOVERY")
    wait_checked(c, "h5", "long", 2, time.time())
    lines = notes(c, target)
    last = assert_one_sequence(lines, crashes=2)
    assert last >= 6, lines
    # The history holds one notification event per notification id run (a resend of an
    # action already recorded is acknowledged, not recorded twice).
    events = [h for h in c.history(DS, "h5", "long")
              if h["type"] == "event" and h["kind"] == "notification"]
    assert sorted(e["detail"] for e in events) == sorted(
        {f"#{n[2]} {n[3]}" for n in lines}), (events, lines)


def test_scheduler_killed_while_the_first_notification_runs_it_runs_at_most_twice(
        spares: Cluster) -> None:
    c = spares
    target = "h5/once"
    (c.root / "slow-notify").touch()
    set_state(c, "h5-once", 2)
    # The HARD state and its notification are recorded in one write; the notification takes
    # 2 s: kill the scheduler once it started, before its outcome can be recorded.
    c.wait(lambda: started(c), 20, "the first notification to start")
    c.kill("scheduler-1", signal.SIGKILL)
    (c.root / "slow-notify").unlink()
    assert notes(c, target) == []
    wait_spare_scheduler(c)
    c.wait(lambda: RESENT in c.log("scheduler-2"), 10, "the spare to resend it")

    def events() -> list[dict[str, object]]:
        return [h for h in c.history(DS, "h5", "once")
                if h["type"] == "event" and h["kind"] == "notification"]

    found = c.wait(events, 20, "the notification's outcome stored")
    c.wait(lambda: notes(c, target), 10, "the first notification's line")
    wait_checked(c, "h5", "once", 3, time.time())
    lines = notes(c, target)
    # Run by the poller, then again by the spare's resend (same id): once or twice.
    assert {(t, number) for t, _, number, _ in lines} == {("PROBLEM", "1")}, lines
    assert 1 <= len(lines) <= 2 and {n[3] for n in lines} == set(started(c)), lines
    assert [e["detail"] for e in events()] == [f"#1 {lines[0][3]}"], found


def test_scheduler_killed_before_a_poller_could_take_the_first_notification_it_runs_once(
        spares: Cluster) -> None:
    """The HARD problem comes as passive results while poller-1 is dead and its spare
    stopped: the notification is recorded but no poller can run it before the scheduler
    dies. (A poller merely stopped could: the job may be in its socket already.)"""
    c = spares
    target = "h5/passive"
    c.kill("poller-1", signal.SIGKILL)
    c.kill("poller-2", signal.SIGSTOP)
    try:
        for attempt, state_type in ((1, "SOFT"), (2, "HARD")):
            status, reply = c.request(RECEIVER, "POST", "/api/results", {"results": [
                {"host": "h5", "service": "passive", "return_code": 2,
                 "output": f"CRITICAL passive {attempt}"}]})
            assert status == 202, reply
            c.wait(functools.partial(is_state, c, "h5", "passive", 2, state_type), 10,
                   f"h5/passive {state_type} CRITICAL")
        c.kill("scheduler-1", signal.SIGKILL)
    finally:
        c.kill("poller-2", signal.SIGCONT)
    assert notes(c, target) == []
    wait_spare_scheduler(c)
    lines = c.wait(lambda: notes(c, target), 20, "the first notification")
    assert RESENT in c.log("scheduler-2")
    # Its outcome stored, and two checks (run by poller-2) later still one line.
    c.wait(lambda: [h for h in c.history(DS, "h5", "passive") if h["type"] == "event"
                    and h["kind"] == "notification"], 10, "the notification's outcome stored")
    wait_checked(c, "h5", "once", 2, time.time())
    lines = notes(c, target)
    assert kinds(lines) == [("PROBLEM", target, "1")], lines
    events = [h for h in c.history(DS, "h5", "passive")
              if h["type"] == "event" and h["kind"] == "notification"]
    assert [e["detail"] for e in events] == [f"#1 {lines[0][3]}"], events

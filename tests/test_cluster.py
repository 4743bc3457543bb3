"""The single-host cluster, as real processes on loopback: the five daemons, the check
pipeline, passive results and commands, timeouts, a killed poller, a restarted data-server,
and requests that must be refused."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import SECRET, Cluster

DS = "dataserver-1"
OBJECTS = """
define command {
  command_name ok
  command_line $USER1$/check_dummy 0 "all good"
}
define command {
  command_name fail
  command_line $USER1$/check_dummy 2 "broken"
}
define command {
  command_name hang
  command_line $USER2$/hang.sh
  timeout 2
}
define command {
  command_name slow
  command_line $USER2$/slow.sh
  timeout 6
}
define host {
  host_name web
  address 127.0.0.1
  check_command ok
  check_interval 1
  retry_interval 1
}
define service {
  name fast
  register 0
  check_interval 1
  retry_interval 1
  max_check_attempts 3
}
define service {
  use fast
  host_name web
  service_description OK
  check_command ok
}
define service {
  use fast
  host_name web
  service_description FAIL
  check_command fail
  check_interval 30
}
define service {
  use fast
  host_name web
  service_description HANG
  check_command hang
  check_interval 60
  max_check_attempts 1
}
define service {
  use fast
  host_name web
  service_description SLOW
  check_command slow
  check_interval 60
}
define service {
  use fast
  host_name web
  service_description PASSIVE
  active_checks_enabled 0
}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    for role in ("arbiter", "scheduler", "poller", "dataserver", "receiver"):
        c.add(role, f"{role}-1")
    c.objects = OBJECTS
    c.write()
    c.plugin("hang.sh", f'echo $$ > {c.root}/hang.pid\nsleep 300 &\nwait\n')
    c.plugin("slow.sh", f'echo $$ >> {c.root}/slow.starts\nsleep 3\necho "OK: slow done"\n')
    c.start_all()
    yield c
    c.stop_all()


def test_all_five_daemons_are_alive_in_the_cluster_view(cluster: Cluster) -> None:
    view = cluster.wait(lambda: (v := cluster.get("arbiter-1", "/cluster"))["leading"] and all(
        d["alive"] and d["epoch"] == v["epoch"] for d in v["daemons"]) and v, 30,
        "every daemon alive at the arbiter's epoch")
    roles = sorted(d["role"] for d in view["daemons"])
    assert roles == ["arbiter", "dataserver", "poller", "receiver", "scheduler"]
    scheduler = next(d for d in view["daemons"] if d["role"] == "scheduler")
    assert "5 services" in scheduler["holds"]


def test_active_check_lands_in_the_dataserver(cluster: Cluster) -> None:
    row = cluster.wait(lambda: (r := cluster.service(DS, "web", "OK")) and r["state"] == 0 and r,
                   30, "web/OK checked and stored")
    assert row["output"] == "OK: all good"
    assert row["state_type"] == "HARD"
    history = cluster.history(DS, "web", "OK")
    assert any(h["type"] == "result" and h["poller"] == "poller-1" for h in history)


def test_failing_plugin_goes_soft_then_hard_at_retry_interval(cluster: Cluster) -> None:
    cluster.wait(lambda: (r := cluster.service(DS, "web", "FAIL")) and r["state_type"] == "HARD",
             30, "web/FAIL HARD")
    events = [h for h in cluster.history(DS, "web", "FAIL")
              if h["type"] == "event" and h["kind"] == "state"]
    soft = [e for e in events if e["state_type"] == "SOFT"]
    hard = [e for e in events if e["state_type"] == "HARD"]
    assert soft and soft[-1]["attempt"] == 1 and soft[-1]["state"] == 2
    assert hard and hard[0]["attempt"] == 3 and hard[0]["state"] == 2
    # attempts 2 and 3 run retry_interval (1 s) apart, not check_interval (30 s) apart
    gap = hard[0]["time"] - soft[-1]["time"]
    assert 1.5 <= gap <= 6.0, gap


def test_passive_result_through_the_receiver_lands(cluster: Cluster) -> None:
    status, reply = cluster.request("receiver-1", "POST", "/api/results", {"results": [
        {"host": "web", "service": "PASSIVE", "return_code": 1,
         "output": "WARNING: disk 91%", "perfdata": "used=91%;90;95;0;100"}]})
    assert status == 202, reply
    rid = reply["ids"][0]
    row = cluster.wait(lambda: (r := cluster.service(DS, "web", "PASSIVE")) and r["state"] == 1
                   and r, 30, "passive result stored")
    assert row["output"] == "WARNING: disk 91%"
    assert row["perfdata"][0]["label"] == "used" and row["perfdata"][0]["value"] == 91
    assert any(h.get("result_id") == rid for h in cluster.history(DS, "web", "PASSIVE"))


def test_acknowledgement_through_the_receiver_shows_in_the_api(cluster: Cluster) -> None:
    cluster.wait(lambda: (r := cluster.service(DS, "web", "FAIL")) and r["state"] == 2, 30,
             "web/FAIL is a problem")
    status, reply = cluster.request("receiver-1", "POST", "/api/commands", {"commands": [
        f"[{int(time.time())}] ACKNOWLEDGE_SVC_PROBLEM;web;FAIL;2;0;1;alice;on it"]})
    assert status == 202, reply
    row = cluster.wait(lambda: (r := cluster.service(DS, "web", "FAIL")) and r["acknowledged"]
                   and r, 30, "acknowledgement stored")
    assert row["ack_author"] == "alice" and row["ack_comment"] == "on it"
    assert row["ack_sticky"] is True
    problems = cluster.get(DS, "/api/services?problems=1")["items"]
    assert any(p["service"] == "FAIL" and p["acknowledged"] for p in problems)


def test_hanging_plugin_is_killed_at_its_timeout(cluster: Cluster) -> None:
    row = cluster.wait(lambda: (r := cluster.service(DS, "web", "HANG")) and r["state"] != 4
                   and r, 40, "web/HANG result")
    assert row["state"] == 2  # service_check_timeout_state c
    assert "Timed Out" in row["output"]
    pid = int((cluster.root / "hang.pid").read_text())
    cluster.wait(lambda: not _alive(pid), 10, "the hung plugin's process to be gone")


def test_killed_poller_leaves_no_check_stuck(cluster: Cluster) -> None:
    starts = cluster.root / "slow.starts"
    cluster.wait(lambda: starts.exists() and starts.read_text().strip(), 40, "SLOW started")
    cluster.kill("poller-1", signal.SIGKILL)  # mid-check: the plugin sleeps 3 s
    cluster.start("poller-1")
    # The orphaned check is re-queued (after its timeout + grace) and runs again.
    row = cluster.wait(lambda: (r := cluster.service(DS, "web", "SLOW")) and r["state"] == 0
                   and r, 60, "web/SLOW result after the poller restart")
    assert row["output"] == "OK: slow done"
    metrics = cluster.request("scheduler-1", "GET", "/metrics")[1]
    orphans = [line for line in metrics.splitlines()
               if line.startswith("shinha_orphans_total")]
    assert orphans and float(orphans[0].split()[-1]) >= 1
    # and the OK service kept being checked by the new poller
    before = cluster.service(DS, "web", "OK")["last_check"]  # type: ignore[index]
    cluster.wait(lambda: cluster.service(DS, "web", "OK")["last_check"] > before,  # type: ignore[index]
             20, "checks to go on after the poller restart")


def test_restarting_the_dataserver_loses_no_accepted_result(cluster: Cluster) -> None:
    accepted: list[str] = []
    for n in range(20):
        if n == 8:
            cluster.kill(DS, signal.SIGKILL)
        if n == 14:
            cluster.start(DS)
        status, reply = cluster.request("receiver-1", "POST", "/api/results", {"results": [
            {"host": "web", "service": "PASSIVE", "return_code": 0, "output": f"n={n}"}]})
        assert status == 202, reply
        accepted += reply["ids"]

    def stored() -> list[str]:
        return [h["result_id"] for h in cluster.history(DS, "web", "PASSIVE")
                if h["type"] == "result"]

    cluster.wait(lambda: set(accepted) <= set(stored()), 60, "every accepted result stored")
    ids = stored()
    assert all(ids.count(rid) == 1 for rid in accepted), "a result was stored twice"


def test_requests_without_the_secret_or_malformed_change_nothing(cluster: Cluster) -> None:
    body = {"results": [{"host": "web", "service": "PASSIVE", "return_code": 2,
                         "output": "INTRUDER"}]}
    status, reply = cluster.request("receiver-1", "POST", "/api/results", body, secret=None)
    assert status == 401 and reply["error"] == "unauthorized"
    status, _ = cluster.request("receiver-1", "POST", "/api/results", body, secret="wrong")
    assert status == 401
    for name in ("scheduler-1", "poller-1", DS, "arbiter-1"):
        status, _ = cluster.request(name, "POST", "/dispatch", {}, secret=None)
        assert status == 401, name
    status, reply = cluster.request("receiver-1", "POST", "/api/results", {"results": [
        {"host": "web", "service": "PASSIVE", "return_code": 7, "output": "x"}]})
    assert status == 400 and reply["field"] == "results.0.return_code"
    status, reply = cluster.request("receiver-1", "POST", "/api/results", raw=b"{not json")
    assert status == 400
    status, reply = cluster.request("receiver-1", "POST", "/api/commands", {"commands": [
        "ACKNOWLEDGE_SVC_PROBLEM;web;FAIL;2;0;1;alice;ok", "NO_SUCH_COMMAND;web"]})
    assert status == 400 and reply["field"] == "commands.1"
    status, reply = cluster.request("receiver-1", "POST", "/api/results", {"results": [
        {"host": "nosuchhost", "service": "X", "return_code": 0}]})
    assert status == 400 and reply["field"] == "results.0.host"
    status, reply = cluster.request(DS, "GET", "/api/services?limit=abc")
    assert status == 400 and reply["field"] == "limit"
    status, _ = cluster.request("receiver-1", "POST", "/api/results",
                                raw=b'{"results": [' + b'{"host": "web"},' * 600_000 + b"]}")
    assert status == 413
    history = cluster.history(DS, "web", "PASSIVE")
    assert not any(h.get("output") == "INTRUDER" for h in history)
    assert cluster.ping("receiver-1") and cluster.ping(DS)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in _proc_state(pid)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return "Z"


def test_secret_is_not_in_any_log(cluster: Cluster) -> None:
    for name in cluster.daemons:
        assert SECRET not in cluster.log(name), name


def test_endpoints_survive_garbage(cluster: Cluster) -> None:
    """Random bodies to every state-changing endpoint: never a 5xx or a dead daemon."""
    rng = random.Random(20261122)
    endpoints = [("scheduler-1", "/checks/pull"), ("scheduler-1", "/checks/results"),
                 ("scheduler-1", "/inbox"), ("scheduler-1", "/dispatch"),
                 ("poller-1", "/dispatch"), (DS, "/api/ingest"), (DS, "/api/states"),
                 ("receiver-1", "/api/results"), ("receiver-1", "/api/commands"),
                 ("arbiter-1", "/dispatch")]
    shapes: list[bytes] = [b"", b"null", b"[]", b"{}", b'{"schema_version": 99}',
                           b'{"results": "x"}', b'{"commands": [1, 2]}', b"\xff\xfe\x00",
                           b'{"fence": {"epoch": -1}}', b"9" * 5000, b'{"a":' * 500]
    for _ in range(60):
        keys = ["results", "commands", "jobs", "fence", "hosts", "poller"]
        values: list[object] = [None, 1, -1, 1e308, "x" * rng.randint(0, 300), [], [{}], {"k": []}]
        doc: dict[str, object] = {rng.choice(keys): rng.choice(values)
                                  for _ in range(rng.randint(0, 4))}
        shapes.append(json.dumps(doc).encode())
        shapes.append(json.dumps(doc).encode()[: rng.randint(0, 40)])
    for name, path in endpoints:
        for body in shapes:
            status, reply = cluster.request(name, "POST", path, raw=body)
            # a random body is almost always invalid (4xx); one that happens to be valid, such
            # as a pull by an unknown poller, is served: never a 5xx
            assert status < 500, (name, path, body[:80], status, reply)
            if status >= 400:
                assert reply["error"] and reply["message"], reply
    for name in cluster.daemons:
        assert cluster.ping(name), name


def test_sighup_reloads_the_arbiter_and_a_bad_tree_is_refused(cluster: Cluster) -> None:
    objects = cluster.root / "objects.cfg"
    objects.write_text(objects.read_text() + (
        "define service {\n  use fast\n  host_name web\n  service_description NEW\n"
        "  check_command ok\n}\n"))
    cluster.procs["arbiter-1"].send_signal(signal.SIGHUP)
    row = cluster.wait(lambda: (r := cluster.service(DS, "web", "NEW")) and r["state"] == 0
                       and r, 40, "the service added by a reload to be checked")
    assert row["output"] == "OK: all good"
    hash_before = cluster.get("arbiter-1", "/cluster")["config_hash"]
    objects.write_text(objects.read_text() + "define service {\n  host_name web\n")
    cluster.procs["arbiter-1"].send_signal(signal.SIGHUP)
    cluster.wait(lambda: "reload refused" in cluster.log("arbiter-1"), 20,
                 "the arbiter to refuse the broken tree")
    assert cluster.get("arbiter-1", "/cluster")["config_hash"] == hash_before
    assert cluster.ping("arbiter-1")


def test_a_large_body_arriving_in_pieces_is_read_whole(cluster: Cluster) -> None:
    """A body much larger than one socket read (a big scheduler part) must parse."""
    results = [{"host": "web", "service": "PASSIVE", "return_code": 0,
                "output": f"bulk {n} " + "x" * 200} for n in range(5000)]
    status, reply = cluster.request("receiver-1", "POST", "/api/results",
                                    {"results": results}, timeout=60)
    assert status == 202, reply
    assert reply["accepted"] == 5000

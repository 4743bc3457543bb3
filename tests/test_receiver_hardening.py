"""A 202 from a receiver means "on disk, will be stored"; anything else means nothing was taken.

Real daemons on loopback: poison values refused at the door with the item and field named,
poison already queued (from an older version) moved aside without blocking what follows,
items the scheduler refuses as invalid moved to the dead letters, a full disk answered 507
with nothing kept, and far-future times clamped by the scheduler."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster import SECRET, Cluster
from tests.fs import fill, small_tmpfs

DS = "dataserver-1"
RX = "receiver-1"
OBJECTS = """
define command {
  command_name ok
  command_line $USER1$/check_dummy 0 "all good"
}
define host {
  host_name web
  address 127.0.0.1
  check_command ok
  check_interval 1
  retry_interval 1
}
define host {
  host_name db
  address 127.0.0.1
  check_command ok
  check_interval 1
  retry_interval 1
}
define service {
  name passive
  register 0
  active_checks_enabled 0
  max_check_attempts 1
}
define service {
  use passive
  host_name web
  service_description PASSIVE
}
define service {
  use passive
  host_name db
  service_description PASSIVE
}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("hardening"))
    for role in ("arbiter", "scheduler", "poller", "dataserver", "receiver"):
        c.add(role, f"{role}-1")
    c.objects = OBJECTS
    c.write()
    c.start_all()
    try:
        c.wait(lambda: (v := c.get("arbiter-1", "/cluster"))["leading"] and all(
            d["in_sync"] for d in v["daemons"] if d["role"] != "arbiter"), 30,
            "cluster in sync")
        yield c
    finally:
        c.stop_all()


def _send(c: Cluster, results: list[dict[str, object]]) -> tuple[int, Any]:
    status, body = c.request(RX, "POST", "/api/results", raw=json.dumps(
        {"results": results}, allow_nan=True).encode())
    return status, body


def _stored(c: Cluster, host: str, rid: str) -> bool:
    return any(h.get("result_id") == rid for h in c.history(DS, host, "PASSIVE"))


def _queued(c: Cluster) -> int:
    return int(c.get(RX, "/status")["owns"]["queued"])


@pytest.mark.parametrize(("value", "field"), [
    ("NaN", "time"), ("Infinity", "time"), ("1e999", "time"), ("9" * 400, "time"),
    (str(time.time() + 86400 * 365 * 30000), "time"),  # the year 33658
    (str(time.time() + 3600), "time"), (str(time.time() - 86400 * 30), "time")])
def test_poison_times_are_refused_naming_item_and_field(cluster: Cluster, value: str,
                                                        field: str) -> None:
    before = _queued(cluster)
    good = {"host": "web", "service": "PASSIVE", "return_code": 0, "output": "ok"}
    raw = (f'{{"results":[{json.dumps(good)},{{"host":"web","service":"PASSIVE",'
           f'"return_code":0,"output":"x","{field}":{value}}}]}}').encode()
    status, body = cluster.request(RX, "POST", "/api/results", raw=raw)
    assert status == 400, body
    assert body["field"] == f"results.1.{field}", body
    assert _queued(cluster) == before  # all or nothing: the good item was not taken either


def test_unknown_service_on_a_known_host_is_refused(cluster: Cluster) -> None:
    status, body = _send(cluster, [{"host": "web", "service": "NOPE", "return_code": 0}])
    assert status == 400 and body["error"] == "unknown_service", body
    assert body["field"] == "results.0.host"
    status, body = _send(cluster, [{"host": "nohost", "return_code": 0}])
    assert status == 400 and body["error"] == "unknown_host", body


@pytest.mark.parametrize("line", [
    "[" + "9" * 400 + "] PROCESS_SERVICE_CHECK_RESULT;web;PASSIVE;0;ok",
    "[1e999] PROCESS_SERVICE_CHECK_RESULT;web;PASSIVE;0;ok",
    "PROCESS_SERVICE_CHECK_RESULT;web;PASSIVE;nan;ok",
    "SCHEDULE_SVC_DOWNTIME;web;PASSIVE;0;inf;1;0;3600;a;c",
    "PROCESS_SERVICE_CHECK_RESULT;web;NOPE;0;ok",
    f"[{int(time.time()) + 86400}] ACKNOWLEDGE_SVC_PROBLEM;web;PASSIVE;2;0;1;a;c"])
def test_poison_commands_are_refused(cluster: Cluster, line: str) -> None:
    before = _queued(cluster)
    status, body = cluster.request(RX, "POST", "/api/commands", {"commands": [line]})
    assert status == 400, body
    assert body["field"] == "commands.0", body
    assert _queued(cluster) == before


def test_poison_already_queued_is_moved_aside_and_blocks_nothing(cluster: Cluster) -> None:
    """A queue written by an older version holds an item no scheduler will take (a time
    that became null): after the restart it goes to the dead letters, the rest is stored."""
    cluster.kill(RX)
    queue = cluster.root / "var" / f"receiver-{RX}" / "queue.jsonl"
    poison_id = "poison-" + uuid.uuid4().hex[:12]
    poison = {"result": {"result_id": poison_id, "host": "web",
                         "service": "PASSIVE", "return_code": 0, "output": "poison",
                         "started": None, "finished": None, "passive": True}}
    good_ids = [uuid.uuid4().hex for _ in range(3)]
    with open(queue, "a") as fh:
        fh.write(json.dumps({"put": poison_id, "item": poison}) + "\n")
        for n, rid in enumerate(good_ids):
            item = {"result": {"result_id": rid, "host": "db", "service": "PASSIVE",
                               "return_code": 1, "output": f"behind the poison {n}",
                               "started": time.time(), "finished": time.time(),
                               "passive": True}}
            fh.write(json.dumps({"put": rid, "item": item}) + "\n")
    cluster.start(RX)
    cluster.wait(lambda: all(_stored(cluster, "db", rid) for rid in good_ids), 30,
                 "the items behind the poison stored")
    status = cluster.get(RX, "/status")["owns"]
    assert status["dead_letters"] >= 1 and status["queued"] == 0, status
    dead = (cluster.root / "var" / f"receiver-{RX}" / "deadletter.jsonl").read_text()
    assert poison_id in dead
    assert "shinha_dead_letters" in str(cluster.request(RX, "GET", "/metrics")[1])
    log = cluster.log(RX)
    assert log.count("moved to") == 1, log[-3000:]
    assert "Traceback" not in log


def test_item_the_scheduler_refuses_is_dead_lettered_not_retried(cluster: Cluster) -> None:
    """An item in the queue for a service the scheduler's part lacks (taken at the door with
    the catalog of before a reload that removed it): the scheduler answers that it never takes
    it; the receiver moves it aside and goes on with the rest."""
    before = cluster.get(RX, "/status")["owns"]["dead_letters"]
    cluster.kill(RX)
    queue = cluster.root / "var" / f"receiver-{RX}" / "queue.jsonl"
    gone, fine = uuid.uuid4().hex, uuid.uuid4().hex
    with open(queue, "a") as fh:
        for rid, service in ((gone, "REMOVED"), (fine, "PASSIVE")):
            item = {"result": {"result_id": rid, "host": "web", "service": service,
                               "return_code": 0, "output": "queued", "passive": True}}
            fh.write(json.dumps({"put": rid, "item": item}) + "\n")
    cluster.start(RX)
    cluster.wait(lambda: _stored(cluster, "web", fine), 30, "the valid item stored")
    cluster.wait(lambda: cluster.get(RX, "/status")["owns"]["dead_letters"] == before + 1,
                 30, "the refused item dead-lettered")
    assert _queued(cluster) == 0
    dead = (cluster.root / "var" / f"receiver-{RX}" / "deadletter.jsonl").read_text()
    assert gone in dead and "not configured on host" in dead


def test_items_of_a_host_that_left_the_configuration_go_to_the_dead_letters(
        cluster: Cluster) -> None:
    """Queued before a reload removed their host (here, written to the queue while the
    receiver was down): no scheduler will ever take them. They are moved aside with the
    reason, not held for good among the items waiting for a scheduler."""
    before = cluster.get(RX, "/status")["owns"]["dead_letters"]
    cluster.kill(RX)
    queue = cluster.root / "var" / f"receiver-{RX}" / "queue.jsonl"
    gone, cmd = uuid.uuid4().hex, uuid.uuid4().hex
    with open(queue, "a") as fh:
        item = {"result": {"result_id": gone, "host": "decommissioned", "service": "PASSIVE",
                           "return_code": 2, "output": "queued", "passive": True}}
        fh.write(json.dumps({"put": gone, "item": item}) + "\n")
        command = {"command": {"command_id": cmd, "name": "SCHEDULE_FORCED_HOST_CHECK",
                               "host": "decommissioned", "entry_time": time.time(),
                               "args": ["decommissioned", str(int(time.time()))]}}
        fh.write(json.dumps({"put": cmd, "item": command}) + "\n")
    cluster.start(RX)
    cluster.wait(lambda: cluster.get(RX, "/status")["owns"]["dead_letters"] == before + 2,
                 30, "both items dead-lettered")
    owns = cluster.get(RX, "/status")["owns"]
    assert owns["queued"] == 0 and owns["waiting_for_a_scheduler"] == 0, owns
    dead = (cluster.root / "var" / f"receiver-{RX}" / "deadletter.jsonl").read_text()
    assert gone in dead and cmd in dead
    assert "host 'decommissioned' is no longer in the configuration" in dead


def test_far_future_time_in_the_queue_does_not_pin_the_service(cluster: Cluster) -> None:
    """Defence in depth: a result timed in the future that got past the door (an older
    receiver's queue) is clamped by the scheduler to now + passive_result_max_future."""
    cluster.kill(RX)
    queue = cluster.root / "var" / f"receiver-{RX}" / "queue.jsonl"
    rid = uuid.uuid4().hex
    future = 1_000_000_000_000.0  # the year 33658
    item = {"result": {"result_id": rid, "host": "db", "service": "PASSIVE", "return_code": 2,
                       "output": "from the future", "started": future, "finished": future,
                       "passive": True}}
    with open(queue, "a") as fh:
        fh.write(json.dumps({"put": rid, "item": item}) + "\n")
    cluster.start(RX)
    row = cluster.wait(lambda: (r := cluster.service(DS, "db", "PASSIVE"))
                       and r["output"] == "from the future" and r, 30, "result stored")
    assert row["last_check"] <= time.time() + 300 + 5, row
    status, body = _send(cluster, [{"host": "db", "service": "PASSIVE", "return_code": 0,
                                    "output": "back to now"}])
    assert status == 202, body
    cluster.wait(lambda: (r := cluster.service(DS, "db", "PASSIVE"))
                 and r["output"] == "back to now", 30, "a later result is not shadowed")


def test_full_disk_is_a_507_and_nothing_is_kept(cluster: Cluster) -> None:
    """On a full disk the receiver answers 507, keeps nothing of the request (in memory or on
    disk), logs it once; once space is back, the same results are accepted and stored once."""
    state = cluster.root / "var" / f"receiver-{RX}"
    cluster.kill(RX)
    saved = {p.name: p.read_bytes() for p in state.iterdir() if p.is_file()}
    for p in state.iterdir():
        if p.is_file():
            p.unlink()
    with small_tmpfs(state, "4m"):
        try:
            for name, data in saved.items():
                (state / name).write_bytes(data)
            cluster.start(RX)
            cluster.wait(lambda: _queued(cluster) == 0, 30, "what the receiver held delivered")
            filler = fill(state)
            batch = [{"host": "web", "service": "PASSIVE", "return_code": 0,
                      "output": f"r{n} " + "x" * 2000, "result_id": uuid.uuid4().hex}
                     for n in range(20)]
            statuses = [_send(cluster, batch)[0] for _ in range(5)]
            assert statuses == [507] * 5, statuses
            assert _queued(cluster) == 0
            log = cluster.log(RX)
            assert log.count("refusing new items") == 1, log[-3000:]
            assert "Traceback" not in log
            assert not any(str(r["result_id"]) in (state / "queue.jsonl").read_text()
                           for r in batch)
            filler.unlink()
            status, body = _send(cluster, batch)
            assert status == 202, body
            cluster.wait(lambda: all(_stored(cluster, "web", str(r["result_id"]))
                                     for r in batch), 30, "the resent batch stored")
            history = cluster.history(DS, "web", "PASSIVE")
            for r in batch:
                assert sum(1 for h in history if h.get("result_id") == r["result_id"]) == 1
            assert "writing again" in cluster.log(RX)
        finally:
            cluster.kill(RX)
            saved = {p.name: p.read_bytes() for p in state.iterdir()
                     if p.is_file() and p.name != "filler"}
    for name, data in saved.items():
        (state / name).write_bytes(data)
    cluster.start(RX)


def test_pings_never_carry_the_secret(cluster: Cluster) -> None:
    """Whatever binds a stopped daemon's port sees the arbiter's pings, never the secret."""
    poller = cluster.daemons["poller-1"]
    cluster.kill("poller-1")
    captured = bytearray()
    server = socket.create_server((poller.address, poller.port), reuse_port=False)
    server.settimeout(0.5)
    stop = threading.Event()

    def collect() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(0.5)
                try:
                    while chunk := conn.recv(65536):
                        captured.extend(chunk)
                        if b"\r\n\r\n" in chunk:
                            break
                except TimeoutError:
                    pass

    thread = threading.Thread(target=collect, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while captured.count(b"GET /ping") < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert captured.count(b"GET /ping") >= 3, captured[:500]
        assert SECRET.encode() not in captured
        assert b"Authorization" not in captured
    finally:
        stop.set()
        thread.join()
        server.close()
        cluster.start("poller-1")

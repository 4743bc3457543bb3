"""Satellites without the tree: only arbiters load the monitored objects.

A satellite reads the daemons' part of the tree (who is who, realms, modules, the main file)
and gets the rest by dispatch: it starts, and runs what it is dispatched, while the monitored
objects have errors the arbiter refuses. A receiver accepts what the arbiter's catalog lists,
and nothing before one reached it. Real daemons on loopback."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shinha.config import load_cluster, load_config
from tests.cluster import Cluster, wait_for

ARB, SCHED, POLL, DS, RX = "arbiter-1", "scheduler-1", "poller-1", "dataserver-1", "receiver-1"
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
  host_name web
  service_description ALIVE
  check_command ok
  check_interval 1
  retry_interval 1
  max_check_attempts 1
}
"""
#: An unknown command, a syntax error and an unknown type: the arbiter refuses all of it.
BROKEN = """
define host {
  host_name broken
  address 127.0.0.1
  check_command no_such_command
}
define service {
  host_name web
  service_description UNCLOSED
define gizmo {
  gizmo_name x
}
"""
COMPAT = Path(__file__).parent / "compat"
MAIN_NAMES = ("shinha.cfg", "nagios.cfg", "shinken.cfg", "alignak.cfg")


def _mains() -> list[Path]:
    mains = []
    for tree in sorted(p for p in COMPAT.iterdir() if p.is_dir()):
        found = sorted(p for p in tree.rglob("*.cfg") if p.name in MAIN_NAMES)
        if found:
            mains.append(found[0])
    return mains


def _daemons(path: Path, cluster_only: bool) -> dict[str, dict[str, Any]]:
    result = load_cluster(path) if cluster_only else load_config(path)
    assert result.config is not None
    return {f"{role}/{name}": d.model_dump() for role, by_name in
            result.config.daemons.items() for name, d in by_name.items()}


@pytest.mark.parametrize("main", _mains(), ids=lambda p: p.parent.name if p.parent.parent
                         == COMPAT else p.parent.parent.name)
def test_a_satellite_reads_the_same_daemons_as_the_arbiter(main: Path) -> None:
    """Over every compatibility tree (Nagios, Shinken, Alignak): the same dialect, daemons,
    modules and default realm as a whole load, and no error unless the daemons' part has one."""
    whole, part = load_config(main), load_cluster(main)
    assert whole.config is not None and part.config is not None
    assert part.config.dialect.name == whole.config.dialect.name
    assert _daemons(main, True) == _daemons(main, False)
    assert part.config.modules.keys() == whole.config.modules.keys()
    assert part.config.default_realm == whole.config.default_realm
    assert part.config.config_hash == whole.config.config_hash
    assert not part.config.hosts and not part.config.services
    assert {str(d) for d in part.errors} <= {str(d) for d in whole.errors}


def test_errors_outside_the_daemons_part_are_left_to_the_arbiter(tmp_path: Path) -> None:
    c = _tree(tmp_path, OBJECTS + BROKEN)
    whole, part = load_config(c.main), load_cluster(c.main)
    assert len(whole.errors) >= 3
    assert part.ok, [str(d) for d in part.errors]
    left = [d for d in part.warnings if "left to the arbiter" in d.message]
    assert any("objects.cfg" in (d.file or "") for d in left)
    assert set(part.config.daemons["poller"]) == {POLL}  # type: ignore[union-attr]


def test_an_error_in_the_daemons_part_stops_a_satellite(tmp_path: Path) -> None:
    c = _tree(tmp_path, OBJECTS)
    daemons = c.root / "daemons.cfg"
    daemons.write_text(daemons.read_text() + "define poller {\n  poller_name p2\n"
                       "  address 127.0.0.1\n  port not-a-port\n}\n")
    part = load_cluster(c.main)
    assert not part.ok
    assert any("daemons.cfg" in (d.file or "") and "port" in d.message for d in part.errors)


def _tree(root: Path, objects: str) -> Cluster:
    c = Cluster(root)
    for role in ("arbiter", "scheduler", "poller", "dataserver", "receiver"):
        c.add(role, f"{role}-1")
    c.objects = objects
    c.write()
    return c


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = _tree(tmp_path, OBJECTS)
    try:
        yield c
    finally:
        c.stop_all()


def _send(c: Cluster, results: list[dict[str, object]]) -> tuple[int, Any]:
    return c.request(RX, "POST", "/api/results", raw=json.dumps({"results": results}).encode())


def _in_sync(c: Cluster) -> bool:
    view = c.get(ARB, "/cluster")
    return bool(view["leading"]) and all(d["in_sync"] for d in view["daemons"]
                                         if d["role"] != "arbiter")


def _stored(c: Cluster, host: str, service: str, rid: str) -> bool:
    return any(h.get("result_id") == rid for h in c.history(DS, host, service))


def test_satellites_started_on_a_broken_tree_run_what_the_arbiter_dispatched(
        cluster: Cluster) -> None:
    c = cluster
    c.start_all()
    wait_for(lambda: _in_sync(c), 30, "cluster in sync")
    wait_for(lambda: c.service(DS, "web", "ALIVE"), 30, "the active check stored")
    # The tree breaks (an operator's edit in progress); the arbiter refuses it on reload and
    # keeps the one it runs. Every satellite restarts on the broken tree all the same.
    (c.root / "objects.cfg").write_text(OBJECTS + BROKEN)
    c.kill(ARB, signal.SIGHUP)
    wait_for(lambda: "reload refused" in c.log(ARB), 30, "the arbiter to refuse the tree")
    for name in (SCHED, POLL, DS, RX):
        c.kill(name, signal.SIGTERM)
        c.start(name)
        assert "problems outside the daemons' part" in c.log(name), c.log(name)[-2000:]
    wait_for(lambda: _in_sync(c), 30, "cluster in sync again")
    since = c.service(DS, "web", "ALIVE")
    assert since is not None
    wait_for(lambda: (row := c.service(DS, "web", "ALIVE")) and row["last_check"]
             > since["last_check"], 30, "a new check, by the restarted scheduler and poller")
    rid = uuid.uuid4().hex
    status, body = _send(c, [{"host": "web", "service": "PASSIVE", "return_code": 1,
                              "output": "through the door", "result_id": rid}])
    assert status == 202, body
    wait_for(lambda: _stored(c, "web", "PASSIVE", rid), 30, "the passive result stored")
    # What the broken part names is not taken: the door checks the arbiter's catalog.
    status, body = _send(c, [{"host": "broken", "return_code": 0, "output": "x"}])
    assert (status, body["field"]) == (400, "results.0.host"), body


def test_a_receiver_takes_nothing_before_a_dispatch_then_follows_the_arbiter(
        cluster: Cluster) -> None:
    c = cluster
    for name in (DS, SCHED, POLL, RX):
        c.start(name)
    status, body = _send(c, [{"host": "web", "service": "PASSIVE", "return_code": 0,
                              "output": "too early"}])
    assert (status, body["error"]) == (503, "not_ready"), body
    assert int(c.get(RX, "/status")["owns"]["queued"]) == 0
    c.start(ARB)
    wait_for(lambda: _in_sync(c), 30, "cluster in sync")
    status, body = _send(c, [{"host": "web", "service": "NEWER", "return_code": 0,
                              "output": "not yet configured"}])
    assert status == 400 and body["error"] == "unknown_service", body
    # A service added and the arbiter reloaded: the receiver accepts it with no reload of its
    # own (it is sent the new catalog).
    (c.root / "objects.cfg").write_text(
        OBJECTS + "define service {\n  use passive\n  host_name web\n"
        "  service_description NEWER\n}\n")
    catalogs = c.log(RX).count("catalog from arbiter")
    c.kill(ARB, signal.SIGHUP)
    wait_for(lambda: c.log(RX).count("catalog from arbiter") > catalogs and _in_sync(c), 30,
             "the new catalog at the receiver")
    rid = uuid.uuid4().hex
    status, body = _send(c, [{"host": "web", "service": "NEWER", "return_code": 0,
                              "output": "now known", "result_id": rid}])
    assert status == 202, body
    wait_for(lambda: _stored(c, "web", "NEWER", rid), 30, "the new service's result stored")

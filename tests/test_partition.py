"""Cutting the configuration among schedulers and pollers: parents together, weights
respected, stable hashing so that adding a scheduler moves only its share."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from shinha.arbiter.partition import plan
from shinha.config import load_config
from shinha.config.daemons import Poller, Scheduler
from shinha.rendezvous import rendezvous


def tree(tmp_path: Path, hosts: int, schedulers: list[tuple[str, int]],
         pollers: list[tuple[str, str]]) -> Path:
    lines = ["define command {\n command_name c\n command_line /bin/true\n}\n"]
    for i in range(hosts):
        parent = f"\n parents h{i - 1}" if i % 50 and i % 50 < 3 else ""
        lines.append(f"define host {{\n host_name h{i}\n check_command c{parent}\n}}\n")
        lines.append(f"define service {{\n host_name h{i}\n service_description s\n"
                     f" check_command c\n poller_tag {'gpu' if i % 10 == 0 else 'None'}\n}}\n")
    for name, weight in schedulers:
        lines.append(f"define scheduler {{\n scheduler_name {name}\n weight {weight}\n"
                     f" port {7000 + len(lines)}\n}}\n")
    for name, tags in pollers:
        lines.append(f"define poller {{\n poller_name {name}\n poller_tags {tags}\n"
                     f" port {8000 + len(lines)}\n}}\n")
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "objects.cfg").write_text("".join(lines))
    (tmp_path / "main.cfg").write_text("cfg_file=objects.cfg\n")
    return tmp_path / "main.cfg"


def _plan(main: Path):  # type: ignore[no-untyped-def]
    config = load_config(main).raise_for_errors()
    scheds = [s for s in config.daemons["scheduler"].values() if isinstance(s, Scheduler)]
    polls = [p for p in config.daemons["poller"].values() if isinstance(p, Poller)]
    return config, plan(config, scheds, polls)


def test_parents_stay_in_one_part_and_every_host_is_placed(tmp_path: Path) -> None:
    config, p = _plan(tree(tmp_path, 300, [("s1", 1), ("s2", 1), ("s3", 1)],
                           [("p1", "None,gpu")]))
    assert set(p.host_owner) == set(config.hosts)
    for name, host in config.hosts.items():
        for parent in host.parents:
            assert p.host_owner[parent] == p.host_owner[name]
    assert sum(len(part.hosts) for part in p.parts.values()) == 300
    assert sum(len(part.services) for part in p.parts.values()) == 300


def test_weights_are_respected(tmp_path: Path) -> None:
    _, p = _plan(tree(tmp_path, 2000, [("light", 1), ("heavy", 3)], [("p1", "None,gpu")]))
    share = Counter(p.host_owner.values())
    assert 0.65 < share["heavy"] / 2000 < 0.85, share


def test_adding_a_scheduler_moves_only_its_share(tmp_path: Path) -> None:
    _, before = _plan(tree(tmp_path / "a", 2000, [("s1", 1), ("s2", 1), ("s3", 1)],
                           [("p1", "None,gpu")]))
    _, after = _plan(tree(tmp_path / "b", 2000, [("s1", 1), ("s2", 1), ("s3", 1), ("s4", 1)],
                          [("p1", "None,gpu")]))
    moved = [h for h, owner in before.host_owner.items() if after.host_owner[h] != owner]
    assert all(after.host_owner[h] == "s4" for h in moved)  # only to the newcomer
    assert 0.15 < len(moved) / 2000 < 0.35  # about a quarter


def test_same_config_same_parts_same_hashes(tmp_path: Path) -> None:
    main = tree(tmp_path, 200, [("s1", 1), ("s2", 2)], [("p1", "None,gpu")])
    _, a = _plan(main)
    _, b = _plan(main)
    assert {k: v.part_hash for k, v in a.parts.items()} == {
        k: v.part_hash for k, v in b.parts.items()}


def test_checks_go_to_pollers_with_their_tag(tmp_path: Path) -> None:
    _, p = _plan(tree(tmp_path, 200, [("s1", 1)], [("plain", "None"), ("gpu-box", "gpu")]))
    services = [s for part in p.parts.values() for s in part.services]
    for svc in services:
        expected = "gpu-box" if svc.poller_tag == "gpu" else "plain"
        assert svc.poller == expected
    assert not p.unowned_checks


def test_check_with_no_poller_for_its_tag_is_reported(tmp_path: Path) -> None:
    _, p = _plan(tree(tmp_path, 20, [("s1", 1)], [("plain", "None")]))
    assert len(p.unowned_checks) == 2  # h0 and h10 carry the gpu tag


def test_rendezvous_is_deterministic_and_spreads() -> None:
    picks = Counter(rendezvous(f"k{i}", [("a", 1), ("b", 1)]) for i in range(1000))
    assert 400 < picks["a"] < 600
    assert rendezvous("x", [("a", 1), ("b", 1)]) == rendezvous("x", [("b", 1), ("a", 1)])

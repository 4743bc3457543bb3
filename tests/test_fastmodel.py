"""The loader's fast path (values validated once per distinct value, models built without a
full pydantic pass) must give exactly what full validation gives: same objects, same values,
same given fields, same diagnostics. Every tree here is loaded both ways and compared."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from shinha.config.build import ObjectBuilder
from shinha.config.fastmodel import ModelFactory, copy_model
from shinha.config.loader import Config, LoadResult, load_config
from shinha.config.objects import ConfigObject, Host, Service

REPO = Path(__file__).resolve().parent.parent

sys.path.insert(0, str(REPO / "bench"))
import config_load  # noqa: E402  (the bench's tree generator)


def _load(main: Path, fast: bool, monkeypatch: pytest.MonkeyPatch) -> LoadResult:
    with monkeypatch.context() as m:
        m.setattr(ObjectBuilder, "fast_path", fast)
        return load_config(main)


def _objects(config: Config) -> dict[str, dict[Any, ConfigObject]]:
    out: dict[str, dict[Any, ConfigObject]] = {
        "host": dict(config.hosts), "service": dict(config.services),
        "hostgroup": dict(config.hostgroups), "servicegroup": dict(config.servicegroups),
        "command": dict(config.commands), "timeperiod": dict(config.timeperiods),
        "contact": dict(config.contacts), "contactgroup": dict(config.contactgroups),
        "realm": dict(config.realms), "module": dict(config.modules),
    }
    for role, daemons in config.daemons.items():
        out[role] = dict(daemons)
    return out


def assert_same(main: Path, monkeypatch: pytest.MonkeyPatch) -> LoadResult:
    fast = _load(main, True, monkeypatch)
    full = _load(main, False, monkeypatch)
    assert [str(d) for d in fast.diagnostics] == [str(d) for d in full.diagnostics]
    assert (fast.config is None) == (full.config is None)
    if fast.config is None or full.config is None:
        return fast
    got, want = _objects(fast.config), _objects(full.config)
    assert got.keys() == want.keys()
    for kind in want:
        assert list(got[kind]) == list(want[kind]), kind
        for key, obj in want[kind].items():
            other = got[kind][key]
            assert type(other) is type(obj)
            assert other.__dict__ == obj.__dict__, (kind, key)
            assert set(other.model_fields_set) == set(obj.model_fields_set), (kind, key)
    return fast


@pytest.mark.parametrize("main", [
    "etc/shinha.cfg",
    "etc/examples/ha-two-hosts/shinha.cfg",
    "etc/examples/ha-two-hosts-mariadb/shinha.cfg",
    "etc/examples/nagios-compat/nagios.cfg",
])
def test_shipped_trees_load_the_same_both_ways(main: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    result = assert_same(REPO / main, monkeypatch)
    assert result.ok


def test_generated_tree_loads_the_same_both_ways(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    tree = config_load.generate(tmp_path, hosts=60, per_host=4)
    result = assert_same(tree.shinha_main, monkeypatch)
    assert result.ok and result.config is not None
    assert len(result.config.services) == 60 * 4
    # The fast path did build them (its objects share a frozen set of given fields).
    assert all(isinstance(s.model_fields_set, frozenset)
               for s in result.config.services.values())


EDGE_CASES = r"""
define command {
    command_name    check_x
    command_line    /bin/true $ARG1$
}
define command {
    command_name    check_y
    command_line    /bin/false
    timeout         oops
}
define timeperiod {
    timeperiod_name 24x7
    monday          00:00-24:00
}
define contact {
    name                    contact-tpl
    host_notification_options d,u
    email                   ops@example.org
    register                0
}
define contact {
    contact_name    alice
    use             contact-tpl
    _PHONE          123
}
define host {
    name                    base-host
    check_command           check_x!a
    max_check_attempts      4
    normal_check_interval   7
    contact_groups          admins
    _SNMP                   public
    obsess_over_host        1
    register                0
}
define host {
    name                    other-host
    retry_interval          2
    check_period            24x7
    register                0
}
define host {
    name                    null-host
    use                     base-host
    notes                   null
    register                0
}
define host {
    name                    bad-host
    max_check_attempts      zero
    register                0
}
define host {
    host_name   h1
    use         base-host
    _snmp       lower-case custom
}
define host {
    host_name   h2
    use         base-host,other-host
    parents     h1
    _EXTRA      x
}
define host {
    host_name       h3
    use             other-host
    contact_groups  +admins
}
define host {
    host_name   h4
    use         null-host
    notes       null
}
define host {
    host_name   h5
    use         bad-host
}
define host {
    host_name           h6
    check_command       check_x!b
    max_check_attempts  0
}
define host {
    host_name   h7
    address     10.0.0.7
    hostgroups  g1
    unknown_prop 1
}
define host {
    host_name   h8
    use         no-such-template
}
define host {
    host_name   h9
    name        also-a-template
    use         base-host
}
define hostgroup {
    hostgroup_name  g1
    members         h1,h2
}
define contactgroup {
    contactgroup_name   admins
    members             alice
}
define service {
    name                svc-tpl
    check_command       check_x!s
    check_interval      3
    servicegroups       sg1
    register            0
}
define service {
    name                svc-with-host
    use                 svc-tpl
    host_name           h1
    register            0
}
define service {
    service_description one
    host_name           h1
    use                 svc-tpl
}
define service {
    service_description two
    host_name           h1,h2
    use                 svc-tpl
}
define service {
    service_description three
    hostgroup_name      g1
    use                 svc-tpl
}
define service {
    service_description four
    host_name           *
    use                 svc-tpl
    is_volatile         maybe
}
define service {
    service_description five
    use                 svc-with-host
}
define service {
    service_description six
    host_name           h9
    use                 svc-tpl
    description         duplicate-name
    normal_check_interval 9
}
define service {
    host_name           h1
    use                 svc-tpl
}
define servicegroup {
    servicegroup_name   sg1
}
"""


def test_edge_cases_load_the_same_both_ways(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "objects.cfg").write_text(EDGE_CASES)
    (tmp_path / "shinha.cfg").write_text("cfg_file=objects.cfg\n")
    result = assert_same(tmp_path / "shinha.cfg", monkeypatch)
    assert not result.ok  # the tree has errors on purpose: both paths must report them alike
    text = "\n".join(str(d) for d in result.errors)
    assert "timeout" in text and "max_check_attempts" in text and "is_volatile" in text
    assert "unknown_prop" in text and "no-such-template" in text
    assert result.config is not None
    h1 = result.config.hosts["h1"]
    assert h1.customs == {"SNMP": "lower-case custom"}
    assert h1.check_interval == 7.0 and h1.max_check_attempts == 4
    assert result.config.hosts["h2"].customs == {"SNMP": "public", "EXTRA": "x"}
    assert result.config.hosts["h3"].contact_groups == ("admins",)
    built_fast = {name for name, h in result.config.hosts.items()
                  if isinstance(h.model_fields_set, frozenset)}
    assert built_fast == {"h2"}  # every other host has something for full validation


def test_objects_written_alike_share_given_fields_until_one_changes() -> None:
    factory = ModelFactory(Service)
    fields = frozenset({"service_description", "host_name"})
    one = factory.make(factory.data({"service_description": "a", "host_name": "x"}), fields)
    two = factory.make(factory.data({"service_description": "b", "host_name": "y"}), fields)
    assert one.model_fields_set is two.model_fields_set
    assert one.customs is not two.customs  # a default factory gives each its own dict
    one.notes = "changed"
    assert one.notes == "changed" and two.notes == ""
    assert "notes" in one.model_fields_set and "notes" not in two.model_fields_set
    three = two.model_copy(update={"poller": "poller-2"})
    assert three.poller == "poller-2" and two.poller == ""
    assert "poller" in three.model_fields_set and "poller" not in two.model_fields_set
    four = copy_model(two, host_name="z")
    assert four.host_name == "z" and two.host_name == "y"
    assert four == Service.model_validate({"service_description": "b", "host_name": "z"})


def test_factory_applies_the_field_constraints() -> None:
    factory = ModelFactory(Host)
    assert factory.value("max_check_attempts", "5") == 5
    assert factory.value("check_interval", "2") == 2.0
    assert factory.value("parents", "a, b,,c") == ("a", "b", "c")
    assert factory.value("active_checks_enabled", "0") is False
    with pytest.raises(ValueError):
        factory.value("max_check_attempts", "0")
    with pytest.raises(ValueError):
        factory.value("business_impact", "9")

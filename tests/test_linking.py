"""Linking and inheritance: services attached to hosts, group memberships both ways, nested
groups, and template inheritance as Nagios documents it. Every tree is a real file."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shinha.config.diagnostics import Diagnostic
from shinha.config.loader import Config, LoadResult

LoadObjects = Callable[..., LoadResult]  # the load_objects fixture of conftest.py

COMMANDS = """
    define command {
        command_name check_a
        command_line /bin/true a $ARG1$
    }
    define command {
        command_name check_b
        command_line /bin/true b $ARG1$
    }
"""

#: Three hosts and three hostgroups: g1 = {a, b}, g2 = {b, c}, g3 = {c}.
HOSTS = COMMANDS + """
    define host {
        host_name a
    }
    define host {
        host_name b
    }
    define host {
        host_name c
    }
    define hostgroup {
        hostgroup_name g1
        members        a,b
    }
    define hostgroup {
        hostgroup_name g2
        members        b,c
    }
    define hostgroup {
        hostgroup_name g3
        members        c
    }
"""


def loaded(load_objects: LoadObjects, text: str) -> Config:
    """Load a tree that must have no error."""
    result = load_objects(text)
    assert not result.errors, "\n".join(map(str, result.errors))
    assert result.config is not None
    return result.config


def about_objects(diags: list[Diagnostic]) -> list[Diagnostic]:
    """Diagnostics about the objects (not the absent daemons of these small trees)."""
    return [d for d in diags if "the cluster cannot run" not in d.message]


def hosts_of(config: Config, description: str) -> list[str]:
    return sorted(h for h, d in config.services if d == description)


def service(host: str, description: str, extra: str = "") -> str:
    return f"""
    define service {{
        host_name           {host}
        service_description {description}
        check_command       check_a
        {extra}
    }}
    """


# -- services attached to hosts ----------------------------------------------------------------


def test_service_on_a_list_of_hosts(load_objects: LoadObjects) -> None:
    config = loaded(load_objects, HOSTS + service("a,c", "ping"))
    assert hosts_of(config, "ping") == ["a", "c"]
    assert config.services[("a", "ping")].host_name == "a"
    assert config.services[("c", "ping")].host_name == "c"


def test_service_on_every_host_with_star(load_objects: LoadObjects) -> None:
    config = loaded(load_objects, HOSTS + service("*", "ping"))
    assert hosts_of(config, "ping") == ["a", "b", "c"]


def test_host_name_exclusion(load_objects: LoadObjects) -> None:
    config = loaded(load_objects, HOSTS + service("*,!b", "ping"))
    assert hosts_of(config, "ping") == ["a", "c"]


def test_hostgroup_list_with_a_group_exclusion(load_objects: LoadObjects) -> None:
    config = loaded(load_objects, HOSTS + """
        define service {
            hostgroup_name      g1,g2,!g3
            service_description ping
            check_command       check_a
        }
        """)
    assert hosts_of(config, "ping") == ["a", "b"]


def test_hostgroup_with_a_host_exclusion(load_objects: LoadObjects) -> None:
    config = loaded(load_objects, HOSTS + """
        define service {
            hostgroup_name      g2
            host_name           !b
            service_description ping
            check_command       check_a
        }
        """)
    assert hosts_of(config, "ping") == ["c"]


def test_host_names_and_hostgroups_add_up(load_objects: LoadObjects) -> None:
    config = loaded(load_objects, HOSTS + """
        define service {
            hostgroup_name      g3
            host_name           a
            service_description ping
            check_command       check_a
        }
        """)
    assert hosts_of(config, "ping") == ["a", "c"]


GROUP_DISK = """
    define service {
        hostgroup_name      g1
        service_description disk
        check_command       check_a!from-group
    }
"""
HOST_DISK = """
    define service {
        host_name           a
        service_description disk
        check_command       check_b!explicit
    }
"""


@pytest.mark.parametrize("order", ["group first", "host first"])
def test_explicit_host_beats_hostgroup(load_objects: LoadObjects, order: str) -> None:
    """Nagios 4: a service defined on a host by name wins over a hostgroup's copy of one (a
    hostgroup's further hosts are registered last), with a warning at the hostgroup's."""
    defs = GROUP_DISK + HOST_DISK if order == "group first" else HOST_DISK + GROUP_DISK
    result = load_objects(HOSTS + defs)
    [warning] = about_objects(result.diagnostics)
    assert "service 'disk' on host 'a' is defined twice" in warning.message
    assert result.config is not None
    services = result.config.services
    assert warning.line == services[("b", "disk")].source_line
    assert services[("a", "disk")].check_command == "check_b!explicit"
    assert services[("b", "disk")].check_command == "check_a!from-group"


def test_explicit_host_in_a_list_beats_hostgroup(load_objects: LoadObjects) -> None:
    config = loaded(load_objects, HOSTS + GROUP_DISK + """
        define service {
            host_name           a,c
            service_description disk
            check_command       check_b!explicit
        }
        """)
    assert config.services[("a", "disk")].check_command == "check_b!explicit"
    assert config.services[("b", "disk")].check_command == "check_a!from-group"
    assert config.services[("c", "disk")].check_command == "check_b!explicit"


def test_a_host_repeated_in_host_name_does_not_make_group_hosts_explicit(
        load_objects: LoadObjects) -> None:
    # `a,a` plus hostgroup g3 (c): c still comes from a hostgroup, so c's explicit definition
    # below wins without an error.
    result = load_objects(HOSTS + """
        define service {
            host_name           a,a
            hostgroup_name      g3
            service_description disk
            check_command       check_a!list
        }
        define service {
            host_name           c
            service_description disk
            check_command       check_b!explicit
        }
        """)
    assert result.errors == []
    assert result.config is not None
    assert result.config.services[("a", "disk")].check_command == "check_a!list"
    assert result.config.services[("c", "disk")].check_command == "check_b!explicit"


def test_duplicate_explicit_services_are_a_warning_and_the_later_wins(
        load_objects: LoadObjects) -> None:
    # As Nagios 4 (tests/test_expand.py runs nagios4 on the same rule): a warning at the
    # definition left out, and the later of two definitions kept.
    result = load_objects(HOSTS + service("a", "disk") + service("a,b", "disk",
                                                                "notes later"))
    assert about_objects(result.errors) == []
    warnings = about_objects(result.warnings)
    assert len(warnings) == 1, warnings
    assert "service 'disk' on host 'a' is defined twice" in warnings[0].message
    assert warnings[0].file is not None and warnings[0].file.endswith("objects.cfg")
    assert result.config is not None
    kept = result.config.services[("a", "disk")]
    assert kept.notes == "later"
    # The warning is at the first define (7 lines above the second), and names the kept one.
    assert warnings[0].line == kept.source_line - 7
    assert kept.where() in warnings[0].message
    assert ("b", "disk") in result.config.services


def test_service_from_two_hostgroups_is_a_warning(load_objects: LoadObjects) -> None:
    result = load_objects(HOSTS + """
        define service {
            hostgroup_name      g1
            service_description disk
            check_command       check_a!first
        }
        define service {
            hostgroup_name      g2
            service_description disk
            check_command       check_b!second
        }
        """)
    assert result.errors == []
    warnings = about_objects(result.warnings)
    assert len(warnings) == 1, warnings
    assert "service 'disk' on host 'b' is defined twice" in warnings[0].message
    assert result.config is not None
    services = result.config.services
    assert services[("a", "disk")].check_command == "check_a!first"
    # b is g1's second host, g2's first: Nagios keeps g1's (a definition's further hosts
    # are registered before the definitions themselves).
    assert services[("b", "disk")].check_command == "check_a!first"
    assert services[("c", "disk")].check_command == "check_b!second"


def test_one_definition_on_overlapping_hostgroups_is_no_duplicate(
        load_objects: LoadObjects) -> None:
    result = load_objects(HOSTS + """
        define service {
            hostgroup_name      g1,g2
            service_description disk
            check_command       check_a
        }
        """)
    assert about_objects(result.diagnostics) == []
    assert result.config is not None
    assert hosts_of(result.config, "disk") == ["a", "b", "c"]


# -- hostgroups --------------------------------------------------------------------------------


def test_hostgroup_members_and_host_hostgroups_both_ways(load_objects: LoadObjects) -> None:
    config = loaded(load_objects, COMMANDS + """
        define host {
            host_name  a
        }
        define host {
            host_name  b
            hostgroups web,db
        }
        define host {
            host_name  c
        }
        define hostgroup {
            hostgroup_name web
            members        a
        }
        define hostgroup {
            hostgroup_name db
        }
        """)
    assert sorted(config.hostgroups["web"].members) == ["a", "b"]
    assert config.hostgroups["db"].members == ("b",)
    assert config.hosts["a"].hostgroups == ("web",)
    assert sorted(config.hosts["b"].hostgroups) == ["db", "web"]
    assert config.hosts["c"].hostgroups == ()


def test_hostgroup_members_star_and_exclusion(load_objects: LoadObjects) -> None:
    config = loaded(load_objects, HOSTS + """
        define hostgroup {
            hostgroup_name most
            members        *,!b
        }
        """)
    assert sorted(config.hostgroups["most"].members) == ["a", "c"]
    assert "most" not in config.hosts["b"].hostgroups


def test_nested_hostgroups(load_objects: LoadObjects) -> None:
    config = loaded(load_objects, COMMANDS + """
        define host {
            host_name a
        }
        define host {
            host_name b
            hostgroups db
        }
        define host {
            host_name c
        }
        define hostgroup {
            hostgroup_name web
            members        a
        }
        define hostgroup {
            hostgroup_name db
        }
        define hostgroup {
            hostgroup_name    servers
            hostgroup_members web,db
        }
        define hostgroup {
            hostgroup_name    everything
            hostgroup_members servers
            members           c
        }
        define service {
            hostgroup_name      servers
            service_description ping
            check_command       check_a
        }
        """)
    assert sorted(config.hostgroups["servers"].members) == ["a", "b"]
    assert sorted(config.hostgroups["everything"].members) == ["a", "b", "c"]
    assert sorted(config.hosts["a"].hostgroups) == ["everything", "servers", "web"]
    assert sorted(config.hosts["c"].hostgroups) == ["everything"]
    assert hosts_of(config, "ping") == ["a", "b"]


def test_hostgroup_members_loop_is_an_error(load_objects: LoadObjects) -> None:
    result = load_objects(COMMANDS + """
        define host {
            host_name a
        }
        define hostgroup {
            hostgroup_name    one
            members           a
            hostgroup_members two
        }
        define hostgroup {
            hostgroup_name    two
            hostgroup_members one
        }
        """)
    errors = [e for e in result.errors if "loop" in e.message]
    assert errors, result.diagnostics
    assert "hostgroup_members loop" in errors[0].message
    assert errors[0].line is not None and errors[0].line > 0


# -- servicegroups -----------------------------------------------------------------------------


def test_servicegroups_both_ways_and_nested(load_objects: LoadObjects) -> None:
    config = loaded(load_objects, HOSTS + """
        define service {
            host_name           a,b
            service_description http
            check_command       check_a
        }
        define service {
            hostgroup_name      g2
            service_description disk
            check_command       check_a
            servicegroups       storage
        }
        define servicegroup {
            servicegroup_name web
            members           a,http,b,http
        }
        define servicegroup {
            servicegroup_name storage
        }
        define servicegroup {
            servicegroup_name    all
            servicegroup_members web,storage
        }
        """)
    pairs = {name: sorted(zip(g.members[::2], g.members[1::2], strict=True))
             for name, g in config.servicegroups.items()}
    assert pairs["web"] == [("a", "http"), ("b", "http")]
    assert pairs["storage"] == [("b", "disk"), ("c", "disk")]
    assert pairs["all"] == [("a", "http"), ("b", "disk"), ("b", "http"), ("c", "disk")]
    assert sorted(config.services[("a", "http")].servicegroups) == ["all", "web"]
    assert sorted(config.services[("c", "disk")].servicegroups) == ["all", "storage"]


def test_servicegroup_member_that_does_not_exist_is_an_error(
        load_objects: LoadObjects) -> None:
    result = load_objects(HOSTS + service("a", "http") + """
        define servicegroup {
            servicegroup_name web
            members           a,http,b,http
        }
        """)
    assert [e.message for e in result.errors] == [
        "servicegroup 'web': service 'http' on host 'b' is not defined"]


# -- contactgroups -----------------------------------------------------------------------------


def test_contactgroups_both_ways_and_nested(load_objects: LoadObjects) -> None:
    config = loaded(load_objects, """
        define contact {
            contact_name  alice
        }
        define contact {
            contact_name  bob
            contactgroups ops
        }
        define contact {
            contact_name  carol
        }
        define contactgroup {
            contactgroup_name ops
            members           alice
        }
        define contactgroup {
            contactgroup_name    everyone
            contactgroup_members ops
            members              carol
        }
        define host {
            host_name a
        }
        """)  # the host: see test_timeperiod.py::test_a_tree_of_only_timeperiods_loads
    assert sorted(config.contactgroups["ops"].members) == ["alice", "bob"]
    assert sorted(config.contactgroups["everyone"].members) == ["alice", "bob", "carol"]
    assert sorted(config.contacts["alice"].contactgroups) == ["everyone", "ops"]
    assert sorted(config.contacts["bob"].contactgroups) == ["everyone", "ops"]
    assert config.contacts["carol"].contactgroups == ("everyone",)


# -- inheritance -------------------------------------------------------------------------------

TEMPLATES = COMMANDS + """
    define host {
        name               base-a
        check_interval     1
        max_check_attempts 1
        notes              from base-a
        register           0
    }
    define host {
        name               tpl-a
        use                base-a
        max_check_attempts 2
        register           0
    }
    define host {
        name               tpl-b
        check_interval     9
        max_check_attempts 9
        retry_interval     4
        notes              from tpl-b
        check_command      check_b
        register           0
    }
"""


def test_leftmost_parent_wins_depth_first(load_objects: LoadObjects) -> None:
    config = loaded(load_objects, TEMPLATES + """
        define host {
            host_name ab
            use       tpl-a,tpl-b
        }
        define host {
            host_name ba
            use       tpl-b,tpl-a
        }
        define host {
            host_name own
            use       tpl-a,tpl-b
            notes     mine
        }
        """)
    ab = config.hosts["ab"]
    assert ab.max_check_attempts == 2  # tpl-a's own
    assert ab.check_interval == 1  # tpl-a's parent base-a beats the second parent tpl-b
    assert ab.notes == "from base-a"
    assert ab.retry_interval == 4  # only tpl-b has it
    assert ab.check_command == "check_b"
    ba = config.hosts["ba"]
    assert (ba.max_check_attempts, ba.check_interval, ba.notes) == (9, 9, "from tpl-b")
    assert config.hosts["own"].notes == "mine"


def test_additive_values_through_two_levels(load_objects: LoadObjects) -> None:
    config = loaded(load_objects, COMMANDS + """
        define host {
            host_name p1
        }
        define host {
            host_name p2
        }
        define host {
            host_name p3
        }
        define host {
            name     level0
            parents  p1
            register 0
        }
        define host {
            name     level1
            use      level0
            parents  +p2
            register 0
        }
        define host {
            host_name child
            use       level1
            parents   +p3
        }
        define host {
            host_name replaced
            use       level1
            parents   p3
        }
        define host {
            host_name nothing-to-add-to
            parents   +p1
        }
        """)
    assert config.hosts["child"].parents == ("p1", "p2", "p3")
    assert config.hosts["replaced"].parents == ("p3",)
    assert config.hosts["nothing-to-add-to"].parents == ("p1",)


def test_additive_hostgroups_make_memberships(load_objects: LoadObjects) -> None:
    config = loaded(load_objects, COMMANDS + """
        define hostgroup {
            hostgroup_name all
        }
        define hostgroup {
            hostgroup_name linux
        }
        define hostgroup {
            hostgroup_name web
        }
        define host {
            name       generic
            hostgroups all
            register   0
        }
        define host {
            name       linux
            use        generic
            hostgroups +linux
            register   0
        }
        define host {
            host_name  w1
            use        linux
            hostgroups +web
        }
        """)
    assert sorted(config.hosts["w1"].hostgroups) == ["all", "linux", "web"]
    assert config.hostgroups["all"].members == ("w1",)


def test_null_cancels_an_inherited_value(load_objects: LoadObjects) -> None:
    config = loaded(load_objects, TEMPLATES + """
        define host {
            name          no-notes
            use           tpl-b
            notes         null
            register      0
        }
        define host {
            host_name     direct
            use           tpl-b
            check_command null
        }
        define host {
            host_name     through-template
            use           no-notes
        }
        define host {
            host_name     kept
            use           tpl-b
        }
        """)
    assert config.hosts["direct"].check_command == ""
    assert config.hosts["direct"].notes == "from tpl-b"
    assert config.hosts["through-template"].notes == ""
    assert config.hosts["through-template"].check_command == "check_b"
    assert config.hosts["kept"].notes == "from tpl-b"


def test_name_and_register_are_not_inherited(load_objects: LoadObjects) -> None:
    result = load_objects(TEMPLATES + """
        define host {
            name      mid
            use       tpl-a
            register  0
        }
        define host {
            host_name h
            use       mid
        }
        """)
    assert result.errors == []  # a copied `name` would make `h` a second template 'mid'
    assert result.config is not None
    assert list(result.config.hosts) == ["h"]  # a copied `register 0` would drop it
    assert result.config.templates == 4
    assert result.config.hosts["h"].max_check_attempts == 2


def test_a_template_with_register_1_is_also_an_object(load_objects: LoadObjects) -> None:
    config = loaded(load_objects, """
        define host {
            name      both
            host_name both
            notes     template and host
        }
        define host {
            host_name h
            use       both
        }
        """)
    assert sorted(config.hosts) == ["both", "h"]
    assert config.hosts["h"].notes == "template and host"


def test_custom_variables_are_inherited_and_upper_cased(load_objects: LoadObjects) -> None:
    config = loaded(load_objects, COMMANDS + """
        define host {
            name             snmp
            _snmp_community  public
            _Location        paris
            register         0
        }
        define host {
            name             rack
            _RACK            r1
            _location        london
            register         0
        }
        define host {
            host_name        one-parent
            use              snmp
            _LOCATION        lyon
        }
        define host {
            host_name        two-parents
            use              snmp,rack
            _rack            r2
        }
        define host {
            host_name        inherited
            use              rack,snmp
        }
        """)
    assert config.hosts["one-parent"].customs == {"SNMP_COMMUNITY": "public",
                                                  "LOCATION": "lyon"}
    assert config.hosts["two-parents"].customs == {"SNMP_COMMUNITY": "public",
                                                   "LOCATION": "paris", "RACK": "r2"}
    assert config.hosts["inherited"].customs == {"SNMP_COMMUNITY": "public",
                                                 "LOCATION": "london", "RACK": "r1"}


def test_service_templates_and_customs(load_objects: LoadObjects) -> None:
    config = loaded(load_objects, HOSTS + """
        define service {
            name               generic-service
            max_check_attempts 4
            check_interval     10
            _port              80
            register           0
        }
        define service {
            name               fast
            use                generic-service
            check_interval     1
            register           0
        }
        define service {
            hostgroup_name      g1
            service_description http
            use                 fast
            check_command       check_a
            _PORT               8080
        }
        """)
    http = config.services[("a", "http")]
    assert (http.max_check_attempts, http.check_interval) == (4, 1)
    assert http.customs == {"PORT": "8080"}
    assert config.services[("b", "http")].customs == {"PORT": "8080"}

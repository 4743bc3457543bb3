"""Escalations, dependencies, contact inheritance and the alerting main-file settings: loaded
from real trees, resolved into the wire records, and carried by the scheduler parts."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from shinha.arbiter.partition import plan
from shinha.config import load_config
from shinha.config.daemons import Scheduler
from shinha.config.loader import Config, LoadResult

BASE = """
define command {
    command_name check_ok
    command_line /bin/true
}
define command {
    command_name handle
    command_line /bin/true handle $ARG1$
}
define contact {
    contact_name alice
}
define contact {
    contact_name bob
}
define contact {
    contact_name carol
}
define contactgroup {
    contactgroup_name inner
    members carol
}
define contactgroup {
    contactgroup_name ops
    members bob
    contactgroup_members inner
}
define host {
    name base-host
    register 0
    check_command check_ok
    contacts alice
}
define host {
    use base-host
    host_name web1
}
define host {
    use base-host
    host_name web2
}
define host {
    use base-host
    host_name db
}
define hostgroup {
    hostgroup_name webs
    members web1,web2
}
define service {
    host_name web1,web2,db
    service_description ping
    check_command check_ok
}
define service {
    host_name web1,web2
    service_description http
    check_command check_ok
    contact_groups ops
}
"""


def load(tmp_path: Path, objects: str, main: str = "") -> LoadResult:
    root = tmp_path / "tree"
    root.mkdir(parents=True, exist_ok=True)
    (root / "objects.cfg").write_text(textwrap.dedent(BASE + objects), encoding="utf-8")
    (root / "shinha.cfg").write_text("cfg_file=objects.cfg\n" + textwrap.dedent(main),
                                     encoding="utf-8")
    return load_config(root / "shinha.cfg")


def loaded(tmp_path: Path, objects: str, main: str = "") -> Config:
    result = load(tmp_path, objects, main)
    assert not result.errors, "\n".join(map(str, result.errors))
    assert result.config is not None
    return result.config


def line_of(tmp_path: Path, text: str) -> int:
    lines = (tmp_path / "tree" / "objects.cfg").read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def errors(result: LoadResult) -> list[str]:
    return [f"{Path(d.file or '').name}:{d.line}: {d.message}" for d in result.errors]


def test_hostescalation_expands_hostgroups_and_contact_groups(tmp_path: Path) -> None:
    result = load(tmp_path, """
        define hostescalation {
            name esc-base
            register 0
            escalation_options d,r
        }
        define hostescalation {
            use esc-base
            hostgroup_name webs
            host_name db
            contacts alice
            contact_groups ops
            first_notification 2
            last_notification 4
            notification_interval 10
        }
    """)
    assert not result.errors and result.config is not None, errors(result)
    assert not [d for d in result.warnings if "hostescalation" in d.message]  # no "ignored"
    config = result.config
    escalations = {e.host: e for e in config.escalations}
    assert sorted(escalations) == ["db", "web1", "web2"]
    web1 = escalations["web1"]
    assert web1.service == ""
    assert web1.contacts == ["alice", "bob", "carol"]  # nested group inner → carol
    assert web1.escalation_options == ["d", "r"]  # from the template
    assert (web1.first_notification, web1.last_notification) == (2, 4)
    assert web1.notification_interval == 10
    assert web1.source.endswith(f"objects.cfg:{line_of(tmp_path, 'use esc-base') - 1}")


def test_shinken_escalation_objects_listed_by_hosts_and_services(tmp_path: Path) -> None:
    """Shinken's `define escalation` (named, by number or by time) and the `escalations`
    property of hosts and services."""
    config = loaded(tmp_path, """
        define escalation {
            escalation_name to-ops
            first_notification_time 60
            last_notification_time 120
            notification_interval 30
            contact_groups ops
            escalation_options d,c,r
        }
        define escalation {
            escalation_name third
            first_notification 3
            contacts bob
        }
        define host {
            use base-host
            host_name app
            escalations to-ops
        }
        define service {
            host_name app
            service_description api
            check_command check_ok
            escalations to-ops,third
        }
    """)
    records = sorted(config.escalations, key=lambda e: (e.host, e.service, e.source))
    assert [(e.host, e.service) for e in records] == [("app", ""), ("app", "api"),
                                                       ("app", "api")]
    host_esc, svc_time, svc_number = records[0], records[1], records[2]
    if svc_time.first_notification_time < 0:
        svc_time, svc_number = svc_number, svc_time
    assert (host_esc.first_notification_time, host_esc.last_notification_time) == (60, 120)
    assert host_esc.escalation_options == ["d", "r"]  # the host's letters of d,c,r
    assert svc_time.escalation_options == ["c", "r"]
    assert sorted(host_esc.contacts) == ["bob", "carol"]  # ops: bob and, nested, carol
    assert (svc_number.first_notification, svc_number.first_notification_time,
            svc_number.contacts) == (3, -1, ["bob"])


def test_an_unknown_escalation_name_is_an_error_at_its_line(tmp_path: Path) -> None:
    result = load(tmp_path, """
        define host {
            use base-host
            host_name app
            escalations nosuch
        }
    """)
    assert any("escalation 'nosuch'" in e and f":{line_of(tmp_path, 'escalations nosuch')}:"
               in e for e in errors(result)), errors(result)


def test_serviceescalation_per_service_with_star_and_exclusion(tmp_path: Path) -> None:
    config = loaded(tmp_path, """
        define serviceescalation {
            host_name *,!db
            service_description *,!ping
            contacts bob
            first_notification 3
            escalation_options w,c
        }
    """)
    pairs = sorted((e.host, e.service) for e in config.escalations)
    assert pairs == [("web1", "http"), ("web2", "http")]
    assert all(e.notification_interval == -1 for e in config.escalations)
    assert config.escalations[0].escalation_options == ["w", "c"]


def test_servicegroups_select_escalated_and_dependent_services(tmp_path: Path) -> None:
    """Nagios's servicegroup_name (escalations, dependencies) and
    dependent_servicegroup_name (dependencies)."""
    config = loaded(tmp_path, """
        define servicegroup {
            servicegroup_name front
            members web1,http,web2,http
        }
        define servicegroup {
            servicegroup_name backend
            members db,ping
        }
        define serviceescalation {
            servicegroup_name front
            contacts bob
            first_notification 2
        }
        define servicedependency {
            servicegroup_name backend
            dependent_servicegroup_name front
            notification_failure_criteria c
        }
    """)
    assert sorted((e.host, e.service) for e in config.escalations) == [
        ("web1", "http"), ("web2", "http")]
    assert sorted((d.host, d.service, d.master_host, d.master_service)
                  for d in config.dependencies) == [
        ("web1", "http", "db", "ping"), ("web2", "http", "db", "ping")]


def test_a_servicegroup_that_is_not_defined_is_an_error(tmp_path: Path) -> None:
    result = load(tmp_path, """
        define serviceescalation {
            servicegroup_name nosuch
            contacts bob
        }
    """)
    assert any("servicegroup 'nosuch' is not defined" in e for e in errors(result)), \
        errors(result)


def test_a_circular_dependency_is_an_error_at_its_line(tmp_path: Path) -> None:
    """nagios4 -v refuses a circular dependency (a deadlock: each waits on the other)."""
    objects = """
        define hostdependency {
            host_name web1
            dependent_host_name web2
            execution_failure_criteria d
        }
        define hostdependency {
            host_name web2
            dependent_host_name db
            execution_failure_criteria d
        }
        define hostdependency {
            host_name db
            dependent_host_name web1
            execution_failure_criteria d,u
        }
    """
    result = load(tmp_path, objects)
    loops = [d for d in result.errors if "circular" in d.message]
    assert [d.message for d in loops] == [
        "circular execution dependency: db -> web2 -> web1 -> db"], errors(result)
    assert loops[0].line == line_of(tmp_path, "dependent_host_name db") - 2
    # Notification criteria make a notification loop; criteria n on one of them: no loop.
    result = load(tmp_path, objects.replace("execution_failure_criteria",
                                            "notification_failure_criteria"))
    assert [d.message for d in result.errors if "circular" in d.message] == [
        "circular notification dependency: db -> web2 -> web1 -> db"]
    result = load(tmp_path, objects.replace("execution_failure_criteria d,u",
                                            "execution_failure_criteria n"))
    assert not [d for d in result.errors if "circular" in d.message], errors(result)


def test_hostdependency_pairs_every_dependent_with_every_master(tmp_path: Path) -> None:
    config = loaded(tmp_path, """
        define hostdependency {
            host_name db
            dependent_hostgroup_name webs
            execution_failure_criteria d,u
            notification_failure_criteria d
            inherits_parent 1
        }
    """)
    deps = sorted((d.host, d.master_host) for d in config.dependencies)
    assert deps == [("web1", "db"), ("web2", "db")]
    dep = config.dependencies[0]
    assert dep.execution_failure_criteria == ["d", "u"]
    assert dep.notification_failure_criteria == ["d"]
    assert dep.inherits_parent and dep.service == "" and dep.master_service == ""


def test_servicedependency_without_dependent_host_is_on_the_same_host(tmp_path: Path) -> None:
    config = loaded(tmp_path, """
        define servicedependency {
            hostgroup_name webs
            service_description ping
            dependent_service_description http
            execution_failure_criteria c,u
        }
        define servicedependency {
            host_name db
            service_description ping
            dependent_host_name web1
            dependent_service_description http,ping
        }
    """)
    deps = sorted((d.host, d.service, d.master_host, d.master_service)
                  for d in config.dependencies)
    assert deps == [("web1", "http", "db", "ping"), ("web1", "http", "web1", "ping"),
                    ("web1", "ping", "db", "ping"), ("web2", "http", "web2", "ping")]


@pytest.mark.parametrize(("objects", "prop", "needle"), [
    ("define hostescalation {\n host_name web1\n escalation_options d,x\n}\n",
     "escalation_options d,x", "escalation_options"),
    ("define serviceescalation {\n host_name web1\n service_description http\n"
     " escalation_options d\n}\n", "escalation_options d", "escalation_options"),
    ("define hostdependency {\n host_name db\n dependent_host_name web1\n"
     " execution_failure_criteria w\n}\n", "execution_failure_criteria w",
     "execution_failure_criteria"),
    ("define hostescalation {\n host_name nosuch\n}\n", "host_name nosuch", "'nosuch'"),
    ("define hostescalation {\n host_name web1\n contacts zed\n}\n", "contacts zed", "'zed'"),
    ("define hostescalation {\n host_name web1\n contact_groups nogroup\n}\n",
     "contact_groups nogroup", "'nogroup'"),
    ("define hostescalation {\n host_name web1\n escalation_period never\n}\n",
     "escalation_period never", "'never'"),
    ("define servicedependency {\n host_name web1\n service_description nope\n"
     " dependent_service_description http\n}\n", "service_description nope", "'nope'"),
    ("define hostescalation {\n host_name web1\n first_notification 3\n"
     " last_notification 2\n}\n", "last_notification 2", "before first_notification"),
    ("define hostescalation {\n host_name web1\n frist_notification 2\n}\n",
     "frist_notification", "frist_notification"),
])
def test_bad_input_is_an_error_at_its_line(tmp_path: Path, objects: str, prop: str,
                                           needle: str) -> None:
    result = load(tmp_path, objects)
    where = f"objects.cfg:{line_of(tmp_path, prop)}"
    assert any(e.startswith(where) and needle in e for e in errors(result)), errors(result)


def test_relation_without_hosts_is_an_error_at_its_define(tmp_path: Path) -> None:
    result = load(tmp_path, "define servicedependency {\n service_description ping\n"
                  " dependent_service_description http\n}\n")
    where = f"objects.cfg:{line_of(tmp_path, 'define servicedependency')}"
    assert any(e.startswith(where) and "host_name" in e for e in errors(result)), errors(result)


def test_service_without_contacts_takes_its_hosts(tmp_path: Path) -> None:
    config = loaded(tmp_path, "")
    ping = config.services[("web1", "ping")]
    assert ping.contacts == ("alice",)  # the host's, through its template
    http = config.services[("web1", "http")]
    assert http.contacts == () and http.contact_groups == ("ops",)  # its own: no inheritance


def test_main_file_alerting_settings(tmp_path: Path) -> None:
    config = loaded(tmp_path, "", """
        enable_notifications=0
        enable_flap_detection=0
        global_host_event_handler=handle!host
        notification_timeout=12
        high_host_flap_threshold=40.5
        cached_host_check_horizon=0
    """)
    main = config.main
    assert not main.enable_notifications and not main.enable_flap_detection
    assert main.enable_event_handlers
    assert main.global_host_event_handler == "handle!host"
    assert (main.notification_timeout, main.event_handler_timeout) == (12, 30)
    assert (main.high_host_flap_threshold, main.low_host_flap_threshold) == (40.5, 5.0)
    assert main.cached_host_check_horizon == 0
    warned = " ".join(d.message for d in load(tmp_path, "", "enable_notifications=0\n").warnings)
    assert "enable_notifications" not in warned


def test_global_event_handler_must_name_a_command(tmp_path: Path) -> None:
    result = load(tmp_path, "", "\nglobal_service_event_handler=nohandler!x\n")
    assert any(e.startswith("shinha.cfg:3") and "nohandler" in e for e in errors(result)), \
        errors(result)


def test_host_event_handler_must_name_a_command(tmp_path: Path) -> None:
    result = load(tmp_path, "define host {\n host_name h9\n event_handler nocmd!1\n}\n")
    where = f"objects.cfg:{line_of(tmp_path, 'event_handler nocmd')}"
    assert any(e.startswith(where) and "nocmd" in e for e in errors(result)), errors(result)


def _schedulers(count: int) -> list[Scheduler]:
    return [Scheduler(scheduler_name=f"s{i}", address="127.0.0.1", port=7800 + i)
            for i in range(count)]


def test_partition_keeps_dependency_linked_hosts_together_and_fills_parts(
        tmp_path: Path) -> None:
    many = "".join(f"define host {{\n use base-host\n host_name h{i}\n}}\n" for i in range(40))
    deps = "".join(f"define hostdependency {{\n host_name h{i}\n dependent_host_name "
                   f"h{i + 20}\n}}\n" for i in range(20))
    config = loaded(tmp_path, many + deps + """
        define servicedependency {
            host_name db
            service_description ping
            dependent_host_name web2
            dependent_service_description http
        }
        define serviceescalation {
            host_name web2
            service_description http
            contacts alice
        }
        define hostescalation {
            host_name db
            contact_groups inner
        }
    """, "enable_event_handlers=0\nlow_service_flap_threshold=7\n")
    result = plan(config, _schedulers(4), [])
    owner = result.host_owner
    assert len(set(owner.values())) > 1  # the cut does spread hosts
    for i in range(20):
        assert owner[f"h{i}"] == owner[f"h{i + 20}"]
    assert owner["web2"] == owner["db"]
    part = result.parts[owner["web2"]]
    assert {(d.host, d.master_host) for d in part.dependencies} >= {("web2", "db")}
    assert all(d.host in {h.host_name for h in part.hosts} for d in part.dependencies)
    assert sorted((e.host, e.service) for e in part.escalations) == [("db", ""),
                                                                    ("web2", "http")]
    # alice (hosts, escalation), bob (ops via http), carol (inner: nested in ops, escalation)
    assert [c.contact_name for c in part.contacts] == ["alice", "bob", "carol"]
    assert [g.contactgroup_name for g in part.contactgroups] == ["ops"]
    assert not part.alerting.enable_event_handlers
    assert part.alerting.low_service_flap_threshold == 7
    other = next(p for name, p in result.parts.items() if name != owner["web2"] and p.hosts)
    assert not other.escalations
    assert [c.contact_name for c in other.contacts] == ["alice"]
    assert not other.contactgroups


def test_part_hash_changes_with_an_escalation(tmp_path: Path) -> None:
    esc = "define hostescalation {\n host_name web1\n contacts bob\n first_notification %d\n}\n"
    first = loaded(tmp_path / "a", esc % 2)
    second = loaded(tmp_path / "b", esc % 3)
    hashes = [{p.part_id: p.part_hash for p in plan(c, _schedulers(1), []).parts.values()}
              for c in (first, second)]
    assert hashes[0]["s0"] != hashes[1]["s0"]

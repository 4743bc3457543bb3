"""The strongest check of inheritance and service attachment: the real Nagios 4 and shinha read
the same tree, through the same main file, and must resolve the same objects.

`nagios4 -v -p` verifies the tree and writes every resolved object (templates applied, services
copied to each host, groups expanded) to its precached object file; that file is compared with
what `load_config` gives.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from shinha.config.loader import Config, load_config
from shinha.config.objects import Host, Service

NAGIOS_PATHS = ("/usr/sbin/nagios4",)

COMMANDS = """
define command {
    command_name check_ping
    command_line $USER1$/check_ping -H $HOSTADDRESS$ -w $ARG1$ -c $ARG2$
}
define command {
    command_name check_tcp
    command_line $USER1$/check_tcp -H $HOSTADDRESS$ -p $ARG1$
}
define command {
    command_name check_host
    command_line $USER1$/check_ping -H $HOSTADDRESS$ -w 1000,50% -c 2000,100%
}
define command {
    command_name notify
    command_line /bin/true $NOTIFICATIONTYPE$
}
define timeperiod {
    timeperiod_name 24x7
    alias           Always
    sunday          00:00-24:00
    monday          00:00-24:00
    tuesday         00:00-24:00
    wednesday       00:00-24:00
    thursday        00:00-24:00
    friday          00:00-24:00
    saturday        00:00-24:00
}
define contact {
    name                          admin-tpl
    host_notification_period      24x7
    service_notification_period   24x7
    host_notification_options     d,u,r
    service_notification_options  w,u,c,r
    host_notification_commands    notify
    service_notification_commands notify
    register                      0
}
define contact {
    contact_name                  admin
    alias                         Admin
    use                           admin-tpl
    contactgroups                 admins
}
define contact {
    contact_name                  oncall
    alias                         On call
    use                           admin-tpl
}
define contactgroup {
    contactgroup_name admins
    alias             Admins
}
define contactgroup {
    contactgroup_name    everyone
    alias                Everyone
    contactgroup_members admins
    members              oncall
}
"""

TEMPLATES = """
; generic-host <- linux <- webserver; critical and behind-router stand alone.
define host {
    name                  generic-host
    check_command         check_host
    max_check_attempts    3
    check_interval        5
    retry_interval        1
    check_period          24x7
    notification_period   24x7
    notification_interval 60
    contact_groups        admins
    hostgroups            all-hosts
    _OWNER                ops
    register              0
}
define host {
    name                  linux
    use                   generic-host
    max_check_attempts    4
    hostgroups            +linux
    _os                   linux
    register              0
}
define host {
    name                  webserver
    use                   linux
    hostgroups            +web
    _ROLE                 web
    register              0
}
define host {
    name                  critical
    check_interval        1
    retry_interval        2
    max_check_attempts    10
    check_command         check_ping!50,5%!100,10%
    _OWNER                noc
    _os                   unknown
    hostgroups            critical
    contacts              oncall
    register              0
}
define host {
    name                  behind-router
    parents               router1
    register              0
}
; generic-service <- fast; paranoid stands alone.
define service {
    name                  generic-service
    max_check_attempts    3
    check_interval        10
    retry_interval        2
    check_period          24x7
    notification_period   24x7
    notification_interval 60
    contact_groups        admins
    _PORT                 0
    register              0
}
define service {
    name                  fast
    use                   generic-service
    check_interval        1
    max_check_attempts    5
    register              0
}
define service {
    name                  paranoid
    max_check_attempts    9
    check_interval        30
    retry_interval        7
    _PORT                 1
    _extra                paranoid
    contacts              +oncall
    register              0
}
"""

HOSTS = """
define host {
    host_name router1
    use       generic-host
    address   10.0.0.1
}
define host {
    host_name router2
    use       generic-host
    address   10.0.0.2
}
define host {
    host_name web1
    use       webserver,critical
    address   10.0.1.1
}
define host {
    host_name web2
    use       critical,webserver
    address   10.0.1.2
}
define host {
    host_name web3
    use       webserver,behind-router
    parents   +router2
    _OS       bsd
    _Role     frontend
}
define host {
    host_name     db1
    use           linux
    hostgroups    +db
    parents       router1
    check_command null
}
define host {
    host_name  db2
    use        linux,behind-router
    parents    null
    hostgroups db
}
define host {
    host_name          lone
    max_check_attempts 2
    check_period       24x7
    contacts           admin
    _OWNER             nobody
}
define hostgroup {
    hostgroup_name all-hosts
}
define hostgroup {
    hostgroup_name linux
}
define hostgroup {
    hostgroup_name web
}
define hostgroup {
    hostgroup_name db
}
define hostgroup {
    hostgroup_name critical
}
define hostgroup {
    hostgroup_name routers
    members        router1,router2
}
define hostgroup {
    hostgroup_name not-routers
    members        *,!router1,!router2
}
define hostgroup {
    hostgroup_name    servers
    hostgroup_members web,db
    members           lone
}
define hostgroup {
    hostgroup_name    top
    hostgroup_members servers
}
"""

# Not in the tree, where shinha knowingly differs: `null` on a custom variable (Nagios 4 keeps
# the text "null" as its value) or on a number (Nagios 4 reads it as 0; its documentation
# gives `null` for strings only). shinha cancels the inherited value in both cases.
SERVICES = """
define service {
    host_name           *
    service_description PING
    use                 generic-service
    check_command       check_ping!100,20%!500,60%
}
define service {
    hostgroup_name      web
    service_description HTTP
    use                 fast,paranoid
    check_command       check_tcp!80
    servicegroups       web-checks
}
define service {
    host_name           web2
    service_description HTTP
    use                 paranoid,fast
    check_command       check_tcp!8080
    _PORT               8080
}
define service {
    hostgroup_name      linux,!web
    service_description SSH
    use                 generic-service
    check_command       check_tcp!22
}
define service {
    hostgroup_name      servers
    host_name           !web1
    service_description DB port
    use                 fast
    check_command       check_tcp!3306
}
define service {
    hostgroup_name      top,!db
    service_description Disk
    use                 generic-service
    check_command       check_tcp!5666
    servicegroups       +storage
}
define service {
    hostgroup_name      not-routers
    host_name           router1
    service_description Uptime
    use                 paranoid,generic-service
    check_command       check_tcp!161
    contacts            null
}
define service {
    hostgroup_name      routers
    service_description Uptime
    use                 fast
    check_command       check_tcp!162
}
define servicegroup {
    servicegroup_name web-checks
    alias             Web
    members           web1,PING,web2,PING
}
define servicegroup {
    servicegroup_name storage
    alias             Storage
}
define servicegroup {
    servicegroup_name    everything
    alias                Everything
    servicegroup_members web-checks,storage
}
"""

FILES = {"commands.cfg": COMMANDS, "templates.cfg": TEMPLATES, "hosts.cfg": HOSTS,
         "services.cfg": SERVICES}


def nagios4() -> str:
    """Path of the nagios4 binary; fail (never skip) when it is not installed."""
    found = shutil.which("nagios4") or next(
        (p for p in NAGIOS_PATHS if os.access(p, os.X_OK)), None)
    if found is None:
        pytest.fail("nagios4 is not installed: install the Debian package nagios4-core "
                    "(`make deps` does it) to compare shinha with the real Nagios")
    return found


def write_compare_tree(root: Path) -> Path:
    """Write the objects, a resource file and a main file that both Nagios 4 and shinha read;
    return the main file."""
    objects = root / "objects"
    objects.mkdir(parents=True)
    for name, text in FILES.items():
        (objects / name).write_text(textwrap.dedent(text), encoding="utf-8")
    (root / "resource.cfg").write_text("$USER1$=/usr/lib/nagios/plugins\n", encoding="utf-8")
    var = root / "var"
    (var / "checkresults").mkdir(parents=True)
    main = root / "nagios.cfg"
    main.write_text("\n".join([
        "cfg_dir=objects",
        "resource_file=resource.cfg",
        f"log_file={var / 'nagios.log'}",
        f"check_result_path={var / 'checkresults'}",
        f"lock_file={var / 'nagios.lock'}",
        f"temp_file={var / 'nagios.tmp'}",
        f"temp_path={var}",
        f"status_file={var / 'status.dat'}",
        f"state_retention_file={var / 'retention.dat'}",
        f"object_cache_file={var / 'objects.cache'}",
        f"precached_object_file={var / 'objects.precache'}",
        f"command_file={var / 'nagios.cmd'}",
        f"debug_file={var / 'nagios.debug'}",
        # As root, Nagios drops to nagios_user: make that the current user.
        f"nagios_user={pwd.getpwuid(os.geteuid()).pw_name}",
        f"nagios_group={grp.getgrgid(os.getegid()).gr_name}",
        "illegal_object_name_chars=`~!$%^&*|'\"<>?,()=",
        "illegal_macro_output_chars=`~$&|'\"<>",
        "check_external_commands=0",
        "enable_notifications=0",
        "",
    ]), encoding="utf-8")
    return main


def read_resolved(path: Path) -> dict[str, list[dict[str, str]]]:
    """Read Nagios's object cache: `define TYPE {` blocks of tab-separated `key value`."""
    objects: dict[str, list[dict[str, str]]] = defaultdict(list)
    current: dict[str, str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if text.startswith("define ") and text.endswith("{"):
            current = {}
            objects[text[len("define "):-1].strip()].append(current)
        elif text == "}":
            current = None
        elif current is not None and text:
            key, _, value = text.partition("\t")
            current[key] = value.strip()
    return objects


class Resolved:
    """What both tools made of the tree."""

    def __init__(self, nagios: dict[str, list[dict[str, str]]], shinha: Config) -> None:
        self.nagios = nagios
        self.shinha = shinha


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> Resolved:
    binary = nagios4()
    root = tmp_path_factory.mktemp("nagios-compare")
    main = write_compare_tree(root)
    done = subprocess.run([binary, "-v", "-p", str(main)], cwd=root, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, f"nagios4 rejects the tree:\n{done.stdout}\n{done.stderr}"
    assert "Total Errors:   0" in done.stdout, done.stdout
    cache = root / "var" / "objects.precache"
    assert cache.is_file(), f"nagios4 wrote no precached object file:\n{done.stdout}"
    result = load_config(main)
    assert not result.errors, "\n".join(map(str, result.errors))
    assert result.config is not None
    return Resolved(read_resolved(cache), result.config)


def names(value: str | None) -> list[str]:
    return sorted(x.strip() for x in (value or "").split(",") if x.strip())


def customs(block: dict[str, str]) -> dict[str, str]:
    return {k[1:]: v for k, v in block.items() if k.startswith("_")}


def view_nagios(block: dict[str, str]) -> dict[str, Any]:
    """The compared properties of a host or service of Nagios's object cache."""
    return {
        "check_command": block.get("check_command", ""),
        "max_check_attempts": int(block["max_check_attempts"]),
        "check_interval": float(block["check_interval"]),
        "retry_interval": float(block["retry_interval"]),
        "contacts": names(block.get("contacts")),
        "contact_groups": names(block.get("contact_groups")),
        "customs": customs(block),
    }


def view_shinha(obj: Host | Service) -> dict[str, Any]:
    return {
        "check_command": obj.check_command,
        "max_check_attempts": obj.max_check_attempts,
        "check_interval": obj.check_interval,
        "retry_interval": obj.retry_interval,
        "contacts": sorted(obj.contacts),
        "contact_groups": sorted(obj.contact_groups),
        "customs": dict(obj.customs),
    }


def test_nagios4_is_installed() -> None:
    assert os.access(nagios4(), os.X_OK)


def test_the_tree_exercises_what_it_should(resolved: Resolved) -> None:
    """Guard the comparison itself: Nagios saw the objects the tree is about."""
    hosts = {b["host_name"] for b in resolved.nagios["host"]}
    assert hosts == {"router1", "router2", "web1", "web2", "web3", "db1", "db2", "lone"}
    assert len(resolved.nagios["service"]) > 20
    assert any(b.get("_OS") == "bsd" for b in resolved.nagios["host"])


def test_same_hosts(resolved: Resolved) -> None:
    nagios = {b["host_name"]: b for b in resolved.nagios["host"]}
    assert sorted(resolved.shinha.hosts) == sorted(nagios)


@pytest.mark.parametrize("host", ["router1", "router2", "web1", "web2", "web3", "db1", "db2",
                                  "lone"])
def test_same_host_properties(resolved: Resolved, host: str) -> None:
    block = next(b for b in resolved.nagios["host"] if b["host_name"] == host)
    ours = resolved.shinha.hosts[host]
    assert view_shinha(ours) == view_nagios(block)
    assert (ours.address or ours.host_name) == block["address"]
    assert sorted(ours.parents) == names(block.get("parents"))


def test_same_services_per_host(resolved: Resolved) -> None:
    nagios: dict[str, list[str]] = defaultdict(list)
    for block in resolved.nagios["service"]:
        nagios[block["host_name"]].append(block["service_description"])
    ours: dict[str, list[str]] = defaultdict(list)
    for host, description in resolved.shinha.services:
        ours[host].append(description)
    assert {h: sorted(d) for h, d in ours.items()} == {h: sorted(d) for h, d in nagios.items()}


def test_same_service_properties(resolved: Resolved) -> None:
    nagios = {(b["host_name"], b["service_description"]): view_nagios(b)
              for b in resolved.nagios["service"]}
    ours = {key: view_shinha(svc) for key, svc in resolved.shinha.services.items()}
    differences = {key: (ours.get(key), theirs) for key, theirs in nagios.items()
                   if ours.get(key) != theirs}
    assert differences == {}, "\n".join(f"{k}: shinha {o} != nagios {t}"
                                        for k, (o, t) in differences.items())


def test_same_hostgroup_members(resolved: Resolved) -> None:
    nagios = {b["hostgroup_name"]: names(b.get("members")) for b in resolved.nagios["hostgroup"]}
    ours = {name: sorted(g.members) for name, g in resolved.shinha.hostgroups.items()}
    assert ours == nagios
    # and the other way: each host lists the groups that have it as a member
    for host_name, host in resolved.shinha.hosts.items():
        assert sorted(host.hostgroups) == sorted(g for g, m in nagios.items() if host_name in m)


def test_same_servicegroup_members(resolved: Resolved) -> None:
    def pairs(members: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
        return sorted(zip(members[::2], members[1::2], strict=True))

    nagios = {b["servicegroup_name"]: pairs(b.get("members", "").split(","))
              if b.get("members") else [] for b in resolved.nagios["servicegroup"]}
    ours = {name: pairs(g.members) for name, g in resolved.shinha.servicegroups.items()}
    assert ours == nagios
    for key, svc in resolved.shinha.services.items():
        assert sorted(svc.servicegroups) == sorted(g for g, m in nagios.items() if key in m)


def test_same_contactgroup_members(resolved: Resolved) -> None:
    nagios = {b["contactgroup_name"]: names(b.get("members"))
              for b in resolved.nagios["contactgroup"]}
    ours = {name: sorted(g.members) for name, g in resolved.shinha.contactgroups.items()}
    assert ours == nagios

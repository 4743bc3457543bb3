"""Macro expansion of check command lines, on objects loaded from a real tree."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from shinha.config.loader import Config, LoadResult
from shinha.config.macros import (
    MacroContext,
    command_line,
    expand,
    split_check_command,
    used_macros,
)

LoadObjects = Callable[..., LoadResult]  # the load_objects fixture of conftest.py

RESOURCE = """\
    # the resource file of the tree
    $USER1$=/usr/lib/nagios/plugins
    $USER10$=s3cret
    """

CHECK_IT = ("$USER1$/check_it -H $HOSTADDRESS$ -n $HOSTNAME$ -s '$SERVICEDESC$' "
            "-1 '$ARG1$' -2 '$ARG2$' -3 '$ARG3$'")
CHECK_SNMP = ("$USER1$/check_snmp -H $HOSTADDRESS$ -C $_HOSTSNMP_COMMUNITY$ "
              "-p $_SERVICEPORT$ -o $ARG1$")

OBJECTS = r"""
    define command {
        command_name check_it
        command_line CHECK_IT
    }
    define command {
        command_name check_snmp
        command_line CHECK_SNMP
    }
    define command {
        command_name check_odd
        command_line /bin/echo price $$5 state $HOSTSTATE$ $NO_SUCH_MACRO$ arg '$ARG1$'
    }
    define command {
        command_name check_ten
        command_line /bin/echo $ARG1$ $ARG10$ $ARG2$
    }
    define host {
        name             linux
        _snmp_community  public
        register         0
    }
    define host {
        host_name        web1
        address          192.0.2.10
        use              linux
        check_command    check_it!host check
    }
    define host {
        host_name        db1
        use              linux
        _SNMP_COMMUNITY  secret
    }
    define service {
        name             port-8080
        _port            8080
        register         0
    }
    define service {
        host_name           web1,db1
        service_description HTTP
        check_command       check_it!-w 5!-c 10
    }
    define service {
        host_name           web1
        service_description Bang
        check_command       check_it!a\!b!c
    }
    define service {
        host_name           web1
        service_description Macros in args
        check_command       check_it!$HOSTADDRESS$:443!$HOSTNAME$.example.org!$USER10$
    }
    define service {
        host_name           web1,db1
        service_description SNMP
        use                 port-8080
        check_command       check_snmp!sysUpTime.0
    }
    define service {
        host_name           web1
        service_description SNMP 161
        use                 port-8080
        _PORT               161
        check_command       check_snmp!ifInOctets.1
    }
    define service {
        host_name           web1
        service_description Odd
        check_command       check_odd!10$$
    }
    define service {
        host_name           web1
        service_description Literal
        check_command       check_odd!$$HOSTNAME$$ $$USER1$$
    }
    define service {
        host_name           web1
        service_description Ten
        check_command       check_ten!one!two!3!4!5!6!7!8!9!ten
    }
"""


@pytest.fixture
def config(load_objects: LoadObjects) -> Config:
    objects = OBJECTS.replace("command_line CHECK_IT", f"command_line {CHECK_IT}").replace(
        "command_line CHECK_SNMP", f"command_line {CHECK_SNMP}")
    result = load_objects(objects, resource=RESOURCE)
    assert not result.errors, "\n".join(map(str, result.errors))
    assert result.config is not None
    return result.config


def line_of(config: Config, host: str, service: str | None = None,
            runtime: Mapping[str, str] | None = None) -> str:
    """The command line of a loaded host's or service's check, as the scheduler builds it."""
    h = config.hosts[host]
    s = config.services[(host, service)] if service is not None else None
    check = (s or h).check_command
    name, _ = split_check_command(check)
    ctx = MacroContext(host=h, service=s, resources=config.resources, runtime=runtime or {})
    return command_line(check, config.commands[name].command_line, ctx)


PLUGINS = "/usr/lib/nagios/plugins"


def test_args_fill_in_order_and_missing_args_are_empty(config: Config) -> None:
    assert line_of(config, "web1", "HTTP") == (
        f"{PLUGINS}/check_it -H 192.0.2.10 -n web1 -s 'HTTP' -1 '-w 5' -2 '-c 10' -3 ''")


def test_hostaddress_defaults_to_host_name(config: Config) -> None:
    assert config.hosts["db1"].address == ""
    assert line_of(config, "db1", "HTTP") == (
        f"{PLUGINS}/check_it -H db1 -n db1 -s 'HTTP' -1 '-w 5' -2 '-c 10' -3 ''")


def test_host_check_command_line(config: Config) -> None:
    assert line_of(config, "web1").startswith(
        f"{PLUGINS}/check_it -H 192.0.2.10 -n web1 -s ")
    assert line_of(config, "web1").endswith("-1 'host check' -2 '' -3 ''")


def test_escaped_bang_is_part_of_an_argument(config: Config) -> None:
    assert config.services[("web1", "Bang")].check_command == r"check_it!a\!b!c"
    assert split_check_command(r"check_it!a\!b!c") == ("check_it", ["a!b", "c"])
    assert line_of(config, "web1", "Bang").endswith("-1 'a!b' -2 'c' -3 ''")


def test_macros_inside_args_are_expanded(config: Config) -> None:
    assert line_of(config, "web1", "Macros in args").endswith(
        "-1 '192.0.2.10:443' -2 'web1.example.org' -3 's3cret'")


def test_user_macros_come_from_the_resource_file(config: Config) -> None:
    assert config.resources == {"USER1": PLUGINS, "USER10": "s3cret"}
    # $USER10$ is not $USER1$ followed by "0".
    assert line_of(config, "web1", "Macros in args").startswith(f"{PLUGINS}/check_it ")
    assert "s3cret" in line_of(config, "web1", "Macros in args")


def test_custom_host_and_service_macros(config: Config) -> None:
    # _snmp_community comes lower-case from the template; custom variables are upper-case.
    assert line_of(config, "web1", "SNMP") == (
        f"{PLUGINS}/check_snmp -H 192.0.2.10 -C public -p 8080 -o sysUpTime.0")
    # The host's own value beats the template's; the service's own too.
    assert line_of(config, "db1", "SNMP") == (
        f"{PLUGINS}/check_snmp -H db1 -C secret -p 8080 -o sysUpTime.0")
    assert line_of(config, "web1", "SNMP 161") == (
        f"{PLUGINS}/check_snmp -H 192.0.2.10 -C public -p 161 -o ifInOctets.1")


def test_double_dollar_is_a_dollar_and_unknown_macros_stay(config: Config) -> None:
    assert line_of(config, "web1", "Odd") == (
        "/bin/echo price $5 state $HOSTSTATE$ $NO_SUCH_MACRO$ arg '10$'")


def test_runtime_macros_come_from_the_scheduler(config: Config) -> None:
    assert line_of(config, "web1", "Odd", runtime={"HOSTSTATE": "UP"}) == (
        "/bin/echo price $5 state UP $NO_SUCH_MACRO$ arg '10$'")


def test_argument_values_are_expanded_once(config: Config) -> None:
    # `$$HOSTNAME$$` in an argument is the literal text `$HOSTNAME$`: it must not be expanded
    # again once placed in the command line.
    assert line_of(config, "web1", "Literal").endswith("arg '$HOSTNAME$ $USER1$'")


def test_arg10_is_not_arg1_followed_by_zero(config: Config) -> None:
    assert line_of(config, "web1", "Ten") == "/bin/echo one ten two"


def test_service_macros_name_the_service_of_each_host(config: Config) -> None:
    web = line_of(config, "web1", "HTTP")
    db = line_of(config, "db1", "HTTP")
    assert "-n web1" in web and "-n db1" in db
    assert "-s 'HTTP'" in web and "-s 'HTTP'" in db


def test_expand_without_args_empties_arg_macros(config: Config) -> None:
    ctx = MacroContext(host=config.hosts["web1"], resources=config.resources)
    assert expand("$USER1$/x $ARG1$|$ARG2$ $HOSTNAME$", ctx) == f"{PLUGINS}/x | web1"
    assert expand("no macro here", ctx) == "no macro here"


def test_used_macros_lists_the_names(config: Config) -> None:
    assert used_macros(config.commands["check_snmp"].command_line) == [
        "USER1", "HOSTADDRESS", "_HOSTSNMP_COMMUNITY", "_SERVICEPORT", "ARG1"]

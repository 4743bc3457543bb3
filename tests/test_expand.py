"""Object expansion by dialect: services on host templates ("packs"), duplicate_foreach,
hostgroup expressions, regular-expression names, implicit groups, a service defined twice,
services on empty hostgroups, and the references of the types shinha does not act on.

How the expected results are known:
- Nagios: the tests that call `nagios()` run the real nagios4 (`-v -p`) on the very tree shinha
  loads and compare its verdict and the services of its precached object file.
- Shinken 2.4.3 and Alignak 2.1.5: the trees of the Shinken/Alignak tests were run through
  those engines' own configuration check (`shinken-arbiter -v` on Python 2.7 and
  `alignak-arbiter -V` on Python 3.6, both from PyPI), with `Config.is_correct` wrapped to
  print the services they made; the expected sets below are what both printed. Where they
  disagree, the test says so and which one shinha follows.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from shinha.config.diagnostics import Diagnostic
from shinha.config.loader import Config, LoadResult, load_config
from tests.test_nagios_compare import nagios4, read_resolved

ENGINES = ("shinken", "alignak")

BASE = """
define command {
    command_name c
    command_line /bin/true $ARG1$ $ARG2$
}
define timeperiod {
    timeperiod_name 24x7
    alias           Always
    monday          00:00-24:00
}
define contact {
    contact_name                  admin
    alias                         Admin
    host_notification_period      24x7
    service_notification_period   24x7
    host_notification_options     d
    service_notification_options  c
    host_notification_commands    c
    service_notification_commands c
}
define host {
    name                  gh
    max_check_attempts    3
    check_period          24x7
    notification_period   24x7
    notification_interval 0
    check_command         c
    contacts              admin
    register              0
}
define service {
    name                  gs
    max_check_attempts    3
    check_interval        1
    retry_interval        1
    check_period          24x7
    notification_period   24x7
    notification_interval 0
    contacts              admin
    check_command         c
    register              0
}
"""

Load = Callable[..., LoadResult]


@pytest.fixture
def load(tmp_path: Path) -> Load:
    """load(objects, dialect="shinken", directives=()): write BASE + objects under a main
    file of the dialect's name (shinken.cfg, alignak.cfg, nagios.cfg), load it."""
    count = [0]

    def run(objects: str, dialect: str = "shinken", directives: Sequence[str] = ()
            ) -> LoadResult:
        count[0] += 1
        root = tmp_path / f"tree-{count[0]}"
        root.mkdir()
        (root / "objects.cfg").write_text(textwrap.dedent(BASE) + textwrap.dedent(objects),
                                          encoding="utf-8")
        main = root / f"{dialect}.cfg"
        main.write_text("\n".join(["cfg_file=objects.cfg", *directives, ""]), encoding="utf-8")
        return load_config(main)

    return run


def about_objects(diags: list[Diagnostic]) -> list[Diagnostic]:
    """Diagnostics about the objects, not the absent daemons or the unused properties."""
    return [d for d in diags if "the cluster cannot run" not in d.message
            and not d.message.startswith("ignored:") and "directive" not in d.message]


def loaded(result: LoadResult) -> Config:
    assert result.errors == [], "\n".join(map(str, result.errors))
    assert result.config is not None
    return result.config


def services(config: Config) -> set[tuple[str, str]]:
    return set(config.services)


def line_of(result: LoadResult, text: str) -> int:
    """The line of the first line of objects.cfg that contains `text`."""
    assert result.config is not None
    path = Path(result.config.main_file).parent / "objects.cfg"
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line)


# -- Nagios 4 itself --------------------------------------------------------------------------


def nagios(objects: str, tmp_path: Path, directives: Sequence[str] = ()
           ) -> tuple[bool, str, set[tuple[str, str, str]], LoadResult]:
    """Run nagios4 and shinha on one tree (BASE + objects, main file nagios.cfg): nagios4's
    verdict and output, the (host, service, check_command) it made, and shinha's result."""
    root = tmp_path / "nagios"
    var = root / "var"
    (var / "checkresults").mkdir(parents=True)
    (root / "objects.cfg").write_text(textwrap.dedent(BASE) + textwrap.dedent(objects),
                                      encoding="utf-8")
    main = root / "nagios.cfg"
    main.write_text("\n".join([
        "cfg_file=objects.cfg", f"log_file={var / 'nagios.log'}",
        f"check_result_path={var / 'checkresults'}", f"lock_file={var / 'nagios.lock'}",
        f"temp_file={var / 'nagios.tmp'}", f"temp_path={var}",
        f"status_file={var / 'status.dat'}", f"state_retention_file={var / 'retention.dat'}",
        f"object_cache_file={var / 'objects.cache'}",
        f"precached_object_file={var / 'objects.precache'}",
        f"command_file={var / 'nagios.cmd'}", f"debug_file={var / 'nagios.debug'}",
        f"nagios_user={pwd.getpwuid(os.geteuid()).pw_name}",
        f"nagios_group={grp.getgrgid(os.getegid()).gr_name}",
        "check_external_commands=0", "enable_notifications=0", *directives, ""]),
        encoding="utf-8")
    done = subprocess.run([nagios4(), "-v", "-p", str(main)], cwd=root, capture_output=True,
                          text=True, timeout=120, check=False)
    made: set[tuple[str, str, str]] = set()
    cache = var / "objects.precache"
    if done.returncode == 0 and cache.is_file():
        made = {(s["host_name"], s["service_description"], s.get("check_command", ""))
                for s in read_resolved(cache)["service"]}
    return done.returncode == 0, done.stdout, made, load_config(main)


def made_by(result: LoadResult) -> set[tuple[str, str, str]]:
    assert result.config is not None
    return {(h, d, s.check_command) for (h, d), s in result.config.services.items()}


# -- services on host templates (packs) -------------------------------------------------------

PACKS = """
define host {
    name     linux
    use      gh
    register 0
}
define host {
    name     web
    use      linux
    register 0
}
define host {
    name     http
    use      gh
    register 0
}
define host {
    name     windows
    use      gh
    register 0
}
define host {
    host_name deep
    use       web
}
define host {
    host_name lh
    use       linux,http
}
define host {
    host_name wh
    use       windows,http
}
define host {
    host_name plain
    use       gh
}
define service {
    host_name           linux
    service_description Cpu
    use                 gs
    register            0
}
define service {
    host_name           linux&http
    service_description And
    use                 gs
    register            0
}
define service {
    host_name           http&!linux
    service_description Not
    use                 gs
    register            0
}
define service {
    host_name           linux,windows
    service_description List
    use                 gs
    register            0
}
"""


@pytest.mark.parametrize("dialect", ENGINES)
def test_a_service_on_a_host_template_is_on_every_host_using_it(load: Load,
                                                                dialect: str) -> None:
    config = loaded(load(PACKS, dialect))
    assert services(config) == {
        ("deep", "Cpu"), ("lh", "Cpu"),           # deep through web -> linux
        ("lh", "And"),                            # linux & http
        ("wh", "Not"),                            # http & !linux
        ("deep", "List"), ("lh", "List"), ("wh", "List"),
    }
    assert config.services[("deep", "Cpu")].max_check_attempts == 3  # from gs


def test_in_the_nagios_dialect_a_service_template_attaches_nothing(
        load: Load, tmp_path: Path) -> None:
    accepted, out, made, result = nagios(PACKS + """
        define service {
            host_name           plain
            service_description Real
            use                 gs
        }
        """, tmp_path)  # nagios4 refuses a tree with no service
    assert accepted, out
    assert made == {("plain", "Real", "c")}
    assert result.errors == []
    assert made_by(result) == made


@pytest.mark.parametrize("dialect", [*ENGINES, "nagios"])
def test_a_registered_service_on_a_host_template_is_an_error(load: Load,
                                                            dialect: str) -> None:
    # nagios4: "Could not find any host matching 'linux'"; Shinken and Alignak: "unknown
    # host_name 'linux'".
    result = load(PACKS.replace("    register            0\n", "", 1), dialect)
    errors = [e for e in about_objects(result.errors) if "host_name" in e.message]
    assert len(errors) == 1, errors
    assert "host_name: host 'linux' is not defined" in errors[0].message
    assert errors[0].line == line_of(result, "host_name           linux")
    assert result.config is not None
    assert ("deep", "Cpu") not in result.config.services


@pytest.mark.parametrize("dialect", ENGINES)
def test_the_hosts_own_definition_beats_the_templates(load: Load, dialect: str) -> None:
    # Alignak 2.1.5 keeps the template's (the one it creates last) and warns; Shinken 2.4.3
    # drops both. shinha keeps the host's own, with a warning at the template's service.
    result = load(PACKS + """
        define service {
            host_name           lh
            service_description Cpu
            use                 gs
            check_command       c!own
        }
        """, dialect)
    config = loaded(result)
    assert config.services[("lh", "Cpu")].check_command == "c!own"
    assert config.services[("deep", "Cpu")].check_command == "c"
    assert len(config.services) == 7
    [warning] = [w for w in result.warnings if "'Cpu' on host 'lh'" in w.message]
    assert "comes from a host template" in warning.message
    assert warning.line == line_of(result, "service_description Cpu") - 2  # the template's


@pytest.mark.parametrize("dialect", ENGINES)
def test_a_template_naming_a_host_attaches_nothing_with_a_warning(load: Load,
                                                                  dialect: str) -> None:
    result = load(PACKS + """
        define service {
            host_name           plain
            service_description OnAHost
            use                 gs
            register            0
        }
        """, dialect)
    config = loaded(result)
    assert not any(d == "OnAHost" for _, d in config.services)
    [warning] = [w for w in result.warnings if "OnAHost" in w.message]
    assert "host template 'plain' is not defined" in warning.message
    assert warning.hint is not None and "'plain' is a host" in warning.hint


FILTERED = """
define host {
    name             noisy
    use              linux
    service_excludes Cpu
    register         0
}
define host {
    host_name        h1
    use              linux
    service_excludes Cpu
}
define host {
    host_name        h2
    use              linux
    service_includes Mem,Cpu
}
define host {
    host_name        h3
    use              noisy
}
define host {
    host_name        h4
    use              linux
    service_excludes r:^C.*
}
define service {
    host_name           h1,h2,h3,h4
    service_description Mem
    use                 gs
}
define service {
    host_name           h2,h3
    service_description Disk
    use                 gs
}
"""


@pytest.mark.parametrize("dialect", ENGINES)
def test_a_hosts_service_includes_and_excludes(load: Load, dialect: str) -> None:
    config = loaded(load(PACKS + FILTERED, dialect))
    got = {k for k in config.services if k[0] in ("h1", "h2", "h3", "h4")}
    assert got == {
        ("h1", "Mem"),                                  # Cpu excluded
        ("h2", "Mem"), ("h2", "Cpu"),                   # only Mem and Cpu: no Disk
        ("h3", "Mem"), ("h3", "Disk"),
        ("h4", "Mem"),
        ("h1", "List"), ("h3", "List"), ("h4", "List"),  # the other pack on linux
    } | ({("h3", "Cpu"), ("h4", "Cpu")} if dialect == "alignak" else set())
    # Alignak 2.1.5 applies neither an inherited filter (h3) nor Shinken's r:REGEXP (h4).


def test_alignak_generates_hosts_from_a_name_pattern(load: Load) -> None:
    # Alignak 2.1.5 makes web-01..web-03; Shinken 2.4.3 does not (a host named as written).
    result = load("""
        define host {
            host_name  web-[1-3-%02d]
            alias      Web $HOSTNAME$
            use        gh
            hostgroups webs
        }
        define host {
            host_name  db-[8-9]
            use        gh
        }
        define hostgroup {
            hostgroup_name webs
        }
        define service {
            hostgroup_name      webs
            service_description S
            use                 gs
        }
        """, "alignak")
    config = loaded(result)
    assert set(config.hosts) == {"web-01", "web-02", "web-03", "db-8", "db-9"}
    assert config.hosts["web-02"].alias == "Web web-02"
    # Each generated host is at the line of the definition that made it.
    assert config.hosts["web-02"].source_line == line_of(result, "web-[1-3-%02d]") - 1
    assert {h for h, _ in config.services} == {"web-01", "web-02", "web-03"}


# -- duplicate_foreach ------------------------------------------------------------------------

FOREACH = """
define host {
    host_name h1
    use       gh
    _disks    C$(80%)$$(90%)$,D$(95%)$,E,F$(1)$
    _!disks   F
    _ports    p[1-3]$(x)$,q[1-9/4]
}
define host {
    host_name h2
    use       gh
}
define service {
    host_name           h1,h2
    service_description Disk $KEY$
    display_name        Disk $KEY$ $VALUE$
    use                 gs
    check_command       c!$VALUE1$!$VALUE2$
    duplicate_foreach   _disks
    default_value       50%
}
define service {
    host_name           h1
    service_description Port $KEY$
    use                 gs
    check_command       c!$KEY$!$VALUE$
    duplicate_foreach   _ports
}
"""


@pytest.mark.parametrize("dialect", ENGINES)
def test_duplicate_foreach_makes_one_service_per_item(load: Load, dialect: str) -> None:
    config = loaded(load(FOREACH, dialect))
    got = {k: s.check_command for k, s in config.services.items()}
    assert got == {
        ("h1", "Disk C"): "c!80%!90%",
        ("h1", "Disk D"): "c!95%!$VALUE2$",       # no second value: left as written
        ("h1", "Disk E"): "c!50%!$VALUE2$",       # no value: default_value
        # F is in _!disks; h2 has no _disks: nothing there.
        ("h1", "Port p1"): "c!p1!x", ("h1", "Port p2"): "c!p2!x", ("h1", "Port p3"): "c!p3!x",
        ("h1", "Port q1"): "c!q1!", ("h1", "Port q5"): "c!q5!", ("h1", "Port q9"): "c!q9!",
    }
    # Shinken also expands display_name; Alignak does not.
    display = config.services[("h1", "Disk C")].display_name
    assert display == ("Disk C 80%" if dialect == "shinken" else "Disk $KEY$ $VALUE$")


@pytest.mark.parametrize("dialect", ENGINES)
def test_duplicate_foreach_on_a_pack_and_a_hostgroup(load: Load, dialect: str) -> None:
    config = loaded(load(PACKS + """
        define host {
            host_name db
            use       linux
            _dbs      main,logs
        }
        define hostgroup {
            hostgroup_name dbs
            members        db,plain
        }
        define service {
            host_name           linux
            service_description Base $KEY$
            use                 gs
            duplicate_foreach   _dbs
            register            0
        }
        define service {
            hostgroup_name      dbs
            service_description Size $KEY$
            use                 gs
            duplicate_foreach   _dbs
        }
        """, dialect))
    made = {k for k in config.services if k[1].startswith(("Base", "Size"))}
    assert made == {("db", "Base main"), ("db", "Base logs"), ("db", "Size main"),
                    ("db", "Size logs")}


@pytest.mark.parametrize("dialect", ENGINES)
def test_a_malformed_foreach_variable_is_an_error_at_the_host(load: Load,
                                                              dialect: str) -> None:
    result = load(FOREACH.replace("_ports    p[1-3]$(x)$,q[1-9/4]", "_ports    $(x)$"),
                  dialect)
    errors = about_objects(result.errors)
    assert len(errors) == 1, errors
    assert "host 'h1': _ports: not a list for duplicate_foreach" in errors[0].message
    assert errors[0].line == line_of(result, "_ports    $(x)$")
    assert result.config is not None
    assert ("h1", "Disk C") in result.config.services


# -- hostgroup expressions --------------------------------------------------------------------

EXPRESSIONS = """
define host {
    host_name  lh
    use        gh
    hostgroups g_linux,g_web
}
define host {
    host_name  wh
    use        gh
    hostgroups g_web
}
define host {
    host_name  l2
    use        gh
    hostgroups g_linux,g_db
}
define hostgroup {
    hostgroup_name g_linux
}
define hostgroup {
    hostgroup_name g_web
}
define hostgroup {
    hostgroup_name g_db
}
define hostgroup {
    hostgroup_name g_empty
}
"""
#: hostgroup_name -> the hosts both Shinken 2.4.3 and Alignak 2.1.5 attached it to.
EXPRESSION_HOSTS = {
    "g_linux&g_web": {"lh"},
    "g_linux|g_db": {"lh", "l2"},
    "(g_linux+g_web)": {"lh"},                   # '+' is '&', in an expression
    "(g_linux|g_web)&!g_db": {"lh", "wh"},
    "*&!g_web": {"l2"},
    "*": {"lh", "wh", "l2"},
    "g_linux,!g_web": {"l2"},
    "!g_web": {"lh", "wh"},                       # a lone '!': the engines' reading
    "g_web|g_linux&g_db": set(),                  # the last operator joins every term
    "g_web&nosuch": set(),                        # an unknown name: no host, no error
    "g_empty": set(),
}


@pytest.mark.parametrize("dialect", ENGINES)
def test_hostgroup_expressions(load: Load, dialect: str) -> None:
    blocks = [f"""
        define service {{
            hostgroup_name      {expression}
            service_description S{n}
            use                 gs
        }}
        """ for n, expression in enumerate(EXPRESSION_HOSTS)]
    result = load(EXPRESSIONS + "".join(blocks), dialect)
    config = loaded(result)
    for n, (expression, hosts) in enumerate(EXPRESSION_HOSTS.items()):
        assert {h for h, d in config.services if d == f"S{n}"} == hosts, expression
    assert len(config.services) == sum(map(len, EXPRESSION_HOSTS.values()))
    # What an operator would not expect is said, at the line of the expression.
    for text, expression in (("a lone '!g_web'", "!g_web"), ("mixes '|' and '&'", "g_web|g_"),
                             ("hostgroup 'nosuch' is not defined", "g_web&nosuch")):
        [warning] = [w for w in result.warnings if text in w.message]
        assert warning.line == line_of(result, f"hostgroup_name      {expression}")


@pytest.mark.parametrize("dialect", ENGINES)
def test_host_name_items_apply_in_order_after_the_hostgroups(load: Load, dialect: str) -> None:
    config = loaded(load(EXPRESSIONS + """
        define service {
            hostgroup_name      g_linux
            host_name           !l2,wh
            service_description S
            use                 gs
        }
        define service {
            host_name           *,!wh
            service_description All
            use                 gs
        }
        """, dialect))
    assert {h for h, d in config.services if d == "S"} == {"lh", "wh"}
    assert {h for h, d in config.services if d == "All"} == {"lh", "l2"}


@pytest.mark.parametrize("dialect", ENGINES)
def test_hostgroups_on_a_service_is_hostgroup_name(load: Load, dialect: str) -> None:
    # Shinken's and Alignak's old name; `*` there is every host, in a hostgroup or not.
    config = loaded(load(EXPRESSIONS + """
        define host {
            host_name nogroup
            use       gh
        }
        define service {
            hostgroups          *
            service_description Everywhere
            use                 gs
        }
        define service {
            hostgroups          g_web&!g_linux
            service_description WebOnly
            use                 gs
        }
        """, dialect))
    assert {h for h, d in config.services if d == "Everywhere"} == {"lh", "wh", "l2", "nogroup"}
    assert {h for h, d in config.services if d == "WebOnly"} == {"wh"}


def test_nagios_hostgroup_star_exclusions_and_empty_groups(tmp_path: Path) -> None:
    accepted, out, made, result = nagios(EXPRESSIONS + """
        define host {
            host_name nogroup
            use       gh
        }
        define service {
            hostgroup_name      *
            service_description AllGroups
            use                 gs
        }
        define service {
            hostgroup_name      *,!g_web
            service_description NotWeb
            use                 gs
        }
        define service {
            hostgroup_name      g_empty
            service_description Empty
            use                 gs
        }
        define service {
            hostgroup_name      g_web,!g_web
            service_description AllExcluded
            use                 gs
        }
        define service {
            host_name           lh,!lh
            service_description HostExcluded
            use                 gs
        }
        """, tmp_path)
    assert accepted, out
    assert made_by(result) == made
    assert {h for h, d, _ in made if d == "AllGroups"} == {"lh", "wh", "l2"}  # not nogroup
    assert {h for h, d, _ in made if d == "NotWeb"} == {"l2"}
    assert about_objects(result.diagnostics) == []  # nothing created, silently, as nagios4


# -- regular expressions (Nagios) -------------------------------------------------------------

REGEXPS = """
define host {
    host_name web1
    use       gh
}
define host {
    host_name web2
    use       gh
}
define host {
    host_name xweb
    use       gh
    hostgroups gr.*
}
define host {
    host_name db1
    use       gh
}
define hostgroup {
    hostgroup_name webs
    members        web.*
}
define hostgroup {
    hostgroup_name grp
}
define hostgroup {
    hostgroup_name dbs
    members        db1
}
define hostgroup {
    hostgroup_name dbz
    members        db1
}
define service {
    host_name           web[0-9]
    service_description Bracket
    use                 gs
}
define service {
    host_name           ^web?
    service_description Anchored
    use                 gs
}
define service {
    hostgroup_name      db.
    service_description GroupRegexp
    use                 gs
}
define servicegroup {
    servicegroup_name   sg
    members             web.*,Br.*
}
"""
BOTH = ("use_regexp_matching=1", "use_true_regexp_matching=1")


def test_true_regexp_matching_as_nagios(tmp_path: Path) -> None:
    accepted, out, made, result = nagios(REGEXPS, tmp_path, BOTH)
    assert accepted, out
    assert made_by(result) == made
    config = loaded(result)
    assert {h for h, d in config.services if d == "Bracket"} == {"web1", "web2"}
    assert {h for h, d in config.services if d == "GroupRegexp"} == {"db1"}
    # Not anchored: web.* also matches xweb.
    assert set(config.hostgroups["webs"].members) == {"web1", "web2", "xweb"}
    assert config.hostgroups["grp"].members == ("xweb",)
    assert config.servicegroups["sg"].members == ("web1", "Bracket", "web2", "Bracket")
    # shinha reads them: not among the directives it says it ignores.
    assert not [w for w in result.warnings if "regexp_matching" in w.message], result.warnings


def test_regexp_matching_only_for_names_with_special_characters(tmp_path: Path) -> None:
    # With use_regexp_matching alone, 'db.' and 'web[0-9]' are names: undefined, errors.
    accepted, _, _, result = nagios(REGEXPS, tmp_path, BOTH[:1])
    assert not accepted
    messages = [e.message for e in result.errors]
    assert any("hostgroup 'db.' is not defined" in m for m in messages), messages
    assert any("host 'web[0-9]' is not defined" in m for m in messages), messages
    assert result.config is not None
    assert set(result.config.hostgroups["webs"].members) == {"web1", "web2", "xweb"}


def test_after_a_regexp_the_rest_of_the_list_is_one_too(tmp_path: Path) -> None:
    objects = """
        define host {
            host_name web1
            use       gh
        }
        define service {
            host_name           web*,!web1
            service_description S
            use                 gs
        }
        """
    accepted, out, _, result = nagios(objects, tmp_path, BOTH[:1])
    assert not accepted
    assert "Could not find any host matching '!web1'" in out
    [error] = [e for e in result.errors if "!web1" in e.message]
    assert "no host matches '!web1'" in error.message
    assert error.line == line_of_path(result, "web*,!web1")


def test_a_star_under_regexp_matching_is_an_invalid_expression(tmp_path: Path) -> None:
    objects = REGEXPS.replace("host_name           ^web?", "host_name           *")
    accepted, _, _, result = nagios(objects, tmp_path, BOTH)
    assert not accepted
    assert any("'*' is not a valid regular expression" in e.message for e in result.errors)


@pytest.mark.parametrize("dialect", ENGINES)
def test_shinken_and_alignak_have_no_regexps(load: Load, dialect: str) -> None:
    result = load(REGEXPS, dialect, BOTH)
    assert any("host 'web[0-9]' is not defined" in e.message for e in result.errors)


def line_of_path(result: LoadResult, text: str) -> int:
    assert result.config is not None
    lines = (Path(result.config.main_file).parent / "objects.cfg").read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line)


# -- implicit groups --------------------------------------------------------------------------

IMPLICIT = """
define host {
    host_name  h1
    use        gh
    hostgroups implicit_hg
}
define contact {
    contact_name                  c2
    alias                         C2
    host_notification_period      24x7
    service_notification_period   24x7
    host_notification_options     d
    service_notification_options  c
    host_notification_commands    c
    service_notification_commands c
    contactgroups                 implicit_cg
}
define service {
    host_name           h1
    service_description S1
    use                 gs
    servicegroups       implicit_sg
}
"""


@pytest.mark.parametrize("dialect", ENGINES)
def test_groups_named_only_by_their_members_are_created(load: Load, dialect: str) -> None:
    result = load(IMPLICIT, dialect)
    config = loaded(result)
    assert config.hostgroups["implicit_hg"].members == ("h1",)
    assert config.contactgroups["implicit_cg"].members == ("c2",)
    assert config.servicegroups["implicit_sg"].members == ("h1", "S1")
    assert config.hosts["h1"].hostgroups == ("implicit_hg",)
    warnings = {w.message.split("'")[1]: w for w in result.warnings
                if "is not defined: created" in w.message}
    assert set(warnings) == {"implicit_hg", "implicit_cg", "implicit_sg"}
    assert warnings["implicit_hg"].line == line_of(result, "hostgroups implicit_hg")
    assert warnings["implicit_sg"].line == line_of(result, "servicegroups       implicit_sg")


def test_nagios_refuses_groups_named_only_by_their_members(tmp_path: Path) -> None:
    accepted, out, _, result = nagios(IMPLICIT, tmp_path)
    assert not accepted, out
    assert {e.message.split("'")[3] for e in result.errors
            if "is not defined" in e.message} == {"implicit_hg", "implicit_cg", "implicit_sg"}


# -- a service defined twice on one host ------------------------------------------------------

TWICE = """
define host {
    host_name a
    use       gh
}
define host {
    host_name b
    use       gh
}
define host {
    host_name c
    use       gh
}
define hostgroup {
    hostgroup_name g1
    members        a,b
}
define hostgroup {
    hostgroup_name g2
    members        b,c
}
define service {
    host_name           a
    service_description disk
    use                 gs
    check_command       c!one
}
define service {
    host_name           a,b
    service_description disk
    use                 gs
    check_command       c!two
}
define service {
    hostgroup_name      g1
    service_description g
    use                 gs
    check_command       c!first
}
define service {
    hostgroup_name      g2
    service_description g
    use                 gs
    check_command       c!second
}
define service {
    host_name           b,a
    service_description rev
    use                 gs
    check_command       c!r1
}
define service {
    host_name           a,b
    service_description rev
    use                 gs
    check_command       c!r2
}
define service {
    host_name           b,a
    service_description cc
    use                 gs
    check_command       c!c1
}
define service {
    host_name           b,a
    service_description cc
    use                 gs
    check_command       c!c2
}
define service {
    hostgroup_name      g1
    service_description explicit
    use                 gs
    check_command       c!group
}
define service {
    host_name           b
    service_description explicit
    use                 gs
    check_command       c!host
}
define service {
    host_name           c
    service_description mixed
    use                 gs
    check_command       c!explicit
}
define service {
    hostgroup_name      g1
    host_name           c
    service_description mixed
    use                 gs
    check_command       c!mixed
}
define service {
    host_name           b
    service_description mixed2
    use                 gs
    check_command       c!explicit
}
define service {
    hostgroup_name      g1
    host_name           c
    service_description mixed2
    use                 gs
    check_command       c!mixed
}
define service {
    host_name           a
    service_description member
    use                 gs
    check_command       c!explicit
}
define service {
    hostgroup_name      g1
    service_description member
    use                 gs
    check_command       c!group
}
"""


def test_a_service_defined_twice_is_a_warning_and_nagios_keeps_the_same_one(
        tmp_path: Path) -> None:
    accepted, out, made, result = nagios(TWICE, tmp_path)
    assert accepted, out
    assert made_by(result) == made
    assert result.errors == []
    # One warning per duplicate, at the definition left out, as nagios4's.
    expected = sorted((d, h, int(line)) for d, h, line in (
        (part.split("'")[1], part.split("'")[3], part.rsplit("line ", 1)[1].rstrip(")"))
        for part in out.splitlines() if "Duplicate definition found for service" in part))
    got = sorted((w.message.split("'")[1], w.message.split("'")[3], w.line or 0)
                 for w in result.warnings if "is defined twice" in w.message)
    assert got == expected
    assert len(got) == 10
    assert result.config is not None
    kept = {k: s.check_command for k, s in result.config.services.items()}
    assert kept[("a", "disk")] == "c!two"         # the later of two definitions
    assert kept[("b", "g")] == "c!first"          # g1's first host beats g2's second
    assert kept[("a", "rev")] == "c!r1"           # a second host (a copy) beats a first
    assert kept[("a", "cc")] == "c!c1"            # of two copies, the earlier
    assert kept[("c", "mixed")] == "c!mixed"      # a copy from host_name beats a definition
    assert kept[("a", "member")] == "c!explicit"  # a hostgroup's copy loses to any other


# -- references of the types shinha does not act on -------------------------------------------

REFERENCES = """
define host {
    host_name h1
    use       gh
}
define service {
    host_name           h1
    service_description S1
    use                 gs
}
define hostdependency {
    host_name                     h1
    dependent_host_name           nosuchhost
    notification_failure_criteria d
}
define servicedependency {
    host_name                     h1
    service_description           S1
    dependent_service_description nosuchservice
    dependency_period             nosuchperiod
}
define hostescalation {
    host_name             h1
    contacts              admin,nosuchcontact
    first_notification    1
    last_notification     2
    notification_interval 1
}
define hostdependency {
    name                          a-template
    dependent_host_name           notchecked
    register                      0
}
define hostdependency {
    use                           a-template
    host_name                     h1
    dependent_host_name           h1
}
"""


@pytest.mark.parametrize("dialect", [*ENGINES, "shinha", "nagios"])
def test_references_of_dependencies_and_escalations_are_checked(load: Load,
                                                                dialect: str) -> None:
    result = load(REFERENCES, dialect)
    errors = {e.message: e.line for e in about_objects(result.errors)}
    unknown_host = {"hostdependency: dependent_host_name: host 'nosuchhost' is not defined":
                    line_of(result, "nosuchhost")}
    if dialect == "nagios":  # nagios4 logs it and loads the tree (the next test)
        assert {w.message: w.line for w in result.warnings
                if w.message.startswith("hostdependency")} == unknown_host
        unknown_host = {}
    assert errors == {
        **unknown_host,
        "servicedependency: dependent_service_description: service 'nosuchservice' is not "
        "defined on host 'h1'": line_of(result, "nosuchservice"),
        "servicedependency: dependency_period: timeperiod 'nosuchperiod' is not defined":
            line_of(result, "nosuchperiod"),
        "hostescalation: contacts: contact 'nosuchcontact' is not defined":
            line_of(result, "nosuchcontact"),
    }


def test_nagios_logs_an_unknown_host_in_a_hostdependency_and_loads(tmp_path: Path) -> None:
    accepted, out, _, result = nagios(REFERENCES.split("define servicedependency")[0], tmp_path)
    assert accepted, out
    assert "Error: Could not find any host matching 'nosuchhost'" in out
    assert result.errors == []
    assert [w.message for w in result.warnings if w.message.startswith("hostdependency")] == [
        "hostdependency: dependent_host_name: host 'nosuchhost' is not defined"]


def test_nagios_refuses_the_other_unknown_references(tmp_path: Path) -> None:
    accepted, out, _, result = nagios(REFERENCES, tmp_path)
    assert not accepted
    assert "'nosuchservice'" in out
    assert len(about_objects(result.errors)) == 3


@pytest.mark.parametrize("dialect", ENGINES)
def test_modulation_references_are_checked(load: Load, dialect: str) -> None:
    result = load("""
        define checkmodulation {
            checkmodulation_name  cm
            check_command         nosuchcommand!1
            check_period          24x7
        }
        define resultmodulation {
            resultmodulation_name rm
            modulation_period     nosuchperiod
        }
        """, dialect)
    errors = {e.message for e in about_objects(result.errors)}
    assert errors == {"checkmodulation: check_command: command 'nosuchcommand' is not defined",
                      "resultmodulation: modulation_period: timeperiod 'nosuchperiod' is not "
                      "defined"}

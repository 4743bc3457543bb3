"""The dialects: which engine a tree is judged by, and what each forgives or refuses.

Each Shinken rule here was checked with Shinken 2.4.3's own `shinken-arbiter -v` on the same
small trees (its messages are quoted); each Nagios rule is checked in this file against the
real `nagios4 -v` (tests/test_nagios_compare.py shows the harness).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from shinha.config import Diagnostic, LoadResult, load_config
from shinha.config.builtins import BusinessRuleError, rule_leaves
from tests.test_nagios_compare import nagios4

if TYPE_CHECKING:
    from tests.conftest import WriteTree

ROOT = Path(__file__).resolve().parents[1]

HOST = """\
    define command {
        command_name c
        command_line /bin/true
    }
    define host {
        host_name h1
        max_check_attempts 3
    }
    """


def load(root: Path, main: str) -> LoadResult:
    return load_config(root / main)


def tree(write_tree: WriteTree, main: str, objects: str, directives: str = "",
         extra: dict[str, str] | None = None) -> LoadResult:
    """Write `main` (its directives, then cfg_file=objects.cfg) and objects.cfg; load it."""
    root = write_tree({main: directives + "cfg_file=objects.cfg\n", "objects.cfg": objects,
                       **(extra or {})})
    return load(root, main)


def problems(result: LoadResult) -> list[Diagnostic]:
    """Every diagnostic but those a small tree always has (no daemons, ignored directives)."""
    return [d for d in result.diagnostics if "cannot run without one" not in d.message
            and not d.message.startswith("ignored: directive")]


def only(result: LoadResult, severity: str, text: str) -> Diagnostic:
    """The one diagnostic of `severity` whose message holds `text`."""
    found = [d for d in result.diagnostics if d.severity == severity and text in d.message]
    assert len(found) == 1, "\n".join(map(str, result.diagnostics))
    return found[0]


# --- choosing the dialect ---------------------------------------------------------------


@pytest.mark.parametrize(("main", "dialect"), [
    ("shinken.cfg", "shinken"), ("shinken-test.cfg", "shinken"), ("alignak.cfg", "alignak"),
    ("nagios.cfg", "nagios"), ("naemon.cfg", "nagios"), ("shinha.cfg", "shinha"),
    ("main.cfg", "shinha"),
])
def test_the_main_file_name_chooses_the_dialect(write_tree: WriteTree, main: str,
                                                dialect: str) -> None:
    result = tree(write_tree, main, HOST)
    assert result.dialect is not None
    assert result.dialect.name == dialect
    assert main in result.dialect.reason or dialect == "shinha"


def test_a_directive_sets_the_dialect_and_a_bad_one_is_an_error(write_tree: WriteTree) -> None:
    result = tree(write_tree, "nagios.cfg", HOST, "shinha_dialect=alignak\n")
    assert result.dialect is not None
    assert (result.dialect.name, result.dialect.line) == ("alignak", 1)
    assert "shinha_dialect=alignak" in str(result.dialect)
    bad = tree(write_tree, "shinken.cfg", HOST, "shinha_dialect=shinkn\n")
    error = only(bad, "error", "unknown dialect")
    assert (error.line, error.hint) == (1, "did you mean 'shinken'?")
    assert bad.dialect is not None and bad.dialect.name == "shinken"


@pytest.mark.parametrize(("directives", "objects", "dialect", "why"), [
    ("statsd_host=localhost\n", HOST, "shinken", "statsd_host"),
    ("daemons_log_folder=/tmp\n", HOST, "alignak", "daemons_log_folder"),
    ("", HOST + "define reactionner {\n reactionner_name r\n}\n", "shinken", "reactionner"),
    ("", HOST + "define host {\n host_name h2\n business_impact_modulations x\n}\n", "shinken",
     "business_impact_modulations"),
    ("", HOST + "define host {\n host_name h2\n address6 ::1\n}\n", "alignak", "address6"),
    ("", HOST + "define module {\n name m\n type t\n python_name p\n}\n", "alignak", "Alignak"),
])
def test_engine_only_directives_types_and_properties_choose_the_dialect(
    write_tree: WriteTree, directives: str, objects: str, dialect: str, why: str,
) -> None:
    result = tree(write_tree, "main.cfg", objects, directives)
    assert result.dialect is not None
    assert result.dialect.name == dialect
    assert why in result.dialect.reason
    assert result.dialect.line is not None


def test_a_nagios_named_main_file_with_shinken_directives_is_shinken(write_tree: WriteTree) -> None:
    # Shinken 1.x trees kept nagios.cfg and added shinken-specific directives and daemons.
    result = tree(write_tree, "nagios.cfg", HOST, "modules_dir=/var/lib/shinken/modules\n")
    assert result.dialect is not None and result.dialect.name == "shinken"


def test_check_config_says_which_dialect_it_used(write_tree: WriteTree) -> None:
    root = write_tree({"shinken.cfg": "cfg_file=objects.cfg\n", "objects.cfg": HOST})
    run = [sys.executable, "-m", "shinha", "check-config"]
    text = subprocess.run([*run, str(root / "shinken.cfg")], capture_output=True, text=True,
                          cwd=ROOT, check=False).stdout
    assert "dialect shinken (the main file is named shinken.cfg)" in text
    doc = json.loads(subprocess.run([*run, "--json", str(root / "shinken.cfg")],
                                    capture_output=True, text=True, cwd=ROOT,
                                    check=False).stdout)
    assert doc["dialect"] == {"name": "shinken", "reason": "the main file is named shinken.cfg",
                              "file": None, "line": None}


# --- Shinken and Alignak: unknown is a warning, documented is silent ---------------------


def test_engine_directives_are_known_and_unknown_ones_are_warnings(write_tree: WriteTree) -> None:
    directives = ("statsd_host=localhost\nstate_retention_dir=/tmp\ndaemons_log_folder=/tmp\n"
                  "launch_missing_daemons=1\nmodules_dir=/x\nflap_history=20\nno_such_option=1\n"
                  "max_plugins_output_lenght=1\n")
    result = tree(write_tree, "alignak.cfg", HOST, directives)
    assert result.errors == []
    assert [(d.line, d.message, d.hint) for d in problems(result)] == [
        (7, "unknown directive 'no_such_option' (ignored, as Alignak does)", None),
        (8, "unknown directive 'max_plugins_output_lenght' (ignored, as Alignak does)",
         "did you mean 'max_plugins_output_length'?")]
    # The same directives in a shinha tree: the unknown ones are errors.
    strict = tree(write_tree, "shinha.cfg", HOST, directives)
    assert {d.line for d in strict.errors} >= {7, 8}


DOCUMENTED = """\
    define host {
        host_name                   h2
        max_check_attempts          2
        priority                    3
        maintenance_check_command   c
        maintenance_check_period    24x7
        maintenance_check_interval  5
        maintenance_checks_enabled  1
        definition_order            50
        business_impact_modulations x
        criticity                   4
        trigger_name                t
    }
    define contact {
        contact_name   admin
        min_criticity  3
        password       secret
    }
    define service {
        host_name           h2
        service_description s
        check_command       c
        freshness_state     u
        hostgroups          null
    }
    """


def test_documented_engine_properties_load_silently(write_tree: WriteTree) -> None:
    result = tree(write_tree, "shinken.cfg", HOST + DOCUMENTED)
    assert problems(result) == []
    assert result.config is not None
    assert result.config.hosts["h2"].business_impact == 4  # criticity is its old name
    alignak = tree(write_tree, "alignak.cfg", HOST + DOCUMENTED)
    assert problems(alignak) == []


def test_a_misspelt_property_is_a_warning_with_its_line_and_a_guess(
    write_tree: WriteTree,
) -> None:
    objects = HOST + "define host {\n    host_name h2\n    max_check_attemps 4\n}\n"
    result = tree(write_tree, "shinken.cfg", objects)
    warning = only(result, "warning", "max_check_attemps")
    assert warning.message == "unknown host property 'max_check_attemps' (ignored, as Shinken does)"
    assert (Path(warning.file or "").name, warning.line) == ("objects.cfg", 11)
    assert warning.hint == "did you mean 'max_check_attempts'?"
    assert result.errors == []
    # In the shinha and Nagios dialects it stays an error, with the same guess.
    for main in ("shinha.cfg", "nagios.cfg"):
        error = only(tree(write_tree, main, objects), "error", "max_check_attemps")
        assert (error.line, error.hint) == (11, "did you mean 'max_check_attempts'?")


def test_an_undefined_template_is_a_warning(write_tree: WriteTree) -> None:
    objects = HOST + "define host {\n    host_name h2\n    use nope,h1tpl\n}\n" + (
        "define host {\n    name h1tpl\n    address 10.0.0.9\n    register 0\n}\n")
    result = tree(write_tree, "shinken.cfg", objects)
    # Shinken: "Host u'h2' use/inherit from an unknown template (u'nope') !"
    warning = only(result, "warning", "template 'nope' is not defined")
    assert warning.line == 11
    assert result.errors == []
    assert result.config is not None
    assert result.config.hosts["h2"].address == "10.0.0.9"  # the other template still applies
    assert only(tree(write_tree, "shinha.cfg", objects), "error", "'nope' is not defined")


def test_a_template_that_uses_itself_is_an_error_even_unused(write_tree: WriteTree) -> None:
    objects = HOST + "define host {\n    name a\n    use a\n    register 0\n}\n"
    # Shinken: "Host u'a' use/inherits from itself !" (Alignak says the same)
    for main in ("shinken.cfg", "alignak.cfg"):
        error = only(tree(write_tree, main, objects), "error", "uses itself")
        assert error.line == 11
    # Nagios 4 loads it (checked below against nagios4): so do the shinha and Nagios dialects.
    assert tree(write_tree, "shinha.cfg", objects).errors == []


def test_a_loop_among_unused_templates_is_a_shinken_error(write_tree: WriteTree) -> None:
    objects = HOST + ("define host {\n    name a\n    use b\n    register 0\n}\n"
                      "define host {\n    name b\n    use a\n    register 0\n}\n")
    # Shinken: "There are loops in the host templates definition."
    result = tree(write_tree, "shinken.cfg", objects)
    error = only(result, "error", "inheritance loop")
    assert "a -> b -> a" in error.message
    assert tree(write_tree, "shinha.cfg", objects).errors == []


def test_an_object_that_uses_itself_by_name_loads_in_every_dialect(write_tree: WriteTree) -> None:
    objects = HOST + ("define host {\n    name h2\n    host_name h2\n    use h2\n"
                      "    max_check_attempts 2\n}\n")
    for main in ("shinha.cfg", "nagios.cfg", "shinken.cfg", "alignak.cfg"):
        result = tree(write_tree, main, objects)
        assert not [d for d in result.errors if "h2" in d.message], main
        assert result.config is not None and "h2" in result.config.hosts


def test_a_redefinition_warns_and_the_later_or_lower_order_wins(write_tree: WriteTree) -> None:
    objects = HOST + ("define host {\n    host_name h1\n    address 10.0.0.2\n}\n"
                      "define host {\n    host_name h3\n    address 10.0.0.3\n"
                      "    definition_order 10\n}\n"
                      "define host {\n    host_name h3\n    address 10.0.0.4\n}\n")
    result = tree(write_tree, "shinken.cfg", objects)
    # Shinken: "duplicate host name h1 …, using lastly defined."
    warning = only(result, "warning", "'h1' is defined twice")
    assert warning.line == 9
    assert result.errors == []
    assert result.config is not None
    assert result.config.hosts["h1"].address == "10.0.0.2"
    assert result.config.hosts["h3"].address == "10.0.0.3"  # the lower definition_order
    assert not [d for d in result.diagnostics if "'h3'" in d.message]
    assert only(tree(write_tree, "shinha.cfg", objects), "error", "'h1' is defined twice")


# --- every dialect ----------------------------------------------------------------------


def test_include_file_and_include_dir_are_real_includes(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "include_file=objects.cfg\n",
        "objects.cfg": HOST + "include_dir=more\n",
        "more/a.cfg": "define host {\n    host_name h2\n}\n",
        "more/sub/b.cfg": "define host {\n    host_name h3\n}\n",
    })
    result = load(root, "shinha.cfg")
    assert problems(result) == []
    assert result.config is not None
    assert sorted(result.config.hosts) == ["h1", "h2", "h3"]
    missing = write_tree({"shinha.cfg": "include_dir=nowhere\n"})
    error = only(load(missing, "shinha.cfg"), "error", "directory not found")
    assert error.line == 1 and error.hint is not None and "include_dir=" in error.hint


def test_macros_in_any_file_of_a_shinken_tree(write_tree: WriteTree) -> None:
    files = {
        "shinken.cfg": "cfg_dir=resource.d\ncfg_file=objects.cfg\n",
        "resource.d/paths.cfg": "$USER1$=/usr/lib/nagios/plugins\n$PLUGINSDIR$=$USER1$\n",
        "objects.cfg": HOST.replace("/bin/true", "$PLUGINSDIR$/check_ping"),
    }
    result = load(write_tree(files), "shinken.cfg")
    assert problems(result) == []
    assert result.config is not None
    assert result.config.resources["PLUGINSDIR"] == "$USER1$"
    # In a shinha tree it is an error that names the kind of file.
    files["shinha.cfg"] = files.pop("shinken.cfg")
    error = only(load(write_tree(files), "shinha.cfg"), "error", "macro $USER1$")
    assert error.message == "macro $USER1$ set in an object file"
    assert error.line == 1


def test_builtin_commands_resolve_in_shinken_and_alignak(write_tree: WriteTree) -> None:
    objects = HOST + """\
        define host {
            host_name     h2
            check_command _internal_host_up
        }
        define service {
            host_name           h1
            service_description echo
            check_command       _echo
        }
        define service {
            host_name           h1
            service_description rule
            check_command       bp_rule!h1,echo & (h2 | h1)
        }
        """
    for main in ("shinken.cfg", "alignak.cfg"):
        assert tree(write_tree, main, objects).errors == [], main
    strict = tree(write_tree, "shinha.cfg", objects)
    assert {d.message.split(": ", 1)[1] for d in strict.errors} >= {
        "check_command: command '_internal_host_up' is not defined"}
    alignak_only = HOST + ("define host {\n    host_name h2\n"
                           "    check_command _internal_host_check!0!up\n}\n")
    assert tree(write_tree, "alignak.cfg", alignak_only).errors == []
    assert only(tree(write_tree, "shinken.cfg", alignak_only), "error", "_internal_host_check")


def test_a_business_rule_must_name_what_exists(write_tree: WriteTree) -> None:
    objects = HOST + """\
        define service {
            host_name           h1
            service_description rule
            check_command       bp_rule!h1,nope & h7
        }
        define service {
            host_name           h1
            service_description broken
            check_command       bp_rule!(h1 & h1
        }
        """
    result = tree(write_tree, "shinken.cfg", objects)
    # Shinken: "Business rule uses unknown service h1/nope", "… uses unknown host h7"
    messages = sorted(d.message for d in result.errors)
    assert messages == [
        "service 'broken': business rule: cannot parse the business rule: a '(' is never closed",
        "service 'rule': business rule: unknown host h7",
        "service 'rule': business rule: unknown service h1/nope"]
    assert {d.line for d in result.errors} == {12, 17}  # their check_command lines


def test_business_rule_grammar() -> None:
    assert rule_leaves("2 of: a,s & !b,s & (c | d,t)") == ["a,s", "b,s", "c", "d,t"]
    assert rule_leaves("g:web,http & r:^db,*") == ["g:web,http", "r:^db,*"]
    for bad in ("a & b | c", "a)", "(a", ""):
        with pytest.raises(BusinessRuleError):
            rule_leaves(bad)


DAEMONS = """\
    define realm {{
        realm_name All
        default    1
    }}
    define realm {{
        realm_name Far
    }}
    define scheduler {{
        scheduler_name s1
        spare          {spare}
    }}
    define scheduler {{
        scheduler_name s2
        spare          {spare}
        realm          {realm}
    }}
    """


@pytest.mark.parametrize(("spare", "realm", "shinken"), [
    (1, "All", "warning"), (0, "Far", "warning"), (0, "All", "error"),
])
def test_daemons_sharing_an_address(write_tree: WriteTree, spare: int, realm: str,
                                    shinken: str) -> None:
    objects = HOST + DAEMONS.format(spare=spare, realm=realm)
    result = tree(write_tree, "shinken.cfg", objects)
    shared = only(result, shinken, "listens on localhost:7768")
    assert shared.line == 20  # the second scheduler's define
    assert only(tree(write_tree, "shinha.cfg", objects), "error", "listens on localhost:7768")


def test_a_realm_with_hosts_and_no_scheduler_is_an_error(write_tree: WriteTree) -> None:
    objects = HOST + DAEMONS.format(spare=0, realm="All").replace(
        "scheduler_name s2", "scheduler_name s2\n    port 7000") + (
        "define host {\n    host_name h9\n    realm Far\n}\n")
    for main in ("shinha.cfg", "shinken.cfg"):
        # Shinken: "The realm Far has hosts but no scheduler!"
        error = only(tree(write_tree, main, objects), "error", "no scheduler")
        assert error.message.startswith("realm 'Far' has 1 host but no scheduler")
        assert error.line == 13  # the realm's define


def test_several_realms_and_no_default_names_a_line(write_tree: WriteTree) -> None:
    objects = HOST + "define realm {\n    realm_name A\n}\ndefine realm {\n    realm_name B\n}\n"
    error = only(tree(write_tree, "shinha.cfg", objects), "error", "none is 'default 1'")
    assert (Path(error.file or "").name, error.line) == ("objects.cfg", 9)


def test_an_alignak_module_loads_as_a_module_shinha_does_not_run(write_tree: WriteTree) -> None:
    objects = HOST + """\
        define module {
            name         backend_arbiter
            type         backend_arbiter
            python_name  alignak_module_backend.arbiter
            api_url      http://127.0.0.1:5000
        }
        define poller {
            poller_name p1
            modules     backend_arbiter
        }
        """
    result = tree(write_tree, "alignak.cfg", objects)
    assert result.errors == []
    warning = only(result, "warning", "Alignak module")
    assert warning.line == 9
    assert result.config is not None
    module = result.config.modules["backend_arbiter"]
    assert module.module_type == "backend_arbiter"
    assert module.python_name == "alignak_module_backend.arbiter"


# --- the Nagios dialect against the real nagios4 ------------------------------------------

CONTACT = """\
define timeperiod {
    timeperiod_name 24x7
    alias           always
    monday          00:00-24:00
}
define contact {
    contact_name                  admin
    host_notification_period      24x7
    service_notification_period   24x7
    host_notification_options     d
    service_notification_options  c
    host_notification_commands    c
    service_notification_commands c
}
"""
SERVICE = """\
define service {
    host_name           h1
    service_description s
    check_command       c
    max_check_attempts  3
    check_interval      5
    retry_interval      1
    check_period        24x7
    notification_period 24x7
    contacts            admin
}
"""
VALID = textwrap.dedent(HOST).replace(
    "max_check_attempts 3\n", "max_check_attempts 3\n    check_period 24x7\n"
    "    notification_period 24x7\n    contacts admin\n") + CONTACT + SERVICE
CASES: dict[str, tuple[str, str | None]] = {
    # name: (objects, the text of shinha's error; None when both load the tree)
    "valid": (VALID, None),
    "no services": (VALID.replace(SERVICE, ""), "there are no services"),
    "no contacts": (VALID.replace("contacts admin", "").replace(CONTACT, CONTACT.split(
        "define contact")[0]), "there are no contacts"),
    "no max_check_attempts": (VALID.replace("    max_check_attempts 3\n", "", 1),
                              "host 'h1' has no max_check_attempts"),
    "named through a template": (VALID + "define command {\n    name ctpl\n    command_name c2\n"
                                 "    command_line /bin/false\n    register 0\n}\n"
                                 "define command {\n    use ctpl\n}\n",
                                 "has no command_name of its own"),
    "unused template, undefined parent": (VALID + "define host {\n    name t\n    use nope\n"
                                          "    register 0\n}\n", "'nope' is not defined"),
    "template uses itself": (VALID + "define host {\n    name t\n    use t\n    register 0\n}\n",
                             None),
    "template loop, used": (VALID.replace("host_name h1\n", "host_name h1\n    use a\n", 1)
                            + "define host {\n    name a\n    use b\n    register 0\n}\n"
                            + "define host {\n    name b\n    use a\n    register 0\n}\n",
                            None),
    "object uses itself": (VALID.replace("host_name h1\n", "host_name h1\n    name h1\n"
                                         "    use h1\n", 1), None),
    "unknown property": (VALID.replace("host_name h1\n", "host_name h1\n    realm All\n", 1),
                         "unknown host property 'realm'"),
    "service hostgroups": (VALID + "define hostgroup {\n    hostgroup_name g\n    members h1\n}\n"
                           + SERVICE.replace("host_name           h1", "hostgroups g").replace(
                               "description s", "description s2"), None),
}


def _nagios_tree(root: Path, objects: str) -> Path:
    var = root / "var"
    (var / "checkresults").mkdir(parents=True)
    (root / "objects.cfg").write_text(objects, encoding="utf-8")
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
        "check_external_commands=0", "",
    ]), encoding="utf-8")
    return main


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_nagios_dialect_refuses_what_nagios4_refuses(tmp_path: Path, case: str) -> None:
    objects, expected = CASES[case]
    main = _nagios_tree(tmp_path, objects)
    done = subprocess.run([nagios4(), "-v", str(main)], capture_output=True, text=True,
                          timeout=60, check=False)
    nagios_ok = done.returncode == 0 and "Total Errors:   0" in done.stdout
    result = load_config(main)
    assert result.dialect is not None and result.dialect.name == "nagios"
    assert nagios_ok == (expected is None), done.stdout
    if expected is None:
        assert result.errors == []
    else:
        assert [d for d in result.errors if expected in d.message], "\n".join(
            map(str, result.diagnostics))
        assert all(d.file for d in result.errors)


def test_builtin_commands_are_not_run(write_tree: WriteTree) -> None:
    from shinha.arbiter.partition import plan
    from shinha.config.daemons import Poller, Scheduler
    from shinha.scheduler.items import build_items

    objects = HOST + """\
        define host {
            host_name     h2
            check_command _internal_host_up
        }
        define service {
            host_name           h2
            service_description echo
            check_command       _echo
        }
        define scheduler {
            scheduler_name s1
        }
        define poller {
            poller_name p1
        }
        """
    config = tree(write_tree, "shinken.cfg", objects).raise_for_errors()
    schedulers = [s for s in config.daemons["scheduler"].values() if isinstance(s, Scheduler)]
    pollers = [p for p in config.daemons["poller"].values() if isinstance(p, Poller)]
    items = build_items(plan(config, schedulers, pollers).parts["s1"])
    # Never checked actively: the host stays UP, the service keeps its state.
    assert (items[("h2", "")].active, items[("h2", "echo")].active) == (False, False)
    assert items[("h2", "")].passive and items[("h2", "echo")].passive
    assert items[("h1", "")].command_line == ""  # h1 has no check at all, as before

"""One test per kind of configuration error: each names the file and line, and what to do."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from shinha.config import Diagnostic, LoadResult, load_config

if TYPE_CHECKING:
    from tests.conftest import WriteTree


def load(root: Path) -> LoadResult:
    return load_config(root / "shinha.cfg")


def the_error(result: LoadResult) -> Diagnostic:
    """The one error of a load (the test fails, listing them, if there is not exactly one)."""
    assert len(result.errors) == 1, "\n".join(map(str, result.errors))
    return result.errors[0]


def at(path: Path, needle: str) -> tuple[str, int]:
    """(file, line) of the one line of `path` that contains `needle`."""
    lines = [n for n, text in enumerate(path.read_text().split("\n"), 1) if needle in text]
    assert len(lines) == 1, f"{needle!r} is on lines {lines} of {path}"
    return str(path), lines[0]


def where(diag: Diagnostic) -> tuple[str | None, int | None]:
    return diag.file, diag.line


# --- syntax ---------------------------------------------------------------------------------


def test_unterminated_block_is_reported_at_its_define_line(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=next-define.cfg\ncfg_file=end-of-file.cfg\n",
        "next-define.cfg": """\
            define host {
                host_name  never-closed
                address    10.0.0.1

            define host {
                host_name  after-it
            }
            """,
        "end-of-file.cfg": """\
            define host {
                host_name  ok
            }
            define host {
                host_name  cut-short
            """,
    })
    result = load(root)
    assert sorted(map(where, result.errors)) == [
        (str(root / "end-of-file.cfg"), 4), (str(root / "next-define.cfg"), 1)]
    for error in result.errors:
        assert "never closed" in error.message
        assert error.hint == "add '}' at the end of the block"
    # The block after the unclosed one is read.
    assert result.config is not None
    assert sorted(result.config.hosts) == ["after-it", "ok"]


def test_stray_closing_brace(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=hosts.cfg\n",
        "hosts.cfg": """\
            define host {
                host_name  web
            }
                }
            """,
    })
    error = the_error(load(root))
    assert where(error) == (str(root / "hosts.cfg"), 4)
    assert "'}' with no open define block" in error.message
    assert error.hint is not None and "define TYPE {" in error.hint


def test_text_outside_a_block(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=hosts.cfg\n",
        "hosts.cfg": """\
            define host {
                host_name  web
            }
            address 10.0.0.2
            """,
    })
    error = the_error(load(root))
    assert where(error) == at(root / "hosts.cfg", "address 10.0.0.2")
    assert "text outside any define block" in error.message
    assert error.hint is not None and "define TYPE {" in error.hint


# --- types and properties -------------------------------------------------------------------


def test_unknown_object_type_suggests_the_right_one(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=hosts.cfg\n",
        "hosts.cfg": """\
            define host {
                host_name  web
            }
            define hots {
                host_name  db
            }
            """,
    })
    result = load(root)
    error = the_error(result)
    assert where(error) == at(root / "hosts.cfg", "define hots")
    assert error.message == "unknown object type 'hots'"
    assert error.hint == "did you mean 'host'?"
    assert result.config is not None
    assert list(result.config.hosts) == ["web"]


def test_misspelt_property_suggests_the_right_one(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=hosts.cfg\n",
        "hosts.cfg": """\
            define host {
                host_name  web
                adress     10.0.0.3
            }
            """,
    })
    error = the_error(load(root))
    assert where(error) == at(root / "hosts.cfg", "adress")
    assert error.message == "unknown host property 'adress'"
    assert error.hint == "did you mean 'address'?"


def test_misspelt_property_in_a_template_is_reported_once_at_the_template(
    write_tree: WriteTree,
) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=templates.cfg\ncfg_file=hosts.cfg\n",
        "templates.cfg": """\
            define host {
                name               generic-host
                register           0

                max_check_atempts  5
            }
            """,
        "hosts.cfg": """\
            define host {
                use        generic-host
                host_name  web
            }
            define host {
                use        generic-host
                host_name  db
            }
            """,
    })
    result = load(root)
    error = the_error(result)  # once, not once per host that uses the template
    assert where(error) == at(root / "templates.cfg", "max_check_atempts")
    assert error.message == "unknown host property 'max_check_atempts'"
    assert error.hint == "did you mean 'max_check_attempts'?"
    assert result.config is not None
    assert sorted(result.config.hosts) == ["db", "web"]


def test_bad_integer(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=hosts.cfg\n",
        "hosts.cfg": """\
            define host {
                host_name           web
                max_check_attempts  three
                address             10.0.0.4
            }
            """,
    })
    result = load(root)
    error = the_error(result)
    assert where(error) == at(root / "hosts.cfg", "three")
    assert error.message == ("host 'web': max_check_attempts: must be a whole number "
                             "(got 'three')")
    # The object is kept, with the default in place of the bad value.
    assert result.config is not None
    web = result.config.hosts["web"]
    assert (web.max_check_attempts, web.address) == (3, "10.0.0.4")


def test_bad_boolean(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=hosts.cfg\n",
        "hosts.cfg": """\
            define host {
                host_name              web
                active_checks_enabled  2
            }
            """,
    })
    error = the_error(load(root))
    assert where(error) == at(root / "hosts.cfg", "active_checks_enabled")
    assert error.message == "host 'web': active_checks_enabled: must be 0 or 1 (got '2')"


def test_master_token_outside_0_to_7(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=pollers.cfg\ncfg_file=hosts.cfg\n",
        "pollers.cfg": """\
            define poller {
                poller_name  poller-2
                address      127.0.0.2
                master       9
            }
            """,
        "hosts.cfg": "define host {\n    host_name web\n}\n",
    })
    result = load(root)
    error = the_error(result)
    assert where(error) == at(root / "pollers.cfg", "master")
    assert error.message.startswith("poller 'poller-2': master: ")
    assert "(got '9')" in error.message
    assert error.hint == "the master token is 0 (never master) to 7"
    assert result.config is not None
    assert result.config.daemons["poller"]["poller-2"].master == 0


# --- names ----------------------------------------------------------------------------------


def test_duplicate_host_names(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=a.cfg\ncfg_file=b.cfg\n",
        "a.cfg": "define host {\n    host_name  web\n    address    10.0.0.1\n}\n",
        "b.cfg": "# the same host again\ndefine host {\n    host_name  web\n}\n",
    })
    result = load(root)
    error = the_error(result)
    assert where(error) == at(root / "b.cfg", "define host")
    assert error.message == f"host 'web' is defined twice (first at {root / 'a.cfg'}:1)"
    assert error.hint == "remove or rename one of them"
    assert result.config is not None
    assert result.config.hosts["web"].address == "10.0.0.1"  # the first one is kept


def test_duplicate_template_names(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=templates.cfg\ncfg_file=hosts.cfg\n",
        "templates.cfg": """\
            define host {
                name      generic-host
                register  0
            }
            define host {
                register  0
                name      generic-host
                address   10.0.0.9
            }
            """,
        "hosts.cfg": "define host {\n    use generic-host\n    host_name web\n}\n",
    })
    error = the_error(load(root))
    assert where(error) == (str(root / "templates.cfg"), 7)
    assert error.message == ("host template 'generic-host' is defined twice "
                             f"(first at {root / 'templates.cfg'}:1)")
    assert error.hint == "rename one of them"


# --- references -----------------------------------------------------------------------------

#: A tree where every reference resolves; each case below breaks one of them.
VALID_OBJECTS = """\
    define realm {
        realm_name  All
        default     1
    }
    define poller {
        poller_name  poller-1
        realm        All
    }
    define timeperiod {
        timeperiod_name  24x7
        monday           00:00-24:00
    }
    define command {
        command_name  check_ping
        command_line  /bin/true
    }
    define hostgroup {
        hostgroup_name  linux
        members         db
    }
    define host {
        host_name  db
    }
    define host {
        name           generic-host
        register       0
        max_check_attempts  3
    }
    define host {
        use            generic-host
        host_name      web
        check_command  check_ping
        hostgroups     linux
        check_period   24x7
        poller         poller-1
    }
    define service {
        host_name            web
        service_description  ping
        check_command        check_ping
    }
    define service {
        hostgroup_name       linux
        service_description  load
        check_command        check_ping
    }
"""

#: (what is undefined, the line to change, what it becomes: the line the error must name, hint)
REFERENCE_CASES = [
    ("command", "check_command  check_ping", "check_command  check_pnig",
     "did you mean 'check_ping'?"),
    ("template", "use            generic-host", "use            generic-hots",
     "did you mean 'generic-host'?"),
    ("host", "host_name            web", "host_name            webb",
     "did you mean 'web'?"),
    ("hostgroup on a service", "hostgroup_name       linux", "hostgroup_name       lnux",
     "did you mean 'linux'?"),
    ("hostgroup on a host", "hostgroups     linux", "hostgroups     lnux",
     "did you mean 'linux'?"),
    ("timeperiod", "check_period   24x7", "check_period   24x8", "did you mean '24x7'?"),
    ("realm", "realm        All", "realm        Al", "did you mean 'All'?"),
    ("poller", "poller         poller-1", "poller         poller-2",
     "did you mean 'poller-1'?"),
]


@pytest.mark.parametrize(("kind", "old", "new", "hint"), REFERENCE_CASES,
                         ids=[c[0] for c in REFERENCE_CASES])
def test_reference_to_an_undefined_object(
    write_tree: WriteTree, kind: str, old: str, new: str, hint: str,
) -> None:
    assert VALID_OBJECTS.count(old) == 1
    fine = write_tree({"shinha.cfg": "cfg_file=objects.cfg\n", "objects.cfg": VALID_OBJECTS})
    assert load(fine).errors == []
    root = write_tree({"shinha.cfg": "cfg_file=objects.cfg\n",
                       "objects.cfg": VALID_OBJECTS.replace(old, new)})
    error = the_error(load(root))
    # The line is the referring property's, not the object's `define`.
    assert where(error) == at(root / "objects.cfg", new)
    assert "is not defined" in error.message
    assert error.hint == hint


# --- loops and orphans ----------------------------------------------------------------------


def test_inheritance_loop(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=templates.cfg\ncfg_file=hosts.cfg\n",
        "templates.cfg": """\
            define host {
                name      tpl-a
                register  0
                use       tpl-b
            }
            define host {
                name      tpl-b
                register  0
                use       tpl-a
            }
            """,
        "hosts.cfg": "define host {\n    use        tpl-a\n    host_name  web\n}\n",
    })
    result = load(root)
    error = the_error(result)
    assert where(error) == at(root / "templates.cfg", "use       tpl-b")
    assert error.message == ("inheritance loop: host template 'tpl-a' uses itself through its "
                             "parents")
    assert error.hint == "remove one of the 'use' links of the loop"
    assert result.config is not None
    assert list(result.config.hosts) == ["web"]


def test_service_attached_to_no_host(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=objects.cfg\n",
        "objects.cfg": """\
            define host {
                host_name  web
            }
            define service {
                service_description  orphan
            }
            """,
    })
    error = the_error(load(root))
    assert where(error) == at(root / "objects.cfg", "define service")
    assert error.message == "service 'orphan' is attached to no host"
    assert error.hint is not None and "set host_name or hostgroup_name" in error.hint


def test_parents_loop(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=hosts.cfg\n",
        "hosts.cfg": """\
            define host {
                host_name  router
                parents    switch
            }
            define host {
                host_name  switch
                parents    router
            }
            """,
    })
    error = the_error(load(root))
    assert where(error) == at(root / "hosts.cfg", "parents    router")
    assert error.message == "host 'switch': parents loop (router -> switch -> router)"
    assert error.hint == "a host cannot be its own ancestor"


# --- timeperiods ----------------------------------------------------------------------------


def test_bad_timeperiod_entry(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=timeperiods.cfg\ncfg_file=hosts.cfg\n",
        "timeperiods.cfg": """\
            define timeperiod {
                timeperiod_name  workhours
                monday           09:00-17:00
                funday           09:00-17:00
            }
            """,
        "hosts.cfg": "define host {\n    host_name web\n}\n",
    })
    result = load(root)
    error = the_error(result)
    assert where(error) == at(root / "timeperiods.cfg", "funday")
    assert error.message.startswith("timeperiod 'workhours': 'funday' is not a day")
    assert error.hint == "see the timeperiod reference in docs/configuration.md"
    assert result.config is not None
    assert len(result.config.timeperiods["workhours"].ranges) == 1  # monday is kept


# --- the main file --------------------------------------------------------------------------


def test_missing_included_file_is_reported_at_the_include(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": """\
            # objects
            cfg_file=hosts.cfg
            cfg_file=services.cfg
            cfg_dir=more-hosts
            """,
        "hosts.cfg": "define host {\n    host_name web\n}\n",
    })
    result = load(root)
    assert [where(e) for e in result.errors] == [
        at(root / "shinha.cfg", "services.cfg"), at(root / "shinha.cfg", "more-hosts")]
    missing_file, missing_dir = result.errors
    assert missing_file.message == f"file not found: {root / 'services.cfg'}"
    assert missing_file.hint is not None and "relative paths resolve" in missing_file.hint
    assert missing_dir.message == f"directory not found: {root / 'more-hosts'}"
    assert result.config is not None
    assert list(result.config.hosts) == ["web"]


def test_unknown_main_directive_suggests_the_right_one(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": """\
            cfg_file=hosts.cfg
            interval_lenght=30
            """,
        "hosts.cfg": "define host {\n    host_name web\n}\n",
    })
    result = load(root)
    error = the_error(result)
    assert where(error) == (str(root / "shinha.cfg"), 2)
    assert error.message == "unknown directive 'interval_lenght'"
    assert error.hint == "did you mean 'interval_length'?"
    assert result.config is not None
    assert result.config.main.interval_length == 60


# --- going on after an error ----------------------------------------------------------------


def test_loading_goes_on_after_errors(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=broken.cfg\ncfg_file=fine.cfg\n",
        "broken.cfg": """\
            define host {
                host_name  web
                adress     10.0.0.1
            }
            define service {
                host_name            web
                service_description  ping
                max_check_attempts   many
            }
            }
            define command {
                command_name  check_ping
                command_line  /bin/true
            }
            """,
        "fine.cfg": """\
            define host {
                host_name  db
                address    10.0.0.2
            }
            define service {
                host_name            db
                service_description  ping
                check_command        check_ping
            }
            """,
    })
    result = load(root)
    broken = root / "broken.cfg"
    assert sorted(map(where, result.errors)) == sorted([
        at(broken, "adress"), at(broken, "many"), (str(broken), 10)])
    assert result.config is not None
    assert sorted(result.config.hosts) == ["db", "web"]
    assert sorted(result.config.services) == [("db", "ping"), ("web", "ping")]
    assert list(result.config.commands) == ["check_ping"]
    assert result.config.hosts["db"].address == "10.0.0.2"

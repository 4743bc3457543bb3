"""The object language as Nagios reads it: blocks, comments, continuations, includes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from shinha.config import Diagnostic, LoadResult, load_config
from shinha.config.diagnostics import Diagnostics
from shinha.config.parser import RawObject, TreeReader, _fast_blocks

if TYPE_CHECKING:
    from tests.conftest import WriteTree

ROOT = Path(__file__).resolve().parents[1]
ETC = ROOT / "etc"


def load(root: Path, main: str = "shinha.cfg") -> LoadResult:
    return load_config(root / main)


def errors_and_warnings(result: LoadResult) -> list[Diagnostic]:
    """Every diagnostic but the 'no arbiter is defined' kind, which a small tree always has."""
    return [d for d in result.diagnostics if "the cluster cannot run without one" not in d.message]


def the_error(result: LoadResult) -> Diagnostic:
    """The one error of a load (the test fails, listing them, if there is not exactly one)."""
    assert len(result.errors) == 1, "\n".join(map(str, result.errors))
    return result.errors[0]


def careful(text: str, file: str = "objects.cfg") -> tuple[list[RawObject], list[Diagnostic]]:
    """Read `text` with the careful line reader only."""
    diags = Diagnostics()
    reader = TreeReader(diags)
    reader._parse_lines(text, file)
    return reader.tree.objects, diags.items


def as_tuples(objects: list[RawObject]) -> list[tuple[str, int, int, dict[str, str], bool]]:
    return [(o.type, o.line, o.end, o.props, o.additive) for o in objects]


# --- define blocks ------------------------------------------------------------------------


def test_define_blocks_accept_any_whitespace_and_brace_placement(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=hosts.cfg\n",
        "hosts.cfg": (
            "define host{\n"                                   # 1: no space before {
            "host_name\ta\n"                                   # 2: tab, no indent
            "}\n"
            "\tdefine\thost\t{\n"                              # 4: tabs everywhere
            "\t\thost_name\t\t b \t\n"                         # 5: trailing whitespace
            "\t}\n"
            "define host { host_name c\n"                      # 7: property on define line
            "    address 10.0.0.3 }\n"                         # 8: } on last property line
            "   define   host   {\n"                           # 9: extra spaces
            "\n"
            "        host_name   d\n"
            "        address     10.0.0.4\n"
            "\n"
            "   }   \n"
            "define host { host_name e }\n"                    # 15: a whole block on one line
        ),
    })
    result = load(root)
    assert errors_and_warnings(result) == []
    assert result.config is not None
    hosts = result.config.hosts
    assert sorted(hosts) == ["a", "b", "c", "d", "e"]
    assert hosts["b"].host_name == "b"
    assert hosts["c"].address == "10.0.0.3"
    assert hosts["d"].address == "10.0.0.4"
    assert {name: h.source_line for name, h in hosts.items()} == {
        "a": 1, "b": 4, "c": 7, "d": 9, "e": 15}


def test_a_property_set_twice_warns_and_the_last_value_wins(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=hosts.cfg\n",
        "hosts.cfg": """\
            define host {
                host_name  web
                address    10.0.0.1
                address    10.0.0.2
            }
            """,
    })
    result = load(root)
    assert [(d.severity, d.line) for d in errors_and_warnings(result)] == [("warning", 4)]
    assert "address is set twice" in errors_and_warnings(result)[0].message
    assert result.config is not None
    assert result.config.hosts["web"].address == "10.0.0.2"


# --- comments -------------------------------------------------------------------------------


def test_comments_as_nagios_reads_them(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": """\
            # a comment in the main file
            ; another one
            cfg_file=hosts.cfg   ; an inline comment after a directive
            """,
        "hosts.cfg": """\
            # hash comment
            ; semicolon comment
                # indented hash comment
                ; indented semicolon comment
            define host { ; a comment after the brace
                host_name   web        ; inline comment
                alias       50\\;50 web ; the escaped semicolon is kept
                notes_url   http://example.com/wiki#web
                notes       rack #4
            ;   address     10.9.9.9
            #   address     10.8.8.8
            }
            """,
    })
    result = load(root)
    assert errors_and_warnings(result) == []
    assert result.config is not None
    web = result.config.hosts["web"]
    assert web.alias == "50;50 web"
    assert web.notes_url == "http://example.com/wiki#web"
    assert web.notes == "rack #4"
    assert web.address == ""


# --- line continuation --------------------------------------------------------------------


def test_a_trailing_backslash_continues_the_line(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=objects.cfg\n",
        "objects.cfg": """\
            define command {
                command_name  check_web
                command_line  /usr/lib/nagios/plugins/check_http \\
                              -H $HOSTADDRESS$ \\
                              -u /health
            }
            define host {
                host_name  web
                adress     10.0.0.1
            }
            """,
    })
    result = load(root)
    assert result.config is not None
    assert result.config.commands["check_web"].command_line == (
        "/usr/lib/nagios/plugins/check_http -H $HOSTADDRESS$ -u /health")
    # Lines after a continuation keep their own numbers.
    assert result.config.hosts["web"].source_line == 7
    [error] = result.errors
    assert (error.file, error.line) == (str(root / "objects.cfg"), 9)


def test_crlf_files_read_like_lf_files(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": b"interval_length=30\r\ncfg_file=objects.cfg\r\n",
        "objects.cfg": (
            b"define command {\r\n"
            b"    command_name  check_web\r\n"
            b"    command_line  /bin/check_http \\\r\n"
            b"                  -H $HOSTADDRESS$\r\n"
            b"}\r\n"
            b"define host {\r\n"
            b"    host_name     web\r\n"
            b"    address       10.0.0.1\r\n"
            b"    check_command check_web\r\n"
            b"    adress        typo\r\n"
            b"}\r\n"
        ),
    })
    result = load(root)
    assert result.config is not None
    assert result.config.main.interval_length == 30
    assert result.config.commands["check_web"].command_line == "/bin/check_http -H $HOSTADDRESS$"
    web = result.config.hosts["web"]
    assert (web.address, web.check_command) == ("10.0.0.1", "check_web")
    [error] = result.errors
    assert "'adress'" in error.message
    assert (error.file, error.line) == (str(root / "objects.cfg"), 10)


def test_a_lone_carriage_return_does_not_shift_line_numbers(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=hosts.cfg\n",
        # An old Mac line end inside a comment: only \n ends a line, as in Nagios.
        "hosts.cfg": b"# written on a Mac\rin 1999\ndefine host {\n    host_name web\n"
                     b"    adress x\n}\n",
    })
    error = the_error(load(root))
    assert (error.file, error.line) == (str(root / "hosts.cfg"), 4)


# --- encodings ----------------------------------------------------------------------------


def test_a_utf8_byte_order_mark_is_skipped(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": b"\xef\xbb\xbfcfg_file=objects.cfg\n",
        "objects.cfg": b"\xef\xbb\xbfdefine host {\n    host_name  caf\xc3\xa9\n    adress x\n}\n",
    })
    result = load(root)
    [error] = result.errors
    assert "'adress'" in error.message and error.line == 3
    assert result.config is not None
    assert list(result.config.hosts) == ["café"]


def test_a_latin1_file_loads_with_a_warning(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=objects.cfg\n",
        "objects.cfg": b"define host {\n    host_name  web\n    alias      caf\xe9\n"
                       b"    adress\xe9    x\n}\n",
    })
    result = load(root)
    [warning] = [d for d in errors_and_warnings(result) if d.severity == "warning"]
    assert "not valid UTF-8" in warning.message
    assert (warning.file, warning.line) == (str(root / "objects.cfg"), 3)
    # A property is found again in the file as it was read, Latin-1 included.
    error = the_error(result)
    assert error.message == "unknown host property 'adressé'"
    assert (error.file, error.line) == (str(root / "objects.cfg"), 4)
    assert result.config is not None
    assert result.config.hosts["web"].alias == "café"


# --- includes -------------------------------------------------------------------------------


def test_cfg_dir_reads_every_cfg_file_below_it_in_sorted_order(write_tree: WriteTree) -> None:
    def host(name: str) -> str:
        return f"define host {{\n    host_name {name}\n}}\n"

    root = write_tree({
        "shinha.cfg": "cfg_dir=objects\n",
        "objects/b.cfg": host("b"),
        "objects/a.cfg": host("a"),
        "objects/z-sub/d.cfg": host("d"),
        "objects/sub/c.cfg": host("c"),
        "objects/sub/deeper/e.cfg": host("e"),
        "objects/sub/notes.txt": host("not-read-txt"),
        "objects/a.cfg.bak": host("not-read-bak"),
        "objects/README": host("not-read-readme"),
    })
    result = load(root)
    assert errors_and_warnings(result) == []
    assert result.config is not None
    assert sorted(result.config.hosts) == ["a", "b", "c", "d", "e"]
    assert result.config.files == [str(root / p) for p in (
        "shinha.cfg", "objects/a.cfg", "objects/b.cfg", "objects/sub/c.cfg",
        "objects/sub/deeper/e.cfg", "objects/z-sub/d.cfg")]


def test_cfg_dir_goes_round_a_symlink_loop_once(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_dir=objects\n",
        "objects/hosts.cfg": "define host {\n    host_name web\n}\n",
        "objects/sub/more.cfg": "define host {\n    host_name db\n}\n",
    })
    (root / "objects" / "sub" / "back-up").symlink_to("..")
    (root / "objects" / "itself").symlink_to(".")
    result = load(root)
    assert errors_and_warnings(result) == []
    assert result.config is not None
    assert sorted(result.config.hosts) == ["db", "web"]
    assert result.config.files == [str(root / p) for p in (
        "shinha.cfg", "objects/hosts.cfg", "objects/sub/more.cfg")]


def test_relative_includes_resolve_against_the_including_file(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=objects/hosts.cfg\n",
        # An object file may hold directives too (Shinken); its paths are relative to it.
        "objects/hosts.cfg": """\
            cfg_file=extra.cfg
            cfg_dir=more
            resource_file=../secrets/resource.cfg
            define host {
                host_name  from-hosts
            }
            """,
        "objects/extra.cfg": "define host {\n    host_name from-objects-extra\n}\n",
        "objects/more/m.cfg": "define host {\n    host_name from-objects-more\n}\n",
        "secrets/resource.cfg": "$USER1$=/opt/plugins\n",
        # Decoys at the main file's level: they must not be read.
        "extra.cfg": "define host {\n    host_name decoy-extra\n}\n",
        "more/m.cfg": "define host {\n    host_name decoy-more\n}\n",
    })
    result = load(root)
    assert errors_and_warnings(result) == []
    assert result.config is not None
    assert sorted(result.config.hosts) == ["from-hosts", "from-objects-extra",
                                           "from-objects-more"]
    assert result.config.resources == {"USER1": "/opt/plugins"}


def test_resource_file_defines_user_macros(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "resource_file=resource.cfg\ncfg_file=commands.cfg\n",
        "resource.cfg": """\
            # Sets $USER1$ to the path of the plugins
            ; and $USER2$ to a password

            $USER1$=/usr/lib/nagios/plugins
            $USER2$ = s3cret=with=equals
            """,
        "commands.cfg": """\
            define command {
                command_name  check_db
                command_line  $USER1$/check_mysql -p $USER2$
            }
            define command {
                command_name  check_other
                command_line  $USER3$/check_other
            }
            define host {
                host_name     db
                check_command check_db
            }
            """,
    })
    result = load(root)
    assert result.config is not None
    assert result.config.resources == {"USER1": "/usr/lib/nagios/plugins",
                                       "USER2": "s3cret=with=equals"}
    assert result.errors == []
    # Only the macro that no resource file defines is reported, at its command.
    [warning] = errors_and_warnings(result)
    assert "$USER3$" in warning.message
    assert (warning.file, warning.line) == (str(root / "commands.cfg"), 5)


def test_a_resource_line_that_is_not_a_macro_is_an_error(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "resource_file=resource.cfg\ncfg_file=hosts.cfg\n",
        "resource.cfg": "$USER1$=/usr/lib/nagios/plugins\nUSER2=oops\n",
        "hosts.cfg": "define host {\n    host_name web\n}\n",
    })
    result = load(root)
    [error] = result.errors
    assert (error.file, error.line) == (str(root / "resource.cfg"), 2)
    assert error.hint is not None and "$USER1$=" in error.hint
    assert result.config is not None
    assert result.config.resources == {"USER1": "/usr/lib/nagios/plugins"}


def test_a_nagios_main_file_loads_and_unused_directives_are_warnings(
    write_tree: WriteTree,
) -> None:
    root = write_tree({
        "nagios.cfg": """\
            # nagios.cfg as Nagios 4 ships it (abridged)
            log_file=/var/log/nagios4/nagios.log
            cfg_file=objects/localhost.cfg
            object_cache_file=/var/lib/nagios4/objects.cache
            resource_file=resource.cfg
            status_file=/var/lib/nagios4/status.dat
            nagios_user=nagios
            check_external_commands=1
            interval_length=30
            enable_notifications=1
            """,
        "resource.cfg": "$USER1$=/usr/lib/nagios/plugins\n",
        # Nagios 4 needs a service, a contact and max_check_attempts (tests/test_dialect.py).
        "objects/localhost.cfg": """\
            define host {
                host_name           localhost
                max_check_attempts  3
            }
            define service {
                host_name           localhost
                service_description ping
                check_command       check_ping
                max_check_attempts  3
            }
            define command {
                command_name        check_ping
                command_line        $USER1$/check_ping -H $HOSTADDRESS$
            }
            define contact {
                contact_name        admin
            }
            """,
    })
    result = load(root, "nagios.cfg")
    assert result.errors == []
    assert result.config is not None
    assert list(result.config.hosts) == ["localhost"]
    assert result.config.main.interval_length == 30
    ignored = {(d.message, d.line) for d in result.warnings if d.message.startswith("ignored")}
    assert ignored == {
        (f"ignored: directive '{key}' (not used by shinha)", line) for key, line in (
            ("log_file", 2), ("object_cache_file", 4), ("status_file", 6), ("nagios_user", 7),
            ("check_external_commands", 8))}
    assert result.config.main.enable_notifications  # read (=1), not ignored
    assert all(d.file == str(root / "nagios.cfg") for d in result.warnings
               if d.message.startswith("ignored"))


def test_a_file_included_twice_is_read_once_with_a_warning(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": """\
            cfg_file=objects/hosts.cfg
            cfg_dir=objects
            cfg_file=./objects/../objects/hosts.cfg
            """,
        "objects/hosts.cfg": "define host {\n    host_name web\n}\n",
    })
    result = load(root)
    assert result.errors == []  # in particular, no "host 'web' is defined twice"
    twice = [d for d in result.warnings if "included more than once" in d.message]
    assert [(d.file, d.line) for d in twice] == [(str(root / "shinha.cfg"), 2),
                                                 (str(root / "shinha.cfg"), 3)]
    assert result.config is not None
    assert list(result.config.hosts) == ["web"]


def test_a_reload_reports_lines_of_the_edited_file(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=hosts.cfg\n",
        "hosts.cfg": "define host {\n    host_name  web\n    adress     x\n}\n",
    })
    [before] = load(root).errors
    assert before.line == 3
    (root / "hosts.cfg").write_text(
        "# a comment added on top\n\ndefine host {\n    host_name  web\n\n    adress  x\n}\n")
    [after] = load(root).errors
    assert after.line == 6


# --- the fast path and the careful reader -------------------------------------------------

#: Hand-written files that exercise both readers; the fast path may give up (None) on any of
#: them, but when it does not, it must agree with the careful reader.
EDGE_CASES: dict[str, str] = {
    "plain": "define host {\n    host_name a\n    address 10.0.0.1\n}\n",
    "tabs and define host{": "define host{\n\thost_name\ta\n\t}\n\tdefine\tservice\t{\n"
                             "\t\tservice_description\tx\n}\n",
    "comments and blank lines": "# c\n\n; c\ndefine command {\n  # c\n  command_name c\n"
                                "  ; c\n  command_line /bin/true\n\n}\n# end\n",
    "crlf": "define host {\r\n    host_name a\r\n    alias A B\r\n}\r\n",
    "empty value": "define host {\n    host_name a\n    notes\n}\n",
    "additive": "define host {\n    host_name a\n    hostgroups +web,db\n}\n",
    "hash inside a value": "define host {\n    host_name a\n    notes_url http://x/#y\n}\n",
    "inline semicolon": "define host {\n    host_name a ; comment\n}\n",
    "escaped semicolon": "define host {\n    host_name a\n    alias x\\;y\n}\n",
    "semicolon inside a key": "define host {\n    host_name a\n    hostgro;up_name web\n}\n",
    "closing brace inside a key": "define host {\n    host_name a\n    memb} ers web\n}\n",
    "opening brace inside a key": "define host {\n    host_name a\n    addres{ x\n}\n",
    "a lone brace as a key": "define host {\n    host_name a\n    } alias x\n}\n",
    "brace inside the type": "define ho{st {\n    host_name a\n}\n",
    "semicolon inside the type": "define ho;st {\n    host_name a\n}\n",
    "odd whitespace inside the type": "define ho\x0bst {\n    host_name a\n}\n",
    "brace closing a value": "define host {\n    host_name a\n    address x }\n",
    "property on define line": "define host { host_name a\n}\n",
    "continuation": "define host {\n    host_name a \\\n      b\n}\n",
    "repeated key": "define host {\n    host_name a\n    host_name b\n}\n",
    "directive": "cfg_file=x.cfg\ndefine host {\n    host_name a\n}\n",
    "unterminated": "define host {\n    host_name a\n",
    "stray brace": "}\ndefine host {\n    host_name a\n}\n",
    "nested define": "define host {\n    host_name a\ndefine host {\n    host_name b\n}\n",
    "timeperiod": "define timeperiod {\n    timeperiod_name t\n    monday 09:00-17:00\n}\n",
    "nul byte": "define host {\n    host_name a\x00b\n}\n",
}


def representative_files() -> list[Path]:
    return sorted(ETC.rglob("*.cfg"))


@pytest.mark.parametrize("path", representative_files(), ids=lambda p: str(p.relative_to(ETC)))
def test_fast_path_and_careful_reader_agree_on_the_shipped_files(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    fast = _fast_blocks(text, str(path))
    objects, diags = careful(text, str(path))
    if fast is None:
        # Only files the fast path must not take: directives, timeperiods, `;` after values.
        assert ("=" in text or "define timeperiod" in text or ";" in text
                or "\\\n" in text), f"the fast path gave up on a plain file: {path}"
        return
    assert as_tuples(fast) == as_tuples(objects)
    assert diags == []


def test_the_fast_path_takes_the_plain_shipped_files() -> None:
    taken = [p for p in representative_files()
             if _fast_blocks(p.read_text(encoding="utf-8"), str(p)) is not None]
    # Most object files are plain blocks; a fast path that never runs is not tested.
    assert len(taken) >= 15


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_fast_path_and_careful_reader_agree_on_edge_cases(name: str) -> None:
    text = EDGE_CASES[name]
    fast = _fast_blocks(text, "edge.cfg")
    objects, diags = careful(text, "edge.cfg")
    if fast is not None:
        assert as_tuples(fast) == as_tuples(objects)
        assert diags == [], "the fast path accepted a file the careful reader complains about"


@pytest.mark.parametrize("name", ["plain", "tabs and define host{", "comments and blank lines",
                                  "crlf", "empty value", "additive", "hash inside a value"])
def test_the_fast_path_takes_plain_edge_cases(name: str) -> None:
    assert _fast_blocks(EDGE_CASES[name], "edge.cfg") is not None

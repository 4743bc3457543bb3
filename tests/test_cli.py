"""`shinha check-config`, and the trees shipped in etc/ pass it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from shinha.config import Config, load_config
from shinha.config.daemons import DAEMON_MODELS

if TYPE_CHECKING:
    from tests.conftest import WriteTree

ROOT = Path(__file__).resolve().parents[1]
ETC = ROOT / "etc"
HA = ETC / "examples" / "ha-two-hosts"
NAGIOS = ETC / "examples" / "nagios-compat"
ROLES = sorted(DAEMON_MODELS)


def check_config(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m shinha check-config ARGS` from the repository's root."""
    return subprocess.run([sys.executable, "-m", "shinha", "check-config", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def loaded(main: Path) -> Config:
    """Load `main`; it must load with no error and no warning."""
    result = load_config(main)
    assert result.diagnostics == [], "\n".join(map(str, result.diagnostics))
    assert result.config is not None
    return result.config


@pytest.fixture
def broken_tree(write_tree: WriteTree) -> Path:
    """A tree with one error (a misspelt property at hosts.cfg:3) and one warning."""
    root = write_tree({
        "shinha.cfg": "cfg_file=hosts.cfg\nlog_file=/var/log/nagios.log\n",
        "hosts.cfg": """\
            define host {
                host_name  web
                adress     10.0.0.1
            }
            """,
    })
    return root


# --- the command ----------------------------------------------------------------------------


def test_check_config_on_the_default_tree_exits_0() -> None:
    proc = check_config("etc/shinha.cfg")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.rstrip().endswith("0 errors, 0 warnings: configuration is valid")
    # The summary counts each object type.
    summary = {line.split()[0]: int(line.split()[1]) for line in proc.stdout.splitlines()
               if line.startswith("  ")}
    assert summary["hosts"] == 1
    assert all(summary[f"{role}s"] == 1 for role in ROLES)


def test_check_config_on_a_broken_tree_exits_1_and_names_file_and_line(
    broken_tree: Path,
) -> None:
    proc = check_config(str(broken_tree / "shinha.cfg"))
    assert proc.returncode == 1
    assert proc.stderr == ""
    assert (f"{broken_tree / 'hosts.cfg'}:3: error: unknown host property 'adress' "
            "(did you mean 'address'?)") in proc.stdout.splitlines()
    assert (f"{broken_tree / 'shinha.cfg'}:2: warning: ignored: directive 'log_file' "
            "(not used by shinha)") in proc.stdout.splitlines()
    assert "1 error, " in proc.stdout
    assert proc.stdout.rstrip().endswith("configuration has errors")


def test_check_config_json_on_a_broken_tree(broken_tree: Path) -> None:
    proc = check_config("--json", str(broken_tree / "shinha.cfg"))
    assert proc.returncode == 1
    doc: dict[str, Any] = json.loads(proc.stdout)
    assert doc["valid"] is False
    assert doc["counts"]["host"] == 1
    assert doc["config_hash"]
    [error] = doc["errors"]
    assert error == {
        "severity": "error", "file": str(broken_tree / "hosts.cfg"), "line": 3,
        "message": "unknown host property 'adress'", "hint": "did you mean 'address'?"}
    ignored = [w for w in doc["warnings"] if w["message"].startswith("ignored: directive")]
    assert [(w["file"], w["line"]) for w in ignored] == [(str(broken_tree / "shinha.cfg"), 2)]


def test_check_config_json_on_the_default_tree() -> None:
    proc = check_config("--json", "etc/shinha.cfg")
    assert proc.returncode == 0, proc.stdout
    doc: dict[str, Any] = json.loads(proc.stdout)
    assert doc["valid"] is True
    assert (doc["errors"], doc["warnings"]) == ([], [])
    assert doc["counts"] == loaded(ETC / "shinha.cfg").counts()
    assert doc["files"] > 10


def test_check_config_on_a_missing_main_file_exits_1(tmp_path: Path) -> None:
    proc = check_config(str(tmp_path / "nowhere.cfg"))
    assert proc.returncode == 1
    assert f"main configuration file not found: {tmp_path / 'nowhere.cfg'}" in proc.stdout
    assert "Traceback" not in proc.stderr


# --- the shipped trees ----------------------------------------------------------------------


def test_the_default_tree_has_one_daemon_of_each_role() -> None:
    config = loaded(ETC / "shinha.cfg")
    for role in ROLES:
        daemons = list(config.daemons[role].values())
        assert len(daemons) == 1, role
        assert not daemons[0].spare
    assert list(config.hosts) == ["localhost"]
    assert len(config.services) > 0


def test_the_ha_example_has_a_master_on_host_a_and_a_spare_on_host_b() -> None:
    config = loaded(HA / "shinha.cfg")
    for role in ROLES:
        daemons = sorted(config.daemons[role].values(), key=lambda d: d.host_name)
        assert [(d.host_name, d.address, d.spare) for d in daemons] == [
            ("host-a", "127.0.0.2", False), ("host-b", "127.0.0.3", True)], role
    assert sorted(config.hosts) == ["host-a", "host-b"]


def test_the_nagios_example_loads_without_errors() -> None:
    result = load_config(NAGIOS / "nagios.cfg")
    assert result.errors == []
    # Only what shinha does not use, and the daemons a Nagios tree does not define.
    unexpected = [w for w in result.warnings if not w.message.startswith("ignored: ")
                  and not w.message.endswith("the cluster cannot run without one")]
    assert unexpected == []
    assert result.config is not None
    assert len(result.config.hosts) > 1 and len(result.config.services) > 1


def test_config_hash_is_the_same_for_a_copy_at_another_path(tmp_path: Path) -> None:
    copy = shutil.copytree(ETC, tmp_path / "elsewhere" / "etc")
    original = loaded(ETC / "shinha.cfg")
    copied = loaded(copy / "shinha.cfg")
    assert copied.files != original.files
    assert copied.config_hash == original.config_hash
    # ...and it is a hash of the content: one byte more and it changes.
    with (copy / "hosts" / "localhost.cfg").open("a") as f:
        f.write("\n")
    assert loaded(copy / "shinha.cfg").config_hash != original.config_hash

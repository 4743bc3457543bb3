"""The configuration reference is generated from the models and must be current."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from shinha.config import docgen, load_config
from shinha.config.build import OBJECT_MODELS
from shinha.db.options import DATASERVER_OPTIONS, MariadbOptions, mariadb_options

ROOT = Path(__file__).resolve().parents[1]
#: Every shipped example tree, by its main file (shinha.cfg, or a Nagios tree's nagios.cfg).
EXAMPLES = sorted(p for d in (ROOT / "etc" / "examples").iterdir() if d.is_dir()
                  for p in (d / "shinha.cfg", d / "nagios.cfg") if p.is_file())


def test_reference_is_up_to_date() -> None:
    result = subprocess.run([sys.executable, "-m", "shinha.config.docgen", "--check"],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_reference_documents_every_property_of_every_type() -> None:
    text = docgen.reference()
    for type_, model in OBJECT_MODELS.items():
        assert f"### `define {type_}`" in text
        for name in model.model_fields:
            if name in ("source_file", "source_line", "customs"):
                continue
            if name == "options" and type_ != "module":
                continue
            assert f"| `{name}` |" in text, f"{type_}.{name} missing from the reference"


def test_readme_gives_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make run" in readme and "make test" in readme


@pytest.mark.parametrize("main", EXAMPLES, ids=lambda p: p.parent.name)
def test_every_example_loads_without_errors(main: Path) -> None:
    result = load_config(main)
    assert result.ok, [f"{d.file}:{d.line}: {d.message}" for d in result.errors]


def test_examples_cover_the_mariadb_tier() -> None:
    assert ROOT / "etc" / "examples" / "ha-two-hosts-mariadb" / "shinha.cfg" in EXAMPLES


@pytest.mark.parametrize("main", EXAMPLES, ids=lambda p: p.parent.name)
def test_example_database_passwords_come_from_the_resource_file(main: Path) -> None:
    config = load_config(main).raise_for_errors()
    for module in config.modules.values():
        if module.module_type != "mariadb":
            continue
        options = {k: v for k, v in module.options.items() if k not in DATASERVER_OPTIONS}
        for key, value in options.items():
            if key.endswith("pass"):
                assert re.fullmatch(r"\$USER\d+\$", value), f"{main}: {key} {value!r}"
        parsed = mariadb_options(module.module_name, options, config.resources)
        assert all(parsed.secrets()), f"{main}: a password macro is not in the resource file"


def test_reference_documents_the_mariadb_module() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert "## Storage modules" in text and "### The mariadb storage module" in text
    for name in [*MariadbOptions.model_fields, *DATASERVER_OPTIONS]:
        if name == "module_name":
            continue
        assert f"| `{name}` |" in text, f"mariadb module option {name} missing from the reference"

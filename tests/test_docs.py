"""The configuration reference is generated from the models and must be current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shinha.config import docgen
from shinha.config.build import OBJECT_MODELS

ROOT = Path(__file__).resolve().parents[1]


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

"""The layout shows the architecture: a role's package never imports another role's (what two
roles share lives in a shared module, such as shinha/rendezvous.py or shinha/perfdata.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from shinha.wire import ROLES

PACKAGE = Path(__file__).resolve().parents[1] / "shinha"


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, type-checking-only ones included (they
    would tie the roles together for the reader all the same)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: a relative import; write "
                                 "`from shinha.… import …`")
    return found


def role_of(module: str) -> str | None:
    """The role whose package `module` is in (`shinha.poller.daemon` -> poller)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "shinha" and parts[1] in ROLES else None


@pytest.mark.parametrize("role", ROLES)
def test_a_role_imports_no_other_role(role: str) -> None:
    files = sorted((PACKAGE / role).rglob("*.py"))
    assert files, f"shinha/{role}/ is empty"
    wrong = [f"{path.relative_to(PACKAGE.parent)}:{line}: imports {module}"
             for path in files for line, module in imported_modules(path)
             if role_of(module) not in (None, role)]
    assert not wrong, "a role imports another role's package; move what they share to a " \
                      "shared module:\n" + "\n".join(wrong)


def test_the_check_sees_a_cross_role_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import shinha.poller\nfrom shinha.arbiter.partition import cut\n"
                      "from shinha import wire\n")
    found = [role_of(m) for _, m in imported_modules(module)]
    assert found == ["poller", "arbiter", None]

"""Shinken and Alignak trees load as those engines load them; Nagios trees stay as strict as
`nagios4 -v`.

Each directory of tests/compat/ is a small tree with its main file and an `expected.json`:
the dialect check-config must report, and what the real engine (Shinken 2.4.3, Alignak
1.0.0 or 2.1.5, Nagios 4.4.6) made of the same tree — its verdict, and when it loads it, the
object counts, the services of each host and the group names. The `peer` block of each file
is the engine's own output (tests/compat/peers.py re-runs it); `diagnostics` are the warnings
and errors shinha must give, each at one of the listed lines of its file; `absent` are
diagnostics it must not give.
"""

from __future__ import annotations

import contextlib
import io
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from shinha.cli import main as shinha_main
from shinha.config.diagnostics import Diagnostic
from shinha.config.loader import LoadResult, load_config

CORPUS = Path(__file__).parent / "compat"
TREES = sorted(p.name for p in CORPUS.iterdir() if (p / "expected.json").is_file())


@cache
def expected(tree: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CORPUS / tree / "expected.json").read_text("utf-8"))
    return loaded


@cache
def loaded(tree: str) -> LoadResult:
    return load_config(CORPUS / tree / expected(tree)["main"])


@cache
def check_config_json(tree: str) -> dict[str, Any]:
    """What `shinha check-config --json MAIN` prints for the tree."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        shinha_main(["check-config", "--json", str(CORPUS / tree / expected(tree)["main"])])
    doc: dict[str, Any] = json.loads(out.getvalue())
    return doc


def where(diag: Diagnostic, tree: str) -> str:
    """The diagnostic's file relative to the tree (as expected.json names it)."""
    if diag.file is None:
        return "<none>"
    path = Path(diag.file).resolve()
    root = (CORPUS / tree).resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def text(diag: Diagnostic) -> str:
    return f"{diag.message} {diag.hint or ''}"


def listing(result: LoadResult, tree: str, severity: str | None = None) -> str:
    return "\n".join(f"  {where(d, tree)}:{d.line}: {d.severity}: {text(d)}"
                     for d in result.diagnostics if severity in (None, d.severity))


@pytest.mark.parametrize("tree", TREES)
def test_the_verdict_is_the_engines(tree: str) -> None:
    """No verdict is made up: the expected one is the one the engine gave (peer block)."""
    want = expected(tree)
    assert want["verdict"] in ("ok", "refused")
    assert want["verdict"] == want["peer"]["verdict"], want["peer"]
    assert (CORPUS / tree / "README.md").is_file()


@pytest.mark.parametrize("tree", TREES)
def test_check_config_names_the_dialect(tree: str) -> None:
    said = check_config_json(tree).get("dialect")
    # The name alone, or first ("shinken (the main file is named shinken.cfg)"), or a "name" key.
    name = said.get("name") if isinstance(said, dict) else str(said or "").split(" ", 1)[0]
    assert name == expected(tree)["dialect"], f"check-config --json says dialect {said!r}"


@pytest.mark.parametrize("tree", TREES)
def test_same_verdict_as_the_engine(tree: str) -> None:
    want, result = expected(tree), loaded(tree)
    engine = want["peer"]["engine"]
    if want["verdict"] == "ok":
        assert result.ok, f"{engine} loads {tree}; shinha refuses it:\n" + listing(
            result, tree, "error")
    else:
        assert not result.ok, f"{engine} refuses {tree} ({want['peer']['messages']}); " \
                              "shinha loads it"


@pytest.mark.parametrize("tree", [t for t in TREES if "counts" in expected(t)])
def test_same_counts_as_the_engine(tree: str) -> None:
    result = loaded(tree)
    assert result.config is not None
    counts = result.config.counts()
    want = expected(tree)["counts"]
    assert {k: counts.get(k) for k in want} == want


@pytest.mark.parametrize("tree", [t for t in TREES if "services" in expected(t)])
def test_same_services_per_host_as_the_engine(tree: str) -> None:
    result = loaded(tree)
    assert result.config is not None
    ours: dict[str, list[str]] = {}
    for host, description in result.config.services:
        ours.setdefault(host, []).append(description)
    want = expected(tree)["services"]
    assert {h: sorted(d) for h, d in ours.items()} == {h: sorted(d) for h, d in want.items()}


@pytest.mark.parametrize("tree", [t for t in TREES if "groups" in expected(t)])
def test_same_groups_as_the_engine(tree: str) -> None:
    result = loaded(tree)
    assert result.config is not None
    ours: dict[str, list[str]] = {
        "hostgroup": list(result.config.hostgroups),
        "servicegroup": list(result.config.servicegroups),
        "contactgroup": list(result.config.contactgroups),
    }
    want = expected(tree)["groups"]
    assert {k: sorted(ours[k]) for k in want} == {k: sorted(v) for k, v in want.items()}


@pytest.mark.parametrize("tree", [t for t in TREES if "diagnostics" in expected(t)])
def test_each_expected_diagnostic_with_its_file_and_line(tree: str) -> None:
    result = loaded(tree)
    missing = []
    for want in expected(tree)["diagnostics"]:
        found = [d for d in result.diagnostics
                 if d.severity == want["severity"] and where(d, tree) == want["file"]
                 and (want["lines"] is None or d.line in want["lines"])
                 and all(part in text(d) for part in want["contains"])]
        if not found:
            lines = "any line" if want["lines"] is None else f"line {want['lines']}"
            missing.append(f"  {want['severity']} at {want['file']} ({lines}) "
                           f"containing {want['contains']}")
    assert not missing, ("missing:\n" + "\n".join(missing) + "\nshinha said:\n"
                         + listing(result, tree))


@pytest.mark.parametrize("tree", [t for t in TREES if "absent" in expected(t)])
def test_no_unwanted_diagnostic(tree: str) -> None:
    result = loaded(tree)
    unwanted = [f"  {where(d, tree)}:{d.line}: {d.severity}: {text(d)}"
                for want in expected(tree)["absent"] for d in result.diagnostics
                if all(part in text(d) for part in want["contains"])]
    assert not unwanted, "unwanted:\n" + "\n".join(unwanted)

"""Malformed configuration ends in diagnostics, never in a traceback.

The real trees (etc/ and the Nagios example) are cut, shuffled and sprinkled with garbage by a
seeded random generator; a failing case names its seed, and `mutate_tree(seed)` rebuilds it.
"""

from __future__ import annotations

import functools
import json
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from shinha.config import LoadResult, load_config
from shinha.config.diagnostics import Diagnostic

if TYPE_CHECKING:
    from tests.conftest import WriteTree

ROOT = Path(__file__).resolve().parents[1]
ETC = ROOT / "etc"

#: name -> (directory of the tree, its main file)
TREES = {
    "etc": (ETC, "shinha.cfg"),
    "nagios-compat": (ETC / "examples" / "nagios-compat", "nagios.cfg"),
}

#: Diagnostics about the configuration as a whole, which no single file is to blame for.
WHOLE_CONFIG_MESSAGES = ("several realms and none is 'default 1'",)

GARBAGE = [
    b"{", b"}", b"{}", b"}{", b"define", b"define ", b"define host {", b"define hots {",
    b"\\", b"\\\n", b"\\;", b";", b"#", b"=", b"cfg_file=", b"cfg_dir=..", b"+", b"null",
    b"!", b"$", b"$USER1$", b",", b"*", b"\x00", b"\xff", b"\xfe\xff", b"\xc3", b"\xef\xbb\xbf",
    b"\r", b"\r\n", b"\n", b"\t", b" ", b"\x0b\x0c", b"use ", b"name x\n", b"register 0\n",
    b"host_name ", b"00:00-24:00", b"monday", b"-", b"\xe2\x80\xa8",
]


@functools.cache
def read_tree(name: str) -> tuple[str, dict[str, bytes]]:
    """The main file's name and every file the loader reads from tree `name`, by path."""
    directory, main = TREES[name]
    result = load_config(directory / main)
    assert result.config is not None and result.errors == []
    files = {str(Path(f).relative_to(directory)): Path(f).read_bytes()
             for f in result.config.files}
    assert main in files and len(files) > 5
    return main, files



def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _delete_lines(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    for _ in range(rng.randint(1, 3)):
        if lines:
            del lines[rng.randrange(len(lines))]
    return b"\n".join(lines)


def _duplicate_lines(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    start = rng.randrange(len(lines))
    chunk = lines[start : start + rng.randint(1, 6)]
    at = rng.randrange(len(lines) + 1)
    return b"\n".join(lines[:at] + chunk + lines[at:])


def _insert_garbage(rng: random.Random, data: bytes) -> bytes:
    for _ in range(rng.randint(1, 4)):
        junk = (rng.choice(GARBAGE) if rng.random() < 0.8
                else bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))))
        at = rng.randrange(len(data) + 1)
        data = data[:at] + junk + data[at:]
    return data


def _swap_braces(rng: random.Random, data: bytes) -> bytes:
    table = bytes.maketrans(b"{}", b"}{")
    if rng.random() < 0.3:
        return data.translate(table)
    lines = data.split(b"\n")
    candidates = [i for i, line in enumerate(lines) if b"{" in line or b"}" in line]
    if candidates:
        i = rng.choice(candidates)
        lines[i] = lines[i].translate(table)
    return b"\n".join(lines)


MUTATIONS: list[Callable[[random.Random, bytes], bytes]] = [
    _truncate, _delete_lines, _duplicate_lines, _insert_garbage, _swap_braces]


def mutate_tree(seed: int) -> tuple[str, dict[str, bytes], list[str]]:
    """Return (main file, mutated files, what was done) of case `seed`."""
    rng = random.Random(seed)
    name = rng.choice(sorted(TREES))
    main, files = read_tree(name)
    files = dict(files)
    done = [name]
    for path in rng.sample(sorted(files), rng.randint(1, 3)):
        for _ in range(rng.randint(1, 3)):
            mutation = rng.choice(MUTATIONS)
            files[path] = mutation(rng, files[path])
            done.append(f"{mutation.__name__}({path})")
    return main, files, done


def check_diagnostic(diag: Diagnostic, root: Path) -> None:
    assert diag.severity in ("error", "warning")
    assert isinstance(diag.message, str) and diag.message.strip()
    if diag.file is None:
        assert diag.message.startswith(WHOLE_CONFIG_MESSAGES), f"no file: {diag}"
        return
    assert Path(diag.file).is_relative_to(root), f"outside the tree: {diag}"
    if diag.line is not None:
        path = Path(diag.file)
        lines = path.read_bytes().count(b"\n") + 1 if path.is_file() else 0
        assert 1 <= diag.line <= lines, f"line out of the file ({lines} lines): {diag}"
    json.dumps(diag.as_dict())
    str(diag)


def load_mutated(seed: int, write_tree: WriteTree) -> tuple[Path, LoadResult]:
    """Write case `seed` and load it; return its directory and what the load gave."""
    main, files, _ = mutate_tree(seed)
    root = write_tree(files)
    return root, load_config(root / main)


# --- regressions found by this file ---------------------------------------------------------


def test_a_tree_whose_only_host_is_broken_still_loads(write_tree: WriteTree) -> None:
    """No host and no service left after the errors: the reference checks still run."""
    root = write_tree({
        "shinha.cfg": "cfg_file=hosts.cfg\n",
        "hosts.cfg": "define host {\n    host_name  web\n",  # never closed
    })
    result = load_config(root / "shinha.cfg")
    assert [(d.line, "never closed" in d.message) for d in result.errors] == [(1, True)]
    assert result.config is not None and result.config.hosts == {}


def test_a_tree_of_daemons_only_loads(write_tree: WriteTree) -> None:
    root = write_tree({
        "shinha.cfg": "cfg_file=poller.cfg\n",
        "poller.cfg": "define poller {\n    poller_name  poller-1\n}\n",
    })
    result = load_config(root / "shinha.cfg")
    assert result.errors == []
    assert result.config is not None and list(result.config.daemons["poller"]) == ["poller-1"]


# --- random cases ---------------------------------------------------------------------------


def test_the_cases_are_deterministic_and_varied() -> None:
    assert mutate_tree(7) == mutate_tree(7)
    kinds = {step.split("(")[0] for seed in range(50) for step in mutate_tree(seed)[2][1:]}
    assert kinds == {m.__name__ for m in MUTATIONS}
    trees = {mutate_tree(seed)[2][0] for seed in range(50)}
    assert trees == set(TREES)


@pytest.mark.parametrize("seed", range(300))
def test_a_mutated_tree_ends_in_diagnostics(seed: int, write_tree: WriteTree) -> None:
    root, result = load_mutated(seed, write_tree)
    assert result.config is not None
    for diag in result.diagnostics:
        check_diagnostic(diag, root)


def test_most_mutations_are_noticed(write_tree: WriteTree) -> None:
    """The cases above are not mostly harmless edits: most of them do produce an error."""
    with_errors = sum(bool(load_mutated(seed, write_tree)[1].errors) for seed in range(40))
    assert with_errors >= 20


@pytest.mark.parametrize("seed", [3, 11])
def test_check_config_on_a_broken_tree_exits_1_without_a_traceback(
    seed: int, write_tree: WriteTree,
) -> None:
    # The first case from `seed` on that has an error, so that the exit code must be 1.
    root, result = load_mutated(seed, write_tree)
    while not result.errors:
        seed += 1
        root, result = load_mutated(seed, write_tree)
    main = mutate_tree(seed)[0]
    for extra in ([], ["--json"]):
        proc = subprocess.run(
            [sys.executable, "-m", "shinha", "check-config", str(root / main), *extra],
            capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        assert proc.stderr == ""
        assert "error" in proc.stdout

"""Shared fixtures of the test suite."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from shinha.config.loader import LoadResult, load_config

# --- config trees on disk: load_objects (test_timeperiod, test_macros, test_linking) -------

#: load_objects(objects, resource=None) -> LoadResult
LoadObjects = Callable[..., LoadResult]


@pytest.fixture
def load_objects(tmp_path: Path) -> LoadObjects:
    """Write object definitions (and a resource file) under tmp_path, then load them.

    Each call writes its own tree (tree-1/, tree-2/, …), so one test may load several.
    """
    counter = itertools.count(1)

    def load(objects: str, resource: str | None = None) -> LoadResult:
        root = tmp_path / f"tree-{next(counter)}"
        root.mkdir()
        (root / "objects.cfg").write_text(textwrap.dedent(objects), encoding="utf-8")
        main = ["cfg_file=objects.cfg"]
        if resource is not None:
            (root / "resource.cfg").write_text(textwrap.dedent(resource), encoding="utf-8")
            main.append("resource_file=resource.cfg")
        (root / "shinha.cfg").write_text("\n".join(main) + "\n", encoding="utf-8")
        return load_config(root / "shinha.cfg")

    return load


# --- end of config trees on disk ------------------------------------------------------------


# --- file trees on disk: write_tree (test_parser, test_errors, test_fuzz, test_cli) ----------

#: write_tree({relative path: content}) -> the directory the files were written under
WriteTree = Callable[[Mapping[str, str | bytes]], Path]


def write_files(root: Path, files: Mapping[str, str | bytes]) -> Path:
    """Write `files` under `root`, creating directories; return `root`.

    Text is dedented (write it as an indented triple-quoted string that starts with a
    backslash-newline, so its first line is line 1) and written as UTF-8 with its line endings
    as they are (CRLF stays CRLF); bytes are written exactly.
    """
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = textwrap.dedent(content).encode("utf-8")
        path.write_bytes(content)
    return root


@pytest.fixture
def write_tree(tmp_path: Path) -> WriteTree:
    """Write a tree of files from a dict; each call writes under its own new directory."""
    counter = itertools.count(1)

    def write(files: Mapping[str, str | bytes]) -> Path:
        return write_files(tmp_path / f"files-{next(counter)}", files)

    return write


# --- end of file trees on disk --------------------------------------------------------------

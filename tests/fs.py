"""A small filesystem of our own, to fill up: a real full disk (ENOSPC), no stand-in."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of `size` at `path` for the block. Needs root: CI runs as root and fails
    rather than skips (CI=true); elsewhere the test is skipped."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            raise AssertionError("this test needs root (mount tmpfs); CI runs as root")
        pytest.skip("needs root to mount a small tmpfs")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> Path:
    """Fill the filesystem holding `path` with one file; return it (unlink it to free)."""
    filler = path / "filler"
    with open(filler, "wb", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 4096)
    return filler

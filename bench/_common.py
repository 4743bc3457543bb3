"""What the bench scripts share: the result line each appends to bench/out/NAME.jsonl (stamped
with the commit), small statistics, CPU from /proc, and the scaffolding of the benches that
start processes (a scratch directory, Ctrl-C and SIGTERM, nagios4, a daemon's endpoints).

A bench runs as `python bench/NAME.py`: its directory is on sys.path, so `import _common` finds
this file. Importing it also puts the repository on sys.path, for `from tests.cluster import`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import uvloop

if TYPE_CHECKING:
    from tests.cluster import Cluster

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
CLK_TCK = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")

sys.path.insert(0, str(REPO_DIR))


# -- the result line ---------------------------------------------------------------------------


def git(*args: str) -> str | None:
    """What `git ARGS` prints in the repository, stripped; None when git fails or is missing."""
    try:
        done = subprocess.run(["git", *args], cwd=REPO_DIR, capture_output=True, text=True,
                              check=False)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_commit() -> str | None:
    """`git rev-parse --short HEAD`, or None outside a git checkout."""
    return git("rev-parse", "--short", "HEAD") or None


def git_dirty(*paths: str) -> bool | None:
    """Whether `paths` have uncommitted changes (then the numbers are not the commit's), or
    None outside a git checkout."""
    status = git("status", "--porcelain", "--", *paths)
    return None if status is None else bool(status)


def append_result(record: dict[str, Any], dirty_paths: Sequence[str] = ("shinha",)) -> None:
    """Add the commit, whether `dirty_paths` differ from it, and the time to `record`; append
    it as one JSON line to bench/out/BENCH.jsonl (BENCH: its "bench") and print that line."""
    line = json.dumps({**record, "commit": git_commit(), "dirty": git_dirty(*dirty_paths),
                       "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    path = OUT_DIR / f"{record['bench']}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    print(line)


# -- numbers -----------------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """The value at rank q × n of the sorted values (q from 0 to 1; values not empty)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rounded(x: float | None, digits: int = 3) -> float | None:
    """`round(x, digits)`, with None for None."""
    return None if x is None else round(x, digits)


@dataclass(frozen=True, slots=True)
class ProcTimes:
    """CPU seconds of one process: its own, and its reaped children's; its parent."""

    own: float
    children: float
    ppid: int


def proc_times(pid: int) -> ProcTimes | None:
    """Read /proc/PID/stat; None if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # fields[0] is field 3 (state)
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return ProcTimes(own=(utime + stime) / CLK_TCK, children=(cutime + cstime) / CLK_TCK,
                     ppid=int(fields[1]))


# -- processes ---------------------------------------------------------------------------------


def run_on_uvloop(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on a new uvloop event loop (what asyncio.run does on the default loop)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def compile_shinha() -> None:
    """Compile shinha's bytecode once, as pip does for an installed package: an editable
    checkout run with PYTHONDONTWRITEBYTECODE=1 would recompile it at every start."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO_DIR / "shinha")],
                   check=False)


def nagios_command() -> str | None:
    """Path of nagios4, or None when it is not installed."""
    found = shutil.which("nagios4")
    if found:
        return found
    return "/usr/sbin/nagios4" if os.access("/usr/sbin/nagios4", os.X_OK) else None


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def interrupt_on(*signums: signal.Signals) -> None:
    """Make these signals stop the bench as Ctrl-C does: every `finally` stops what it
    started."""
    for signum in signums:
        signal.signal(signum, _raise_interrupt)


def run_in_scratch(prefix: str, what: str, keep: bool, run: Callable[[Path], int],
                   out: Path | None = None) -> int:
    """A bench's main: SIGTERM stops it as Ctrl-C does, `run` gets its scratch directory
    (see scratch_dir), and an interrupt exits 130 once what it started is stopped."""
    interrupt_on(signal.SIGTERM)
    with scratch_dir(prefix, what, out=out, keep=keep) as root:
        try:
            return run(root)
        except KeyboardInterrupt:
            print("\ninterrupted: what the bench started is stopped", file=sys.stderr)
            return 130


@contextlib.contextmanager
def scratch_dir(prefix: str, what: str, out: Path | None = None,
                keep: bool = False) -> Iterator[Path]:
    """`out`, or a new temporary directory named `prefix`… that is removed at the end unless
    `keep`; a directory that stays is named on stderr as `what`."""
    root = out.resolve() if out else Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield root
    finally:
        if out is None and not keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"{what} kept in {root}", file=sys.stderr)


def call(c: Cluster, name: str, path: str, timeout: float = 2.0) -> Any:
    """GET a daemon's endpoint; None when it does not answer 200 (dead, starting, busy)."""
    proc = c.procs.get(name)
    if proc is None or proc.poll() is not None:
        return None
    try:
        status, body = c.request(name, "GET", path, timeout=timeout)
    except (OSError, urllib.error.URLError, ValueError):
        return None
    return body if status == 200 else None

"""Launch hygiene: `shinha run` and its daemons import shinha, never a `shinha` directory where
they were started (a configuration folder, or code planted there), and no daemon or poller
worker outlives the process that started it, even one killed by SIGKILL."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shinha.spawn import python_command
from tests.cluster import Cluster, free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
SHINHA = ROOT / ".venv" / "bin" / "shinha"
#: The ports the default etc/ listens on, one per daemon (and checked by its services).
DEFAULT_PORTS = range(7768, 7774)
#: Code that records each import of it: planted as a `shinha` package in the cwd.
HOSTILE = """\
import sys
with open({marker!r}, "a") as f:
    f.write(repr(sys.argv) + "\\n")
"""


# --- processes, read from /proc -------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, or None when there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """Whether pid runs: a zombie (dead, not yet reaped by whoever adopted it) does not."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def children(pid: int) -> list[int]:
    """The live processes whose parent is pid."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[1] == pid and stat[0] != "Z":
                found.append(int(entry.name))
    return found


def _kill_if_ours(pid: int) -> None:
    """SIGKILL a leftover daemon or worker of a failed test (checked by its command line)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if b"shinha" in cmdline and alive(pid):
        os.kill(pid, signal.SIGKILL)


# --- `shinha run` on a copy of etc/ named shinha/ -------------------------------------------


@dataclass
class Run:
    """`shinha run -c shinha/shinha.cfg` started in `cwd`, where etc/ was copied as shinha/."""

    cwd: Path
    arbiter_port: int
    proc: subprocess.Popen[bytes] | None = None
    seen: set[int] = field(default_factory=set)

    @property
    def out(self) -> Path:
        return self.cwd / "run.out"

    def output(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def start(self) -> None:
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen([str(SHINHA), "run", "-c", "shinha/shinha.cfg"],
                                         cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def daemons(self) -> dict[str, int]:
        """The pid of each daemon, as `shinha run` printed them."""
        found = {f"{m[1]}-{m[2]}": int(m[3]) for m in re.finditer(
            r"^started\s+(\S+)\s+(\S+)\s+pid (\d+)", self.output(), re.MULTILINE)}
        self.seen.update(found.values())
        return found

    def cluster(self) -> dict[str, object]:
        url = f"http://127.0.0.1:{self.arbiter_port}/cluster"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return dict(json.loads(resp.read()))

    def wait_up(self) -> None:
        """Wait until the arbiter leads and sees its four peers alive."""
        assert self.proc is not None

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"shinha run exited with {self.proc.returncode}:\n"
                                     f"{self.output()}\n{self.logs()}")
            view = self.cluster()
            daemons = view["daemons"]
            assert isinstance(daemons, list)
            return bool(view["leading"]) and len(daemons) == 5 and all(
                d["alive"] and d["last_contact"] for d in daemons)

        try:
            wait_for(up, 40, "the five daemons of `shinha run` alive in the cluster view")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.output()}\n{self.logs()}") from None
        assert len(self.daemons()) == 5, self.output()

    def status(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SHINHA), "status", "-c", "shinha/shinha.cfg"], cwd=self.cwd,
                              capture_output=True, text=True, timeout=30, check=False)

    def logs(self) -> str:
        out = []
        for path in sorted((self.cwd / "var" / "log").glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-20:]
            out.append(f"\n===== {path.name}\n" + "\n".join(tail))
        return "".join(out)

    def stop(self) -> int:
        """SIGTERM `shinha run` (as Ctrl-C would) and return its exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=40)

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.daemons()
        for pid in self.seen:
            for worker in children(pid):
                _kill_if_ours(worker)
            _kill_if_ours(pid)


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    """etc/ copied to TMP/shinha/ (on free ports: another test may hold the default ones)."""
    tree = tmp_path / "shinha"
    shutil.copytree(ROOT / "etc", tree, ignore=shutil.ignore_patterns("examples"))
    ports = {port: free_port() for port in DEFAULT_PORTS}
    for cfg in tree.rglob("*.cfg"):
        text = cfg.read_text(encoding="utf-8")
        cfg.write_text(re.sub(r"\b77(?:6[89]|7[0-3])\b", lambda m: str(ports[int(m[0])]), text),
                       encoding="utf-8")
    launched = Run(tmp_path, ports[7770])
    try:
        yield launched
    finally:
        launched.cleanup()


def test_run_from_a_directory_holding_the_tree_as_shinha(run: Run) -> None:
    run.start()
    run.wait_up()
    status = run.status()
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.count("alive") == 5, status.stdout
    assert run.stop() == 0, run.output()
    assert "all daemons stopped" in run.output(), run.output()
    assert not [pid for pid in run.seen if alive(pid)]


def test_a_shinha_package_planted_in_the_cwd_is_never_imported(run: Run) -> None:
    marker = run.cwd / "planted-code-ran"
    for name in ("__init__.py", "__main__.py"):
        (run.cwd / "shinha" / name).write_text(HOSTILE.format(marker=str(marker)))
    run.start()
    run.wait_up()
    assert run.status().returncode == 0
    assert run.stop() == 0, run.output()
    assert not marker.exists(), marker.read_text()
    # The control: a plain `python -m shinha` from there does run it, so the test can see it.
    subprocess.run([sys.executable, "-m", "shinha", "--help"], cwd=run.cwd,
                   capture_output=True, timeout=60, check=False)
    assert marker.exists()


def test_sigkill_of_shinha_run_stops_every_daemon_and_worker(run: Run) -> None:
    run.start()
    run.wait_up()
    daemons = run.daemons()
    workers = children(daemons["poller-poller-master"])
    assert workers, "the poller has no worker processes"
    assert run.proc is not None
    run.proc.kill()
    run.proc.wait()
    everyone = [*daemons.values(), *workers]
    try:
        wait_for(lambda: not any(alive(pid) for pid in everyone), 20,
                 "every daemon and poller worker to end after SIGKILL of `shinha run`")
    except AssertionError as exc:
        running = {key: pid for key, pid in daemons.items() if alive(pid)}
        raise AssertionError(f"{exc}: still running {running}\n{run.logs()}") from None
    # They stopped in stages (as on SIGTERM), not killed in the middle of a write.
    for key in daemons:
        log = (run.cwd / "var" / "log" / f"{key}.log").read_text(errors="replace")
        role, _, name = key.partition("-")
        assert f"{role} {name} stopped" in log, log[-2000:]


# --- one daemon ---------------------------------------------------------------------------


def test_poller_workers_end_with_a_killed_poller(tmp_path: Path) -> None:
    c = Cluster(tmp_path)
    c.add("poller", "poller-1", extra="  max_workers 2\n")
    c.write()
    try:
        proc = c.start("poller-1")
        workers = wait_for(lambda: len(children(proc.pid)) == 2 and children(proc.pid), 30,
                           "the poller's two workers")
        c.kill("poller-1")
        wait_for(lambda: not any(alive(pid) for pid in workers), 10,
                 "the workers of a SIGKILLed poller to end")
    finally:
        c.stop_all()


def test_a_daemon_whose_parent_is_gone_does_not_start(tmp_path: Path) -> None:
    # Its parent is this test, not pid 1: as if `shinha run` had died before the daemon could
    # ask for its death signal.
    done = subprocess.run([*python_command("shinha", "daemon", "poller", "poller-1",
                                           "-c", str(tmp_path / "absent.cfg"),
                                           "--parent-pid", "1")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert "(pid 1) has ended" in done.stderr


@pytest.mark.parametrize("module", ["shinha", "shinha.poller.workers"])
def test_child_command_ignores_a_shinha_package_in_the_cwd(tmp_path: Path, module: str) -> None:
    marker = tmp_path / "planted-code-ran"
    (tmp_path / "shinha" / "poller").mkdir(parents=True)
    for name in ("__init__.py", "__main__.py", "poller/__init__.py", "poller/workers.py"):
        (tmp_path / "shinha" / name).write_text(HOSTILE.format(marker=str(marker)))
    done = subprocess.run(python_command(module, "--help"), cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
    assert not marker.exists()

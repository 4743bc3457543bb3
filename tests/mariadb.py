"""Throw-away MariaDB servers for tests: real `mariadbd` processes, each with its own datadir,
socket and port on a loopback "host" (127.0.0.2, 127.0.0.3, …), never the system service.

Every node starts read-only with binary logs, GTID strict mode and log_slave_updates, as the
nodes of a shinha cluster are meant to run (docs/high-availability.md): a node is written to
only once shinha has promoted it. `root` reaches a node over its socket (unix_socket auth, the
test runs as root); shinha's own accounts are made by `shinha db init` or by `make_users`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.cluster import free_port, wait_for

MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
CLIENT = shutil.which("mariadb") or "/usr/bin/mariadb"

_TEMPLATE: Path | None = None


def available() -> bool:
    return os.path.exists(MARIADBD) and os.path.exists(INSTALL_DB)


def require() -> None:
    """Fail (CI) or skip (elsewhere) when MariaDB is not installed: `make test` installs it."""
    if available():
        return
    import pytest

    if os.environ.get("CI"):
        raise AssertionError("mariadb-server is not installed; `make test` installs it")
    pytest.skip("mariadb-server is not installed (make test installs it as root)")


def _template() -> Path:
    """One initialised datadir per test process, copied for each node (install-db is slow)."""
    global _TEMPLATE
    if _TEMPLATE is None or not _TEMPLATE.exists():
        tpl = Path(tempfile.mkdtemp(prefix="shinha-mariadb-template-")) / "data"
        subprocess.run([INSTALL_DB, "--no-defaults", f"--datadir={tpl}", "--user=root",
                        "--auth-root-authentication-method=socket", "--skip-test-db"],
                       check=True, capture_output=True)
        _TEMPLATE = tpl
    return _TEMPLATE


@dataclass
class MariaDB:
    """One mariadbd."""

    root: Path
    address: str
    server_id: int
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    extra: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.port:
            self.port = free_port(self.address)
        self.datadir = self.root / f"node{self.server_id}" / "data"
        self.socket = self.root / f"node{self.server_id}" / "mysqld.sock"
        self.log_path = self.root / f"node{self.server_id}" / "error.log"

    @property
    def node(self) -> str:
        """As written in `ha_hosts`."""
        return f"{self.address}:{self.port}"

    def start(self) -> MariaDB:
        if not self.datadir.exists():
            self.datadir.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(_template(), self.datadir)
        args = [MARIADBD, "--no-defaults", "--user=root", f"--datadir={self.datadir}",
                f"--socket={self.socket}", f"--port={self.port}",
                f"--bind-address={self.address}", f"--pid-file={self.datadir}/mysqld.pid",
                f"--log-error={self.log_path}", f"--server-id={self.server_id}",
                "--log-bin=binlog", "--binlog-format=ROW", "--gtid-strict-mode=1",
                "--log-slave-updates=1", "--read-only=1", "--skip-name-resolve",
                "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
                "--max-connections=200", "--skip-slave-start", f"--tmpdir={self.datadir.parent}",
                "--innodb-flush-log-at-trx-commit=1", "--sync-binlog=1", *self.extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        wait_for(lambda: self._ready(), 60, f"mariadbd {self.node} to accept connections")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"mariadbd {self.node} exited {self.proc.returncode}:\n"
                                 + self.log_path.read_text(errors="replace")[-3000:])
        done = subprocess.run([CLIENT, f"--socket={self.socket}", "-uroot", "-e", "SELECT 1"],
                              capture_output=True, check=False)
        return done.returncode == 0

    def sql(self, query: str, database: str = "") -> list[list[str]]:
        """Run SQL as root over the socket; rows of tab-separated text."""
        args = [CLIENT, f"--socket={self.socket}", "-uroot", "-N", "-B", "-e", query]
        if database:
            args.append(database)
        done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=60)
        if done.returncode != 0:
            raise AssertionError(f"{self.node}: {query[:200]}: {done.stderr.strip()}")
        return [line.split("\t") for line in done.stdout.splitlines()]

    def value(self, query: str, database: str = "") -> str:
        rows = self.sql(query, database)
        return rows[0][0] if rows and rows[0] else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.proc.wait(timeout=60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def make_users(node: MariaDB, database: str = "shinha", user: str = "shinha",
               password: str = "shinha-pass-123") -> None:
    """The account a data-server writes with (what `shinha db init` also makes), on a node
    started read-only: users are made with read_only lifted for the moment."""
    node.sql(f"SET SESSION sql_log_bin=0; CREATE DATABASE IF NOT EXISTS `{database}`; "
             f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}'; "
             f"GRANT ALL ON `{database}`.* TO '{user}'@'%'")


def wait_gone(node: MariaDB, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while node.proc is not None and node.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)

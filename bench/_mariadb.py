"""A throw-away MariaDB server for the benches: `mariadb-install-db` into a scratch directory,
a `mariadbd` of its own on a loopback port (never the system service), shinha's account and
database, stopped and removed at the end.

The server runs as a shinha node does (docs/high-availability.md): binary log in ROW format,
GTID strict mode, and durable commits (`innodb_flush_log_at_trx_commit=1`, `sync_binlog=1`),
so that the numbers are those of a commit that survives a power cut. Only the buffer pool and
redo log are sized for a bench rather than for a test.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
CLIENT = shutil.which("mariadb") or "/usr/bin/mariadb"
ADDRESS = "127.0.0.1"
DATABASE = "shinha_bench"
USER = "shinha"
PASSWORD = "shinha-bench-pass"
SETTINGS = ("--log-bin=binlog", "--binlog-format=ROW", "--gtid-strict-mode=1",
            "--log-slave-updates=1", "--innodb-flush-log-at-trx-commit=1", "--sync-binlog=1",
            "--innodb-buffer-pool-size=256M", "--innodb-log-file-size=256M",
            "--skip-name-resolve", "--max-connections=200")


def available() -> bool:
    return Path(MARIADBD).exists() and Path(INSTALL_DB).exists()


class BenchMariaDB:
    """One mariadbd under `root`; `start()`, then `stop()` in a `finally`."""

    def __init__(self, root: Path, server_id: int = 1, extra: tuple[str, ...] = ()) -> None:
        self.root = root
        self.server_id = server_id
        self.extra = extra
        self.datadir = root / "data"
        self.socket = root / "mysqld.sock"
        self.log_path = root / "error.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def node(self) -> str:
        return f"{ADDRESS}:{self.port}"

    def start(self, timeout: float = 60.0) -> BenchMariaDB:
        # Its own tmpdir: temporary tables of big statements never depend on the host's /tmp.
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        if not self.datadir.exists():
            subprocess.run([INSTALL_DB, "--no-defaults", f"--datadir={self.datadir}",
                            "--user=root", "--auth-root-authentication-method=socket",
                            "--skip-test-db"], check=True, capture_output=True)
        with socket.socket() as sock:  # no other bench process runs meanwhile
            sock.bind((ADDRESS, 0))
            self.port = sock.getsockname()[1]
        self.proc = subprocess.Popen(
            [MARIADBD, "--no-defaults", "--user=root", f"--datadir={self.datadir}",
             f"--socket={self.socket}", f"--port={self.port}", f"--bind-address={ADDRESS}",
             f"--pid-file={self.datadir}/mysqld.pid", f"--log-error={self.log_path}",
             f"--server-id={self.server_id}", f"--tmpdir={self.root / 'tmp'}", *SETTINGS,
             *self.extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mariadbd {self.node} did not accept connections within "
                                   f"{timeout:.0f} s; see {self.log_path}")
            time.sleep(0.1)
        self.sql(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}`; "
                 f"CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; "
                 f"GRANT ALL ON `{DATABASE}`.* TO '{USER}'@'%'")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:] if \
                self.log_path.exists() else ""
            raise RuntimeError(f"mariadbd exited {self.proc.returncode}:\n{tail}")
        done = subprocess.run([CLIENT, f"--socket={self.socket}", "-uroot", "-e", "SELECT 1"],
                              capture_output=True, check=False)
        return done.returncode == 0

    def sql(self, query: str) -> list[list[str]]:
        """Run SQL as root over the socket; rows of tab-separated text."""
        done = subprocess.run([CLIENT, f"--socket={self.socket}", "-uroot", "-N", "-B", "-e",
                               query], capture_output=True, text=True, check=False, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{self.node}: {query[:200]}: {done.stderr.strip()}")
        return [line.split("\t") for line in done.stdout.splitlines()]

    def size(self) -> int:
        """Bytes of the bench database's table files (data and indexes; no logs)."""
        return sum(p.stat().st_size for p in (self.datadir / DATABASE).glob("*.ibd"))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


REPL_USER, REPL_PASSWORD = "repl", "shinha-bench-repl"


def semi_sync_pair(primary: BenchMariaDB, replica: BenchMariaDB,
                   timeout_ms: int = 10_000) -> None:
    """Make `replica` a GTID replica of `primary` with semi-synchronous replication (the
    AFTER_SYNC wait point, as `shinha db init` sets it): a commit returns once the replica
    has it. Both fresh; the long timeout keeps the bench from falling back to asynchronous
    (`semi_sync_counts` tells whether it did)."""
    primary.sql(f"CREATE USER IF NOT EXISTS '{REPL_USER}'@'%' IDENTIFIED BY '{REPL_PASSWORD}'; "
                f"GRANT REPLICATION SLAVE ON *.* TO '{REPL_USER}'@'%'; "
                "SET GLOBAL rpl_semi_sync_master_wait_point = 'AFTER_SYNC'; "
                f"SET GLOBAL rpl_semi_sync_master_timeout = {timeout_ms}; "
                "SET GLOBAL rpl_semi_sync_master_enabled = 1; SET GLOBAL read_only = 0")
    # Its own setup statements are the primary's too (IF NOT EXISTS): forget its binlog.
    replica.sql("RESET MASTER; SET GLOBAL gtid_slave_pos = ''; "
                "SET GLOBAL rpl_semi_sync_slave_enabled = 1; "
                f"CHANGE MASTER TO MASTER_HOST = '{ADDRESS}', MASTER_PORT = {primary.port}, "
                f"MASTER_USER = '{REPL_USER}', MASTER_PASSWORD = '{REPL_PASSWORD}', "
                "MASTER_USE_GTID = slave_pos; START SLAVE")
    deadline = time.monotonic() + 30
    while primary.sql("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'")[0][1] != "1":
        if time.monotonic() > deadline:
            raise RuntimeError(f"{replica.node} did not connect as a semi-sync replica of "
                               f"{primary.node}: {replica.sql('SHOW SLAVE STATUS')}")
        time.sleep(0.1)


def semi_sync_counts(primary: BenchMariaDB) -> dict[str, int]:
    """Commits the replica acknowledged (yes_tx) and those that went without (no_tx)."""
    rows = primary.sql("SHOW GLOBAL STATUS WHERE Variable_name IN "
                       "('Rpl_semi_sync_master_yes_tx', 'Rpl_semi_sync_master_no_tx')")
    return {name.removeprefix("Rpl_semi_sync_master_"): int(value) for name, value in rows}

"""Copy the primary's database to a replica: `mariadb-dump --single-transaction --gtid
--master-data` piped into the `mariadb` client on the replica, not binlogged there. The dump
ends with `SET GLOBAL gtid_slave_pos` at the snapshot, from which the replica replicates.

Passwords go in a [client] option file (mode 0600, removed after), never on a command line.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

from shinha.db.options import MariadbOptions, Node
from shinha.errors import DatabaseError

DUMP = shutil.which("mariadb-dump") or "/usr/bin/mariadb-dump"
CLIENT = shutil.which("mariadb") or "/usr/bin/mariadb"


async def dump_into(options: MariadbOptions, source: Node, node: Node,
                    timeout: float) -> None:
    """Load a consistent dump of `source`'s database into `node` within `timeout` seconds."""
    for tool in (DUMP, CLIENT):
        if not os.access(tool, os.X_OK):
            raise DatabaseError(node.name, f"cannot clone: {tool} is not installed on this "
                                "machine (Debian: apt-get install mariadb-client)")
    with tempfile.TemporaryDirectory(prefix="shinha-db-") as tmp:
        src_cnf = client_cnf(Path(tmp) / "source.cnf", options, source)
        dst_cnf = client_cnf(Path(tmp) / "replica.cnf", options, node)
        read_end, write_end = os.pipe()
        procs: list[asyncio.subprocess.Process] = []
        try:
            procs.append(await asyncio.create_subprocess_exec(
                DUMP, f"--defaults-extra-file={src_cnf}", "--single-transaction", "--gtid",
                # No --events: an event cloned enabled would write on the replica.
                "--master-data=1", "--routines", "--triggers",
                "--databases", options.database,
                stdout=write_end, stderr=asyncio.subprocess.PIPE,
                stdin=asyncio.subprocess.DEVNULL))
            procs.append(await asyncio.create_subprocess_exec(
                CLIENT, f"--defaults-extra-file={dst_cnf}", "--batch",
                "--init-command=SET SESSION sql_log_bin = 0",
                stdin=read_end, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE))
        finally:
            os.close(read_end)
            os.close(write_end)
        try:
            async with asyncio.timeout(timeout):
                outputs = await asyncio.gather(*(p.communicate() for p in procs))
        except TimeoutError:
            raise DatabaseError(node.name, f"the clone of {source.name} did not finish within "
                                f"{timeout:g} s") from None
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    dump, load = procs
    if dump.returncode:
        raise DatabaseError(source.name, f"mariadb-dump for the clone to {node.name} failed: "
                            + outputs[0][1].decode(errors="replace").strip()[-500:])
    if load.returncode:
        raise DatabaseError(node.name, f"loading the clone of {source.name} failed: "
                            + outputs[1][1].decode(errors="replace").strip()[-500:])


def client_cnf(path: Path, options: MariadbOptions, node: Node) -> Path:
    """Write a [client] option file for the admin account on `node`."""

    def quote(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["[client]", f"host={node.host}", f"port={node.port}", "protocol=TCP",
             f"user={quote(options.admin_user)}", f"password={quote(options.admin_pass)}"]
    if options.ssl_ca:
        lines.append(f"ssl-ca={options.ssl_ca}")
    if options.ssl_cert:
        lines += [f"ssl-cert={options.ssl_cert}", f"ssl-key={options.ssl_key}"]
    if options.ssl_verify_server_cert:
        lines.append("ssl-verify-server-cert")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path

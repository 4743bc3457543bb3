"""A real cluster for tests: a configuration tree on loopback "hosts", daemons as real
processes (`python -m shinha daemon …`), HTTP helpers, and waiting on conditions with a
deadline (never sleeping and hoping)."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

ROOT = Path(__file__).resolve().parents[1]
SECRET = "test-secret-0123456789"
PLUGINS = "/usr/lib/nagios/plugins"
T = TypeVar("T")


_HANDED: set[tuple[str, int]] = set()
_PORTS = random.Random(os.getpid())


def free_port(address: str = "127.0.0.1") -> int:
    """A port free on `address` now, never handed out before in this run, and below the
    kernel's ephemeral range: a port from bind(0) may come back twice before the daemon that
    got it binds it, or be taken meanwhile as the source port of some outgoing connection."""
    while True:
        port = _PORTS.randrange(20000, 32000)
        if (address, port) in _HANDED:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((address, port))
            except OSError:
                continue
        _HANDED.add((address, port))
        return port


def wait_for(predicate: Callable[[], T | Literal[False] | None], timeout: float, what: str,
             interval: float = 0.1) -> T:
    """Poll `predicate` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value: T | Literal[False] | None = predicate()
        except (OSError, ValueError, KeyError, urllib.error.URLError) as exc:
            last_error = exc
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                         + (f" (last error: {last_error})" if last_error else ""))


@dataclass
class Daemon:
    role: str
    name: str
    address: str
    port: int
    extra: str = ""
    spare: bool = False
    host_name: str = "localhost"

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def define(self) -> str:
        spare = "1" if self.spare else "0"
        return (f"define {self.role} {{\n  {self.role}_name {self.name}\n"
                f"  host_name {self.host_name}\n  address {self.address}\n"
                f"  port {self.port}\n  spare {spare}\n  check_interval 1\n"
                f"  max_check_attempts 3\n  timeout 2\n  data_timeout 10\n"
                f"{self.extra}}}\n")


@dataclass
class Cluster:
    """A configuration tree plus the processes started from it."""

    root: Path
    daemons: dict[str, Daemon] = field(default_factory=dict)
    objects: str = ""
    scheme: str = "http"
    ca: str | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def main(self) -> Path:
        return self.root / "shinha.cfg"

    def add(self, role: str, name: str, address: str = "127.0.0.1", extra: str = "",
            spare: bool = False) -> Daemon:
        d = Daemon(role, name, address, free_port(address), extra, spare)
        self.daemons[name] = d
        return d

    def write(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "resource.cfg").write_text(f"$USER1$={PLUGINS}\n$USER2$={self.root}\n")
        (self.root / "shinha.cfg").write_text(
            "cfg_file=daemons.cfg\ncfg_file=objects.cfg\nresource_file=resource.cfg\n"
            f"cluster_secret={SECRET}\nworkdir=var\ninterval_length=1\n")
        (self.root / "daemons.cfg").write_text(
            "".join(d.define() for d in self.daemons.values()))
        (self.root / "objects.cfg").write_text(self.objects)

    def plugin(self, name: str, body: str) -> Path:
        """Write an executable shell plugin into the tree; $USER2$ points here."""
        path = self.root / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)
        return path

    def start(self, name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a daemon (with `env` added to its environment) and wait until it listens."""
        d = self.daemons[name]
        log_path = self.root / f"{d.role}-{name}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "shinha", "daemon", d.role, name, "-c", str(self.main),
                 "--log-level", "DEBUG"], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
        self.procs[name] = proc
        wait_for(lambda: self.ping(name) or proc.poll() is not None, 30, f"{name} to listen")
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.log(name)}")
        if d.role == "receiver" and self.arbiter_running():
            # A receiver takes nothing (503) until an arbiter dispatched what it accepts.
            wait_for(lambda: self.get(name, "/ping").get("part_hash"), 30,
                     f"{name} to get its catalog")
        return proc

    def dispatch_catalog(self, name: str) -> None:
        """Send receiver `name` what an arbiter would (the catalog of this tree's hosts and
        services), for tests that run a receiver with no arbiter."""
        from shinha.arbiter.partition import catalog
        from shinha.config import load_config
        from shinha.wire import Dispatch, Fence, Topology

        config = load_config(self.main).raise_for_errors()
        dispatch = Dispatch(fence=Fence(epoch=1, arbiter="test", config_hash=config.config_hash),
                            topology=Topology(), catalog=catalog(config))
        status, body = self.request(name, "POST", "/dispatch",
                                    raw=dispatch.model_dump_json().encode())
        assert status == 200 and body["accepted"], (status, body)

    def arbiter_running(self) -> bool:
        return any(self.daemons[n].role == "arbiter" and p.poll() is None
                   for n, p in self.procs.items())

    def start_all(self) -> None:
        order = ("dataserver", "scheduler", "poller", "receiver", "arbiter")
        try:
            for role in order:
                for name, d in self.daemons.items():
                    if d.role == role:
                        self.start(name)
        except BaseException:
            self.stop_all()  # a daemon that cannot start leaves none of the others behind
            raise

    def log(self, name: str) -> str:
        d = self.daemons[name]
        path = self.root / f"{d.role}-{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def tails(self, lines: int = 40) -> str:
        """The end of every daemon's log, for a failing test's message."""
        out = []
        for name in self.daemons:
            text = self.log(name).splitlines()[-lines:]
            out.append(f"\n===== {name}\n" + "\n".join(text))
        return "".join(out)

    def wait(self, predicate: Callable[[], T | Literal[False] | None], timeout: float,
             what: str) -> T:
        """wait_for, with every daemon's log tail in the failure message."""
        try:
            return wait_for(predicate, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.tails()}") from None

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            proc.wait(timeout=30)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # --- HTTP -------------------------------------------------------------------------------

    def request(self, name: str, method: str, path: str, body: Any = None,
                secret: str | None = SECRET, raw: bytes | None = None,
                timeout: float = 10.0) -> tuple[int, Any]:
        d = self.daemons[name]
        data = raw if raw is not None else (json.dumps(body).encode()
                                            if body is not None else None)
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["Authorization"] = f"Bearer {secret}"
        url = f"{self.scheme}://{d.address}:{d.port}{path}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        ctx = ssl.create_default_context(cafile=self.ca) if self.scheme == "https" else None
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
                payload = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            payload, status = exc.read(), exc.code
        try:
            return status, json.loads(payload) if payload else None
        except ValueError:
            return status, payload.decode(errors="replace")

    def get(self, name: str, path: str) -> Any:
        status, body = self.request(name, "GET", path)
        assert status == 200, (status, body)
        return body

    def ping(self, name: str) -> bool:
        try:
            status, _ = self.request(name, "GET", "/ping", timeout=1.0)
        except (OSError, urllib.error.URLError):
            return False
        return status == 200

    def service(self, dataserver: str, host: str, service: str) -> dict[str, Any] | None:
        page = self.get(dataserver, f"/api/services?host={host}&limit=1000")
        for row in page["items"]:
            if row["service"] == service:
                return dict(row)
        return None

    def history(self, dataserver: str, host: str, service: str) -> list[dict[str, Any]]:
        page = self.get(dataserver, f"/api/services/{host}/{service}/history?limit=1000")
        return list(page["items"])


HA_OBJECTS = """
define command {
  command_name ok
  command_line $USER1$/check_dummy 0 "all good"
}
define command {
  command_name fail
  command_line $USER1$/check_dummy 2 "broken"
}
define host {
  name base
  register 0
  check_command ok
  check_interval 1
  retry_interval 1
}
define service {
  name fast
  register 0
  check_interval 1
  retry_interval 1
  max_check_attempts 2
}
"""


def ha_cluster(root: Path, hosts: int = 4, spares: tuple[str, ...] = (
        "arbiter", "scheduler", "poller", "receiver"), services: int = 3) -> Cluster:
    """The classic pair: host A (127.0.0.2) runs every master, host B (127.0.0.3) the spares
    of the roles in `spares`. One data-server (SQLite has no replication: see the docs)."""
    c = Cluster(root)
    for role in ("arbiter", "scheduler", "poller", "dataserver", "receiver"):
        c.add(role, f"{role}-master", address="127.0.0.2")
        c.daemons[f"{role}-master"].host_name = "host-a"
        if role in spares:
            c.add(role, f"{role}-spare", address="127.0.0.3", spare=True)
            c.daemons[f"{role}-spare"].host_name = "host-b"
    objects = [HA_OBJECTS]
    for h in range(hosts):
        objects.append(f"define host {{\n  use base\n  host_name h{h}\n  address 127.0.0.1\n}}\n")
        for n in range(services):
            objects.append(f"define service {{\n  use fast\n  host_name h{h}\n"
                           f"  service_description s{n}\n  check_command ok\n}}\n")
        objects.append(f"define service {{\n  use fast\n  host_name h{h}\n"
                       "  service_description FAIL\n  check_command fail\n}\n")
        objects.append(f"define service {{\n  use fast\n  host_name h{h}\n"
                       "  service_description PASSIVE\n  active_checks_enabled 0\n}\n")
    c.objects = "".join(objects)
    c.write()
    return c

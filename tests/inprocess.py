"""Daemons in the test's own event loop, on one manual clock: a small configuration tree in
tmp_path, the real daemon classes started from it (real aiohttp servers on 127.0.0.1, a real
SQLite data-server), and time that moves only when the test moves it.

Time moves with `clock.run_for` / `clock.run_until` (each loop woken finishes its round,
loopback requests included, before time moves on). What is not a loop of the clock — a
dispatch round the arbiter spawns, a request the test sends — completes in real time while
the clock stands still: `until(predicate)` yields to the loop until it has.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from shinha.arbiter.daemon import ArbiterDaemon
from shinha.clock import ManualClock
from shinha.config import load_config
from shinha.config.daemons import DaemonLink
from shinha.config.loader import Config
from shinha.daemon.base import Daemon, DaemonContext
from shinha.dataserver.daemon import DataserverDaemon
from shinha.poller.daemon import PollerDaemon
from shinha.receiver.daemon import ReceiverDaemon
from shinha.scheduler.daemon import SchedulerDaemon
from tests.cluster import free_port

SECRET = "inprocess-test-secret-0123"
CLASSES: dict[str, type[Daemon]] = {
    "arbiter": ArbiterDaemon, "scheduler": SchedulerDaemon, "poller": PollerDaemon,
    "dataserver": DataserverDaemon, "receiver": ReceiverDaemon,
}
D = TypeVar("D", bound=Daemon)


async def until(predicate: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Let the event loop run (the clock stands still) until `predicate()` holds: for real I/O
    that is no loop of the clock. Fails with `what` at the (real) deadline."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


async def run_watching(clock: ManualClock, seconds: float, check: Callable[[], None]) -> None:
    """`clock.run_for(seconds)`, calling `check()` (which asserts) after every step."""
    end = clock.monotonic() + seconds
    check()
    while (due := clock.pending()) and due[0] <= end:
        await clock.run_for(max(0.0, due[0] - clock.monotonic()))
        check()
    await clock.run_for(max(0.0, end - clock.monotonic()))
    check()


class Tree:
    """A configuration tree: daemon definitions (each on a free port of 127.0.0.1) and
    objects, written under `root`."""

    def __init__(self, root: Path, objects: str = "", main: str = "") -> None:
        self.root = root
        self.objects = textwrap.dedent(objects)
        self.main = textwrap.dedent(main)
        self.defines: dict[str, tuple[str, dict[str, object]]] = {}

    def add(self, role: str, name: str, **props: object) -> None:
        """A daemon definition; `props` are its properties (spare=1, master=7, …)."""
        self.defines[name] = (role, {"address": "127.0.0.1", "port": free_port(), **props})

    def write(self) -> Config:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "shinha.cfg").write_text(
            f"cfg_file=daemons.cfg\ncfg_file=objects.cfg\ncluster_secret={SECRET}\n"
            f"workdir=var\nshutdown_timeout=5\n{self.main}")
        daemons = []
        for name, (role, props) in self.defines.items():
            lines = "".join(f"  {key} {value}\n" for key, value in props.items())
            daemons.append(f"define {role} {{\n  {role}_name {name}\n{lines}}}\n")
        (self.root / "daemons.cfg").write_text("".join(daemons))
        (self.root / "objects.cfg").write_text(self.objects)
        loaded = load_config(self.root / "shinha.cfg")
        assert loaded.ok and loaded.config is not None, loaded.errors
        return loaded.config


class InProcess:
    """The daemons of one tree, in this event loop, sharing one ManualClock."""

    def __init__(self, tree: Tree, clock: ManualClock | None = None) -> None:
        self.config = tree.write()
        self.state_root = tree.root / "var"
        self.clock = clock or ManualClock()
        self.daemons: dict[str, Daemon] = {}
        self._http: aiohttp.ClientSession | None = None

    def link(self, name: str) -> DaemonLink:
        return next(links[name] for links in self.config.daemons.values() if name in links)

    def build(self, name: str) -> Daemon:
        """A new instance of daemon `name` (a restart: the same state dir, so the same epoch,
        journal and database as the one before)."""
        link = self.link(name)
        return CLASSES[link.role](DaemonContext(config=self.config, link=link,
                                                state_root=self.state_root, clock=self.clock))

    async def start(self, *names: str) -> None:
        for name in names:
            daemon = self.build(name)
            await daemon.start()
            self.daemons[name] = daemon
        await self.clock.settle()

    async def stop(self, *names: str) -> None:
        for name in names:
            await self.daemons.pop(name).stop()

    async def stop_all(self) -> None:
        order = ("arbiter", "receiver", "poller", "scheduler", "dataserver")
        for role in order:
            for name in [n for n, d in self.daemons.items() if d.role == role]:
                await self.stop(name)
        if self._http is not None:
            await self._http.close()
            self._http = None

    def get(self, name: str, cls: type[D]) -> D:
        daemon = self.daemons[name]
        assert isinstance(daemon, cls), (name, type(daemon))
        return daemon

    def arbiter(self, name: str) -> ArbiterDaemon:
        return self.get(name, ArbiterDaemon)

    def scheduler(self, name: str) -> SchedulerDaemon:
        return self.get(name, SchedulerDaemon)

    def dataserver(self, name: str) -> DataserverDaemon:
        return self.get(name, DataserverDaemon)

    def poller(self, name: str) -> PollerDaemon:
        return self.get(name, PollerDaemon)

    # --- HTTP, as a peer or a client would send it ---------------------------------------

    async def request(self, name: str, method: str, path: str, body: Any = None,
                      secret: bool = True) -> tuple[int, Any]:
        """One request to daemon `name` (running or not: its address is in the tree)."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        link = self.link(name)
        headers = {"Authorization": f"Bearer {SECRET}"} if secret else {}
        url = f"http://{link.address}:{link.listen_port}{path}"
        async with self._http.request(method, url, json=body, headers=headers) as reply:
            if reply.content_type == "application/json":
                return reply.status, await reply.json()
            return reply.status, await reply.text()

    async def status(self, name: str) -> dict[str, Any]:
        code, body = await self.request(name, "GET", "/status", secret=False)
        assert code == 200, (code, body)
        assert isinstance(body, dict)
        return body

    async def metric(self, name: str, line_start: str) -> float:
        """The sum of daemon `name`'s /metrics samples whose line starts with `line_start`."""
        code, text = await self.request(name, "GET", "/metrics", secret=False)
        assert code == 200, (code, text)
        return sum(float(line.split()[-1]) for line in str(text).splitlines()
                   if line.startswith(line_start))

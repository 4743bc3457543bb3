"""The thin base every daemon role builds on. It never asks "which role am I?": a role adds its
routes, its dispatch handling, its status and its background loops by overriding hooks."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web

from shinha import __version__
from shinha.clock import Clock, SystemClock
from shinha.config.daemons import DaemonLink
from shinha.config.loader import Config
from shinha.daemon.http import DaemonInterface
from shinha.daemon.metrics import Metrics
from shinha.daemon.peers import PeerLink
from shinha.daemon.state import StateDir
from shinha.daemon.supervise import Fault, Supervisor
from shinha.daemon.tasks import TaskRegistry
from shinha.errors import DaemonError, Fenced
from shinha.http.auth import Nonces
from shinha.http.client import PeerClient
from shinha.http.limits import ConnectionGuard, ConnectionLimits
from shinha.http.server import Handler, error_response, make_app, server_ssl_context
from shinha.wire import (
    DaemonRef,
    Dispatch,
    DispatchReply,
    Fence,
    Health,
    PingReply,
    Role,
    RoleOwns,
    StatusReply,
    Topology,
)

log = logging.getLogger(__name__)

#: Exit code of a daemon whose critical loop failed for good (as of one that cannot start).
EXIT_FAILED = 1
#: Served while the daemon stops; every other request is refused (503) from then on.
SERVED_WHILE_STOPPING = frozenset({"/status", "/metrics"})
#: Of the stop budget, the share kept for cancelling and closing (the drain gets the rest),
#: and at most this many seconds.
CLOSE_SHARE, CLOSE_MOST = 0.25, 2.0


@dataclass
class DaemonContext:
    """Everything a daemon is started with."""

    config: Config
    link: DaemonLink
    state_root: Path
    clock: Clock = field(default_factory=SystemClock)
    #: Tests only: a loop made to fail (shinha.daemon.supervise.Fault).
    fault: Fault | None = None


def daemon_ref(link: DaemonLink) -> DaemonRef:
    return DaemonRef(name=link.name, role=link.role, address=link.address,
                     port=link.listen_port, use_ssl=link.use_ssl, spare=link.spare,
                     realm=link.realm)


def state_root(config: Config) -> Path:
    """The workdir of the main file: each daemon's state dir is `<workdir>/<role>-<name>`."""
    workdir = Path(config.main.workdir)
    if not workdir.is_absolute():
        workdir = Path(config.main_file).parent / workdir
    return workdir.resolve()


class Daemon:
    """A daemon: `start()` serves, `stop()` drains in stages with deadlines."""

    role: ClassVar[Role]

    def __init__(self, ctx: DaemonContext) -> None:
        self.ctx = ctx
        self.config = ctx.config
        self.link = ctx.link
        self.name = ctx.link.name
        self.clock = ctx.clock
        self.ref = daemon_ref(ctx.link)
        self.secret = ctx.config.main.cluster_secret
        self.state = StateDir(ctx.state_root / f"{self.role}-{self.name}")
        self.tasks = TaskRegistry(self.name)
        self.loops = Supervisor(f"{self.role} {self.name}", self.tasks, ctx.clock,
                                self._loop_failed, fault=ctx.fault)
        self.metrics = Metrics()
        main = ctx.config.main
        self.client = PeerClient(self.secret, clock=ctx.clock,
                                 ca_cert=_abs(ctx.config, main.ca_cert),
                                 check_hostname=ctx.link.hard_ssl_name_check)
        self.epoch = 0
        self.fence: Fence | None = None
        self.topology = Topology()
        self.started_at = 0.0
        self.topology_hash = ""
        #: The arbiter that last reached us at our epoch, and when (monotonic).
        self.leader = ""
        self.leader_contact: float | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.BaseSite | None = None
        #: Set to stop the daemon (a signal, a critical loop failed for good); the process
        #: entry waits on it, then calls stop() and exits with `exit_code`.
        self.stop_requested = asyncio.Event()
        self.exit_code = 0
        #: Set when stop() begins: from then on requests are refused (503).
        self.stopping = asyncio.Event()
        #: The stage stop() is in, and when (loop time) its whole budget ends.
        self.stop_stage = ""
        self._stop_end = 0.0
        self._in_flight = 0
        self._drained = asyncio.Event()
        self.nonces = Nonces(ctx.clock)

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Take the state dir, listen, then start the role's loops."""
        if not self.secret:
            raise DaemonError("cluster_secret is empty in the main file: every daemon needs it")
        self.state.open()
        self.epoch = int(self.state.load("epoch", {"epoch": 0}).get("epoch", 0))
        self.started_at = self.clock.time()
        await self.client.start()
        await self.on_prepare()
        app = self.build_app()
        # Header, body and idle timeouts, a cap on connections, malformed HTTP logged briefly.
        guard = ConnectionGuard(ConnectionLimits.of(self.config.main), self.metrics)
        # Requests still running when the server closes (the drain is over by then) get
        # this long before aiohttp cancels them.
        self._runner = guard.runner(app, shutdown_timeout=self._close_share() / 2)
        await self._runner.setup()
        ssl_ctx = None
        if self.link.use_ssl:
            main = self.config.main
            if not (main.server_cert and main.server_key):
                raise DaemonError(f"{self.role} {self.name} has use_ssl 1 but the main file "
                                  "sets no server_cert/server_key")
            ssl_ctx = server_ssl_context(_abs(self.config, main.server_cert),
                                         _abs(self.config, main.server_key))
        site = guard.site(self._runner, self.link.address, self.link.listen_port,
                          ssl_context=ssl_ctx)
        self._site = site
        try:
            await site.start()
        except OSError as exc:
            self._site = None
            raise DaemonError(f"cannot listen on {self.link.address}:{self.link.listen_port}: "
                              f"{exc.strerror}") from None
        await self.on_start()
        log.info("%s %s started (pid %d) on %s, epoch %d", self.role, self.name, os.getpid(),
                 self.ref.url, self.epoch)

    def build_app(self) -> web.Application:
        """The daemon's HTTP application: the common endpoints and the role's (the route
        table the bad-input tests walk)."""
        app = make_app()
        app.middlewares.insert(0, self._gate)
        DaemonInterface(self).add_routes(app)
        self.add_routes(app)
        return app

    def request_stop(self, exit_code: int = 0) -> None:
        """Ask the process to stop the daemon (the first non-zero exit code wins)."""
        self.exit_code = self.exit_code or exit_code
        self.stop_requested.set()

    def _loop_failed(self, loop: str, error: BaseException) -> None:
        self.request_stop(EXIT_FAILED)

    def _close_share(self) -> float:
        budget = float(self.config.main.shutdown_timeout)
        return min(CLOSE_MOST, budget * CLOSE_SHARE)

    @property
    def requests_in_flight(self) -> int:
        """Requests being served now (the drain waits for them)."""
        return self._in_flight

    def stop_time_left(self) -> float:
        """Seconds left of the stop budget (while stopping)."""
        return max(0.0, self._stop_end - asyncio.get_running_loop().time())

    async def stop(self) -> None:
        """Stop in named stages under one budget (the main file's shutdown_timeout): refuse
        new work, drain what is in flight, cancel the loops and tasks, close."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        budget = float(self.config.main.shutdown_timeout)
        self._stop_end = end = began + budget
        close_share = self._close_share()
        self.stopping.set()
        took: list[str] = []
        # 1. Refuse: close the listener (new connections are refused); requests on open
        #    connections get a 503 "stopping" from the gate.
        await self._stage("refuse", self._refuse(), end - close_share, took, lambda: "")
        # 2. Drain: the requests in flight get their answers; the role flushes what it holds
        #    (its loops still run meanwhile: a scheduler's push loop makes results durable).
        await self._stage("drain", self._drain(), end - close_share, took,
                          self._drain_pending)
        # 3. Cancel the loops and the tasks left.
        await self._stage("cancel", self._cancel(), end - close_share / 2, took,
                          self._tasks_pending)
        # 4. Close: the HTTP server, the client, what the role holds (databases, workers).
        await self._stage("close", self._close(), end, took, lambda: "")
        self.state.close()
        log.info("%s %s stopped in %.2f s (%s)", self.role, self.name, loop.time() - began,
                 ", ".join(took))

    async def _stage(self, name: str, work: Coroutine[Any, Any, None], until: float,
                     took: list[str], pending: Callable[[], str]) -> None:
        loop = asyncio.get_running_loop()
        self.stop_stage = name
        began = loop.time()
        try:
            async with asyncio.timeout_at(max(began, until)):
                await work
        except TimeoutError:
            what = pending()
            log.warning("%s %s: stop stage %s late: not done in %.1f s%s, going on", self.role,
                        self.name, name, loop.time() - began, f" ({what})" if what else "")
        except Exception:  # a stage that fails must not skip the next ones (logged)
            log.exception("%s %s: stop stage %s failed, going on", self.role, self.name, name)
        took.append(f"{name} {loop.time() - began:.2f} s")

    async def _refuse(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def _drain(self) -> None:
        await asyncio.gather(self.on_stop(), self._requests_done())

    async def _requests_done(self) -> None:
        while self._in_flight:
            self._drained.clear()
            await self._drained.wait()

    def _drain_pending(self) -> str:
        what = [f"{self._in_flight} requests in flight"] if self._in_flight else []
        return ", ".join([*what, *self.drain_pending()])

    def _tasks_pending(self) -> str:
        return ", ".join(self.tasks.names())

    async def _cancel(self) -> None:
        await self.tasks.cancel_all(deadline=None)

    async def _close(self) -> None:
        try:
            if self._runner is not None:
                await self._runner.cleanup()
                self._runner = None
            await self.client.close()
        finally:
            # Even when the server was slow to close: journals and databases are closed.
            await self.on_closed()

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Once the stop began, refuse new requests with a retryable 503; count the requests
        in flight, which the drain waits for."""
        if self.stopping.is_set() and request.path not in SERVED_WHILE_STOPPING:
            response = error_response(503, "stopping", f"{self.role} {self.name} is stopping: "
                                      "nothing of this request was taken; send it again "
                                      f"shortly or to another {self.role}")
            response.headers["Retry-After"] = "1"
            response.force_close()
            return response
        self._in_flight += 1
        try:
            return await handler(request)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._drained.set()

    async def reload(self) -> None:
        """SIGHUP: nothing to re-read for most roles (the arbiter re-reads its tree)."""
        log.info("%s %s: reload requested (nothing to do for this role)", self.role, self.name)

    # --- hooks for the roles ----------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """Add the role's endpoints."""

    async def on_prepare(self) -> None:
        """Open what requests need (a database, worker processes) before serving."""

    async def on_start(self) -> None:
        """Start the role's lifelong loops (self.loops.start, critical or not)."""

    async def on_stop(self) -> None:
        """Drain: flush what must not be lost (new requests are refused already; the stop
        stage's deadline cancels this)."""

    def drain_pending(self) -> list[str]:
        """What the drain still waits for, for the line logged when it is late."""
        return []

    async def on_closed(self) -> None:
        """Release what outlives the server (databases, worker processes) within
        stop_time_left()."""

    async def apply_dispatch(self, dispatch: Dispatch) -> bool:
        """Take a dispatch (fence already checked); return whether anything changed."""
        changed = dispatch.topology != self.topology
        self.topology = dispatch.topology
        return changed

    def owns(self) -> RoleOwns | None:
        """Return what this daemon holds, for /status: its role's model."""
        return None

    def peers(self) -> list[PeerLink]:
        return []

    @property
    def active(self) -> bool:
        return not self.link.spare or self.fence is not None

    @property
    def part_hash(self) -> str:
        return ""

    # --- fencing ----------------------------------------------------------------------------

    def accept_epoch(self, epoch: int) -> None:
        """Refuse an older epoch; persist a newer one before acting on it."""
        if epoch < self.epoch:
            self.metrics.inc("fenced_requests_total", help_text="Requests refused for a "
                             "stale epoch.")
            raise Fenced(self.epoch, epoch)
        if epoch > self.epoch:
            log.info("%s %s: epoch %d -> %d", self.role, self.name, self.epoch, epoch)
            self.epoch = epoch
            self.state.save("epoch", {"epoch": epoch})

    # --- common endpoints -------------------------------------------------------------------

    def note_leader(self, arbiter: str, epoch: int) -> None:
        """Remember an authenticated call from an arbiter at (or above) our epoch."""
        if arbiter and epoch >= self.epoch:
            self.leader = arbiter
            self.leader_contact = self.clock.monotonic()

    def ping(self, arbiter: str, epoch: int | None, proof: str) -> PingReply:
        """Answer a ping; one from `arbiter` (its epoch, its proof) counts as the leader's
        contact when the proof holds."""
        # Only an arbiter that proves the secret (an HMAC of a nonce we handed out; the
        # secret itself never rides on a ping) counts as "the leader was here".
        if arbiter and epoch is not None and self.nonces.verify(self.secret, proof, arbiter,
                                                                epoch, self.name):
            self.note_leader(arbiter, epoch)
        fence = self.fence
        seen = (None if self.leader_contact is None
                else round(self.clock.monotonic() - self.leader_contact, 3))
        election = self.election_state()
        health, degraded = self.health()
        return PingReply(role=self.role, name=self.name, epoch=self.epoch,
                         config_hash=fence.config_hash if fence else "",
                         part_hash=self.part_hash,
                         topology_hash=self.topology_hash, leader=self.leader,
                         leader_seen_ago=seen, leading=self.leading_now(),
                         election_master=election[0] if election else "",
                         election_term=election[1] if election else 0,
                         election_down=election[2] if election else [],
                         db_epoch=self.database_epoch(),
                         nonce=self.nonces.current(), health=health,
                         degraded=degraded)

    def health(self) -> tuple[Health, list[str]]:
        """stopping; degraded, with the critical loops retrying; or ok."""
        if self.stopping.is_set():
            return "stopping", []
        return self.loops.health()

    def election_state(self) -> tuple[str, int, list[str]] | None:
        """(master, term, down) for roles that hold a master-token election."""
        return None

    def leading_now(self) -> bool:
        return False

    def database_epoch(self) -> int:
        """Data-servers: the database epoch they write under."""
        return 0

    def status(self) -> StatusReply:
        fence = self.fence
        return StatusReply(role=self.role, name=self.name, version=__version__,
                           pid=os.getpid(), started_at=self.started_at, active=self.active,
                           spare=self.link.spare, epoch=self.epoch,
                           config_hash=fence.config_hash if fence else "",
                           part_hash=self.part_hash, health=self.health()[0],
                           loops=self.loops.views(),
                           peers=[p.view() for p in self.peers()], owns=self.owns())

    def render_metrics(self) -> str:
        """The metrics in the Prometheus text format."""
        self.metrics.set("epoch", self.epoch, help_text="Highest epoch this daemon holds.")
        self.metrics.set("up", 1, help_text="1 while the daemon serves.", role=self.role,
                         name=self.name)
        return self.metrics.render()

    async def take_dispatch(self, dispatch: Dispatch) -> DispatchReply:
        """Take a dispatch from the leading arbiter; raise Fenced for an older epoch."""
        self.accept_epoch(dispatch.fence.epoch)
        self.note_leader(dispatch.fence.arbiter, dispatch.fence.epoch)
        changed = await self.apply_dispatch(dispatch)
        self.fence = dispatch.fence
        self.topology_hash = topology_hash(dispatch.topology)
        self.metrics.inc("dispatches_total", help_text="Dispatches received.",
                         changed=str(changed).lower())
        if changed:
            log.info("%s %s: configuration from arbiter %s (epoch %d, config %s) applied",
                     self.role, self.name, dispatch.fence.arbiter, dispatch.fence.epoch,
                     dispatch.fence.config_hash)
        return DispatchReply(accepted=True, reconfigured=changed, epoch=self.epoch,
                             part_hash=self.part_hash, topology_hash=self.topology_hash)


def topology_hash(topology: Topology) -> str:
    return hashlib.sha256(topology.model_dump_json().encode()).hexdigest()[:16]


def _abs(config: Config, path: str) -> str:
    if not path:
        return ""
    p = Path(path)
    return str(p if p.is_absolute() else Path(config.main_file).parent / p)

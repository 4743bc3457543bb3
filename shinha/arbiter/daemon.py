"""The arbiter: owns the configuration, cuts it into parts, dispatches them, watches every
daemon, and serves the cluster view (`GET /cluster`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from shinha.arbiter.partition import Plan, plan
from shinha.config.daemons import DaemonLink, Poller, Scheduler
from shinha.daemon.base import Daemon, DaemonContext, daemon_ref
from shinha.daemon.peers import PeerLink
from shinha.errors import PeerError, StaleEpoch
from shinha.http.server import json_response
from shinha.wire import (
    DaemonRef,
    Dispatch,
    DispatchReply,
    Fence,
    PingReply,
    Topology,
    Wire,
)

log = logging.getLogger(__name__)


class DaemonView(BaseModel):
    """One daemon in the cluster view."""

    name: str
    role: str
    address: str
    port: int
    host_name: str
    spare: bool
    alive: bool
    attempts: int
    last_contact: float | None
    epoch: int
    config_hash: str
    holds: str = Field("", description="The part (scheduler) or role it holds.")
    degraded: str = ""


class ClusterView(Wire):
    arbiter: str
    epoch: int
    config_hash: str
    leading: bool
    daemons: list[DaemonView]
    unplaced_hosts: int
    unowned_checks: int
    problems: list[str]


class ArbiterDaemon(Daemon):
    """The master arbiter (the spare's takeover comes with the failover work)."""

    role = "arbiter"

    def __init__(self, ctx: DaemonContext) -> None:
        super().__init__(ctx)
        self.links: dict[str, PeerLink] = {}
        self.last_ping: dict[str, PingReply] = {}
        self.plan = Plan()
        self.topology_out = Topology()
        self.leading = False
        self.problems: list[str] = []
        self._watchers: list[asyncio.Task[None]] = []
        self._build_links()

    def _daemons(self) -> list[DaemonLink]:
        return [d for role, daemons in self.config.daemons.items() if role != "arbiter"
                for d in daemons.values()]

    def _build_links(self) -> None:
        self.links = {
            f"{d.role}/{d.name}": PeerLink(daemon_ref(d), d.max_check_attempts,
                                           float(d.check_interval))
            for d in self._daemons()}

    def peers(self) -> list[PeerLink]:
        return list(self.links.values())

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/cluster", self._cluster)

    @property
    def active(self) -> bool:
        return self.leading

    def owns(self) -> dict[str, Any]:
        return {"leading": self.leading, "parts": sorted(self.plan.parts),
                "hosts": len(self.config.hosts), "services": len(self.config.services)}

    async def on_start(self) -> None:
        self.fence = Fence(epoch=self.epoch, arbiter=self.name,
                           config_hash=self.config.config_hash)
        if not self.link.spare:
            self.tasks.spawn(self._lead(), "lead")

    # --- leading ------------------------------------------------------------------------------

    async def _lead(self) -> None:
        """Take the lead: learn the highest epoch around, go one above it, dispatch, watch."""
        await self._ping_all()
        seen = max([self.epoch, *(p.epoch for p in self.last_ping.values())])
        self.accept_epoch(seen + 1)
        self.leading = True
        self.fence = Fence(epoch=self.epoch, arbiter=self.name,
                           config_hash=self.config.config_hash)
        log.info("arbiter %s leads with epoch %d (config %s)", self.name, self.epoch,
                 self.config.config_hash)
        self._replan()
        await self._dispatch_round()
        self._watchers = [self.tasks.spawn(self._watch(link), f"watch-{link.name}")
                          for link in self.links.values()]

    def _replan(self) -> None:
        """Cut the configuration among the alive schedulers and pollers."""
        schedulers = [s for s in self.config.daemons.get("scheduler", {}).values()
                      if isinstance(s, Scheduler) and not s.spare]
        pollers = [p for p in self.config.daemons.get("poller", {}).values()
                   if isinstance(p, Poller) and not p.spare]
        self.plan = plan(self.config, schedulers, pollers)
        problems: list[str] = []
        if self.plan.unplaced_hosts:
            problems.append(f"{len(self.plan.unplaced_hosts)} hosts have no scheduler in "
                            "their realm")
        if self.plan.unowned_checks:
            problems.append(f"{len(self.plan.unowned_checks)} checks have no poller with "
                            "their poller_tag in their realm")
        for text in problems:
            if text not in self.problems:
                log.error("arbiter %s: %s", self.name, text)
        self.problems = problems
        refs = {role: [daemon_ref(d) for d in self.config.daemons.get(role, {}).values()
                       if not d.spare]
                for role in ("scheduler", "poller", "dataserver", "receiver")}
        self.topology_out = Topology(
            schedulers=[r for r in refs["scheduler"] if r.name in self.plan.parts],
            pollers=refs["poller"], dataservers=refs["dataserver"],
            receivers=refs["receiver"], host_owner=self.plan.host_owner)

    async def _watch(self, link: PeerLink) -> None:
        """Ping one daemon every check_interval; dispatch to it when it needs it."""
        while True:
            # Until a daemon has answered once (it may still be starting), ask every second.
            await asyncio.sleep(link.check_interval if link.ever_seen else 1.0)
            reply = await self._ping_peer(link)
            if reply is not None and self._needs_dispatch(link, reply):
                await self._dispatch_one(link)

    async def _ping_all(self) -> None:
        await asyncio.gather(*(self._ping_peer(link) for link in self.links.values()))

    async def _ping_peer(self, link: PeerLink) -> PingReply | None:
        try:
            reply = await self.client.call(link.ref, "GET", "/ping", None, PingReply,
                                           float(self._definition(link).timeout))
        except PeerError as exc:
            link.failure(str(exc))
            return None
        link.success(self.clock.monotonic(), self.clock.time())
        link.epoch = reply.epoch
        link.part_hash = reply.part_hash
        self.last_ping[link.name] = reply
        return reply

    def _definition(self, link: PeerLink) -> DaemonLink:
        return self.config.daemons[link.ref.role][link.name]

    def _needs_dispatch(self, link: PeerLink, reply: PingReply) -> bool:
        if not self.leading or link.ref.spare:
            return False
        expected = self.plan.parts.get(link.name)
        return (reply.epoch != self.epoch or reply.config_hash != self.config.config_hash
                or (expected is not None and reply.part_hash != expected.part_hash))

    async def _dispatch_round(self) -> None:
        await asyncio.gather(*(self._dispatch_one(link) for link in self.links.values()
                               if link.alive and not link.ref.spare))

    async def _dispatch_one(self, link: PeerLink) -> None:
        assert self.fence is not None
        dispatch = Dispatch(fence=self.fence, topology=self.topology_out,
                            part=self.plan.parts.get(link.name)
                            if link.ref.role == "scheduler" else None)
        try:
            reply = await self.client.call(link.ref, "POST", "/dispatch", dispatch,
                                           DispatchReply,
                                           float(self._definition(link).data_timeout))
        except StaleEpoch as exc:
            log.error("arbiter %s: %s holds epoch %d, above ours (%d): standing down",
                      self.name, link.name, exc.epoch, self.epoch)
            self.leading = False
            return
        except PeerError as exc:
            log.warning("arbiter %s: dispatch to %s failed: %s", self.name, link.name, exc)
            return
        link.epoch = reply.epoch
        link.part_hash = reply.part_hash
        self.metrics.inc("dispatches_sent_total", help_text="Dispatches sent.",
                         role=link.ref.role)
        if reply.reconfigured:
            log.info("arbiter %s: Dispatch OK to %s %s%s", self.name, link.ref.role, link.name,
                     f" (part {reply.part_hash})" if reply.part_hash else "")

    async def reload(self) -> None:
        """SIGHUP: re-read the tree; on errors keep running the old one and say why."""
        from shinha.config import load_config

        result = load_config(self.config.main_file)
        if not result.ok or result.config is None:
            for diag in result.errors[:20]:
                log.error("reload: %s", diag)
            log.error("arbiter %s: reload refused, %d errors; still running config %s",
                      self.name, len(result.errors), self.config.config_hash)
            return
        if result.config.config_hash == self.config.config_hash:
            log.info("arbiter %s: reload: configuration unchanged", self.name)
            return
        old = self.config.config_hash
        self.config = result.config
        self.ctx.config = result.config
        old_links = self.links
        self._build_links()
        for key, link in self.links.items():
            if key in old_links:
                previous = old_links[key]
                link.alive, link.attempts = previous.alive, previous.attempts
                link.ever_seen = previous.ever_seen
        log.info("arbiter %s: reloaded configuration %s -> %s", self.name, old,
                 self.config.config_hash)
        if self.leading:
            self.fence = Fence(epoch=self.epoch, arbiter=self.name,
                               config_hash=self.config.config_hash)
            self._replan()
            await self._dispatch_round()
            for task in self._watchers:
                task.cancel()
            self._watchers = [self.tasks.spawn(self._watch(link), f"watch-{link.name}")
                              for link in self.links.values()]

    # --- the cluster view ---------------------------------------------------------------------

    def cluster(self) -> ClusterView:
        views: list[DaemonView] = []
        own = DaemonView(name=self.name, role="arbiter", address=self.link.address,
                         port=self.link.listen_port, host_name=self.link.host_name,
                         spare=self.link.spare, alive=True, attempts=0,
                         last_contact=self.clock.time(), epoch=self.epoch,
                         config_hash=self.config.config_hash,
                         holds="leading" if self.leading else "standby")
        views.append(own)
        for _, link in sorted(self.links.items()):
            d = self._definition(link)
            reply = self.last_ping.get(link.name)
            holds = ""
            if link.ref.role == "scheduler":
                part = self.plan.parts.get(link.name)
                holds = (f"part {link.part_hash} ({len(part.hosts)} hosts, "
                         f"{len(part.services)} services)") if part and link.part_hash else ""
            views.append(DaemonView(
                name=link.name, role=link.ref.role, address=link.ref.address,
                port=link.ref.port, host_name=d.host_name, spare=d.spare, alive=link.alive,
                attempts=link.attempts, last_contact=link.last_contact_wall,
                epoch=reply.epoch if reply else 0,
                config_hash=reply.config_hash if reply else "", holds=holds))
        return ClusterView(arbiter=self.name, epoch=self.epoch,
                           config_hash=self.config.config_hash, leading=self.leading,
                           daemons=views, unplaced_hosts=len(self.plan.unplaced_hosts),
                           unowned_checks=len(self.plan.unowned_checks),
                           problems=self.problems)

    async def _cluster(self, request: web.Request) -> web.Response:
        return json_response(self.cluster())

    def refs(self) -> list[DaemonRef]:
        return [link.ref for link in self.links.values()]

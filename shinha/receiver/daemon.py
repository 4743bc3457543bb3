"""The receiver daemon: takes passive results and external commands, journals them, and hands
each to the scheduler that owns its host — retrying, and re-routing when the owner changes."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from typing import Any

from aiohttp import web

from shinha.daemon.base import Daemon, DaemonContext
from shinha.daemon.journal import Journal
from shinha.errors import PeerError, RequestError
from shinha.http.server import MAX_CLIENT_BODY, check_secret, json_response, read_model
from shinha.poller.perfdata import parse_output
from shinha.receiver.commands import parse_command
from shinha.wire import (
    Accepted,
    CheckResult,
    CommandLines,
    DaemonRef,
    ExternalCommand,
    InboxAck,
    PassiveBatch,
    SchedulerInbox,
)

log = logging.getLogger(__name__)
FORWARD_BATCH = 2_000


class ReceiverDaemon(Daemon):
    """The front door."""

    role = "receiver"

    def __init__(self, ctx: DaemonContext) -> None:
        super().__init__(ctx)
        self.journal = Journal(self.state.path / "queue.jsonl")
        self.wakeup = asyncio.Event()
        self.unreachable: set[str] = set()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/results", self._results)
        app.router.add_post("/api/commands", self._commands)

    async def on_prepare(self) -> None:
        pending = self.journal.open()
        if pending:
            log.info("receiver %s: %d queued items from before the restart", self.name, pending)

    async def on_start(self) -> None:
        self.tasks.spawn(self._forward_loop(), "forward")

    async def on_stop(self) -> None:
        await self.journal.sync()

    async def on_closed(self) -> None:
        self.journal.close()

    def owns(self) -> dict[str, Any]:
        return {"queued": len(self.journal), "schedulers_unreachable": sorted(self.unreachable)}

    # --- intake -------------------------------------------------------------------------------

    async def _results(self, request: web.Request) -> web.Response:
        check_secret(request, self.secret)
        batch = await read_model(request, PassiveBatch, MAX_CLIENT_BODY)
        ids: list[str] = []
        now = self.clock.time()
        for i, passive in enumerate(batch.results):
            self._check_host(passive.host, f"results.{i}.host")
        for passive in batch.results:
            output, long_output, perfdata = parse_output(
                passive.output + (f"|{passive.perfdata}" if passive.perfdata else ""),
                self.config.main.max_plugins_output_length)
            result = CheckResult(result_id=passive.result_id or uuid.uuid4().hex,
                                 host=passive.host, service=passive.service,
                                 return_code=passive.return_code, output=output,
                                 long_output=passive.long_output or long_output,
                                 perfdata=perfdata, started=passive.time or now,
                                 finished=passive.time or now, passive=True)
            self.journal.put(result.result_id, {"result": result.model_dump(mode="json")})
            ids.append(result.result_id)
        return await self._accepted(ids)

    async def _commands(self, request: web.Request) -> web.Response:
        check_secret(request, self.secret)
        batch = await read_model(request, CommandLines, MAX_CLIENT_BODY)
        now = self.clock.time()
        parsed = [parse_command(line, f"commands.{i}", now,
                                self.config.main.max_plugins_output_length)
                  for i, line in enumerate(batch.commands)]  # all or nothing: 400 on any
        for i, item in enumerate(parsed):
            if item.host:
                self._check_host(item.host, f"commands.{i}")
        ids: list[str] = []
        for item in parsed:
            if isinstance(item, CheckResult):
                self.journal.put(item.result_id, {"result": item.model_dump(mode="json")})
                ids.append(item.result_id)
            else:
                self.journal.put(item.command_id, {"command": item.model_dump(mode="json")})
                ids.append(item.command_id)
        return await self._accepted(ids)

    def _check_host(self, host: str, field: str) -> None:
        """Refuse a host no scheduler owns, once the arbiter has told us who owns what."""
        owners = self.topology.host_owner
        if owners and host not in owners:
            raise RequestError(400, "unknown_host", f"{field}: host {host!r} is not in the "
                               "configuration", field)

    async def _accepted(self, ids: list[str]) -> web.Response:
        await self.journal.sync()  # durable before we say "accepted"
        self.metrics.inc("accepted_total", len(ids), help_text="Items accepted.")
        self.wakeup.set()
        return json_response(Accepted(accepted=len(ids), ids=ids), status=202)

    # --- forwarding ---------------------------------------------------------------------------

    async def _forward_loop(self) -> None:
        delay = 0.05
        while True:
            if not self.journal.items:
                self.wakeup.clear()
                try:
                    await asyncio.wait_for(self.wakeup.wait(), timeout=1.0)
                except TimeoutError:
                    continue
            progressed = await self._forward_once()
            await self.journal.sync()
            delay = 0.05 if progressed else min(max(delay * 2, 0.2), 2.0)
            await asyncio.sleep(delay)

    async def _forward_once(self) -> bool:
        schedulers = {s.name: s for s in self.topology.schedulers}
        owners = self.topology.host_owner
        by_target: dict[str, SchedulerInbox] = defaultdict(SchedulerInbox)
        broadcast: list[ExternalCommand] = []
        for item in list(self.journal.items.values())[:FORWARD_BATCH]:
            if "result" in item:
                result = CheckResult.model_validate(item["result"])
                owner = owners.get(result.host)
                if owner in schedulers:
                    by_target[owner].results.append(result)
            else:
                cmd = ExternalCommand.model_validate(item["command"])
                if not cmd.host:
                    broadcast.append(cmd)
                    continue
                owner = owners.get(cmd.host)
                if owner in schedulers:
                    by_target[owner].commands.append(cmd)
        for cmd in broadcast:
            for name in schedulers:
                by_target[name].commands.append(cmd)
        progressed = False
        broadcast_taken: set[str] = set()
        names = list(by_target)
        results = await asyncio.gather(*(self._send(schedulers[name], by_target[name])
                                         for name in names))
        all_answered = all(ack is not None for ack in results)
        for ack in results:
            if ack is None:
                continue
            for key in ack.taken:
                if key in {c.command_id for c in broadcast}:
                    broadcast_taken.add(key)
                else:
                    self.journal.done(key)
                    progressed = True
        for cmd in broadcast:
            # A downtime id only one scheduler holds: done once anyone took it, or once every
            # scheduler answered that it is not theirs.
            if cmd.command_id not in broadcast_taken and not all_answered:
                continue
            self.journal.done(cmd.command_id)
            progressed = True
            if cmd.command_id not in broadcast_taken:
                log.info("receiver %s: %s;%s matched no scheduler", self.name, cmd.name,
                         ";".join(cmd.args))
        return progressed

    async def _send(self, scheduler: DaemonRef, inbox: SchedulerInbox) -> InboxAck | None:
        try:
            ack = await self.client.call(scheduler, "POST", "/inbox", inbox, InboxAck,
                                         float(self.link.data_timeout))
        except PeerError as exc:
            if scheduler.name not in self.unreachable:
                log.warning("receiver %s: scheduler %s unreachable, keeping %d items queued "
                            "(%s)", self.name, scheduler.name,
                            len(inbox.results) + len(inbox.commands), exc)
                self.unreachable.add(scheduler.name)
            return None
        if scheduler.name in self.unreachable:
            log.warning("receiver %s: scheduler %s reachable again", self.name, scheduler.name)
            self.unreachable.discard(scheduler.name)
        return ack

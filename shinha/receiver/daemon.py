"""The receiver daemon: takes passive results and external commands, validates them at the
door, journals them, and hands each to the scheduler that owns its host (shinha.receiver.forward).
202 means every item of the request is on disk and will be stored; any other answer means
nothing of the request was taken."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from shinha.daemon.base import Daemon, DaemonContext
from shinha.daemon.journal import Journal
from shinha.errors import JournalError, RequestError
from shinha.receiver.commands import parse_command
from shinha.receiver.deadletter import DeadLetters
from shinha.receiver.forward import Forwarder, queue_item
from shinha.receiver.http import ReceiverInterface
from shinha.receiver.intake import Catalog
from shinha.wire import (
    Accepted,
    CheckResult,
    CommandLines,
    Dispatch,
    PassiveBatch,
    ReceiverOwns,
)

log = logging.getLogger(__name__)


class ReceiverDaemon(Daemon):
    """The front door."""

    role = "receiver"

    def __init__(self, ctx: DaemonContext) -> None:
        super().__init__(ctx)
        self.journal = Journal(self.state.path / "queue.jsonl")
        self.dead = DeadLetters(self.state.path / "deadletter.jsonl", self.name)
        #: What this receiver accepts: none until an arbiter dispatches it.
        self.catalog: Catalog | None = None
        self.wakeup = asyncio.Event()
        self.forwarder = Forwarder(self.name, self.journal, self.dead, self.client, self.clock,
                                   self.metrics, float(self.link.data_timeout),
                                   lambda: self.topology, lambda: self.catalog)

    def add_routes(self, app: web.Application) -> None:
        ReceiverInterface(self.secret, self).add_routes(app)

    async def on_prepare(self) -> None:
        pending = self.journal.open()
        self.dead.open()
        if pending:
            log.info("receiver %s: %d queued items from before the restart", self.name, pending)

    async def on_start(self) -> None:
        self.loops.start("forward", self._forward_loop)

    async def on_stop(self) -> None:
        try:
            await self.journal.sync()
        except JournalError as exc:
            log.warning("receiver %s: %s", self.name, exc)

    async def on_closed(self) -> None:
        self.journal.close()

    @property
    def part_hash(self) -> str:
        return self.catalog.catalog_hash if self.catalog else ""

    async def apply_dispatch(self, dispatch: Dispatch) -> bool:
        changed = await super().apply_dispatch(dispatch)
        new = dispatch.catalog
        if new is not None and new.catalog_hash != self.part_hash:
            self.catalog = Catalog(self.config.main, new)
            log.info("receiver %s: catalog from arbiter %s: %d hosts, %d services accepted",
                     self.name, dispatch.fence.arbiter, len(self.catalog.hosts),
                     len(self.catalog.services))
            changed = True
        return changed

    def door(self) -> Catalog:
        """What the door checks against; 503 (retryable, nothing taken) before a dispatch."""
        if self.catalog is None:
            raise RequestError(503, "not_ready", "this receiver has not received its "
                               "configuration from an arbiter yet: nothing was taken; send "
                               "it again shortly, or to another receiver")
        return self.catalog

    def owns(self) -> ReceiverOwns:
        trouble = self.forwarder.trouble
        return ReceiverOwns(
            queued=len(self.journal), dead_letters=self.dead.count,
            waiting_for_a_scheduler=self.forwarder.waiting,
            schedulers_unreachable=sorted(n for n, t in trouble.items()
                                          if t.startswith("unreachable")),
            schedulers_refusing=sorted(n for n, t in trouble.items()
                                       if t.startswith("refused")),
            journal_failing=self.journal.failing)

    # --- intake -------------------------------------------------------------------------------

    async def take_results(self, batch: PassiveBatch) -> Accepted:
        """Take passive results: all or nothing, on disk before the answer."""
        now = self.clock.time()
        # All or nothing: every item is checked before any is queued.
        door = self.door()
        results = [door.passive(passive, f"results.{i}", now)
                   for i, passive in enumerate(batch.results)]
        for result in results:
            self.journal.put(result.result_id, queue_item(result))
        return await self._accepted([r.result_id for r in results])

    async def take_commands(self, batch: CommandLines) -> Accepted:
        """Take external command lines: all or nothing, on disk before the answer."""
        now = self.clock.time()
        door = self.door()
        parsed = [parse_command(line, f"commands.{i}", now, door.max_output)
                  for i, line in enumerate(batch.commands)]  # all or nothing: 400 on any
        for i, item in enumerate(parsed):
            door.command(item, f"commands.{i}", now)
        ids: list[str] = []
        for item in parsed:
            key = item.result_id if isinstance(item, CheckResult) else item.command_id
            self.journal.put(key, queue_item(item))
            ids.append(key)
        return await self._accepted(ids)

    async def _accepted(self, ids: list[str]) -> Accepted:
        ticket = self.journal.ticket()
        try:
            await self.journal.commit(ticket)  # durable before we say "accepted"
        except JournalError:
            # The journal dropped this request's items: nothing of it was taken.
            self.metrics.inc("refused_total", help_text="Requests refused because the journal "
                             "could not be written.")
            raise RequestError(507, "insufficient_storage", "this receiver cannot write its "
                               "queue (disk full or failing): nothing was taken; send it "
                               "again later or to another receiver") from None
        self.metrics.inc("accepted_total", len(ids), help_text="Items accepted.")
        self.wakeup.set()
        return Accepted(accepted=len(ids), ids=ids)

    # --- forwarding ---------------------------------------------------------------------------

    async def _forward_loop(self) -> None:
        delay = 0.05
        while True:
            if not self.journal.items:
                self.wakeup.clear()
                if not await self.clock.wait(self.wakeup, 1.0):
                    continue
            progressed = await self.forwarder.round()
            self.metrics.set("queued", len(self.journal), help_text="Items queued for a "
                             "scheduler.")
            self.metrics.set("dead_letters", self.dead.count, help_text="Items in the "
                             "dead-letter file (refused as invalid by the next hop).")
            try:
                await self.journal.sync()
            except JournalError:
                progressed = False  # logged once by the journal; its "done" lines are kept
            delay = 0.05 if progressed else min(max(delay * 2, 0.2), 2.0)
            await self.clock.sleep(delay)

"""What a scheduler owes the data tier: results, state rows and events, pushed in batches.

A result is acknowledged to its poller (or receiver) only once a data-server accepted the
batch that carried it: `add` returns a future that completes (True) then. A failed push keeps
everything for the next one; nothing is dropped. A scheduler that stops while no data-server
takes anything gives up (the futures complete False: the senders keep their results).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from shinha.errors import PeerError
from shinha.http.client import PeerClient, peers_gone
from shinha.wire import CheckResult, DaemonRef, Event, IngestBatch, IngestReply, StateRow

log = logging.getLogger(__name__)

#: How many acknowledged result ids are remembered to answer a poller that sends one again.
REMEMBERED = 500_000
MAX_BATCH = 5_000


class Outbox:
    """Pending writes to the data tier, and which results are already durable."""

    def __init__(self, scheduler: str, client: PeerClient) -> None:
        self.scheduler = scheduler
        self.client = client
        self.results: dict[str, CheckResult] = {}
        self.states: dict[tuple[str, str], StateRow] = {}
        self.events: list[Event] = []
        self.waiters: dict[str, asyncio.Future[bool]] = {}
        #: Futures of writes without a result (commands): done with the next accepted push.
        self.tokens: list[asyncio.Future[bool]] = []
        #: Why the last push failed, one error per data-server tried.
        self.last_errors: list[PeerError] = []
        self.gave_up = False
        self.durable: OrderedDict[str, None] = OrderedDict()
        self.wakeup = asyncio.Event()
        self.pushed = 0
        self.failures = 0
        self.healthy = True

    def __len__(self) -> int:
        return len(self.results) + len(self.states) + len(self.events) + len(self.tokens)

    def is_durable(self, result_id: str) -> bool:
        return result_id in self.durable

    def waiter(self, result_id: str) -> asyncio.Future[bool] | None:
        return self.waiters.get(result_id)

    def add(self, result: CheckResult | None, row: StateRow | None,
            events: list[Event]) -> asyncio.Future[bool] | None:
        """Queue a write; for a result, return the future of its durability (True: durable;
        False: the scheduler stopped first)."""
        future: asyncio.Future[bool] | None = None
        if result is not None:
            self.results[result.result_id] = result
            future = self.waiters.get(result.result_id)
            if future is None:
                future = self._future()
                self.waiters[result.result_id] = future
        if row is not None:
            self.states[(row.host, row.service)] = row
        self.events.extend(events)
        self.wakeup.set()
        return future

    def add_writes(self, rows: list[StateRow], events: list[Event]) -> asyncio.Future[bool]:
        """Queue state rows and events; the future completes when a data-server took them."""
        for row in rows:
            self.states[(row.host, row.service)] = row
        self.events.extend(events)
        future = self._future()
        self.tokens.append(future)
        self.wakeup.set()
        return future

    def _future(self) -> asyncio.Future[bool]:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self.gave_up:
            future.set_result(False)
        return future

    def awaited(self) -> bool:
        """Whether a sender still waits for the durability of something (a push in flight)."""
        return any(not f.done() for f in self.waiters.values()) or any(
            not f.done() for f in self.tokens)

    def tier_gone(self) -> bool:
        """Whether the last push failed because every data-server is stopping or not
        listening (or there is none)."""
        return peers_gone(self.last_errors)

    def give_up(self) -> int:
        """The scheduler stops and no data-server takes anything: answer whoever waits for
        durability now (not durable: the poller or receiver keeps it and sends it again).
        Return how many results were left."""
        self.gave_up = True
        for future in [*self.waiters.values(), *self.tokens]:
            if not future.done():
                future.set_result(False)
        return len(self.results)

    def _take(self) -> tuple[list[CheckResult], list[StateRow], list[Event]]:
        results = list(self.results.values())[:MAX_BATCH]
        for r in results:
            del self.results[r.result_id]
        states = list(self.states.values())
        self.states = {}
        events, self.events = self.events, []
        return results, states, events

    def _give_back(self, results: list[CheckResult], states: list[StateRow],
                   events: list[Event]) -> None:
        for r in results:
            self.results.setdefault(r.result_id, r)
        for row in states:
            self.states.setdefault((row.host, row.service), row)
        self.events[:0] = events

    async def push(self, dataservers: list[DaemonRef], timeout: float, epoch: int) -> bool:
        """Send one batch to the first data-server that takes it; True on success."""
        if not len(self):
            return True
        results, states, events = self._take()
        tokens, self.tokens = self.tokens, []
        self.last_errors = []
        batch = IngestBatch(scheduler=self.scheduler, epoch=epoch, results=results,
                            states=states, events=events)
        for server in dataservers:
            try:
                reply = await self.client.call(server, "POST", "/api/ingest", batch,
                                               IngestReply, timeout)
            except PeerError as exc:
                log.debug("push to %s failed: %s", server.name, exc)
                self.last_errors.append(exc)
                continue
            self._settle(reply.accepted)
            for token in tokens:
                if not token.done():
                    token.set_result(True)
            self.pushed += len(results)
            if not self.healthy:
                log.warning("data tier reachable again (%s): %d results pushed",
                            server.name, len(results))
            self.healthy = True
            return True
        self._give_back(results, states, events)
        self.tokens[:0] = tokens
        self.failures += 1
        if self.healthy:
            log.warning("no data-server accepted the results (%d pending); keeping them and "
                        "retrying", len(self.results))
        self.healthy = False
        return False

    def _settle(self, accepted: list[str]) -> None:
        for result_id in accepted:
            self.durable[result_id] = None
            future = self.waiters.pop(result_id, None)
            if future is not None and not future.done():
                future.set_result(True)
        while len(self.durable) > REMEMBERED:
            self.durable.popitem(last=False)

"""Hand a receiver's queued items to the schedulers that own their hosts.

Each round looks past items it cannot route now (their host's scheduler is dead and has no
spare) so that they never block the others. A scheduler that is *unreachable* keeps its items
queued; one that *refuses* a batch as invalid gets it again in halves until the one item at
fault is found, and that item goes to the dead-letter file: an item the next hop refuses as
invalid is never retried forever. Items a scheduler says are not its own wait for the next
topology.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from shinha.clock import Clock
from shinha.daemon.journal import Journal
from shinha.daemon.metrics import Metrics
from shinha.errors import JournalError, PeerError, PeerRefused, PeerUnreachable
from shinha.http.client import PeerClient
from shinha.receiver.deadletter import DeadLetters
from shinha.receiver.intake import Catalog
from shinha.wire import (
    CheckResult,
    DaemonRef,
    ErrorBody,
    ExternalCommand,
    InboxAck,
    QueuedCommand,
    QueuedResult,
    SchedulerInbox,
    Topology,
)

log = logging.getLogger(__name__)

#: Items sent to one scheduler in one request.
FORWARD_BATCH = 2_000
#: Items looked at in one round (a queue of millions for a dead scheduler is not rescanned).
SCAN_LIMIT = 200_000
#: HTTP statuses by which a scheduler says "this batch is invalid" (not "try later").
INVALID_STATUSES = (400, 413, 422)

Entry = tuple[str, CheckResult | ExternalCommand]


@dataclass
class Outcome:
    """What one delivery to one scheduler came to."""

    taken: list[str] = field(default_factory=list)
    not_mine: list[str] = field(default_factory=list)
    answered: bool = True


class Forwarder:
    """The receiver's forwarding rounds."""

    def __init__(self, name: str, journal: Journal, dead: DeadLetters, client: PeerClient,
                 clock: Clock, metrics: Metrics, timeout: float,
                 topology: Callable[[], Topology],
                 catalog: Callable[[], Catalog | None] = lambda: None) -> None:
        self.name = name
        self.journal = journal
        self.dead = dead
        self.client = client
        self.clock = clock
        self.metrics = metrics
        self.timeout = timeout
        self.topology = topology
        #: What the arbiter says exists now (None before the first dispatch).
        self.catalog = catalog
        #: Scheduler -> "unreachable" or "refused: …", while it is so (logged on transitions).
        self.trouble: dict[str, str] = {}
        self.waiting = 0

    async def round(self) -> bool:
        """Send what can be sent; return whether any item left the queue."""
        topology = self.topology()
        schedulers = {s.name: s for s in topology.schedulers}
        by_target, broadcast = self._collect(topology, schedulers)
        names = list(by_target)
        outcomes = await asyncio.gather(*(self._deliver(schedulers[n], by_target[n])
                                          for n in names))
        progressed = False
        for outcome in outcomes:
            for key in outcome.taken:
                self.journal.done(key)
                progressed = True
        if broadcast:
            progressed |= await self._broadcast(list(schedulers.values()), broadcast)
        return progressed

    def _collect(self, topology: Topology, schedulers: dict[str, DaemonRef]
                 ) -> tuple[dict[str, list[Entry]], list[Entry]]:
        owners = topology.host_owner
        by_target: dict[str, list[Entry]] = {}
        broadcast: list[Entry] = []
        full: set[str] = set()
        waiting = 0
        for key, raw in list(itertools.islice(self.journal.items.items(), SCAN_LIMIT)):
            parsed = self._parse(key, raw)
            if parsed is None:
                continue
            if isinstance(parsed, ExternalCommand) and not parsed.host:
                if len(broadcast) < FORWARD_BATCH:
                    broadcast.append((key, parsed))
                continue
            owner = owners.get(parsed.host)
            if owner not in schedulers:
                catalog = self.catalog()
                gone = catalog.left(parsed.host, parsed.service) if catalog else None
                if gone is not None:
                    # Taken before a reload removed it: no scheduler will ever take it.
                    self._dead_letter(key, raw, gone)
                    continue
                waiting += 1  # its scheduler is dead with no spare: it waits, the rest goes on
                continue
            assert owner is not None
            if owner in full:
                continue
            batch = by_target.setdefault(owner, [])
            batch.append((key, parsed))
            if len(batch) >= FORWARD_BATCH:
                full.add(owner)
                if len(full) == len(schedulers):
                    break
        if waiting and not self.waiting:
            log.warning("receiver %s: %d items wait for a scheduler (their hosts have none "
                        "now); the others go on", self.name, waiting)
        self.waiting = waiting
        return by_target, broadcast

    def _parse(self, key: str, raw: Any) -> CheckResult | ExternalCommand | None:
        """The queued item as a model; one that no longer validates (a journal from an older
        version, a poison item) goes to the dead letters."""
        try:
            if isinstance(raw, dict) and "result" in raw:
                return QueuedResult.model_validate(raw).result
            if isinstance(raw, dict) and "command" in raw:
                return QueuedCommand.model_validate(raw).command
            reason = "neither a result nor a command"
        except ValidationError as exc:
            err = exc.errors()[0]
            reason = f"invalid in the queue: {'.'.join(map(str, err['loc']))}: {err['msg']}"
        self._dead_letter(key, raw, reason)
        return None

    def _dead_letter(self, key: str, raw: Any, reason: str) -> None:
        try:
            self.dead.add(key, raw, reason, self.clock.time())
        except JournalError as exc:
            log.warning("receiver %s: %s; item %s stays queued", self.name, exc, key)
            return
        self.metrics.inc("dead_letters_total", help_text="Items refused as invalid by the next "
                         "hop and moved to the dead-letter file.")
        self.journal.done(key)

    async def _deliver(self, scheduler: DaemonRef, entries: list[Entry]) -> Outcome:
        """Send entries; on an "invalid" refusal, split until the item at fault is found."""
        inbox = SchedulerInbox(
            results=[m for _, m in entries if isinstance(m, CheckResult)],
            commands=[m for _, m in entries if isinstance(m, ExternalCommand)])
        try:
            ack = await self.client.call(scheduler, "POST", "/inbox", inbox, InboxAck,
                                         self.timeout)
        except PeerRefused as exc:
            if exc.status in INVALID_STATUSES:
                if len(entries) > 1:
                    half = len(entries) // 2
                    first = await self._deliver(scheduler, entries[:half])
                    second = await self._deliver(scheduler, entries[half:])
                    return Outcome(first.taken + second.taken,
                                   first.not_mine + second.not_mine,
                                   first.answered and second.answered)
                if _points_into_item(exc.body):
                    key, model = entries[0]
                    self._dead_letter(key, queue_item(model), f"refused by scheduler "
                                      f"{scheduler.name}: {_message(exc.body)}")
                    return Outcome()
            self._trouble(scheduler.name, f"refused: HTTP {exc.status} {_message(exc.body)}",
                          len(entries))
            return Outcome(answered=False)
        except PeerUnreachable as exc:
            self._trouble(scheduler.name, f"unreachable ({exc})", len(entries))
            return Outcome(answered=False)
        except PeerError as exc:
            self._trouble(scheduler.name, f"refused: {exc}", len(entries))
            return Outcome(answered=False)
        self._recovered(scheduler.name)
        invalid = dict(ack.invalid)
        for key, model in entries:
            if key in invalid:
                self._dead_letter(key, queue_item(model), f"refused by scheduler {scheduler.name}: "
                                  f"{invalid[key]}")
        return Outcome(taken=ack.taken, not_mine=ack.not_mine)

    async def _broadcast(self, schedulers: list[DaemonRef], commands: list[Entry]) -> bool:
        """Commands that name no host (a downtime id only one scheduler holds): done once
        anyone took them, or once every scheduler answered that they are not theirs."""
        outcomes = await asyncio.gather(*(self._deliver(s, commands) for s in schedulers))
        taken = {key for o in outcomes for key in o.taken}
        all_answered = all(o.answered for o in outcomes)
        progressed = False
        for key, cmd in commands:
            if key not in self.journal.items:
                continue  # moved to the dead letters meanwhile
            if key not in taken and not all_answered:
                continue
            self.journal.done(key)
            progressed = True
            if key not in taken:
                assert isinstance(cmd, ExternalCommand)
                log.info("receiver %s: %s;%s matched no scheduler", self.name, cmd.name,
                         ";".join(cmd.args))
        return progressed

    def _trouble(self, scheduler: str, what: str, count: int) -> None:
        kind = what.split(":", 1)[0].split(" ", 1)[0]
        if self.trouble.get(scheduler, "").split(":", 1)[0].split(" ", 1)[0] != kind:
            log.warning("receiver %s: scheduler %s %s; keeping %d items queued", self.name,
                        scheduler, what, count)
        self.trouble[scheduler] = what

    def _recovered(self, scheduler: str) -> None:
        if self.trouble.pop(scheduler, None) is not None:
            log.warning("receiver %s: scheduler %s takes items again", self.name, scheduler)


def queue_item(model: CheckResult | ExternalCommand) -> dict[str, Any]:
    """The queue item (QueuedResult or QueuedCommand) of a result or command, as the journal
    holds it."""
    item = QueuedResult(result=model) if isinstance(model, CheckResult) else \
        QueuedCommand(command=model)
    return item.model_dump(mode="json")


def _message(body: str) -> str:
    try:
        return ErrorBody.model_validate_json(body).message[:300]
    except ValidationError:
        return body[:300]


def _points_into_item(body: str) -> bool:
    """Whether a refusal names a field inside the one item sent (not the envelope, such as
    a schema version the scheduler does not speak: that is no fault of the item)."""
    try:
        where = ErrorBody.model_validate_json(body).field or ""
    except ValidationError:
        return False
    return where.startswith(("results.0", "commands.0"))

"""What a daemon keeps on disk between taking an item and handing it on: the lines of its
journal (shinha/daemon/journal.py) and their items, and the dead letters a receiver moves
aside. Storage too holds no Python class names and no pickle: each is JSON of a model here."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, JsonValue

from shinha.wire.base import Finite
from shinha.wire.checks import CheckResult
from shinha.wire.passive import ExternalCommand


class StoredLine(BaseModel):
    """Base of a line written to disk: strict, and not Finite (it may carry a poison item
    as it was taken, NaN included)."""

    model_config = ConfigDict(extra="forbid")


class StoredItem(Finite):
    """Base of an item a daemon keeps until it hands it on: strict."""

    model_config = ConfigDict(extra="forbid")


class JournalPut(StoredLine):
    """A journal line: the item `put` was taken (written by hand, for speed: `put_line`)."""

    put: str
    item: JsonValue


class JournalDone(StoredLine):
    """A journal line: the item `done` was handed on."""

    done: str


class PollerJournalItem(StoredItem):
    """A poller's result not yet acknowledged, and the scheduler it goes to."""

    result: CheckResult
    scheduler: str


class QueuedResult(StoredItem):
    """A receiver's queued passive result."""

    result: CheckResult


class QueuedCommand(StoredItem):
    """A receiver's queued external command."""

    command: ExternalCommand


#: An item of a receiver's queue.
QueuedItem = QueuedResult | QueuedCommand


class DeadLetter(StoredLine):
    """A line of a receiver's `deadletter.jsonl`: an item the next hop refuses as invalid."""

    id: str
    time: float
    reason: str
    item: JsonValue

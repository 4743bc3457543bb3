"""What a daemon keeps on disk between taking an item and handing it on: the lines of its
journal (shinha/daemon/journal.py) and their items, and the dead letters a receiver moves
aside. Storage too holds no Python class names and no pickle: each is JSON of a model here."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, JsonValue

from shinha.wire.base import Finite
from shinha.wire.checks import CheckResult
from shinha.wire.passive import ExternalCommand


class JournalPut(BaseModel):
    """A journal line: the item `put` was taken (written by hand, for speed: `put_line`)."""

    model_config = ConfigDict(extra="forbid")

    put: str
    item: JsonValue


class JournalDone(BaseModel):
    """A journal line: the item `done` was handed on."""

    model_config = ConfigDict(extra="forbid")

    done: str


class PollerJournalItem(Finite):
    """A poller's result not yet acknowledged, and the scheduler it goes to."""

    model_config = ConfigDict(extra="forbid")

    result: CheckResult
    scheduler: str


class QueuedResult(Finite):
    """A receiver's queued passive result."""

    model_config = ConfigDict(extra="forbid")

    result: CheckResult


class QueuedCommand(Finite):
    """A receiver's queued external command."""

    model_config = ConfigDict(extra="forbid")

    command: ExternalCommand


#: An item of a receiver's queue.
QueuedItem = QueuedResult | QueuedCommand


class DeadLetter(BaseModel):
    """A line of a receiver's `deadletter.jsonl`: an item the next hop refuses as invalid.
    Not Finite: the item is whatever the queue held, a poison one included."""

    model_config = ConfigDict(extra="forbid")

    id: str
    time: float
    reason: str
    item: JsonValue

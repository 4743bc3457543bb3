"""Passive results and external commands: what operators and agents send a receiver, and what
it hands a scheduler."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from shinha.wire.base import Finite, Int64, Wire
from shinha.wire.checks import CheckResult


class PassiveResult(Finite):
    """A passive result as an operator or agent sends it to a receiver."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, max_length=255)
    service: str = Field("", max_length=255)
    return_code: int = Field(ge=0, le=3)
    output: str = Field("", max_length=65_536)
    long_output: str = Field("", max_length=1_048_576)
    perfdata: str = Field("", max_length=65_536)
    time: float | None = None
    result_id: str | None = Field(None, min_length=8, max_length=64)


class PassiveBatch(Wire):
    results: list[PassiveResult] = Field(min_length=1, max_length=10_000)


class CommandLines(Wire):
    commands: list[str] = Field(min_length=1, max_length=10_000)


class ExternalCommand(Finite):
    """A parsed external command, routed to the scheduler of its host."""

    command_id: str
    name: str
    host: str
    service: str = ""
    args: list[str] = Field(default_factory=list)
    entry_time: float


class SchedulerInbox(Wire):
    """What a receiver hands a scheduler: passive results and commands."""

    results: list[CheckResult] = Field(default_factory=list, max_length=10_000)
    commands: list[ExternalCommand] = Field(default_factory=list, max_length=10_000)


class InboxAck(Wire):
    taken: list[str]
    not_mine: list[str] = Field(default_factory=list, description="For another scheduler "
                                "(the receiver's topology is older): sent again later.")
    invalid: dict[str, str] = Field(default_factory=dict, description="id -> why this "
                                    "scheduler will never take it (a service its host does "
                                    "not have): the receiver moves it aside.")


class Accepted(Wire):
    """202: the receiver holds these (queued until their scheduler takes them)."""

    accepted: Int64
    ids: list[str]

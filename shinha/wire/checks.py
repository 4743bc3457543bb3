"""Checks and their results: a poller pulls jobs from a scheduler and returns results."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shinha.wire.base import Finite, Wire


class PerfDatum(Finite):
    """One `label=value[UOM];[warn];[crit];[min];[max]` item of plugin performance data."""

    label: str
    value: float | None
    uom: str = ""
    warn: str = ""
    crit: str = ""
    min: float | None = None
    max: float | None = None


class CheckJob(Wire):
    """A check a poller must run now."""

    job_id: str
    host: str
    service: str = Field("", description="Empty for a host check.")
    command_line: str
    module_type: str = Field("fork", description="fork: a plugin; tcp, http: native checks.")
    timeout: float = Field(gt=0)
    timeout_state: int = Field(2, ge=0, le=3)
    due: float = Field(description="Wall time it was due.")
    poller_tag: str = "None"
    kind: Literal["check", "notification", "eventhandler"] = Field(
        "check", description="notification, eventhandler: an action; job_id is its action id.")


class CheckResult(Wire):
    """The outcome of one check run (active or passive). `result_id` makes writes idempotent."""

    result_id: str = Field(min_length=8, max_length=64)
    job_id: str = ""
    host: str = Field(min_length=1)
    service: str = ""
    return_code: int = Field(ge=0, le=3)
    output: str = ""
    long_output: str = ""
    perfdata: list[PerfDatum] = Field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    latency: float = 0.0
    timed_out: bool = False
    passive: bool = False
    poller: str = ""
    kind: Literal["check", "notification", "eventhandler"] = Field(
        "check", description="The job's kind: an action's outcome changes no state.")


class PullRequest(Wire):
    poller: str
    instance: str = Field("", max_length=64, description="Changes at every poller start: "
                          "checks handed to an older instance are orphans at once.")
    tags: list[str] = Field(default_factory=lambda: ["None"])
    covering: list[str] = Field(default_factory=list, description="Downed pollers whose checks "
                                "this one takes over (master-token election).")
    spread: list[tuple[str, int]] = Field(default_factory=list, description="takeover spread: "
                                          "the alive pollers (name, weight) sharing them.")
    silence: float = Field(0.0, ge=0, description="A covered poller must have been silent this "
                           "long at the scheduler too (2 × server_threshold).")
    max_jobs: int = Field(64, ge=1, le=10_000)
    wait: float = Field(1.0, ge=0, le=30)


class PullReply(Wire):
    jobs: list[CheckJob]


class ResultBatch(Wire):
    poller: str
    results: list[CheckResult] = Field(max_length=10_000)


class ResultAck(Wire):
    """Which results are now safe (a data-server holds them) and which must be sent again."""

    acked: list[str]
    retry: list[str] = Field(default_factory=list)
    rerouted: dict[str, str] = Field(default_factory=dict, description="result -> scheduler "
                                     "that owns its host now")

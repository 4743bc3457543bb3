"""The data-server's storage interface, and the logic every storage backend shares.

A backend (embedded SQLite now, MariaDB later) keeps the current state of every host and
service (what a scheduler resumes from), check results, events, and the result ids already
taken so that every write is idempotent. The decisions of an ingest — duplicate or not, new
result row or bump ("only new data", as Pandora FMS stores) — are made here by `plan_ingest`,
so every backend makes them alike: a backend reads the baseline, applies the plan, and does
both inside one transaction.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from pydantic import TypeAdapter

from shinha.errors import StorageError
from shinha.wire import (
    CheckResult,
    Downtime,
    Event,
    IngestBatch,
    IngestReply,
    PerfDatum,
    StateRow,
)

#: The storage schema this code writes; a database of a higher version is refused.
STORE_SCHEMA_VERSION = 2
#: Lifetime totals kept in the database: results = stored_new + only_bumped.
COUNTERS = ("stored_new", "only_bumped", "duplicates", "results", "events")
#: What `problems=True` lists: WARNING, CRITICAL, UNKNOWN (never OK, never PENDING).
PROBLEM_STATES = (1, 2, 3)

Key = tuple[str, str]

_PERFDATA = TypeAdapter(list[PerfDatum])
_DOWNTIMES = TypeAdapter(list[Downtime])

#: Columns of the current-state table that carry a StateRow, in StateRow's order.
STATE_COLUMNS = ("host", "service", "state", "state_type", "attempt", "last_check",
                 "last_state_change", "last_hard_state", "last_hard_state_change", "output",
                 "long_output", "perfdata", "acknowledged", "ack_author", "ack_comment",
                 "ack_sticky", "downtimes", "last_result_id", "updated_at")
#: Columns of the results table that history() shows.
RESULT_COLUMNS = ("id", "result_id", "time", "last_seen", "hits", "return_code", "output",
                  "long_output", "perfdata", "started", "latency", "timed_out", "passive",
                  "poller")
#: Columns of the events table, in Event's order.
EVENT_COLUMNS = ("event_id", "time", "host", "service", "kind", "state", "state_type",
                 "attempt", "output", "detail")


class Store(ABC):
    """Where a data-server keeps states, results and events; every method is a coroutine."""

    @abstractmethod
    async def open(self) -> None:
        """Open the database, creating the schema if missing; refuse a newer schema."""

    @abstractmethod
    async def close(self) -> None:
        """Finish what was submitted, then release the database."""

    @abstractmethod
    async def ingest(self, batch: IngestBatch) -> IngestReply:
        """Store one scheduler batch in one transaction; durable when this returns.

        Results are idempotent by result_id (a known id counts as a duplicate, is not stored
        again and is still accepted). A result whose return code, output, long output and
        perfdata equal its check's current result only bumps that (last_check, hit count);
        any other makes a new result row. Results never change state, state type or attempt
        of an existing check: the scheduler's StateRows, upserted after the results, do
        (every field as sent, except that last_check never goes back). Events are
        idempotent by event_id.
        """

    @abstractmethod
    async def states(self, hosts: list[str]) -> list[StateRow]:
        """Return the current host and service rows of these hosts."""

    @abstractmethod
    async def list_hosts(self, offset: int, limit: int,
                         state: int | None = None) -> tuple[int, list[StateRow]]:
        """Return the number of matching host rows and one page of them, by host name."""

    @abstractmethod
    async def list_services(self, offset: int, limit: int, host: str | None = None,
                            state: int | None = None,
                            problems: bool = False) -> tuple[int, list[StateRow]]:
        """Return the number of matching service rows and one page, by host then service."""

    @abstractmethod
    async def history(self, host: str, service: str, offset: int,
                      limit: int) -> tuple[int, list[dict[str, Any]]]:
        """Return the number of result rows and events of a check and one page, newest first."""

    @abstractmethod
    async def counters(self) -> dict[str, int]:
        """Return the lifetime totals named in COUNTERS."""

    @abstractmethod
    async def sweep_stale(self, older_than: float, now: float) -> int:
        """Turn UNKNOWN the services with no result since `older_than`; return how many."""

    @abstractmethod
    async def purge(self, older_than: float) -> int:
        """Delete results and events older than a wall time; return how many went.

        The result row a check currently stands on is kept whatever its age; forgotten
        result ids may then be stored again if resent, so purge well past any retry window.
        """

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()


def check_page(offset: int, limit: int) -> None:
    """Refuse a negative offset or limit (SQL would read them as 'no limit')."""
    if offset < 0 or limit < 0:
        raise ValueError(f"offset and limit must be >= 0, got {offset} and {limit}")


#: Statements that take a database from version N-1 to N (portable SQL).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: ("ALTER TABLE states ADD COLUMN updated_at REAL NOT NULL DEFAULT 0",),
}


def check_schema_version(where: str, found: object) -> int:
    """Return the recorded schema version; refuse one newer than this code, or unreadable."""
    version = int(found) if isinstance(found, int | str) and str(found).isdigit() else None
    if version is not None and version > STORE_SCHEMA_VERSION:
        raise StorageError(f"{where} has storage schema version {version}, newer than the "
                           f"{STORE_SCHEMA_VERSION} this shinha knows: upgrade shinha")
    if version is None or version < 1:
        raise StorageError(f"{where} has an unknown storage schema version {found!r}")
    return version


# --- rows <-> models ---------------------------------------------------------------------


def perfdata_json(perfdata: list[PerfDatum]) -> str:
    """Serialize perfdata the one way both storage and comparison use."""
    return _PERFDATA.dump_json(perfdata).decode()


def result_signature(result: CheckResult, perf_json: str) -> str:
    """Digest what only-new-data compares: return code, output, long output, perfdata."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (str(result.return_code), result.output, result.long_output, perf_json):
        data = part.encode()
        # Length-prefixed so that no two different tuples can concatenate alike.
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def result_time(result: CheckResult, now: float) -> float:
    """When a result happened: its finish time, else its start, else when it arrived."""
    return result.finished or result.started or now


def state_params(row: StateRow) -> tuple[Any, ...]:
    """Return the STATE_COLUMNS values of a StateRow."""
    return (row.host, row.service, row.state, row.state_type, row.attempt, row.last_check,
            row.last_state_change, row.last_hard_state, row.last_hard_state_change, row.output,
            row.long_output, perfdata_json(row.perfdata), int(row.acknowledged),
            row.ack_author, row.ack_comment, int(row.ack_sticky),
            _DOWNTIMES.dump_json(row.downtimes).decode(), row.last_result_id, row.updated_at)


def state_from_record(record: Sequence[Any]) -> StateRow:
    """Build a StateRow from STATE_COLUMNS values."""
    values = dict(zip(STATE_COLUMNS, record, strict=True))
    values["perfdata"] = json.loads(values["perfdata"])
    values["downtimes"] = json.loads(values["downtimes"])
    values["acknowledged"] = bool(values["acknowledged"])
    values["ack_sticky"] = bool(values["ack_sticky"])
    return StateRow.model_validate(values)


def first_state(result: CheckResult, at: float, perf_json: str) -> tuple[Any, ...]:
    """Return the STATE_COLUMNS values of a check first known from a result, not a StateRow."""
    rc = result.return_code
    return (result.host, result.service, rc, "HARD", 1, at, at, rc, at, result.output,
            result.long_output, perf_json, 0, "", "", 0, "[]", result.result_id, 0.0)


def event_params(event: Event) -> tuple[Any, ...]:
    """Return the EVENT_COLUMNS values of an Event."""
    return (event.event_id, event.time, event.host, event.service, event.kind, event.state,
            event.state_type, event.attempt, event.output, event.detail)


def result_entry(record: Sequence[Any]) -> dict[str, Any]:
    """Build a history entry from RESULT_COLUMNS values."""
    entry = dict(zip(RESULT_COLUMNS, record, strict=True))
    del entry["id"]
    entry["type"] = "result"
    entry["state"] = entry.pop("return_code")
    entry["perfdata"] = json.loads(entry["perfdata"])
    entry["timed_out"] = bool(entry["timed_out"])
    entry["passive"] = bool(entry["passive"])
    return entry


def event_entry(record: Sequence[Any]) -> dict[str, Any]:
    """Build a history entry from EVENT_COLUMNS values."""
    entry = dict(zip(EVENT_COLUMNS, record, strict=True))
    entry["type"] = "event"
    return entry


def history_entries(page: Sequence[Sequence[Any]], results: Sequence[Sequence[Any]],
                    events: Sequence[Sequence[Any]],
                    current: tuple[int | None, int, float]) -> list[dict[str, Any]]:
    """Build one history page.

    `page` holds (source "r" or "e", row id, time) in page order, `results` the
    RESULT_COLUMNS of its result rows, `events` the row id then EVENT_COLUMNS of its events,
    `current` the check's (res_row, res_hits, res_time).
    """
    res_row, res_hits, res_time = current
    by_result: dict[int, dict[str, Any]] = {}
    for record in results:
        entry = by_result[record[0]] = result_entry(record)
        if record[0] == res_row:
            # The row a check stands on is counted live in its state row, not in place.
            entry["hits"], entry["last_seen"] = res_hits, res_time
    by_event = {record[0]: event_entry(record[1:]) for record in events}
    return [by_result[i] if src == "r" else by_event[i] for src, i, _ in page]


# --- the ingest plan -----------------------------------------------------------------------


@dataclass(slots=True)
class Baseline:
    """What the database holds of one check before a batch: the only-new-data reference."""

    check_id: int | None = None  # None: no current-state row yet
    row: int | None = None  # the result row the check currently stands on
    sig: str = ""
    hits: int = 0  # results folded into `row`
    seen: float = 0.0  # time of the newest result folded into `row`
    last_check: float = 0.0


@dataclass(slots=True)
class NewRow:
    """A result row to insert; `hits`/`last_seen` are final unless it becomes current."""

    result: CheckResult
    time: float
    perfdata: str
    hits: int = 1
    last_seen: float = 0.0


@dataclass(slots=True)
class CheckPlan:
    """What one batch does to one check."""

    key: Key
    base: Baseline
    sig: str
    hits: int
    seen: float
    last_check: float
    rows: list[NewRow] = field(default_factory=list)
    current: int | None = None  # index in rows of the new current row; None: base.row stays
    retire: tuple[int, float] | None = None  # final (hits, last_seen) of base.row, superseded
    newest: NewRow | None = None  # not older than last_check: its output goes to the state row


@dataclass(slots=True)
class IngestPlan:
    """Everything one batch writes, decided before the first write."""

    accepted: list[str]
    fresh_ids: list[str]
    checks: list[CheckPlan]
    events: list[Event]
    states: list[StateRow]
    stored_new: int = 0
    only_bumped: int = 0
    duplicates: int = 0

    def reply(self) -> IngestReply:
        return IngestReply(accepted=self.accepted, stored_new=self.stored_new,
                           only_bumped=self.only_bumped, duplicates=self.duplicates)

    def counter_deltas(self) -> dict[str, int]:
        return {"stored_new": self.stored_new, "only_bumped": self.only_bumped,
                "duplicates": self.duplicates, "results": self.stored_new + self.only_bumped,
                "events": len(self.events)}


def plan_ingest(batch: IngestBatch, known_results: set[str], known_events: set[str],
                baselines: dict[Key, Baseline], now: float) -> IngestPlan:
    """Decide what a batch stores, given the ids already taken and each check's baseline."""
    accepted: list[str] = []
    fresh: list[str] = []
    taken: set[str] = set()
    duplicates = 0
    by_check: dict[Key, list[CheckResult]] = {}
    for result in batch.results:
        rid = result.result_id
        if rid in taken or rid in known_results:
            duplicates += 1
            if rid not in taken:
                taken.add(rid)
                accepted.append(rid)
            continue
        taken.add(rid)
        accepted.append(rid)
        fresh.append(rid)
        by_check.setdefault((result.host, result.service), []).append(result)
    plan = IngestPlan(accepted=accepted, fresh_ids=fresh, checks=[], events=[],
                      states=batch.states, duplicates=duplicates)
    for key, results in by_check.items():
        check = _plan_check(key, baselines.get(key) or Baseline(), results, now, plan)
        plan.checks.append(check)
    event_ids: set[str] = set()
    for event in batch.events:
        if event.event_id not in known_events and event.event_id not in event_ids:
            event_ids.add(event.event_id)
            plan.events.append(event)
    return plan


def _plan_check(key: Key, base: Baseline, results: list[CheckResult], now: float,
                plan: IngestPlan) -> CheckPlan:
    check = CheckPlan(key=key, base=base, sig=base.sig, hits=base.hits, seen=base.seen,
                      last_check=base.last_check)
    # Oldest first, so that within a batch each result is compared with the one before it.
    timed = sorted(((result_time(r, now), r) for r in results), key=lambda tr: tr[0])
    for at, result in timed:
        perf = perfdata_json(result.perfdata)
        sig = result_signature(result, perf)
        if check.sig and sig == check.sig:
            check.hits += 1
            check.seen = max(check.seen, at)
            plan.only_bumped += 1
            row = NewRow(result, at, perf)  # not inserted: only a candidate for `newest`
        elif check.sig and at < check.seen:
            # A late result (re-routed, retried) that differs: history gets it, but it does
            # not replace the newer current result.
            row = NewRow(result, at, perf, last_seen=at)
            check.rows.append(row)
            plan.stored_new += 1
        else:
            if check.current is not None:
                check.rows[check.current].hits = check.hits
                check.rows[check.current].last_seen = check.seen
            elif base.row is not None:
                check.retire = (check.hits, check.seen)
            row = NewRow(result, at, perf, last_seen=at)
            check.rows.append(row)
            check.current = len(check.rows) - 1
            check.sig, check.hits, check.seen = sig, 1, at
            plan.stored_new += 1
        if at >= check.last_check:
            check.last_check = at
            check.newest = row
    return check

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
import operator
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from pydantic import BaseModel, TypeAdapter

from shinha.errors import StorageError
from shinha.wire import (
    CheckResult,
    Event,
    EventEntry,
    HistoryEntry,
    IngestBatch,
    IngestReply,
    PerfDatum,
    ResultEntry,
    StateRow,
)

#: The storage schema this code writes; a database of a higher version is refused.
STORE_SCHEMA_VERSION = 3
#: Lifetime totals kept in the database: results = stored_new + only_bumped.
COUNTERS = ("stored_new", "only_bumped", "duplicates", "results", "events")
#: What `problems=True` lists: WARNING, CRITICAL, UNKNOWN (never OK, never PENDING).
PROBLEM_STATES = (1, 2, 3)

Key = tuple[str, str]

_PERFDATA = TypeAdapter(list[PerfDatum])

#: Columns of the current-state table that carry a StateRow: its fields, in its order.
STATE_COLUMNS = tuple(StateRow.model_fields)
#: Columns of the events table: Event's fields, in its order.
EVENT_COLUMNS = tuple(Event.model_fields)
#: Where a results column is named otherwise than in a ResultEntry: a result's state is its
#: return code.
_RESULT_NAMES = {"state": "return_code"}
#: Columns of the results table that history() shows: the row id, then a ResultEntry's.
RESULT_COLUMNS = ("id", *(_RESULT_NAMES.get(f, f) for f in ResultEntry.model_fields
                          if f != "type"))
#: The columns a result row is inserted with: its check, then what history() shows.
RESULT_INSERT_COLUMNS = ("check_id", *RESULT_COLUMNS[1:])


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
                      limit: int) -> tuple[int, list[HistoryEntry]]:
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
    3: ("ALTER TABLE states ADD COLUMN alert TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE events ADD COLUMN notification_type TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE events ADD COLUMN contact TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE events ADD COLUMN command TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE events ADD COLUMN return_code BIGINT NULL",
        "ALTER TABLE events ADD COLUMN action_id TEXT NOT NULL DEFAULT ''"),
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
    values = list(_state_values(row))
    for i, encode in _STATE_STORED:
        values[i] = encode(values[i])
    return tuple(values)


def state_from_record(record: Sequence[Any]) -> StateRow:
    """Build a StateRow from STATE_COLUMNS values."""
    values = dict(zip(STATE_COLUMNS, record, strict=True))
    for name, decode in _STATE_READ:
        values[name] = decode(values[name])
    return StateRow.model_validate(values)


def first_state(result: CheckResult, at: float, perf_json: str) -> tuple[Any, ...]:
    """Return the STATE_COLUMNS values of a check first known from a result, not a StateRow."""
    rc = result.return_code
    given = {"host": result.host, "service": result.service, "state": rc, "state_type": "HARD",
             "attempt": 1, "last_check": at, "last_state_change": at, "last_hard_state": rc,
             "last_hard_state_change": at, "output": result.output,
             "long_output": result.long_output, "perfdata": perf_json,
             "last_result_id": result.result_id}
    return tuple([given.get(name, default) for name, default in _STATE_DEFAULTS])


def event_params(event: Event) -> tuple[Any, ...]:
    """Return the EVENT_COLUMNS values of an Event."""
    values: tuple[Any, ...] = _event_values(event)
    return values


def result_params(check_id: int, row: NewRow) -> tuple[Any, ...]:
    """Return the RESULT_INSERT_COLUMNS values of a new result row (written out: it runs for
    every result stored; tests/test_store_rows.py checks it against the columns)."""
    r = row.result
    return (check_id, r.result_id, row.time, row.last_seen, row.hits, r.return_code, r.output,
            r.long_output, row.perfdata, r.started, r.latency, int(r.timed_out),
            int(r.passive), r.poller)


def result_entry(record: Sequence[Any]) -> ResultEntry:
    """Build a history entry from RESULT_COLUMNS values."""
    values = dict(zip(RESULT_COLUMNS, record, strict=True))
    del values["id"]
    for name, column in _RESULT_NAMES.items():
        values[name] = values.pop(column)
    values["perfdata"] = json.loads(values["perfdata"])
    return ResultEntry.model_validate(values)


def event_entry(record: Sequence[Any]) -> EventEntry:
    """Build a history entry from EVENT_COLUMNS values."""
    return EventEntry.model_validate(dict(zip(EVENT_COLUMNS, record, strict=True)))


def history_entries(page: Sequence[Sequence[Any]], results: Sequence[Sequence[Any]],
                    events: Sequence[Sequence[Any]],
                    current: tuple[int | None, int, float]) -> list[HistoryEntry]:
    """Build one history page.

    `page` holds (source "r" or "e", row id, time) in page order, `results` the
    RESULT_COLUMNS of its result rows, `events` the row id then EVENT_COLUMNS of its events,
    `current` the check's (res_row, res_hits, res_time).
    """
    res_row, res_hits, res_time = current
    by_result: dict[int, ResultEntry] = {}
    for record in results:
        entry = by_result[record[0]] = result_entry(record)
        if record[0] == res_row:
            # The row a check stands on is counted live in its state row, not in place.
            entry.hits, entry.last_seen = res_hits, res_time
    by_event = {record[0]: event_entry(record[1:]) for record in events}
    return [by_result[i] if src == "r" else by_event[i] for src, i, _ in page]


# --- columns from the models --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ColumnTypes:
    """How one database spells the column type of a model's field, by the field's type."""

    integer: str
    real: str
    boolean: str
    text: str
    #: A Literal: one of a few short words.
    choice: str
    #: A list, stored as JSON text.
    json: str


def column_defs(model: type[BaseModel], spelled: ColumnTypes,
                special: Mapping[str, str] | None = None) -> str:
    """The column definitions of `model`'s fields, in its order: `name TYPE NOT NULL`, the
    type from the field's annotation (no NOT NULL when it admits None), or `name` and its
    entry in `special` (an indexed name's length, a default a migration needs)."""
    special = dict(special or {})
    unknown = set(special) - set(model.model_fields)
    if unknown:
        raise ValueError(f"{model.__name__} has no field {', '.join(sorted(unknown))}")
    defs = []
    for name, info in model.model_fields.items():
        if name in special:
            defs.append(f"{name} {special[name]}")
            continue
        kind, nullable = _kind(info.annotation)
        defs.append(f"{name} {getattr(spelled, kind)}{'' if nullable else ' NOT NULL'}")
    return ", ".join(defs)


def _kind(annotation: Any) -> tuple[str, bool]:
    """The ColumnTypes attribute a field's annotation is stored as, and whether it admits
    None."""
    nullable = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(members) < len(typing.get_args(annotation))
        (annotation,) = members
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "choice", nullable
    if origin is list or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return "json", nullable
    for python, kind in ((bool, "boolean"), (int, "integer"), (float, "real"), (str, "text")):
        if annotation is python:
            return kind, nullable
    raise TypeError(f"no column type for {annotation!r}")


#: How a value goes into a column, or comes out of one.
Convert = Callable[[Any], Any]


def _stored(model: type[BaseModel], columns: tuple[str, ...]
            ) -> tuple[list[tuple[int, Convert]], list[tuple[str, Convert]]]:
    """How the fields not stored as they are go in (by column index) and come out (by
    name): a list as JSON text, a bool as 0 or 1 (neither database has a boolean). Worked out
    once, at import."""
    into: list[tuple[int, Convert]] = []
    out: list[tuple[str, Convert]] = []
    for i, name in enumerate(columns):
        annotation = model.model_fields[name].annotation
        kind, _ = _kind(annotation)
        if kind == "json":
            into.append((i, _json_text(TypeAdapter(annotation or Any))))
            out.append((name, json.loads))
        elif kind == "boolean":
            into.append((i, int))
            out.append((name, bool))
    return into, out


def _json_text(adapter: TypeAdapter[Any]) -> Convert:
    def dump(value: Any) -> str:
        return adapter.dump_json(value).decode()

    return dump


_state_values = operator.attrgetter(*STATE_COLUMNS)
_event_values = operator.attrgetter(*EVENT_COLUMNS)
_STATE_STORED, _STATE_READ = _stored(StateRow, STATE_COLUMNS)
#: (column, stored value) of a StateRow left at its defaults.
_STATE_DEFAULTS = tuple(zip(STATE_COLUMNS, state_params(StateRow(host="")), strict=True))


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

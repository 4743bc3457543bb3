"""The state row declared once: the stores' columns, statements and tables come from the wire
models (StateRow, Event, ResultEntry), and what goes into a row comes back out as the model
it was made from. No database server: SQLite in memory for the tables."""

from __future__ import annotations

import sqlite3

import pytest
from pydantic import BaseModel

from shinha.dataserver.sqlite import COLUMN_TYPES, INSERT_EVENT, INSERT_RESULT, SCHEMA
from shinha.dataserver.store import (
    EVENT_COLUMNS,
    RESULT_COLUMNS,
    RESULT_INSERT_COLUMNS,
    STATE_COLUMNS,
    NewRow,
    column_defs,
    event_entry,
    event_params,
    first_state,
    perfdata_json,
    result_entry,
    result_params,
    state_from_record,
    state_params,
)
from shinha.db import schema
from shinha.wire import (
    CheckResult,
    Downtime,
    Event,
    EventEntry,
    PerfDatum,
    ResultEntry,
    StateRow,
)

PERFDATA = [PerfDatum(label="time", value=0.25, uom="s", warn="1", crit="2", min=0.0),
            PerfDatum(label="'odd label'", value=None)]


def full_row() -> StateRow:
    """A StateRow whose every field differs from its default."""
    return StateRow(host="web1", service="HTTP", state=2, state_type="SOFT", attempt=2,
                    last_check=900.5, last_state_change=840.0, last_hard_state=1,
                    last_hard_state_change=100.0, output="CRITICAL", long_output="a\nb",
                    perfdata=PERFDATA, acknowledged=True, ack_author="alice",
                    ack_comment="on it", ack_sticky=True,
                    downtimes=[Downtime(downtime_id="dt-1", host="web1", service="HTTP",
                                        start=1.0, end=2.0, fixed=False, duration=60)],
                    last_result_id="result-9", updated_at=901.0)


def tables() -> dict[str, list[str]]:
    conn = sqlite3.connect(":memory:")
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    return {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")]
            for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_the_column_lists_are_the_models_fields() -> None:
    assert tuple(StateRow.model_fields) == STATE_COLUMNS
    assert tuple(Event.model_fields) == EVENT_COLUMNS
    # The results table names a result's state after what it is: its return code.
    stored = [{"state": "return_code"}.get(f, f) for f in ResultEntry.model_fields]
    assert list(RESULT_COLUMNS) == ["id", *(c for c in stored if c != "type")]


def test_the_tables_hold_the_models_columns() -> None:
    found = tables()
    assert found["states"][1:1 + len(STATE_COLUMNS)] == list(STATE_COLUMNS)
    assert found["events"] == ["id", *EVENT_COLUMNS]
    assert found["results"] == ["id", *RESULT_INSERT_COLUMNS]


def test_statements_list_the_columns_of_their_rows() -> None:
    assert INSERT_RESULT.count("?") == len(RESULT_INSERT_COLUMNS)
    assert INSERT_EVENT.count("?") == len(EVENT_COLUMNS)
    assert schema.STATE_ROW.count("%s") == len(STATE_COLUMNS)
    assert schema.RESULT_ROW.count("%s") == len(RESULT_INSERT_COLUMNS)
    assert schema.EVENT_ROW.count("%s") == len(EVENT_COLUMNS)


def test_a_state_row_comes_back_as_it_went_in() -> None:
    row = full_row()
    assert all(getattr(row, n) != f.default for n, f in StateRow.model_fields.items()
               if n != "host")
    params = state_params(row)
    assert len(params) == len(STATE_COLUMNS)
    assert state_from_record(params) == row
    # Stored as the databases take them: JSON text, 0/1 for a boolean.
    stored = dict(zip(STATE_COLUMNS, params, strict=True))
    assert stored["perfdata"] == perfdata_json(PERFDATA)
    assert (stored["acknowledged"], stored["ack_sticky"]) == (1, 1)


def test_a_check_first_known_from_a_result() -> None:
    result = CheckResult(result_id="result-1", host="web1", service="HTTP", return_code=2,
                         output="down", long_output="really", perfdata=PERFDATA)
    row = state_from_record(first_state(result, 500.0, perfdata_json(result.perfdata)))
    assert row == StateRow(host="web1", service="HTTP", state=2, state_type="HARD",
                           attempt=1, last_check=500.0, last_state_change=500.0,
                           last_hard_state=2, last_hard_state_change=500.0, output="down",
                           long_output="really", perfdata=PERFDATA,
                           last_result_id="result-1")


def test_an_event_comes_back_as_it_went_in() -> None:
    event = Event(event_id="e-1", time=10.0, host="web1", service="HTTP", kind="ack",
                  state=None, state_type="HARD", attempt=3, output="alice: on it",
                  detail="x")
    assert event_entry(event_params(event)) == EventEntry(**event.model_dump())


def test_a_result_row_comes_back_as_its_history_entry() -> None:
    result = CheckResult(result_id="result-7", host="web1", service="HTTP", return_code=1,
                         output="slow", long_output="details", perfdata=PERFDATA,
                         started=99.0, finished=100.0, latency=0.5, timed_out=True,
                         passive=True, poller="poller-1")
    row = NewRow(result, 100.0, perfdata_json(PERFDATA), hits=3, last_seen=160.0)
    params = result_params(42, row)
    assert len(params) == len(RESULT_INSERT_COLUMNS) and params[0] == 42
    entry = result_entry((7, *params[1:]))  # as history() reads it: the row id first
    assert entry == ResultEntry(result_id="result-7", time=100.0, last_seen=160.0, hits=3,
                                state=1, output="slow", long_output="details",
                                perfdata=PERFDATA, started=99.0, latency=0.5,
                                timed_out=True, passive=True, poller="poller-1")


def test_column_definitions_follow_the_field_types() -> None:
    defs = column_defs(Event, COLUMN_TYPES, {"event_id": "TEXT NOT NULL UNIQUE"})
    assert defs.split(", ")[:2] == ["event_id TEXT NOT NULL UNIQUE", "time REAL NOT NULL"]
    assert "state INTEGER," in defs  # Int64 | None: NULL allowed
    maria = column_defs(StateRow, schema.COLUMN_TYPES, schema.STATE_SPECIAL)
    assert "state_type VARCHAR(16) NOT NULL" in maria  # a Literal
    assert "acknowledged TINYINT NOT NULL" in maria and "perfdata MEDIUMTEXT NOT NULL" in maria


def test_a_special_column_the_model_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match="StateRow has no field ack_by"):
        column_defs(StateRow, COLUMN_TYPES, {"ack_by": "TEXT"})

    class Odd(BaseModel):
        when: dict[str, int]

    with pytest.raises(TypeError, match="no column type"):
        column_defs(Odd, COLUMN_TYPES)

"""What one ingest writes on MariaDB, as statement text: pure CPU work on an IngestPlan
(shinha/dataserver/store.py), which the store runs off the event loop.

The ids taken are written while the plan is made (they do not depend on it). Then three
steps, because each needs ids the one before made: the rows of checks first known from this
batch (INSERT … RETURNING their ids), their result rows (RETURNING theirs), then everything
else as one statement list: superseded rows, current-result bumps, the scheduler's state
rows, events, expired ids, and the counters last, in one of several slots
(shinha/db/schema.py ADD_COUNTERS).
"""

from __future__ import annotations

from typing import Any

from shinha.dataserver.store import (
    IngestPlan,
    Key,
    event_params,
    first_state,
    result_params,
    state_params,
)
from shinha.db import schema
from shinha.db.conn import MAX_STATEMENT, Session, pack, sql_literal

literal = Session.literal
#: What a check shows: output, long output, perfdata (as stored).
Texts = tuple[str, str, str]


def new_checks(plan: IngestPlan) -> list[str]:
    """INSERTs of the checks this batch makes known, returning (id, host, service)."""
    rows = []
    for check in plan.checks:
        if check.base.check_id is None:
            newest = check.newest
            assert newest is not None, "a check's first result is always its newest"
            rows.append(literal(schema.STATE_ROW, first_state(newest.result, newest.time,
                                                              newest.perfdata)))
    return pack(rows, ", ", schema.INSERT_STATES, " RETURNING id, host, service")


def known_checks(plan: IngestPlan) -> dict[Key, int]:
    """The ids of the checks the database already had."""
    return {c.key: c.base.check_id for c in plan.checks if c.base.check_id is not None}


def result_rows(plan: IngestPlan, check_ids: dict[Key, int]) -> list[str]:
    """INSERTs of the new result rows, returning (id, result_id)."""
    rows = [literal(schema.RESULT_ROW, result_params(check_ids[check.key], row))
            for check in plan.checks for row in check.rows]
    return pack(rows, ", ", schema.INSERT_RESULTS, " RETURNING id, result_id")


def ids_taken(result_ids: list[str], now: float) -> list[str]:
    """INSERTs of the result ids stored now (plan.fresh_ids)."""
    when = sql_literal(now)  # this runs on the event loop: the least work per id
    return pack([f"({sql_literal(rid)}, {when})" for rid in result_ids], ", ",
                "INSERT INTO seen_results (result_id, received) VALUES ")


def the_rest(plan: IngestPlan, check_ids: dict[Key, int], row_ids: dict[str, int],
             texts: dict[Key, Texts], now: float, id_retention: float,
             slot: int = 0) -> list[str]:
    """Every other write of the batch (the ids taken aside), in the order SQLite makes
    them. `texts`: the output, long output and perfdata each known check shows now; `slot`:
    which counters rows this transaction adds to."""
    retired: list[tuple[Any, ...]] = []
    bumps: list[tuple[Any, ...]] = []
    light: list[tuple[Any, ...]] = []
    for check in plan.checks:
        if check.retire is not None and check.base.row is not None:
            retired.append((check.base.row, *check.retire))
        res_row = check.base.row
        if check.current is not None:
            res_row = row_ids[check.rows[check.current].result.result_id]
        head = (check_ids[check.key], res_row, check.sig, check.hits, check.seen,
                check.last_check)
        newest = check.newest
        if newest is None:  # every result was late: the texts stay
            light.append((*head, None))
            continue
        shown = (newest.result.output, newest.result.long_output, newest.perfdata)
        # A check first known from this batch shows its newest result's texts already.
        if shown == (texts.get(check.key) if check.base.check_id is not None else shown):
            light.append((*head, newest.result.result_id))
        else:
            bumps.append((*head, *shown, newest.result.result_id))
    statements = joined_update("results", schema.RETIRE_COLUMNS, schema.RETIRE_SET, retired)
    statements += joined_update("states", schema.LIGHT_BUMP_COLUMNS, schema.LIGHT_BUMP_SET,
                                light)
    statements += joined_update("states", schema.BUMP_COLUMNS, schema.BUMP_SET, bumps)
    statements += pack([literal(schema.STATE_ROW, state_params(r)) for r in plan.states],
                       ", ", schema.INSERT_STATES, schema.UPSERT_STATES_TAIL)
    statements += pack([literal(schema.EVENT_ROW, event_params(e)) for e in plan.events],
                       ", ", schema.INSERT_EVENTS)
    if plan.fresh_ids:
        # Forget expired ids as fast as new ones come (twice, to catch up), as SQLite does.
        statements.append(literal("DELETE FROM seen_results WHERE received < %s "
                                  "ORDER BY received LIMIT %s",
                                  (now - id_retention, 2 * len(plan.fresh_ids))))
    # Last: the counters rows of one slot of the counter (see schema.ADD_COUNTERS).
    counted = [literal("(%s, %s)", (f"{name}@{slot}", n))
               for name, n in sorted(plan.counter_deltas().items()) if n]
    if counted:
        statements.append(schema.ADD_COUNTERS + ", ".join(counted) + schema.ADD_COUNTERS_TAIL)
    return statements


def joined_update(table: str, columns: tuple[str, ...], assignments: str,
                  rows: list[tuple[Any, ...]]) -> list[str]:
    """UPDATEs of `table` by id (each row's first value), as few as MAX_STATEMENT allows."""
    head, template, tail = schema.joined_update(table, columns, assignments)
    statements = []
    start = size = 0
    literals = [literal(template, row) for row in rows]
    for end, text in enumerate(literals, 1):
        size += len(text) + 2
        if size > MAX_STATEMENT or end == len(literals):
            ids = ", ".join(str(int(row[0])) for row in rows[start:end])
            statements.append(f"{head}{', '.join(literals[start:end])}{tail}{ids})")
            start, size = end, 0
    return statements

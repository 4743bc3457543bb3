"""`shinha db rejoin NODE`: bring a diverged node back, losing nothing it held.

A node diverges when it committed transactions the primary never got: an old primary that
acknowledged results in its last moments, before they reached a replica (asynchronous
replication), then was failed over. Those results were acknowledged to a scheduler, which
dropped them from its outbox: they exist on that node only.

Rejoining salvages them first: the result ids the node holds and the primary lacks (the
newest first, until well past the point where the two agree), and their result rows and
events, are ingested into the primary through the data-server's store — idempotent by id and
fenced by the primary's database epoch, as any data-server write. Then the node is cloned
from the primary and replicates again (as `shinha db init` makes a replica).

A result that only bumped a row on the node (it repeated that check's current result) has no
row of its own there: it is counted in the report, not re-created. Its check's state and
history are the row's.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from pydantic import ValidationError

from shinha.dataserver.mariadb import MariadbStore
from shinha.db import admin
from shinha.db.conn import Session
from shinha.db.fence import read_fence
from shinha.db.options import MariadbOptions, Node
from shinha.db.probe import admin_session, read_status
from shinha.errors import DatabaseError
from shinha.wire import CheckResult, Event, IngestBatch, PerfDatum

log = logging.getLogger(__name__)

#: Ids compared per round trip, newest first.
CHUNK = 2000
#: Past the newest ids both nodes hold, how much older the scan still looks (seconds):
#: concurrent ingests take their time before they commit, so ids are not in exact order.
MARGIN = 120.0
#: Results per salvage ingest.
BATCH = 1000


@dataclass(frozen=True, slots=True)
class RejoinReport:
    node: Node
    primary: Node
    epoch: int
    salvaged_results: int
    salvaged_events: int
    bumps_not_recreated: int

    def lines(self) -> list[str]:
        return [f"salvaged from {self.node.name} into {self.primary.name} (database epoch "
                f"{self.epoch}): {self.salvaged_results} results, {self.salvaged_events} "
                "events",
                f"results that only bumped a row there (not re-created): "
                f"{self.bumps_not_recreated}",
                f"{self.node.name} is a replica of {self.primary.name} again"]


async def rejoin(options: MariadbOptions, node: Node, primary: Node, *,
                 timeout: float = 600.0) -> RejoinReport:
    """Salvage what `node` holds and `primary` lacks into `primary`, then resync `node`."""
    if node == primary:
        raise DatabaseError(node.name, "is the primary: only another node can rejoin it")
    epoch = await read_fence(primary, options)
    async with admin_session(options, node) as s, admin_session(options, primary) as p:
        st = await read_status(s, options.database)
        head = await read_status(p, options.database)
        if st.cluster_id is None or st.cluster_id != head.cluster_id:
            raise DatabaseError(node.name, f"is not a node of {primary.name}'s cluster (cluster "
                                f"{st.cluster_id or 'unknown'}): rejoin only salvages a node "
                                "of the same cluster; `shinha db init --force` replaces it")
        # Nothing writes to it while it is read: read_only first, as for any returning node.
        await s.execute("SET GLOBAL read_only = 1")
        missing = await _missing(s, p, options.database, "seen_results", "result_id",
                                 "received", "result_id")
        results = await _result_rows(s, options.database, missing)
        missing_events = await _missing(s, p, options.database, "events", "event_id", "time",
                                        "id")
        events = await _event_rows(s, options.database, missing_events)
    if results or events:
        store = MariadbStore(options)
        store.set_primary(primary, epoch)
        async with store:
            for start in range(0, max(len(results), len(events)), BATCH):
                await store.ingest(IngestBatch(scheduler=f"rejoin:{node.name}",
                                               results=results[start:start + BATCH],
                                               events=events[start:start + BATCH]))
    bumps = len(missing) - len(results)
    if results or events or bumps:
        log.warning("salvaged %d results and %d events from %s into %s (%d bumps not "
                    "re-created)", len(results), len(events), node.name, primary.name, bumps)
    await admin.clone_replica(options, primary, node, timeout)
    log.warning("database node %s rejoined as a replica of %s", node.name, primary.name)
    return RejoinReport(node=node, primary=primary, epoch=epoch,
                        salvaged_results=len(results), salvaged_events=len(events),
                        bumps_not_recreated=bumps)


async def _missing(s: Session, p: Session, database: str, table: str, key: str,
                   when: str, tie: str) -> list[str]:
    """The `key`s of `table` that the node holds and the primary lacks: newest first (by
    `when`, then `tie`, a unique column), until a chunk both hold entirely and MARGIN
    seconds older than that."""
    missing: list[str] = []
    stop_below: float | None = None
    after: tuple[float, object] | None = None
    while True:
        where = f"WHERE {when} < %s OR ({when} = %s AND {tie} < %s)" if after else ""
        args = (after[0], after[0], after[1]) if after else ()
        rows = await s.fetchall(f"SELECT {key}, {when}, {tie} FROM `{database}`.{table} "
                                f"{where} ORDER BY {when} DESC, {tie} DESC LIMIT {CHUNK}",
                                args)
        if not rows:
            return missing
        ids = [str(r[0]) for r in rows]
        marks = ", ".join(["%s"] * len(ids))
        held = {str(r[0]) for r in await p.fetchall(
            f"SELECT {key} FROM `{database}`.{table} WHERE {key} IN ({marks})", ids)}
        missing += [i for i in ids if i not in held]
        if stop_below is None and len(held) == len(ids):
            stop_below = float(rows[0][1]) - MARGIN
        after = (float(rows[-1][1]), rows[-1][2])
        if stop_below is not None and after[0] < stop_below:
            return missing


async def _result_rows(s: Session, database: str, ids: list[str]) -> list[CheckResult]:
    """The result rows of `ids` on the node, as the results a scheduler sent."""
    found: list[CheckResult] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        marks = ", ".join(["%s"] * len(chunk))
        rows = await s.fetchall(
            f"SELECT r.result_id, s.host, s.service, r.time, r.return_code, r.output, "
            f"r.long_output, r.perfdata, r.started, r.latency, r.timed_out, r.passive, "
            f"r.poller FROM `{database}`.results r JOIN `{database}`.states s "
            f"ON s.id = r.check_id WHERE r.result_id IN ({marks})", chunk)
        for (rid, host, service, at, rc, output, long_output, perfdata, started, latency,
             timed_out, passive, poller) in rows:
            try:
                found.append(CheckResult(
                    result_id=rid, host=host, service=service, return_code=rc, output=output,
                    long_output=long_output,
                    perfdata=[PerfDatum.model_validate(p) for p in json.loads(perfdata)],
                    started=started, finished=at, latency=latency, timed_out=bool(timed_out),
                    passive=bool(passive), poller=poller))
            except (ValueError, ValidationError) as exc:
                raise DatabaseError(s.node.name, f"result {rid} cannot be salvaged: {exc}") \
                    from None
    return found


async def _event_rows(s: Session, database: str, ids: list[str]) -> list[Event]:
    found: list[Event] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        marks = ", ".join(["%s"] * len(chunk))
        rows = await s.fetchall(
            f"SELECT event_id, time, host, service, kind, state, state_type, attempt, "
            f"output, detail FROM `{database}`.events WHERE event_id IN ({marks})", chunk)
        for (eid, at, host, service, kind, state, state_type, attempt, output,
             detail) in rows:
            try:
                found.append(Event(event_id=eid, time=at, host=host, service=service,
                                   kind=kind, state=state, state_type=state_type,
                                   attempt=attempt, output=output, detail=detail))
            except ValidationError as exc:
                raise DatabaseError(s.node.name, f"event {eid} cannot be salvaged: {exc}") \
                    from None
    return found

"""The poller daemon: pulls the checks it owns from every scheduler (long-poll), runs them on
its executor, and returns the results until a scheduler acknowledges each one."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import uuid

from aiohttp import web

from shinha.config.daemons import Poller
from shinha.daemon.base import Daemon, DaemonContext
from shinha.daemon.election import Election, election_peers
from shinha.daemon.journal import Journal, RawJSON
from shinha.errors import JournalError, PeerError
from shinha.http.client import peers_gone
from shinha.poller.executor import Executor
from shinha.wire import (
    SCHEMA_VERSION,
    CheckJob,
    CheckResult,
    DaemonRef,
    Dispatch,
    PollerJournalItem,
    PollerOwns,
    PullReply,
    PullRequest,
    ResultAck,
)

log = logging.getLogger(__name__)
RETURN_BATCH = 1_000
#: Result batches in flight to one scheduler at once: each waits for the data tier's durable
#: write, so one at a time capped the return at RETURN_BATCH per round trip (~3,300/s).
RETURN_IN_FLIGHT = 16
LONG_POLL = 1.0
#: After a pull that brought less than half of what it asked for, wait this long before the
#: next one so that checks gather: a pull per few checks cost most of the poller's and the
#: scheduler's CPU at a steady load. It bounds the latency this adds.
PULL_GATHER = 0.05


class PollerDaemon(Daemon):
    """Runs checks for the schedulers of its realm."""

    role = "poller"

    def __init__(self, ctx: DaemonContext) -> None:
        super().__init__(ctx)
        link = ctx.link
        assert isinstance(link, Poller)
        self.poller_link = link
        cpus = os.cpu_count() or 1
        workers = link.max_workers or link.min_workers or cpus
        self.executor = Executor(workers=workers, per_worker=link.processes_by_worker,
                                 max_output=ctx.config.main.max_plugins_output_length,
                                 poller=link.name, clock=ctx.clock)
        #: Results not yet acknowledged, with the scheduler they go to.
        #: Each with its JSON (what the journal holds and the result batches are made of).
        self.unacked: dict[str, tuple[CheckResult, str, str]] = {}
        #: Those of them not in a request now, oldest first; the requests by scheduler.
        self.unsent: dict[str, None] = {}
        self.sends: dict[str, set[asyncio.Task[bool]]] = {}
        self.return_failed = False
        #: Why sends failed since the last round began (one error per failed request).
        self.return_errors: list[PeerError] = []
        self.returned = asyncio.Event()
        self.capacity_freed = asyncio.Event()
        self.pull_loops: dict[str, asyncio.Task[None]] = {}
        self.running = 0
        self.unreachable: set[str] = set()
        self.instance = uuid.uuid4().hex
        pollers = {n: p for n, p in ctx.config.daemons.get("poller", {}).items()}
        self.election = Election(link, election_peers(link, pollers, ctx.config.default_realm),
                                 self.client, self.clock, self.secret)
        self.journal = Journal(self.state.path / "results.jsonl")
        #: Results written to the journal but not yet fsynced.
        self.unsynced: list[str] = []

    async def on_prepare(self) -> None:
        # Results not yet acknowledged when the poller last stopped (or died) go out again.
        pending = self.journal.open()
        for rid, entry in self.journal.items.items():
            item = PollerJournalItem.model_validate(entry)
            result = item.result
            result.poller = self.name
            self.unacked[rid] = (result, item.scheduler, result.model_dump_json())
            self.unsent[rid] = None
        if pending:
            log.info("poller %s: %d unacknowledged results from before the restart", self.name,
                     pending)
        await self.executor.start()

    def add_routes(self, app: web.Application) -> None:
        self.election.add_routes(app)

    def election_state(self) -> tuple[str, int, list[str]]:
        view = self.election.view()
        return view.master, view.term, view.down

    def covering(self) -> tuple[list[str], list[tuple[str, int]]]:
        """The downed pollers whose checks this poller takes now, and the spread set."""
        down = self.election.down()
        if not down:
            return [], []
        if self.poller_link.takeover == "spread":
            pollers = self.config.daemons.get("poller", {})
            alive = [(n, p.weight if isinstance(p := pollers[n], Poller) else 1)
                     for n in self.election.alive()]
            return down, alive
        return (down, []) if self.election.is_master() else ([], [])

    async def on_start(self) -> None:
        self.loops.start("return", self._return_loop)
        self.loops.start("election", self.election.run)

    async def on_stop(self) -> None:
        for task in self.pull_loops.values():
            task.cancel()
        # Finished results get a last chance to reach their scheduler, until the stop stage's
        # deadline; what is left stays in the journal and goes out at the next start. Checks
        # still running are not waited for: their schedulers hand them out again.
        delay = 0.05
        while self.unacked:
            before = len(self.unacked)
            if not await self._return_once():
                if self.return_errors and peers_gone(self.return_errors):
                    log.info("poller %s: no scheduler takes results now (stopping or not "
                             "listening): %d results kept in the journal", self.name,
                             len(self.unacked))
                    break
                await self.clock.sleep(delay)
                delay = min(delay * 2, 0.5)
            elif len(self.unacked) == before:
                break  # none of them has a scheduler to go to now

    def drain_pending(self) -> list[str]:
        return [f"{len(self.unacked)} results not yet acknowledged (kept in the journal)"] \
            if self.unacked else []

    async def on_closed(self) -> None:
        try:
            await self.executor.stop(deadline=self.stop_time_left())
        finally:
            self.journal.close()

    def owns(self) -> PollerOwns:
        covering, _ = self.covering()
        return PollerOwns(election=self.election.view(), covering=covering,
                          schedulers=sorted(self.pull_loops), running=self.running,
                          unacked=len(self.unacked), capacity=self.executor.capacity,
                          tags=list(self.poller_link.poller_tags))

    async def apply_dispatch(self, dispatch: Dispatch) -> bool:
        changed = await super().apply_dispatch(dispatch)
        self.returned.set()  # owners may have changed: send pending results now, no backoff
        wanted = {s.name: s for s in self.topology.schedulers}
        for name in list(self.pull_loops):
            if name not in wanted:
                self.pull_loops.pop(name).cancel()
        for name, ref in wanted.items():
            if name not in self.pull_loops:
                self.pull_loops[name] = self.loops.start(f"pull-{name}",
                                                         functools.partial(self._pull_loop, ref))
        return changed

    # --- pulling and running ------------------------------------------------------------------

    async def _pull_loop(self, scheduler: DaemonRef) -> None:
        delay = 0.2
        tags = list(self.poller_link.poller_tags)
        while True:
            capacity = self.executor.capacity
            if capacity <= 0:
                self.capacity_freed.clear()
                await self.clock.wait(self.capacity_freed, 0.5)
                continue
            covering, spread = self.covering()
            request = PullRequest(poller=self.name, instance=self.instance, tags=tags,
                                  covering=covering, spread=spread,
                                  silence=2.0 * self.election.threshold,
                                  max_jobs=min(capacity, 512),
                                  wait=min(LONG_POLL, self.election.threshold / 2))
            try:
                reply = await self.client.call(scheduler, "POST", "/checks/pull", request,
                                               PullReply, LONG_POLL + self.link.timeout)
            except PeerError as exc:
                if scheduler.name not in self.unreachable:
                    log.warning("poller %s: cannot pull from scheduler %s: %s", self.name,
                                scheduler.name, exc)
                    self.unreachable.add(scheduler.name)
                await self.clock.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if scheduler.name in self.unreachable:
                log.warning("poller %s: scheduler %s reachable again", self.name,
                            scheduler.name)
                self.unreachable.discard(scheduler.name)
            delay = 0.2
            for job in reply.jobs:
                self.running += 1
                self.tasks.spawn(self._run(job, scheduler.name), f"check-{job.job_id[:8]}")
            if reply.jobs and len(reply.jobs) < request.max_jobs // 2:
                await self.clock.sleep(PULL_GATHER)

    async def _run(self, job: CheckJob, scheduler: str) -> None:
        try:
            result, raw = await self.executor.run_with_json(job)
        finally:
            self.running -= 1
            self.capacity_freed.set()
        if self.journal.closed:
            return  # finished while the poller stopped: its scheduler re-queues it
        if raw is None or result.poller != self.name:
            result.poller = self.name
            raw = result.model_dump_json().encode()
        text = raw.decode()
        rid = result.result_id
        self.unacked[rid] = (result, scheduler, text)
        self.unsent[rid] = None
        self.journal.put(rid, journal_item(text, scheduler))
        self.unsynced.append(result.result_id)
        self.metrics.inc("checks_run_total", help_text="Checks run.",
                         state=str(result.return_code))
        if len(self.unsent) >= RETURN_BATCH:
            self.returned.set()

    # --- returning ----------------------------------------------------------------------------

    async def _return_loop(self) -> None:
        delay = 0.05
        while True:
            await self.clock.wait(self.returned, delay)
            self.returned.clear()
            await self._sync_journal()
            self.return_failed = False
            self.return_errors = []
            self._launch_returns()
            delay = min(max(delay * 2, 0.2), 2.0) if self.return_failed else 0.05

    async def _sync_journal(self) -> None:
        synced, self.unsynced = self.unsynced, []
        try:
            await self.journal.sync()
        except JournalError:
            # Logged once by the journal. The results are still sent from memory; only a
            # crash of this poller before their acknowledgement would lose them (their
            # checks are then orphans the scheduler re-queues).
            return
        if synced:
            # From here on these results survive a crash of this poller: the audit trail the
            # "nothing lost" tests compare with the data tier.
            log.debug("results durable: %s", " ".join(synced))

    async def _return_once(self) -> bool:
        """Send every unacknowledged result and wait for the answers; True if nothing
        failed (the last round when the poller stops)."""
        await self._sync_journal()
        self.return_failed = False
        self.return_errors = []
        self._launch_returns()
        pending = [t for sends in self.sends.values() for t in sends]
        if pending:
            await asyncio.wait(pending)
        return not self.return_failed

    def _launch_returns(self) -> None:
        """Send the unacknowledged results not already on their way, oldest first, in
        batches, up to RETURN_IN_FLIGHT requests per scheduler. Looks at no more results
        than there is room for: when the schedulers are busy, thousands may wait."""
        if not self.unsent:
            return
        refs = {s.name: s for s in self.topology.schedulers}
        room = {name: (RETURN_IN_FLIGHT - len(self.sends.get(name, ()))) * RETURN_BATCH
                for name in refs}
        left = sum(r for r in room.values() if r > 0)
        if left <= 0:
            return
        by_scheduler: dict[str, list[tuple[str, str]]] = {}
        owners = self.topology.host_owner
        unacked = self.unacked
        gone: list[str] = []
        for rid in self.unsent:
            entry = unacked.get(rid)
            if entry is None:
                gone.append(rid)
                continue
            # Send to whoever owns the host now (a spare took the part, or it came back).
            result, scheduler, text = entry
            target = owners.get(result.host, scheduler)
            if room.get(target, 0) <= 0:
                continue
            room[target] -= 1
            by_scheduler.setdefault(target, []).append((rid, text))
            gone.append(rid)
            left -= 1
            if not left:
                break
        for rid in gone:
            del self.unsent[rid]
        for name, results in by_scheduler.items():
            sends = self.sends.setdefault(name, set())
            for start in range(0, len(results), RETURN_BATCH):
                task = self.tasks.spawn(self._send(refs[name], results[start:start + RETURN_BATCH]),
                                        f"return-{name}")
                sends.add(task)
                task.add_done_callback(sends.discard)

    async def _send(self, scheduler: DaemonRef, results: list[tuple[str, str]]) -> bool:
        """Send (result id, result JSON) pairs as one ResultBatch, assembled from the JSON
        the results already have."""
        body = result_batch(self.name, [text for _, text in results])
        try:
            ack = await self.client.call(scheduler, "POST", "/checks/results", body,
                                         ResultAck, float(self.link.data_timeout))
        except PeerError as exc:
            log.debug("poller %s: returning results to %s failed: %s", self.name,
                      scheduler.name, exc)
            self.return_failed = True
            self.return_errors.append(exc)
            return False
        finally:
            self._unsend(results)
        for rid in ack.acked:
            if self.unacked.pop(rid, None) is not None:
                self.unsent.pop(rid, None)
                self.journal.done(rid)
        for rid, owner in ack.rerouted.items():
            entry = self.unacked.get(rid)
            if entry is not None:
                self.unacked[rid] = (entry[0], owner, entry[2])
        if ack.retry:
            self.return_failed = True
        elif len(self.unsent) >= RETURN_BATCH // 4:
            self.returned.set()  # a slot is free and results are waiting for one
        return not ack.retry

    def _unsend(self, results: list[tuple[str, str]]) -> None:
        """A request ended: what it carried is to be sent again unless acknowledged."""
        unacked, unsent = self.unacked, self.unsent
        for rid, _ in results:
            if rid in unacked:
                unsent[rid] = None


# --- bodies made from the JSON the results already have ------------------------------------


def journal_item(result_json: str, scheduler: str) -> RawJSON:
    """The PollerJournalItem of a result, from its JSON (tests/test_wire.py parses it)."""
    return RawJSON(f'{{"result":{result_json},"scheduler":{json.dumps(scheduler)}}}')


def result_batch(poller: str, results_json: list[str]) -> bytes:
    """The ResultBatch of results, from their JSON (tests/test_wire.py parses it)."""
    return (f'{{"schema_version":{SCHEMA_VERSION},"poller":{json.dumps(poller)},'
            f'"results":[{",".join(results_json)}]}}').encode()

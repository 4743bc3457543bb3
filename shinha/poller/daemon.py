"""The poller daemon: pulls the checks it owns from every scheduler (long-poll), runs them on
its executor, and returns the results until a scheduler acknowledges each one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from typing import Any

from aiohttp import web

from shinha.config.daemons import Poller
from shinha.daemon.base import Daemon, DaemonContext
from shinha.daemon.election import Election, election_peers
from shinha.daemon.journal import Journal
from shinha.errors import PeerError
from shinha.poller.executor import Executor
from shinha.wire import (
    CheckJob,
    CheckResult,
    DaemonRef,
    Dispatch,
    PullReply,
    PullRequest,
    ResultAck,
    ResultBatch,
)

log = logging.getLogger(__name__)
RETURN_BATCH = 1_000
LONG_POLL = 1.0


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
                                 max_output=ctx.config.main.max_plugins_output_length)
        #: Results not yet acknowledged, with the scheduler they go to.
        self.unacked: dict[str, tuple[CheckResult, str]] = {}
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
            self.unacked[rid] = (CheckResult.model_validate(entry["result"]),
                                 entry["scheduler"])
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
        self.tasks.spawn(self._return_loop(), "return")
        self.tasks.spawn(self.election.run(), "election")

    async def on_stop(self) -> None:
        for task in self.pull_loops.values():
            task.cancel()
        # Give running checks' results a last chance to reach their scheduler.
        for _ in range(10):
            if not self.unacked:
                break
            await self._return_once()
            if self.unacked:
                await asyncio.sleep(0.2)

    async def on_closed(self) -> None:
        await self.executor.stop(deadline=5.0)
        self.journal.close()

    def owns(self) -> dict[str, Any]:
        covering, _ = self.covering()
        view = self.election.view()
        return {"election": view.model_dump(exclude={"schema_version"}),
                "covering": covering,
                "schedulers": sorted(self.pull_loops), "running": self.running,
                "unacked": len(self.unacked), "capacity": self.executor.capacity,
                "tags": list(self.poller_link.poller_tags)}

    async def apply_dispatch(self, dispatch: Dispatch) -> bool:
        changed = await super().apply_dispatch(dispatch)
        self.returned.set()  # owners may have changed: send pending results now, no backoff
        wanted = {s.name: s for s in self.topology.schedulers}
        for name in list(self.pull_loops):
            if name not in wanted:
                self.pull_loops.pop(name).cancel()
        for name, ref in wanted.items():
            if name not in self.pull_loops:
                self.pull_loops[name] = self.tasks.spawn(self._pull_loop(ref), f"pull-{name}")
        return changed

    # --- pulling and running ------------------------------------------------------------------

    async def _pull_loop(self, scheduler: DaemonRef) -> None:
        delay = 0.2
        tags = list(self.poller_link.poller_tags)
        while True:
            capacity = self.executor.capacity
            if capacity <= 0:
                self.capacity_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.capacity_freed.wait(), timeout=0.5)
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
                await asyncio.sleep(delay)
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

    async def _run(self, job: CheckJob, scheduler: str) -> None:
        try:
            result = await self.executor.run(job)
        finally:
            self.running -= 1
            self.capacity_freed.set()
        result.poller = self.name
        self.unacked[result.result_id] = (result, scheduler)
        self.journal.put(result.result_id, {"result": result.model_dump(mode="json"),
                                            "scheduler": scheduler})
        self.unsynced.append(result.result_id)
        self.metrics.inc("checks_run_total", help_text="Checks run.",
                         state=str(result.return_code))
        if len(self.unacked) >= RETURN_BATCH:
            self.returned.set()

    # --- returning ----------------------------------------------------------------------------

    async def _return_loop(self) -> None:
        delay = 0.05
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.returned.wait(), timeout=delay)
            self.returned.clear()
            await self._sync_journal()
            ok = await self._return_once()
            await self._sync_journal()
            delay = 0.05 if ok else min(max(delay * 2, 0.2), 2.0)

    async def _sync_journal(self) -> None:
        synced, self.unsynced = self.unsynced, []
        await self.journal.sync()
        if synced:
            # From here on these results survive a crash of this poller: the audit trail the
            # "nothing lost" tests compare with the data tier.
            log.debug("results durable: %s", " ".join(synced))

    async def _return_once(self) -> bool:
        """Send unacknowledged results to their schedulers; True if nothing failed."""
        if not self.unacked:
            return True
        by_scheduler: dict[str, list[CheckResult]] = {}
        owners = self.topology.host_owner
        for result, scheduler in list(self.unacked.values()):
            # Send to whoever owns the host now (a spare took the part, or it came back).
            target = owners.get(result.host, scheduler)
            by_scheduler.setdefault(target, []).append(result)
        refs = {s.name: s for s in self.topology.schedulers}
        outcomes = await asyncio.gather(*(
            self._send(refs[name], results[:RETURN_BATCH])
            for name, results in by_scheduler.items() if name in refs))
        return all(outcomes)

    async def _send(self, scheduler: DaemonRef, results: list[CheckResult]) -> bool:
        try:
            ack = await self.client.call(scheduler, "POST", "/checks/results",
                                         ResultBatch(poller=self.name, results=results),
                                         ResultAck, float(self.link.data_timeout))
        except PeerError as exc:
            log.debug("poller %s: returning results to %s failed: %s", self.name,
                      scheduler.name, exc)
            return False
        for rid in ack.acked:
            self.unacked.pop(rid, None)
            self.journal.done(rid)
        for rid, owner in ack.rerouted.items():
            entry = self.unacked.get(rid)
            if entry is not None:
                self.unacked[rid] = (entry[0], owner)
        return not ack.retry

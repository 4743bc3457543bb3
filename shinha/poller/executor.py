"""The poller's check executor: plugins in worker processes, native checks on this loop.

At most `workers × per_worker` checks run at once. A plugin job goes to the least busy worker
(shinha.poller.workers) as a frame on its socketpair; native checks (tcp, http) run here, in
tasks the executor owns. A worker that dies is replaced; the plugins it was running are killed
(their process groups) and their jobs end with an UNKNOWN "(worker died)" result. They are not
re-run: the job may be what killed the worker, and the scheduler decides about retries.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import cast

import aiohttp
from pydantic import ValidationError

from shinha.errors import DaemonError, ExecutorClosed
from shinha.poller import workers as protocol
from shinha.poller.native import run_native
from shinha.poller.plugin import UNKNOWN, make_result
from shinha.wire import CheckJob, CheckResult

log = logging.getLogger(__name__)
#: Seconds a new worker has to import and say it is ready.
WORKER_START_TIMEOUT = 30.0
#: A worker that dies sooner than this after starting is replaced only after a back-off.
WORKER_MIN_LIFE = 5.0
WORKER_BACKOFF_MAX = 30.0


@dataclass
class _Pending:
    """A job sent to a worker: who waits for it, and its plugin's process group once known."""

    job: CheckJob
    future: asyncio.Future[CheckResult]
    pgid: int | None = None


class _WorkerLink(asyncio.Protocol):
    """The main process's end of one worker: its process, socket and jobs in flight."""

    def __init__(self, executor: Executor, index: int, process: asyncio.subprocess.Process
                 ) -> None:
        self.executor = executor
        self.index = index
        self.process = process
        self.started_at = time.monotonic()
        self.inflight: dict[int, _Pending] = {}
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.alive = False
        self.transport: asyncio.Transport | None = None
        self._decoder = protocol.FrameDecoder()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def send(self, seq: int, job: CheckJob) -> asyncio.Future[CheckResult]:
        future: asyncio.Future[CheckResult] = asyncio.get_running_loop().create_future()
        self.inflight[seq] = _Pending(job, future)
        assert self.transport is not None
        frame = protocol.encode_frame(protocol.JOB, seq, job.model_dump_json().encode())
        self.transport.write(frame)
        return future

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._decoder.feed(data)
        except protocol.FrameError as exc:
            log.error("poller worker %d broke the protocol: %s", self.index, exc)
            self.kill()
            return
        for kind, seq, payload in frames:
            if kind == protocol.STARTED:
                pending = self.inflight.get(seq)
                if pending is not None:
                    pending.pgid = int(payload)
            elif kind in (protocol.RESULT, protocol.FAILED):
                self._finish(seq, kind, payload)
            elif kind == protocol.READY and not self.ready.done():
                self.alive = True
                self.ready.set_result(None)

    def _finish(self, seq: int, kind: int, payload: bytes) -> None:
        pending = self.inflight.pop(seq, None)
        if pending is None:
            return
        result = self._result(pending.job, kind, payload)
        if not pending.future.done():
            pending.future.set_result(result)
        self.executor._slot_freed()

    @staticmethod
    def _result(job: CheckJob, kind: int, payload: bytes) -> CheckResult:
        """Return the result a RESULT frame holds, or an UNKNOWN one saying what went wrong."""
        if kind == protocol.RESULT:
            try:
                return CheckResult.model_validate_json(payload)
            except ValidationError as exc:  # a worker of another version, or a bug
                reason = f"bad result: {exc}"
        else:
            reason = payload.decode("utf-8", "replace")
        return make_result(job, time.time(), UNKNOWN,
                           f"(poller worker could not run the check: {reason[:500]})")

    def connection_lost(self, exc: Exception | None) -> None:
        self.executor._worker_lost(self)

    def kill(self) -> None:
        """Kill the worker process and every plugin group it reported."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.kill_plugins()
        if self.transport is not None:
            self.transport.close()

    def kill_plugins(self) -> None:
        for pending in self.inflight.values():
            if pending.pgid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pending.pgid, signal.SIGKILL)


class Executor:
    """Run check jobs: plugins in worker processes, native checks in-process."""

    def __init__(self, workers: int, per_worker: int, max_output: int) -> None:
        if workers < 1 or per_worker < 1 or max_output < 1:
            raise ValueError("workers, per_worker and max_output must be at least 1")
        self.workers = workers
        self.per_worker = per_worker
        self.max_output = max_output
        self._links: list[_WorkerLink] = []
        self._seq = itertools.count(1)
        self._native: set[asyncio.Task[CheckResult]] = set()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._replacing: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._started = False
        self._closing = False
        #: Workers started in all, replacements included (for status and tests).
        self.workers_started = 0

    async def start(self) -> None:
        """Start the worker processes and wait until each is ready."""
        if self._started:
            return
        self._started = True
        self._session = aiohttp.ClientSession(
            # A fresh connection per check: keep-alive would hide the connect time we measure.
            connector=aiohttp.TCPConnector(force_close=True, limit=0),
            timeout=aiohttp.ClientTimeout(total=None))
        outcomes = await asyncio.gather(*(self._start_worker(i) for i in range(self.workers)),
                                        return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            await self.stop(1.0)
            raise errors[0]
        self._slot_freed(self._limit())

    @property
    def capacity(self) -> int:
        """Return how many more jobs can start now."""
        if not self._started or self._closing:
            return 0
        return max(0, self._limit() - self._running())

    @property
    def worker_pids(self) -> list[int]:
        """Return the pids of the worker processes alive now."""
        return [link.process.pid for link in self._links if link.alive]

    async def run(self, job: CheckJob) -> CheckResult:
        """Run job and return its result; wait for a free slot first if all are taken.

        Never raises for what a plugin or a checked service does; raises ExecutorClosed if
        the executor is stopped (or stops) before the job has a result.
        """
        await self._acquire()
        if job.module_type == "fork":
            link = min((lk for lk in self._links if lk.alive), key=lambda lk: len(lk.inflight))
            future = link.send(next(self._seq) & 0xFFFFFFFF, job)
            return await future
        assert self._session is not None
        task = asyncio.get_running_loop().create_task(run_native(job, self._session),
                                                      name=f"native-{job.job_id[:12]}")
        self._native.add(task)
        task.add_done_callback(self._native_done)
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._closing and (current is None or not current.cancelling()):
                raise ExecutorClosed("the poller is stopping: check not run") from None
            raise

    async def stop(self, deadline: float) -> None:
        """Stop the workers within deadline seconds; kill the plugins still running."""
        self._closing = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ExecutorClosed("the poller is stopping"))
        for task in [*self._replacing, *self._native]:
            task.cancel()
        links = list(self._links)
        for link in links:
            link.alive = False
            # Closing the socket is the stop order: the worker kills its plugins and exits.
            if link.transport is not None:
                link.transport.close()
        waits = [asyncio.ensure_future(link.process.wait()) for link in links]
        if waits:
            _, late = await asyncio.wait(waits, timeout=deadline)
            for link, wait in zip(links, waits, strict=True):
                if wait in late:
                    log.warning("poller worker %d did not stop in %.1f s: killing it",
                                link.index, deadline)
                    link.kill()
            if late:
                await asyncio.wait(late, timeout=2.0)
        for link in links:
            self._fail_inflight(link, ExecutorClosed("the poller is stopping: check not done"))
        leftovers = [*self._replacing, *self._native]
        if leftovers:
            await asyncio.wait(leftovers, timeout=1.0)
        if self._session is not None:
            await self._session.close()

    # --- slots -----------------------------------------------------------------------------

    def _limit(self) -> int:
        return self.per_worker * sum(1 for link in self._links if link.alive)

    def _running(self) -> int:
        return len(self._native) + sum(len(link.inflight) for link in self._links if link.alive)

    async def _acquire(self) -> None:
        """Wait until a job may start; first come, first served."""
        if not self._started or self._closing:
            raise ExecutorClosed("the executor is not running")
        # Every fork job counts against a live worker, so room under the limit means some
        # live worker has a free slot.
        first = True
        while self._waiters or self._running() >= self._limit():
            waiter = asyncio.get_running_loop().create_future()
            if first:
                self._waiters.append(waiter)
            else:
                self._waiters.appendleft(waiter)  # woken but beaten to it: keep its place
            first = False
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._slot_freed()  # pass the wake-up on
                raise
            if self._running() < self._limit():
                return

    def _slot_freed(self, count: int = 1) -> None:
        for _ in range(count):
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    break

    def _native_done(self, task: asyncio.Task[CheckResult]) -> None:
        self._native.discard(task)
        self._slot_freed()

    # --- workers ---------------------------------------------------------------------------

    async def _start_worker(self, index: int, replacing: _WorkerLink | None = None
                            ) -> _WorkerLink:
        """Start worker `index` (in the place of `replacing`) and wait until it is ready."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "shinha.poller.workers", "--fd", str(theirs.fileno()),
                "--per-worker", str(self.per_worker), "--max-output", str(self.max_output),
                stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),),
                # Its own session: a terminal's Ctrl-C is for the main process, which stops it.
                start_new_session=True)
        finally:
            theirs.close()
        self.workers_started += 1
        link = _WorkerLink(self, index, process)
        try:
            await asyncio.get_running_loop().create_unix_connection(lambda: link, sock=ours)
            ready: asyncio.Future[object] = asyncio.ensure_future(link.ready)
            exited: asyncio.Future[object] = asyncio.ensure_future(process.wait())
            await asyncio.wait([ready, exited], timeout=WORKER_START_TIMEOUT,
                               return_when=asyncio.FIRST_COMPLETED)
            exited.cancel()
            if not ready.done():
                raise DaemonError(f"poller worker {index} did not start (exit status "
                                  f"{process.returncode}); see its messages above")
        except BaseException:
            link.kill()
            raise
        if replacing is None:
            self._links.append(link)
        else:
            self._links[self._links.index(replacing)] = link
        log.debug("poller worker %d started (pid %d)", index, process.pid)
        return link

    def _worker_lost(self, link: _WorkerLink) -> None:
        """Handle a worker whose socket closed: fail its jobs, kill its plugins, replace it."""
        was_alive, link.alive = link.alive, False
        if self._closing or not was_alive:
            return
        link.kill()
        lost = len(link.inflight)
        log.error("poller worker %d (pid %d) died with %d checks running; replacing it",
                  link.index, link.process.pid, lost)
        self._fail_inflight(link, None)
        task = asyncio.get_running_loop().create_task(self._replace(link),
                                                      name=f"replace-worker-{link.index}")
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    def _fail_inflight(self, link: _WorkerLink, error: ExecutorClosed | None) -> None:
        """End every job of link: with error, or with an UNKNOWN "(worker died)" result."""
        pending = list(link.inflight.values())
        link.inflight.clear()
        for item in pending:
            if item.future.done():
                continue
            if error is not None:
                item.future.set_exception(error)
            else:
                item.future.set_result(make_result(item.job, time.time(), UNKNOWN,
                                                   "(worker died)"))

    async def _replace(self, dead: _WorkerLink) -> None:
        """Reap a dead worker and start its replacement, backing off if workers die young."""
        with contextlib.suppress(ProcessLookupError):
            dead.process.kill()
        await dead.process.wait()
        delay = 1.0 if time.monotonic() - dead.started_at < WORKER_MIN_LIFE else 0.0
        while not self._closing:
            if delay:
                await asyncio.sleep(delay)
            try:
                link = await self._start_worker(dead.index, replacing=dead)
            except DaemonError as exc:
                delay = min(max(delay * 2, 1.0), WORKER_BACKOFF_MAX)
                log.error("%s; retrying in %.0f s", exc, delay)
                continue
            log.warning("poller worker %d replaced (pid %d)", dead.index, link.process.pid)
            self._slot_freed(self.per_worker)
            return

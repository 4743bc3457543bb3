"""The poller's check executor: plugins and native checks in worker processes.

At most `workers × per_worker` plugins and `workers × native_per_worker` native checks (tcp,
http) run at once. A job goes to the worker with the fewest jobs of its kind
(shinha.poller.workers) as a frame on its socketpair. Native checks cost no process, only
sockets, hence their larger limit; they run in the workers so that their sockets' CPU (connect,
close) spreads over the cores. A worker that dies is replaced; the plugins it was running are killed
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
import time
from dataclasses import dataclass
from typing import cast

from pydantic import ValidationError

from shinha.clock import Clock, SystemClock
from shinha.errors import DaemonError, ExecutorClosed
from shinha.poller import workers as protocol
from shinha.poller.plugin import UNKNOWN, make_result
from shinha.spawn import python_command
from shinha.wire import CheckJob, CheckResult

log = logging.getLogger(__name__)
#: Native checks one worker runs at once, by default.
NATIVE_PER_WORKER = 256
#: Seconds a new worker has to import and say it is ready.
WORKER_START_TIMEOUT = 30.0
#: A worker that dies sooner than this after starting is replaced only after a back-off.
WORKER_MIN_LIFE = 5.0
WORKER_BACKOFF_MAX = 30.0


@dataclass
class _Pending:
    """A job sent to a worker: who waits for it, and its plugin's process group once known."""

    job: CheckJob
    #: The result, with its JSON as the worker sent it (None for one made here).
    future: asyncio.Future[tuple[CheckResult, bytes | None]]
    native: bool
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
        #: How many of `inflight` are native checks.
        self.natives = 0
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.alive = False
        self.transport: asyncio.Transport | None = None
        self._decoder = protocol.FrameDecoder()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def send(self, seq: int, job: CheckJob) -> asyncio.Future[tuple[CheckResult, bytes | None]]:
        future: asyncio.Future[tuple[CheckResult, bytes | None]] = (
            asyncio.get_running_loop().create_future())
        native = job.module_type != "fork"
        self.inflight[seq] = _Pending(job, future, native)
        self.natives += native
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
        self.natives -= pending.native
        result = self._result(pending.job, kind, payload)
        if not pending.future.done():
            pending.future.set_result(result)
        self.executor._slot_freed(pending.native)

    @staticmethod
    def _result(job: CheckJob, kind: int, payload: bytes) -> tuple[CheckResult, bytes | None]:
        """Return the result a RESULT frame holds, or an UNKNOWN one saying what went wrong."""
        if kind == protocol.RESULT:
            try:
                return CheckResult.model_validate_json(payload), payload
            except ValidationError as exc:  # a worker of another version, or a bug
                reason = f"bad result: {exc}"
        else:
            reason = payload.decode("utf-8", "replace")
        return make_result(job, time.time(), UNKNOWN,
                           f"(poller worker could not run the check: {reason[:500]})"), None

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
    """Run check jobs in worker processes: plugins and native checks."""

    def __init__(self, workers: int, per_worker: int, max_output: int,
                 native_per_worker: int = NATIVE_PER_WORKER, poller: str = "",
                 clock: Clock | None = None) -> None:
        if workers < 1 or per_worker < 1 or max_output < 1 or native_per_worker < 1:
            raise ValueError("workers, per_worker, native_per_worker and max_output must be "
                             "at least 1")
        self.workers = workers
        self.per_worker = per_worker
        self.native_per_worker = native_per_worker
        self.max_output = max_output
        self.poller = poller
        self.clock: Clock = clock or SystemClock()
        self._links: list[_WorkerLink] = []
        self._seq = itertools.count(1)
        #: Jobs waiting for a slot, plugins [False] and native checks [True].
        self._waiters: tuple[collections.deque[asyncio.Future[None]], ...] = (
            collections.deque(), collections.deque())
        self._replacing: set[asyncio.Task[None]] = set()
        self._started = False
        self._closing = False
        #: Workers started in all, replacements included (for status and tests).
        self.workers_started = 0

    async def start(self) -> None:
        """Start the worker processes and wait until each is ready."""
        if self._started:
            return
        self._started = True
        outcomes = await asyncio.gather(*(self._start_worker(i) for i in range(self.workers)),
                                        return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            await self.stop(1.0)
            raise errors[0]
        self._slot_freed(False, self._limit(False))
        self._slot_freed(True, self._limit(True))

    @property
    def capacity(self) -> int:
        """Return how many more jobs (plugins and native checks) can start now."""
        return self.free(native=False) + self.free(native=True)

    def free(self, native: bool) -> int:
        """Return how many more plugins (or native checks) can start now."""
        if not self._started or self._closing:
            return 0
        return max(0, self._limit(native) - self._running(native))

    @property
    def worker_pids(self) -> list[int]:
        """Return the pids of the worker processes alive now."""
        return [link.process.pid for link in self._links if link.alive]

    async def run(self, job: CheckJob) -> CheckResult:
        """Run job and return its result; wait for a free slot first if all are taken.

        Never raises for what a plugin or a checked service does; raises ExecutorClosed if
        the executor is stopped (or stops) before the job has a result.
        """
        return (await self.run_with_json(job))[0]

    async def run_with_json(self, job: CheckJob) -> tuple[CheckResult, bytes | None]:
        """Like `run`, with the result's JSON as the worker sent it (None when the result
        was made here: a worker that died, a bad frame)."""
        native = job.module_type != "fork"
        await self._acquire(native)
        links = [lk for lk in self._links if lk.alive]
        if native:
            link = min(links, key=lambda lk: lk.natives)
        else:
            link = min(links, key=lambda lk: len(lk.inflight) - lk.natives)
        return await link.send(next(self._seq) & 0xFFFFFFFF, job)

    async def stop(self, deadline: float) -> None:
        """Stop the workers within deadline seconds; kill the plugins still running."""
        self._closing = True
        for waiters in self._waiters:
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(ExecutorClosed("the poller is stopping"))
        for task in self._replacing:
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
        if self._replacing:
            await asyncio.wait(list(self._replacing), timeout=1.0)

    # --- slots -----------------------------------------------------------------------------

    def _limit(self, native: bool) -> int:
        per = self.native_per_worker if native else self.per_worker
        return per * sum(1 for link in self._links if link.alive)

    def _running(self, native: bool) -> int:
        if native:
            return sum(link.natives for link in self._links if link.alive)
        return sum(len(link.inflight) - link.natives for link in self._links if link.alive)

    async def _acquire(self, native: bool) -> None:
        """Wait until a job of its kind may start; first come, first served."""
        if not self._started or self._closing:
            raise ExecutorClosed("the executor is not running")
        # Every job counts against a live worker, so room under the limit means some live
        # worker has a free slot of that kind.
        waiters = self._waiters[native]
        first = True
        while waiters or self._running(native) >= self._limit(native):
            waiter = asyncio.get_running_loop().create_future()
            if first:
                waiters.append(waiter)
            else:
                waiters.appendleft(waiter)  # woken but beaten to it: keep its place
            first = False
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in waiters:
                    waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._slot_freed(native)  # pass the wake-up on
                raise
            if self._running(native) < self._limit(native):
                return

    def _slot_freed(self, native: bool, count: int = 1) -> None:
        waiters = self._waiters[native]
        for _ in range(count):
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    break

    # --- workers ---------------------------------------------------------------------------

    async def _start_worker(self, index: int, replacing: _WorkerLink | None = None
                            ) -> _WorkerLink:
        """Start worker `index` (in the place of `replacing`) and wait until it is ready."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # No death signal needed: a worker ends when its socket closes, which the kernel
            # does when this process dies, however it dies (see shinha.poller.workers).
            process = await asyncio.create_subprocess_exec(
                *python_command("shinha.poller.workers", "--fd", str(theirs.fileno()),
                                "--per-worker", str(self.per_worker),
                                "--max-output", str(self.max_output), "--poller", self.poller),
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
        link.natives = 0
        for item in pending:
            if item.future.done():
                continue
            if error is not None:
                item.future.set_exception(error)
            else:
                item.future.set_result((make_result(item.job, time.time(), UNKNOWN,
                                                    "(worker died)"), None))

    async def _replace(self, dead: _WorkerLink) -> None:
        """Reap a dead worker and start its replacement, backing off if workers die young."""
        with contextlib.suppress(ProcessLookupError):
            dead.process.kill()
        await dead.process.wait()
        delay = 1.0 if time.monotonic() - dead.started_at < WORKER_MIN_LIFE else 0.0
        while not self._closing:
            if delay:
                await self.clock.sleep(delay)
            try:
                link = await self._start_worker(dead.index, replacing=dead)
            except DaemonError as exc:
                delay = min(max(delay * 2, 1.0), WORKER_BACKOFF_MAX)
                log.error("%s; retrying in %.0f s", exc, delay)
                continue
            log.warning("poller worker %d replaced (pid %d)", dead.index, link.process.pid)
            self._slot_freed(False, self.per_worker)
            self._slot_freed(True, self.native_per_worker)
            return

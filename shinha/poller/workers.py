"""A poller worker process: runs the checks the executor sends it: plugins one thread per
plugin, native checks (tcp, http) on an event loop in one more thread.

The poller's main process (uvloop, aiohttp) starts workers with `python -m
shinha.poller.workers` and talks to each over a socketpair in frames: a header (payload length,
sequence number, kind) then a JSON payload, CheckJob one way and CheckResult the other, through
pydantic; nothing is pickled. A worker says `started` with a plugin's pid (its process group)
so that the main process can kill the group if the worker dies.

Threads, not an event loop: `subprocess.Popen` releases the GIL while its vforked child execs,
so threads spawn in parallel, and a thread per running plugin costs less CPU than loop
callbacks per pipe (bench/plugin_spawn.py). Native checks need no process but their sockets
cost CPU (connect, close): running them here rather than in the main process spreads them over
the cores with the workers. When the main process closes the socket (stop, or it died), the
worker kills every plugin group it runs, cancels its native checks and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Sequence
from functools import partial

import aiohttp
import uvloop
from pydantic import ValidationError

from shinha.gctune import tune_gc
from shinha.poller.native import run_native
from shinha.poller.plugin import KILL_GRACE, run_plugin
from shinha.wire import CheckJob

#: Frame header: payload length, sequence number, kind.
HEADER = struct.Struct(">IIB")
#: main -> worker: a CheckJob to run (a plugin, or a native check by its module_type).
JOB = 1
#: worker -> main: the plugin of a job runs; payload is its pid (= process group) in ASCII.
STARTED = 2
#: worker -> main: the CheckResult of a job.
RESULT = 3
#: worker -> main: a job could not be run (a bug, or a job that does not validate); payload is
#: the reason in UTF-8. The main process turns it into an UNKNOWN result.
FAILED = 4
#: worker -> main: the worker is up and takes jobs.
READY = 5
#: Largest frame either side accepts: a CheckResult holds at most two copies of the output.
MAX_FRAME = 16 * 1024 * 1024
_RECV_SIZE = 1 << 18


class FrameError(Exception):
    """The peer sent a frame that breaks the protocol; the link is unusable."""


def encode_frame(kind: int, seq: int, payload: bytes) -> bytes:
    """Return one frame."""
    return HEADER.pack(len(payload), seq, kind) + payload


class FrameDecoder:
    """Cut a byte stream into (kind, seq, payload) frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        """Add data; return every frame now complete."""
        buffer = self._buffer
        buffer += data
        frames: list[tuple[int, int, bytes]] = []
        pos = 0
        size = HEADER.size
        while len(buffer) - pos >= size:
            length, seq, kind = HEADER.unpack_from(buffer, pos)
            if length > MAX_FRAME:
                raise FrameError(f"frame of {length} bytes is over the {MAX_FRAME} limit")
            end = pos + size + length
            if end > len(buffer):
                break
            frames.append((kind, seq, bytes(buffer[pos + size:end])))
            pos = end
        if pos:
            del buffer[:pos]
        return frames


class Worker:
    """Serve jobs from one socket until it closes; then kill what still runs.

    The main thread runs an event loop (uvloop) that reads the socket and runs the native
    checks; plugins run in a pool of threads. Frames out go through one lock: plugin threads
    send theirs at once, the loop gathers its results and sends them once per turn.
    """

    def __init__(self, sock: socket.socket, per_worker: int, max_output: int,
                 poller: str = "") -> None:
        self._sock = sock
        self._poller = poller
        self._max_output = max_output
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=per_worker,
                                                           thread_name_prefix="plugin")
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._groups: dict[int, int] = {}  # seq -> process group of its running plugin
        self._active = 0  # jobs received and not finished
        self._stopping = False
        self._decoder = FrameDecoder()
        self._natives: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._outgoing: list[bytes] = []
        self._closed: asyncio.Future[None] | None = None

    def serve(self) -> None:
        """Take jobs until the main process closes the socket, then stop."""
        loop = uvloop.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()
        self.stop(KILL_GRACE)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        # A fresh connection per check: keep-alive would hide the connect time measured.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True, limit=0),
            timeout=aiohttp.ClientTimeout(total=None))
        self._send(READY, 0, b"")
        loop.add_reader(self._sock.fileno(), self._readable)
        try:
            await self._closed
        finally:
            loop.remove_reader(self._sock.fileno())
            with self._lock:
                self._stopping = True
            for task in list(self._natives):
                task.cancel()
            if self._natives:
                await asyncio.wait(list(self._natives), timeout=1.0)
            await self._session.close()

    def _readable(self) -> None:
        """The socket has data (the socket stays blocking: recv returns what is there)."""
        assert self._closed is not None
        try:
            data = self._sock.recv(_RECV_SIZE)
            frames = self._decoder.feed(data) if data else None
        except (OSError, FrameError):
            frames = None  # the main process is gone or mad: either way, stop
        if frames is None:
            if not self._closed.done():
                self._closed.set_result(None)
            return
        for kind, seq, payload in frames:
            if kind == JOB:
                self._take(seq, payload)

    def _take(self, seq: int, payload: bytes) -> None:
        try:
            job = CheckJob.model_validate_json(payload)
        except ValidationError as exc:
            self._send(FAILED, seq, f"bad job: {exc}".encode())
            return
        with self._lock:
            self._active += 1
        if job.module_type == "fork":
            self._pool.submit(self._run, seq, job)
        else:
            task = asyncio.get_running_loop().create_task(self._run_native(seq, job))
            self._natives.add(task)
            task.add_done_callback(self._natives.discard)

    def stop(self, grace: float) -> None:
        """Kill every running plugin's group (SIGTERM, then SIGKILL after grace)."""
        with self._lock:
            self._stopping = True
            groups = list(self._groups.values())
        _signal_groups(groups, signal.SIGTERM)
        if not self._wait_idle(grace):
            with self._lock:
                groups = list(self._groups.values())
            _signal_groups(groups, signal.SIGKILL)
            self._wait_idle(grace)

    def _wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._active:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def _run(self, seq: int, job: CheckJob) -> None:
        try:
            if self._stopping:
                return
            result = run_plugin(job, self._max_output, on_start=partial(self._started, seq))
            result.poller = self._poller
            self._send(RESULT, seq, result.model_dump_json().encode())
        except Exception as exc:  # noqa: BLE001 - a bug must not lose the job silently
            self._send(FAILED, seq, f"worker error: {exc!r}".encode())
        finally:
            self._finished(seq)

    async def _run_native(self, seq: int, job: CheckJob) -> None:
        try:
            assert self._session is not None
            result = await run_native(job, self._session)
            result.poller = self._poller
            self._queue(encode_frame(RESULT, seq, result.model_dump_json().encode()))
        except asyncio.CancelledError:
            pass  # the worker stops; the main process already gave up on the job
        except Exception as exc:  # noqa: BLE001 - a bug must not lose the job silently
            self._queue(encode_frame(FAILED, seq, f"worker error: {exc!r}".encode()))
        finally:
            self._finished(seq)

    def _queue(self, frame: bytes) -> None:
        """Send a frame from the loop: with the others of this turn of the loop."""
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing.append(frame)

    def _flush(self) -> None:
        data, self._outgoing = b"".join(self._outgoing), []
        with self._send_lock, contextlib.suppress(OSError):
            self._sock.sendall(data)

    def _finished(self, seq: int) -> None:
        with self._idle:
            self._groups.pop(seq, None)
            self._active -= 1
            self._idle.notify_all()

    def _started(self, seq: int, pid: int) -> None:
        with self._lock:
            stopping = self._stopping
            if not stopping:
                self._groups[seq] = pid
        if stopping:
            _signal_groups([pid], signal.SIGKILL)  # started while we stop: it cannot finish
        self._send(STARTED, seq, str(pid).encode())

    def _send(self, kind: int, seq: int, payload: bytes) -> None:
        frame = encode_frame(kind, seq, payload)
        with self._send_lock, contextlib.suppress(OSError):
            # The main process may be gone; the plugins are killed when serve() sees it.
            self._sock.sendall(frame)


def _signal_groups(groups: Sequence[int], sig: signal.Signals) -> None:
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def main(argv: Sequence[str] | None = None) -> None:
    """Run a worker on the socket fd the main process passed."""
    parser = argparse.ArgumentParser(prog="python -m shinha.poller.workers")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--per-worker", type=int, required=True)
    parser.add_argument("--max-output", type=int, required=True)
    parser.add_argument("--poller", default="", help="the name results carry")
    args = parser.parse_args(argv)
    sock = socket.socket(fileno=args.fd)
    tune_gc()
    # No signal handlers: the main process stops us by closing the socket, and we run in our
    # own session, so a terminal's Ctrl-C is not for us.
    Worker(sock, args.per_worker, args.max_output, args.poller).serve()
    # Threads still blocked on a plugin that escaped its group must not hold the exit.
    os._exit(0)


if __name__ == "__main__":
    main()

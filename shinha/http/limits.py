"""Connection limits of a daemon's HTTP server, so that idle, slow or malformed clients cannot
take a daemon off the cluster.

aiohttp bounds only the time between two requests (`keepalive_timeout`, also armed when a
connection opens). Nothing bounds how long a client may take to send its request headers or
its body, nor how many connections it may hold: 1,100 idle connections used up a scheduler's
1,024 file descriptors and it stopped accepting. Here, around aiohttp's handler factory:

- **header timeout**: a connection that has not sent complete request headers within
  `header_timeout` of opening (or of the first byte of its next request) is closed;
- **body timeout**: a request whose body stops arriving for `body_timeout` is closed;
- **idle timeout**: aiohttp's own `keepalive_timeout`;
- **cap**: at `max_connections` (lowered to what the open-file limit allows), a new connection
  closes the connection that has waited longest without a complete request, else the one idle
  longest; it is refused only when every connection has a request in progress. A request in
  progress (a poller's 30 s long-poll) is never idle. Cluster peers reuse their connections
  all the time, so under a flood of idle connections the flood's are the ones closed.

A client's malformed HTTP is one WARNING line per peer and minute (with a count), without
aiohttp's traceback and without the raw bytes, which can hold the cluster secret.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import resource
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    ContentEncodingError,
    ContentLengthError,
    HttpProcessingError,
    InvalidHeader,
    LineTooLong,
    TransferEncodingError,
)
from yarl import URL

if TYPE_CHECKING:
    from ssl import SSLContext

    from shinha.config.mainfile import MainConfig

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The peer address of the connection a task serves: set where aiohttp creates the task of a
#: connection (its context is copied there), for log lines that do not name the peer.
PEER: contextvars.ContextVar[str] = contextvars.ContextVar("shinha_http_peer", default="")

#: Between two lines about one peer (malformed HTTP) or one kind of event (timeouts, cap).
REPORT_INTERVAL = 60.0
#: What an unlimited open-file limit counts as (Linux's default fs.nr_open).
UNLIMITED_FILES = 1 << 20
#: Pending connections the kernel queues for us: a burst of peers reconnecting at once fits.
BACKLOG = 1024
#: The kinds of a client's malformed HTTP, most specific first: named, never quoted.
MALFORMED_KINDS: tuple[tuple[type[Exception], str], ...] = (
    (BadHttpMethod, "not HTTP, or TLS on the plain HTTP port"),
    (LineTooLong, "request line or header too long"),
    (InvalidHeader, "bad header"),
    (BadStatusLine, "bad request line"),
    (TransferEncodingError, "bad chunked body"),
    (ContentLengthError, "bad content length"),
    (ContentEncodingError, "bad content encoding"),
    (HttpProcessingError, "malformed request"),
    # A body that does not decode (gzip that is not), raised where aiohttp reads it.
    (web.RequestPayloadError, "bad request body"),
)


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take, and how many connections a daemon holds (seconds)."""

    header_timeout: float = 10.0
    idle_timeout: float = 60.0
    body_timeout: float = 30.0
    max_connections: int = 8192

    @classmethod
    def of(cls, main: MainConfig) -> ConnectionLimits:
        """The limits the main file sets."""
        return cls(header_timeout=main.http_header_timeout, idle_timeout=main.http_idle_timeout,
                   body_timeout=main.http_body_timeout,
                   max_connections=main.http_max_connections)


class Counters(Protocol):
    """Where the guard counts (the daemon's Metrics)."""

    def inc(self, metric: str, amount: float = 1.0, help_text: str = "",
            **labels: str) -> None: ...

    def set(self, metric: str, value: float, help_text: str = "", **labels: str) -> None: ...


@functools.cache
def open_files_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (once, logged); return the
    soft limit. systemd's default soft limit is 1,024 whatever the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        log.info("open-file limit: unlimited")
        return UNLIMITED_FILES
    # An unlimited hard limit cannot be the soft one (the kernel caps it at fs.nr_open).
    target = hard if hard != resource.RLIM_INFINITY else max(soft, UNLIMITED_FILES)
    if soft >= target:
        log.info("open-file limit: %d", soft)
        return int(soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("open-file limit stays %d: cannot raise it to %d (%s)", soft, target, exc)
        return int(soft)
    log.info("open-file limit raised from %d to %d (the hard limit)", soft, target)
    return int(target)


def connection_cap(configured: int, open_files: int) -> int:
    """The connections a daemon may hold: the configured cap, less what the open-file limit
    needs for everything else (a database, peers, plugins' pipes)."""
    reserve = min(open_files // 4, 4096)
    return max(16, min(configured, open_files - reserve))


class Throttle:
    """At most one report per key per `interval`; counts what it held back. Keys are few
    (peers, kinds of event) and bounded: the one reported longest ago goes first."""

    def __init__(self, interval: float = REPORT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 4096) -> None:
        self.interval = interval
        self.clock = clock
        self.max_keys = max_keys
        #: key -> [time of its last report, events held back since]; oldest report first.
        self._keys: OrderedDict[str, list[float]] = OrderedDict()

    def admit(self, key: str) -> int | None:
        """None: hold this event back (counted). Else report it now, with the number of events
        held back since the key's last report."""
        now = self.clock()
        entry = self._keys.get(key)
        if entry is not None and now - entry[0] < self.interval:
            entry[1] += 1
            return None
        held = int(entry[1]) if entry is not None else 0
        self._keys[key] = [now, 0.0]
        self._keys.move_to_end(key)
        if len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        return held


def malformed_kind(exc: BaseException) -> str:
    """What was wrong, in words of our own: aiohttp's message quotes the client's bytes."""
    for cls, kind in MALFORMED_KINDS:
        if isinstance(exc, cls):
            return f"{kind} ({type(exc).__name__})"
    return type(exc).__name__


class ServerLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger (`RequestHandler(logger=…)`): a client's malformed HTTP becomes
    one WARNING line per peer and minute, naming the peer and the kind of error, with no
    traceback and no raw bytes; anything else (our own bugs) is logged as aiohttp logs it."""

    def __init__(self, throttle: Throttle) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})
        self.throttle = throttle

    def log(self, level: int, msg: object, *args: object,
            exc_info: object = None, stack_info: bool = False, stacklevel: int = 1,
            extra: Mapping[str, object] | None = None, **kwargs: object) -> None:
        if not isinstance(exc_info, HttpProcessingError | web.RequestPayloadError):
            super().log(level, msg, *args, exc_info=exc_info,  # type: ignore[arg-type]
                        stack_info=stack_info, stacklevel=stacklevel, extra=extra, **kwargs)
            return
        # aiohttp logs most as ("Error handling request from %s", request.remote).
        peer = (str(args[0]) if args and args[0] else PEER.get()) or "an unknown peer"
        held = self.throttle.admit(peer)
        if held is None:
            return
        more = f" ({held} more from this peer since the last such line)" if held else ""
        log.warning("malformed HTTP from %s: %s; connection closed%s", peer,
                    malformed_kind(exc_info), more)


# The states of a connection.
WAITING = 0  # its request headers are not complete (it just opened, or began a new request)
ACTIVE = 1  # a request is in progress
IDLE = 2  # between two requests
CLOSED = 3  # closed by the guard, or lost


class _Conn:
    __slots__ = ("peer", "request", "since", "state", "transport")

    def __init__(self, transport: asyncio.Transport, now: float) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        self.state = WAITING
        self.since = now
        self.request: web.BaseRequest | None = None


class ConnectionGuard:
    """Tracks a server's connections: closes those whose headers or body are too slow and,
    at the cap, the oldest idle one for a new one. One per daemon."""

    def __init__(self, limits: ConnectionLimits, counters: Counters | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.counters = counters
        self.cap = connection_cap(limits.max_connections, open_files_limit())
        if self.cap < limits.max_connections:
            log.warning("at most %d connections (http_max_connections is %d): the open-file "
                        "limit allows no more; raise it (LimitNOFILE= in the unit)", self.cap,
                        limits.max_connections)
        self.throttle = Throttle(clock=clock)
        self.server_log = ServerLog(Throttle(clock=clock))
        self._conns: dict[asyncio.BaseTransport, _Conn] = {}
        # Each ordered by `since`, oldest first: expiry and eviction look at the front only.
        self._waiting: OrderedDict[_Conn, None] = OrderedDict()
        self._idle: OrderedDict[_Conn, None] = OrderedDict()
        #: Requests in progress whose body is not all in; `since` is the last byte received.
        self._receiving: OrderedDict[_Conn, None] = OrderedDict()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    # --- what the daemon calls --------------------------------------------------------------

    def runner(self, app: web.Application, shutdown_timeout: float) -> web.AppRunner:
        """An AppRunner for `app` that reports each request to the guard (no access log, no
        signal handling: the daemon owns both); at cleanup, requests still running get
        `shutdown_timeout` seconds before they are cancelled."""
        @web.middleware
        async def track(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self._track(request, handler)

        app.middlewares.insert(0, track)
        return web.AppRunner(app, access_log=None, handle_signals=False,
                             keepalive_timeout=self.limits.idle_timeout,
                             shutdown_timeout=shutdown_timeout, logger=self.server_log)

    def site(self, runner: web.AppRunner, host: str, port: int,
             ssl_context: SSLContext | None = None) -> GuardedSite:
        """The listening site whose connections the guard watches."""
        return GuardedSite(runner, self, host, port, ssl_context=ssl_context)

    # --- connection events (from GuardedProtocol) -------------------------------------------

    def opened(self, transport: asyncio.Transport) -> _Conn | None:
        """A new connection: track it, making room at the cap; None if it was refused."""
        loop = asyncio.get_running_loop()
        if len(self._conns) >= self.cap and not self._make_room():
            transport.abort()
            self._count("refused")
            self._report("refused", logging.WARNING, "at the limit of %d connections, every "
                         "one with a request in progress: refusing new connections", self.cap)
            return None
        conn = _Conn(transport, loop.time())
        self._conns[transport] = conn
        self._waiting[conn] = None
        self._arm(conn.since + self.limits.header_timeout)
        self._gauge()
        return conn

    def received(self, conn: _Conn) -> None:
        """Bytes arrived on `conn`."""
        if conn.state == IDLE:
            # The first byte of its next request: its headers are now on the clock.
            del self._idle[conn]
            conn.state, conn.since = WAITING, asyncio.get_running_loop().time()
            self._waiting[conn] = None
            self._arm(conn.since + self.limits.header_timeout)
        elif conn in self._receiving:
            conn.since = asyncio.get_running_loop().time()
            self._receiving.move_to_end(conn)

    def lost(self, conn: _Conn) -> None:
        if conn.state != CLOSED:
            self._forget(conn)

    # --- requests (the outermost middleware) ------------------------------------------------

    async def _track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        transport = request.transport
        conn = self._conns.get(transport) if transport is not None else None
        if conn is None or conn.state == CLOSED:
            return await handler(request)
        self._waiting.pop(conn, None)
        self._idle.pop(conn, None)
        conn.state, conn.request = ACTIVE, request
        if not request.content.is_eof():
            conn.since = asyncio.get_running_loop().time()
            self._receiving[conn] = None
            self._arm(conn.since + self.limits.body_timeout)
        try:
            return await handler(request)
        finally:
            if conn.state == ACTIVE:
                self._receiving.pop(conn, None)
                conn.state, conn.request = IDLE, None
                conn.since = asyncio.get_running_loop().time()
                self._idle[conn] = None

    # --- closing ----------------------------------------------------------------------------

    def _make_room(self) -> bool:
        """Close the connection that waited longest without a complete request, else the one
        idle longest (but not one still writing its response); False if there is none."""
        if self._waiting:
            self._close(next(iter(self._waiting)), "evicted")
            return True
        for _ in range(min(len(self._idle), 64)):
            conn = next(iter(self._idle))
            if conn.transport.get_write_buffer_size() == 0:
                self._close(conn, "evicted")
                return True
            self._idle.move_to_end(conn)
        return False

    def _close(self, conn: _Conn, reason: str) -> None:
        in_progress = conn.request is not None
        self._forget(conn)
        if in_progress or conn.transport.get_extra_info("sslcontext") is not None:
            # A stalled upload, or TLS, whose shutdown a silent client would make us wait for
            # while it holds the descriptor: drop the connection at once.
            conn.transport.abort()
        else:
            # Nothing owed to it, or a response already written: close() lets the kernel
            # finish sending that.
            conn.transport.close()
        self._count(reason)
        if reason == "evicted":
            self._report(reason, logging.WARNING, "at the limit of %d connections: closing the "
                         "oldest idle connection (from %s) for each new one", self.cap,
                         conn.peer)
        else:
            self._report(reason, logging.INFO, "closed a connection from %s: %s", conn.peer,
                         reason)

    def _forget(self, conn: _Conn) -> None:
        conn.state, conn.request = CLOSED, None
        self._conns.pop(conn.transport, None)
        self._waiting.pop(conn, None)
        self._idle.pop(conn, None)
        self._receiving.pop(conn, None)
        self._gauge()

    # --- timeouts: one timer, at the earliest deadline --------------------------------------

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            if self._timer_at <= when:
                return
            self._timer.cancel()
        self._timer_at = when
        self._timer = asyncio.get_running_loop().call_at(when, self._expire)

    def _expire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        header, body = self.limits.header_timeout, self.limits.body_timeout
        while self._waiting:
            conn = next(iter(self._waiting))
            if conn.since + header > now:
                break
            self._close(conn, "header timeout")
        while self._receiving:
            conn = next(iter(self._receiving))
            if conn.since + body > now:
                break
            if conn.request is None or conn.request.content.is_eof():
                del self._receiving[conn]  # its body is all in: a request in progress
            elif not conn.transport.is_reading():
                # We paused reading (the handler is slow to consume): not the client's stall.
                conn.since = now
                self._receiving.move_to_end(conn)
            else:
                self._close(conn, "body timeout")
        fronts = [next(iter(self._waiting)).since + header] if self._waiting else []
        if self._receiving:
            fronts.append(next(iter(self._receiving)).since + body)
        if fronts:
            self._arm(min(fronts))

    # --- reporting --------------------------------------------------------------------------

    def _report(self, key: str, level: int, msg: str, *args: object) -> None:
        held = self.throttle.admit(key)
        if held is not None:
            more = f" ({held} more since the last such line)" if held else ""
            log.log(level, msg + "%s", *args, more)

    def _count(self, reason: str) -> None:
        if self.counters is not None:
            self.counters.inc("http_connections_closed_total", help_text="Client connections "
                              "the daemon closed or refused, by reason.",
                              reason=reason.replace(" ", "_"))

    def _gauge(self) -> None:
        if self.counters is not None:
            self.counters.set("http_connections", len(self._conns),
                              help_text="Client connections open.")


class GuardedProtocol(asyncio.Protocol):
    """aiohttp's RequestHandler for one connection, with the guard told of each event."""

    __slots__ = ("_conn", "_guard", "_inner")

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._conn: _Conn | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._conn = self._guard.opened(cast(asyncio.Transport, transport))
        if self._conn is not None:  # else refused: aborted before aiohttp saw it
            PEER.set(self._conn.peer)  # copied into the connection's task, created here
            self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._guard.lost(self._conn)
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        conn = self._conn
        if conn is not None:
            if conn.state != WAITING:
                self._guard.received(conn)
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._conn is not None else None

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class GuardedSite(web.BaseSite):
    """A TCP site (as aiohttp's TCPSite) whose connections go through a ConnectionGuard."""

    __slots__ = ("_guard", "_host", "_port")

    def __init__(self, runner: web.BaseRunner, guard: ConnectionGuard, host: str, port: int,
                 *, ssl_context: SSLContext | None = None) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=BACKLOG)
        self._guard = guard
        self._host = host
        self._port = port

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return str(URL.build(scheme=scheme, host=self._host, port=self._port))

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        guard = self._guard

        def protocol() -> GuardedProtocol:
            return GuardedProtocol(guard, server())

        loop = asyncio.get_running_loop()
        if self._ssl_context is None:
            self._server = await loop.create_server(protocol, self._host, self._port,
                                                    backlog=self._backlog, reuse_address=True)
        else:
            # The handshake comes before the first byte of a request: it gets the same time.
            self._server = await loop.create_server(
                protocol, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
                reuse_address=True, ssl_handshake_timeout=guard.limits.header_timeout)

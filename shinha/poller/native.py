"""Checks that need no fork, run on an event loop of a poller worker: tcp connect and http(s) GET.

A native check's `command_line` is `key=value` words (shell quoting allowed):

    tcp   host=ADDRESS port=N [timeout=S] [warning=S] [critical=S] [send=TEXT] [expect=TEXT]
    http  url=URL [expect_status=200[,301…]] [timeout=S] [warning=S] [critical=S] [verify=0|1]

warning/critical are seconds of response time (tcp: connect time); `send` takes \\r \\n \\t
escapes; `verify=0` accepts any TLS certificate. Outputs and perfdata follow check_tcp and
check_http. A `timeout` shorter than the job's is the check's own and gives CRITICAL
"Socket timeout" as those plugins do; the job's timeout gives its `timeout_state`.
"""

from __future__ import annotations

import asyncio
import codecs
import errno
import functools
import ipaddress
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import aiohttp

from shinha.poller.plugin import UNKNOWN, make_result, split_words, timeout_output
from shinha.wire import CheckJob, CheckResult, PerfDatum

OK, WARNING, CRITICAL = 0, 1, 2
_STATE_NAMES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
#: Default seconds of a check's own timeout, as check_tcp and check_http have.
DEFAULT_TIMEOUT = 10.0
_EXPECT_READ = 4096


class BadArgument(ValueError):
    """A native check's command line has an argument we cannot use."""


@dataclass(frozen=True)
class _Outcome:
    """What a check found: state, output, perfdata."""

    state: int
    output: str
    perfdata: list[PerfDatum]


async def run_native(job: CheckJob, session: aiohttp.ClientSession) -> CheckResult:
    """Run the native check of job.module_type; never raise for what the target does."""
    started = time.time()
    check = _CHECKS.get(job.module_type)
    if check is None:
        return make_result(job, started, UNKNOWN, f"(unknown module_type {job.module_type!r}: "
                           f"use fork, {', '.join(sorted(_CHECKS))})")
    try:
        args = parse_arguments(job.module_type, job.command_line)
        own_timeout = args.get("timeout")
    except BadArgument as exc:
        return make_result(job, started, UNKNOWN, f"({exc})")
    limit = job.timeout if own_timeout is None else min(float(own_timeout), job.timeout)
    try:
        async with asyncio.timeout(limit):
            outcome = await check(args, session, limit)
    except TimeoutError:
        if own_timeout is not None and float(own_timeout) < job.timeout:
            return make_result(job, started, CRITICAL,
                               f"CRITICAL - Socket timeout after {_seconds_text(limit)} seconds")
        return make_result(job, started, job.timeout_state, timeout_output(job), timed_out=True)
    except BadArgument as exc:
        return make_result(job, started, UNKNOWN, f"({exc})")
    return make_result(job, started, outcome.state, outcome.output,
                       perfdata=outcome.perfdata)


# --- arguments -----------------------------------------------------------------------------


def _port(text: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError("not a port 1-65535")
    return port


def _positive_seconds(text: str) -> float:
    seconds = float(text)
    if not seconds > 0:
        raise ValueError("not a positive number of seconds")
    return seconds


def _flag(text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError("not 0 or 1")
    return text == "1"


def _statuses(text: str) -> frozenset[int]:
    codes = frozenset(int(part) for part in text.split(","))
    if not all(100 <= code <= 599 for code in codes):
        raise ValueError("not HTTP status codes 100-599")
    return codes


def _escaped(text: str) -> str:
    return codecs.decode(text, "unicode_escape")


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise ValueError("not an http:// or https:// URL")
    return text


_Converter = Callable[[str], Any]
_ARGUMENTS: dict[str, dict[str, _Converter]] = {
    "tcp": {"host": str, "port": _port, "timeout": _positive_seconds,
            "warning": _positive_seconds, "critical": _positive_seconds, "send": _escaped,
            "expect": _escaped},
    "http": {"url": _url, "expect_status": _statuses, "timeout": _positive_seconds,
             "warning": _positive_seconds, "critical": _positive_seconds, "verify": _flag},
}
_REQUIRED: dict[str, tuple[str, ...]] = {"tcp": ("host", "port"), "http": ("url",)}


# The same services come back every interval with the same command line: parse each once.
@functools.lru_cache(maxsize=65536)
def parse_arguments(module_type: str, command_line: str) -> Mapping[str, Any]:
    """Parse `key=value` words for module_type; raise BadArgument naming the one at fault."""
    known = _ARGUMENTS[module_type]
    try:
        words = split_words(command_line)
    except ValueError as exc:
        raise BadArgument(f"{module_type}: cannot split the command line: {exc}") from None
    args: dict[str, Any] = {}
    for word in words:
        key, eq, text = word.partition("=")
        if not eq:
            raise BadArgument(f"{module_type}: argument {word!r} is not key=value")
        if key not in known:
            raise BadArgument(f"{module_type}: unknown argument {key!r} (known: "
                              f"{', '.join(known)})")
        try:
            args[key] = known[key](text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadArgument(f"{module_type}: bad argument {key}={text!r}: {exc}") from None
    for key in _REQUIRED[module_type]:
        if key not in args:
            raise BadArgument(f"{module_type}: missing argument {key}=")
    return MappingProxyType(args)


# --- tcp -----------------------------------------------------------------------------------


async def check_tcp(args: Mapping[str, Any], session: aiohttp.ClientSession,
                    limit: float) -> _Outcome:
    """Connect (then send/expect); judge the connect time like check_tcp."""
    del session  # same signature as every native check
    host: str = args["host"]
    port: int = args["port"]
    loop = asyncio.get_running_loop()
    try:
        family, address = await _resolve(host, port)
    except OSError as exc:
        return _Outcome(CRITICAL, f"TCP CRITICAL - cannot resolve {host}: {exc}", [])
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setblocking(False)
        # Not loop.time(): uvloop's is the loop's cached clock, in whole milliseconds.
        began = time.perf_counter()
        try:
            await _connect(loop, sock, address)
        except OSError as exc:
            return _Outcome(CRITICAL, f"connect to address {host} and port {port}: "
                            f"{_os_error(exc)}", [])
        elapsed = time.perf_counter() - began
        reply = b""
        try:
            if "send" in args:
                await loop.sock_sendall(sock, args["send"].encode())
            if "expect" in args:
                reply = await _read_until(loop, sock, args["expect"].encode())
        except OSError as exc:
            return _Outcome(CRITICAL, f"TCP CRITICAL - {host} port {port}: "
                            f"{_os_error(exc)}", [])
    perf = [_time_datum(elapsed, args, limit)]
    if "expect" in args and args["expect"].encode() not in reply:
        shown = reply[:80].decode("utf-8", "replace").strip()
        return _Outcome(WARNING, f"TCP WARNING - Unexpected response from host/socket: "
                        f"{shown}", perf)
    state = _judge(elapsed, args)
    return _Outcome(state, f"TCP {_STATE_NAMES[state]} - {elapsed:.3f} second response time "
                    f"on {host} port {port}", perf)


async def _connect(loop: asyncio.AbstractEventLoop, sock: socket.socket,
                   address: tuple[Any, ...]) -> None:
    """Connect a non-blocking socket to a resolved address. `loop.sock_connect` resolves the
    address again on every call (IDNA-encoding the host, building enums): at thousands of
    checks a second that was a fifth of the connect's cost."""
    err = sock.connect_ex(address)
    if err == 0:
        return
    if err not in (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
        raise OSError(err, os.strerror(err))
    done: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()

    def writable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_writer(fd, writable)
    try:
        await done
    finally:
        loop.remove_writer(fd)
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, os.strerror(err))


async def _resolve(host: str, port: int) -> tuple[int, tuple[Any, ...]]:
    """Return (family, address) for host; an IP literal needs no resolver thread."""
    literal = _literal_address(host, port)
    if literal is not None:
        return literal
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"no address for {host}")
    family, _, _, _, address = infos[0]
    return family, address


@functools.lru_cache(maxsize=65536)
def _literal_address(host: str, port: int) -> tuple[int, tuple[Any, ...]] | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 6:
        return socket.AF_INET6, (host, port, 0, 0)
    return socket.AF_INET, (host, port)


async def _read_until(loop: asyncio.AbstractEventLoop, sock: socket.socket,
                      expect: bytes) -> bytes:
    """Read until expect shows up, the peer closes, or enough was read to tell."""
    data = b""
    while expect not in data and len(data) < _EXPECT_READ:
        chunk = await loop.sock_recv(sock, _EXPECT_READ)
        if not chunk:
            break
        data += chunk
    return data


# --- http ----------------------------------------------------------------------------------


async def check_http(args: Mapping[str, Any], session: aiohttp.ClientSession,
                     limit: float) -> _Outcome:
    """GET the URL (no redirects followed); judge status and response time like check_http."""
    url: str = args["url"]
    expected: frozenset[int] = args.get("expect_status", frozenset({200}))
    ssl: bool = args.get("verify", True)
    began = time.perf_counter()
    try:
        async with session.get(url, ssl=ssl, allow_redirects=False) as response:
            size = 0
            async for chunk in response.content.iter_any():
                size += len(chunk)
            status, reason = response.status, response.reason or ""
            http = response.version
            version = f"HTTP/{http.major}.{http.minor}" if http is not None else "HTTP"
    except aiohttp.InvalidURL as exc:
        raise BadArgument(f"http: bad argument url={url!r}: {exc}") from None
    except (aiohttp.ClientError, OSError) as exc:
        return _Outcome(CRITICAL, f"HTTP CRITICAL - {_client_error(exc)}", [])
    elapsed = time.perf_counter() - began
    perf = [_time_datum(elapsed, args, limit),
            PerfDatum(label="size", value=float(size), uom="B", min=0.0)]
    state = _judge(elapsed, args) if status in expected else CRITICAL
    return _Outcome(state, f"HTTP {_STATE_NAMES[state]}: {version} {status} {reason} - "
                    f"{size} bytes in {elapsed:.3f} second response time", perf)


def _os_error(exc: OSError) -> str:
    # uvloop words connect errors its own way; the errno's text is what check_tcp prints.
    return os.strerror(exc.errno) if exc.errno else str(exc)


def _client_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


# --- shared --------------------------------------------------------------------------------


def _judge(elapsed: float, args: Mapping[str, Any]) -> int:
    if "critical" in args and elapsed > args["critical"]:
        return CRITICAL
    if "warning" in args and elapsed > args["warning"]:
        return WARNING
    return OK


def _time_datum(elapsed: float, args: Mapping[str, Any], limit: float) -> PerfDatum:
    return PerfDatum(label="time", value=round(elapsed, 6), uom="s",
                     warn=_seconds_text(args["warning"]) if "warning" in args else "",
                     crit=_seconds_text(args["critical"]) if "critical" in args else "",
                     min=0.0, max=limit)


def _seconds_text(seconds: float) -> str:
    return f"{seconds:g}"


_CheckFunction = Callable[[Mapping[str, Any], aiohttp.ClientSession, float], Awaitable[_Outcome]]
_CHECKS: dict[str, _CheckFunction] = {"tcp": check_tcp, "http": check_http}

"""Connections and limits (issue 9): idle, slow and malformed clients against real daemon
processes. A daemon at systemd's default open-file limit must keep answering its peers under
1,200 idle connections; slow clients are closed by the header, body and idle timeouts, a
long-poll is not; a client's malformed HTTP is one WARNING line per peer, without a traceback
and without the bytes it sent."""

from __future__ import annotations

import contextlib
import contextvars
import errno
import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from shinha.http.limits import PEER, ServerLog, Throttle, connection_cap, malformed_kind
from tests.cluster import ROOT, SECRET, Cluster, wait_for

IDLE_CONNECTIONS = 1200
#: systemd's default soft limit of open files for a service.
SYSTEMD_SOFT_NOFILE = 1024


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def enough_files_here() -> Iterator[None]:
    """This process holds 1,200 sockets and more: raise its own soft limit to its hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < IDLE_CONNECTIONS + 400:
        why = f"the hard open-file limit ({hard}) is too low for this test"
        if os.environ.get("CI"):
            raise AssertionError(why + " (CI runs as root: raise it with ulimit -Hn)")
        pytest.skip(why)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def scheduler_cluster(root: Path, settings: str) -> Cluster:
    """One scheduler, with `settings` (main-file directives) added to the main file."""
    c = Cluster(root)
    c.add("scheduler", "scheduler-1")
    c.write()
    with c.main.open("a") as main:
        main.write(settings)
    return c


def start_limited(c: Cluster, name: str, soft: int, hard: int) -> subprocess.Popen[bytes]:
    """Cluster.start, with the daemon's open-file limit set before it runs (as systemd does)."""
    d = c.daemons[name]

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    with open(c.root / f"{d.role}-{name}.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shinha", "daemon", d.role, name, "-c", str(c.main),
             "--log-level", "DEBUG"], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            preexec_fn=limit)
    c.procs[name] = proc
    wait_for(lambda: c.ping(name) or proc.poll() is not None, 30, f"{name} to listen")
    if proc.poll() is not None:
        raise AssertionError(f"{name} exited with {proc.returncode}:\n{c.log(name)}")
    return proc


def open_idle(address: str, port: int, count: int) -> list[socket.socket]:
    """Open `count` connections that send nothing (non-blocking: a daemon that does not accept
    them must not hang the test)."""
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        err = sock.connect_ex((address, port))
        assert err in (0, errno.EINPROGRESS), os.strerror(err)
        socks.append(sock)
    return socks


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def hold_idle(address: str, port: int, pid: int, count: int, batch: int = 100
              ) -> list[socket.socket]:
    """Open `count` connections that send nothing, as an attacker would: `batch` at a time,
    each batch given up to 2 s to be accepted (the daemon's descriptors show it), so that the
    kernel's accept queue does not overflow and every connection reaches the daemon."""
    base = open_fds(pid)
    socks: list[socket.socket] = []

    def accepted() -> bool:
        return open_fds(pid) >= base + len(socks) - sum(map(closed_by_peer, socks)) - 5

    while len(socks) < count:
        socks += open_idle(address, port, min(batch, count - len(socks)))
        with contextlib.suppress(AssertionError):  # a daemon out of descriptors accepts none
            wait_for(accepted, 2, "the batch to be accepted")
    return socks


def connect(address: str, port: int, source: str | None = None) -> socket.socket:
    sock = socket.socket()
    if source is not None:
        sock.bind((source, 0))
    sock.settimeout(5)
    sock.connect((address, port))
    return sock


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the daemon closed this connection (EOF or reset), without blocking."""
    sock.setblocking(False)  # with a timeout set, recv() would wait for data despite DONTWAIT
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except ConnectionResetError:
        return True
    except OSError as exc:  # not connected yet
        if exc.errno == errno.ENOTCONN:
            return False
        raise


def read_to_close(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the daemon sends until it closes the connection (a reset counts as closed)."""
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def read_response(sock: socket.socket) -> bytes:
    """One whole response (headers and Content-Length body) from a kept-alive connection."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return data


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def pull(c: Cluster, name: str, wait: float = 0.0, timeout: float = 5.0) -> tuple[int, Any]:
    """A poller's pull: needs the secret, changes the scheduler's state (pollers seen)."""
    return c.request(name, "POST", "/checks/pull", {"poller": "poller-test", "wait": wait},
                     timeout=timeout)


def metric(c: Cluster, name: str, metric_name: str) -> float | None:
    status, text = c.request(name, "GET", "/metrics", secret=None)
    assert status == 200
    for line in str(text).splitlines():
        if line.startswith(f"{metric_name} ") or line.startswith(f"{metric_name}{{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def answers_within(c: Cluster, name: str, seconds: float) -> None:
    """/ping and a state-changing request both answered within `seconds`."""
    start = time.monotonic()
    c.wait(lambda: c.ping(name), seconds, f"{name} to answer /ping")
    _, body = c.wait(lambda: (r := pull(c, name, timeout=1.0))[0] == 200 and r,
                          max(0.5, seconds - (time.monotonic() - start)),
                          f"{name} to answer POST /checks/pull")
    assert body["jobs"] == []


def soft_nofile(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no 'Max open files' in /proc/PID/limits")


# --- open-file limit and the cap on connections ------------------------------------------------


def test_systemd_default_limit_is_raised_and_idle_connections_lock_nobody_out(
        tmp_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard = min(hard, 65536)
    c = scheduler_cluster(tmp_path, "http_header_timeout=60\n")
    try:
        proc = start_limited(c, "scheduler-1", SYSTEMD_SOFT_NOFILE, hard)
        d = c.daemons["scheduler-1"]
        socks = hold_idle(d.address, d.port, proc.pid, IDLE_CONNECTIONS)
        try:
            answers_within(c, "scheduler-1", 5.0)
            assert soft_nofile(proc.pid) == (hard, hard)
            log = c.log("scheduler-1")
            assert log.count("open-file limit raised") == 1, log
            assert f"from {SYSTEMD_SOFT_NOFILE} to {hard}" in log
            # ... while the daemon holds every one of them (no cap reached at this limit).
            held = c.wait(lambda: (n := metric(c, "scheduler-1", "shinha_http_connections"))
                          is not None and n >= IDLE_CONNECTIONS and n, 10,
                          "the idle connections to be held")
            assert held >= IDLE_CONNECTIONS
            assert not any(closed_by_peer(s) for s in socks)
        finally:
            close_all(socks)
    finally:
        c.stop_all()


def test_at_a_hard_limit_of_1024_the_oldest_idle_connections_make_room(tmp_path: Path) -> None:
    c = scheduler_cluster(tmp_path, "http_header_timeout=60\n")
    try:
        proc = start_limited(c, "scheduler-1", SYSTEMD_SOFT_NOFILE, SYSTEMD_SOFT_NOFILE)
        d = c.daemons["scheduler-1"]
        socks = hold_idle(d.address, d.port, proc.pid, IDLE_CONNECTIONS)
        try:
            answers_within(c, "scheduler-1", 5.0)
            cap = connection_cap(8192, SYSTEMD_SOFT_NOFILE)
            assert f"at most {cap} connections" in c.log("scheduler-1")
            # The first ones opened were closed to make room: the daemon never ran out of
            # descriptors and never refused a connection.
            closed = c.wait(lambda: (n := sum(closed_by_peer(s) for s in socks))
                            >= IDLE_CONNECTIONS - cap and n, 10, "the oldest to be closed")
            assert closed <= IDLE_CONNECTIONS - cap + 10
            assert all(closed_by_peer(s) for s in socks[:IDLE_CONNECTIONS - cap])
            assert not any(closed_by_peer(s) for s in socks[-100:])
            log = c.log("scheduler-1")
            assert f"at the limit of {cap} connections: closing the oldest idle" in log
            assert log.count("closing the oldest idle") == 1, "one line a minute, not a flood"
            assert "Too many open files" not in log and "refusing" not in log
        finally:
            close_all(socks)
        answers_within(c, "scheduler-1", 5.0)
    finally:
        c.stop_all()


# --- timeouts ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A scheduler with short timeouts: 1 s for headers, 3 s idle, 1 s for a stalled body."""
    c = scheduler_cluster(tmp_path_factory.mktemp("quick"), "http_header_timeout=1\n"
                          "http_idle_timeout=3\nhttp_body_timeout=1\n")
    c.start("scheduler-1")
    yield c
    c.stop_all()


def test_header_timeout_closes_silent_and_trickling_clients(quick: Cluster) -> None:
    d = quick.daemons["scheduler-1"]
    opened = time.monotonic()
    silent = open_idle(d.address, d.port, 200)
    trickling = [connect(d.address, d.port) for _ in range(20)]
    closed_at: dict[str, float] = {}
    try:
        for sock in trickling:
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n")
        # A trickle of header lines buys no time: the headers must be complete within 1 s.
        while time.monotonic() < opened + 6.0 and len(closed_at) < 2:
            for group, socks in (("silent", silent), ("trickling", trickling)):
                if group not in closed_at and all(map(closed_by_peer, socks)):
                    closed_at[group] = time.monotonic() - opened
            for sock in trickling:
                with contextlib.suppress(OSError):
                    sock.send(b"X-Slow: 1\r\n")
            time.sleep(0.1)
    finally:
        close_all(silent + trickling)
    assert set(closed_at) == {"silent", "trickling"}, f"still open after 6 s: {closed_at}"
    assert all(0.9 < t < 6.0 for t in closed_at.values()), closed_at
    assert "header timeout" in quick.log("scheduler-1")


def test_idle_keepalive_connection_is_closed_after_the_idle_timeout(quick: Cluster) -> None:
    d = quick.daemons["scheduler-1"]
    sock = connect(d.address, d.port)
    try:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        answered = time.monotonic()
        # Kept alive past the header timeout (it is idle, not sending headers)...
        time.sleep(1.5)
        assert not closed_by_peer(sock)
        # ... and closed once idle for 3 s.
        wait_for(lambda: closed_by_peer(sock), 6, "the idle connection to be closed")
        assert 2.8 < time.monotonic() - answered < 6
    finally:
        sock.close()


def test_a_long_poll_outlives_every_timeout(quick: Cluster) -> None:
    started = time.monotonic()
    status, body = pull(quick, "scheduler-1", wait=4.0, timeout=10.0)
    assert status == 200 and body["jobs"] == []
    assert time.monotonic() - started > 3.5


def test_a_stalled_body_is_closed_a_slow_one_is_not(quick: Cluster) -> None:
    d = quick.daemons["scheduler-1"]
    body = json.dumps({"poller": "poller-slow", "wait": 0}).encode().ljust(60)
    head = (f"POST /checks/pull HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    stalled, slow = connect(d.address, d.port), connect(d.address, d.port)
    try:
        stalled.sendall(head + body[:10])
        slow.sendall(head)
        started = time.monotonic()
        for i in range(len(body)):  # one byte every 0.05 s: 3 s in all, never a 1 s gap
            slow.sendall(body[i:i + 1])
            time.sleep(0.05)
        assert time.monotonic() - started > 2.5
        wait_for(lambda: closed_by_peer(stalled), 3, "the stalled upload to be closed")
        assert read_response(slow).startswith(b"HTTP/1.1 200")
    finally:
        stalled.close()
        slow.close()


# --- malformed HTTP ----------------------------------------------------------------------------

MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET /ping HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + SECRET.encode()
    + b"\x01\r\n\r\n",
    b"GET /ping HTTP/1.1\r\nHost: x\r\nNo colon " + SECRET.encode() + b"\r\n\r\n",
    b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + SECRET.encode(),
]


def test_malformed_http_is_one_warning_line_per_peer(quick: Cluster) -> None:
    d = quick.daemons["scheduler-1"]
    before = len(quick.log("scheduler-1"))
    for source in ("127.0.0.7", "127.0.0.8"):
        for payload in MALFORMED * 3:
            sock = connect(d.address, d.port, source=source)
            try:
                sock.sendall(payload)
                read_to_close(sock)  # a 400 (unless the reset beat it), then closed
            finally:
                sock.close()
    assert quick.ping("scheduler-1")
    log = quick.log("scheduler-1")[before:]
    lines = [line for line in log.splitlines() if "malformed HTTP" in line]
    assert len(lines) == 2, log
    for source, line in zip(("127.0.0.7", "127.0.0.8"), lines, strict=True):
        assert " WARNING " in line and f"malformed HTTP from {source}: " in line
    assert "Traceback" not in log and " ERROR " not in log
    assert SECRET not in log and "[secret]" not in log and "Bearer" not in log
    assert "aaaaaaaa" not in log and "GARBAGE" not in log


# --- units: the throttle and the words -------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_reports_the_first_then_once_a_minute_with_a_count() -> None:
    clock = FakeClock()
    throttle = Throttle(interval=60.0, clock=clock, max_keys=2)
    assert throttle.admit("a") == 0
    assert [throttle.admit("a") for _ in range(5)] == [None] * 5
    assert throttle.admit("b") == 0  # per key
    clock.now += 60.0
    assert throttle.admit("a") == 5
    assert throttle.admit("a") is None
    throttle.admit("c")  # a third key: the one reported longest ago ("b") is forgotten
    assert throttle.admit("b") == 0


def test_server_log_turns_a_client_error_into_one_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    from aiohttp.http_exceptions import BadHttpMessage, InvalidHeader

    clock = FakeClock()
    server_log = ServerLog(Throttle(clock=clock))
    raw = InvalidHeader(b"Authorization: Bearer " + SECRET.encode())
    with caplog.at_level("DEBUG"):
        for _ in range(3):
            server_log.exception("Error handling request from %s", "10.0.0.9", exc_info=raw)
        clock.now += 61
        server_log.debug("Error handling request from %s", "10.0.0.9",
                         exc_info=BadHttpMessage("x"))
        server_log.exception("Unhandled exception", exc_info=RuntimeError("a bug of ours"))
        # A body that does not decode, met where aiohttp drains it: the peer from the context
        # of the connection's task.
        def drain() -> None:
            PEER.set("10.0.0.10")
            server_log.exception("Unhandled exception",
                                 exc_info=web.RequestPayloadError("Can not decode"))

        contextvars.copy_context().run(drain)
    client = [r for r in caplog.records if r.name == "shinha.http.limits"]
    assert [r.levelname for r in client] == ["WARNING", "WARNING", "WARNING"]
    assert client[0].getMessage() == ("malformed HTTP from 10.0.0.9: bad header (InvalidHeader)"
                                      "; connection closed")
    assert "(2 more from this peer since the last such line)" in client[1].getMessage()
    assert client[2].getMessage().startswith(
        "malformed HTTP from 10.0.0.10: bad request body (RequestPayloadError)")
    assert all(r.exc_info is None and SECRET not in r.getMessage() for r in client)
    ours = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(ours) == 1 and ours[0].levelname == "ERROR" and ours[0].exc_info is not None
    assert malformed_kind(BadHttpMessage("x")) == "malformed request (BadHttpMessage)"


def test_connection_cap_leaves_descriptors_for_the_rest() -> None:
    assert connection_cap(8192, 1024) == 768
    assert connection_cap(8192, 65536) == 8192
    assert connection_cap(100, 65536) == 100
    assert connection_cap(8192, 4096) == 3072

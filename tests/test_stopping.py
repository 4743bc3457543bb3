"""Stopping in order, within one budget (the main file's shutdown_timeout): new work is
refused at once (the listener closes; a request on an open connection gets 503 "stopping"),
a request in flight gets its answer, each stage is logged when late, and a second signal ends
the process at once.

In-process: a data-server (SQLite) whose store is held in the middle of an ingest. Real
processes: a receiver alone, with a request whose body is still arriving when SIGTERM comes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import aiohttp
import pytest

from shinha.config import load_config
from shinha.daemon.base import DaemonContext
from shinha.dataserver.daemon import DataserverDaemon
from shinha.errors import PeerStopping
from shinha.http.client import PeerClient
from shinha.scheduler.outbox import Outbox
from shinha.wire import CheckResult, IngestBatch, IngestReply, PingReply
from tests.cluster import ROOT, SECRET, Cluster, free_port, wait_for

AUTH = {"Authorization": f"Bearer {SECRET}"}


def dataserver(tmp_path: Path, budget: float) -> DataserverDaemon:
    (tmp_path / "shinha.cfg").write_text(
        f"cfg_file=objects.cfg\ncluster_secret={SECRET}\nworkdir=var\n"
        f"shutdown_timeout={budget}\n")
    (tmp_path / "objects.cfg").write_text(textwrap.dedent(f"""\
        define dataserver {{
            dataserver_name dataserver-1
            address         127.0.0.1
            port            {free_port()}
        }}
        """))
    loaded = load_config(tmp_path / "shinha.cfg")
    assert loaded.ok and loaded.config is not None, loaded.errors
    config = loaded.config
    link = config.daemons["dataserver"]["dataserver-1"]
    return DataserverDaemon(DaemonContext(config=config, link=link, state_root=tmp_path / "var"))


def ingest(rid: str) -> str:
    result = CheckResult(result_id=rid, host="web1", service="HTTP", return_code=0,
                         output="fine", finished=1000.0)
    return IngestBatch(scheduler="scheduler-1", results=[result]).model_dump_json()


def test_in_flight_answered_new_work_refused_and_every_stage_in_its_deadline(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    budget = 4.0
    daemon = dataserver(tmp_path, budget)
    held, release = asyncio.Event(), asyncio.Event()

    async def go() -> float:
        await daemon.start()
        real = daemon.store.ingest

        async def slow(batch: IngestBatch) -> IngestReply:
            held.set()
            await release.wait()
            return await real(batch)

        daemon.store.ingest = slow  # type: ignore[method-assign]
        client = PeerClient(SECRET)
        await client.start()
        async with aiohttp.ClientSession(daemon.ref.url) as http:
            async def post(rid: str) -> tuple[int, dict[str, object], str]:
                async with http.post("/api/ingest", data=ingest(rid),
                                     headers=AUTH) as reply:
                    return reply.status, await reply.json(), reply.headers.get(
                        "Retry-After", "")

            in_flight = asyncio.create_task(post("result-before"))
            await asyncio.wait_for(held.wait(), 5)
            async with http.get("/status") as reply:  # leaves an idle keep-alive connection
                assert reply.status == 200
            await client.call(daemon.ref, "GET", "/ping", None, PingReply, 2.0)  # and another
            began = time.monotonic()
            stop = asyncio.create_task(daemon.stop())
            await asyncio.wait_for(daemon.stopping.wait(), 1)
            while daemon.stop_stage != "drain":
                await asyncio.sleep(0.001)
            # On the open connection: a retryable refusal, naming why.
            status, body, retry = await post("result-after")
            assert (status, body["error"], retry) == (503, "stopping", "1"), body
            assert "nothing of this request was taken" in str(body["message"])
            # A scheduler's outbox sees why (PeerStopping), gives up, and answers its
            # waiting senders "not durable" (they keep their results).
            outbox = Outbox("scheduler-1", client)
            waiter = outbox.add(CheckResult(result_id="result-late", host="web1",
                                            service="HTTP", return_code=0), None, [])
            assert waiter is not None
            assert not await outbox.push([daemon.ref], 2.0, 0)
            assert [type(e) for e in outbox.last_errors] == [PeerStopping]
            assert outbox.tier_gone() and outbox.give_up() == 1
            assert waiter.done() and waiter.result() is False
            # A new connection: the listener is closed.
            with pytest.raises(aiohttp.ClientConnectorError):
                async with aiohttp.ClientSession() as other:
                    await other.get(f"{daemon.ref.url}/ping")
            release.set()
            status, body, _ = await in_flight
            assert status == 200 and body["accepted"] == ["result-before"], body
            await asyncio.wait_for(stop, budget + 1)
            took = time.monotonic() - began
        await client.close()
        return took

    took = asyncio.run(go())
    assert took < budget
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "late" in m], messages
    [done] = [m for m in messages if "dataserver dataserver-1 stopped in" in m]
    for stage in ("refuse", "drain", "cancel", "close"):
        assert f"{stage} " in done, done


# --- real processes: a receiver alone ---------------------------------------------------------


def receiver_cluster(root: Path, budget: float) -> Cluster:
    c = Cluster(root)
    c.add("receiver", "receiver-1")
    c.objects = textwrap.dedent("""\
        define command {
          command_name ok
          command_line $USER1$/check_dummy 0 fine
        }
        define host {
          host_name h0
          address 127.0.0.1
          check_command ok
        }
        """)
    c.write()
    with c.main.open("a") as main:
        main.write(f"shutdown_timeout={budget}\n")
    return c


def started_request(c: Cluster, body: bytes, sent: int) -> socket.socket:
    """A POST /api/results whose headers and first `sent` bytes of body are in the receiver's
    hands: its handler is running (a request answered on another connection after it shows
    the receiver has read it)."""
    d = c.daemons["receiver-1"]
    sock = socket.create_connection((d.address, d.port), timeout=10)
    sock.sendall(f"POST /api/results HTTP/1.1\r\nHost: {d.address}\r\n"
                 f"Authorization: Bearer {SECRET}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:sent])
    assert c.ping("receiver-1")
    return sock


def answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP response (the status, the headers, the body) from `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before an answer: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk
        rest += chunk
    return int(lines[0].split()[1]), headers, rest[:length]


def keep_alive(c: Cluster) -> socket.socket:
    """A connection that has been answered once and stays open (HTTP/1.1 keep-alive)."""
    d = c.daemons["receiver-1"]
    sock = socket.create_connection((d.address, d.port), timeout=10)
    sock.sendall(f"GET /status HTTP/1.1\r\nHost: {d.address}\r\n\r\n".encode())
    assert answer(sock)[0] == 200
    return sock


def refused(c: Cluster) -> bool:
    d = c.daemons["receiver-1"]
    try:
        socket.create_connection((d.address, d.port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def passive(rid: str) -> bytes:
    return json.dumps({"results": [{"host": "h0", "return_code": 1, "output": "x" * 2000,
                                    "result_id": rid}]}).encode()


def test_a_receiver_answers_the_request_in_flight_and_refuses_the_next(tmp_path: Path) -> None:
    budget = 5.0
    c = receiver_cluster(tmp_path / "c", budget)
    proc = c.start("receiver-1")
    c.dispatch_catalog("receiver-1")
    try:
        idle = keep_alive(c)
        body = passive("passive-in-flight-1")
        sock = started_request(c, body, 100)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        c.wait(lambda: refused(c), 5, "the listener to close")
        # Sent after the stop began, on a connection opened before: refused, retryable.
        idle.sendall(b"POST /api/results HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/json\r\nAuthorization: Bearer " + SECRET.encode()
                     + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        status, headers, text = answer(idle)
        assert status == 503 and json.loads(text)["error"] == "stopping", text
        assert headers.get("connection", "").lower() == "close"
        # The request in flight when SIGTERM came: its answer, and its item journaled.
        sock.sendall(body[100:])
        status, _, text = answer(sock)
        assert status == 202 and json.loads(text)["ids"] == ["passive-in-flight-1"], text
        assert proc.wait(timeout=budget + 2) == 0
        took = time.monotonic() - signalled
        assert took < budget, f"stopped in {took:.1f} s"
    finally:
        c.stop_all()
    log = c.log("receiver-1")
    assert "late" not in log, log[-3000:]
    assert "receiver receiver-1 stopped in" in log
    queue = (tmp_path / "c" / "var" / "receiver-receiver-1" / "queue.jsonl").read_text()
    assert "passive-in-flight-1" in queue


def test_a_late_drain_is_logged_and_the_stop_keeps_its_budget(tmp_path: Path) -> None:
    budget = 2.0
    c = receiver_cluster(tmp_path / "c", budget)
    proc = c.start("receiver-1")
    c.dispatch_catalog("receiver-1")
    try:
        stalled = started_request(c, passive("passive-stalled-1"), 10)  # never finished
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=budget + 3) == 0
        took = time.monotonic() - signalled
        stalled.close()
    finally:
        c.stop_all()
    assert took < budget + 0.5, f"stopped in {took:.1f} s"
    log = c.log("receiver-1")
    assert re.search(r"stop stage drain late: not done in 1\.\d s \(1 requests in flight\), "
                     "going on", log), log[-3000:]
    assert "stopped in" in log


def test_a_second_signal_ends_the_process_at_once(tmp_path: Path) -> None:
    c = receiver_cluster(tmp_path / "c", 60.0)
    proc = c.start("receiver-1")
    c.dispatch_catalog("receiver-1")
    try:
        stalled = started_request(c, passive("passive-stalled-2"), 10)
        proc.send_signal(signal.SIGTERM)
        c.wait(lambda: refused(c), 5, "the stop to begin")
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=5)
        took = time.monotonic() - signalled
        stalled.close()
    finally:
        c.stop_all()
    assert code == 1 and took < 1.0, (code, took)
    assert "second SIGTERM: exiting now, in stop stage 'drain'" in c.log("receiver-1")


def test_shinha_run_stops_every_daemon_and_a_second_signal_forces_it(tmp_path: Path) -> None:
    """`shinha run`: SIGTERM stops the children wave by wave; a second one while a child
    drains makes every child exit at once."""
    c = receiver_cluster(tmp_path / "c", 60.0)
    run = subprocess.Popen([sys.executable, "-m", "shinha", "run", "-c", str(c.main), "--host",
                            "localhost"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL)
    pid = 0
    try:
        wait_for(lambda: c.ping("receiver-1"), 30, "the receiver to listen")
        pid = int(c.get("receiver-1", "/status")["pid"])
        stalled = started_request(c, passive("passive-stalled-3"), 10)
        run.send_signal(signal.SIGTERM)
        wait_for(lambda: refused(c), 5, "the receiver to begin its stop")
        signalled = time.monotonic()
        run.send_signal(signal.SIGTERM)
        out, _ = run.communicate(timeout=10)
        took = time.monotonic() - signalled
        stalled.close()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    text = out.decode(errors="replace")
    assert run.returncode == 0 and "second signal: every daemon exits now" in text, text
    assert "all daemons stopped" in text and "killed" not in text, text
    assert took < 2.0, took

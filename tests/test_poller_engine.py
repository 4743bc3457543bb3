"""The poller's check engine: plugin output parsing, running plugins, workers, native checks.

Real processes throughout: Debian's monitoring plugins where they fit, small shell plugins
written into tmp_path for the rest, real worker processes, real TCP and HTTP servers on
127.0.0.1 port 0. Nothing of ours is mocked; every wait is for a condition, with a deadline.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop
from aiohttp import web

from shinha.errors import ExecutorClosed
from shinha.perfdata import parse_output, parse_perfdata
from shinha.poller.executor import Executor
from shinha.poller.plugin import command_argv, run_plugin
from shinha.wire import CheckJob, CheckResult, PerfDatum

PLUGINS = Path("/usr/lib/nagios/plugins")
CHECK_DUMMY = PLUGINS / "check_dummy"
T = TypeVar("T")


def arun(coro: Coroutine[Any, Any, T]) -> T:
    """Run coro on uvloop, as the poller daemon does."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def make_job(command_line: str, *, timeout: float = 10.0, service: str = "svc",
             module_type: str = "fork", timeout_state: int = 2,
             due: float | None = None) -> CheckJob:
    return CheckJob(job_id=uuid.uuid4().hex, host="web-1", service=service,
                    command_line=command_line, module_type=module_type, timeout=timeout,
                    timeout_state=timeout_state, due=time.time() if due is None else due)


def write_plugin(directory: Path, name: str, body: str, mode: int = 0o755) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n", encoding="utf-8")
    path.chmod(mode)
    return path


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll condition until it holds; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout} s: {what}")
        time.sleep(0.01)


async def await_until(condition: Callable[[], bool], timeout: float = 10.0,
                      what: str = "") -> None:
    """Poll condition on the loop until it holds; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout} s: {what}")
        await asyncio.sleep(0.01)


def process_gone(pid: int) -> bool:
    """True when pid no longer runs (exited, or a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            # The state follows the parenthesised command name, which may hold spaces.
            return fh.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None  # empty while the shell still writes it


@asynccontextmanager
async def running_executor(workers: int = 1, per_worker: int = 4, max_output: int = 8192,
                           native_per_worker: int = 16) -> AsyncIterator[Executor]:
    executor = Executor(workers=workers, per_worker=per_worker, max_output=max_output,
                        native_per_worker=native_per_worker)
    await executor.start()
    try:
        yield executor
    finally:
        await executor.stop(5.0)


# --- output and perfdata parsing ---------------------------------------------------------


def datum(label: str, value: float | None, uom: str = "", warn: str = "", crit: str = "",
          min: float | None = None, max: float | None = None) -> PerfDatum:
    return PerfDatum(label=label, value=value, uom=uom, warn=warn, crit=crit, min=min, max=max)


@pytest.mark.parametrize(("text", "expected"), [
    ("time=0.5s;1;2;0;10", [datum("time", 0.5, "s", "1", "2", 0.0, 10.0)]),
    ("'disk /var'=50%;80;90;0;100", [datum("disk /var", 50, "%", "80", "90", 0, 100)]),
    ("'it''s here'=1", [datum("it's here", 1)]),
    ("'a=b'=3c", [datum("a=b", 3, "c")]),
    ("load1=U;5;10", [datum("load1", None, "", "5", "10")]),
    ("a=1", [datum("a", 1)]),
    ("a=1;;", [datum("a", 1)]),
    ("a=1;;;;", [datum("a", 1)]),
    ("a=1;;;0", [datum("a", 1, min=0)]),
    ("a=1;@10:20;~:30", [datum("a", 1, warn="@10:20", crit="~:30")]),
    ("a=1;2;3;x;y", [datum("a", 1, warn="2", crit="3")]),
    ("neg=-1.5e3ms temp=+21,5", [datum("neg", -1500, "ms"), datum("temp", 21.5)]),
    ("a=.5 b=5.", [datum("a", 0.5), datum("b", 5)]),
    ("rx=12KB tx=3MB big=1GB huge=2TB raw=7B t=3us", [
        datum("rx", 12, "KB"), datum("tx", 3, "MB"), datum("big", 1, "GB"),
        datum("huge", 2, "TB"), datum("raw", 7, "B"), datum("t", 3, "us")]),
    ("rate=12req/s", [datum("rate", 12, "req/s")]),
    ("   a=1    b=2   ", [datum("a", 1), datum("b", 2)]),
    # bad items are skipped, the good ones around them kept
    ("foo bar=abc good=1 =5 'unterminated=3", [datum("good", 1)]),
    ("''=1 x= y=;1;2 z=2", [datum("z", 2)]),
    ("", []),
])
def test_parse_perfdata(text: str, expected: list[PerfDatum]) -> None:
    assert parse_perfdata(text) == expected


@pytest.mark.parametrize(("raw", "output", "long_output", "labels"), [
    ("OK - fine", "OK - fine", "", []),
    ("OK - fine\n", "OK - fine", "", []),
    ("OK - fine | a=1 b=2\n", "OK - fine", "", ["a", "b"]),
    ("OK - fine\nline 1\nline 2\n", "OK - fine", "line 1\nline 2", []),
    # Nagios 3 multi-line perfdata: after a `|` in the long output, everything is perfdata
    ("DISK OK - free space | /=2643MB;5948;5958;0;5968\n/ 15272 MB (77%);\n"
     "/boot 68 MB (69%); | /boot=68MB;88;93;0;98\n/home=69357MB;253404;253409;0;253414\n"
     "'/var log'=818MB;970;975;0;980",
     "DISK OK - free space", "/ 15272 MB (77%);\n/boot 68 MB (69%);",
     ["/", "/boot", "/home", "/var log"]),
    ("CRIT\nlong only | x=1", "CRIT", "long only", ["x"]),
    ("", "", "", []),
])
def test_parse_output(raw: str, output: str, long_output: str, labels: list[str]) -> None:
    got_output, got_long, perfdata = parse_output(raw, 8192)
    assert (got_output, got_long) == (output, long_output)
    assert [p.label for p in perfdata] == labels


def test_parse_output_truncates_to_bytes_without_splitting_characters() -> None:
    raw = "OK é" + "é" * 100 + "\n" + "x" * 500
    # 12 bytes end inside the fifth two-byte character: it is dropped whole
    output, long_output, _ = parse_output(raw, 12)
    assert (output, long_output) == ("OK éééé", "")
    output, long_output, _ = parse_output("OK\n" + "y" * 100, 20)
    assert (output, long_output) == ("OK", "y" * 17)


# --- command lines -----------------------------------------------------------------------


@pytest.mark.parametrize(("line", "argv"), [
    ("/usr/bin/plugin -H host -w 5", ["/usr/bin/plugin", "-H", "host", "-w", "5"]),
    ("plugin 'two words' \"and three words\"", ["plugin", "two words", "and three words"]),
    ("plugin -w 10% -c 20%", ["plugin", "-w", "10%", "-c", "20%"]),
    ("plugin | cat", ["/bin/sh", "-c", "plugin | cat"]),
    ("plugin > /dev/null", ["/bin/sh", "-c", "plugin > /dev/null"]),
    ("plugin -H $HOST", ["/bin/sh", "-c", "plugin -H $HOST"]),
    ("plugin; other", ["/bin/sh", "-c", "plugin; other"]),
    ("plugin *.log", ["/bin/sh", "-c", "plugin *.log"]),
    ("  plugin\t-w   5 ", ["plugin", "-w", "5"]),
    ("plugin a\\ b", ["plugin", "a b"]),
    ("LANG=C plugin", ["/bin/sh", "-c", "LANG=C plugin"]),
    ("plugin 'unbalanced", ["/bin/sh", "-c", "plugin 'unbalanced"]),
])
def test_command_argv(line: str, argv: list[str]) -> None:
    assert command_argv(line) == argv


# --- running plugins ---------------------------------------------------------------------


@pytest.mark.parametrize(("code", "prefix"), [
    (0, "OK"), (1, "WARNING"), (2, "CRITICAL"), (3, "UNKNOWN")])
def test_check_dummy_exit_codes(code: int, prefix: str) -> None:
    result = run_plugin(make_job(f"{CHECK_DUMMY} {code} 'all is well'"), 8192)
    assert result.return_code == code
    assert result.output == f"{prefix}: all is well"
    assert not result.timed_out
    assert result.job_id and result.host == "web-1" and result.service == "svc"
    assert len(result.result_id) == 32


def test_output_long_output_and_perfdata_from_a_plugin(tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path, "check_multi", """
echo "OK - 3 things | 'first thing'=1;5;10;0;100 second=2s"
echo "thing one"
echo "thing two | third=3%;;;0;100"
echo "fourth=U"
exit 0""")
    result = run_plugin(make_job(str(plugin)), 8192)
    assert result.return_code == 0
    assert result.output == "OK - 3 things"
    assert result.long_output == "thing one\nthing two"
    assert result.perfdata == [datum("first thing", 1, "", "5", "10", 0, 100),
                               datum("second", 2, "s"), datum("third", 3, "%", min=0, max=100),
                               datum("fourth", None)]


def test_stderr_is_the_output_when_stdout_is_empty(tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path, "check_err", 'echo "CRITICAL: on stderr | e=1" >&2\nexit 2')
    result = run_plugin(make_job(str(plugin)), 8192)
    assert (result.return_code, result.output) == (2, "CRITICAL: on stderr")
    assert result.perfdata == [datum("e", 1)]
    both = write_plugin(tmp_path, "check_both", 'echo "noise" >&2\necho "OK: stdout"')
    assert run_plugin(make_job(str(both)), 8192).output == "OK: stdout"


def test_no_output_and_no_command(tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path, "check_silent", "exit 1")
    result = run_plugin(make_job(str(plugin)), 8192)
    assert (result.return_code, result.output) == (1, "(No output returned from plugin)")
    empty = run_plugin(make_job("   "), 8192)
    assert (empty.return_code, empty.output) == (3, "(empty command line)")


@pytest.mark.parametrize(("code", "message"), [
    (4, "(Return code of 4 is out of bounds)"),
    (255, "(Return code of 255 is out of bounds)"),
])
def test_out_of_range_exit_code_is_unknown(tmp_path: Path, code: int, message: str) -> None:
    plugin = write_plugin(tmp_path, "check_odd", f'echo "OK: odd | a=1"\necho more\nexit {code}')
    result = run_plugin(make_job(str(plugin)), 8192)
    assert (result.return_code, result.output) == (3, message)
    assert result.long_output == "OK: odd\nmore"
    assert result.perfdata == []


def test_missing_and_not_executable_plugins(tmp_path: Path) -> None:
    missing = run_plugin(make_job(str(tmp_path / "check_nothing") + " -w 1"), 8192)
    assert (missing.return_code, missing.output) == (
        3, "(Return code of 127 is out of bounds - plugin may be missing)")
    # through the shell, which reports 127 itself
    by_shell = run_plugin(make_job(str(tmp_path / "check_nothing") + " > /dev/null"), 8192)
    assert (by_shell.return_code, by_shell.output) == (
        3, "(Return code of 127 is out of bounds - plugin may be missing)")
    assert "not found" in by_shell.long_output
    plugin = write_plugin(tmp_path, "check_noexec", "echo OK", mode=0o644)
    result = run_plugin(make_job(str(plugin)), 8192)
    assert (result.return_code, result.output) == (
        3, "(Return code of 126 is out of bounds - plugin may not be executable)")


def test_plugin_killed_by_a_signal_is_unknown(tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path, "check_crash", "echo partial\nkill -SEGV $$")
    result = run_plugin(make_job(str(plugin)), 8192)
    assert (result.return_code, result.output) == (
        3, "(Plugin was killed by signal 11 (SIGSEGV))")
    assert result.long_output == "partial"


def test_shell_metacharacters(tmp_path: Path) -> None:
    piped = run_plugin(make_job(f"{CHECK_DUMMY} 1 'via pipe' | tr a-z A-Z; exit 1"), 8192)
    assert (piped.return_code, piped.output) == (1, "WARNING: VIA PIPE")
    arithmetic = run_plugin(make_job('echo "OK: $((2 + 3)) | five=$((2 + 3))"'), 8192)
    assert (arithmetic.output, arithmetic.perfdata) == ("OK: 5", [datum("five", 5)])
    (tmp_path / "a.log").write_text("")
    globbed = run_plugin(make_job(f"ls {tmp_path}/*.log"), 8192)
    assert globbed.output == f"{tmp_path}/a.log"
    quoted = run_plugin(make_job(f"{CHECK_DUMMY} 0 \"it's quoted\""), 8192)
    assert quoted.output == "OK: it's quoted"  # quotes alone: exec'd directly, no shell
    in_quotes = run_plugin(make_job(f"{CHECK_DUMMY} 0 'a; b > c'"), 8192)
    assert in_quotes.output == "OK: a; b > c"  # the shell honours the quotes


def test_output_is_truncated_and_big_output_does_not_block(tmp_path: Path) -> None:
    # 1 MiB on each stream: more than a pipe holds, so it must be drained while it runs.
    plugin = write_plugin(tmp_path, "check_loud", "head -c 1048576 /dev/zero | tr '\\0' x\n"
                          "head -c 1048576 /dev/zero | tr '\\0' y >&2\nexit 0")
    result = run_plugin(make_job(str(plugin), timeout=20), 1000)
    assert result.return_code == 0
    assert result.output == "x" * 1000
    assert not result.timed_out


def test_times_and_latency(tmp_path: Path) -> None:
    due = time.time() - 5
    result = run_plugin(make_job(f"{CHECK_DUMMY} 0 ok", due=due), 8192)
    assert result.started <= result.finished <= time.time()
    assert result.latency == pytest.approx(result.started - due)
    assert result.latency >= 5


@pytest.mark.parametrize(("service", "state", "message"), [
    ("svc", 2, "(Service Check Timed Out)"),
    ("svc", 3, "(Service Check Timed Out)"),
    ("", 1, "(Host Check Timed Out)"),
])
def test_hanging_plugin_is_killed_at_its_timeout(tmp_path: Path, service: str, state: int,
                                                 message: str) -> None:
    pidfile = tmp_path / "pid"
    plugin = write_plugin(tmp_path, "check_hang", f"echo $$ > {pidfile}\nexec sleep 60")
    began = time.monotonic()
    result = run_plugin(make_job(str(plugin), timeout=0.5, service=service,
                                 timeout_state=state), 8192)
    assert time.monotonic() - began < 0.5 + 1.0 + 1.0  # timeout + grace + slack
    assert (result.return_code, result.output, result.timed_out) == (state, message, True)
    pid = read_pid(pidfile)
    assert pid is not None
    wait_until(lambda: process_gone(pid), what=f"plugin {pid} killed")


def test_grandchild_holding_stdout_is_killed_with_its_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    # The plugin exits at once, but the background sleep keeps its stdout open.
    plugin = write_plugin(tmp_path, "check_daemonish",
                          f"sleep 60 &\necho $! > {pidfile}\necho 'OK: parent done'\nexit 0")
    result = run_plugin(make_job(str(plugin), timeout=0.5), 8192)
    assert (result.return_code, result.timed_out) == (2, True)
    assert result.output == "(Service Check Timed Out)"
    assert result.long_output == "OK: parent done"
    pid = read_pid(pidfile)
    assert pid is not None
    wait_until(lambda: process_gone(pid), what=f"grandchild {pid} killed")


def test_plugin_ignoring_sigterm_gets_sigkill(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    # An ignored signal stays ignored across exec: the sleep ignores SIGTERM too.
    plugin = write_plugin(tmp_path, "check_stubborn",
                          f"trap '' TERM\nsleep 60 &\necho $! > {pidfile}\nwait")
    began = time.monotonic()
    result = run_plugin(make_job(str(plugin), timeout=0.3), 8192, kill_grace=0.3)
    assert time.monotonic() - began < 3.0
    assert result.timed_out
    pid = read_pid(pidfile)
    assert pid is not None
    wait_until(lambda: process_gone(pid), what=f"stubborn sleep {pid} killed")


# --- the executor and its workers --------------------------------------------------------


def test_executor_runs_plugins_in_workers(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    plugin = write_plugin(tmp_path, "check_where", f"echo $PPID > {pidfile}\necho OK")

    async def body() -> None:
        async with running_executor(workers=2, per_worker=2) as executor:
            assert executor.free(native=False) == 4
            results = await asyncio.gather(
                *(executor.run(make_job(f"{CHECK_DUMMY} {code % 4} n{code}"))
                  for code in range(12)))
            assert [r.return_code for r in results] == [c % 4 for c in range(12)]
            assert [r.output.split(": ")[1] for r in results] == [f"n{c}" for c in range(12)]
            assert len({r.result_id for r in results}) == 12
            await executor.run(make_job(str(plugin)))
            # the plugin's parent is a worker, not this process
            assert read_pid(pidfile) in executor.worker_pids
            assert os.getpid() not in executor.worker_pids

    arun(body())


def test_executor_timeout_kills_the_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    plugin = write_plugin(tmp_path, "check_daemonish", f"sleep 60 &\necho $! > {pidfile}")

    async def body() -> CheckResult:
        async with running_executor() as executor:
            return await executor.run(make_job(str(plugin), timeout=0.5, service="",
                                               timeout_state=3))

    result = arun(body())
    assert (result.return_code, result.output, result.timed_out) == (
        3, "(Host Check Timed Out)", True)
    pid = read_pid(pidfile)
    assert pid is not None
    wait_until(lambda: process_gone(pid), what=f"grandchild {pid} killed")


def test_concurrency_is_bounded_by_workers_times_per_worker(tmp_path: Path) -> None:
    spans = tmp_path / "spans"
    spans.mkdir()
    # Each plugin records when it started and ended (ns), as seen from inside the plugin.
    plugin = write_plugin(tmp_path, "check_span", f"""
start=$(date +%s%N)
sleep 0.3
echo "$start $(date +%s%N)" > {spans}/$$
echo OK""")
    workers, per_worker, jobs = 2, 3, 20

    async def body() -> None:
        async with running_executor(workers=workers, per_worker=per_worker) as executor:
            tasks = [asyncio.ensure_future(executor.run(make_job(str(plugin))))
                     for _ in range(jobs)]
            await await_until(lambda: executor.free(native=False) == 0, what="executor saturated")
            results = await asyncio.gather(*tasks)
            assert all(r.return_code == 0 for r in results)
            assert executor.free(native=False) == workers * per_worker

    arun(body())
    intervals = [tuple(map(int, f.read_text().split())) for f in spans.iterdir()]
    assert len(intervals) == jobs
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert 2 <= peak <= workers * per_worker


def test_killed_worker_is_replaced_and_its_plugins_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    plugin = write_plugin(tmp_path, "check_hang", f"echo $$ > {pidfile}\nexec sleep 60")

    async def body() -> None:
        async with running_executor(workers=1, per_worker=2) as executor:
            hanging = asyncio.ensure_future(executor.run(make_job(str(plugin), timeout=60)))
            await await_until(lambda: read_pid(pidfile) is not None, what="plugin started")
            plugin_pid = read_pid(pidfile)
            assert plugin_pid is not None
            [worker] = executor.worker_pids
            os.kill(worker, signal.SIGKILL)
            result = await asyncio.wait_for(hanging, 10)
            assert (result.return_code, result.output) == (3, "(worker died)")
            await await_until(lambda: process_gone(plugin_pid), what="orphan plugin killed")
            # the next job waits for the replacement worker and runs
            after = await asyncio.wait_for(executor.run(make_job(f"{CHECK_DUMMY} 0 back")), 30)
            assert (after.return_code, after.output) == (0, "OK: back")
            assert executor.workers_started == 2
            assert executor.worker_pids != [worker]
            assert executor.free(native=False) == 2

    arun(body())


def test_stop_kills_running_plugins(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    plugin = write_plugin(tmp_path, "check_hang", f"echo $$ > {pidfile}\nexec sleep 60")

    async def body() -> None:
        executor = Executor(workers=1, per_worker=2, max_output=8192)
        await executor.start()
        hanging = asyncio.ensure_future(executor.run(make_job(str(plugin), timeout=60)))
        await await_until(lambda: read_pid(pidfile) is not None, what="plugin started")
        [worker] = executor.worker_pids
        await executor.stop(5.0)
        with pytest.raises(ExecutorClosed):
            await hanging
        with pytest.raises(ExecutorClosed):
            await executor.run(make_job(f"{CHECK_DUMMY} 0 late"))
        assert executor.capacity == 0
        assert process_gone(worker)

    arun(body())
    pid = read_pid(pidfile)
    assert pid is not None
    wait_until(lambda: process_gone(pid), what="plugin killed at stop")


# --- native checks -----------------------------------------------------------------------


@asynccontextmanager
async def tcp_server(reply: bytes = b"") -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if reply:
            writer.write(reply)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def run_native(job: CheckJob) -> CheckResult:
    async def body() -> CheckResult:
        async with running_executor() as executor:
            return await executor.run(job)

    return arun(body())


def test_native_tcp_ok_and_closed_port() -> None:
    async def body() -> tuple[CheckResult, CheckResult, int]:
        async with running_executor() as executor, tcp_server() as port:
            ok = await executor.run(make_job(f"host=127.0.0.1 port={port} warning=5 "
                                             "critical=8", module_type="tcp"))
            closed = await executor.run(make_job(f"host=127.0.0.1 port={closed_port()}",
                                                 module_type="tcp"))
            return ok, closed, port

    ok, closed, port = arun(body())
    assert ok.return_code == 0
    assert ok.output.startswith("TCP OK - ")
    assert ok.output.endswith(f"second response time on 127.0.0.1 port {port}")
    [time_datum] = ok.perfdata
    assert (time_datum.label, time_datum.uom, time_datum.warn, time_datum.crit) == (
        "time", "s", "5", "8")
    assert time_datum.value is not None and 0 <= time_datum.value < 5
    assert (time_datum.min, time_datum.max) == (0.0, 10.0)
    assert closed.return_code == 2
    assert closed.output.endswith("Connection refused")


def test_native_tcp_send_expect_and_thresholds() -> None:
    async def body() -> list[CheckResult]:
        async with running_executor() as executor, tcp_server(b"+OK ready\r\n") as port:
            lines = [f"host=127.0.0.1 port={port} send='PING\\r\\n' expect='+OK'",
                     f"host=127.0.0.1 port={port} expect=SSH-2.0",
                     f"host=127.0.0.1 port={port} warning=0.000000001",
                     f"host=127.0.0.1 port={port} warning=5 critical=0.000000001",
                     f"host=localhost port={port}"]
            return [await executor.run(make_job(line, module_type="tcp")) for line in lines]

    expected, unexpected, slow, slower, by_name = arun(body())
    assert expected.return_code == 0
    assert (unexpected.return_code, unexpected.output) == (
        1, "TCP WARNING - Unexpected response from host/socket: +OK ready")
    assert slow.return_code == 1 and slow.output.startswith("TCP WARNING - ")
    assert slower.return_code == 2 and slower.output.startswith("TCP CRITICAL - ")
    assert by_name.return_code == 0


@pytest.mark.parametrize(("line", "message"), [
    ("host=127.0.0.1 port=abc", "(tcp: bad argument port='abc': invalid literal"),
    ("host=127.0.0.1 port=70000", "(tcp: bad argument port='70000': not a port 1-65535)"),
    ("host=127.0.0.1", "(tcp: missing argument port=)"),
    ("host=127.0.0.1 port=1 colour=blue", "(tcp: unknown argument 'colour'"),
    ("host=127.0.0.1 port=1 timeout=-1", "(tcp: bad argument timeout='-1'"),
    ("127.0.0.1 1", "(tcp: argument '127.0.0.1' is not key=value)"),
])
def test_native_tcp_bad_arguments(line: str, message: str) -> None:
    result = run_native(make_job(line, module_type="tcp"))
    assert result.return_code == 3
    assert result.output.startswith(message)


@asynccontextmanager
async def http_server() -> AsyncIterator[str]:
    release = asyncio.Event()

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500, text="broken")

    async def slow(request: web.Request) -> web.Response:
        await release.wait()  # until the test ends: a server that never answers in time
        return web.Response(text="late")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/ok")

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/fail", fail)
    app.router.add_get("/slow", slow)
    app.router.add_get("/moved", moved)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        release.set()
        await runner.cleanup()


def test_native_http() -> None:
    async def body() -> list[CheckResult]:
        async with running_executor() as executor, http_server() as base:
            jobs = [make_job(f"url={base}/ok warning=5", module_type="http"),
                    make_job(f"url={base}/fail", module_type="http"),
                    make_job(f"url={base}/slow", module_type="http", timeout=0.5,
                             timeout_state=3),
                    make_job(f"url={base}/slow timeout=0.3", module_type="http", timeout=5),
                    make_job(f"url={base}/moved", module_type="http"),
                    make_job(f"url={base}/moved expect_status=301,302", module_type="http"),
                    make_job(f"url=http://127.0.0.1:{closed_port()}/", module_type="http"),
                    make_job(f"url={base}/ok verify=2", module_type="http"),
                    make_job("url=ftp://example.org/", module_type="http"),
                    make_job(f"url={base}/ok", module_type="smtp")]
            return list(await asyncio.gather(*(executor.run(job) for job in jobs)))

    (ok, fail, slow, own_timeout, moved, moved_ok, refused, bad_verify, bad_url,
     unknown_type) = arun(body())
    assert ok.return_code == 0
    assert ok.output.startswith("HTTP OK: HTTP/1.1 200 OK - 5 bytes in ")
    assert [p.label for p in ok.perfdata] == ["time", "size"]
    assert ok.perfdata[0].warn == "5" and ok.perfdata[0].uom == "s"
    assert (ok.perfdata[1].value, ok.perfdata[1].uom) == (5, "B")
    assert fail.return_code == 2
    assert fail.output.startswith("HTTP CRITICAL: HTTP/1.1 500 Internal Server Error - 6 bytes")
    assert (slow.return_code, slow.output, slow.timed_out) == (
        3, "(Service Check Timed Out)", True)
    assert (own_timeout.return_code, own_timeout.output, own_timeout.timed_out) == (
        2, "CRITICAL - Socket timeout after 0.3 seconds", False)
    assert moved.return_code == 2 and " 301 " in moved.output
    assert moved_ok.return_code == 0
    assert refused.return_code == 2 and refused.output.startswith("HTTP CRITICAL - ")
    assert bad_verify.return_code == 3 and "verify='2'" in bad_verify.output
    assert bad_url.return_code == 3 and "url='ftp://example.org/'" in bad_url.output
    assert unknown_type.return_code == 3 and "'smtp'" in unknown_type.output


def test_native_checks_have_their_own_slots_in_the_workers() -> None:
    """Native checks run in the worker processes, limited by native_per_worker apart from
    the plugins' per_worker: a slow http check holds a native slot, not a plugin's."""
    async def body() -> None:
        async with running_executor(workers=1, per_worker=2, native_per_worker=3) as executor, \
                http_server() as base:
            assert executor.capacity == 2 + 3
            slow = [asyncio.ensure_future(executor.run(
                make_job(f"url={base}/slow", module_type="http", timeout=0.5)))
                for _ in range(4)]  # one more than the native slots: it waits its turn
            await await_until(lambda: executor.capacity == 2, what="native slots taken")
            plugin = await executor.run(make_job("/bin/echo still runs"))
            assert plugin.return_code == 0 and plugin.output == "still runs"
            results = await asyncio.gather(*slow)
            assert all(r.timed_out for r in results)
            assert executor.capacity == 5

    arun(body())

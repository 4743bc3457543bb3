"""Run one Nagios plugin the way Nagios does and turn what it did into a CheckResult.

Blocking by design: a poller worker runs each plugin in its own thread, because
`subprocess.Popen` releases the GIL while its vforked child execs, so several threads spawn at
once (`os.posix_spawn` and the asyncio loops do not; bench/plugin_spawn.py has the numbers).

The plugin gets its own session (so its whole process group can be killed), stdin from
/dev/null, stdout and stderr on pipes. It is done when it has exited and both pipes are closed;
a plugin whose leftover child keeps stdout open is still running. At the timeout its group gets
SIGTERM, then SIGKILL after a grace, and the result is the job's `timeout_state`.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shinha.ids import new_id
from shinha.perfdata import parse_output
from shinha.wire import CheckJob, CheckResult, PerfDatum

UNKNOWN = 3
#: Seconds between SIGTERM and SIGKILL to a timed-out plugin's process group.
KILL_GRACE = 1.0
#: Seconds to wait for a SIGKILLed plugin to be reaped; it is only a zombie by then.
REAP_WAIT = 5.0
_READ_SIZE = 65536
# Nagios 4 hands a command line to /bin/sh when it holds any of these (runcmd.c): redirection,
# pipes, job control, subshells, variables, globbing, comments. Quotes alone do not need one.
_SHELL_CHARS = frozenset("|&;<>()$`*?[]{}~#\n")
_QUOTING_CHARS = frozenset("'\"\\")
_BLANKS = re.compile(r"[ \t\r\n]+")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_devnull_fd: int | None = None
_devnull_lock = threading.Lock()


def command_argv(command_line: str) -> list[str]:
    """Return the argv Nagios would exec: `/bin/sh -c LINE` for shell syntax, else the words."""
    if not _SHELL_CHARS.isdisjoint(command_line):
        return ["/bin/sh", "-c", command_line]
    try:
        words = split_words(command_line)
    except ValueError:
        # An unbalanced quote: Nagios gives the line to the shell, which reports it.
        return ["/bin/sh", "-c", command_line]
    if words and _ASSIGNMENT.match(words[0]):
        return ["/bin/sh", "-c", command_line]  # `VAR=value plugin …` needs the shell
    return words


def split_words(line: str) -> list[str]:
    """Split line into words as shlex.split does; raise ValueError on an unbalanced quote."""
    if _QUOTING_CHARS.isdisjoint(line):
        # The same words as shlex.split, twenty times faster: this runs for every check.
        line = line.strip(" \t\r\n")
        return _BLANKS.split(line) if line else []
    return shlex.split(line)


def timeout_output(job: CheckJob) -> str:
    """Return the output Nagios gives a check that timed out."""
    return "(Host Check Timed Out)" if not job.service else "(Service Check Timed Out)"


def out_of_bounds_output(return_code: int) -> str:
    """Return the output Nagios gives a plugin whose exit code is not 0-3."""
    if return_code < 0:
        try:
            name = signal.Signals(-return_code).name
        except ValueError:
            name = "unknown signal"
        return f"(Plugin was killed by signal {-return_code} ({name}))"
    hint = {126: " - plugin may not be executable", 127: " - plugin may be missing"}
    return f"(Return code of {return_code} is out of bounds{hint.get(return_code, '')})"


@dataclass
class _Capture:
    """Bytes read from one pipe, kept up to a budget; the rest is read and dropped."""

    budget: int
    chunks: list[bytes] = field(default_factory=list)

    def add(self, data: bytes) -> None:
        if self.budget > 0:
            self.chunks.append(data[:self.budget])
            self.budget -= len(data)

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", "replace")


def run_plugin(job: CheckJob, max_output: int,
               on_start: Callable[[int], None] | None = None,
               kill_grace: float = KILL_GRACE) -> CheckResult:
    """Run the job's command line as a plugin; never raise for anything the plugin does.

    `on_start(pid)` is called once the plugin runs; its pid is also its process group.
    """
    started = time.time()
    deadline = time.monotonic() + job.timeout
    argv = command_argv(job.command_line)
    if not argv:
        return make_result(job, started, UNKNOWN, "(empty command line)")
    try:
        proc = subprocess.Popen(argv, stdin=_devnull(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    except FileNotFoundError:
        return make_result(job, started, UNKNOWN, out_of_bounds_output(127),
                           long_output=f"{argv[0]}: not found")
    except PermissionError:
        return make_result(job, started, UNKNOWN, out_of_bounds_output(126),
                           long_output=f"{argv[0]}: permission denied")
    except OSError as exc:
        return make_result(job, started, UNKNOWN, f"(Plugin could not be started: {exc})")
    if on_start is not None:
        on_start(proc.pid)
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = _Capture(max_output), _Capture(max_output)
    try:
        finished = _collect(proc, {proc.stdout.fileno(): stdout, proc.stderr.fileno(): stderr},
                            deadline)
        if not finished:
            # The leader is not reaped until it is done, so its pid still names the group
            # even when it exited and a child of it holds the pipes.
            _kill_group(proc.pid, signal.SIGTERM)
            finished = _collect(proc, {proc.stdout.fileno(): stdout,
                                       proc.stderr.fileno(): stderr},
                                time.monotonic() + kill_grace)
            if not finished:
                _kill_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(REAP_WAIT)
            return make_result(job, started, job.timeout_state, timeout_output(job),
                               long_output=(stdout.text() or stderr.text()).strip(),
                               timed_out=True)
        return_code = proc.wait()
    finally:
        proc.stdout.close()
        proc.stderr.close()
    return plugin_result(job, started, return_code, stdout.text(), stderr.text(), max_output)


def plugin_result(job: CheckJob, started: float, return_code: int, stdout: str, stderr: str,
                  max_output: int) -> CheckResult:
    """Build the result of a plugin that exited with return_code after printing stdout/stderr."""
    # Nagios 4 reads both streams; the output is stdout unless the plugin printed nothing there.
    raw = stdout if stdout.strip() else stderr
    output, long_output, perfdata = parse_output(raw, max_output)
    if 0 <= return_code <= 3:
        if not output and not long_output:
            output = "(No output returned from plugin)"
        return make_result(job, started, return_code, output, long_output, perfdata)
    text = "\n".join(part for part in (output, long_output) if part)
    return make_result(job, started, UNKNOWN, out_of_bounds_output(return_code),
                       long_output=text)


def make_result(job: CheckJob, started: float, return_code: int, output: str,
                long_output: str = "", perfdata: list[PerfDatum] | None = None,
                timed_out: bool = False) -> CheckResult:
    """Build a CheckResult for job that started at wall time `started` and ends now."""
    return CheckResult(
        result_id=new_id(), job_id=job.job_id, host=job.host, service=job.service,
        return_code=return_code, output=output, long_output=long_output,
        perfdata=perfdata or [], started=started, finished=time.time(),
        latency=started - job.due, timed_out=timed_out, kind=job.kind)


def _collect(proc: subprocess.Popen[bytes], pipes: dict[int, _Capture],
             deadline: float) -> bool:
    """Read the pipes until EOF and the leader exits, or until deadline; True if done."""
    poller = select.poll()
    for fd in pipes:
        poller.register(fd, select.POLLIN)
    open_fds = set(pipes)
    while open_fds:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        for fd, _ in poller.poll(remaining * 1000):
            data = os.read(fd, _READ_SIZE)
            if data:
                pipes[fd].add(data)
            else:
                poller.unregister(fd)
                open_fds.discard(fd)
    # Both pipes are closed; only a leader that closed them and runs on is left to wait for.
    if proc.poll() is not None:
        return True
    return _wait_exit(proc.pid, deadline)


def _wait_exit(pid: int, deadline: float) -> bool:
    """Wait for pid to exit (without reaping it) until deadline; True if it did."""
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(max(0.0, deadline - time.monotonic()) * 1000))
    finally:
        os.close(pidfd)


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    # Gone already, or a member we may not signal: nothing more we can do about it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _devnull() -> int:
    """Return an fd of /dev/null opened once per process: every plugin's stdin."""
    global _devnull_fd
    if _devnull_fd is None:
        with _devnull_lock:
            if _devnull_fd is None:
                _devnull_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    return _devnull_fd

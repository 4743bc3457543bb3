"""Benchmark: how fast one process can run `/bin/true` as a plugin, by spawn method.

Every method does what the poller must do for each plugin: a new session (its own process
group), stdin from /dev/null, stdout and stderr captured through pipes, the exit status
collected. Each method runs in a fresh child process so that loops and watchers do not mix,
with `--concurrency` plugins in flight, after a short warm-up. CPU is that of the whole tree
(the process, its workers, every plugin) during the measured part only.

    python bench/plugin_spawn.py                       # every method, 3,000 spawns each
    python bench/plugin_spawn.py --spawns 500 --methods raw_epoll,executor

Methods:
  asyncio_exec   asyncio's default loop + asyncio.create_subprocess_exec
  uvloop_exec    uvloop's loop + asyncio.create_subprocess_exec
  popen_threads  subprocess.Popen(...).communicate() in a thread per plugin
  plugin_threads shinha.poller.plugin.run_plugin in a thread per plugin (a worker's work,
                 without the frames to and from the main process)
  raw_asyncio    os.posix_spawn(setsid) + pidfd + pipes read by the default loop's add_reader
  raw_uvloop     the same on uvloop
  raw_epoll      the same on a plain selectors.EpollSelector loop, no asyncio
  hybrid_asyncio subprocess.Popen in a few threads only to spawn, then pidfd + pipes read by
                 the default loop's add_reader
  hybrid_uvloop  the same on uvloop
  executor       shinha.poller.executor.Executor (the real thing: uvloop main process,
                 JSON frames over a socketpair, a worker running plugin.run_plugin in threads)
  executor_2     the same with two workers

What it showed on the 2-core machine (see bench/out/plugin_spawn.jsonl): a single thread
cannot spawn faster than the kernel execs the child (~1 ms for /bin/true here), because the
parent is suspended until the vforked child has exec'd. `subprocess.Popen` releases the GIL
around that, so several threads spawn at once and the children's exec work goes to the other
core; `os.posix_spawn` holds the GIL, so it does not scale with threads, and every loop-based
method is bound to one spawn at a time. Hence the workers: one thread per running plugin.

The last line of output is one JSON document starting with `{"bench": "plugin_spawn"`; it is
also appended to bench/out/plugin_spawn.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from _common import REPO_DIR, append_result, proc_times, run_on_uvloop

PLUGIN = "/bin/true"
METHODS = ("asyncio_exec", "uvloop_exec", "popen_threads", "plugin_threads", "raw_asyncio",
           "raw_uvloop", "raw_epoll", "hybrid_asyncio", "hybrid_uvloop", "executor",
           "executor_2")
WARM_UP = 50
#: Threads that only spawn, for the hybrid methods: Popen releases the GIL around vfork.
SPAWN_THREADS = 4
# Plugins inherit ignored signals; Python ignores SIGPIPE and SIGXFSZ, a plugin must not.
DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)


# --- asyncio / uvloop create_subprocess_exec -----------------------------------------------


async def _exec_one() -> int:
    proc = await asyncio.create_subprocess_exec(
        PLUGIN, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True)
    await proc.communicate()
    return proc.returncode if proc.returncode is not None else -1


async def _bounded(one: Callable[[], Coroutine[Any, Any, int]], spawns: int,
                   concurrency: int) -> int:
    gate = asyncio.Semaphore(concurrency)
    failures = 0

    async def guarded() -> None:
        nonlocal failures
        async with gate:
            if await one() != 0:
                failures += 1

    async with asyncio.TaskGroup() as group:
        for _ in range(spawns):
            await gate.acquire()
            gate.release()
            group.create_task(guarded())
    return failures


# --- subprocess.Popen from threads ---------------------------------------------------------


def _popen_one() -> int:
    proc = subprocess.Popen([PLUGIN], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    proc.communicate()
    return proc.returncode


def run_popen_threads(spawns: int, concurrency: int) -> int:
    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        return sum(1 for code in pool.map(lambda _: _popen_one(), range(spawns)) if code != 0)


def run_plugin_threads(spawns: int, concurrency: int) -> int:
    from shinha.poller.plugin import run_plugin
    from shinha.wire import CheckJob

    def one(_: int) -> int:
        job = CheckJob(job_id=uuid.uuid4().hex, host="bench", service="true",
                       command_line=PLUGIN, timeout=30, due=time.time())
        return run_plugin(job, 8192).return_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        return sum(1 for code in pool.map(one, range(spawns)) if code != 0)


# --- raw posix_spawn + pidfd ---------------------------------------------------------------


def _raw_spawn() -> tuple[int, int, int, int]:
    """Start the plugin; return (pid, pidfd, stdout read end, stderr read end)."""
    out_r, out_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    err_r, err_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        pid = os.posix_spawn(PLUGIN, [PLUGIN], os.environ, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2),
        ], setsid=True, setsigdef=DEFAULT_SIGNALS)
    finally:
        os.close(out_w)
        os.close(err_w)
    return pid, os.pidfd_open(pid), out_r, err_r


async def _wait_fds(pid: int, fds: tuple[int, ...]) -> None:
    """Wait until the pidfd fired and every pipe hit EOF; close them."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    open_fds = set(fds)
    pidfd = fds[0]

    def readable(fd: int) -> None:
        if fd == pidfd or not os.read(fd, 65536):
            loop.remove_reader(fd)
            open_fds.discard(fd)
            if not open_fds and not done.done():
                done.set_result(None)

    for fd in fds:
        loop.add_reader(fd, readable, fd)
    await done
    for fd in fds:
        os.close(fd)


async def _raw_one() -> int:
    pid, pidfd, out_r, err_r = _raw_spawn()
    await _wait_fds(pid, (pidfd, out_r, err_r))
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _popen_spawn() -> tuple[subprocess.Popen[bytes], int, int, int]:
    proc = subprocess.Popen([PLUGIN], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None and proc.stderr is not None
    out_r, err_r = os.dup(proc.stdout.fileno()), os.dup(proc.stderr.fileno())
    proc.stdout.close()
    proc.stderr.close()
    os.set_blocking(out_r, False)
    os.set_blocking(err_r, False)
    return proc, os.pidfd_open(proc.pid), out_r, err_r


_spawn_pool: concurrent.futures.ThreadPoolExecutor | None = None


async def _hybrid_one() -> int:
    global _spawn_pool
    if _spawn_pool is None:
        _spawn_pool = concurrent.futures.ThreadPoolExecutor(SPAWN_THREADS)
    loop = asyncio.get_running_loop()
    proc, pidfd, out_r, err_r = await loop.run_in_executor(_spawn_pool, _popen_spawn)
    await _wait_fds(proc.pid, (pidfd, out_r, err_r))
    return proc.wait()


def run_raw_epoll(spawns: int, concurrency: int) -> int:
    selector = selectors.EpollSelector()
    started = failures = 0
    # pid -> fds still open; a plugin is done when its pidfd fired and both pipes hit EOF
    running: dict[int, set[int]] = {}
    owner: dict[int, tuple[int, int]] = {}  # fd -> (pid, pidfd)
    while started < spawns or running:
        while started < spawns and len(running) < concurrency:
            pid, pidfd, out_r, err_r = _raw_spawn()
            started += 1
            running[pid] = {pidfd, out_r, err_r}
            for fd in (pidfd, out_r, err_r):
                owner[fd] = (pid, pidfd)
                selector.register(fd, selectors.EVENT_READ)
        for key, _ in selector.select():
            fd = key.fd
            pid, pidfd = owner[fd]
            if fd != pidfd and os.read(fd, 65536):
                continue
            selector.unregister(fd)
            del owner[fd]
            os.close(fd)
            fds = running[pid]
            fds.discard(fd)
            if not fds:
                del running[pid]
                _, status = os.waitpid(pid, 0)
                failures += os.waitstatus_to_exitcode(status) != 0
    selector.close()
    return failures


# --- the real executor ---------------------------------------------------------------------


def _tree_cpu(pid: int) -> float:
    """CPU seconds of pid and of its children it has reaped (for a worker: its plugins)."""
    times = proc_times(pid)
    if times is None:
        raise SystemExit(f"worker {pid} is gone")
    return times.own + times.children


def _own_cpu() -> float:
    """CPU seconds of this process and of the children it has reaped."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


async def _run_executor(spawns: int, concurrency: int, workers: int) -> Measured:
    from shinha.poller.executor import Executor
    from shinha.wire import CheckJob

    executor = Executor(workers=workers, per_worker=concurrency, max_output=8192)
    await executor.start()
    gate = asyncio.Semaphore(concurrency * workers)

    async def one() -> int:
        async with gate:
            job = CheckJob(job_id=uuid.uuid4().hex, host="bench", service="true",
                           command_line=PLUGIN, timeout=30, due=time.time())
            return (await executor.run(job)).return_code

    async def batch(count: int) -> int:
        codes = await asyncio.gather(*(one() for _ in range(count)))
        return sum(1 for code in codes if code != 0)

    try:
        await batch(min(WARM_UP, spawns))  # worker imports and first spawns do not count
        pids = executor.worker_pids
        cpu = _own_cpu() + sum(_tree_cpu(pid) for pid in pids)
        began = time.perf_counter()
        failures = await batch(spawns)
        seconds = time.perf_counter() - began
        if executor.worker_pids != pids:
            raise SystemExit("a worker died during the bench")
        cpu = _own_cpu() + sum(_tree_cpu(pid) for pid in pids) - cpu
    finally:
        await executor.stop(5.0)
    return Measured(seconds, cpu, failures)


# --- child side: run one method, print one JSON line -------------------------------------


@dataclass
class Measured:
    seconds: float
    cpu_seconds: float
    failures: int


#: The methods that run one coroutine per plugin on an event loop: (the coroutine, on uvloop).
ON_A_LOOP: dict[str, tuple[Callable[[], Coroutine[Any, Any, int]], bool]] = {
    "asyncio_exec": (_exec_one, False), "uvloop_exec": (_exec_one, True),
    "raw_asyncio": (_raw_one, False), "raw_uvloop": (_raw_one, True),
    "hybrid_asyncio": (_hybrid_one, False), "hybrid_uvloop": (_hybrid_one, True),
}


def run_method(method: str, spawns: int, concurrency: int) -> int:
    """Run `spawns` plugins by `method`; return how many did not exit 0."""
    if method in ON_A_LOOP:
        one, on_uvloop = ON_A_LOOP[method]
        bounded = _bounded(one, spawns, concurrency)
        return run_on_uvloop(bounded) if on_uvloop else asyncio.run(bounded)
    if method == "popen_threads":
        return run_popen_threads(spawns, concurrency)
    if method == "plugin_threads":
        return run_plugin_threads(spawns, concurrency)
    if method == "raw_epoll":
        return run_raw_epoll(spawns, concurrency)
    raise SystemExit(f"unknown method {method!r}")


def child_main(method: str, spawns: int, concurrency: int) -> None:
    if method in ("executor", "executor_2"):
        workers = 2 if method == "executor_2" else 1
        measured = run_on_uvloop(_run_executor(spawns, concurrency, workers))
    else:
        run_method(method, min(WARM_UP, spawns), concurrency)  # imports, first page faults
        cpu = _own_cpu()
        began = time.perf_counter()
        failures = run_method(method, spawns, concurrency)
        measured = Measured(time.perf_counter() - began, _own_cpu() - cpu, failures)
    print(json.dumps({"seconds": measured.seconds, "cpu_seconds": measured.cpu_seconds,
                      "failures": measured.failures}))


# --- parent side -------------------------------------------------------------------------


def measure(method: str, spawns: int, concurrency: int) -> dict[str, Any]:
    """Run one method in a fresh child; return its rate and CPU use."""
    cmd = [sys.executable, __file__, "--child", method, "--spawns", str(spawns),
           "--concurrency", str(concurrency)]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, cwd=REPO_DIR, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO_DIR)})
    if done.returncode != 0:
        return {"method": method, "error": f"exit {done.returncode}"}
    report = json.loads(done.stdout.decode().strip().splitlines()[-1])
    seconds, cpu = float(report["seconds"]), float(report["cpu_seconds"])
    return {"method": method, "spawns": spawns, "seconds": round(seconds, 3),
            "per_second": round(spawns / seconds), "failures": report["failures"],
            "cpu_seconds": round(cpu, 3), "cpu_ms_per_spawn": round(cpu / spawns * 1000, 3),
            "cores_busy": round(cpu / seconds, 2)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32,
                        help="plugins in flight at once (per worker for executor methods)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child, args.spawns, args.concurrency)
        return 0
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods: {', '.join(unknown)}")
    rows = []
    print(f"{'method':<14} {'spawns/s':>9} {'seconds':>8} {'cpu ms':>7} {'cores':>6} "
          f"{'fail':>5}")
    for method in methods:
        row = measure(method, args.spawns, args.concurrency)
        rows.append(row)
        if "error" in row:
            print(f"{method:<14} {row['error']}")
        else:
            print(f"{method:<14} {row['per_second']:>9} {row['seconds']:>8} "
                  f"{row['cpu_ms_per_spawn']:>7} {row['cores_busy']:>6} {row['failures']:>5}")
    raw = [r for r in rows if "error" not in r and not r["method"].startswith("executor")]
    doc = {
        "bench": "plugin_spawn", "plugin": PLUGIN, "spawns": args.spawns,
        "concurrency": args.concurrency, "cpus": os.cpu_count(),
        "results": {r["method"]: {k: v for k, v in r.items() if k != "method"} for r in rows},
        "fastest_single_process": max(raw, key=lambda r: r["per_second"])["method"]
        if raw else None,
    }
    append_result(doc, dirty_paths=("shinha", "bench"))
    return 1 if any("error" in r or r.get("failures") for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The process entry of one daemon: load the configuration, run the daemon on uvloop until
SIGTERM/SIGINT (or a critical loop that failed for good), reload on SIGHUP, stop in stages; a
second SIGTERM/SIGINT ends the process at once."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import re
import signal
import sys
from typing import Any

from shinha import redact
from shinha.config import load_cluster, load_config
from shinha.config.loader import Config
from shinha.daemon.base import EXIT_FAILED, Daemon, DaemonContext, state_root
from shinha.daemon.supervise import FAULT_ENV, Fault
from shinha.db.options import mariadb_options
from shinha.errors import ConfigError, DaemonError, ShinhaError
from shinha.gctune import tune_gc
from shinha.spawn import end_with_parent

log = logging.getLogger("shinha")

DAEMON_CLASSES = {
    "arbiter": "shinha.arbiter.daemon:ArbiterDaemon",
    "scheduler": "shinha.scheduler.daemon:SchedulerDaemon",
    "poller": "shinha.poller.daemon:PollerDaemon",
    "dataserver": "shinha.dataserver.daemon:DataserverDaemon",
    "receiver": "shinha.receiver.daemon:ReceiverDaemon",
}


def daemon_class(role: str) -> type[Daemon]:
    module, _, name = DAEMON_CLASSES[role].partition(":")
    cls: type[Daemon] = getattr(importlib.import_module(module), name)
    return cls


def setup_logging(role: str, name: str, level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s [{role} {name}] %(name)s: %(message)s")


def run_daemon(main_file: str, role: str, name: str, log_level: str = "INFO",
               parent_pid: int | None = None) -> int:
    """Run one daemon in this process; return the process exit code.

    With `parent_pid` (`shinha run`), the daemon gets SIGTERM when that process ends.
    """
    setup_logging(role, name, log_level)
    if parent_pid is not None:
        try:
            end_with_parent(parent_pid)
        except DaemonError as exc:
            log.error("%s %s not started: %s", role, name, exc)
            return 1
    if role not in DAEMON_CLASSES:
        log.error("unknown role %r (one of %s)", role, ", ".join(DAEMON_CLASSES))
        return 2
    # Only an arbiter reads the monitored objects; a satellite reads who is who (the daemons,
    # realms and modules) and gets its work by dispatch: it starts, and goes on running what
    # it holds, while the rest of the tree has errors the arbiter refuses.
    result = load_config(main_file) if role == "arbiter" else load_cluster(main_file)
    if not result.ok or result.config is None:
        for diag in result.errors:
            log.error("%s", diag)
        log.error("the configuration has errors: %s %s not started", role, name)
        return 2
    if role != "arbiter" and result.warnings:
        left = [d for d in result.warnings if "left to the arbiter" in d.message]
        if left:
            log.warning("%s %s: %d problems outside the daemons' part of the tree (the "
                        "arbiter refuses it until they are fixed), first: %s", role, name,
                        len(left), left[0])
    config = result.config
    redact.install(_secrets(config))
    link = config.daemons.get(role, {}).get(name)
    if link is None:
        known = ", ".join(sorted(config.daemons.get(role, {}))) or "none"
        log.error("no %s named %r in %s (defined: %s)", role, name, main_file, known)
        return 2
    fault: Fault | None = None
    if os.environ.get(FAULT_ENV):
        try:
            fault = Fault.parse(os.environ[FAULT_ENV])
        except ValueError as exc:
            log.error("%s", exc)
            return 2
        log.warning("%s is set: loop %s is made to fail (%s); for tests only", FAULT_ENV,
                    fault.loop, "not retryable" if fault.fatal else
                    "every run" if not fault.times else f"its first {fault.times} runs")
    ctx = DaemonContext(config=config, link=link, state_root=state_root(config), fault=fault)
    daemon = daemon_class(role)(ctx)
    tune_gc()
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_serve(daemon))


async def _serve(daemon: Daemon) -> int:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_loop_exception)
    reload = asyncio.Event()

    def on_signal(signum: signal.Signals) -> None:
        if not daemon.stop_requested.is_set():
            log.info("%s %s: %s: stopping (within %.0f s; a second signal ends it at once)",
                     daemon.role, daemon.name, signum.name,
                     daemon.config.main.shutdown_timeout)
            daemon.request_stop()
            return
        # The operator insists: what is not durable yet is lost as by a crash (kill -9), and
        # a crash loses nothing acknowledged (journals, outboxes, idempotent ids).
        log.warning("%s %s: second %s: exiting now, in stop stage %r", daemon.role,
                    daemon.name, signum.name, daemon.stop_stage or "(not begun)")
        logging.shutdown()
        os._exit(EXIT_FAILED)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    loop.add_signal_handler(signal.SIGHUP, reload.set)
    try:
        await daemon.start()
    except ShinhaError as exc:
        log.error("%s %s cannot start: %s", daemon.role, daemon.name, exc)
        await daemon.stop()
        return EXIT_FAILED

    async def reloader() -> None:
        while True:
            await reload.wait()
            reload.clear()
            await daemon.reload()

    reload_task = asyncio.create_task(reloader(), name="reloader")
    await daemon.stop_requested.wait()
    reload_task.cancel()
    await daemon.stop()
    return daemon.exit_code


def _secrets(config: Config) -> list[str]:
    """What must never reach a log: the cluster secret, the database passwords."""
    secrets = [config.main.cluster_secret]
    for module in config.modules.values():
        if module.module_type == "mariadb":
            secrets += _database_passwords(module.module_name, module.options,
                                           config.resources)
    return secrets


def _database_passwords(name: str, options: dict[str, str],
                        resources: dict[str, str]) -> list[str]:
    try:
        return mariadb_options(name, options, resources).secrets()
    except ConfigError:
        # Invalid options (the data-server says why when it starts): mask every password
        # as written, and what its $USERn$ macros stand for.
        found: list[str] = []
        for key, value in options.items():
            if key.endswith("pass"):
                found.append(value)
                found += [resources.get(m, "") for m in re.findall(r"\$(USER\d+)\$", value)]
        return found


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    log.error("event loop: %s", context.get("message"), exc_info=exc)

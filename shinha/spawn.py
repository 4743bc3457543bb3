"""How shinha starts its own Python processes (the daemons of `shinha run`, the poller's
workers): with this interpreter and the current directory kept off `sys.path`; and how a child
asks to end with the parent that started it."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

from shinha.errors import DaemonError

#: prctl(2) option, from <linux/prctl.h>.
PR_SET_PDEATHSIG = 1


def python_command(module: str, *args: str) -> list[str]:
    """Return the command line that runs `python -m module ARGS` with this interpreter."""
    # -P (safe_path, Python 3.11): the current directory is not put first on sys.path. Without
    # it a directory named `shinha` where the process starts is imported instead of the
    # package: a configuration folder (`cd /etc && shinha run -c shinha/shinha.cfg`), or code
    # planted by anyone who may write there, run as the daemon's user. Unlike -I, PYTHONPATH
    # and the environment still count: a source checkout run with PYTHONPATH keeps working.
    return [sys.executable, "-P", "-m", module, *args]


def end_with_parent(parent: int, sig: signal.Signals = signal.SIGTERM) -> None:
    """Have the kernel send `sig` to this process when `parent` ends; raise if it has ended.

    Linux only (elsewhere only the check is made). The signal comes when the *thread* that
    started this process ends: `shinha run` starts its daemons from its main thread.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            error = ctypes.get_errno()
            raise DaemonError(f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(error)}")
    # The parent may have died before the prctl: this process was re-parented then, and no
    # signal will ever come.
    if os.getppid() != parent:
        raise DaemonError(f"the process that started this one (pid {parent}) has ended")

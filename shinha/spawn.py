"""How shinha starts its own Python processes (the daemons of `shinha run`, the poller's
workers): with this interpreter and the current directory kept off `sys.path`."""

from __future__ import annotations

import sys


def python_command(module: str, *args: str) -> list[str]:
    """Return the command line that runs `python -m module ARGS` with this interpreter."""
    # -P (safe_path, Python 3.11): the current directory is not put first on sys.path. Without
    # it a directory named `shinha` where the process starts is imported instead of the
    # package: a configuration folder (`cd /etc && shinha run -c shinha/shinha.cfg`), or code
    # planted by anyone who may write there, run as the daemon's user. Unlike -I, PYTHONPATH
    # and the environment still count: a source checkout run with PYTHONPATH keeps working.
    return [sys.executable, "-P", "-m", module, *args]

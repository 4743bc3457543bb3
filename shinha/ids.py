"""Unique ids without a system call each: a random per-process prefix and a counter.

`uuid.uuid4()` reads 16 bytes from the kernel every time; at thousands of checks a second
(one job id, one result id, sometimes an event id each) that was a visible part of a
scheduler's and a poller worker's CPU. These ids are as unique (80 random bits per process,
then a 48-bit counter) and as long (32 hex digits) as a uuid4's hex.
"""

from __future__ import annotations

import itertools
import os


def _reset() -> None:
    global _prefix, _counter
    _prefix = os.urandom(10).hex()
    _counter = itertools.count(1)


_prefix = ""
_counter = itertools.count(1)
_reset()
os.register_at_fork(after_in_child=_reset)


def new_id() -> str:
    """A new id: 32 lowercase hex digits, unique across processes and restarts."""
    return f"{_prefix}{next(_counter):012x}"

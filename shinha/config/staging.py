"""Load a tree for a daemon that is running (SIGHUP): read, validate and prepare it in a worker
thread, so that the event loop goes on serving meanwhile — an arbiter's heartbeats above all:
on the loop, 100,000 services held it for seconds, past the spare's window.

A thread, not a process: the work is Python code that gives the GIL back every switch
interval (5 ms), and the few long C calls (serializing a part) are cut in slices
(shinha.wirejson); a process would hand the tree back pickled, and unpickling millions of
objects on the loop costs about what parsing them does. docs/performance.md has the numbers.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from shinha.config.loader import Config, load_config
from shinha.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Staged(Generic[T]):
    """A valid tree, and what the daemon prepared from it, ready to be swapped in."""

    config: Config
    prepared: T


def stage(main_file: str, prepare: Callable[[Config], T],
          unless_hash: str = "") -> Staged[T] | None:
    """Load `main_file` and `prepare` it, off the event loop (run it in a worker thread).

    None when the tree's hash is `unless_hash` (nothing changed); ConfigError, carrying every
    error, when the tree has errors.
    """
    # The cyclic collector stays off for the whole job, not only for the load: enabled while
    # `prepare` allocates, its next young collection would walk the millions of objects the
    # load left in the young generation, holding the GIL — the loop with it — all along.
    enabled = gc.isenabled()
    gc.disable()
    try:
        result = load_config(main_file)
        if not result.ok or result.config is None:
            errors = result.errors
            del result  # the refused tree is freed here, not on the loop
            raise ConfigError(f"{main_file}: {len(errors)} errors", list(errors))
        config = result.config
        del result
        if config.config_hash == unless_hash:
            return None
        staged = Staged(config, prepare(config))
        # The tree lives until the next reload: out of the collector's sight, as
        # shinha.gctune does at start (a cheap move, where a collection would stop the loop).
        # Reference counting still frees it once replaced; what sits in a cycle stays (the
        # hostgroups: about 650 objects for 100 of them, per reload).
        gc.freeze()
        return staged
    finally:
        if enabled:
            gc.enable()


async def stage_off_loop(main_file: str, prepare: Callable[[Config], T],
                         unless_hash: str = "") -> Staged[T] | None:
    """`stage` in a worker thread; the caller swaps the result in, on the loop, in one step."""
    return await asyncio.to_thread(stage, main_file, prepare, unless_hash)


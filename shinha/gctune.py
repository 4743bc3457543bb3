"""Garbage-collector settings for long-running processes (daemons, poller workers)."""

from __future__ import annotations

import gc

#: Allocations between two young-generation collections (CPython's default is 700).
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Keep the cyclic collector from rescanning what lives as long as the daemon.

    A daemon holds hundreds of thousands of long-lived objects (the configuration, a part's
    checks and states) and allocates thousands of short-lived ones a second (every message
    is models). With the default thresholds the collector ran every 700 allocations and
    its older generations walked the whole heap over and over. The objects alive now are
    moved out of its sight (`gc.freeze`), and young collections run less often; cycles are
    still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)

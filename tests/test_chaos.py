"""Chaos (issue 9): under steady passive and active load on the two-host HA cluster, kill -9
the active daemon of every role and SIGSTOP the master arbiter past its window, one fault
after another, restarting each as systemd would; then every result the cluster took (a 202
from a receiver, a "results durable" line from a poller) is stored exactly once.

The short form runs with every `pytest -q` (a few faults, drawn from the seed); the long form
(`make chaos`, SHINHA_CHAOS=long) injects every fault four times and prints the figures of
docs/high-availability.md as one JSON line. SHINHA_CHAOS_SEED=N replays a run's schedule.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.chaos import Run, chaos_cluster, long_plan, report_line, short_plan, trace

LONG = os.environ.get("SHINHA_CHAOS", "") == "long"

pytestmark = pytest.mark.chaos


def chaos_seed() -> int:
    raw = os.environ.get("SHINHA_CHAOS_SEED", "")
    return int(raw) if raw else random.SystemRandom().randrange(1, 1_000_000)


@pytest.mark.timeout(3600 if LONG else 300)
def test_every_result_stored_once_through_a_series_of_faults(tmp_path: Path) -> None:
    seed = chaos_seed()
    plan = long_plan(seed) if LONG else short_plan(seed)
    print(f"chaos: {plan.form} form, seed {seed} (replay: SHINHA_CHAOS_SEED={seed}), "
          f"faults: {' '.join(plan.kinds)}", flush=True)
    c = chaos_cluster(tmp_path / "chaos")
    run = Run(plan, c, log=lambda line: print(line, flush=True))
    try:
        c.start_all()
        report = run.execute()
        traces = [trace(c, rid) for rid in report["lost_ids"][:5] + report["duplicated_ids"][:5]]
    finally:
        c.stop_all()
    report = run.finish(report)
    line = report_line(report)
    print(line, flush=True)
    detail = f"{line}\n" + "\n".join(traces)
    assert report["expected"] > 100, detail
    assert report["lost"] == 0, detail
    assert report["duplicated"] == 0, detail
    assert report["files_in_two_stores"] == 0 and report["files_duplicated_rows"] == 0, detail
    assert report["stored_once"] == report["expected"], detail
    assert report["unanswered_ping"] == [], detail
    assert report["drain_error"] == "", detail
    assert sum(report["faults"].values()) == len(plan.kinds), detail

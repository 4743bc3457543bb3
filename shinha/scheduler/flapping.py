"""Nagios's flap detection: a weighted percentage of state changes over the last 21 states.

Each of the 20 transitions between consecutive states that differ counts, the oldest with a
weight of 0.75 rising evenly to 1.25 for the newest; the sum is a percentage of the 20. A check
starts flapping when that reaches its high threshold and stops when it falls to its low one.
A history shorter than 21 states counts as if the missing older states were all equal to its
oldest (Nagios fills the history with the first state).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from shinha.wire import AlertState

HISTORY = 21
LOW_WEIGHT, HIGH_WEIGHT = 0.75, 1.25
Change = Literal["start", "stop"] | None


def percent_state_change(history: Sequence[int]) -> float:
    """The weighted percentage of state changes of `history` (oldest first)."""
    offset = HISTORY - len(history)
    changes = 0.0
    for i in range(1, len(history)):
        if history[i] != history[i - 1]:
            x = i + offset  # the transition's place among the 20, 1 = oldest
            changes += (x - 1) * (HIGH_WEIGHT - LOW_WEIGHT) / (HISTORY - 2) + LOW_WEIGHT
    return changes * 100.0 / (HISTORY - 1)


def record(alert: AlertState, state: int, low: float, high: float) -> Change:
    """Add one state to the history; return "start" or "stop" when flapping begins or ends."""
    history = alert.flap_history
    history.append(state)
    if len(history) > HISTORY:
        del history[: len(history) - HISTORY]
    percent = percent_state_change(history)
    alert.percent_state_change = round(percent, 2)
    if not alert.is_flapping and percent >= high:
        alert.is_flapping = True
        return "start"
    if alert.is_flapping and percent <= low:
        alert.is_flapping = False
        return "stop"
    return None

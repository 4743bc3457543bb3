"""Weighted rendezvous hashing: every (key, candidate) pair gets a score, the highest wins.

Adding or losing a candidate moves only the keys that now score highest elsewhere (about its
share), and the same candidates give the same answer on every daemon. The arbiter cuts the
hosts among schedulers with it, a scheduler spreads a downed poller's checks among the alive
ones with it: shared, so that neither role imports the other.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence


def _unit(text: str) -> float:
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 1) / (2**64 + 1)


def rendezvous(key: str, candidates: Sequence[tuple[str, int]]) -> str | None:
    """Pick the candidate (name, weight) with the highest weighted score for `key`."""
    best, best_score = None, -math.inf
    for name, weight in candidates:
        score = -weight / math.log(_unit(f"{key}\0{name}"))
        if score > best_score or (score == best_score and best is not None and name < best):
            best, best_score = name, score
    return best

"""Items a receiver accepted but that the next hop refuses as invalid: moved aside to a file,
counted, logged once, so that they never block the items queued behind them."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from shinha.errors import JournalError
from shinha.wire import DeadLetter

log = logging.getLogger(__name__)


class DeadLetters:
    """`deadletter.jsonl` in the daemon's state dir: one JSON line per item moved aside."""

    def __init__(self, path: Path, daemon: str) -> None:
        self.path = path
        self.daemon = daemon
        self.count = 0
        self._logged = False

    def open(self) -> None:
        """Count what earlier runs moved aside (shown in /status and /metrics)."""
        if self.path.exists():
            with open(self.path, "rb") as fh:
                self.count = sum(1 for _ in fh)

    def add(self, key: str, item: Any, reason: str, when: float) -> None:
        """Write one item aside, durably; raise JournalError if the disk refuses (the item
        then stays queued)."""
        line = DeadLetter(id=key, time=when, reason=reason, item=item).model_dump_json() + "\n"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise JournalError(f"cannot write {self.path}: {exc.strerror}") from None
        self.count += 1
        if not self._logged:
            log.warning("receiver %s: item %s refused as invalid by the next hop, moved to %s "
                        "(%s); further ones are counted in /status and /metrics, not logged",
                        self.daemon, key, self.path, reason)
            self._logged = True

"""A small durable queue on disk: what a daemon accepted survives its own crash.

Append-only JSON lines: `{"put": id, "item": …}` when an item is accepted, `{"done": id}` when
it was handed on. Reopening replays the file and keeps what is not done; the file is
rewritten compactly at open. Appends are flushed and fsynced in batches by `sync()`, which a
daemon awaits before it answers "accepted".
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

#: Compact once the file holds this many lines and four times more than pending items.
COMPACT_MIN_LINES = 20_000


class Journal:
    """Items by id, persisted as they are put and done."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: dict[str, Any] = {}
        self._fh: Any = None
        self._dirty = False
        self._lines = 0
        self._lock = asyncio.Lock()

    def open(self) -> int:
        """Replay the file, compact it, and return how many items are still pending."""
        items: dict[str, Any] = {}
        if self.path.exists():
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        break  # a torn last line after a crash: everything before it counts
                    if "put" in entry:
                        items[entry["put"]] = entry.get("item")
                    elif "done" in entry:
                        items.pop(entry["done"], None)
        self.items = items
        self._rewrite()
        return len(items)

    def _rewrite(self) -> None:
        """Write the pending items alone to a new file, durably, and append to it from now."""
        if self._fh is not None:
            self._fh.close()
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for key, item in self.items.items():
                fh.write(json.dumps({"put": key, "item": item}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        self._lines = len(self.items)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def put(self, key: str, item: Any) -> bool:
        """Add an item (False if that id is already pending: a re-sent duplicate)."""
        if key in self.items:
            return False
        self.items[key] = item
        self._fh.write(json.dumps({"put": key, "item": item}) + "\n")
        self._dirty = True
        self._lines += 1
        return True

    def done(self, key: str) -> None:
        if self.items.pop(key, None) is not None:
            self._fh.write(json.dumps({"done": key}) + "\n")
            self._dirty = True
            self._lines += 1

    async def sync(self) -> None:
        """Make every put and done so far durable (one fsync for many callers)."""
        async with self._lock:
            if not self._dirty:
                return
            self._dirty = False
            self._fh.flush()
            await asyncio.to_thread(os.fsync, self._fh.fileno())
            if self._lines > max(COMPACT_MIN_LINES, 4 * len(self.items)):
                # Mostly "done" lines: start a new file with what is pending, so a daemon
                # that runs for months does not grow its journal without end.
                await asyncio.to_thread(self._rewrite)

    def __len__(self) -> int:
        return len(self.items)

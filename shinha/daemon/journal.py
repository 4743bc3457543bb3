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


class RawJSON(str):
    """An item already serialized as JSON text: written as it is (a poller writes thousands
    of results a second, which it has as JSON from its workers)."""


def _put_line(key: str, item: Any) -> str:
    text = item if isinstance(item, RawJSON) else json.dumps(item)
    return f'{{"put":{json.dumps(key)},"item":{text}}}\n'


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
        #: Lines appended while a compaction runs (None when none does): they go to the new
        #: file too, after the snapshot the compaction writes.
        self._tail: list[str] | None = None

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
            _write_snapshot(fh, list(self.items.items()))
        os.replace(tmp, self.path)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        self._lines = len(self.items)

    async def _compact(self) -> None:
        """Rewrite the file with what is pending while the daemon goes on putting and
        finishing items: the snapshot is written and fsynced in a thread, the lines appended
        meanwhile follow it, and the new file takes the old one's place."""
        snapshot = list(self.items.items())
        self._tail = []
        tmp = self.path.with_suffix(".tmp")
        try:
            fh = await asyncio.to_thread(_open_snapshot, tmp, snapshot)
        except BaseException:
            self._tail = None
            raise
        tail, self._tail = self._tail, None
        fh.writelines(tail)
        fh.flush()
        os.replace(tmp, self.path)
        old, self._fh = self._fh, fh
        old.close()
        self._lines = len(snapshot) + len(tail)
        self._dirty = bool(tail)  # the next sync makes the tail durable in the new file

    @property
    def closed(self) -> bool:
        return self._fh is None

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def put(self, key: str, item: Any) -> bool:
        """Add an item (False if that id is already pending: a re-sent duplicate): anything
        `json.dumps` takes, or a RawJSON text. Replayed items come back parsed."""
        if key in self.items:
            return False
        self.items[key] = item
        line = _put_line(key, item)
        self._fh.write(line)
        if self._tail is not None:
            self._tail.append(line)
        self._dirty = True
        self._lines += 1
        return True

    def done(self, key: str) -> None:
        if self.items.pop(key, None) is not None:
            line = json.dumps({"done": key}) + "\n"
            self._fh.write(line)
            if self._tail is not None:
                self._tail.append(line)
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
                await self._compact()

    def __len__(self) -> int:
        return len(self.items)


def _write_snapshot(fh: Any, items: list[tuple[str, Any]]) -> None:
    for key, item in items:
        fh.write(_put_line(key, item))
    fh.flush()
    os.fsync(fh.fileno())


def _open_snapshot(path: Path, items: list[tuple[str, Any]]) -> Any:
    """A new file at `path` holding `items`, durable, left open for appending."""
    fh = open(path, "w", encoding="utf-8")  # noqa: SIM115 - returned open
    try:
        _write_snapshot(fh, items)
    except BaseException:
        fh.close()
        raise
    return fh

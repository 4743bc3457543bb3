"""A small durable queue on disk: what a daemon accepted survives its own crash.

Append-only JSON lines: `{"put": id, "item": …}` when an item is accepted, `{"done": id}` when
it was handed on. Reopening replays the file and keeps what is not done; the file is
rewritten compactly at open and, while running, once it is mostly "done" lines.

A put is *staged* until a flush has written and fsynced it: only then is it in `items`, where
the daemon's forwarding loops look. A flush that fails (a full disk, an I/O error) cuts the
file back to where the last good flush left it and drops the puts it carried, so a request
that is answered "failed" leaves nothing behind, in memory or on disk; its "done" lines are
kept and written by the next flush. A caller learns whether *its* puts are durable from the
ticket it took after putting them (`ticket()`, then `commit(ticket)`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

from shinha.errors import JournalError

log = logging.getLogger(__name__)


class RawJSON(str):
    """An item already serialized as JSON text: written as it is (a poller writes thousands
    of results a second, which it has as JSON from its workers)."""


def put_line(key: str, item: Any) -> str:
    """A JournalPut line (written by hand: a poller writes thousands a second)."""
    text = item if isinstance(item, RawJSON) else json.dumps(item)
    return f'{{"put":{json.dumps(key)},"item":{text}}}\n'


def done_line(key: str) -> str:
    """A JournalDone line."""
    return f'{{"done":{json.dumps(key)}}}\n'


#: Compact once the file holds this many lines and four times more than pending items.
COMPACT_MIN_LINES = 20_000
#: How many failed flush generations are remembered for callers still waiting on them.
FAILED_MEMORY = 4_096


class Journal:
    """Items by id, persisted as they are put and done."""

    def __init__(self, path: Path) -> None:
        self.path = path
        #: Durable items (written and fsynced), oldest first.
        self.items: dict[str, Any] = {}
        self._fd = -1
        #: Size of the file after the last good flush: a failed flush is cut back to it.
        self._size = 0
        self._lines = 0
        #: Lines and puts of the next flush (generation `_gen`).
        self._buffer: list[str] = []
        self._staged: dict[str, Any] = {}
        #: Puts of the flush under way, and the keys done while it runs.
        self._flushing: dict[str, Any] = {}
        self._done_in_flight: set[str] = set()
        self._gen = 1
        self._durable_gen = 0
        self._failed: OrderedDict[int, str] = OrderedDict()
        self._lock = asyncio.Lock()
        self.failing = False

    # --- open and close -----------------------------------------------------------------------

    def open(self) -> int:
        """Replay the file, compact it, and return how many items are still pending."""
        items: dict[str, Any] = {}
        if self.path.exists():
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        break  # a torn last line after a crash: everything before it counts
                    if not isinstance(entry, dict):
                        break
                    if "put" in entry:
                        items[entry["put"]] = entry.get("item")
                    elif "done" in entry:
                        items.pop(entry["done"], None)
        self.items = items
        try:
            _write_snapshot(self.path.with_suffix(".tmp"), list(items.items()))
            os.replace(self.path.with_suffix(".tmp"), self.path)
        except OSError as exc:
            raise JournalError(f"cannot write the journal {self.path}: {exc.strerror}") from None
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._size = os.fstat(self._fd).st_size
        self._lines = len(items)
        return len(items)

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        """Write what is buffered (best effort: a failing disk loses only unacknowledged
        puts) and close the file."""
        if self._fd < 0:
            return
        try:
            if self._buffer:
                _append(self._fd, "".join(self._buffer).encode())
            os.fsync(self._fd)
        except OSError as exc:
            log.warning("journal %s: last write on close failed: %s", self.path, exc.strerror)
        os.close(self._fd)
        self._fd = -1

    # --- putting and finishing ----------------------------------------------------------------

    def put(self, key: str, item: Any) -> bool:
        """Stage an item (False if that id is already held: a re-sent duplicate): anything
        `json.dumps` takes, or a RawJSON text. Replayed items come back parsed."""
        if key in self.items or key in self._staged or key in self._flushing:
            return False
        self._staged[key] = item
        self._buffer.append(put_line(key, item))
        return True

    def done(self, key: str) -> None:
        """The item was handed on: forget it (also one not yet durable)."""
        if self.items.pop(key, None) is None and self._staged.pop(key, None) is None:
            if key not in self._flushing:
                return
            self._done_in_flight.add(key)
        self._buffer.append(done_line(key))

    def ticket(self) -> int:
        """The flush that will carry what was put so far: `commit` it."""
        return self._gen

    async def sync(self) -> None:
        """Make every put and done so far durable (one fsync for many callers); raise
        JournalError if the flush carrying them failed (their puts are then dropped)."""
        await self.commit(self._gen)

    async def commit(self, ticket: int) -> None:
        """Return once the puts made before `ticket()` returned `ticket` are durable, or
        raise JournalError if the flush that carried them failed."""
        async with self._lock:
            if ticket in self._failed:
                raise JournalError(self._failed[ticket])
            if ticket <= self._durable_gen:
                return
            if ticket == self._gen and not self._buffer:
                return
            await self._flush()
            if ticket in self._failed:
                raise JournalError(self._failed[ticket])

    async def _flush(self) -> None:
        gen, self._gen = self._gen, self._gen + 1
        lines, self._buffer = self._buffer, []
        self._flushing, self._staged = self._staged, {}
        data = "".join(lines).encode()
        try:
            await asyncio.to_thread(_append, self._fd, data, self._size)
        except OSError as exc:
            message = (f"cannot write the journal {self.path}: {exc.strerror or exc}"
                       + (" (disk full)" if exc.errno == 28 else ""))
            self._failed[gen] = message
            while len(self._failed) > FAILED_MEMORY:
                self._failed.popitem(last=False)
            # The puts are refused (their requests answer "failed"); the dones are not lost.
            dones = [line for line in lines if line.startswith('{"done"')]
            self._buffer[:0] = dones
            self._flushing, self._done_in_flight = {}, set()
            if not self.failing:
                log.error("%s; refusing new items until it works again", message)
                self.failing = True
            return
        if self.failing:
            log.warning("journal %s: writing again", self.path)
            self.failing = False
        self._size += len(data)
        self._lines += len(lines)
        self._durable_gen = gen
        for key, item in self._flushing.items():
            if key not in self._done_in_flight:
                self.items[key] = item
        self._flushing, self._done_in_flight = {}, set()
        if self._lines > max(COMPACT_MIN_LINES, 4 * (len(self.items) + len(self._staged))):
            # Mostly "done" lines: start a new file with what is pending, so a daemon that
            # runs for months does not grow its journal without end.
            await self._compact()

    async def _compact(self) -> None:
        """Rewrite the file with the durable items; what is buffered meanwhile follows them
        at the next flush."""
        snapshot = list(self.items.items())
        tmp = self.path.with_suffix(".tmp")
        try:
            await asyncio.to_thread(_write_snapshot, tmp, snapshot)
            os.replace(tmp, self.path)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            log.warning("journal %s: compaction failed (%s); kept the longer file", self.path,
                        exc.strerror)
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        os.close(self._fd)
        self._fd = fd
        self._size = os.fstat(fd).st_size
        self._lines = len(snapshot)

    def __len__(self) -> int:
        return len(self.items) + len(self._staged) + len(self._flushing)


def _append(fd: int, data: bytes, size: int | None = None) -> None:
    """Append `data` and fsync; on failure cut the file back to `size`."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except OSError:
        if size is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
        raise


def _write_snapshot(path: Path, items: list[tuple[str, Any]]) -> None:
    """A new file at `path` holding `items`, durable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _append(fd, "".join(put_line(key, item) for key, item in items).encode())
    finally:
        os.close(fd)

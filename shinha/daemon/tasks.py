"""Owned background tasks: nothing is fire-and-forget, shutdown knows what did not finish."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskRegistry:
    """Keep every background task of a daemon; log the ones that fail; cancel them all."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.owner}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("task %s failed: %r", task.get_name(), exc, exc_info=exc)

    def __len__(self) -> int:
        return len(self._tasks)

    def names(self) -> list[str]:
        """The names of the tasks running now."""
        return sorted(t.get_name() for t in self._tasks)

    async def cancel_all(self, deadline: float | None = None) -> list[str]:
        """Cancel every task (and any it starts meanwhile) and wait for them, at most
        `deadline` seconds (None: the caller's own deadline bounds the wait); return the
        names still running."""
        loop = asyncio.get_running_loop()
        end = None if deadline is None else loop.time() + deadline
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            _, pending = await asyncio.wait(
                tasks, timeout=None if end is None else max(0.0, end - loop.time()))
            if pending:
                names = sorted(t.get_name() for t in pending)
                log.warning("%s: tasks still running after %.1f s: %s", self.owner,
                            deadline or 0.0, ", ".join(names))
                return names
        return []

"""A daemon's state directory: pid file (one instance only), small persisted JSON documents."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any

from shinha.errors import DaemonError


class StateDir:
    """The directory where a daemon keeps what must survive a restart (epoch, queues, db)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_fd: int | None = None

    def open(self) -> None:
        """Create the directory and take the pid-file lock; fail if another instance holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        pid_path = self.path / "daemon.pid"
        fd = os.open(pid_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise DaemonError(f"another instance (pid {other or '?'}) runs with state dir "
                              f"{self.path}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def close(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                (self.path / "daemon.pid").unlink()
            os.close(self._lock_fd)
            self._lock_fd = None

    def load(self, name: str, default: dict[str, Any] | None = None) -> dict[str, Any]:
        """Read a persisted document (the default if there is none or it is unreadable)."""
        path = self.path / f"{name}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return dict(default or {})
        return data if isinstance(data, dict) else dict(default or {})

    def save(self, name: str, data: dict[str, Any]) -> None:
        """Write a document atomically and durably (write, fsync, rename, fsync dir)."""
        path = self.path / f"{name}.json"
        tmp = path.with_suffix(".json.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

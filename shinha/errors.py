"""The exception hierarchy of shinha: every error we raise on purpose is a ShinhaError."""

from __future__ import annotations


class ShinhaError(Exception):
    """Base of every error shinha raises on purpose."""


class ConfigError(ShinhaError):
    """The configuration cannot be loaded; `diagnostics` says what and where."""

    def __init__(self, message: str, diagnostics: list[object] | None = None) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics or []


class DaemonError(ShinhaError):
    """A daemon cannot start or run (its state dir is taken, it is not defined, …)."""


class LoopFailed(DaemonError):
    """A background loop cannot go on: never retried (shinha.daemon.supervise); a critical
    loop that raises it stops the daemon."""


class StorageError(ShinhaError):
    """The data-server's database cannot be opened, read or written."""


class JournalError(StorageError):
    """A daemon's journal cannot be written (a full disk, an I/O error): nothing was taken."""


class DatabaseError(StorageError):
    """A MariaDB node refused or failed a request; `node` is its host:port."""

    def __init__(self, node: str, message: str) -> None:
        super().__init__(f"database {node}: {message}")
        self.node = node


class DatabaseUnreachable(DatabaseError):
    """The node did not answer (refused, timed out, lost the connection)."""


class DatabaseFull(DatabaseError):
    """The node's disk (or a table) is full: nothing was written; free space on the node."""


class DatabaseReadOnly(DatabaseError):
    """The node is read-only (a replica, or a node back from a failure): never written."""


class DatabaseFenced(DatabaseError):
    """The database holds a higher database epoch than the writer: a stale writer."""

    def __init__(self, node: str, held: int, mine: int) -> None:
        why = ("a newer primary was published" if held > mine else
               "this node has not been promoted to that epoch yet")
        super().__init__(node, f"holds database epoch {held}, this writer {mine}: refused "
                         f"({why})")
        self.held = held
        self.mine = mine


class ExecutorClosed(ShinhaError):
    """The poller's check executor is stopped or stopping: the check has no result."""


class PeerError(ShinhaError):
    """A call to another daemon failed."""

    def __init__(self, peer: str, message: str) -> None:
        super().__init__(f"{peer}: {message}")
        self.peer = peer


class PeerUnreachable(PeerError):
    """The peer did not answer (connection refused, timeout, TLS failure)."""


class PeerRefused(PeerError):
    """The peer answered with an error status."""

    def __init__(self, peer: str, status: int, body: str) -> None:
        super().__init__(peer, f"HTTP {status}: {body[:200]}")
        self.status = status
        self.body = body


class PeerStopping(PeerRefused):
    """The peer is stopping (503 "stopping"): it took nothing; send it again later, or to
    another daemon."""


class StaleEpoch(PeerRefused):
    """The peer holds a higher epoch and refused our request (409)."""

    def __init__(self, peer: str, epoch: int, body: str) -> None:
        super().__init__(peer, 409, body)
        self.epoch = epoch


class Fenced(ShinhaError):
    """A request from an epoch lower than ours: answered 409."""

    def __init__(self, held: int, got: int) -> None:
        super().__init__(f"epoch {got} is not above the epoch {held} this daemon holds")
        self.held = held


class RequestError(ShinhaError):
    """A request we received is bad: 4xx with the field at fault."""

    def __init__(self, status: int, error: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.field = field

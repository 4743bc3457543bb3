"""Client side of the wire: one session per daemon, a timeout on every call, bounded retries."""

from __future__ import annotations

import random
import ssl
from collections.abc import AsyncIterator, Iterable
from typing import TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from shinha.clock import Clock, SystemClock
from shinha.errors import PeerError, PeerRefused, PeerStopping, PeerUnreachable, StaleEpoch
from shinha.wire import DaemonRef, ErrorBody, FencedRefusal

M = TypeVar("M", bound=BaseModel)


def peers_gone(errors: Iterable[PeerError]) -> bool:
    """Whether every one of these failures says its peer is stopping or not listening: while
    this daemon stops too, waiting for them is pointless (the work stays with its sender)."""
    return all(isinstance(e, PeerStopping | PeerUnreachable) for e in errors)


def _error_of(payload: bytes) -> str:
    try:
        return ErrorBody.model_validate_json(payload).error
    except ValidationError:
        return ""


#: A body above this size is written a piece of PIECE bytes at a time.
LARGE_BODY = 4 << 20
PIECE = 1 << 20


async def _pieces(data: bytes) -> AsyncIterator[memoryview]:
    view = memoryview(data)
    for start in range(0, len(data), PIECE):
        yield view[start:start + PIECE]


class PeerClient:
    """Calls other daemons; raises PeerUnreachable, PeerRefused or StaleEpoch, never returns
    an error value."""

    def __init__(self, secret: str, ca_cert: str = "", check_hostname: bool = False,
                 clock: Clock | None = None) -> None:
        self.secret = secret
        self.clock: Clock = clock or SystemClock()
        self._session: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext | None = None
        if ca_cert:
            self._ssl = ssl.create_default_context(cafile=ca_cert)
            self._ssl.check_hostname = check_hostname

    async def start(self) -> None:
        # No default Authorization header: the secret goes only to endpoints that check it.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=60))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, peer: DaemonRef, method: str, path: str,
                   body: BaseModel | bytes | None, reply: type[M], timeout: float,
                   headers: dict[str, str] | None = None) -> M:
        """Make one call and validate the reply. A body in bytes is a model's JSON already
        (a poller assembles its result batches from its workers' JSON). The cluster secret
        goes with state-changing calls only (not GET: /ping, /status, /metrics do not check
        it, and whatever listens on a stopped daemon's port would collect it)."""
        if self._session is None:
            raise PeerUnreachable(peer.name, "client not started")
        data = body if isinstance(body, bytes) or body is None else body.model_dump_json().encode()
        ctx: ssl.SSLContext | bool = self._ssl if (peer.use_ssl and self._ssl) else (
            peer.use_ssl)
        sent: bytes | AsyncIterator[memoryview] | None = data
        length: dict[str, str] = {}
        if data is not None and len(data) > LARGE_BODY:
            # Written whole, 100 MB (a large scheduler part) held the loop for 0.1-0.3 s
            # copying it into the transport; a piece at a time, it waits for the socket.
            sent, length = _pieces(data), {"Content-Length": str(len(data))}
        try:
            async with self._session.request(
                method, peer.url + path, data=sent, ssl=ctx,
                headers={**({"Content-Type": "application/json"} if data is not None else {}),
                         **length,
                         **({"Authorization": f"Bearer {self.secret}"}
                            if method != "GET" else {}),
                         **(headers or {})},
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                payload = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError, ssl.SSLError) as exc:
            raise PeerUnreachable(peer.name, f"{method} {path}: {type(exc).__name__}: "
                                  f"{exc}".rstrip(": ")) from None
        text = payload.decode("utf-8", "replace")
        if status == 409:
            try:
                refusal = FencedRefusal.model_validate_json(payload)
            except ValidationError:
                raise PeerRefused(peer.name, status, text) from None
            raise StaleEpoch(peer.name, refusal.epoch, text)
        if status == 503 and _error_of(payload) == "stopping":
            raise PeerStopping(peer.name, status, text)
        if status >= 400:
            raise PeerRefused(peer.name, status, text)
        try:
            return reply.model_validate_json(payload)
        except ValidationError as exc:
            raise PeerError(peer.name, f"bad reply to {path}: {exc.errors()[0]['msg']}") \
                from None

    async def call_with_retries(self, peer: DaemonRef, method: str, path: str,
                                body: BaseModel | None, reply: type[M], timeout: float,
                                attempts: int = 3, base_delay: float = 0.2) -> M:
        """Retry unreachable peers a bounded number of times, backing off with jitter."""
        for attempt in range(1, attempts + 1):
            try:
                return await self.call(peer, method, path, body, reply, timeout)
            except PeerUnreachable:
                if attempt == attempts:
                    raise
                delay = base_delay * (2 ** (attempt - 1))
                await self.clock.sleep(delay * (0.5 + random.random()))
        raise AssertionError("unreachable")

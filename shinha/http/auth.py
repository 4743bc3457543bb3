"""Proof that a ping comes from an arbiter holding the cluster secret, without sending the
secret: the pinged daemon hands out a nonce in each ping reply, the arbiter's next ping carries
an HMAC of it. Whatever answers on a stopped daemon's port learns nothing it can reuse."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from shinha.clock import Clock

#: Seconds a nonce is handed out; the one before it is still accepted.
NONCE_LIFETIME = 30.0


def ping_proof(secret: str, nonce: str, arbiter: str, epoch: int, target: str) -> str:
    """The HMAC an arbiter at `epoch` sends to `target` with the nonce it last got."""
    message = f"{nonce}|{arbiter}|{epoch}|{target}".encode("utf-8", "surrogateescape")
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class Nonces:
    """The current nonce and the previous one, renewed every NONCE_LIFETIME seconds."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._current = secrets.token_hex(16)
        self._previous = ""
        self._since = clock.monotonic()

    def current(self) -> str:
        now = self.clock.monotonic()
        if now - self._since >= NONCE_LIFETIME:
            self._previous, self._current, self._since = (self._current,
                                                          secrets.token_hex(16), now)
        return self._current

    def verify(self, secret: str, proof: str, arbiter: str, epoch: int, target: str) -> bool:
        """Whether `proof` is an arbiter's HMAC over one of our live nonces."""
        if not secret or not proof:
            return False
        given = proof.encode("utf-8", "surrogateescape")
        ok = False
        for nonce in (self.current(), self._previous):
            if nonce:
                expected = ping_proof(secret, nonce, arbiter, epoch, target).encode()
                ok |= hmac.compare_digest(given, expected)
        return ok

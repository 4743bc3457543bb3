"""A typed link to each peer daemon: alive or dead, with the attempts that decided it.

A peer is declared dead only after `max_check_attempts` failed checks in a row (its own
definition's value), at least half a `check_interval` apart: failures closer together (the
pings an arbiter sends back to back while it claims the lead) count as one, so a daemon that
starts a moment after the arbiter is not declared dead before its first check_interval.
One failed ping changes nothing. Transitions are logged once.
"""

from __future__ import annotations

import logging

from shinha.wire import DaemonRef, PeerView

log = logging.getLogger(__name__)


class PeerLink:
    """What this daemon knows about one peer."""

    def __init__(self, ref: DaemonRef, max_check_attempts: int, check_interval: float) -> None:
        self.ref = ref
        self.max_check_attempts = max_check_attempts
        self.check_interval = check_interval
        self.alive = True
        self.attempts = 0
        self.ever_seen = False
        self.last_contact_mono: float | None = None
        self.last_contact_wall: float | None = None
        self.epoch = 0
        self.part_hash = ""
        #: When the last failure that counted as an attempt happened (monotonic).
        self._counted_at: float | None = None

    @property
    def name(self) -> str:
        return self.ref.name

    def success(self, mono: float, wall: float) -> bool:
        """Record an answer; True when this is a recovery (dead → alive)."""
        self.last_contact_mono = mono
        self.last_contact_wall = wall
        self.attempts = 0
        self._counted_at = None
        recovered = not self.alive
        self.alive = True
        if recovered:
            log.warning("%s %s recovered", self.ref.role, self.name)
        elif not self.ever_seen:
            log.info("%s %s is up", self.ref.role, self.name)
        self.ever_seen = True
        return recovered

    def failure(self, reason: str, mono: float) -> bool:
        """Record a failed check at `mono`; True when it makes the peer dead (alive → dead)."""
        if self._counted_at is not None and mono - self._counted_at < self.check_interval / 2:
            return False  # the same outage, seen again within the same check
        self._counted_at = mono
        self.attempts += 1
        if self.alive and self.attempts >= self.max_check_attempts:
            self.alive = False
            log.warning("%s %s is down (%d failed checks, last: %s)", self.ref.role, self.name,
                        self.attempts, reason)
            return True
        if self.alive:
            log.debug("%s %s check failed (%d/%d): %s", self.ref.role, self.name,
                      self.attempts, self.max_check_attempts, reason)
        return False

    def view(self) -> PeerView:
        return PeerView(name=self.name, role=self.ref.role, address=self.ref.address,
                        alive=self.alive, attempts=self.attempts,
                        last_contact=self.last_contact_wall)

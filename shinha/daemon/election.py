"""Pandora FMS master-token election among the servers of one role and realm.

Every server heartbeats its peers every `server_threshold` seconds and keeps, on its own
monotonic clock, when it last heard from each; a peer is down after `2 × server_threshold` of
silence. Among the alive servers whose `master` token is above 0, the highest token is the
master. On a tie the incumbent keeps the role (the master of the highest term anyone
reported), else the lowest name wins: the same answer on every server that sees the same
peers. Each change of master is a new term; servers adopt the highest term they hear of.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from shinha.clock import Clock, Every
from shinha.config.daemons import DaemonLink
from shinha.daemon.base import daemon_ref
from shinha.errors import PeerError
from shinha.http.client import PeerClient
from shinha.http.server import check_secret, json_response, read_model
from shinha.wire import ElectionBeat, ElectionView

log = logging.getLogger(__name__)


class Election:
    """The election state of one server; `master` is the current answer."""

    def __init__(self, me: DaemonLink, peers: list[DaemonLink], client: PeerClient,
                 clock: Clock, secret: str) -> None:
        self.me = me
        self.peers = {p.name: p for p in peers}
        self.client = client
        self.clock = clock
        self.secret = secret
        self.threshold = float(me.server_threshold)
        self.last_contact: dict[str, float] = {}
        self.tokens: dict[str, int] = {p.name: p.master for p in peers}
        self.tokens[me.name] = me.master
        self.master = ""
        self.term = 0
        self.started = clock.monotonic()
        self.changed = asyncio.Event()
        self._down_logged: set[str] = set()

    def add_routes(self, app: web.Application) -> None:
        ElectionInterface(self.secret, self).add_routes(app)

    def down(self) -> list[str]:
        """Peers silent for more than 2 × server_threshold (after a start-up grace)."""
        now = self.clock.monotonic()
        limit = 2 * self.threshold
        if now - self.started < limit:
            return []
        return sorted(name for name in self.peers
                      if now - self.last_contact.get(name, self.started) > limit)

    def alive(self) -> list[str]:
        down = set(self.down())
        return sorted([self.me.name, *(n for n in self.peers if n not in down)])

    def is_master(self) -> bool:
        return self.master == self.me.name

    def evaluate(self) -> None:
        """Recompute the master from who is alive; a change is a new term."""
        candidates = [n for n in self.alive() if self.tokens.get(n, 0) > 0]
        winner = ""
        if candidates:
            top = max(self.tokens[n] for n in candidates)
            tied = sorted(n for n in candidates if self.tokens[n] == top)
            winner = self.master if self.master in tied else tied[0]
        if winner != self.master:
            self.term += 1
            log.warning("%s %s: master is now %s (term %d)", self.me.role, self.me.name,
                        winner or "nobody", self.term)
            self.master = winner
            self.changed.set()
        for name in self.down():
            if name not in self._down_logged:
                log.warning("%s %s: %s is down (silent for over %.0f s)", self.me.role,
                            self.me.name, name, 2 * self.threshold)
                self._down_logged.add(name)
        for name in list(self._down_logged):
            if name not in self.down():
                log.warning("%s %s: %s is back", self.me.role, self.me.name, name)
                self._down_logged.discard(name)

    def view(self) -> ElectionView:
        return ElectionView(master=self.master, term=self.term, down=self.down(),
                            alive=self.alive())

    async def run(self) -> None:
        """Heartbeat every peer every server_threshold; re-evaluate four times as often, so
        that a silence is noticed soon after it reaches 2 × server_threshold."""
        # The grace before anyone counts as down starts now, not when the daemon was built:
        # a slow start (journal replay, worker processes) must not declare every peer down.
        self.started = self.clock.monotonic()
        self.evaluate()
        next_beat = 0.0
        every = Every(self.clock, self.threshold / 4, first=0.0)
        while True:
            await every.tick()
            now = self.clock.monotonic()
            if now >= next_beat:
                next_beat = now + self.threshold
                beat = ElectionBeat(name=self.me.name, token=self.me.master,
                                    master=self.master, term=self.term)
                await asyncio.gather(*(self._send(peer, beat)
                                       for peer in self.peers.values()))
            self.evaluate()

    async def _send(self, peer: DaemonLink, beat: ElectionBeat) -> None:
        try:
            reply = await self.client.call(daemon_ref(peer), "POST", "/election/heartbeat",
                                           beat, ElectionBeat, min(self.threshold,
                                                                   float(peer.timeout)))
        except PeerError:
            return
        self._heard(reply)

    def _heard(self, beat: ElectionBeat) -> None:
        if beat.name not in self.peers:
            return
        self.last_contact[beat.name] = self.clock.monotonic()
        self.tokens[beat.name] = beat.token
        if beat.term > self.term:
            # A newer term: take its master as the incumbent, then check it ourselves.
            self.term = beat.term
            if beat.master and beat.master != self.master:
                self.master = beat.master
                self.changed.set()
            self.evaluate()

    def take_beat(self, beat: ElectionBeat) -> ElectionBeat:
        """A peer's heartbeat; answer with ours."""
        self._heard(beat)
        return ElectionBeat(name=self.me.name, token=self.me.master, master=self.master,
                            term=self.term)


class ElectionInterface:
    """POST /election/heartbeat."""

    def __init__(self, secret: str, election: Election) -> None:
        self.secret = secret
        self.election = election

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/election/heartbeat", self.beat)

    async def beat(self, request: web.Request) -> web.Response:
        check_secret(request, self.secret)
        beat = await read_model(request, ElectionBeat)
        return json_response(self.election.take_beat(beat))


def election_peers(me: DaemonLink, daemons: dict[str, DaemonLink], default_realm: str
                   ) -> list[DaemonLink]:
    """The servers of `me`'s role and realm, `me` excluded."""
    realm = me.realm or default_realm
    return [d for d in daemons.values()
            if d.name != me.name and (d.realm or default_realm) == realm]

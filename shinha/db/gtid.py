"""MariaDB GTID positions (`domain-server_id-seqno`, one per replication domain): parsing
and comparison, pure. shinha.db.failover decides with them."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

_GTID = re.compile(r"^(\d+)-(\d+)-(\d+)$")
_U32 = 2**32 - 1
_U64 = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Gtid:
    """One global transaction id."""

    domain: int
    server_id: int
    seqno: int

    def __str__(self) -> str:
        return f"{self.domain}-{self.server_id}-{self.seqno}"


class GtidPosition(Mapping[int, Gtid]):
    """A GTID position: the last GTID of each replication domain (one per domain)."""

    __slots__ = ("_by_domain",)

    def __init__(self, gtids: Sequence[Gtid] = ()) -> None:
        by_domain: dict[int, Gtid] = {}
        for gtid in gtids:
            if gtid.domain in by_domain:
                raise ValueError(f"GTID position lists domain {gtid.domain} twice")
            by_domain[gtid.domain] = gtid
        self._by_domain = dict(sorted(by_domain.items()))

    @classmethod
    def parse(cls, text: str | None) -> GtidPosition:
        """Parse `0-1-42,1-3-7` (what @@gtid_*_pos and Gtid_IO_Pos hold); '' is empty."""
        gtids = []
        for item in re.split(r"[\s,]+", (text or "").strip()):
            if not item:
                continue
            match = _GTID.match(item)
            if match is None:
                raise ValueError(f"not a GTID (domain-server_id-seqno): {item!r}")
            domain, server_id, seqno = (int(g) for g in match.groups())
            if domain > _U32 or server_id > _U32 or seqno > _U64:
                raise ValueError(f"GTID out of range: {item!r}")
            gtids.append(Gtid(domain, server_id, seqno))
        return cls(gtids)

    def __getitem__(self, domain: int) -> Gtid:
        return self._by_domain[domain]

    def __iter__(self) -> Iterator[int]:
        return iter(self._by_domain)

    def __len__(self) -> int:
        return len(self._by_domain)

    def __str__(self) -> str:
        return ",".join(str(g) for g in self._by_domain.values())

    def __repr__(self) -> str:
        return f"GtidPosition({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GtidPosition):
            return NotImplemented
        return self._by_domain == other._by_domain

    def __hash__(self) -> int:
        return hash(tuple(self._by_domain.values()))

    def covers(self, other: GtidPosition) -> bool:
        """True when this position is at or past `other` in every domain `other` has."""
        return all(d in self and self[d].seqno >= g.seqno for d, g in other.items())

    def merged(self, other: GtidPosition) -> GtidPosition:
        """The furthest of the two in each domain (this one's GTID on a tie)."""
        out = dict(self._by_domain)
        for d, g in other.items():
            if d not in out or g.seqno > out[d].seqno:
                out[d] = g
        return GtidPosition(list(out.values()))

    def missing_from(self, other: GtidPosition) -> list[Gtid]:
        """The GTIDs of this position that `other` does not hold: a later seqno, a domain
        it lacks, or the same seqno written by another server (two histories)."""
        out = []
        for d, g in self.items():
            theirs = other.get(d)
            if (theirs is None or g.seqno > theirs.seqno
                    or (g.seqno == theirs.seqno and g.server_id != theirs.server_id)):
                out.append(g)
        return out

    def total(self) -> int:
        """Sum of the seqnos: a tie-break between positions that do not cover each other."""
        return sum(g.seqno for g in self.values())


def position(text: str | None) -> GtidPosition:
    """Parse a GTID position; see GtidPosition.parse."""
    return GtidPosition.parse(text)

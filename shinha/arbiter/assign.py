"""Who holds what right now: each part on its scheduler, or on an alive spare of the same realm
when its scheduler is dead; a spare poller standing in for a dead one with the same realm and
tags; the data-servers and receivers that are alive. Back to the original when it returns."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from shinha.arbiter.partition import Plan
from shinha.config.daemons import DaemonLink, Poller
from shinha.config.loader import Config
from shinha.daemon.base import daemon_ref, topology_hash
from shinha.wire import DatabaseTopology, SchedulerPart, Topology

log = logging.getLogger(__name__)


@dataclass
class Assignment:
    """The outcome: what each scheduler must hold, the topology everyone gets."""

    parts: dict[str, SchedulerPart | None] = field(default_factory=dict)
    topology: Topology = field(default_factory=Topology)
    topology_hash: str = ""
    #: spare name -> the dead daemon it replaces
    standing_in: dict[str, str] = field(default_factory=dict)
    #: dead daemon -> why its work is not done ("no spare")
    degraded: dict[str, str] = field(default_factory=dict)


def _realm(config: Config, d: DaemonLink) -> str:
    return d.realm or config.default_realm


def assign(config: Config, plan: Plan, alive: set[str],
           database: DatabaseTopology | None = None) -> Assignment:
    """Place the plan's parts and the pollers' work on the daemons in `alive` (names); the
    database tier as the arbiter's database watch publishes it."""
    out = Assignment()
    schedulers = config.daemons.get("scheduler", {})
    spares = sorted(n for n, d in schedulers.items() if d.spare)
    used: set[str] = set()
    holder_of: dict[str, str] = {}
    for part_id, part in sorted(plan.parts.items()):
        if part_id in alive:
            holder_of[part_id] = part_id
            continue
        realm = part.realm
        spare = next((s for s in spares if s in alive and s not in used
                      and _realm(config, schedulers[s]) == realm), None)
        if spare is None:
            out.degraded[part_id] = "dead, no spare scheduler: its hosts are not checked"
            continue
        used.add(spare)
        holder_of[part_id] = spare
        out.standing_in[spare] = part_id
    for name in schedulers:
        out.parts[name] = None
    for part_id, holder in holder_of.items():
        out.parts[holder] = plan.parts[part_id]
    host_owner = {host: holder_of[part] for host, part in plan.host_owner.items()
                  if part in holder_of}
    standins = _poller_standins(config, alive, out)
    refs = {role: [daemon_ref(d) for d in config.daemons.get(role, {}).values()
                   if d.name in alive and (not d.spare or role in ("dataserver", "receiver")
                                           or d.name in out.standing_in)]
            for role in ("scheduler", "poller", "dataserver", "receiver")}
    out.topology = Topology(
        schedulers=[r for r in refs["scheduler"] if r.name in holder_of.values()],
        pollers=refs["poller"],
        dataservers=sorted(refs["dataserver"], key=lambda r: (r.spare, r.name)),
        receivers=refs["receiver"], host_owner=host_owner, poller_standins=standins,
        database=database)
    out.topology_hash = topology_hash(out.topology)
    return out


def _poller_standins(config: Config, alive: set[str], out: Assignment) -> dict[str, str]:
    pollers = {n: p for n, p in config.daemons.get("poller", {}).items()
               if isinstance(p, Poller)}
    spares = sorted(n for n, p in pollers.items() if p.spare)
    standins: dict[str, str] = {}
    for name, poller in sorted(pollers.items()):
        if poller.spare or name in alive:
            continue
        spare = next((s for s in spares if s in alive and s not in out.standing_in
                      and _realm(config, pollers[s]) == _realm(config, poller)
                      and set(poller.poller_tags) <= set(pollers[s].poller_tags)), None)
        if spare is None:
            out.degraded[name] = "dead, no spare poller: its checks wait for it"
            continue
        standins[name] = spare
        out.standing_in[spare] = name
    return standins

"""Cut the monitored objects into one part per scheduler, and give every check a poller.

Hosts linked by `parents` stay together (a scheduler needs the parents' states to tell DOWN
from UNREACHABLE), and so do the hosts a host or service dependency links (the dependent's
scheduler reads its master's state). Each group of hosts goes to a scheduler of its realm by
weighted rendezvous hashing: every (group, scheduler) pair gets a score, the highest wins.
Adding or losing a scheduler therefore moves only the groups that now score highest
elsewhere — about its share — and a reload that changes nothing moves nothing. The same
hashing picks the owning poller of each check among the realm's pollers that carry its
poller_tag, unless the check names one.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from shinha.config.daemons import Poller, Scheduler
from shinha.config.loader import Config
from shinha.config.objects import Command, Contact, Contactgroup, Host, Service
from shinha.rendezvous import rendezvous
from shinha.wire import (
    AlertSettings,
    CheckSettings,
    Dependency,
    Escalation,
    ReceiverCatalog,
    SchedulerPart,
)
from shinha.wirejson import json_slices


def host_groups(hosts: dict[str, Host],
                links: Iterable[tuple[str, str]] = ()) -> list[list[str]]:
    """Group hosts connected by `parents` or by `links` (pairs of host names: dependent and
    master), with a union-find; each group sorted, groups sorted."""
    parent = {name: name for name in hosts}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    pairs = [(name, p) for name, host in hosts.items() for p in host.parents]
    for a, b in [*pairs, *links]:
        if a in parent and b in parent:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, list[str]] = defaultdict(list)
    for name in hosts:
        groups[find(name)].append(name)
    return sorted(sorted(g) for g in groups.values())


@dataclass
class Plan:
    """The cut: parts by scheduler, the owner of every host, what could not be placed."""

    parts: dict[str, SchedulerPart] = field(default_factory=dict)
    host_owner: dict[str, str] = field(default_factory=dict)
    unplaced_hosts: list[str] = field(default_factory=list)
    unowned_checks: list[tuple[str, str]] = field(default_factory=list)
    #: What every receiver accepts: all the hosts and their services.
    catalog: ReceiverCatalog = field(default_factory=lambda: ReceiverCatalog(catalog_hash=""))


def host_realm(config: Config, host: Host) -> str:
    if host.realm:
        return host.realm
    for group in host.hostgroups:
        realm = config.hostgroups[group].realm
        if realm:
            return realm
    return config.default_realm


def cut(config: Config) -> Plan:
    """Cut `config` among its non-spare schedulers, each check to one of its non-spare pollers
    (independent of who is alive, so that a part keeps its identity when a spare takes it)."""
    schedulers = [s for s in config.daemons.get("scheduler", {}).values()
                  if isinstance(s, Scheduler) and not s.spare]
    pollers = [p for p in config.daemons.get("poller", {}).values()
               if isinstance(p, Poller) and not p.spare]
    return plan(config, schedulers, pollers)


def plan(config: Config, schedulers: Sequence[Scheduler], pollers: Sequence[Poller]) -> Plan:
    """Cut `config` among `schedulers` (the non-spare ones), pollers chosen among `pollers`."""
    result = Plan()
    by_realm: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for s in schedulers:
        by_realm[s.realm or config.default_realm].append((s.name, s.weight))
    assigned: dict[str, list[str]] = defaultdict(list)
    links = [(d.host, d.master_host) for d in config.dependencies if d.host != d.master_host]
    for group in host_groups(config.hosts, links):
        realm = host_realm(config, config.hosts[group[0]])
        owner = rendezvous(group[0], by_realm.get(realm, []))
        if owner is None:
            result.unplaced_hosts.extend(group)
            continue
        assigned[owner].extend(group)
        for name in group:
            result.host_owner[name] = owner
    services_by_host: dict[str, list[Service]] = defaultdict(list)
    for (host_name, _), svc in config.services.items():
        services_by_host[host_name].append(svc)
    poller_choice = _PollerChooser(config, pollers)
    settings = CheckSettings(**{k: getattr(config.main, k) for k in CheckSettings.model_fields})
    alerting = AlertSettings(**{k: getattr(config.main, k) for k in AlertSettings.model_fields})
    escalations_by_host: dict[str, list[Escalation]] = defaultdict(list)
    for esc in config.escalations:
        escalations_by_host[esc.host].append(esc)
    dependencies_by_host: dict[str, list[Dependency]] = defaultdict(list)
    for dep in config.dependencies:
        dependencies_by_host[dep.host].append(dep)
    for s in schedulers:
        host_names = sorted(assigned.get(s.name, []))
        hosts = [poller_choice.host(config.hosts[h]) for h in host_names]
        services = [poller_choice.service(svc, config.hosts[h]) for h in host_names
                    for svc in sorted(services_by_host[h], key=lambda x: x.service_description)]
        escalations = [e for h in host_names for e in escalations_by_host.get(h, ())]
        contacts, contactgroups = _used_contacts(config, [*hosts, *services], escalations)
        commands = _used_commands(config, hosts, services, contacts)
        part = SchedulerPart(part_id=s.name, part_hash="", realm=s.realm or config.default_realm,
                             hosts=hosts, services=services, commands=commands,
                             timeperiods=sorted(config.timeperiods.values(),
                                                key=lambda t: t.timeperiod_name),
                             resources=config.resources, settings=settings,
                             contacts=contacts, contactgroups=contactgroups,
                             escalations=escalations,
                             dependencies=[d for h in host_names
                                           for d in dependencies_by_host.get(h, ())],
                             alerting=alerting)
        digest = hashlib.sha256()
        for piece in json_slices(part):  # a reload cuts in a worker thread: see wirejson
            digest.update(piece)
        part.part_hash = digest.hexdigest()[:16]
        result.parts[s.name] = part
    result.unowned_checks = poller_choice.unowned
    result.catalog = catalog(config)
    return result


def catalog(config: Config) -> ReceiverCatalog:
    """Every host and its services, hashed, for the receivers."""
    services: dict[str, list[str]] = {name: [] for name in sorted(config.hosts)}
    for host, service in sorted(config.services):
        services.setdefault(host, []).append(service)
    out = ReceiverCatalog(catalog_hash="", services=services)
    digest = hashlib.sha256()
    for piece in json_slices(out):
        digest.update(piece)
    out.catalog_hash = digest.hexdigest()[:16]
    return out


class _PollerChooser:
    """The owning poller of each check: its `poller` property, else the hashed choice."""

    def __init__(self, config: Config, pollers: Sequence[Poller]) -> None:
        self.config = config
        self.by_realm_tag: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
        for p in pollers:
            for tag in p.poller_tags:
                self.by_realm_tag[(p.realm or config.default_realm, tag)].append(
                    (p.name, p.weight))
        self.unowned: list[tuple[str, str]] = []

    def _owner(self, key: str, realm: str, tag: str, fixed: str) -> str:
        if fixed:
            return fixed
        return rendezvous(key, self.by_realm_tag.get((realm, tag), [])) or ""

    def host(self, host: Host) -> Host:
        if not host.check_command:
            return host
        owner = self._owner(host.host_name, host_realm(self.config, host), host.poller_tag,
                            host.poller)
        if not owner:
            self.unowned.append((host.host_name, ""))
        return host if owner == host.poller else host.model_copy(update={"poller": owner})

    def service(self, svc: Service, host: Host) -> Service:
        if not svc.check_command:
            return svc
        owner = self._owner(f"{svc.host_name}\0{svc.service_description}",
                            host_realm(self.config, host), svc.poller_tag, svc.poller)
        if not owner:
            self.unowned.append((svc.host_name, svc.service_description))
        return svc if owner == svc.poller else svc.model_copy(update={"poller": owner})


def _used_commands(config: Config, hosts: list[Host], services: list[Service],
                   contacts: list[Contact]) -> list[Command]:
    """The commands the part runs: check commands, event handlers (the global ones too) and
    its contacts' notification commands."""
    calls = [c for o in [*hosts, *services] for c in (o.check_command, o.event_handler)]
    calls += [config.main.global_host_event_handler, config.main.global_service_event_handler]
    calls += [c for contact in contacts for c in (*contact.host_notification_commands,
                                                    *contact.service_notification_commands)]
    names = {c.split("!", 1)[0].strip() for c in calls if c}
    return [config.commands[n] for n in sorted(names) if n in config.commands]


def _used_contacts(config: Config, checkables: Sequence[Host | Service],
                   escalations: Sequence[Escalation]) -> tuple[list[Contact],
                                                                list[Contactgroup]]:
    """The contact groups the hosts and services name, and the contacts they, those groups
    and the escalations name; each sorted by name."""
    group_names: set[str] = set()
    names: set[str] = set()
    for obj in checkables:
        names.update(obj.contacts)
        group_names.update(obj.contact_groups)
    for esc in escalations:
        names.update(esc.contacts)
    groups = [config.contactgroups[g] for g in sorted(group_names) if g in config.contactgroups]
    for group in groups:
        names.update(group.members)
    return [config.contacts[n] for n in sorted(names) if n in config.contacts], groups

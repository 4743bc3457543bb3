"""Link the validated objects: group memberships both ways, services attached to their hosts,
and every reference checked (commands, timeperiods, hosts, groups, realms, pollers, modules)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from shinha.config.diagnostics import Diagnostics, did_you_mean
from shinha.config.fastmodel import copy_model
from shinha.config.objects import (
    ConfigObject,
    Contact,
    Contactgroup,
    Host,
    Hostgroup,
    Service,
    Servicegroup,
)
from shinha.config.parser import RawObject, locate_in_block, locate_property


class Linker:
    """Check references between objects, reporting at the line of the referring property."""

    def __init__(self, diags: Diagnostics) -> None:
        self.diags = diags

    def missing(self, obj: ConfigObject, prop: str, kind: str, name: str,
                known: Iterable[str], raw: RawObject | None = None) -> None:
        line = (locate_property(raw, prop) if raw is not None
                else locate_in_block(obj.source_file, obj.source_line, prop))
        self.diags.error(f"{obj.object_type} '{obj.object_name}': {prop}: {kind} '{name}' is "
                         "not defined", obj.source_file, line,
                         did_you_mean(name, known) or f"define the {kind} or fix the name")

    def check(self, obj: ConfigObject, prop: str, names: Iterable[str], kind: str,
              known: Mapping[str, Any] | set[str], raw: RawObject | None = None) -> None:
        for name in names:
            if name and name not in known:
                self.missing(obj, prop, kind, name, known, raw)


K = TypeVar("K")


def expand_nested(kind: str, direct: dict[str, list[K]], groups: Mapping[str, ConfigObject],
                  nested_prop: str, diags: Diagnostics) -> dict[str, list[K]]:
    """Add the members of nested groups (`hostgroup_members` …) to each group; loops are
    errors."""
    done: dict[str, list[K]] = {}

    def expand(name: str, stack: tuple[str, ...]) -> list[K]:
        if name in done:
            return done[name]
        if name in stack:
            group = groups[name]
            diags.error(f"{kind} '{name}': {nested_prop} loop ("
                        f"{' -> '.join((*stack, name))})", group.source_file,
                        group.source_line, "remove one of the nested group links")
            return []
        out = list(direct.get(name, []))
        for sub in getattr(groups[name], nested_prop):
            if sub in groups:
                out.extend(expand(sub, (*stack, name)))
        done[name] = list(dict.fromkeys(out))
        return done[name]

    for name in groups:
        expand(name, ())
    return done


def link_hostgroups(hosts: dict[str, Host], groups: dict[str, Hostgroup], linker: Linker,
                    raws: dict[str, RawObject]) -> None:
    """Fill hostgroup members and host hostgroups both ways, nested groups included."""
    for host in hosts.values():
        kept = []
        for name in host.hostgroups:
            if name in groups:
                kept.append(name)
            else:
                linker.missing(host, "hostgroups", "hostgroup", name, groups)
        host.hostgroups = tuple(kept)
    direct: dict[str, list[str]] = {}
    for group in groups.values():
        members: list[str] = []
        for name in group.members:
            if name == "*":
                members.extend(hosts)
            elif name.startswith("!"):
                continue
            elif name in hosts:
                members.append(name)
            else:
                linker.missing(group, "members", "host", name, hosts, raws.get(
                    group.hostgroup_name))
        excluded = {n[1:] for n in group.members if n.startswith("!")}
        direct[group.hostgroup_name] = [m for m in members if m not in excluded]
        linker.check(group, "hostgroup_members", group.hostgroup_members, "hostgroup", groups,
                     raws.get(group.hostgroup_name))
    for host in hosts.values():
        for name in host.hostgroups:
            direct[name].append(host.host_name)

    expanded = expand_nested("hostgroup", direct, groups, "hostgroup_members", linker.diags)
    memberships: dict[str, list[str]] = {name: [] for name in hosts}
    for name, group in groups.items():
        members = expanded[name]
        group.members = tuple(members)
        for host_name in members:
            memberships[host_name].append(name)
    for host_name, names in memberships.items():
        hosts[host_name].hostgroups = tuple(names)


def check_parents(hosts: dict[str, Host], linker: Linker) -> None:
    """Parents must exist and must not form a loop."""
    for host in hosts.values():
        if host.parents:
            linker.check(host, "parents", host.parents, "host", hosts)
            host.parents = tuple(p for p in host.parents if p in hosts)
    state: dict[str, int] = {}
    for start in hosts:
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = []
        while stack:
            name, index = stack.pop()
            if index == 0:
                state[name] = 1
                path.append(name)
            parents = hosts[name].parents
            if index < len(parents):
                stack.append((name, index + 1))
                parent = parents[index]
                if state.get(parent) == 1:
                    host = hosts[name]
                    cycle = [*path[path.index(parent):], parent]
                    linker.diags.error(f"host '{name}': parents loop ({' -> '.join(cycle)})",
                                       host.source_file,
                                       locate_in_block(host.source_file, host.source_line,
                                                       "parents"),
                                       "a host cannot be its own ancestor")
                elif not state.get(parent):
                    stack.append((parent, 0))
            else:
                state[name] = 2
                path.pop()


def attach_services(
    defs: list[Service], host_specs: list[str], origins: list[RawObject],
    hosts: dict[str, Host], groups: dict[str, Hostgroup], diags: Diagnostics,
    allow_empty_groups: bool,
) -> dict[tuple[str, str], Service]:
    """Give each service definition one instance per host; explicit hosts beat hostgroups."""
    linker = Linker(diags)
    services: dict[tuple[str, str], Service] = {}
    from_groups: set[tuple[str, str]] = set()
    for svc, host_spec, raw in zip(defs, host_specs, origins, strict=True):
        host = svc.host_name
        if host and not svc.hostgroup_name:
            # The common case, one plain host name: no copies, no lists.
            key = (host, svc.service_description)
            if key not in services and host in hosts:
                services[key] = svc
                continue
        host_names = [x for x in (p.strip() for p in host_spec.split(",")) if x]
        reported = len(diags.items)
        excluded: set[str] = set()
        targets: list[str] = []
        for name in host_names:
            if name == "*":
                targets.extend(hosts)
            elif name[:1] == "!":
                excluded.add(name[1:])
            elif name in hosts:
                targets.append(name)
            else:
                linker.missing(svc, "host_name", "host", name, hosts, raw)
        explicit = set(targets)
        excluded_groups = set()
        for name in svc.hostgroup_name:
            if name[:1] == "!":
                excluded_groups.add(name[1:])
                continue
            group = groups.get(name)
            if group is None:
                linker.missing(svc, "hostgroup_name", "hostgroup", name, groups, raw)
                continue
            targets.extend(group.members)
        for name in excluded_groups:
            if name in groups:
                excluded.update(groups[name].members)
            else:
                linker.missing(svc, "hostgroup_name", "hostgroup", name, groups, raw)
        if not targets:
            if not host_names and not svc.hostgroup_name:
                diags.error(f"service '{svc.service_description}' is attached to no host",
                            raw.file, raw.line, "set host_name or hostgroup_name "
                            "(or 'register 0' if it is a template)")
            elif len(diags.items) > reported:
                pass  # its hosts or hostgroups are undefined: already reported
            elif allow_empty_groups and svc.hostgroup_name:
                diags.warning(f"service '{svc.service_description}' is on empty hostgroups "
                              "only; it is not attached to any host", raw.file, raw.line)
            else:
                diags.error(f"service '{svc.service_description}' is attached to no host "
                            "(its hostgroups are empty or its hosts all excluded)",
                            raw.file, raw.line, "check host_name/hostgroup_name, or set "
                            "allow_empty_hostgroup_assignment=1 in the main file")
            continue
        for host_name in dict.fromkeys(targets):
            if host_name in excluded:
                continue
            from_group = host_name not in explicit
            key = (host_name, svc.service_description)
            if key in services:
                if key in from_groups and not from_group:
                    pass  # an explicit definition beats one from a hostgroup (Nagios rule)
                elif from_group and key not in from_groups:
                    continue
                elif from_group:
                    prior = services[key]
                    diags.warning(f"service '{svc.service_description}' on host '{host_name}' "
                                  f"comes from two hostgroups; the first (at {prior.where()}) "
                                  "is kept", raw.file, raw.line)
                    continue
                else:
                    prior = services[key]
                    diags.error(f"service '{svc.service_description}' on host '{host_name}' "
                                f"is defined twice (first at {prior.where()})", raw.file,
                                raw.line, "remove or rename one of them")
                    continue
            instance = copy_model(svc, host_name=host_name)
            services[key] = instance
            if from_group:
                from_groups.add(key)
            else:
                from_groups.discard(key)
    return services


def link_servicegroups(services: dict[tuple[str, str], Service],
                       groups: dict[str, Servicegroup], linker: Linker) -> None:
    """Fill servicegroup members (`host,service` pairs) and service servicegroups both ways."""
    members: dict[str, list[tuple[str, str]]] = {name: [] for name in groups}
    for group in groups.values():
        items = group.members
        if len(items) % 2:
            linker.diags.error(f"servicegroup '{group.servicegroup_name}': members must be "
                               "host,service pairs", group.source_file, group.source_line)
            items = items[:-1]
        for i in range(0, len(items), 2):
            key = (items[i], items[i + 1])
            if key in services:
                members[group.servicegroup_name].append(key)
            else:
                linker.diags.error(f"servicegroup '{group.servicegroup_name}': service "
                                   f"'{key[1]}' on host '{key[0]}' is not defined",
                                   group.source_file, group.source_line)
        linker.check(group, "servicegroup_members", group.servicegroup_members,
                     "servicegroup", groups)
    for key, svc in services.items():
        if svc.servicegroups:
            for name in svc.servicegroups:
                if name in members:
                    members[name].append(key)
                else:
                    linker.missing(svc, "servicegroups", "servicegroup", name, groups)
    expanded = expand_nested("servicegroup", members, groups, "servicegroup_members",
                             linker.diags)
    for name, group in groups.items():
        pairs = expanded[name]
        group.members = tuple(x for pair in pairs for x in pair)
        for key in pairs:
            if name not in services[key].servicegroups:
                services[key].servicegroups = (*services[key].servicegroups, name)


def link_contactgroups(contacts: dict[str, Contact], groups: dict[str, Contactgroup],
                       linker: Linker) -> None:
    """Fill contactgroup members and contact contactgroups both ways, nested groups included."""
    direct: dict[str, list[str]] = {name: [] for name in groups}
    for group in groups.values():
        for name in group.members:
            if name in contacts:
                direct[group.contactgroup_name].append(name)
            else:
                linker.missing(group, "members", "contact", name, contacts)
        linker.check(group, "contactgroup_members", group.contactgroup_members,
                     "contactgroup", groups)
    for contact in contacts.values():
        for name in contact.contactgroups:
            if name in direct:
                direct[name].append(contact.contact_name)
            else:
                linker.missing(contact, "contactgroups", "contactgroup", name, groups)
    expanded = expand_nested("contactgroup", direct, groups, "contactgroup_members",
                             linker.diags)
    memberships: dict[str, list[str]] = {name: [] for name in contacts}
    for name, group in groups.items():
        group.members = tuple(expanded[name])
        for member in group.members:
            memberships[member].append(name)
    for name, contact in contacts.items():
        contact.contactgroups = tuple(memberships[name])

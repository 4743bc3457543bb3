"""Link the validated objects: group memberships both ways, and references checked.

Under Shinken and Alignak a group named only by its members (`hostgroups web` on a host, with
no `define hostgroup` web) is created, with a warning; Nagios refuses it. Under
`use_regexp_matching` (Nagios) the names in members lists and in the members' group lists may
be regular expressions (shinha.config.names).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from shinha.config.diagnostics import Diagnostics, did_you_mean
from shinha.config.names import Rules, is_regexp, pick
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

REGEXP_HINT = ("with use_regexp_matching=1 a name with *, ?, + or \\. is a regular expression "
               "(every name, with use_true_regexp_matching=1), and so are the names after it "
               "in its list")


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

    def names(self, obj: ConfigObject, prop: str, items: Sequence[str], kind: str,
              known: Mapping[str, Any], rules: Rules) -> list[str]:
        """The known names a list selects (`*`, `!name`, regular expressions under
        use_regexp_matching), each undefined name or unmatched expression an error."""
        picked = pick(items, known, rules, lambda: known)
        for name in picked.missing:
            self.missing(obj, prop, kind, name, known)
        where = f"{obj.object_type} '{obj.object_name}': {prop}"
        line = locate_in_block(obj.source_file, obj.source_line, prop)
        for item in picked.unmatched:
            self.diags.error(f"{where}: no {kind} matches '{item}'", obj.source_file, line,
                             REGEXP_HINT)
        for item in picked.invalid:
            self.diags.error(f"{where}: '{item}' is not a valid regular expression",
                             obj.source_file, line, "use_regexp_matching=1 reads it as one; "
                             "escape its special characters, or list the names")
        return [n for n in dict.fromkeys(picked.names) if n not in picked.excluded]

    def implicit(self, member: ConfigObject, prop: str, kind: str, name: str) -> tuple[str, int]:
        """Warn that a group named only by its members is created; return where (the first
        member that names it)."""
        line = locate_in_block(member.source_file, member.source_line, prop)
        self.diags.warning(f"{kind} '{name}' is not defined: created for the members that name "
                           "it, as Shinken and Alignak do", member.source_file, line,
                           f"define it (define {kind} {{ {kind}_name {name} }}) to give it an "
                           "alias, or fix the name")
        return member.source_file, line


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


def _regexp(rules: Rules, items: Sequence[str]) -> bool:
    return rules.regexp and any(is_regexp(item, rules) for item in items)


def link_hostgroups(hosts: dict[str, Host], groups: dict[str, Hostgroup], linker: Linker,
                    raws: dict[str, RawObject], rules: Rules | None = None) -> None:
    """Fill hostgroup members and host hostgroups both ways, nested groups included."""
    rules = rules or Rules()
    for host in hosts.values():
        if _regexp(rules, host.hostgroups):
            host.hostgroups = tuple(linker.names(host, "hostgroups", host.hostgroups,
                                                 "hostgroup", groups, rules))
            continue
        kept = []
        for name in host.hostgroups:
            if name not in groups and rules.engine:
                file, line = linker.implicit(host, "hostgroups", "hostgroup", name)
                groups[name] = Hostgroup(hostgroup_name=name, source_file=file,
                                         source_line=line)
            if name in groups:
                kept.append(name)
            else:
                linker.missing(host, "hostgroups", "hostgroup", name, groups)
        host.hostgroups = tuple(kept)
    direct: dict[str, list[str]] = {}
    for group in groups.values():
        if _regexp(rules, group.members):
            direct[group.hostgroup_name] = linker.names(group, "members", group.members, "host",
                                                        hosts, rules)
        else:
            direct[group.hostgroup_name] = _members(group, hosts, linker, raws)
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


def _members(group: Hostgroup, hosts: dict[str, Host], linker: Linker,
             raws: dict[str, RawObject]) -> list[str]:
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
    return [m for m in members if m not in excluded]


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


def link_servicegroups(services: dict[tuple[str, str], Service],
                       groups: dict[str, Servicegroup], linker: Linker,
                       rules: Rules | None = None) -> None:
    """Fill servicegroup members (`host,service` pairs) and service servicegroups both ways."""
    rules = rules or Rules()
    members: dict[str, list[tuple[str, str]]] = {name: [] for name in groups}
    for group in groups.values():
        items = group.members
        if len(items) % 2:
            linker.diags.error(f"servicegroup '{group.servicegroup_name}': members must be "
                               "host,service pairs", group.source_file, group.source_line)
            items = items[:-1]
        for i in range(0, len(items), 2):
            found = _service_pairs(items[i], items[i + 1], services, rules)
            if found:
                members[group.servicegroup_name].extend(found)
            else:
                linker.diags.error(f"servicegroup '{group.servicegroup_name}': service "
                                   f"'{items[i + 1]}' on host '{items[i]}' is not defined",
                                   group.source_file, group.source_line,
                                   REGEXP_HINT if _regexp(rules, items[i:i + 2]) else None)
        linker.check(group, "servicegroup_members", group.servicegroup_members,
                     "servicegroup", groups)
    for key, svc in services.items():
        if not svc.servicegroups:
            continue
        names: Sequence[str] = svc.servicegroups
        if _regexp(rules, names):
            names = linker.names(svc, "servicegroups", names, "servicegroup", groups, rules)
        for name in names:
            if name not in members and rules.engine:
                file, line = linker.implicit(svc, "servicegroups", "servicegroup", name)
                groups[name] = Servicegroup(servicegroup_name=name, source_file=file,
                                            source_line=line)
                members[name] = []
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


def _service_pairs(host: str, description: str, services: Mapping[tuple[str, str], Service],
                   rules: Rules) -> list[tuple[str, str]]:
    """The services a `host,description` member names (regular expressions: Nagios)."""
    if not _regexp(rules, (host, description)):
        return [(host, description)] if (host, description) in services else []
    patterns: list[re.Pattern[str]] = []
    for item in (host, description):
        try:
            patterns.append(re.compile(item if is_regexp(item, rules) else
                                       f"^{re.escape(item)}$"))
        except re.error:
            return []
    return [key for key in services
            if patterns[0].search(key[0]) and patterns[1].search(key[1])]


def link_contactgroups(contacts: dict[str, Contact], groups: dict[str, Contactgroup],
                       linker: Linker, rules: Rules | None = None) -> None:
    """Fill contactgroup members and contact contactgroups both ways, nested groups included."""
    rules = rules or Rules()
    direct: dict[str, list[str]] = {name: [] for name in groups}
    for group in groups.values():
        if _regexp(rules, group.members):
            direct[group.contactgroup_name] = linker.names(group, "members", group.members,
                                                           "contact", contacts, rules)
        else:
            for name in group.members:
                if name in contacts:
                    direct[group.contactgroup_name].append(name)
                else:
                    linker.missing(group, "members", "contact", name, contacts)
        linker.check(group, "contactgroup_members", group.contactgroup_members,
                     "contactgroup", groups)
    for contact in contacts.values():
        names: Sequence[str] = contact.contactgroups
        if _regexp(rules, names):
            names = linker.names(contact, "contactgroups", names, "contactgroup", groups, rules)
        for name in names:
            if name not in direct and rules.engine:
                file, line = linker.implicit(contact, "contactgroups", "contactgroup", name)
                groups[name] = Contactgroup(contactgroup_name=name, source_file=file,
                                            source_line=line)
                direct[name] = []
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

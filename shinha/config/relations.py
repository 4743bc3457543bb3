"""Escalations and dependencies (Nagios 4): their models, and their resolution into the
records a scheduler's part carries, one per host or service they apply to.

Their references (hosts, hostgroups, services, contacts, timeperiods) are checked on the raw
blocks by shinha.config.references, at the line of the property; resolving skips what is not
defined, so that one wrong name is reported once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, Literal

from pydantic import Field

from shinha.config.diagnostics import Diagnostics, did_you_mean
from shinha.config.mainfile import MainConfig
from shinha.config.names import Rules, pick
from shinha.config.objects import (
    ConfigObject,
    Contactgroup,
    Host,
    Hostgroup,
    Names,
    Service,
)
from shinha.config.parser import Directive, locate_in_block
from shinha.wire.alerting import Dependency, Escalation

HostState = Literal["d", "u", "r"]
ServiceState = Literal["w", "u", "c", "r"]
HostCriterion = Literal["o", "d", "u", "p", "n"]
ServiceCriterion = Literal["o", "w", "u", "c", "p", "n"]

_TARGETS = frozenset({"host_name", "hostgroup_name"})


class Relation(ConfigObject):
    """What escalations and dependencies share: no name of their own, master hosts."""

    #: Escalations and dependencies have no name: an object is known by where it is.
    key_property: ClassVar[str] = ""

    host_name: Names = Field((), description="Hosts, comma-separated; `*` all, `!name` "
                             "excludes.")
    hostgroup_name: Names = Field((), description="Every host of these hostgroups; `!group` "
                                  "excludes its hosts.")

    @property
    def object_name(self) -> str:
        return f"at {self.where()}"


class _Escalation(Relation):
    contacts: Names = Field((), description="Contacts notified from first_notification on, "
                            "instead of the host's or service's.")
    contact_groups: Names = Field((), description="Contact groups notified (members, nested "
                                  "groups included).")
    first_notification: int = Field(1, ge=0, description="Number of the first notification "
                                    "it applies to ($NOTIFICATIONNUMBER$).")
    last_notification: int = Field(0, ge=0, description="Number of the last one; 0: every "
                                   "notification from the first on.")
    notification_interval: float = Field(-1.0, description="Re-notify period while it applies, "
                                         "in interval_length units; not set: the host's or "
                                         "service's own.")
    escalation_period: str = Field("", description="Timeperiod in which it applies; empty: "
                                   "always.")


class Hostescalation(_Escalation):
    """Other contacts, or another interval, for a host's notifications from a number on."""

    object_type: ClassVar[str] = "hostescalation"
    list_properties: ClassVar[frozenset[str]] = frozenset({
        "host_name", "hostgroup_name", "contacts", "contact_groups", "escalation_options"})

    escalation_options: tuple[HostState, ...] = Field((), description="States it applies to: "
                                                      "d, u, r (recovery); empty: all.")


class Serviceescalation(_Escalation):
    """Other contacts, or another interval, for a service's notifications from a number on."""

    object_type: ClassVar[str] = "serviceescalation"
    list_properties: ClassVar[frozenset[str]] = frozenset({
        "host_name", "hostgroup_name", "service_description", "servicegroup_name", "contacts",
        "contact_groups", "escalation_options"})

    service_description: Names = Field((), description="Services of those hosts; `*` all, "
                                       "`!name` excludes.")
    servicegroup_name: Names = Field((), description="Every service of these servicegroups "
                                     "too.")
    escalation_options: tuple[ServiceState, ...] = Field((), description="States it applies "
                                                         "to: w, u, c, r (recovery); empty: "
                                                         "all.")


class _Dependency(Relation):
    dependent_host_name: Names = Field((), description="Dependent hosts; `*` all, `!name` "
                                       "excludes.")
    dependent_hostgroup_name: Names = Field((), description="Every host of these hostgroups "
                                            "is dependent.")
    inherits_parent: bool = Field(False, description="The dependent also depends on what the "
                                  "master depends on.")
    dependency_period: str = Field("", description="Timeperiod in which it applies; empty: "
                                   "always.")


class Hostdependency(_Dependency):
    """The dependent hosts' checks or notifications wait on the state of the master hosts."""

    object_type: ClassVar[str] = "hostdependency"
    list_properties: ClassVar[frozenset[str]] = frozenset({
        "host_name", "hostgroup_name", "dependent_host_name", "dependent_hostgroup_name",
        "execution_failure_criteria", "notification_failure_criteria"})

    execution_failure_criteria: tuple[HostCriterion, ...] = Field(
        (), description="Master states in which the dependent is not checked: o, d, u, "
        "p (pending), n (none); empty: always checked.")
    notification_failure_criteria: tuple[HostCriterion, ...] = Field(
        (), description="Master states in which the dependent does not notify: o, d, u, p, "
        "n; empty: always notifies.")


class Servicedependency(_Dependency):
    """The dependent services' checks or notifications wait on the master services' state."""

    object_type: ClassVar[str] = "servicedependency"
    list_properties: ClassVar[frozenset[str]] = frozenset({
        "host_name", "hostgroup_name", "service_description", "dependent_host_name",
        "dependent_hostgroup_name", "dependent_service_description", "servicegroup_name",
        "dependent_servicegroup_name", "execution_failure_criteria",
        "notification_failure_criteria"})

    service_description: Names = Field((), description="Master services; `*` all, `!name` "
                                       "excludes.")
    servicegroup_name: Names = Field((), description="Every service of these servicegroups is "
                                     "a master too.")
    dependent_servicegroup_name: Names = Field((), description="Every service of these "
                                               "servicegroups is dependent too.")
    dependent_service_description: Names = Field((), description="Dependent services; with no "
                                                 "dependent host, on each master's own host "
                                                 "(a same-host dependency).")
    execution_failure_criteria: tuple[ServiceCriterion, ...] = Field(
        (), description="Master states in which the dependent is not checked: o, w, u, c, "
        "p (pending), n (none); empty: always checked.")
    notification_failure_criteria: tuple[ServiceCriterion, ...] = Field(
        (), description="Master states in which the dependent does not notify: o, w, u, c, "
        "p, n; empty: always notifies.")


class NamedEscalation(ConfigObject):
    """Shinken's `escalation`, named and listed by hosts and services in `escalations`."""

    object_type: ClassVar[str] = "escalation"
    key_property: ClassVar[str] = "escalation_name"
    list_properties: ClassVar[frozenset[str]] = frozenset({
        "contacts", "contact_groups", "escalation_options"})

    escalation_name: str = Field(description="Name hosts and services list in `escalations`.")
    contacts: Names = Field((), description="Contacts notified instead of the object's.")
    contact_groups: Names = Field((), description="Contact groups notified.")
    first_notification: int = Field(-1, description="Number of the first notification it "
                                    "applies to (when not time based).")
    last_notification: int = Field(-1, description="Number of the last; 0 or -1: no end.")
    first_notification_time: float = Field(-1.0, description="Time based: from this long after "
                                           "the first notification (interval_length units).")
    last_notification_time: float = Field(-1.0, description="Time based: until this long; "
                                          "0 or -1: no end.")
    notification_interval: float = Field(-1.0, description="Re-notify period while it applies; "
                                         "not set: the object's.")
    escalation_period: str = Field("", description="Timeperiod in which it applies.")
    escalation_options: tuple[Literal["d", "u", "r", "w", "c"], ...] = Field(
        (), description="States it applies to (d,u,r,w,c); empty: all.")


RELATION_MODELS: tuple[type[Relation], ...] = (
    Hostescalation, Serviceescalation, Hostdependency, Servicedependency)


class Resolver:
    """Resolve escalations and dependencies against a linked tree."""

    def __init__(self, hosts: Mapping[str, Host], hostgroups: Mapping[str, Hostgroup],
                 services: Mapping[tuple[str, str], Service],
                 contactgroups: Mapping[str, Contactgroup], rules: Rules,
                 diags: Diagnostics) -> None:
        self.hosts = hosts
        self.hostgroups = hostgroups
        self.contactgroups = contactgroups
        self.rules = rules
        self.diags = diags
        self.by_host: dict[str, list[str]] = {}
        self.by_group: dict[str, list[tuple[str, str]]] = {}
        for (host, description), service in services.items():
            self.by_host.setdefault(host, []).append(description)
            for group in service.servicegroups:
                self.by_group.setdefault(group, []).append((host, description))

    def in_groups(self, groups: Sequence[str]) -> list[tuple[str, str]]:
        """The (host, service) pairs of these servicegroups."""
        return [pair for g in groups for pair in self.by_group.get(g, ())]

    def host_names(self, obj: Relation, hosts: Sequence[str], groups: Sequence[str],
                   what: str = "host_name") -> list[str]:
        """The hosts a pair of host/hostgroup lists selects (undefined names left out: the
        reference check reports them)."""
        picked = pick(hosts, self.hosts, self.rules, lambda: self.hosts)
        chosen = list(picked.names)
        excluded = set(picked.excluded)
        groups_picked = pick(groups, self.hostgroups, self.rules, lambda: self.hostgroups)
        for group in groups_picked.names:
            chosen.extend(self.hostgroups[group].members)
        for group in groups_picked.excluded:
            excluded.update(self.hostgroups[group].members)
        return [h for h in dict.fromkeys(chosen) if h not in excluded]

    def descriptions(self, host: str, items: Sequence[str]) -> list[str]:
        """The services of `host` that a service_description list selects."""
        known = self.by_host.get(host, [])
        picked = pick(items, known, self.rules, lambda: known)
        return [d for d in dict.fromkeys(picked.names) if d not in picked.excluded]

    def contacts(self, obj: _Escalation) -> list[str]:
        out = list(obj.contacts)
        for name in obj.contact_groups:
            group = self.contactgroups.get(name)
            if group is not None:
                out.extend(group.members)
        return list(dict.fromkeys(out))

    def need(self, obj: Relation, props: Sequence[str]) -> bool:
        """Whether one of `props` is set; else an error at the object's `define`."""
        if any(getattr(obj, p) for p in props):
            return True
        self.diags.error(f"{obj.object_type} {obj.object_name} has no "
                         f"{' nor '.join(props)}", obj.source_file, obj.source_line,
                         f"add '{props[0]} NAME'")
        return False

    def escalations(self, objs: Sequence[Hostescalation | Serviceescalation]) -> list[Escalation]:
        out: list[Escalation] = []
        for obj in objs:
            targets = ("host_name", "hostgroup_name", *(
                ("servicegroup_name",) if isinstance(obj, Serviceescalation) else ()))
            if not self.need(obj, targets):
                continue
            hosts = self.host_names(obj, obj.host_name, obj.hostgroup_name)
            common = Escalation(host="", first_notification=obj.first_notification,
                                last_notification=obj.last_notification,
                                notification_interval=obj.notification_interval,
                                escalation_period=obj.escalation_period,
                                escalation_options=list(obj.escalation_options),
                                contacts=self.contacts(obj), source=obj.where())
            if obj.last_notification and obj.last_notification < obj.first_notification:
                line = locate_in_block(obj.source_file, obj.source_line, "last_notification")
                self.diags.error(f"{obj.object_type} {obj.object_name}: last_notification "
                                 f"{obj.last_notification} is before first_notification "
                                 f"{obj.first_notification}", obj.source_file, line,
                                 "set last_notification 0 (no last one) or a higher number")
                continue
            if isinstance(obj, Serviceescalation):
                if not obj.servicegroup_name and not self.need(obj, ("service_description",)):
                    continue
                pairs = [(h, s) for h in hosts
                         for s in self.descriptions(h, obj.service_description)]
                pairs += self.in_groups(obj.servicegroup_name)
                out.extend(common.model_copy(update={"host": h, "service": s})
                           for h, s in dict.fromkeys(pairs))
            else:
                out.extend(common.model_copy(update={"host": h}) for h in hosts)
        return out

    def dependencies(self, objs: Sequence[Hostdependency | Servicedependency]) -> list[Dependency]:
        out: list[Dependency] = []
        for obj in objs:
            targets = ("host_name", "hostgroup_name", *(
                ("servicegroup_name",) if isinstance(obj, Servicedependency) else ()))
            if not self.need(obj, targets):
                continue
            masters = self.host_names(obj, obj.host_name, obj.hostgroup_name)
            dependents = self.host_names(obj, obj.dependent_host_name,
                                         obj.dependent_hostgroup_name)
            common = Dependency(
                host="", master_host="",
                execution_failure_criteria=list(obj.execution_failure_criteria),
                notification_failure_criteria=list(obj.notification_failure_criteria),
                inherits_parent=obj.inherits_parent, dependency_period=obj.dependency_period,
                source=obj.where())
            pairs: list[tuple[str, str, str, str]] = []
            if isinstance(obj, Servicedependency):
                if not self.need(obj, ("service_description", "servicegroup_name")) or \
                        not self.need(obj, ("dependent_service_description",
                                            "dependent_servicegroup_name")):
                    continue
                same_host = not (obj.dependent_host_name or obj.dependent_hostgroup_name)
                group_dependents = self.in_groups(obj.dependent_servicegroup_name)
                master_pairs = [(m, s) for m in masters
                                for s in self.descriptions(m, obj.service_description)]
                master_pairs += self.in_groups(obj.servicegroup_name)
                for master, service in master_pairs:
                    for host in ([master] if same_host else dependents):
                        for dependent in self.descriptions(
                                host, obj.dependent_service_description):
                            pairs.append((host, dependent, master, service))
                    pairs += [(h, d, master, service) for h, d in group_dependents]
            else:
                if not self.need(obj, ("dependent_host_name", "dependent_hostgroup_name")):
                    continue
                pairs = [(h, "", m, "") for m in masters for h in dependents]
            out.extend(common.model_copy(update={"host": h, "service": s, "master_host": mh,
                                                 "master_service": ms})
                       for h, s, mh, ms in dict.fromkeys(pairs) if (h, s) != (mh, ms))
        return out


def named_escalations(named: Mapping[str, NamedEscalation],
                      checkables: Sequence[Host | Service],
                      contactgroups: Mapping[str, Contactgroup]) -> list[Escalation]:
    """The records of the Shinken escalations each host and service lists (unknown names
    are reported by the caller)."""
    out: list[Escalation] = []
    for obj in checkables:
        for name in obj.escalations:
            esc = named.get(name)
            if esc is None:
                continue
            contacts = list(esc.contacts)
            for group in esc.contact_groups:
                if group in contactgroups:
                    contacts.extend(contactgroups[group].members)
            service = obj.service_description if isinstance(obj, Service) else ""
            letters = ("d", "u", "r") if isinstance(obj, Host) else ("w", "u", "c", "r")
            out.append(Escalation(
                host=obj.host_name, service=service,
                first_notification=max(esc.first_notification, 0),
                last_notification=max(esc.last_notification, 0),
                first_notification_time=esc.first_notification_time,
                last_notification_time=esc.last_notification_time,
                notification_interval=esc.notification_interval,
                escalation_period=esc.escalation_period,
                escalation_options=[o for o in esc.escalation_options if o in letters],
                contacts=list(dict.fromkeys(contacts)), source=esc.where()))
    return out


def check_loops(dependencies: Sequence[Dependency], diags: Diagnostics) -> None:
    """Refuse a circular dependency, as nagios4 -v does ("a circular … dependency (which could
    result in a deadlock)"): for execution and for notification criteria apart, a dependent
    that reaches itself through its masters is an error at one of the loop's definitions."""
    for kind in ("execution", "notification"):
        edges: dict[tuple[str, str], list[Dependency]] = {}
        for dep in dependencies:
            criteria = (dep.execution_failure_criteria if kind == "execution"
                        else dep.notification_failure_criteria)
            if criteria and "n" not in criteria:
                edges.setdefault((dep.host, dep.service), []).append(dep)
        done: set[tuple[str, str]] = set()
        for start in sorted(edges):
            loop = _find_loop(start, edges, done)
            if loop is not None:
                done.update(loop)  # one error per loop
                names = " -> ".join(f"{h}/{s}" if s else h for h, s in loop)
                file, _, line = loop_source(edges, loop).rpartition(":")
                diags.error(f"circular {kind} dependency: {names}", file or None,
                            int(line) if line.isdigit() else None,
                            "remove one of these dependencies, or its "
                            f"{kind}_failure_criteria")


def loop_source(edges: Mapping[tuple[str, str], list[Dependency]],
                loop: list[tuple[str, str]]) -> str:
    """Where the first dependency of a loop is defined."""
    first, second = loop[0], loop[1]
    return next((d.source for d in edges[first]
                 if (d.master_host, d.master_service) == second), "")


def _find_loop(start: tuple[str, str], edges: Mapping[tuple[str, str], list[Dependency]],
               done: set[tuple[str, str]]) -> list[tuple[str, str]] | None:
    """A path from `start` back to a node already on it (depth first, without recursion)."""
    path: list[tuple[str, str]] = []
    on_path: set[tuple[str, str]] = set()
    stack: list[tuple[tuple[str, str], int]] = [(start, 0)]
    while stack:
        node, index = stack.pop()
        if index == 0:
            if node in on_path:
                return [*path[path.index(node):], node]
            if node in done:
                continue
            path.append(node)
            on_path.add(node)
        masters = edges.get(node, [])
        if index < len(masters):
            stack.append((node, index + 1))
            dep = masters[index]
            stack.append(((dep.master_host, dep.master_service), 0))
        else:
            path.pop()
            on_path.discard(node)
            done.add(node)
    return None


def inherit_contacts(services: Mapping[tuple[str, str], Service],
                     hosts: Mapping[str, Host]) -> None:
    """Give a service that names neither contacts nor contact_groups (templates included) its
    host's, as Nagios 4 does."""
    for (host_name, _), service in services.items():
        if service.contacts or service.contact_groups:
            continue
        host = hosts.get(host_name)
        if host is not None and (host.contacts or host.contact_groups):
            service.contacts = host.contacts
            service.contact_groups = host.contact_groups


#: Main-file directives that name a command (`command!args`).
MAIN_COMMANDS = ("global_host_event_handler", "global_service_event_handler")


def check_main_commands(main: MainConfig, directives: Sequence[Directive],
                        commands: Mapping[str, object], diags: Diagnostics) -> None:
    """Report a main-file event handler whose command is not defined, at its line."""
    for key in MAIN_COMMANDS:
        value: str = getattr(main, key)
        name = value.split("!", 1)[0].strip()
        if not name or name in commands:
            continue
        at = next((d for d in reversed(directives) if d.key == key), None)
        diags.error(f"{key}: command '{name}' is not defined", at.file if at else None,
                    at.line if at else None, did_you_mean(name, commands)
                    or "define the command or fix the name")

"""References of the types shinha reads but does not act on yet: dependencies, escalations,
modulations, notification ways. Each is still checked, as Nagios, Shinken and Alignak check
them: an undefined host in a `hostdependency` is an error at the line of the property.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from shinha.config.diagnostics import Diagnostics, did_you_mean
from shinha.config.inherit import Inheritance
from shinha.config.names import NAGIOS, Rules, is_expression, pick, split_names
from shinha.config.objects import Hostgroup
from shinha.config.parser import RawObject, locate_property

#: type -> (property, kind of object it names, is a list); kinds: host, hostgroup, contact,
#: contactgroup, timeperiod, command (the name before `!`).
REFERENCES: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "hostdependency": (
        ("host_name", "host", True), ("hostgroup_name", "hostgroup", True),
        ("dependent_host_name", "host", True), ("dependent_hostgroup_name", "hostgroup", True),
        ("dependency_period", "timeperiod", False)),
    "servicedependency": (
        ("host_name", "host", True), ("hostgroup_name", "hostgroup", True),
        ("dependent_host_name", "host", True), ("dependent_hostgroup_name", "hostgroup", True),
        ("servicegroup_name", "servicegroup", True),
        ("dependent_servicegroup_name", "servicegroup", True),
        ("dependency_period", "timeperiod", False)),
    "hostescalation": (
        ("host_name", "host", True), ("hostgroup_name", "hostgroup", True),
        ("contacts", "contact", True), ("contact_groups", "contactgroup", True),
        ("escalation_period", "timeperiod", False)),
    "serviceescalation": (
        ("host_name", "host", True), ("hostgroup_name", "hostgroup", True),
        ("servicegroup_name", "servicegroup", True), ("contacts", "contact", True),
        ("contact_groups", "contactgroup", True),
        ("escalation_period", "timeperiod", False)),
    "escalation": (
        ("contacts", "contact", True), ("contact_groups", "contactgroup", True),
        ("escalation_period", "timeperiod", False)),
    "checkmodulation": (("check_command", "command", False),
                        ("check_period", "timeperiod", False)),
    "macromodulation": (("modulation_period", "timeperiod", False),),
    "resultmodulation": (("modulation_period", "timeperiod", False),),
    "businessimpactmodulation": (("modulation_period", "timeperiod", False),),
    "notificationway": (
        ("host_notification_period", "timeperiod", False),
        ("service_notification_period", "timeperiod", False),
        ("host_notification_commands", "command", True),
        ("service_notification_commands", "command", True)),
}
#: Service references: (hosts property, hostgroups property, descriptions property).
SERVICE_REFERENCES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "servicedependency": (("host_name", "hostgroup_name", "service_description"),
                          ("dependent_host_name", "dependent_hostgroup_name",
                           "dependent_service_description")),
    "serviceescalation": (("host_name", "hostgroup_name", "service_description"),),
}


class Loaded(Protocol):
    """What of a loaded configuration the references are checked against."""

    @property
    def hosts(self) -> Mapping[str, object]: ...
    @property
    def hostgroups(self) -> Mapping[str, Hostgroup]: ...
    @property
    def servicegroups(self) -> Mapping[str, object]: ...
    @property
    def contacts(self) -> Mapping[str, object]: ...
    @property
    def contactgroups(self) -> Mapping[str, object]: ...
    @property
    def timeperiods(self) -> Mapping[str, object]: ...
    @property
    def commands(self) -> Mapping[str, object]: ...
    @property
    def services(self) -> Mapping[tuple[str, str], object]: ...


def check_loaded(by_type: Mapping[str, Sequence[RawObject]], config: Loaded, rules: Rules,
                 diags: Diagnostics) -> None:
    """Check the references of the types shinha does not act on against a loaded tree."""
    names = {"host": config.hosts, "hostgroup": config.hostgroups, "contact": config.contacts,
             "contactgroup": config.contactgroups, "timeperiod": config.timeperiods,
             "command": config.commands, "servicegroup": config.servicegroups}
    check_references(by_type, Known(names, config.hostgroups, config.services), rules, diags)


@dataclass(slots=True)
class Known:
    """The defined objects that references may name, by kind."""

    names: Mapping[str, Mapping[str, object]]
    hostgroups: Mapping[str, Hostgroup]
    services: Mapping[tuple[str, str], object]


def check_references(by_type: Mapping[str, Sequence[RawObject]], known: Known, rules: Rules,
                     diags: Diagnostics) -> None:
    """Report every undefined name that a dependency, escalation, modulation or notification
    way names (templates, `register 0`, are not checked: only what uses them)."""
    for type_, props in REFERENCES.items():
        raws = by_type.get(type_, ())
        if not raws:
            continue
        templates = {r.props["name"]: r for r in raws if "name" in r.props}
        inheritance = Inheritance(type_, templates, Diagnostics())  # not this module's report
        for raw in raws:
            if raw.props.get("register", "").strip() == "0":
                continue
            resolved = inheritance.resolve(raw)
            for prop, kind, is_list in props:
                value = resolved.get(prop, "").strip()
                if value:
                    items = split_names(value) if is_list else [value]
                    _check(raw, prop, kind, items, known, rules, diags)
            for hosts_prop, groups_prop, descriptions_prop in SERVICE_REFERENCES.get(type_, ()):
                _check_services(raw, resolved, (hosts_prop, groups_prop, descriptions_prop),
                                known, rules, diags)


def _check(raw: RawObject, prop: str, kind: str, items: Sequence[str], known: Known,
           rules: Rules, diags: Diagnostics) -> None:
    names = known.names[kind]
    if kind == "command":
        items = [item.split("!", 1)[0].strip() for item in items]
    elif kind == "hostgroup" and rules.engine and is_expression(",".join(items)):
        items = [n for n in _expression_names(",".join(items))]
    picked = pick(items, names, rules, lambda: names)
    line = locate_property(raw, prop)
    # nagios4 logs an undefined host in a host dependency and loads the tree all the same
    # (without the dependency): so does the nagios dialect, with a warning.
    report = (diags.warning if rules.dialect == NAGIOS and raw.type == "hostdependency"
              and kind in ("host", "hostgroup") else diags.error)
    for name in picked.missing:
        report(f"{raw.type}: {prop}: {kind} '{name}' is not defined", raw.file, line,
               did_you_mean(name, names) or f"define the {kind} or fix the name")
    for item in [*picked.unmatched, *picked.invalid]:
        diags.error(f"{raw.type}: {prop}: no {kind} matches '{item}'", raw.file, line)


def _expression_names(expression: str) -> Iterable[str]:
    """The names in a Shinken/Alignak expression (its operators and `*` left out)."""
    for word in expression.replace("(", ",").replace(")", ",").replace("&", ",").replace(
            "|", ",").replace("+", ",").split(","):
        word = word.strip().lstrip("!").strip()
        if word and word != "*":
            yield word


def _check_services(raw: RawObject, resolved: Mapping[str, str], props: tuple[str, str, str],
                    known: Known, rules: Rules, diags: Diagnostics) -> None:
    hosts_prop, groups_prop, descriptions_prop = props
    descriptions = [d for d in split_names(resolved.get(descriptions_prop, ""))
                    if d != "*" and not d.startswith("!")]
    if not descriptions or rules.regexp:
        return  # regular expressions select services, they need not name one
    hosts = [h for h in split_names(resolved.get(hosts_prop, ""))
             if h != "*" and not h.startswith("!")]
    if not hosts and not resolved.get(groups_prop, "").strip():
        # A dependent service with no dependent host is on the master's hosts (Nagios).
        hosts = [h for h in split_names(resolved.get("host_name", ""))
                 if h != "*" and not h.startswith("!")]
    for group in split_names(resolved.get(groups_prop, "")):
        if group in known.hostgroups:
            hosts.extend(known.hostgroups[group].members)
    line = locate_property(raw, descriptions_prop)
    for description in descriptions:
        absent = [h for h in dict.fromkeys(hosts)
                  if h in known.names["host"] and (h, description) not in known.services]
        if absent:
            shown = ", ".join(f"'{h}'" for h in absent[:3]) + (" …" if len(absent) > 3 else "")
            diags.error(f"{raw.type}: {descriptions_prop}: service '{description}' is not "
                        f"defined on host{'s' if len(absent) > 1 else ''} {shown}", raw.file,
                        line, "define the service on those hosts, or fix the name")

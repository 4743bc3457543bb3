"""Attach service definitions to hosts: one service per host.

A definition names its hosts by `host_name` and `hostgroup_name`, read as its dialect reads
them (shinha.config.names). Under Shinken and Alignak, a service *template* whose `host_name`
names host templates (a "pack") is also attached to every host that uses one of them, directly
or through other templates, `duplicate_foreach` makes one service per item of a host's custom
variable (shinha.config.foreach), and a host's `service_includes` (only these) or
`service_excludes` (not these) filter the services it gets, whatever their source.

One host, one service per description. When two definitions give the same one, the kept one
is the one Nagios 4 keeps, with a warning at the one left out (Nagios registers the services in
two passes, and the first registered wins; shinha ranks them the same way, see SLOT below). A
pack's service gives way to any other definition, with a warning. A definition that selects no
host (an empty hostgroup, every host excluded) creates nothing, silently, as in Nagios 4.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from shinha.config.build import ObjectBuilder
from shinha.config.diagnostics import Diagnostics, did_you_mean
from shinha.config.fastmodel import copy_model
from shinha.config.foreach import ForeachSyntaxError, duplicates
from shinha.config.inherit import Inheritance
from shinha.config.link import REGEXP_HINT, Linker
from shinha.config.names import (
    SHINKEN,
    Picked,
    Rules,
    evaluate,
    is_expression,
    is_regexp,
    pick,
    split_names,
)
from shinha.config.objects import Host, Hostgroup, Service
from shinha.config.parser import RawObject, locate_in_block, locate_property

Key = tuple[str, str]

#: What an instance is, as Nagios 4 registers it (`xodtemplate_duplicate_services`): a
#: definition keeps its first host (SLOT: its hostgroups' hosts come first, each group's in
#: reverse); its other hosts are copies, made before the definitions are registered
#: (LIST_COPY), except the hosts that come from a hostgroup, registered in a second pass
#: (GROUP_COPY). Definitions are registered in reverse file order and copies in file order;
#: the first registered wins (checked against nagios4 in tests/test_expand.py). PACK: a
#: Shinken/Alignak pack's.
SLOT, LIST_COPY, GROUP_COPY, PACK = 0, 1, 2, 3
#: Which kind wins over which (lower wins).
_RANK = {LIST_COPY: 0, SLOT: 1, GROUP_COPY: 2, PACK: 3}
#: Of two of one kind, whether the later definition wins.
_LATER_WINS = {SLOT: True, LIST_COPY: False, GROUP_COPY: False, PACK: True}
#: Service properties set aside while building, for the generators (Shinken/Alignak).
GENERATOR = frozenset({"duplicate_foreach", "default_value"})
#: Host properties set aside while building: which services a host takes (Shinken/Alignak).
FILTERS = frozenset({"service_includes", "service_excludes"})
_NONE: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class Filter:
    """A host's `service_includes` (only these services) or else `service_excludes` (not
    these). Alignak compares descriptions; Shinken also takes `*` and `r:REGEXP`."""

    includes: tuple[str, ...]
    excludes: tuple[str, ...]
    dialect: str

    def refuses(self, description: str) -> bool:
        """Whether the host does not take the service `description`."""
        if self.includes:
            return not any(self._matches(p, description) for p in self.includes)
        return any(self._matches(p, description) for p in self.excludes)

    def _matches(self, pattern: str, description: str) -> bool:
        if self.dialect != SHINKEN:
            return pattern == description
        if pattern == "*":
            return True
        if pattern.startswith("r:"):
            try:
                return re.match(pattern[2:], description) is not None
            except re.error:
                return False  # Shinken records it as a host error; the builder warns
        return pattern == description


@dataclass(slots=True)
class HostFacts:
    """What the expansion needs of the hosts beyond their models (Shinken/Alignak)."""

    #: Host template -> the hosts that use it, directly or through other templates.
    templates: dict[str, list[str]] = field(default_factory=dict)
    #: Host -> its service filter, for the hosts that have one.
    filters: dict[str, Filter] = field(default_factory=dict)


def host_facts(builder: ObjectBuilder, rules: Rules) -> HostFacts:
    """The HostFacts of the hosts `builder` built with `aside=FILTERS`; call it before
    `builder.release()`. Alignak 2.1.5 applies only a host's own filter, not one it
    inherits (Shinken applies both)."""
    facts = HostFacts(template_users(builder))
    for raw, aside in zip(builder.origins, builder.aside, strict=True):
        if rules.dialect != SHINKEN:
            aside = {k: v for k, v in raw.props.items() if k in FILTERS}
        if aside:
            name = raw.props.get("host_name") or builder.inheritance.resolve(raw).get(
                "host_name", "")
            facts.filters[name.strip()] = Filter(
                tuple(split_names(aside.get("service_includes", ""))),
                tuple(split_names(aside.get("service_excludes", ""))), rules.dialect)
    return facts


@dataclass(slots=True)
class Definitions:
    """Built service definitions, with their host list as written, their block and their
    generator properties (each list parallel to `services`; `aside` may be empty)."""

    services: list[Service]
    host_specs: list[str]
    origins: list[RawObject]
    aside: list[dict[str, str]] = field(default_factory=list)

    def __iter__(self) -> Iterator[tuple[Service, str, RawObject, dict[str, str]]]:
        aside = self.aside or [_NONE] * len(self.services)
        return iter(zip(self.services, self.host_specs, self.origins, aside, strict=True))


#: Properties of a generated host in which $HOSTNAME$ becomes its name (Alignak).
_NAMED_IN = ("display_name", "alias", "notes", "notes_url", "action_url")


def generate_hosts(raws: list[RawObject], diags: Diagnostics) -> list[RawObject]:
    """Alignak's self-generated hosts: `host_name web-[1-20-%02d]` (or `[1-20]`, format %d)
    stands for one host per number, web-01 to web-20, `$HOSTNAME$` in its display_name,
    alias, notes and URLs replaced by the host's name (Alignak's `Items.add_item`)."""
    out: list[RawObject] = []
    for raw in raws:
        name = raw.props.get("host_name", "")
        start, end = name.find("["), name.find("]")
        limits = name[start + 1:end].split("-")
        if (start < 0 or end < start or len(limits) not in (2, 3)
                or raw.props.get("register", "").strip() == "0"):
            out.append(raw)
            continue
        fmt = limits[2] if len(limits) == 3 else "%d"
        token = "[" + "-".join(limits) + "]"
        first, last = (int(x) if x.strip().isdigit() else 1 for x in limits[:2])
        try:
            names = [name.replace(token, fmt % n) for n in range(first, last + 1)]
        except (TypeError, ValueError):
            diags.warning(f"host '{name}': '{fmt}' is not a number format: no host generated "
                          "from it", raw.file, locate_property(raw, "host_name"),
                          "write e.g. [1-20-%02d]")
            out.append(raw)
            continue
        for generated in names:
            copy = RawObject(raw.type, raw.file, raw.line)
            copy.end, copy.additive = raw.end, raw.additive
            copy.props = dict(raw.props, host_name=generated)
            for prop in _NAMED_IN:
                if "$HOSTNAME$" in copy.props.get(prop, ""):
                    copy.props[prop] = copy.props[prop].replace("$HOSTNAME$", generated)
            out.append(copy)
    return out


def expand_services(builder: ObjectBuilder, hosts: dict[str, Host],
                    groups: dict[str, Hostgroup], facts: HostFacts, rules: Rules,
                    diags: Diagnostics) -> dict[Key, Service]:
    """Build the service definitions of `builder` and attach them to their hosts; under
    Shinken and Alignak, the service templates on host templates (packs) too."""
    aside = GENERATOR if rules.engine else frozenset()
    services = builder.build(extract="host_name", aside=aside)
    attacher = Attacher(hosts, groups, rules, diags, facts)
    attacher.attach(Definitions(services, builder.extracted, builder.origins, builder.aside))
    if rules.engine:
        attacher.attach_packs(pack_definitions(builder.raws, builder.inheritance.templates,
                                               diags, aside))
    return attacher.services


def template_users(builder: ObjectBuilder) -> dict[str, list[str]]:
    """Every template of a builder's type -> the objects that use it, directly or through
    other templates (Shinken's "tags"). Call it before `builder.release()`."""
    templates = builder.inheritance.templates
    ancestors: dict[str, frozenset[str]] = {}

    def chain(use: str, stack: frozenset[str]) -> frozenset[str]:
        done = ancestors.get(use)
        if done is not None:
            return done
        names: set[str] = set()
        for parent in split_names(use):
            if parent in stack:
                continue  # an inheritance loop, reported by the builder
            names.add(parent)
            template = templates.get(parent)
            if template is not None and template.props.get("use"):
                names |= chain(template.props["use"], stack | {parent})
        ancestors[use] = frozenset(names)
        return ancestors[use]

    users: dict[str, list[str]] = {name: [] for name in templates}
    key = builder.model.key_property
    for raw in builder.origins:
        use, name = raw.props.get("use"), raw.props.get(key)
        if use and name:
            for template in chain(use, frozenset()):
                users.setdefault(template, []).append(name.strip())
    return users


def pack_definitions(raws: Sequence[RawObject], templates: dict[str, RawObject],
                     diags: Diagnostics, aside: frozenset[str]) -> Definitions:
    """The service templates that name hosts (`register 0` with a `host_name`), built as
    services: Shinken's and Alignak's packs."""
    quiet = Inheritance("service", templates, Diagnostics())  # the builder reports its errors
    packs = []
    for raw in raws:
        register = raw.props.get("register")
        if register is None or register.strip() != "0":
            continue
        props = quiet.resolve(raw)
        if props.get("host_name", "").strip():
            if "service_description" in props:
                packs.append(raw)
            else:
                diags.warning("service template with a host_name and no service_description: "
                              "it attaches nothing", raw.file, locate_property(raw, "host_name"),
                              "add a service_description, or remove the host_name")
    builder = ObjectBuilder(Service, packs, diags, templates)
    services = builder.build(extract="host_name", aside=aside, templates=True, report=False)
    return Definitions(services, builder.extracted, builder.origins, builder.aside)


class Attacher:
    """Attach definitions to hosts into `services`, settling duplicates as Nagios does."""

    def __init__(self, hosts: dict[str, Host], groups: dict[str, Hostgroup], rules: Rules,
                 diags: Diagnostics, facts: HostFacts | None = None) -> None:
        self.hosts = hosts
        self.groups = groups
        self.rules = rules
        self.diags = diags
        self.linker = Linker(diags)
        facts = facts or HostFacts()
        self.host_templates = facts.templates
        self.filters = facts.filters
        self.services: dict[Key, Service] = {}
        #: The kind of every instance that is not a SLOT (which most are: no entry).
        self.codes: dict[Key, int] = {}
        self._hosts_order: dict[str, int] | None = None

    # -- definitions ---------------------------------------------------------------------------

    def attach(self, defs: Definitions) -> None:
        """Attach registered definitions (host_name, hostgroup_name)."""
        services, hosts = self.services, self.hosts
        regexp, filters = self.rules.regexp, self.filters
        for svc, spec, raw, aside in defs:
            host = svc.host_name
            if (host and not svc.hostgroup_name and not aside and host not in filters
                    and not (regexp and is_regexp(host, self.rules))):
                # The common case, one plain host name: no copies, no lists.
                key = (host, svc.service_description)
                if key not in services and host in hosts:
                    services[key] = svc
                    continue
            if not spec.strip() and not svc.hostgroup_name:
                self.diags.error(f"service '{svc.service_description}' is attached to no host",
                                 raw.file, raw.line, "set host_name or hostgroup_name "
                                 "(or 'register 0' if it is a template)")
                continue
            targets = (self._engine_targets(svc, spec, raw) if self.rules.engine
                       else self._nagios_targets(svc, spec, raw))
            description = svc.service_description
            for position, (host_name, from_group) in enumerate(targets):
                code = (GROUP_COPY if from_group else LIST_COPY) if position else SLOT
                if aside:
                    self._instances(svc, host_name, code, aside)
                    continue
                key = (host_name, description)
                instance = svc if host == host_name else copy_model(svc, host_name=host_name)
                if key in services or host_name in filters:
                    self._put(key, instance, code)
                else:  # inline: a hostgroup's 10,000 hosts come here
                    services[key] = instance
                    if code:
                        self.codes[key] = code

    def attach_packs(self, defs: Definitions) -> None:
        """Attach service templates to the hosts of the host templates they name."""
        for svc, spec, raw, aside in defs:
            for host_name in self._template_hosts(svc, spec, raw):
                self._instances(svc, host_name, PACK, aside)

    def _instances(self, svc: Service, host_name: str, code: int,
                   aside: dict[str, str]) -> None:
        variable = aside.get("duplicate_foreach", "").strip()
        if not variable:
            instance = svc if svc.host_name == host_name else copy_model(svc,
                                                                           host_name=host_name)
            self._put((host_name, svc.service_description), instance, code)
            return
        host = self.hosts[host_name]
        try:
            made = duplicates(svc, host, variable, aside.get("default_value", ""),
                              self.rules.dialect)
        except ForeachSyntaxError as exc:
            self.diags.error(f"host '{host_name}': {variable}: not a list for duplicate_foreach "
                             f"({exc}; service '{svc.service_description}' at {svc.where()})",
                             host.source_file, self._variable_line(host, variable),
                             "write items as key or key$(value)$$(value2)$, comma-separated")
            return
        for instance in made:
            self._put((host_name, instance.service_description), instance, code)

    @staticmethod
    def _variable_line(host: Host, variable: str) -> int:
        for spelling in (variable, variable.upper(), variable.lower()):
            line = locate_in_block(host.source_file, host.source_line, spelling)
            if line != host.source_line:
                return line
        return host.source_line

    # -- duplicates ----------------------------------------------------------------------------

    def _put(self, key: Key, svc: Service, code: int) -> None:
        host_filter = self.filters.get(key[0])
        if host_filter is not None and host_filter.refuses(key[1]):
            return  # the host's service_includes/service_excludes leave it out
        prior = self.services.get(key)
        if prior is None:
            self.services[key] = svc
            if code:
                self.codes[key] = code
            return
        prior_code = self.codes.get(key, SLOT)
        # Of one kind, definitions come in file order: the new one is the later.
        new_wins = (_RANK[code] < _RANK[prior_code] if code != prior_code
                    else _LATER_WINS[code])
        kept, dropped = (svc, prior) if new_wins else (prior, svc)
        if new_wins:
            self.services[key] = svc
            if code:
                self.codes[key] = code
            else:
                self.codes.pop(key, None)
        if PACK in (code, prior_code) and code != prior_code:
            what = (f"comes from a host template (at {dropped.where()}) and from another "
                    f"definition (at {kept.where()}), which is kept")
        else:
            what = f"is defined twice; the definition at {kept.where()} is kept"
        self.diags.warning(f"service '{key[1]}' on host '{key[0]}' {what}", dropped.source_file,
                           dropped.source_line, "remove one of them, or rename it")

    # -- targets -------------------------------------------------------------------------------

    def _nagios_targets(self, svc: Service, spec: str, raw: RawObject
                        ) -> list[tuple[str, bool]]:
        """Nagios 4: the hosts of the hostgroups named (`*`: of every hostgroup; each group's
        hosts in Nagios's order, the reverse of shinha's), then the hosts named (`*`, regular
        expressions), less the excluded ones."""
        hosts, groups, rules = self.hosts, self.groups, self.rules
        named = pick(split_names(spec), hosts, rules, lambda: hosts)
        self._report(svc, raw, "host_name", "host", named, hosts)
        grouped = pick(svc.hostgroup_name, groups, rules, lambda: groups)
        self._report(svc, raw, "hostgroup_name", "hostgroup", grouped, groups)
        excluded = set(named.excluded)
        for name in grouped.excluded:
            excluded.update(groups[name].members)
        out: dict[str, bool] = {}
        for group in grouped.names:
            for name in reversed(groups[group].members):
                if name not in excluded:
                    out[name] = True
        for name in named.names:
            if name not in excluded:
                out.setdefault(name, False)
        return list(out.items())

    def _engine_targets(self, svc: Service, spec: str, raw: RawObject
                        ) -> list[tuple[str, bool]]:
        """Shinken and Alignak: the hostgroups' hosts (an expression, or a list), then the
        host_name items in order: a name adds its host, `*` every host, `!name` removes it."""
        hosts, groups = self.hosts, self.groups
        selected: dict[str, bool] = {}
        expression = ",".join(svc.hostgroup_name)
        if is_expression(expression):
            selected.update(dict.fromkeys(self._evaluate(
                svc, raw, "hostgroup_name", "hostgroup", expression,
                lambda n: groups[n].members if n in groups else None), True))
        else:
            for group in svc.hostgroup_name:
                if group in groups:
                    selected.update(dict.fromkeys(reversed(groups[group].members), True))
                else:
                    self.linker.missing(svc, "hostgroup_name", "hostgroup", group, groups, raw)
        for item in split_names(spec):
            if item[:1] == "!":
                selected.pop(item[1:], None)
            elif item == "*":
                for name in hosts:
                    selected.setdefault(name, False)
            elif item in hosts:
                selected.setdefault(item, False)
            else:
                self.linker.missing(svc, "host_name", "host", item, hosts, raw)
        return list(selected.items())

    def _template_hosts(self, svc: Service, spec: str, raw: RawObject) -> list[str]:
        """The hosts of a pack: the users of the host templates its host_name names."""
        users = self.host_templates
        if is_expression(spec):
            return self._evaluate(svc, raw, "host_name", "host template", spec, users.get)
        out: dict[str, None] = {}
        for name in split_names(spec):
            found = users.get(name)
            if found is not None:
                out.update(dict.fromkeys(found))
                continue
            hint = (f"'{name}' is a host: a service template ('register 0') is attached only to "
                    "the users of the host templates it names; to attach it to this host, "
                    "define a service that uses it" if name in self.hosts else
                    did_you_mean(name, users) or "define a host template with that name")
            self.diags.warning(f"service template '{svc.service_description}': host_name: host "
                               f"template '{name}' is not defined; it attaches nothing there",
                               raw.file, locate_property(raw, "host_name"), hint)
        return list(out)

    def _evaluate(self, svc: Service, raw: RawObject, prop: str, kind: str, expression: str,
                  leaf: Callable[[str], Collection[str] | None]) -> list[str]:
        found = evaluate(expression, leaf, lambda: self.hosts)
        line = locate_property(raw, prop)
        for name in found.unknown:
            self.diags.warning(f"service '{svc.service_description}': {prop}: {kind} '{name}' "
                               "is not defined; the expression reads it as no host (as "
                               "Shinken and Alignak do)", raw.file, line,
                               did_you_mean(name, self.groups if kind == "hostgroup"
                                            else self.host_templates)
                               or f"define the {kind} or fix the name")
        for note in found.notes:
            self.diags.warning(f"service '{svc.service_description}': {prop} '{expression}': "
                               f"{note}", raw.file, line)
        order = self._host_order()
        return sorted(found.names, key=order.__getitem__)

    def _host_order(self) -> dict[str, int]:
        if self._hosts_order is None:
            self._hosts_order = {name: i for i, name in enumerate(self.hosts)}
        return self._hosts_order

    def _report(self, svc: Service, raw: RawObject, prop: str, kind: str, picked: Picked,
                known: Mapping[str, object]) -> None:
        line = locate_property(raw, prop)
        for item in picked.missing:
            self.linker.missing(svc, prop, kind, item, known, raw)
        for item in picked.unmatched:
            self.diags.error(f"service '{svc.service_description}': {prop}: no {kind} "
                             f"matches '{item}'", raw.file, line, REGEXP_HINT)
        for item in picked.invalid:
            self.diags.error(f"service '{svc.service_description}': {prop}: '{item}' is not a "
                             "valid regular expression", raw.file, line,
                             "use_regexp_matching=1 reads it as one; escape the special "
                             "characters, or list the names")

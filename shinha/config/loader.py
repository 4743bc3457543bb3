"""Load a configuration tree: read, inherit, validate, link, and report every problem."""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any, TypeVar

from shinha.config import strict
from shinha.config.build import (
    OBJECT_MODELS,
    ObjectBuilder,
    build_timeperiods,
    split_by_type,
    templates_of,
)
from shinha.config.builtins import BUILTIN_COMMANDS, BUSINESS_RULE, check_rule
from shinha.config.daemons import DAEMON_MODELS, DaemonLink, Poller, Scheduler
from shinha.config.diagnostics import Diagnostic, Diagnostics
from shinha.config.dialect import Dialect, detect, signalling
from shinha.config.expand import (
    FILTERS,
    HostFacts,
    expand_services,
    generate_hosts,
    host_facts,
)
from shinha.config.lenient import adapt_alignak_modules, relax
from shinha.config.link import (
    Linker,
    check_parents,
    link_contactgroups,
    link_hostgroups,
    link_servicegroups,
)
from shinha.config.macros import split_check_command, used_macros
from shinha.config.mainfile import MainConfig, build_main, is_macro
from shinha.config.names import Rules, rules_for
from shinha.config.objects import (
    Command,
    ConfigObject,
    Contact,
    Contactgroup,
    Host,
    Hostgroup,
    Module,
    Realm,
    Service,
    Servicegroup,
)
from shinha.config.parser import ParsedTree, RawObject, TreeReader, locate_in_block
from shinha.config.references import check_loaded
from shinha.config.relations import (
    Hostdependency,
    Hostescalation,
    NamedEscalation,
    Resolver,
    Servicedependency,
    Serviceescalation,
    check_loops,
    check_main_commands,
    inherit_contacts,
    named_escalations,
)
from shinha.config.timeperiod import Timeperiod
from shinha.errors import ConfigError
from shinha.wire.alerting import Dependency, Escalation

DEFAULT_REALM = "All"
#: The dialect of a Config made without a load (tests, tools).
DEFAULT_DIALECT = Dialect("shinha", "the default")
T = TypeVar("T", bound=ConfigObject)


@dataclass(slots=True)
class Config:
    """A loaded, validated and linked configuration."""

    main_file: str
    main: MainConfig
    files: list[str]
    resources: dict[str, str]
    hosts: dict[str, Host] = field(default_factory=dict)
    services: dict[tuple[str, str], Service] = field(default_factory=dict)
    hostgroups: dict[str, Hostgroup] = field(default_factory=dict)
    servicegroups: dict[str, Servicegroup] = field(default_factory=dict)
    commands: dict[str, Command] = field(default_factory=dict)
    timeperiods: dict[str, Timeperiod] = field(default_factory=dict)
    contacts: dict[str, Contact] = field(default_factory=dict)
    contactgroups: dict[str, Contactgroup] = field(default_factory=dict)
    realms: dict[str, Realm] = field(default_factory=dict)
    modules: dict[str, Module] = field(default_factory=dict)
    daemons: dict[str, dict[str, DaemonLink]] = field(default_factory=dict)
    #: Escalations and dependencies, one per host or service they apply to (relations.py).
    escalations: list[Escalation] = field(default_factory=list)
    dependencies: list[Dependency] = field(default_factory=list)
    templates: int = 0
    default_realm: str = DEFAULT_REALM
    config_hash: str = ""
    #: The dialect the tree was read in (shinha.config.dialect): `dialect.name` is "shinha",
    #: "nagios", "shinken" or "alignak"; `dialect.lenient` is True for the last two.
    dialect: Dialect = DEFAULT_DIALECT

    def counts(self) -> dict[str, int]:
        """Count each object type (the check-config summary)."""
        out = {
            "host": len(self.hosts), "service": len(self.services),
            "hostgroup": len(self.hostgroups), "servicegroup": len(self.servicegroups),
            "command": len(self.commands), "timeperiod": len(self.timeperiods),
            "contact": len(self.contacts), "contactgroup": len(self.contactgroups),
            "realm": len(self.realms), "module": len(self.modules),
        }
        for role in DAEMON_MODELS:
            out[role] = len(self.daemons.get(role, {}))
        out["template"] = self.templates
        return out


@dataclass(slots=True)
class LoadResult:
    """What a load produced: the configuration (None if the main file is unreadable)."""

    config: Config | None
    diagnostics: list[Diagnostic]

    @property
    def dialect(self) -> Dialect | None:
        """The dialect the tree was read in (None if the main file is unreadable)."""
        return self.config.dialect if self.config is not None else None

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    @property
    def ok(self) -> bool:
        return self.config is not None and not self.errors

    def raise_for_errors(self) -> Config:
        """Return the configuration, or raise ConfigError listing every error."""
        if self.config is None or self.errors:
            lines = "\n".join(str(d) for d in self.errors)
            raise ConfigError(f"the configuration has {len(self.errors)} error(s):\n{lines}",
                              list(self.errors))
        return self.config


def _index(objs: list[T], diags: Diagnostics, kind: str,
           dialect: Dialect = DEFAULT_DIALECT) -> dict[str, T]:
    out: dict[str, T] = {}
    for obj in objs:
        name = obj.object_name
        if name in out:
            first = out[name]
            if dialect.lenient:
                diags.warning(f"{kind} '{name}' is defined twice (first at {first.where()}); "
                              f"the later one is kept, as {dialect.title} does",
                              obj.source_file, obj.source_line, "remove one of them")
                out[name] = obj
                continue
            diags.error(f"{kind} '{name}' is defined twice (first at {first.where()})",
                        obj.source_file, obj.source_line, "remove or rename one of them")
            continue
        out[name] = obj
    return out


def load_config(path: str | Path) -> LoadResult:
    """Load the main file at `path` and everything it includes; never stop at one error."""
    # A large tree allocates millions of objects and no cycles: the cyclic collector would
    # rescan them over and over (it tripled the load time of 100,000 services).
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _load(Path(path))
    finally:
        if enabled:
            gc.enable()


#: What a satellite reads of a tree: the daemons, their realms and modules.
CLUSTER_TYPES = frozenset({"realm", "module", *DAEMON_MODELS})


def load_cluster(path: str | Path) -> LoadResult:
    """Load what a satellite needs of the tree at `path`: the main file, the resources, the
    realms, modules and daemons. The monitored objects (hosts, services, commands …) are
    not built: a satellite gets them by dispatch. Problems outside that part are left to the
    arbiter, which refuses such a tree; here they are at most warnings."""
    main_path = Path(path)
    diags = Diagnostics()
    if not main_path.is_file():
        diags.error(f"main configuration file not found: {main_path}")
        return LoadResult(None, diags.items)
    read = Diagnostics()
    tree = TreeReader(read, sift=_sift_cluster).read_main(main_path)
    dialect = detect(main_path, tree.directives, tree.objects, read)
    diags.dialect = read.dialect = dialect.name
    tree.objects = [o for o in tree.objects if o.type in CLUSTER_TYPES]
    cluster_files = {o.file for o in tree.objects} | {str(main_path)}
    for diag in read.items:
        if diag.severity == "error" and diag.file not in cluster_files:
            diags.warning(f"{diag.message} (left to the arbiter, which refuses this tree)",
                          diag.file, diag.line)
        else:
            diags.items.append(diag)
    config = _read(main_path, tree, diags, dialect)
    by_type = split_by_type(tree.objects, diags)
    adapt_alignak_modules(by_type.get("module", []), diags)
    if dialect.lenient:
        relax(by_type, dialect, diags)
    _Assembler(config, by_type, diags, rules_for(config, tree.directives)).run_cluster()
    config.config_hash = _hash_files(main_path, tree.files)
    return LoadResult(config, diags.sorted())


def _sift_cluster(objects: list[RawObject]) -> list[RawObject]:
    """Keep a file's cluster blocks, and those the dialect could be told by (dropped after)."""
    kept = [o for o in objects if o.type in CLUSTER_TYPES]
    if len(kept) == len(objects):
        return kept
    signals = {id(o) for o in signalling([o for o in objects if o.type not in CLUSTER_TYPES])}
    return [o for o in objects if o.type in CLUSTER_TYPES or id(o) in signals]


def _read(main_path: Path, tree: ParsedTree, diags: Diagnostics, dialect: Dialect) -> Config:
    """The main file's settings and the resources, in a Config with no object yet."""
    main = build_main(tree.directives, diags, dialect, str(main_path))
    if dialect.lenient:
        # Shinken and Alignak read `$NAME$=value` in any file (resource.d/ through cfg_dir).
        tree.resources.update({d.key[1:-1]: d.value for d in tree.directives
                               if is_macro(d.key)})
    return Config(main_file=str(main_path), main=main, files=tree.files,
                  resources=tree.resources, dialect=dialect)


def _load(main_path: Path) -> LoadResult:
    diags = Diagnostics()
    if not main_path.is_file():
        diags.error(f"main configuration file not found: {main_path}")
        return LoadResult(None, diags.items)
    tree = TreeReader(diags).read_main(main_path)
    dialect = detect(main_path, tree.directives, tree.objects, diags)
    diags.dialect = dialect.name
    config = _read(main_path, tree, diags, dialect)
    by_type = split_by_type(tree.objects, diags)
    adapt_alignak_modules(by_type.get("module", []), diags)
    if dialect.lenient:
        relax(by_type, dialect, diags)
    elif dialect.name == "nagios":
        strict.check_raw(by_type, diags)
    _Assembler(config, by_type, diags, rules_for(config, tree.directives)).run()
    check_main_commands(config.main, tree.directives, config.commands, diags)
    if dialect.name == "nagios":
        strict.check_tree(config, diags)
    config.config_hash = _hash_files(main_path, tree.files)
    return LoadResult(config, diags.sorted())


def _carries(value: str | tuple[str, ...], name: str, kind: str) -> bool:
    if isinstance(value, tuple):
        return name in value
    return (value.split("!", 1)[0].strip() if kind == "command" else value) == name


def _hash_files(main_path: Path, files: list[str]) -> str:
    """Hash the tree's content and layout, relative to the main file's directory, so that the
    same etc/ copied anywhere (another host, another path) has the same hash."""
    base = main_path.parent.resolve()
    digest = hashlib.sha256()
    for name in sorted(files):
        path = Path(name).resolve()
        try:
            label = str(path.relative_to(base))
        except ValueError:
            label = str(path)
        try:
            data = path.read_bytes()
        except OSError:
            continue
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:16]


class _Assembler:
    """Build every type in dependency order, then link and check references."""

    def __init__(self, config: Config, by_type: dict[str, list[RawObject]],
                 diags: Diagnostics, rules: Rules) -> None:
        self.config = config
        self.by_type = by_type
        self.diags = diags
        self.linker = Linker(diags)
        self.rules = rules

    def builder(self, type_: str) -> ObjectBuilder:
        raws = self.by_type.get(type_, [])
        templates = templates_of(raws, type_, self.diags)
        self.config.templates += sum(1 for r in raws if r.props.get("register", "").strip()
                                     == "0")
        return ObjectBuilder(OBJECT_MODELS[type_], raws, self.diags, templates)

    def simple(self, type_: str, cls: type[T]) -> dict[str, T]:
        objs: list[T] = self.builder(type_).build()
        return _index(objs, self.diags, type_, self.config.dialect)

    def run(self) -> None:
        c, d = self.config, self.diags
        c.commands = self.simple("command", Command)
        c.timeperiods = _index(build_timeperiods(self.builder("timeperiod"), d), d, "timeperiod",
                               c.dialect)
        c.realms = self.simple("realm", Realm)
        c.modules = self.simple("module", Module)
        c.contacts = self.simple("contact", Contact)
        c.contactgroups = self.simple("contactgroup", Contactgroup)
        engine = self.rules.engine
        if self.rules.dialect == "alignak":
            self.by_type["host"] = generate_hosts(self.by_type.get("host", []), d)
        host_builder = self.builder("host")
        c.hosts = _index(host_builder.build(aside=FILTERS if engine else frozenset()), d, "host",
                         c.dialect)
        facts = host_facts(host_builder, self.rules) if engine else HostFacts()
        host_builder.release()
        c.hostgroups = self.simple("hostgroup", Hostgroup)
        c.servicegroups = self.simple("servicegroup", Servicegroup)
        for role in DAEMON_MODELS:
            c.daemons[role] = self.simple(role, DAEMON_MODELS[role])
        self.realms()
        link_hostgroups(c.hosts, c.hostgroups, self.linker, {}, self.rules)
        check_parents(c.hosts, self.linker)
        svc_builder = self.builder("service")
        c.services = expand_services(svc_builder, c.hosts, c.hostgroups, facts, self.rules, d)
        svc_builder.release()
        inherit_contacts(c.services, c.hosts)
        link_servicegroups(c.services, c.servicegroups, self.linker, self.rules)
        link_contactgroups(c.contacts, c.contactgroups, self.linker, self.rules)
        check_loaded(self.by_type, c, self.rules, d)
        self.references()
        self.relations()
        self.daemon_checks()

    def relations(self) -> None:
        """Build the escalations and dependencies, one record per host or service."""
        c = self.config
        resolver = Resolver(c.hosts, c.hostgroups, c.services, c.contactgroups, self.rules,
                            self.diags)
        escalations: list[Hostescalation | Serviceescalation] = [
            *self.builder("hostescalation").build(), *self.builder("serviceescalation").build()]
        dependencies: list[Hostdependency | Servicedependency] = [
            *self.builder("hostdependency").build(), *self.builder("servicedependency").build()]
        named: dict[str, NamedEscalation] = {
            e.escalation_name: e for e in self.builder("escalation").build()}
        checkables: list[Host | Service] = [*c.hosts.values(), *c.services.values()]
        for obj in checkables:
            if obj.escalations:
                self.linker.check(obj, "escalations", obj.escalations, "escalation", named)
        c.escalations = [*resolver.escalations(escalations),
                         *named_escalations(named, checkables, c.contactgroups)]
        c.dependencies = resolver.dependencies(dependencies)
        check_loops(c.dependencies, self.diags)

    def run_cluster(self) -> None:
        """Only the daemons, their realms and modules (a satellite's load)."""
        c = self.config
        c.realms = self.simple("realm", Realm)
        c.modules = self.simple("module", Module)
        for role in DAEMON_MODELS:
            c.daemons[role] = self.simple(role, DAEMON_MODELS[role])
        self.realms()
        for module in c.modules.values():
            self.linker.check(module, "modules", module.modules, "module", c.modules)
            if module.module_type == "mariadb":
                self._check_mariadb(module)
        self.daemon_checks(objects=False)

    def realms(self) -> None:
        c = self.config
        defaults = [r for r in c.realms.values() if r.default]
        if len(defaults) > 1:
            self.diags.error(f"{len(defaults)} realms are marked 'default 1' ("
                             + ", ".join(r.realm_name for r in defaults) + ")",
                             defaults[1].source_file, defaults[1].source_line,
                             "only one realm can be the default")
        if defaults:
            c.default_realm = defaults[0].realm_name
        elif len(c.realms) == 1:
            c.default_realm = next(iter(c.realms))
        elif not c.realms:
            c.realms[DEFAULT_REALM] = Realm(realm_name=DEFAULT_REALM, default=True)
        else:
            first = min(c.realms.values(), key=lambda r: (r.source_file, r.source_line))
            self.diags.error(f"several realms and none is 'default 1' (the realms: "
                             f"{', '.join(sorted(c.realms))})", first.source_file,
                             first.source_line, "mark one realm with 'default 1'")
            c.default_realm = sorted(c.realms)[0]
        for realm in c.realms.values():
            self.linker.check(realm, "realm_members", realm.realm_members, "realm", c.realms)
            self.linker.check(realm, "higher_realms", realm.higher_realms, "realm", c.realms)

    def references(self) -> None:
        c, check = self.config, self.linker.check
        periods, commands, realms = c.timeperiods, c.commands, c.realms
        known_commands: Mapping[str, object] = commands
        engine = c.dialect.engine
        if engine is not None:  # the commands Shinken and Alignak define themselves
            known_commands = {**dict.fromkeys(BUILTIN_COMMANDS[engine]), **commands}
        pollers = c.daemons.get("poller", {})
        checkables: list[Host | Service] = [*c.hosts.values(), *c.services.values()]
        refs: tuple[tuple[str, str, Mapping[str, object]], ...] = (
            ("check_command", "command", known_commands),
            ("event_handler", "command", known_commands),
            ("check_period", "timeperiod", periods),
            ("notification_period", "timeperiod", periods),
            ("maintenance_period", "timeperiod", periods),
            ("poller", "poller", pollers),
            ("contacts", "contact", c.contacts),
            ("contact_groups", "contactgroup", c.contactgroups),
        )
        # One error per wrong name, not one per object: collect each distinct value in one
        # pass, and only look for an object that carries a wrong one.
        rows = set(map(attrgetter(*(prop for prop, _, _ in refs)), checkables))
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in refs]
        for (prop, kind, known), values in zip(refs, columns, strict=True):
            if prop in ("contacts", "contact_groups"):
                names = {n for v in values for n in v}
            else:
                names = {v.split("!", 1)[0].strip() if kind == "command" else v for v in values}
            for name in sorted(names - known.keys() - {""}):
                obj = next(o for o in checkables if _carries(getattr(o, prop), name, kind))
                self.linker.missing(obj, prop, kind, name, known)
        if engine is not None and BUSINESS_RULE not in c.commands:
            self.business_rules(checkables)
        for host in c.hosts.values():
            if host.realm:
                check(host, "realm", [host.realm], "realm", realms)
        for hostgroup in c.hostgroups.values():
            if hostgroup.realm:
                check(hostgroup, "realm", [hostgroup.realm], "realm", realms)
        for period in periods.values():
            check(period, "exclude", period.exclude, "timeperiod", periods)
        for contact in c.contacts.values():
            for prop in ("host_notification_period", "service_notification_period"):
                value = getattr(contact, prop)
                if value:
                    check(contact, prop, [value], "timeperiod", periods)
            for prop in ("host_notification_commands", "service_notification_commands"):
                check(contact, prop, [v.split("!", 1)[0] for v in getattr(contact, prop)],
                      "command", known_commands)
        for module in c.modules.values():
            check(module, "modules", module.modules, "module", c.modules)
            if module.module_type == "mariadb":
                self._check_mariadb(module)
        for command in commands.values():
            for macro in used_macros(command.command_line):
                if macro.startswith("USER") and macro not in c.resources:
                    self.diags.warning(f"command '{command.command_name}' uses ${macro}$, "
                                       "which no resource file defines", command.source_file,
                                       command.source_line, "add it to the resource_file")

    def business_rules(self, checkables: list[Host | Service]) -> None:
        """Parse each `bp_rule` check and check that what it names exists (error, as in
        Shinken and Alignak); rules are not evaluated."""
        c = self.config
        hostgroups = {name: g.members for name, g in c.hostgroups.items()}
        servicegroups = {name: g.members for name, g in c.servicegroups.items()}
        for obj in checkables:
            if not obj.check_command.startswith(BUSINESS_RULE):
                continue
            name, args = split_check_command(obj.check_command)
            expression = "!".join(args)
            if name != BUSINESS_RULE or "$" in expression:
                continue  # a rule with macros is only known at run time
            own_host = obj.host_name
            for problem in check_rule(expression, own_host, c.hosts, c.services, hostgroups,
                                      servicegroups):
                self.diags.error(f"{obj.object_type} '{obj.object_name}': business rule: "
                                 f"{problem}", obj.source_file,
                                 locate_in_block(obj.source_file, obj.source_line,
                                                 "check_command"),
                                 "fix the rule: hosts as 'host', services as 'host,service'")

    def _check_mariadb(self, module: Module) -> None:
        """A MariaDB storage module's options, checked at load (file:line), not at start."""
        from shinha.db.options import DATASERVER_OPTIONS, mariadb_options

        options = {k: v for k, v in module.options.items() if k not in DATASERVER_OPTIONS}
        try:
            mariadb_options(module.module_name, options, self.config.resources)
        except ConfigError as exc:
            self.diags.error(str(exc), module.source_file, module.source_line,
                             "see docs/configuration.md, the mariadb storage module")

    def shared_address(self, daemon: DaemonLink, other: DaemonLink) -> None:
        """Two daemons on one address and port: an error, except where Shinken and Alignak
        load it (two spares, or daemons of different realms): a warning there."""
        c = self.config
        realm, other_realm = (daemon.realm or c.default_realm, other.realm or c.default_realm)
        text = (f"{daemon.role} '{daemon.name}' listens on {daemon.address}:"
                f"{daemon.listen_port}, like {other.role} '{other.name}' ({other.where()})")
        if c.dialect.lenient and ((daemon.spare and other.spare) or realm != other_realm):
            self.diags.warning(f"{text}; {c.dialect.title} loads it, but they cannot run on "
                               "one machine at once", daemon.source_file, daemon.source_line,
                               "give each daemon of one host its own port")
            return
        self.diags.error(text, daemon.source_file, daemon.source_line,
                         "give each daemon of one host its own port")

    def realms_without_scheduler(self) -> None:
        """A realm with hosts and no scheduler (spares aside) is an error, as in Shinken and
        Alignak ("The realm … has hosts but no scheduler!"), when schedulers are defined."""
        c = self.config
        schedulers = [s for s in c.daemons.get("scheduler", {}).values()
                      if isinstance(s, Scheduler)]
        if not schedulers:
            return  # reported: no scheduler is defined at all
        served = {s.realm or c.default_realm for s in schedulers if not s.spare}
        counts: dict[str, int] = {}
        for host in c.hosts.values():
            realm = host.realm or next((c.hostgroups[g].realm for g in host.hostgroups
                                        if c.hostgroups[g].realm), c.default_realm)
            counts[realm] = counts.get(realm, 0) + 1
        for name, count in sorted(counts.items()):
            if name in served or name not in c.realms:
                continue
            realm_obj = c.realms[name]
            self.diags.error(f"realm '{name}' has {count} host{'s' if count > 1 else ''} "
                             "but no scheduler (spares aside): its checks would never run",
                             realm_obj.source_file or c.main_file, realm_obj.source_line or None,
                             f"define a scheduler with 'realm {name}'")

    def daemon_checks(self, objects: bool = True) -> None:
        """Check the daemons; with `objects`, also against the hosts and services."""
        c, d = self.config, self.diags
        listening: dict[tuple[str, int], DaemonLink] = {}
        for role, daemons in c.daemons.items():
            for daemon in daemons.values():
                self.linker.check(daemon, "modules", daemon.modules, "module", c.modules)
                if daemon.realm:
                    self.linker.check(daemon, "realm", [daemon.realm], "realm", c.realms)
                where = (daemon.address, daemon.listen_port)
                if where in listening:
                    self.shared_address(daemon, listening[where])
                listening[where] = daemon
            if not daemons and objects:
                d.warning(f"no {role} is defined: the cluster cannot run without one",
                          c.main_file, None)
        if objects:
            self.realms_without_scheduler()
        masters = [a for a in c.daemons.get("arbiter", {}).values() if not a.spare]
        if len(masters) > 1:
            d.error(f"{len(masters)} arbiters are not spares ("
                    + ", ".join(a.name for a in masters) + ")",
                    masters[1].source_file, masters[1].source_line,
                    "one arbiter is the master; set 'spare 1' on the other")
        if objects:
            self.untagged_checks()

    def untagged_checks(self) -> None:
        c, d = self.config, self.diags
        pollers = [p for p in c.daemons.get("poller", {}).values() if isinstance(p, Poller)]
        tags = {t for p in pollers for t in p.poller_tags}
        untagged: dict[str, Any] = {}
        if c.daemons.get("poller"):
            for obj in [*c.hosts.values(), *c.services.values()]:
                if obj.poller_tag not in tags and obj.check_command:
                    untagged.setdefault(obj.poller_tag, obj)
        for tag, obj in untagged.items():
            d.warning(f"no poller has poller_tags '{tag}': checks tagged so never run "
                      f"(e.g. {obj.object_type} '{obj.object_name}')", obj.source_file,
                      obj.source_line, "add the tag to a poller's poller_tags")

"""Turn raw `define` blocks into validated models: templates, properties, values.

Every problem becomes a diagnostic naming the file and line where the offending value was
written (the template's line when the value was inherited); the object keeps its other values
so that one typo does not cascade into "not defined" errors elsewhere.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, ClassVar

from pydantic import TypeAdapter, ValidationError

from shinha.config.daemons import DAEMON_MODELS
from shinha.config.diagnostics import Diagnostics, did_you_mean
from shinha.config.fastmodel import ModelFactory
from shinha.config.inherit import Inheritance, origin
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
from shinha.config.parser import RawObject, locate_property
from shinha.config.relations import RELATION_MODELS, NamedEscalation
from shinha.config.timeperiod import Timeperiod, TimeperiodSyntaxError, parse_entry

_MODELS: tuple[type[ConfigObject], ...] = (
    Host, Service, Hostgroup, Servicegroup, Command, Timeperiod, Contact, Contactgroup, Realm,
    Module, NamedEscalation, *RELATION_MODELS, *DAEMON_MODELS.values())
OBJECT_MODELS: dict[str, type[ConfigObject]] = {
    m.object_type: m for m in _MODELS
}

#: Standard Nagios/Shinken/Alignak types that load with a warning and are not acted on.
IGNORED_TYPES: dict[str, str] = {
    "hostextinfo": "extended info is not used",
    "serviceextinfo": "extended info is not used",
    "notificationway": "notification ways are not acted on yet",
    "checkmodulation": "modulations are not acted on",
    "macromodulation": "modulations are not acted on",
    "resultmodulation": "modulations are not acted on",
    "businessimpactmodulation": "modulations are not acted on",
    "trigger": "triggers are not acted on",
    "discoveryrule": "discovery is not part of shinha",
    "discoveryrun": "discovery is not part of shinha",
    "reactionner": "shinha has no reactionner",
    "broker": "shinha has no broker; its storage role is the dataserver",
    "businessrule": "business rules are not acted on yet",
    "arbitertrace": "not used",
    "serviceextinfos": "extended info is not used",
}

_TP_FIXED = frozenset({"timeperiod_name", "alias", "exclude", "name", "use", "register"})
_SOURCE = frozenset({"source_file", "source_line"})
_CHUNK = 4096
_NO_EXTRA: dict[str, str] = {}
_UNSET: Any = object()
_CUSTOM: Any = object()


class _Base:
    """What a template chain gives each object that uses it, validated once."""

    __slots__ = ("customs", "data", "fields", "fieldsets", "ignored", "values")

    def __init__(self) -> None:
        #: The validated values the templates set; `data`: those over the defaults.
        self.values: dict[str, Any] = {}
        self.data: dict[str, Any] = {}
        self.fields: frozenset[str] = frozenset()
        #: (own property names, extract plain) -> the fields its objects were given.
        self.fieldsets: dict[tuple[tuple[str, ...], bool], frozenset[str]] = {}
        self.customs: dict[str, str] = {}
        self.ignored: list[str] = []


class ObjectBuilder:
    """Build the models of one object type from its raw blocks."""

    #: Whether plain objects skip full validation (tests turn it off to compare both paths).
    fast_path: ClassVar[bool] = True

    def __init__(self, model: type[ConfigObject], raws: list[RawObject], diags: Diagnostics,
                 all_templates: dict[str, RawObject]) -> None:
        self.model = model
        self.type = model.object_type
        self.diags = diags
        self.raws = raws
        self.inheritance = Inheritance(self.type, all_templates, diags)
        self.known = frozenset(model.model_fields) - _SOURCE - {"customs", "options", "ranges"}
        self.ignored_seen: dict[str, tuple[RawObject, int]] = {}
        #: Raw object and resolved props of each built model, by position in `objects`.
        self.origins: list[RawObject] = []
        #: Per built object: properties kept aside (timeperiod day lines).
        self.extra: list[dict[str, str]] = []
        #: Per built object: the value of the `extract` property, as written.
        self.extracted: list[str] = []
        #: Per built object: the `aside` properties it has (inherited included), as written.
        self.aside: list[dict[str, str]] = []
        #: Plain objects skip full validation (see fastmodel); not timeperiods, whose day
        #: lines are free-form, nor types that take any property.
        self.factory: ModelFactory[Any] | None = None
        if (self.fast_path and self.type != "timeperiod"
                and not getattr(model, "open_properties", False)):
            self.factory = ModelFactory(model)
        self._bases: dict[str | None, _Base | None] = {}
        self._aside: frozenset[str] = frozenset()

    def build(self, extract: str | None = None, aside: frozenset[str] = frozenset(),
              templates: bool = False, report: bool = True) -> list[Any]:
        """Validate every registered object (with `templates`, every template instead). The
        `extract` property is kept aside, as written, in `self.extracted` (services: their host
        list), and stays on the object when it is one plain name. The `aside` properties are
        taken off, as written, into `self.aside` (services: duplicate_foreach). `report`: warn
        about the ignored properties met."""
        out: list[Any] = []  # built objects, None where full validation is still to come
        slow: list[int] = []  # positions in `out` of the objects that need full validation
        inputs: list[dict[str, Any]] = []
        model = self.model
        known = self.known
        lists = model.list_properties
        key_prop = model.key_property
        origins, extras, extracted = self.origins, self.extra, self.extracted
        resolve = self.inheritance.resolve
        fast = self._fast if self.factory is not None else None
        set_aside = self.aside
        self._aside = aside
        for raw in self.raws:
            register = raw.props.get("register")
            if (register is not None and register.strip() == "0") is not templates:
                continue
            if fast is not None:
                obj = fast(raw, extract)
                if obj is not None:
                    out.append(obj)
                    origins.append(raw)
                    extras.append(_NO_EXTRA)
                    if aside:
                        set_aside.append(_NO_EXTRA)
                    continue
            props: dict[str, Any] = resolve(raw)
            kept_aside = _NO_EXTRA
            if aside and not aside.isdisjoint(props):
                kept_aside = {k: props.pop(k) for k in aside if k in props}
            extra = _NO_EXTRA
            if not known.issuperset(props):
                extra = self._sort_unknown(raw, props, props.keys() - known)
            if key_prop and key_prop not in props:
                self.diags.error(f"{self.type} has no {key_prop}", raw.file, raw.line,
                                 f"add '{key_prop} NAME' (or 'register 0' if it is a template)")
                continue
            if extract is not None:
                value = props.pop(extract, "")
                extracted.append(value)
                if value and "," not in value and "!" not in value and "*" not in value:
                    props[extract] = value.strip()  # one plain name: validated in place
            if not lists.isdisjoint(props):
                for key in lists & props.keys():
                    props[key] = [x for x in (p.strip() for p in props[key].split(",")) if x]
            props["source_file"] = raw.file
            props["source_line"] = raw.line
            if aside:
                set_aside.append(kept_aside)
            slow.append(len(out))
            out.append(None)
            inputs.append(props)
            origins.append(raw)
            extras.append(extra)
        if report:
            self._report_ignored()
        if inputs:
            validated = self._validate(inputs, [origins[i] for i in slow])
            for position, obj in zip(slow, validated, strict=True):
                out[position] = obj
            if None in out:
                kept = [i for i, obj in enumerate(out) if obj is not None]
                out = [out[i] for i in kept]
                self.origins = [origins[i] for i in kept]
                self.extra = [extras[i] for i in kept]
                if extract is not None:
                    self.extracted = [extracted[i] for i in kept]
                if aside:
                    self.aside = [set_aside[i] for i in kept]
        return out

    def _fast(self, raw: RawObject, extract: str | None) -> Any:
        """Build a plain object from its template chain's validated values and its own; None
        when anything about it needs full validation (which then reports the problem)."""
        if raw.additive:
            return None
        own = raw.props
        use = own.get("use")
        base = self._bases.get(use, _UNSET)
        if base is _UNSET:
            base = self._bases[use] = self._base(use, extract)
        if base is None:
            return None
        factory = self.factory
        assert factory is not None
        cache = factory.cache
        data = base.data.copy()
        customs: dict[str, str] | None = None
        if self._aside and not self._aside.isdisjoint(own):
            return None
        for key, value in own.items():
            if key == extract or key == "use":
                continue
            validated = cache.get((key, value), _UNSET)
            if validated is _UNSET:
                validated = self._own_value(key, value)
                if validated is _UNSET:
                    return None
                if validated is _CUSTOM:
                    if customs is None:
                        customs = base.customs.copy()
                    customs[key[1:]] = value
                    continue
            data[key] = validated
        plain = True
        if extract is not None:
            spec = own.get(extract, "")
            plain = bool(spec) and "," not in spec and "!" not in spec and "*" not in spec
            if plain:
                data[extract] = spec.strip()
        if customs is None and base.customs:
            customs = base.customs.copy()
        if customs:
            data["customs"] = customs
        # Objects written alike share one (frozen) set of given fields: a set per object
        # was 40 % of a service's memory.
        signature = (tuple(own), plain)
        fields = base.fieldsets.get(signature)
        if fields is None:
            given = own.keys() & self.known | base.fields
            if not plain:
                given.discard(extract)
            if customs:
                given.add("customs")
            fields = base.fieldsets[signature] = frozenset(given)
        for name in factory.required:
            if name not in fields:
                return None
        if extract is not None:
            self.extracted.append(own.get(extract, ""))
        data["source_file"] = raw.file
        data["source_line"] = raw.line
        for key in base.ignored:
            self._seen_ignored(raw, key)
        return factory.make(data, fields)

    def _own_value(self, key: str, value: str) -> Any:
        """An object's own property not in the cache yet: its validated value, _CUSTOM for a
        custom variable, _UNSET when the object needs full validation."""
        if key in self.known:
            if value == "null":
                return _UNSET
            assert self.factory is not None
            try:
                return self.factory.value(key, value)
            except ValidationError:
                return _UNSET
        if key[:1] == "_" and self.model.has_customs and key.isupper():
            return _CUSTOM
        return _UNSET

    def _base(self, use: str | None, extract: str | None) -> _Base | None:
        """The validated values that the templates named by `use` give an object; None when
        they need the full path (a template missing or broken, a null, an unknown property, a
        bad value)."""
        merged: dict[str, str] = {}
        if use is not None:
            parents = [p.strip() for p in use.split(",") if p.strip()]
            if not parents:
                return None
            for parent in reversed(parents):
                if parent not in self.inheritance.templates:
                    return None
                inherited = self.inheritance.template(parent)
                if inherited is None:
                    return None
                merged.update(inherited)
        model, factory = self.model, self.factory
        assert factory is not None
        base = _Base()
        try:
            for key, value in merged.items():
                if (value == "null" or key == extract or key == model.key_property
                        or key in self._aside):
                    return None
                if key in self.known:
                    base.values[key] = factory.value(key, value)
                elif key in model.property_aliases:
                    target = model.property_aliases[key]
                    if target not in merged:
                        base.values[target] = factory.value(target, value)
                elif key[:1] == "_" and model.has_customs and len(key) > 1:
                    base.customs[key[1:].upper()] = value
                elif key in model.ignored_properties:
                    base.ignored.append(key)
                else:
                    return None
        except ValidationError:
            return None
        base.fields = frozenset(base.values) | _SOURCE
        base.data = factory.data(base.values)
        return base

    def _seen_ignored(self, raw: RawObject, key: str) -> None:
        seen = self.ignored_seen.get(key)
        if seen is None:
            self.ignored_seen[key] = (origin(raw, key, self.inheritance), 1)
        else:
            self.ignored_seen[key] = (seen[0], seen[1] + 1)

    def _sort_unknown(self, raw: RawObject, props: dict[str, Any],
                      unknown: set[str]) -> dict[str, str]:
        model = self.model
        extra: dict[str, str] = {}
        customs: dict[str, str] = {}
        options: dict[str, str] = {}
        for key in sorted(unknown):
            value = props.pop(key)
            if key in model.property_aliases:
                target = model.property_aliases[key]
                props.setdefault(target, value)
            elif key[:1] == "_" and model.has_customs and len(key) > 1:
                customs[key[1:].upper()] = value
            elif key in model.ignored_properties:
                self._seen_ignored(raw, key)
            elif getattr(model, "open_properties", False):
                options[key] = value
            elif self.type == "timeperiod":
                extra[f"{key} {value}".strip()] = value
            else:
                src = origin(raw, key, self.inheritance)
                self.diags.error(
                    f"unknown {self.type} property '{key}'", src.file,
                    locate_property(src, key),
                    did_you_mean(key, self.known | set(model.ignored_properties))
                    or f"see the {self.type} reference in docs/configuration.md")
        if customs:
            props["customs"] = customs
        if options:
            props["options"] = options
        return extra or _NO_EXTRA

    def _report_ignored(self) -> None:
        for key, (src, count) in sorted(self.ignored_seen.items()):
            self.diags.warning(f"ignored: {self.type} property '{key}' is not used by shinha "
                               f"({count} object{'s' if count > 1 else ''})", src.file,
                               locate_property(src, key))

    def _validate(self, inputs: list[dict[str, Any]], raws: list[RawObject]) -> list[Any]:
        """Validate in full, in chunks (the input dicts of a chunk are dropped as soon as it is
        done); one model per input, None where an object cannot be kept."""
        adapter: TypeAdapter[list[Any]] = TypeAdapter(list[self.model])  # type: ignore[name-defined]
        out: list[Any] = []
        for start in range(0, len(inputs), _CHUNK):
            chunk = inputs[start : start + _CHUNK]
            try:
                out.extend(adapter.validate_python(chunk))
            except ValidationError as exc:
                out.extend(self._salvage(chunk, raws[start : start + _CHUNK], exc))
            inputs[start : start + _CHUNK] = [{}] * len(chunk)
        return out

    def _salvage(self, chunk: list[dict[str, Any]], raws: list[RawObject],
                 exc: ValidationError) -> list[Any]:
        """Report each bad value, then keep each object with its good values (None if it
        cannot be kept: its name itself is bad)."""
        bad: dict[int, set[str]] = defaultdict(set)
        for err in exc.errors():
            loc = err["loc"]
            index = int(loc[0])
            field = str(loc[1]) if len(loc) > 1 else ""
            bad[index].add(field)
            self._report_value(raws[index], field, chunk[index], err["msg"])
        out: list[Any] = []
        for index, props in enumerate(chunk):
            fields = bad.get(index)
            if fields is None:
                out.append(self.model.model_validate(props))
                continue
            if self.model.key_property in fields:
                out.append(None)
                continue
            for field in fields:
                props.pop(field, None)
            try:
                out.append(self.model.model_validate(props))
            except ValidationError:
                out.append(None)
        return out

    def release(self) -> None:
        """Drop the raw properties of built objects that are not templates (memory)."""
        for raw in self.origins:
            if "name" not in raw.props:
                raw.props = {}

    def _report_value(self, raw: RawObject, field: str, props: dict[str, Any],
                      msg: str) -> None:
        value = props.get(field)
        if field not in props:
            self.diags.error(f"{self.type} needs '{field}'", raw.file, raw.line,
                             f"add '{field} VALUE'")
            return
        src = origin(raw, field, self.inheritance)
        shown = ",".join(value) if isinstance(value, list) else value
        name = (f"'{props.get(self.model.key_property, '?')}'" if self.model.key_property
                else f"at {raw.file}:{raw.line}")
        self.diags.error(f"{self.type} {name}: {field}: "
                         f"{_friendly(msg)} (got {shown!r})", src.file,
                         locate_property(src, field), _hint(field, msg))


def _friendly(msg: str) -> str:
    if msg.startswith("Input should be a valid boolean"):
        return "must be 0 or 1"
    if msg.startswith("Input should be a valid integer"):
        return "must be a whole number"
    if msg.startswith("Input should be a valid number"):
        return "must be a number"
    if msg.startswith("Input should be"):
        return "must be " + msg[len("Input should be "):]
    return msg


def _hint(field: str, msg: str) -> str | None:
    if field == "master":
        return "the master token is 0 (never master) to 7"
    return None


def split_by_type(objects: list[RawObject], diags: Diagnostics) -> dict[str, list[RawObject]]:
    """Group raw blocks by type; report unknown types and the ignored standard ones."""
    by_type: dict[str, list[RawObject]] = defaultdict(list)
    ignored: dict[str, list[RawObject]] = defaultdict(list)
    for obj in objects:
        if obj.type in OBJECT_MODELS:
            by_type[obj.type].append(obj)
        elif obj.type in IGNORED_TYPES:
            ignored[obj.type].append(obj)
        else:
            diags.error(f"unknown object type '{obj.type}'", obj.file, obj.line,
                        did_you_mean(obj.type, [*OBJECT_MODELS, *IGNORED_TYPES])
                        or "see docs/configuration.md for the object types")
    for type_, objs in ignored.items():
        first = objs[0]
        diags.warning(f"ignored: {len(objs)} {type_} object{'s' if len(objs) > 1 else ''} "
                      f"({IGNORED_TYPES[type_]})", first.file, first.line)
        by_type[type_] = objs  # not built, but their references are checked (references.py)
    return by_type


def templates_of(raws: list[RawObject], type_: str, diags: Diagnostics) -> dict[str, RawObject]:
    """Return the templates (objects with `name`) of one type; duplicates are errors."""
    templates: dict[str, RawObject] = {}
    for raw in raws:
        name = raw.props.get("name")
        if name is None:
            continue
        if name in templates:
            first = templates[name]
            diags.error(f"{type_} template '{name}' is defined twice (first at "
                        f"{first.file}:{first.line})", raw.file, locate_property(raw, "name"),
                        "rename one of them")
            continue
        templates[name] = raw
    return templates


def build_timeperiods(builder: ObjectBuilder, diags: Diagnostics) -> list[Timeperiod]:
    """Build timeperiods: their day lines are free-form keys, parsed here."""
    periods: list[Timeperiod] = builder.build()
    for period, raw, entries in zip(periods, builder.origins, builder.extra, strict=True):
        for text in entries:
            try:
                period.ranges = (*period.ranges, parse_entry(text))
            except TimeperiodSyntaxError as exc:
                key = text.split(None, 1)[0]
                src = origin(raw, key, builder.inheritance)
                diags.error(f"timeperiod '{period.timeperiod_name}': {exc}", src.file,
                            locate_property(src, key),
                            "see the timeperiod reference in docs/configuration.md")
    return periods

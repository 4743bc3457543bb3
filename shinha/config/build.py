"""Turn raw `define` blocks into validated models: templates, properties, values.

Every problem becomes a diagnostic naming the file and line where the offending value was
written (the template's line when the value was inherited); the object keeps its other values
so that one typo does not cascade into "not defined" errors elsewhere.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic import TypeAdapter, ValidationError

from shinha.config.daemons import DAEMON_MODELS
from shinha.config.diagnostics import Diagnostics, did_you_mean
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
from shinha.config.timeperiod import Timeperiod, TimeperiodSyntaxError, parse_entry

_MODELS: tuple[type[ConfigObject], ...] = (
    Host, Service, Hostgroup, Servicegroup, Command, Timeperiod, Contact, Contactgroup, Realm,
    Module, *DAEMON_MODELS.values())
OBJECT_MODELS: dict[str, type[ConfigObject]] = {
    m.object_type: m for m in _MODELS
}

#: Standard Nagios/Shinken/Alignak types that load with a warning and are not acted on.
IGNORED_TYPES: dict[str, str] = {
    "hostdependency": "dependencies are not acted on yet",
    "servicedependency": "dependencies are not acted on yet",
    "hostescalation": "escalations are not acted on yet",
    "serviceescalation": "escalations are not acted on yet",
    "escalation": "escalations are not acted on yet",
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


class ObjectBuilder:
    """Build the models of one object type from its raw blocks."""

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

    def build(self, extract: str | None = None) -> list[Any]:
        """Validate every registered object. The `extract` property is kept aside, as written,
        in `self.extracted` (services: their host list), and stays on the object when it is one
        plain name."""
        inputs: list[dict[str, Any]] = []
        model = self.model
        known = self.known
        lists = model.list_properties
        key_prop = model.key_property
        origins, extras, extracted = self.origins, self.extra, self.extracted
        resolve = self.inheritance.resolve
        for raw in self.raws:
            register = raw.props.get("register")
            if register is not None and register.strip() == "0":
                continue
            props: dict[str, Any] = resolve(raw)
            extra = _NO_EXTRA
            if not known.issuperset(props):
                extra = self._sort_unknown(raw, props, props.keys() - known)
            if key_prop not in props:
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
            inputs.append(props)
            origins.append(raw)
            extras.append(extra)
        self._report_ignored()
        return self._validate(inputs)

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
                if key not in self.ignored_seen:
                    src = origin(raw, key, self.inheritance)
                    self.ignored_seen[key] = (src, 0)
                src, count = self.ignored_seen[key]
                self.ignored_seen[key] = (src, count + 1)
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

    def _validate(self, inputs: list[dict[str, Any]]) -> list[Any]:
        """Validate in chunks (the input dicts of a chunk are dropped as soon as it is done)."""
        adapter: TypeAdapter[list[Any]] = TypeAdapter(list[self.model])  # type: ignore[name-defined]
        kept: list[Any] = []
        origins: list[RawObject] = []
        extras: list[dict[str, str]] = []
        extracted: list[str] = []
        for start in range(0, len(inputs), _CHUNK):
            chunk = inputs[start : start + _CHUNK]
            try:
                objs = adapter.validate_python(chunk)
            except ValidationError as exc:
                objs = self._salvage(chunk, start, exc)
            for offset, obj in enumerate(objs):
                if obj is not None:
                    kept.append(obj)
                    origins.append(self.origins[start + offset])
                    extras.append(self.extra[start + offset])
                    if self.extracted:
                        extracted.append(self.extracted[start + offset])
            inputs[start : start + _CHUNK] = [{}] * len(chunk)
        self.origins, self.extra, self.extracted = origins, extras, extracted
        return kept

    def _salvage(self, chunk: list[dict[str, Any]], start: int,
                 exc: ValidationError) -> list[Any]:
        """Report each bad value, then keep each object with its good values (None if it
        cannot be kept: its name itself is bad)."""
        bad: dict[int, set[str]] = defaultdict(set)
        for err in exc.errors():
            loc = err["loc"]
            index = int(loc[0])
            field = str(loc[1]) if len(loc) > 1 else ""
            bad[index].add(field)
            self._report_value(start + index, field, chunk[index], err["msg"])
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

    def _report_value(self, index: int, field: str, props: dict[str, Any], msg: str) -> None:
        raw = self.origins[index]
        value = props.get(field)
        if field not in props:
            self.diags.error(f"{self.type} needs '{field}'", raw.file, raw.line,
                             f"add '{field} VALUE'")
            return
        src = origin(raw, field, self.inheritance)
        shown = ",".join(value) if isinstance(value, list) else value
        self.diags.error(f"{self.type} '{props.get(self.model.key_property, '?')}': {field}: "
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

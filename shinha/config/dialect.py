"""The dialect of a tree: which engine's rules it is judged by.

- `shinha`: a tree that names no other engine (shinha's own `shinha.cfg`): the object language
  as Nagios documents it, with shinha's own properties; unknown properties and directives,
  undefined templates and redefinitions are errors. Nagios 4's whole-tree rules (no services,
  no contacts, `max_check_attempts` required …) do not apply.
- `nagios`: a Nagios 4 tree (`nagios.cfg`): what `nagios4 -v` rejects, shinha rejects.
- `shinken`, `alignak`: what those engines load, shinha loads; what they only warn about
  (unknown properties and directives, undefined templates, redefinitions) is a warning.

Chosen from the main file: a `shinha_dialect=NAME` directive; else its name (`shinken*.cfg`,
`alignak*.cfg`, `shinha.cfg`); else what only Shinken or Alignak have (directives, object
types, object properties); else `nagios.cfg`/`naemon.cfg`; else `shinha`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from shinha.config.build import OBJECT_MODELS
from shinha.config.diagnostics import Diagnostics, did_you_mean
from shinha.config.engines import (
    Engine,
    engine_directives,
    engine_only_directives,
    engine_only_properties,
    engine_properties,
)
from shinha.config.mainfile import DIALECT_DIRECTIVE, MainConfig
from shinha.config.parser import Directive, RawObject

DialectName = Literal["shinha", "nagios", "shinken", "alignak"]
DIALECTS: tuple[DialectName, ...] = get_args(DialectName)
DIRECTIVE = DIALECT_DIRECTIVE

#: Object types only Shinken and Alignak have (shinha's own daemons, realms and modules are
#: theirs too, so they say nothing).
ENGINE_TYPES = frozenset({
    "reactionner", "broker", "businessimpactmodulation", "checkmodulation", "macromodulation",
    "resultmodulation", "discoveryrule", "discoveryrun", "notificationway", "escalation",
    "trigger", "arbitertrace",
})
_NAMES: dict[str, DialectName] = {"shinha.cfg": "shinha", "nagios.cfg": "nagios",
                                  "naemon.cfg": "nagios"}
_OWN = frozenset(MainConfig.model_fields)


@dataclass(frozen=True, slots=True)
class Dialect:
    """The dialect a tree is read in, and why it was chosen."""

    name: DialectName
    reason: str
    file: str | None = None
    line: int | None = None

    @property
    def lenient(self) -> bool:
        """Whether this is an engine that warns where Nagios refuses (Shinken, Alignak)."""
        return self.name in ("shinken", "alignak")

    @property
    def engine(self) -> Engine | None:
        """The engine whose property tables apply (None for shinha and nagios)."""
        if self.name == "shinken":
            return "shinken"
        if self.name == "alignak":
            return "alignak"
        return None

    @property
    def title(self) -> str:
        """The engine's name as people write it."""
        return {"shinha": "shinha", "nagios": "Nagios 4", "shinken": "Shinken",
                "alignak": "Alignak"}[self.name]

    def __str__(self) -> str:
        where = f" at {self.file}:{self.line}" if self.file and self.line else ""
        return f"{self.name} ({self.reason}{where})"

    def as_dict(self) -> dict[str, object]:
        """The dialect for `check-config --json`."""
        return {"name": self.name, "reason": self.reason, "file": self.file, "line": self.line}


def detect(main_path: Path, directives: list[Directive], objects: list[RawObject],
           diags: Diagnostics) -> Dialect:
    """Choose the dialect of the tree read from `main_path`."""
    explicit = _explicit(directives, diags)
    if explicit is not None:
        return explicit
    name = main_path.name
    if name.startswith("shinken") and name.endswith(".cfg"):
        return Dialect("shinken", f"the main file is named {name}")
    if name.startswith("alignak") and name.endswith(".cfg"):
        return Dialect("alignak", f"the main file is named {name}")
    if _NAMES.get(name) == "shinha":
        return Dialect("shinha", f"the main file is named {name}")
    signal = _directive_signal(directives) or _type_signal(objects) or _property_signal(objects)
    if signal is not None:
        return signal
    if name in _NAMES:
        return Dialect(_NAMES[name], f"the main file is named {name}")
    return Dialect("shinha", "the tree names no other engine")


def _explicit(directives: list[Directive], diags: Diagnostics) -> Dialect | None:
    for d in directives:
        if d.key != DIRECTIVE:
            continue
        value = d.value.strip().lower()
        if value in DIALECTS:
            return Dialect(value, f"{DIRECTIVE}={value}", d.file, d.line)
        diags.error(f"{DIRECTIVE}: unknown dialect {d.value!r}", d.file, d.line,
                    did_you_mean(value, DIALECTS) or f"one of {', '.join(DIALECTS)}")
    return None


def _directive_signal(directives: Iterable[Directive]) -> Dialect | None:
    shinken_only = engine_only_directives("shinken") - engine_directives("alignak") - _OWN
    alignak_only = engine_only_directives("alignak") - engine_directives("shinken") - _OWN
    either = (engine_only_directives("shinken") | engine_only_directives("alignak")) - _OWN
    found: Directive | None = None
    for d in directives:
        if d.key in alignak_only:
            return Dialect("alignak", f"directive {d.key} (only Alignak has it)", d.file, d.line)
        if found is None and d.key in either:
            found = d
    if found is None:
        return None
    who = "only Shinken has it" if found.key in shinken_only else "only Shinken and Alignak have it"
    return Dialect("shinken", f"directive {found.key} ({who})", found.file, found.line)


def signalling(objects: list[RawObject]) -> list[RawObject]:
    """The blocks among `objects` that `detect` could choose a dialect by (at most the first
    of each kind): what a reader that drops blocks must keep for the choice to stay the same."""
    found: list[RawObject] = []
    for signal in (_type_signal, _property_signal):
        dialect = signal(objects)
        if dialect is not None:
            found += [o for o in objects if o.file == dialect.file and o.line == dialect.line][:1]
    return found


def _type_signal(objects: list[RawObject]) -> Dialect | None:
    for obj in objects:
        if obj.type in ENGINE_TYPES:
            return Dialect("shinken", f"'define {obj.type}' (a Shinken type)", obj.file,
                           obj.line)
        if obj.type == "module" and "module_name" not in obj.props and (
                "python_name" in obj.props or "type" in obj.props):
            return Dialect("alignak", "an Alignak module definition (name/type/python_name)",
                           obj.file, obj.line)
    return None


def _property_signal(objects: list[RawObject]) -> Dialect | None:
    signals: dict[str, frozenset[str]] = {}
    for type_, model in OBJECT_MODELS.items():
        signals[type_] = (engine_only_properties(type_) - set(model.model_fields)
                          - set(model.property_aliases))
    for obj in objects:
        own = signals.get(obj.type)
        if own and not own.isdisjoint(obj.props):
            key = min(own.intersection(obj.props))
            in_shinken = key in engine_properties("shinken", obj.type)
            in_alignak = key in engine_properties("alignak", obj.type)
            who = ("only Shinken and Alignak have it" if in_shinken and in_alignak
                   else "only Shinken has it" if in_shinken else "only Alignak has it")
            return Dialect("shinken" if in_shinken else "alignak",
                           f"{obj.type} property {key} ({who})", obj.file, obj.line)
    return None

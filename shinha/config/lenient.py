"""What the Shinken and Alignak dialects forgive, applied to the raw blocks before they are built.

As those engines do (Shinken 2.4 `shinken/objects/item.py`, Alignak `alignak/objects/item.py`):

- a property Shinken or Alignak documents (shinha.config.engines) loads; shinha drops the ones
  it does not use, silently. An unknown property is a warning at its line (with "did you
  mean"), and is dropped;
- a `use` that names an undefined template is a warning, and the name is dropped;
- a template that uses itself is an error; Shinken also refuses a loop among templates, used
  or not (the loop is reported once, and cut);
- an object or template defined twice: the one with the lower `definition_order` wins, the
  later one when they are equal (with a warning).

The shinha and Nagios dialects never come here: there, all of these are errors.
"""

from __future__ import annotations

from collections.abc import Iterable

from shinha.config.build import OBJECT_MODELS
from shinha.config.diagnostics import Diagnostics, did_you_mean
from shinha.config.dialect import Dialect
from shinha.config.engines import known_properties
from shinha.config.parser import RawObject, locate_property

#: Properties the loader's later stages read from the raw blocks (service expansion): kept.
KEPT = frozenset({
    "duplicate_foreach", "default_value", "service_excludes", "service_includes",
    "service_overrides",
})
_DEFAULT_ORDER = 100  # Shinken's and Alignak's default definition_order


def relax(by_type: dict[str, list[RawObject]], dialect: Dialect, diags: Diagnostics) -> None:
    """Make the raw blocks of a Shinken or Alignak tree load as that engine loads them."""
    engine = dialect.engine
    assert engine is not None, "only the Shinken and Alignak dialects are relaxed"
    for type_, raws in by_type.items():
        order = _properties(type_, raws, dialect, diags)
        by_type[type_] = raws = _redefinitions(type_, raws, order, dialect, diags)
        templates = {r.props["name"].strip(): r for r in raws if "name" in r.props}
        for raw in raws:
            if "use" in raw.props:
                _uses(type_, raw, templates, dialect, diags)
        if engine == "shinken":
            _cut_loops(type_, templates, diags)


def _properties(type_: str, raws: list[RawObject], dialect: Dialect,
                diags: Diagnostics) -> dict[int, int]:
    """Drop the properties shinha does not use (warning for the unknown ones); return the
    definition_order of the blocks that set one."""
    model = OBJECT_MODELS.get(type_)
    order: dict[int, int] = {}
    if model is None or getattr(model, "open_properties", False):
        return order
    known = known_properties(type_)
    used = (frozenset(model.model_fields) | model.property_aliases.keys()
            | {"name", "use", "register"})
    ignored = model.ignored_properties
    timeperiod = type_ == "timeperiod"
    for raw in raws:
        props = raw.props
        if used.issuperset(props):
            continue
        if "definition_order" in props:
            try:
                order[id(raw)] = int(props["definition_order"])
            except ValueError:
                diags.warning(f"definition_order must be a whole number (got "
                              f"{props['definition_order']!r}); ignored", raw.file,
                              locate_property(raw, "definition_order"))
        for key in [k for k in props if k not in used]:
            if key in KEPT or (key[:1] == "_" and model.has_customs):
                continue
            if key in known:
                del props[key]  # documented by the engine; shinha does not use it
            elif timeperiod or key in ignored:
                continue  # a day line, or a property shinha reports as ignored itself
            else:
                diags.warning(f"unknown {type_} property '{key}' (ignored, as {dialect.title} "
                              "does)", raw.file, locate_property(raw, key),
                              did_you_mean(key, used | known | ignored))
                del props[key]
    return order


def _redefinitions(type_: str, raws: list[RawObject], order: dict[int, int],
                   dialect: Dialect, diags: Diagnostics) -> list[RawObject]:
    """Keep one of the templates, and of the objects, defined twice under one name."""
    model = OBJECT_MODELS.get(type_)
    if model is None or type_ == "service":
        return raws  # services are one per host: the expansion decides
    key_property = model.key_property
    winners: dict[tuple[bool, str], RawObject] = {}
    losers: set[int] = set()
    for raw in raws:
        template = raw.props.get("register", "").strip() == "0"
        name = raw.props.get("name" if template else key_property, "").strip()
        if not name:
            continue
        first = winners.get((template, name))
        if first is None:
            winners[(template, name)] = raw
            continue
        mine, theirs = order.get(id(raw), _DEFAULT_ORDER), order.get(id(first), _DEFAULT_ORDER)
        if mine == theirs:
            what = f"{type_} template" if template else type_
            diags.warning(f"{what} '{name}' is defined twice (first at {first.file}:"
                          f"{first.line}); the later one is kept, as {dialect.title} does",
                          raw.file, raw.line, "remove one, or set definition_order on the one "
                          "to keep (the lower wins)")
        if mine <= theirs:
            winners[(template, name)] = raw
            losers.add(id(first))
        else:
            losers.add(id(raw))
    return [r for r in raws if id(r) not in losers] if losers else raws


def _uses(type_: str, raw: RawObject, templates: dict[str, RawObject], dialect: Dialect,
          diags: Diagnostics) -> None:
    """Drop from `use` the undefined templates (warning) and a template's own name (error)."""
    names = [n for n in (p.strip() for p in raw.props["use"].split(",")) if n]
    own = raw.props.get("name", "").strip()
    template = raw.props.get("register", "").strip() == "0"
    kept: list[str] = []
    for name in names:
        if name == own:
            if template:
                diags.error(f"{type_} template '{own}' uses itself", raw.file,
                            locate_property(raw, "use"), f"remove '{own}' from its 'use'")
            continue
        if name not in templates:
            what = raw.props.get(OBJECT_MODELS[type_].key_property, own) if (
                type_ in OBJECT_MODELS) else own
            diags.warning(f"{type_} '{what}': template '{name}' is not defined (ignored, as "
                          f"{dialect.title} does)", raw.file, locate_property(raw, "use"),
                          did_you_mean(name, templates) or f"define a {type_} with "
                          f"'name {name}'")
            continue
        kept.append(name)
    if kept != names:
        if kept:
            raw.props["use"] = ",".join(kept)
        else:
            del raw.props["use"]


def _cut_loops(type_: str, templates: dict[str, RawObject], diags: Diagnostics) -> None:
    """Report each loop among templates once, used or not, and cut it (Shinken refuses the
    configuration: 'There are loops in the templates definition')."""
    state: dict[str, int] = {}

    def parents(raw: RawObject) -> Iterable[str]:
        use = raw.props.get("use", "")
        return [p for p in (x.strip() for x in use.split(",")) if p in templates]

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        path.append(name)
        raw = templates[name]
        for parent in list(parents(raw)):
            if state.get(parent) == 1:
                cycle = [*path[path.index(parent):], parent]
                diags.error(f"inheritance loop: {type_} templates "
                            f"{' -> '.join(cycle)}", raw.file, locate_property(raw, "use"),
                            "remove one of the 'use' links of the loop")
                kept = [p for p in (x.strip() for x in raw.props["use"].split(","))
                        if p and p != parent]
                if kept:
                    raw.props["use"] = ",".join(kept)
                else:
                    del raw.props["use"]
            elif not state.get(parent):
                visit(parent, path)
        path.pop()
        state[name] = 2

    for name in sorted(templates):
        if not state.get(name):
            visit(name, [])


def adapt_alignak_modules(raws: list[RawObject], diags: Diagnostics) -> None:
    """Load Alignak module definitions (`name`, `type`, `python_name`; no module_name) as
    modules named by their `name`, with a warning: shinha does not run Alignak modules."""
    for raw in raws:
        props = raw.props
        if "module_name" in props or not ("python_name" in props or "type" in props):
            continue
        name = (props.get("module_alias") or props.get("name") or "").strip()
        if not name:
            continue
        props["module_name"] = name
        if "module_type" not in props:
            props["module_type"] = (props.get("type") or props.get("python_name", "")).strip()
        if props.get("register", "").strip() == "0":
            continue
        kind = props.get("python_name") or props.get("type")
        diags.warning(f"module '{name}' is an Alignak module ({kind}): shinha loads it and "
                      "does not run it", raw.file, raw.line)

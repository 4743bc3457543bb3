"""Write docs/configuration.md from the models, so the reference cannot drift from the code.

    python -m shinha.config.docgen            # rewrite docs/configuration.md
    python -m shinha.config.docgen --check    # exit 1 if it is out of date (used by the tests)

The hand-written part (syntax, includes, templates, macros, errors) is docs/configuration.in.md;
its `@@REFERENCE@@` line is replaced by the generated tables.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from shinha.config.build import IGNORED_TYPES, OBJECT_MODELS
from shinha.config.daemons import DAEMON_MODELS
from shinha.config.mainfile import IGNORED_DIRECTIVES, MainConfig
from shinha.config.objects import ConfigObject

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "docs" / "configuration.in.md"
TARGET = ROOT / "docs" / "configuration.md"
MARKER = "@@REFERENCE@@"


def _type_name(annotation: object) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(str(a) for a in typing.get_args(annotation))
    if origin is tuple:
        return "list"
    if origin is dict:
        return "map"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    names = {int: "integer", float: "number", bool: "0/1", str: "text"}
    if isinstance(annotation, type) and annotation in names:
        return names[annotation]
    return getattr(annotation, "__name__", str(annotation))


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "**required**"
    value = info.default
    if value is PydanticUndefined:
        value = info.default_factory() if info.default_factory else ""  # type: ignore[call-arg]
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value) or "(empty)"
    if value == "" or value == {}:
        return "(empty)"
    return f"`{value}`"


def _table(model: type[BaseModel], skip: frozenset[str] = frozenset()) -> list[str]:
    rows = ["| property | type | default | meaning |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        if name in skip or name in ("source_file", "source_line"):
            continue
        doc = (info.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{name}` | {_type_name(info.annotation)} | {_default(info)} | {doc} |")
    return rows


def _object_section(model: type[ConfigObject]) -> list[str]:
    out = [f"### `define {model.object_type}`", "", (model.__doc__ or "").strip(), ""]
    out += _table(model, frozenset({"customs", "options"}) if model.object_type != "module"
                  else frozenset())
    notes: list[str] = []
    if model.has_customs:
        notes.append("Custom variables: any property starting with `_` (`_SNMP_COMMUNITY "
                     "public`), read by macros as `$_" + model.object_type.upper()
                     + "SNMP_COMMUNITY$`.")
    if model.property_aliases:
        notes.append("Old spellings accepted: " + ", ".join(
            f"`{a}` = `{t}`" for a, t in sorted(model.property_aliases.items())) + ".")
    if getattr(model, "open_properties", False):
        notes.append("Any other property is kept in `options` for the module to read.")
    if model.ignored_properties:
        notes.append("Accepted with a warning and not used: " + ", ".join(
            f"`{p}`" for p in sorted(model.ignored_properties)) + ".")
    if notes:
        out += ["", *(f"- {n}" for n in notes)]
    return [*out, ""]


def reference() -> str:
    """Return the generated reference part of docs/configuration.md."""
    out = ["## Reference (generated from the models by `make docs`)", "",
           "### Main-file directives", "", *_table(MainConfig), "",
           "Include directives: `cfg_file=FILE`, `cfg_dir=DIR` (recursive, `*.cfg` only, "
           "sorted), `resource_file=FILE` (`$USERn$=value` lines).", "",
           "Directives of `nagios.cfg`/`shinken.cfg` that shinha reads and ignores (one "
           "warning each): " + ", ".join(f"`{d}`" for d in sorted(IGNORED_DIRECTIVES
                                                                 - set(MainConfig.model_fields)))
           + ".", ""]
    daemon_types = set(DAEMON_MODELS)
    out += ["### Monitored objects", ""]
    for type_, model in OBJECT_MODELS.items():
        if type_ not in daemon_types:
            out += _object_section(model)
    out += ["### Daemons", "",
            "Every daemon definition has the properties of the first table; each role adds its "
            "own. Daemon intervals are in seconds.", ""]
    for model in DAEMON_MODELS.values():
        out += _object_section(model)
    out += ["### Types that load with a warning", "",
            "| type | why it is ignored |", "|---|---|"]
    out += [f"| `{t}` | {why} |" for t, why in sorted(IGNORED_TYPES.items())]
    return "\n".join(out) + "\n"


def render() -> str:
    """Return the whole of docs/configuration.md."""
    source = SOURCE.read_text(encoding="utf-8")
    return source.replace(MARKER, reference().rstrip("\n"))


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, verify) docs/configuration.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is out of date: run `make docs`", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

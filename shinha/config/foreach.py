"""Shinken/Alignak service generators: `duplicate_foreach _disks` makes one service per item of
the host's `_disks` custom variable (`C$(80%)$$(90%)$,D$(95%)$,E`), with `$KEY$` in the
service description and `$KEY$`, `$VALUE$`, `$VALUE1$`… in its commands. A key `disk[1-3]`
(or `[1-9/2]`) stands for one key per number; the host's `_!disks` lists keys to leave out; a
key with no value takes the service's `default_value`. As Alignak's
`generate_key_value_sequences` and `Service.duplicate`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from shinha.config.fastmodel import copy_model
from shinha.config.objects import Host, Service
from shinha.errors import ConfigError

_KEY_VALUES = re.compile(r"^(?P<key>[^$]+?)\s*(?P<values>(?:\$\([^)]+?\)\$\s*)*)\s*$")
_VALUE = re.compile(r"\$\(([^)]+)\)\$")
_RANGE = re.compile(r"^(?P<before>[^\[]*)(?:\[(?P<first>\d+)-(?P<last>\d+)"
                    r"(?:/(?P<step>\d+))?\])?(?P<after>.*)$")
#: Characters of a key that cannot be in a service description: replaced by `_`.
_UNSAFE = re.compile(r"[`~!$%^&*\"|'<>?,()=]+")
#: Properties in which `$KEY$`, `$VALUE$`, `$VALUEn$` are replaced, by dialect.
EXPANDED = {
    "shinken": ("check_command", "display_name", "event_handler"),
    "alignak": ("check_command", "event_handler"),
}


class ForeachSyntaxError(ConfigError):
    """A host's custom variable is not a list of `key$(value)$` items."""


def expand_ranges(key: str) -> Iterator[str]:
    """`disk[1-3]` -> disk1, disk2, disk3 (and `[1-9/2]`: every second one), recursively."""
    match = _RANGE.match(key)
    assert match is not None  # every part of the pattern is optional
    if match["first"] is None:
        yield key
        return
    step = int(match["step"] or 1)
    for number in range(int(match["first"]), int(match["last"]) + 1, step):
        yield from expand_ranges(f"{match['before']}{number}{match['after']}")


def key_values(entry: str, default: str) -> list[dict[str, str]]:
    """The items of a generator variable: one dict of KEY, VALUE, VALUE1… per key."""
    out: list[dict[str, str]] = []
    for item in entry.split(","):
        item = item.strip()
        if not item:
            continue
        match = _KEY_VALUES.match(item)
        if match is None:
            raise ForeachSyntaxError(f"{item!r} is not 'key' or 'key$(value)$…'")
        values = {f"VALUE{n}": v for n, v in enumerate(_VALUE.findall(match["values"]), 1)}
        if not values:
            values["VALUE1"] = default
        values["VALUE"] = values["VALUE1"]
        for key in expand_ranges(match["key"]):
            out.append({"KEY": key, **values})
    if not out:
        raise ForeachSyntaxError("it has no key")
    return out


def duplicates(svc: Service, host: Host, variable: str, default: str,
               dialect: str) -> list[Service]:
    """The services that `duplicate_foreach variable` makes of `svc` on `host` (none when the
    host has no such variable). Raises ForeachSyntaxError when the variable is malformed."""
    name = variable.strip().upper()
    if name[:1] != "_" or name[1:] not in host.customs:
        return []
    entry = host.customs[name[1:]]
    skipped = {k.strip() for k in host.customs.get("!" + name[1:], "").split(",")}
    expanded = EXPANDED.get(dialect, EXPANDED["alignak"])
    out: list[Service] = []
    for item in key_values(entry, default):
        if item["KEY"] in skipped:
            continue
        changes: dict[str, Any] = {
            "host_name": host.host_name,
            "service_description": svc.service_description.replace(
                "$KEY$", _UNSAFE.sub("_", item["KEY"])),
        }
        for prop in expanded:
            value: str = getattr(svc, prop)
            if "$" in value:
                for macro, text in item.items():
                    value = value.replace(f"${macro}$", text)
                changes[prop] = value
        out.append(copy_model(svc, **changes))
    return out

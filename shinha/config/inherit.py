"""Template inheritance, as Nagios documents it.

An object's own properties win; then its `use` parents left to right, each parent fully
resolved (depth-first) before the next is looked at. A value starting with `+` adds to the
inherited list instead of replacing it; the value `null` cancels an inherited value. `name`,
`register` and `use` are not inherited. Custom variables (`_FOO`) are case-insensitive, as in
Nagios: their names are upper-cased before merging, so an object's `_FOO` beats a template's
`_foo`. An object that names itself in its own `use` (`name web`, `use web`) inherits nothing
from that name, as Nagios 4 and Naemon load it. A loop among templates is an error, except in
the Nagios dialect: Nagios 4 cuts it where it meets a template again and takes that template's
own values.
"""

from __future__ import annotations

from shinha.config.diagnostics import Diagnostics, did_you_mean
from shinha.config.parser import RawObject, locate_property

NOT_INHERITED = ("name", "register", "use")


class Inheritance:
    """Resolve the templates of one object type."""

    def __init__(self, type_: str, templates: dict[str, RawObject], diags: Diagnostics) -> None:
        self.type = type_
        self.templates = templates
        self.diags = diags
        self._resolved: dict[str, dict[str, str]] = {}
        #: Resolved templates that carry custom variables.
        self._with_customs: set[str] = set()
        self._visiting: set[str] = set()
        self._broken: set[str] = set()

    def parents(self, obj: RawObject) -> list[str]:
        """The templates `obj` uses, left to right, without its own name."""
        use = obj.props.get("use", "")
        if not use:
            return []
        own = obj.props.get("name")
        return [p for p in (x.strip() for x in use.split(",")) if p and p != own]

    def report_missing(self, obj: RawObject, parent: str) -> None:
        """Report that `obj` uses a template `parent` that is not defined."""
        self.diags.error(f"{self.type} template '{parent}' is not defined", obj.file,
                         locate_property(obj, "use"),
                         did_you_mean(parent, self.templates)
                         or f"define a {self.type} with 'name {parent}'")

    def template(self, name: str) -> dict[str, str] | None:
        """The fully resolved properties of template `name` (None if it cannot be resolved)."""
        done = self._resolved.get(name)
        if done is not None:
            return done
        if name in self._broken:
            return None
        tpl = self.templates[name]
        if name in self._visiting:
            if self.diags.dialect == "nagios":
                # Nagios 4 marks a template resolved before it resolves its parents: met again
                # through a loop, it gives what it has so far (its own values), and no error.
                return {k: v for k, v in tpl.props.items() if k not in NOT_INHERITED}
            line = locate_property(tpl, "use")
            self.diags.error(f"inheritance loop: {self.type} template '{name}' uses itself "
                             "through its parents", tpl.file, line,
                             "remove one of the 'use' links of the loop")
            self._broken.add(name)
            return None
        self._visiting.add(name)
        resolved = self._merge(tpl, keep_null=True)
        self._visiting.discard(name)
        if resolved is None:
            self._broken.add(name)
            return None
        self._resolved[name] = resolved
        if any(key[:1] == "_" for key in resolved):
            self._with_customs.add(name)
        return resolved

    def resolve(self, obj: RawObject) -> dict[str, str]:
        """Return the effective properties of a registered object."""
        own = obj.props
        use = own.get("use")
        if use is not None and not obj.additive and "," not in use:
            # The common case, one parent and no `+`: a plain dict merge.
            parent = use.strip()
            if parent == own.get("name"):
                parent = ""  # it uses itself: nothing to inherit
            inherited = self.template(parent) if parent in self.templates else None
            if inherited is not None:
                merged = {**inherited, **own}
                if parent in self._with_customs:
                    _upper_customs(own, merged)
                del merged["use"]
                merged.pop("name", None)
                merged.pop("register", None)
                if "null" in merged.values():
                    for key in [k for k, v in merged.items() if v == "null"]:
                        del merged[key]
                return merged
        props = self._merge(obj, keep_null=False)
        return props if props is not None else {
            k: v for k, v in obj.props.items() if k not in NOT_INHERITED}

    def _merge(self, obj: RawObject, keep_null: bool) -> dict[str, str] | None:
        own = obj.props
        merged: dict[str, str] = {}
        if "use" in own:
            for parent in reversed(self.parents(obj)):
                if parent not in self.templates:
                    self.report_missing(obj, parent)
                    continue
                inherited = self.template(parent)
                if inherited is None:
                    return None
                merged.update(inherited)
        for key, value in own.items():
            if key[:1] == "_":
                key = key.upper()
            if value[:1] == "+":
                base = merged.get(key)
                merged[key] = f"{base},{value[1:]}" if base and base != "null" else value[1:]
            else:
                merged[key] = value
        for key in NOT_INHERITED:
            merged.pop(key, None)
        if not keep_null and "null" in merged.values():
            for key in [k for k, v in merged.items() if v == "null"]:
                del merged[key]
        return merged


def _upper_customs(own: dict[str, str], merged: dict[str, str]) -> None:
    """Give the object's own custom variables written in lower case their upper-case name in
    `merged`, replacing an inherited value of the same variable."""
    for key in own:
        if key[:1] == "_":
            upper = key.upper()
            if upper != key:
                merged[upper] = merged.pop(key)


def origin(obj: RawObject, key: str, inheritance: Inheritance) -> RawObject:
    """Return the object (itself or a template) whose definition gave `obj` its `key`."""
    seen: set[int] = set()

    def walk(o: RawObject) -> RawObject | None:
        if id(o) in seen:
            return None
        seen.add(id(o))
        if key in o.props:
            return o
        for parent in inheritance.parents(o):
            tpl = inheritance.templates.get(parent)
            if tpl is not None and (found := walk(tpl)) is not None:
                return found
        return None

    return walk(obj) or obj

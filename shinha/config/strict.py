"""The Nagios dialect: what `nagios4 -v` refuses and the object language alone would allow.

Each rule is Nagios 4's own, checked with `nagios4 -v` 4.4.6 (tests/test_dialect.py runs the
same trees through both):

- a property Nagios 4 does not know on one of its types ("Invalid host object directive");
- a host, contact, command, group or timeperiod named only through a template ("Could not
  complete object definition … Have you named all your objects?"); a service may take its
  host and description from a template;
- a host or service with no `max_check_attempts` anywhere in its templates;
- a template whose `use` names an undefined template, even if nothing uses it;
- a tree with no services, or no contacts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shinha.config.build import OBJECT_MODELS
from shinha.config.diagnostics import Diagnostics, did_you_mean
from shinha.config.engines import NAGIOS4_PROPERTIES
from shinha.config.inherit import Inheritance
from shinha.config.parser import RawObject, locate_property

if TYPE_CHECKING:
    from shinha.config.loader import Config

_CUSTOMS = frozenset({"host", "service", "contact"})
_HINT = "shinha reads it in its own dialect: shinha_dialect=shinha in the main file"


def check_raw(by_type: dict[str, list[RawObject]], diags: Diagnostics) -> None:
    """Report, on the raw blocks, what Nagios 4 refuses; drop the properties it does not know
    (so that they are reported once)."""
    for type_, raws in by_type.items():
        known = NAGIOS4_PROPERTIES.get(type_)
        if known is None:
            continue  # not a Nagios type (shinha's daemons, realms, modules)
        model = OBJECT_MODELS[type_]
        ours = (frozenset(model.model_fields) | model.ignored_properties
                | model.property_aliases.keys())
        templates = {r.props["name"].strip(): r for r in raws if "name" in r.props}
        inheritance = Inheritance(type_, templates, diags)
        for raw in raws:
            _properties(type_, raw, known, ours, diags)
            registered = raw.props.get("register", "").strip() != "0"
            if (registered and type_ != "service" and model.key_property not in raw.props
                    and "use" in raw.props and model.key_property in inheritance.resolve(raw)):
                diags.error(f"{type_} has no {model.key_property} of its own: Nagios 4 does "
                            "not name an object through its template", raw.file, raw.line,
                            f"add '{model.key_property} NAME' to the object")
            if not registered:
                for parent in inheritance.parents(raw):
                    if parent not in templates:
                        inheritance.report_missing(raw, parent)


def _properties(type_: str, raw: RawObject, known: frozenset[str], ours: frozenset[str],
                diags: Diagnostics) -> None:
    props = raw.props
    if type_ == "timeperiod" or known.issuperset(props):
        return  # a timeperiod's day lines are free-form: its own reader checks them
    for key in [k for k in props if k not in known]:
        if key[:1] == "_" and type_ in _CUSTOMS:
            continue
        diags.error(f"unknown {type_} property '{key}' (Nagios 4 does not have it)", raw.file,
                    locate_property(raw, key), did_you_mean(key, known)
                    or (_HINT if key in ours else "see Nagios 4's object definitions"))
        del props[key]


def check_tree(config: Config, diags: Diagnostics) -> None:
    """Report what Nagios 4 refuses in the whole loaded tree."""
    if not config.services:
        diags.error("there are no services: Nagios 4 refuses such a tree", config.main_file,
                    None, "define at least one service")
    if not config.contacts:
        diags.error("there are no contacts: Nagios 4 refuses such a tree", config.main_file,
                    None, "define at least one contact")
    for host in config.hosts.values():
        if "max_check_attempts" not in host.model_fields_set:
            diags.error(f"host '{host.host_name}' has no max_check_attempts (Nagios 4 has no "
                        "default for it)", host.source_file, host.source_line,
                        "set max_check_attempts on the host or one of its templates")
    for service in config.services.values():
        if "max_check_attempts" not in service.model_fields_set:
            diags.error(f"service '{service.service_description}' has no max_check_attempts "
                        "(Nagios 4 has no default for it)", service.source_file,
                        service.source_line,
                        "set max_check_attempts on the service or one of its templates")

"""The commands Shinken and Alignak define themselves, and the business rules of `bp_rule`.

Shinken 2.4 adds `bp_rule`, `_internal_host_up` and `_echo` to every configuration
(`shinken/objects/config.py`, `add_ghost_objects`); Alignak 2.1 adds `_internal_host_check`
and `_internal_service_check` as well (`alignak/objects/config.py`,
`add_self_defined_objects`). In those dialects they resolve as a `check_command` without a
`define command`. shinha does not run them: an object whose check is one of them is never
checked actively, so it keeps its initial state (UP/OK unless `initial_state` says otherwise)
and takes passive results — what `_internal_host_up` (always UP) and `_echo` (the state stays
as it is) mean. `_internal_host_check!STATE!OUTPUT`, `_internal_service_check!STATE!OUTPUT`
and business rules are not evaluated.

A business rule (`check_command bp_rule!EXPRESSION`) is parsed as Shinken parses it
(`shinken/dependencynode.py`) and every host, service and group it names must exist, as
Shinken and Alignak require: `h1,svc & (h2,svc | !h3)`, `2 of: a,s & b,s & c,s`, an empty host
for the rule's own host (`,svc`), and the expansions `g:hostgroup`, `r:regex`, `*` (host) and
`g:servicegroup`, `r:regex`, `*` (service). Labels (`l:`) and tags (`t:`) are not checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from shinha.config.engines import Engine

#: The commands each engine defines itself.
BUILTIN_COMMANDS: dict[Engine, frozenset[str]] = {
    "shinken": frozenset({"bp_rule", "_internal_host_up", "_echo"}),
    "alignak": frozenset({"bp_rule", "_internal_host_up", "_echo", "_internal_host_check",
                          "_internal_service_check"}),
}
BUSINESS_RULE = "bp_rule"

_XOF = re.compile(r"^(-?\d+%?),*(-?\d*%?),*(-?\d*%?) *of: *(.+)$", re.DOTALL)
_HOST_EXPANSION = re.compile(r"^([grlt]+|\*):")
_SERVICE_EXPANSION = re.compile(r",\s*([grl]+:.*|\*)$")
_FLAGS = re.compile(r"^([a-z]+):(.*)$", re.DOTALL)


class BusinessRuleError(ValueError):
    """A business rule that cannot be parsed, or that names what does not exist."""


def rule_leaves(expression: str) -> list[str]:
    """The leaves (`host`, `host,service`, `g:group,svc` …) of a business rule, without their
    `!`; raise BusinessRuleError for a rule Shinken cannot parse."""
    leaves: list[str] = []
    _parse(expression, leaves)
    return leaves


def _parse(pattern: str, leaves: list[str]) -> None:
    pattern = pattern.strip()
    xof = _XOF.match(pattern)
    if xof is not None:
        pattern = xof.group(4).strip()
    if not pattern:
        raise BusinessRuleError("an empty expression")
    if not any(c in pattern for c in "()&|"):
        leaf = pattern[1:].strip() if pattern[0] == "!" else pattern
        if not leaf:
            raise BusinessRuleError("'!' with nothing after it")
        leaves.append(leaf)
        return
    depth = 0
    operator = ""
    term = ""
    for c in pattern:
        if c == "(":
            if depth == 0 and term.strip() not in ("", "!"):
                raise BusinessRuleError(f"'(' after {term.strip()!r}: an operator is missing")
            depth += 1
            if depth > 1:
                term += c
            elif term.strip() == "!":
                term = ""
        elif c == ")":
            depth -= 1
            if depth < 0:
                raise BusinessRuleError("one ')' too many")
            if depth == 0:
                _parse(term, leaves)
                term = ""
            else:
                term += c
        elif depth > 0:
            term += c
        elif c in "&|":
            if operator and c != operator and xof is None:
                raise BusinessRuleError("'&' and '|' mixed at one level: add parentheses")
            operator = c
            if term.strip():
                _parse(term, leaves)
            term = ""
        else:
            term += c
    if depth > 0:
        raise BusinessRuleError("a '(' is never closed")
    if term.strip():
        _parse(term, leaves)


def check_rule(expression: str, own_host: str, hosts: Mapping[str, object],
               services: Iterable[tuple[str, str]], hostgroups: Mapping[str, Iterable[str]],
               servicegroups: Mapping[str, Iterable[str]]) -> list[str]:
    """What is wrong with a business rule bound to `own_host` (empty: nothing)."""
    try:
        leaves = rule_leaves(expression)
    except BusinessRuleError as exc:
        return [f"cannot parse the business rule: {exc}"]
    by_host: dict[str, set[str]] = {}
    for host, description in services:
        by_host.setdefault(host, set()).add(description)
    problems: list[str] = []
    for leaf in leaves:
        parts = [p.strip() for p in leaf.split(",", 1)]
        host_expr = parts[0] or own_host
        if _HOST_EXPANSION.search(leaf) or _SERVICE_EXPANSION.search(leaf):
            problem = _check_expansion(leaf, host_expr, parts[1] if len(parts) > 1 else None,
                                       hosts, by_host, hostgroups, servicegroups)
        elif len(parts) == 1:
            problem = None if host_expr in hosts else f"unknown host {host_expr}"
        else:
            problem = (None if parts[1] in by_host.get(host_expr, ())
                       else f"unknown service {host_expr}/{parts[1]}")
        if problem is not None:
            problems.append(problem)
    return problems


def _check_expansion(leaf: str, host_expr: str, service_expr: str | None,
                     hosts: Mapping[str, object], by_host: Mapping[str, set[str]],
                     hostgroups: Mapping[str, Iterable[str]],
                     servicegroups: Mapping[str, Iterable[str]]) -> str | None:
    """None when an expansion selects something (or cannot be checked: labels, tags)."""
    try:
        matched = _select_hosts(host_expr, hosts, hostgroups)
        if matched is None:
            return None
        if service_expr is None:
            return None if matched else f"an empty result for {leaf!r}"
        if service_expr == "*":
            found = any(by_host.get(h) for h in matched)
        else:
            flags = _FLAGS.match(service_expr)
            if flags is None:
                found = any(service_expr in by_host.get(h, ()) for h in matched)
            elif "g" in flags.group(1):
                if flags.group(2) not in servicegroups:
                    return f"unknown servicegroup {flags.group(2)}"
                members = list(servicegroups[flags.group(2)])
                pairs = set(zip(members[::2], members[1::2], strict=False))
                found = any(h == host for host, _ in pairs for h in matched)
            elif "r" in flags.group(1):
                regex = re.compile(flags.group(2))
                found = any(regex.search(d) for h in matched for d in by_host.get(h, ()))
            else:
                return None  # labels: not checked
    except _Unknown as exc:
        return str(exc)
    except re.error as exc:
        return f"an invalid regular expression in {leaf!r}: {exc}"
    return None if found else f"an empty result for {leaf!r}"


def _select_hosts(expr: str, hosts: Mapping[str, object],
                  hostgroups: Mapping[str, Iterable[str]]) -> list[str] | None:
    """The hosts a host expression selects; None for one that is not checked (labels, tags)."""
    if expr == "*":
        return list(hosts)
    flags = _FLAGS.match(expr)
    if flags is None or not set(flags.group(1)) <= set("grlt"):
        return [expr] if expr in hosts else []
    letters, name = flags.groups()
    if "g" in letters:
        if name not in hostgroups:
            raise _Unknown(f"unknown hostgroup {name}")
        return [h for h in hostgroups[name] if h in hosts]
    if "r" in letters:
        regex = re.compile(name)
        return [h for h in hosts if regex.search(h)]
    return None


class _Unknown(BusinessRuleError):
    """A group a rule names is not defined."""

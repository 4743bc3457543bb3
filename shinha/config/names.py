"""How a tree's lists of names are read, by dialect.

Nagios reads a list item by item: a name, `*` (all), `!name` (excluded), and, with
`use_regexp_matching=1`, regular expressions (`use_true_regexp_matching=1`: every item is one).
Shinken and Alignak have no regular expressions but read `hostgroup_name` (and a service
template's `host_name`) as an expression: `a|b` or `a,b` (either), `a&b` or `a+b` (both), `!a`
(not), parentheses, `*` (every host). Both readers are here, with the quirks of the engines
they follow, each checked against the engine itself (tests/test_expand.py says how).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shinha.config.parser import Directive

NAGIOS = "nagios"
SHINHA = "shinha"
SHINKEN = "shinken"
ALIGNAK = "alignak"
ENGINES = frozenset({SHINKEN, ALIGNAK})

#: Characters that make a Shinken/Alignak list an expression (their `is_complex_expr`).
_COMPLEX = frozenset("()&|!*")


@dataclass(frozen=True, slots=True)
class Rules:
    """How names and expressions are read: the tree's dialect and its main-file options."""

    #: nagios, shinha (read as Nagios reads it), shinken or alignak.
    dialect: str = NAGIOS
    #: use_regexp_matching=1 (Nagios only: Shinken and Alignak do not implement it).
    regexp: bool = False
    #: use_true_regexp_matching=1: every name is a regular expression, not only those with
    #: `*`, `?`, `+` or `\\.`.
    true_regexp: bool = False

    @property
    def engine(self) -> bool:
        """Shinken or Alignak: packs, duplicate_foreach, expressions, implicit groups."""
        return self.dialect in ENGINES


def dialect_of(config: object) -> str:
    """The tree's dialect: the loader's own (`config.dialect`, a name or an object with a
    `name`) once it sets one; until then guessed from the main file's name (shinken*.cfg,
    alignak*.cfg, nagios.cfg, naemon.cfg; anything else is shinha's own)."""
    found = getattr(config, "dialect", None)
    if found is not None and not isinstance(found, str):
        found = getattr(found, "name", None)
    if isinstance(found, str) and found:
        return found.lower()
    name = Path(str(getattr(config, "main_file", ""))).name.lower()
    for dialect in (SHINKEN, ALIGNAK):
        if name.startswith(dialect):
            return dialect
    return NAGIOS if name in ("nagios.cfg", "naemon.cfg") else SHINHA


def rules_for(config: object, directives: Iterable[Directive]) -> Rules:
    """The Rules of a loaded tree: its dialect and, for Nagios, its regexp directives."""
    dialect = dialect_of(config)
    flags = {"use_regexp_matching": False, "use_true_regexp_matching": False}
    for directive in directives:
        if directive.key in flags:
            flags[directive.key] = directive.value.strip() == "1"
    nagios = dialect not in ENGINES
    return Rules(dialect, nagios and flags["use_regexp_matching"],
                 nagios and flags["use_true_regexp_matching"])


def split_names(value: str | Sequence[str]) -> list[str]:
    """The items of a comma-separated list (a tuple is already split)."""
    items = value.split(",") if isinstance(value, str) else value
    return [x for x in (p.strip() for p in items) if x]


# -- Nagios: names, `*`, `!name`, regular expressions --------------------------------------------


@dataclass(slots=True)
class Picked:
    """What a Nagios list selects among known names."""

    names: list[str] = field(default_factory=list)
    excluded: set[str] = field(default_factory=set)
    #: Names that are not defined.
    missing: list[str] = field(default_factory=list)
    #: Regular expressions that match no name.
    unmatched: list[str] = field(default_factory=list)
    #: Items that are not valid regular expressions.
    invalid: list[str] = field(default_factory=list)


def is_regexp(item: str, rules: Rules) -> bool:
    """Whether Nagios reads this list item as a regular expression."""
    return rules.regexp and (rules.true_regexp or "*" in item or "?" in item or "+" in item
                             or "\\." in item)


def pick(items: Iterable[str], known: Collection[str], rules: Rules,
         every: Callable[[], Iterable[str]]) -> Picked:
    """Select names from `known` as Nagios 4 does. `every` gives what `*` selects. Once an
    item of a list is a regular expression, the rest of the list is read as expressions too
    (so `web.*,!web1` finds no host '!web1', as in Nagios 4.4); a regular expression matches
    anywhere in a name (`regexec`, not anchored)."""
    out = Picked()
    regexp = False
    for item in items:
        if not regexp and is_regexp(item, rules):
            regexp = True
        if regexp:
            try:
                pattern = re.compile(item)
            except re.error:
                out.invalid.append(item)
                continue
            found = [name for name in known if pattern.search(name)]
            if not found:
                out.unmatched.append(item)
            out.names.extend(found)
        elif item == "*":
            out.names.extend(every())
        elif item[:1] == "!":
            if item[1:] in known:
                out.excluded.add(item[1:])
            else:
                out.missing.append(item[1:])
        elif item in known:
            out.names.append(item)
        else:
            out.missing.append(item)
    return out


# -- Shinken and Alignak: expressions ------------------------------------------------------------


def is_expression(value: str) -> bool:
    """Whether Shinken and Alignak read this list as an expression."""
    return not _COMPLEX.isdisjoint(value)


@dataclass(slots=True)
class Evaluated:
    """What an expression selects, and what in it deserves a word to the operator."""

    names: set[str] = field(default_factory=set)
    unknown: list[str] = field(default_factory=list)
    #: Readings of the engines an operator would not expect (a lone `!a`, mixed operators).
    notes: list[str] = field(default_factory=list)


class _Node:
    """A node of Shinken's ComplexExpressionNode tree."""

    __slots__ = ("content", "leaf", "negated", "operand", "operators", "sons")

    def __init__(self) -> None:
        self.operand = "|"
        self.operators: set[str] = set()
        self.sons: list[_Node] = []
        self.negated = False
        self.leaf = False
        self.content: set[str] = set()

    def resolve(self) -> set[str]:
        if self.leaf:
            return self.content
        result: set[str] = set()
        first = True
        for son in self.sons:
            if son.negated:
                continue
            members = son.resolve()
            if self.operand == "|":
                result |= members
            elif first:
                result = set(members)
            else:
                result &= members
            first = False
        for son in self.sons:
            if son.negated:
                result -= son.resolve()
        return result


class _Parser:
    """Shinken's `eval_cor_pattern`, faithful to its readings: one operator per level (the
    last one written applies to every term of the level), `!` only on a name."""

    def __init__(self, leaf: Callable[[str], Collection[str] | None],
                 everything: Callable[[], Collection[str]], out: Evaluated) -> None:
        self.leaf = leaf
        self.everything = everything
        self.out = out

    def parse(self, pattern: str) -> _Node:
        pattern = pattern.strip()
        node = _Node()
        if not any(c in pattern for c in "()+&|,"):
            if pattern.startswith("!"):
                node.negated = True
                pattern = pattern[1:].strip()
            node.leaf = True
            if pattern == "*":
                node.content = set(self.everything())
            else:
                found = self.leaf(pattern)
                if found is None:
                    self.out.unknown.append(pattern)
                else:
                    node.content = set(found)
            return node
        depth = 0
        text = ""
        for char in pattern:
            if char in ",|&+" and depth == 0:
                node.operand = "|" if char in ",|" else "&"
                node.operators.add(node.operand)
                if text.strip():
                    node.sons.append(self.parse(text))
                text = ""
            elif char == "(":
                depth += 1
                if depth == 1 and text.strip():
                    self.out.notes.append(f"'{text.strip()}' before '(' is read inside the "
                                          "parentheses")
                    continue
                if depth > 1:
                    text += char
            elif char == ")":
                depth -= 1
                if depth < 0:
                    self.out.notes.append("a ')' has no '(' and is ignored")
                    depth = 0
                    continue
                if depth == 0:
                    node.sons.append(self.parse(text))
                    text = ""
                    continue
                text += char
            else:
                text += char
        if text.strip():
            node.sons.append(self.parse(text))
        if len(node.operators) > 1:
            self.out.notes.append(f"'{pattern}' mixes '|' and '&' without parentheses: the "
                                  f"last one written ('{node.operand}') joins every term")
        return node


def evaluate(expression: str, leaf: Callable[[str], Collection[str] | None],
             everything: Callable[[], Collection[str]]) -> Evaluated:
    """Evaluate a Shinken/Alignak expression: `leaf(name)` gives the hosts a name stands for
    (a hostgroup's, or a host template's users), None when the name is not defined."""
    out = Evaluated()
    node = _Parser(leaf, everything, out).parse(expression)
    if node.leaf and node.negated:
        name = expression.strip()[1:].strip()
        out.notes.append(f"a lone '!{name}' selects the hosts of '{name}' (Shinken and "
                         f"Alignak read it so); write '*&!{name}' for every host but those")
    out.names = node.resolve()
    return out

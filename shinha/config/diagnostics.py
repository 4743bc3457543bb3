"""Errors and warnings found while loading a configuration, each with its file and line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem in the configuration: what, where, and what to do about it."""

    severity: Severity
    message: str
    file: str | None = None
    line: int | None = None
    hint: str | None = None

    def where(self) -> str:
        if self.file is None:
            return "<config>"
        return f"{self.file}:{self.line}" if self.line else self.file

    def __str__(self) -> str:
        text = f"{self.where()}: {self.severity}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def as_dict(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "message": self.message,
            "hint": self.hint,
        }


@dataclass(slots=True)
class Diagnostics:
    """The growing list of diagnostics of one load; loading goes on after an error."""

    items: list[Diagnostic] = field(default_factory=list)
    #: The dialect of the tree being loaded (shinha.config.dialect), for the few rules that
    #: differ deep inside a stage (Nagios 4 cuts a template loop where shinha reports it).
    dialect: str = "shinha"
    _seen: set[Diagnostic] = field(default_factory=set, init=False, repr=False)

    def _add(self, diag: Diagnostic) -> None:
        # One problem met through many objects (a typo in a template that 1,000 hosts use)
        # is reported once, not once per object.
        if diag not in self._seen:
            self._seen.add(diag)
            self.items.append(diag)

    def error(
        self, message: str, file: str | None = None, line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self._add(Diagnostic("error", message, file, line, hint))

    def warning(
        self, message: str, file: str | None = None, line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self._add(Diagnostic("warning", message, file, line, hint))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "warning"]

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=lambda d: (d.file or "", d.line or 0, d.severity))


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """Return a 'did you mean …?' hint for a misspelt word, or None when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f"did you mean '{close[0]}'?" if close else None

"""The exception hierarchy of shinha: every error we raise on purpose is a ShinhaError."""

from __future__ import annotations


class ShinhaError(Exception):
    """Base of every error shinha raises on purpose."""


class ConfigError(ShinhaError):
    """The configuration cannot be loaded; `diagnostics` says what and where."""

    def __init__(self, message: str, diagnostics: list[object] | None = None) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics or []

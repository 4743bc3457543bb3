"""Prometheus text exposition of a daemon's counters and gauges (no client library needed)."""

from __future__ import annotations

from collections import defaultdict

Labels = tuple[tuple[str, str], ...]


class Metrics:
    """Counters and gauges with labels, rendered in the Prometheus text format 0.0.4."""

    def __init__(self, prefix: str = "shinha") -> None:
        self.prefix = prefix
        self._help: dict[str, tuple[str, str]] = {}
        self._values: dict[str, dict[Labels, float]] = defaultdict(dict)
        #: Counter name (without prefix) -> its samples: `inc` runs per check.
        self._counters: dict[str, dict[Labels, float]] = {}

    def _name(self, metric: str, kind: str, help_text: str) -> str:
        full = f"{self.prefix}_{metric}"
        self._help.setdefault(full, (kind, help_text))
        return full

    def inc(self, metric: str, amount: float = 1.0, help_text: str = "",
            **labels: str) -> None:
        values = self._counters.get(metric)
        if values is None:
            values = self._counters[metric] = self._values[self._name(metric, "counter",
                                                                      help_text)]
        key = tuple(sorted(labels.items())) if len(labels) > 1 else tuple(labels.items())
        values[key] = values.get(key, 0.0) + amount

    def set(self, metric: str, value: float, help_text: str = "", **labels: str) -> None:
        full = self._name(metric, "gauge", help_text)
        self._values[full][tuple(sorted(labels.items()))] = value

    def get(self, metric: str, **labels: str) -> float:
        return self._values.get(f"{self.prefix}_{metric}", {}).get(
            tuple(sorted(labels.items())), 0.0)

    def render(self) -> str:
        lines: list[str] = []
        for full, (kind, help_text) in sorted(self._help.items()):
            if help_text:
                lines.append(f"# HELP {full} {help_text}")
            lines.append(f"# TYPE {full} {kind}")
            for labels, value in sorted(self._values[full].items()):
                text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                sample = _number(value)
                lines.append(f"{full}{{{text}}} {sample}" if text else f"{full} {sample}")
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    """Render a sample exactly: whole numbers without an exponent (1234567, not 1.23e+06)."""
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

"""Split plugin output into output, long output and performance data (Nagios plugin API).

    TEXT OUTPUT | OPTIONAL PERFDATA
    LONG TEXT LINE 1
    LONG TEXT LINE 2 | PERFDATA LINE 2
    PERFDATA LINE 3

The first line is the output; `|` on it starts perfdata. The lines after it are long output
until one holds a `|`: from there on (Nagios 3+), everything is more perfdata. A perfdata item
is `label=value[UOM];[warn];[crit];[min];[max]`, the label quoted with `'` when it holds spaces
or `=` (`''` inside quotes is one quote). A bad item is skipped, never fatal.
"""

from __future__ import annotations

import math
import re

from shinha.wire import PerfDatum

# The value's number; whatever follows it is the unit (s ms us % B KB MB GB TB c, or anything a
# plugin invents: we keep it rather than drop the item).
_NUMBER = re.compile(r"[-+]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][-+]?\d+)?")


def truncate_utf8(text: str, max_bytes: int) -> str:
    """Cut text to at most max_bytes of UTF-8 without splitting a character."""
    # A character is at most 4 bytes: short text needs no encoding to know it fits.
    if len(text) * 4 <= max_bytes:
        return text
    raw = text.encode("utf-8", "surrogateescape")
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", "ignore")


def parse_output(raw: str, max_length: int) -> tuple[str, str, list[PerfDatum]]:
    """Return (output, long output, perfdata) of a plugin's raw output, cut to max_length bytes."""
    text = truncate_utf8(raw, max_length)
    first, _, rest = text.partition("\n")
    output, bar, perf_text = first.partition("|")
    perf_parts = [perf_text] if bar else []
    long_lines: list[str] = []
    if rest:
        lines = rest.split("\n")
        for index, line in enumerate(lines):
            before, bar, after = line.partition("|")
            if bar:
                long_lines.append(before)
                perf_parts.append(after)
                perf_parts.extend(lines[index + 1:])
                break
            long_lines.append(line)
    long_output = "\n".join(line.rstrip() for line in long_lines).strip("\n")
    perfdata = parse_perfdata(" ".join(perf_parts)) if perf_parts else []
    return output.strip(), long_output, perfdata


def parse_perfdata(text: str) -> list[PerfDatum]:
    """Parse space-separated perfdata items; skip the malformed ones."""
    items: list[PerfDatum] = []
    pos, end = 0, len(text)
    while pos < end:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            break
        label, pos = _read_label(text, pos)
        if pos < end and text[pos] == "=":
            value_end = pos + 1
            while value_end < end and not text[value_end].isspace():
                value_end += 1
            datum = _datum(label, text[pos + 1:value_end]) if label is not None else None
            if datum is not None:
                items.append(datum)
            pos = value_end
        else:
            # No `=`: not an item. Skip to the next whitespace and carry on.
            while pos < end and not text[pos].isspace():
                pos += 1
    return items


def _read_label(text: str, pos: int) -> tuple[str | None, int]:
    """Read a label at pos; return (label or None if unusable, position of the `=` or stop)."""
    end = len(text)
    if text[pos] == "'":
        chars: list[str] = []
        pos += 1
        while pos < end:
            char = text[pos]
            if char == "'":
                if pos + 1 < end and text[pos + 1] == "'":
                    chars.append("'")
                    pos += 2
                    continue
                pos += 1
                break
            chars.append(char)
            pos += 1
        else:
            return None, pos  # unterminated quote: nothing usable
        label = "".join(chars)
        return (label or None), pos
    start = pos
    while pos < end and text[pos] != "=" and not text[pos].isspace():
        pos += 1
    return (text[start:pos] or None), pos


def _datum(label: str, spec: str) -> PerfDatum | None:
    """Build one item from `value[UOM];warn;crit;min;max`, or None when the value is bad."""
    fields = spec.split(";")
    head = fields[0]
    if head == "U":
        value: float | None = None
        uom = ""
    else:
        match = _NUMBER.match(head)
        if match is None:
            return None
        value = _number(match.group())
        if value is None:
            return None  # 1e999: not a value the wire can carry
        uom = head[match.end():]
    extra = [*fields[1:5], "", "", "", ""]
    return PerfDatum(label=label, value=value, uom=uom, warn=extra[0].strip(),
                     crit=extra[1].strip(), min=_optional_number(extra[2]),
                     max=_optional_number(extra[3]))


def _number(text: str) -> float | None:
    # Some plugins print a decimal comma (their locale): read it as a point.
    value = float(text.replace(",", "."))
    return value if math.isfinite(value) else None


def _optional_number(text: str) -> float | None:
    text = text.strip()
    match = _NUMBER.fullmatch(text) if text else None
    return _number(match.group()) if match else None

"""Read Nagios/Shinken configuration files into raw objects and main-file directives.

This layer knows the syntax only: `define TYPE { key value }` blocks, `key=value` directives,
comments, line continuations and the includes: `cfg_file=`/`cfg_dir=`/`resource_file=`, and
Naemon's `include_file=`/`include_dir=` (the same as cfg_file/cfg_dir, in any file). It never
stops at the first error: a broken block is reported and skipped, the rest is read.

Property line numbers are not kept per property (that would double the memory of a large tree);
`locate_property` finds them again by re-reading the block when a diagnostic needs one.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from sys import intern

from shinha.config.diagnostics import Diagnostics

INCLUDE_DIRECTIVES = frozenset({"cfg_file", "cfg_dir", "resource_file", "include_file",
                                "include_dir"})
_FILE_INCLUDES = frozenset({"cfg_file", "include_file"})
_DIR_INCLUDES = frozenset({"cfg_dir", "include_dir"})
_TIMEPERIOD_FIXED = frozenset({"timeperiod_name", "alias", "exclude", "name", "use", "register"})
_TIME_START = re.compile(r"(?<!\S)\d{1,2}:\d{2}")


class RawObject:
    """One `define` block as written: its type, its properties, where it came from."""

    __slots__ = ("additive", "end", "file", "line", "props", "type")

    def __init__(self, type_: str, file: str, line: int) -> None:
        self.type = type_
        self.file = file
        self.line = line
        self.end = line
        self.props: dict[str, str] = {}
        #: Whether a value starts with `+` (additive inheritance needs the slow merge).
        self.additive = False

    def __repr__(self) -> str:
        return f"RawObject({self.type!r}, {self.file}:{self.line})"


@dataclass(slots=True)
class Directive:
    """One `key=value` line of a main file."""

    key: str
    value: str
    file: str
    line: int


@dataclass(slots=True)
class ParsedTree:
    """Everything read from a main file and the files it includes."""

    objects: list[RawObject] = field(default_factory=list)
    directives: list[Directive] = field(default_factory=list)
    resources: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


def _strip_comment(line: str) -> str:
    """Cut a `;` comment off a line, keeping escaped `\\;` as a literal semicolon."""
    out: list[str] = []
    i = 0
    while True:
        j = line.find(";", i)
        if j < 0:
            out.append(line[i:])
            break
        if j > 0 and line[j - 1] == "\\":
            out.append(line[i : j - 1])
            out.append(";")
            i = j + 1
            continue
        out.append(line[i:j])
        break
    return "".join(out).strip()


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Split text into (line number, stripped line) pairs, joining `\\` continuations."""
    raw = text.split("\n")
    if "\\\n" not in text and "\\\r\n" not in text:
        return [(n, s) for n, s in enumerate((x.strip() for x in raw), 1) if s]
    result: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, line in enumerate(raw, 1):
        stripped = line.strip()
        if stripped.endswith("\\") and not stripped.endswith("\\\\"):
            if not pending:
                start = number
            pending.append(stripped[:-1])
            continue
        if pending:
            pending.append(stripped)
            joined = " ".join(p for p in (x.strip() for x in pending) if p)
            pending = []
            if joined:
                result.append((start, joined))
        elif stripped:
            result.append((number, stripped))
    if pending:
        joined = " ".join(p for p in (x.strip() for x in pending) if p)
        if joined:
            result.append((start, joined))
    return result


def read_text(path: Path, diags: Diagnostics, where: tuple[str, int] | None) -> str | None:
    """Read a config file as text; a missing or unreadable file is an error at its include."""
    file, line = where if where else (str(path), None)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        diags.error(f"file not found: {path}", file, line, "check the path; relative paths "
                    "resolve against the file that includes them")
        return None
    except OSError as exc:
        diags.error(f"cannot read {path}: {exc.strerror}", file, line)
        return None
    text, bad = _decode(data)
    if bad is not None:
        diags.warning(f"{path} is not valid UTF-8 (byte {bad}); read as Latin-1",
                      str(path), data.count(b"\n", 0, bad) + 1)
    return text


def _decode(data: bytes) -> tuple[str, int | None]:
    """Decode a file as UTF-8, or as Latin-1 from the offset of its first bad byte (returned).

    A UTF-8 byte order mark (some Windows editors write one) is skipped. Line ends are left as
    they are: only `\\n` ends a line, for the readers and for `locate_property` alike.
    """
    skip = 3 if data[:3] == b"\xef\xbb\xbf" else 0
    try:
        return data[skip:].decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return data[skip:].decode("latin-1"), skip + exc.start


class TreeReader:
    """Read a main file and everything it includes, in Nagios order."""

    def __init__(self, diags: Diagnostics,
                 sift: Callable[[list[RawObject]], list[RawObject]] | None = None) -> None:
        self.diags = diags
        #: Given each file's blocks, returns those to keep (None: all are kept).
        self.sift = sift
        self.tree = ParsedTree()
        self._seen: set[Path] = set()
        #: One string per distinct property value read (see _plain_blocks).
        self._values: dict[str, str] = {}

    def read_main(self, path: Path) -> ParsedTree:
        # The files may have changed since the last load (a reload): forget their old lines.
        _file_lines.cache_clear()
        self._read_file(path, None)
        return self.tree

    def _read_file(self, path: Path, where: tuple[str, int] | None) -> None:
        key = path.resolve() if path.exists() else path
        if key in self._seen:
            self.diags.warning(f"{path} is included more than once; read only the first time",
                               *(where or (str(path), None)))
            return
        self._seen.add(key)
        text = read_text(path, self.diags, where)
        if text is None:
            return
        self.tree.files.append(str(path))
        self.parse_text(text, str(path))

    def _read_dir(self, path: Path, where: tuple[str, int], key: str = "cfg_dir") -> None:
        if not path.is_dir():
            self.diags.error(f"directory not found: {path}", *where,
                             hint=f"{key}= names a directory; relative paths resolve against "
                             "the including file")
            return
        walked: set[str] = set()
        for root, dirs, files in os.walk(path, followlinks=True):
            real = os.path.realpath(root)
            if real in walked:
                dirs.clear()  # a symbolic link back up the tree: do not go round the loop
                continue
            walked.add(real)
            dirs.sort()
            for name in sorted(files):
                if name.endswith(".cfg"):
                    self._read_file(Path(root) / name, where)

    def _read_resource(self, path: Path, where: tuple[str, int]) -> None:
        text = read_text(path, self.diags, where)
        if text is None:
            return
        self.tree.files.append(str(path))
        for number, line in _logical_lines(text):
            if line[0] in "#;":
                continue
            key, eq, value = line.partition("=")
            key = key.strip()
            if not eq or not (len(key) > 2 and key[0] == "$" and key[-1] == "$"):
                self.diags.error(f"resource line is not '$NAME$=value': {line[:60]!r}",
                                 str(path), number, "write e.g. $USER1$=/usr/lib/nagios/plugins")
                continue
            self.tree.resources[key[1:-1]] = value.strip()

    def _directive(self, key: str, value: str, file: str, line: int) -> None:
        self.tree.directives.append(Directive(key, value, file, line))
        if key in INCLUDE_DIRECTIVES:
            if not value:
                self.diags.error(f"{key}= needs a path", file, line)
                return
            target = Path(value)
            if not target.is_absolute():
                target = Path(file).parent / target
            if key in _FILE_INCLUDES:
                self._read_file(target, (file, line))
            elif key in _DIR_INCLUDES:
                self._read_dir(target, (file, line), key)
            else:
                self._read_resource(target, (file, line))

    def parse_text(self, text: str, file: str) -> None:
        """Parse one file's text; blocks go to the tree, directives are acted on in order."""
        fast = _plain_blocks(text, file, self._values)
        if fast is None:
            fast = _fast_blocks(text, file)
        if fast is not None:
            self.tree.objects.extend(fast if self.sift is None else self.sift(fast))
            return
        start = len(self.tree.objects)
        self._parse_lines(text, file)  # includes on the way are sifted already: no matter
        if self.sift is not None:
            self.tree.objects[start:] = self.sift(self.tree.objects[start:])

    def _parse_lines(self, text: str, file: str) -> None:
        diags = self.diags
        objects = self.tree.objects
        current: RawObject | None = None
        props: dict[str, str] = {}
        for number, line in _logical_lines(text):
            first = line[0]
            if first == "#" or first == ";":
                continue
            if ";" in line:
                line = _strip_comment(line)
                if not line:
                    continue
            if current is None:
                if line.startswith("define"):
                    current = self._open_block(line, file, number)
                    if current is not None:
                        props = current.props
                        rest = line[line.index("{") + 1 :].strip()
                        if rest and self._block_line(current, rest, number):
                            objects.append(current)
                            current = None
                    continue
                if line == "}":
                    diags.error("'}' with no open define block", file, number,
                                "remove it, or add the missing 'define TYPE {' above")
                    continue
                key, eq, value = line.partition("=")
                if eq and key.strip() and " " not in key.strip():
                    self._directive(key.strip(), value.strip(), file, number)
                    continue
                diags.error(f"text outside any define block: {line[:60]!r}", file, number,
                            "object definitions start with 'define TYPE {'")
                continue
            if line == "}" or (line[-1] == "}" and line[-2] in " \t"):
                body = line[:-1].rstrip()
                if body:
                    self._property(current, props, body, number)
                current.end = number
                objects.append(current)
                current = None
                continue
            if line.startswith("define") and ("{" in line) and line[6:7] in (" ", "\t", "{"):
                diags.error(f"define {current.type} block is never closed with '}}'",
                            file, current.line, "add '}' at the end of the block")
                current = self._open_block(line, file, number)
                if current is not None:
                    props = current.props
                continue
            self._property(current, props, line, number)
        if current is not None:
            diags.error(f"define {current.type} block is never closed with '}}' "
                        "(end of file reached)", file, current.line,
                        "add '}' at the end of the block")

    def _open_block(self, line: str, file: str, number: int) -> RawObject | None:
        head, brace, _ = line.partition("{")
        parts = head.split()
        if not brace or len(parts) != 2 or parts[0] != "define":
            self.diags.error(f"malformed define line: {line[:60]!r}", file, number,
                             "write 'define TYPE {'")
            return None
        return RawObject(parts[1], file, number)

    def _block_line(self, obj: RawObject, rest: str, number: int) -> bool:
        """Handle text after `{` on a define line; True when it also closed the block."""
        if rest.endswith("}"):
            body = rest[:-1].strip()
            if body:
                self._property(obj, obj.props, body, number)
            obj.end = number
            return True
        self._property(obj, obj.props, rest, number)
        return False

    def _property(self, obj: RawObject, props: dict[str, str], line: str, number: int) -> None:
        parts = line.split(None, 1)
        key = parts[0]
        value = parts[1] if len(parts) > 1 else ""
        if obj.type == "timeperiod" and key not in _TIMEPERIOD_FIXED:
            # Day lines ("day 1", "day 15", "monday 3 - thursday 4") share first words: the
            # whole day specification is the key, the time ranges are the value.
            m = _TIME_START.search(line)
            if m:
                key, value = line[: m.start()].strip(), line[m.start() :].strip()
        if key in props:
            self.diags.warning(f"{key} is set twice in this define {obj.type}; the last one "
                               "wins", obj.file, number)
        if "{" in key or "}" in key:
            self.diags.error(f"unexpected brace in property line: {line[:60]!r}", obj.file,
                             number, "each property goes on its own line: 'key value'")
            return
        props[key] = value
        if value[:1] == "+":
            obj.additive = True
        obj.end = number


def _plain_blocks(text: str, file: str, values: dict[str, str]) -> list[RawObject] | None:
    """Read a file of plain define blocks, checking per file what `_fast_blocks` checks per
    line; None when it is not that plain.

    Plain: no `;`, no carriage return, no continuation, no timeperiod, every block opened by
    `define TYPE {` alone on its line and closed by `}` alone on its line, each key set once,
    and no other brace anywhere (a brace in a key or value makes the counts differ).

    Keys are interned and equal values share one string through `values` (a large tree
    repeats most of its values: a third less memory, and less time spent touching it).
    """
    if ";" in text or "\\\n" in text or "\r" in text:
        return None
    objects: list[RawObject] = []
    append = objects.append
    current: RawObject | None = None
    props: dict[str, str] = {}
    number = 0
    plus = "+" in text
    same = values.setdefault
    for line in text.split("\n"):
        number += 1
        parts = line.split(None, 1)
        if not parts:
            continue
        key = parts[0]
        if key[0] == "#":
            continue
        if current is not None:
            if len(parts) == 2:
                key = intern(key)
                if key in props:
                    return None
                value = parts[1].rstrip()
                value = props[key] = same(value, value)
                if plus and value[0] == "+":
                    current.additive = True
            elif key == "}":
                current.end = number
                append(current)
                current = None
            elif key in props:
                return None
            else:
                props[key] = ""
        elif key == "define" and len(parts) == 2:
            words = parts[1].split()
            if len(words) != 2 or words[1] != "{" or words[0] == "timeperiod":
                return None
            current = RawObject(words[0], file, number)
            props = current.props
        else:
            return None
    if current is not None or not text.count("{") == len(objects) == text.count("}"):
        return None
    return objects


def _fast_blocks(text: str, file: str) -> list[RawObject] | None:
    """Read a file made only of plain define blocks; None when it needs the careful reader.

    This is the hot loop of a large tree, so it does the least per line. Anything unusual
    (directives, continuations, `;` comments after values, braces in odd places, repeated
    keys, timeperiods whose day lines need the careful reader) sends the whole file to the
    line-by-line reader, which reports errors precisely.
    """
    if "\\\n" in text or "\\\r\n" in text:
        return None
    objects: list[RawObject] = []
    current: RawObject | None = None
    props: dict[str, str] = {}
    number = 0
    for line in text.split("\n"):
        number += 1
        parts = line.split(None, 1)
        if not parts:
            continue
        key = parts[0]
        first = key[0]
        if first == "#" or first == ";":
            continue
        if current is not None:
            if len(parts) == 2:
                value = parts[1].rstrip()
                if (";" in line or value[-1] == "}" or key in props or key == "define"
                        or "{" in key or "}" in key):
                    return None
                if value[0] == "+":
                    current.additive = True
                props[key] = value
            elif key == "}":
                current.end = number
                objects.append(current)
                current = None
            elif "}" in key or "{" in key or ";" in key or key in props:
                return None
            else:
                props[key] = ""
        elif key == "define" and len(parts) == 2:
            rest = parts[1].rstrip()
            if rest[-1] != "{":
                return None
            words = rest[:-1].split()
            if len(words) != 1:
                return None
            type_ = words[0]
            if type_ == "timeperiod" or "{" in type_ or "}" in type_ or ";" in type_:
                return None
            current = RawObject(type_, file, number)
            props = current.props
        else:
            return None
    if current is not None:
        return None
    return objects


@functools.lru_cache(maxsize=32)
def _file_lines(file: str) -> list[str]:
    try:
        data = Path(file).read_bytes()
    except OSError:
        return []
    return _decode(data)[0].split("\n")


def locate_property(obj: RawObject, key: str) -> int:
    """Return the line of `key` inside `obj`'s block (the block's line if not found)."""
    lines = _file_lines(obj.file)
    for number in range(obj.line, min(obj.end, len(lines)) + 1):
        stripped = lines[number - 1].strip()
        if number == obj.line:
            stripped = stripped.partition("{")[2].strip()
        if ";" in stripped:
            stripped = _strip_comment(stripped)
        # Split as the readers do: any whitespace ends the key.
        if stripped.split(None, 1)[:1] == [key]:
            return number
    return obj.line


def locate_in_block(file: str, line: int, key: str) -> int:
    """Return the line of `key` in the block whose `define` is at `line` of `file`; `line`
    itself when the block does not set `key` (the value was inherited from a template)."""
    lines = _file_lines(file)
    for number in range(line, len(lines) + 1):
        stripped = lines[number - 1].strip()
        if number == line:
            stripped = stripped.partition("{")[2].strip()
        elif stripped.startswith("define") and "{" in stripped:
            break
        if ";" in stripped:
            stripped = _strip_comment(stripped)
        if stripped.split(None, 1)[:1] == [key]:
            return number
        if stripped == "}" or stripped.endswith((" }", "\t}")):
            break
    return line

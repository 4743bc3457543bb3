"""Bad input for every endpoint of every role: the route table read from each role's
`Daemon.build_app()`, a valid body built from the JSON schema of the model each handler reads,
requests written byte for byte on a raw socket, and a tally of what came back and what each
request left in the daemon's log.

Nothing here knows the list of endpoints: a route added to a role is walked by itself, with
its model, its body limit, and the query parameters and headers its handler reads (found in
the handler's source)."""

from __future__ import annotations

import copy
import http.client
import inspect
import json
import re
import select
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from shinha.config import load_config
from shinha.daemon.base import DaemonContext
from shinha.daemon.process import daemon_class
from shinha.http.server import read_model
from shinha.wire import ROLES

Json = Any
PathKey = tuple[str | int, ...]

#: Where a value is swapped for raw JSON bytes (json.dumps cannot write NaN or 1e999 verbatim).
SLOT = "__badinput_slot__"
#: Numbers no field should take whole: the JSON text each is sent as, and whether it is
#: non-finite once read as a float (then it must be refused with the field named).
NUMBERS: tuple[tuple[str, bytes, bool], ...] = (
    ("NaN", b"NaN", True),
    ("Infinity", b"Infinity", True),
    ("-Infinity", b"-Infinity", True),
    ("1e999", b"1e999", True),
    ("-1e999", b"-1e999", True),
    ("400 digits", b"1" + b"0" * 399, False),
    ("-400 digits", b"-1" + b"0" * 399, False),
)
#: Strings no field should choke on.
STRINGS: tuple[tuple[str, bytes], ...] = (
    ("1 MiB string", b'"' + b"x" * (1 << 20) + b'"'),
    ("NUL", b'"a\\u0000b"'),
    ("lone surrogate", b'"\\ud800"'),
    ("invalid UTF-8", b'"\xff\xfe"'),
)
#: A value of another JSON type than the field's, for each type.
WRONG_TYPE: Mapping[str, tuple[bytes, ...]] = {
    "integer": (b'"x"', b"1.5"),
    "number": (b"{}",),
    "string": (b"[]",),
    "boolean": (b'"maybe"',),
    "array": (b"1",),
    "object": (b'"x"',),
    "any": (),
}


# --- the route table -----------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One endpoint of one role, as its handler reads it."""

    role: str
    method: str
    path: str  # the canonical path, with {name} parameters
    handler: str
    model: type[BaseModel] | None
    max_body: int
    query: tuple[str, ...]
    headers: tuple[str, ...]

    @property
    def params(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.path)

    def __str__(self) -> str:
        return f"{self.role} {self.method} {self.path}"


def route_table(main_file: Path, state_root: Path) -> list[Route]:
    """Every route of every role, from `build_app()` of a daemon built (not started) from the
    loaded configuration."""
    result = load_config(main_file)
    assert result.ok and result.config is not None, result.errors
    config = result.config
    routes: list[Route] = []
    for role in ROLES:
        link = next(iter(config.daemons[role].values()))
        daemon = daemon_class(role)(DaemonContext(config=config, link=link,
                                                  state_root=state_root))
        app = daemon.build_app()
        for route in app.router.routes():
            handler = route.handler
            source = _sources(handler)
            model, max_body = _model_of(handler, source)
            routes.append(Route(
                role=role, method=route.method, path=route.resource.canonical
                if route.resource is not None else "",
                handler=getattr(handler, "__qualname__", repr(handler)), model=model,
                max_body=max_body,
                query=tuple(sorted(set(re.findall(r'query\.get\(\s*"([^"]+)"', source))
                                   | set(re.findall(r'\(\s*request\s*,\s*"([^"]+)"', source)))),
                headers=tuple(sorted(set(re.findall(r'headers\.get\(\s*"([^"]+)"', source))))))
    return routes


def _globals(handler: Callable[..., Any]) -> dict[str, Any]:
    func = getattr(handler, "__func__", handler)
    found: dict[str, Any] = getattr(func, "__globals__", {})
    return found


def _sources(handler: Callable[..., Any]) -> str:
    """The handler's source, and that of the module functions it passes the request to
    (`_paging(request)` reads `limit` and `offset`)."""
    source = inspect.getsource(handler)
    names = _globals(handler)
    seen: set[str] = set()
    todo = re.findall(r"(\w+)\(\s*request\b", source)
    while todo:
        name = todo.pop()
        func = names.get(name)
        if name in seen or not inspect.isfunction(func) or func.__module__ != names.get(
                "__name__"):
            continue
        seen.add(name)
        more = inspect.getsource(func)
        source += "\n" + more
        todo += re.findall(r"(\w+)\(\s*request\b", more)
    return source


def _model_of(handler: Callable[..., Any], source: str) -> tuple[type[BaseModel] | None, int]:
    """The model the handler passes to read_model, and the body limit it gives it."""
    default = inspect.signature(read_model).parameters["max_bytes"].default
    assert isinstance(default, int)
    match = re.search(r"read_model\(\s*request\s*,\s*(\w+)\s*(?:,\s*(\w+)\s*)?\)", source)
    if match is None:
        return None, default
    names = _globals(handler)
    model = names[match.group(1)]
    assert isinstance(model, type) and issubclass(model, BaseModel), match.group(0)
    limit = names[match.group(2)] if match.group(2) else default
    assert isinstance(limit, int), match.group(0)
    return model, limit


# --- valid bodies from a model's JSON schema -------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    """A place in a body and the JSON type the model wants there."""

    path: PathKey
    kind: str  # integer, number, string, boolean, array, object, any
    max_items: int | None = None

    @property
    def dotted(self) -> str:
        return ".".join(str(p) for p in self.path)


@dataclass
class Shape:
    """A valid body of a model (every optional field and one item of every list filled, so
    that every numeric field is reached) and the leaves of it."""

    model: type[BaseModel]
    body: Json
    leaves: list[Leaf]

    def render(self, path: PathKey | None = None, raw: bytes = b"") -> bytes:
        """The body as JSON, with the value at `path` replaced by `raw` verbatim."""
        if path is None:
            return json.dumps(self.body).encode()
        doc = copy.deepcopy(self.body)
        if path:
            target = doc
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = SLOT
        else:
            doc = SLOT
        text = json.dumps(doc).encode()
        assert text.count(f'"{SLOT}"'.encode()) == 1
        return text.replace(f'"{SLOT}"'.encode(), raw)

    def with_extra(self, path: PathKey) -> bytes:
        """The body with an unknown field added to the object at `path`."""
        doc = copy.deepcopy(self.body)
        target = doc
        for key in path:
            target = target[key]
        target["zz_unknown_field"] = 1
        return json.dumps(doc).encode()


def shape(model: type[BaseModel], names: Mapping[str, Json] | None = None,
          top: Mapping[str, Json] | None = None) -> Shape:
    """Build a valid body of `model`: `names` sets every field of that name (a real host),
    `top` sets top-level fields."""
    schema = model.model_json_schema()
    leaves: list[Leaf] = []
    builder = _Builder(schema.get("$defs", {}), dict(names or {}), leaves)
    body = builder.build(schema, ())
    for key, value in (top or {}).items():
        body[key] = value
        leaves[:] = [leaf for leaf in leaves if leaf.path[:1] != (key,)]
        leaves.extend(_leaves_of(value, (key,)))
    return Shape(model, body, leaves)


def _leaves_of(value: Json, path: PathKey) -> list[Leaf]:
    if isinstance(value, list):
        out = [Leaf(path, "array")]
        for i, item in enumerate(value):
            out += _leaves_of(item, (*path, i))
        return out
    if isinstance(value, dict):
        out = [Leaf(path, "object")]
        for key, item in value.items():
            out += _leaves_of(item, (*path, key))
        return out
    kind = ("boolean" if isinstance(value, bool) else "integer" if isinstance(value, int)
            else "number" if isinstance(value, float) else "string")
    return [Leaf(path, kind)]


@dataclass
class _Builder:
    defs: dict[str, Any]
    names: dict[str, Json]
    leaves: list[Leaf]

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            ref: str = schema["$ref"]
            schema = {**self.defs[ref.rsplit("/", 1)[-1]],
                      **{k: v for k, v in schema.items() if k != "$ref"}}
        if "allOf" in schema and len(schema["allOf"]) == 1:
            rest = {k: v for k, v in schema.items() if k != "allOf"}
            schema = {**self.resolve(schema["allOf"][0]), **rest}
        return schema

    def build(self, schema: dict[str, Any], path: PathKey) -> Json:
        schema = self.resolve(schema)
        for union in ("anyOf", "oneOf"):
            if union in schema:
                branches = [b for b in schema[union] if self.resolve(b).get("type") != "null"]
                return self.build(branches[0] if branches else {"type": "null"}, path)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return schema["enum"][0]
        kind = schema.get("type", "any")
        if kind == "object":
            self.leaves.append(Leaf(path, "object"))
            props: dict[str, Any] = schema.get("properties", {})
            out: dict[str, Json] = {}
            for name, sub in props.items():
                if name in self.names:
                    out[name] = self.names[name]
                    self.leaves.extend(_leaves_of(out[name], (*path, name)))
                else:
                    out[name] = self.build(sub, (*path, name))
            extra = schema.get("additionalProperties")
            if not props and isinstance(extra, dict):
                out["x"] = self.build(extra, (*path, "x"))
            return out
        if kind == "array":
            self.leaves.append(Leaf(path, "array", schema.get("maxItems")))
            if "prefixItems" in schema:
                return [self.build(s, (*path, i)) for i, s in enumerate(schema["prefixItems"])]
            if schema.get("maxItems") == 0:
                return []
            count = max(1, int(schema.get("minItems", 1)))
            first = self.build(schema.get("items", {}), (*path, 0))
            return [first] + [copy.deepcopy(first) for _ in range(count - 1)]
        if kind == "string":
            self.leaves.append(Leaf(path, "string"))
            length = max(1, int(schema.get("minLength", 1)))
            return "x" * min(length, int(schema.get("maxLength", length)))
        if kind in ("integer", "number"):
            self.leaves.append(Leaf(path, kind))
            return _in_bounds(schema, kind == "integer")
        if kind == "boolean":
            self.leaves.append(Leaf(path, "boolean"))
            return False
        if kind == "null":
            return None
        self.leaves.append(Leaf(path, "any"))
        return None


def _in_bounds(schema: Mapping[str, Any], integer: bool) -> int | float:
    step = 1
    low: float | None = schema.get("minimum")
    if low is None and "exclusiveMinimum" in schema:
        low = schema["exclusiveMinimum"] + step
    high: float | None = schema.get("maximum")
    if high is None and "exclusiveMaximum" in schema:
        high = schema["exclusiveMaximum"] - step
    value = low if low is not None else 0
    if high is not None and value > high:
        value = high
    return int(value) if integer else float(value)


# --- requests, byte for byte ---------------------------------------------------------------


Header = tuple[bytes, bytes]


def request_bytes(method: str, target: bytes, host: str, headers: Iterable[Header] = (),
                  body: bytes | None = None, content_length: int | None = None,
                  chunked: bool = False) -> bytes:
    """An HTTP/1.1 request, exactly: the body as given, Content-Length as given (or its
    length), or chunked (the caller streams the chunks)."""
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: " + host.encode(),
             b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if chunked:
        lines.append(b"Transfer-Encoding: chunked")
    elif body is not None or content_length is not None:
        size = content_length if content_length is not None else len(body or b"")
        lines.append(b"Content-Length: " + str(size).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


@dataclass(frozen=True)
class Reply:
    status: int  # 0: the connection closed with no (parsable) answer
    body: bytes

    def json(self) -> Json:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def send(address: str, port: int, data: bytes, stream: int = 0, timeout: float = 30.0,
         method: str = "POST", half_close: bool = False) -> Reply:
    """Send `data`; then, if `stream`, that many bytes more as 1 MiB chunks (stopping as
    soon as the server answers); with `half_close`, if no answer comes within 2 s, say that
    nothing more comes (a malformed request may leave the server waiting for the rest);
    read the answer."""
    with socket.create_connection((address, port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if stream:
                _stream(sock, stream)
            if half_close and not select.select([sock], [], [], 2.0)[0]:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (and closed) before taking it all: read its answer
        response = http.client.HTTPResponse(sock, method=method)
        try:
            response.begin()
            body = response.read()
        except (http.client.HTTPException, ConnectionResetError, TimeoutError):
            return Reply(0, b"")
        _wait_for_close(sock)
        return Reply(response.status, body)


def _wait_for_close(sock: socket.socket, timeout: float = 2.0) -> None:
    """Say we are done and wait (briefly) for the server to close: by then it has finished
    with the request, and logged what it had to say about it (aiohttp logs some errors only
    after the answer is sent), so that a log line is blamed on the request that caused it."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(timeout)
        while sock.recv(1 << 16):
            pass
    except OSError:  # reset, or no close within the timeout
        pass


_CHUNK = b" " * (1 << 20)


def _stream(sock: socket.socket, total: int) -> None:
    frame = f"{len(_CHUNK):x}\r\n".encode() + _CHUNK + b"\r\n"
    sent = 0
    while sent < total:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            return  # an early answer (413): stop sending
        sock.sendall(frame)
        sent += len(_CHUNK)
    sock.sendall(b"0\r\n\r\n")


# --- what each request left in the daemon's log ---------------------------------------------

_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (\w+) ")


class LogWatch:
    """The new part of one daemon's log since the last look."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self.lock = threading.Lock()

    def new(self) -> str:
        with self.lock, open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
            # Keep a partial last line for the next look.
            cut = data.rfind(b"\n") + 1
            self.offset += cut
            return data[:cut].decode("utf-8", "replace")


def bad_lines(text: str) -> list[str]:
    """One entry per log record at ERROR or above, or carrying a traceback: its first line
    (timestamp removed) and, for a traceback, the exception line that ends it."""
    records: list[list[str]] = []
    for line in text.splitlines():
        if _RECORD.match(line) or not records:
            records.append([line])
        else:
            records[-1].append(line)
    out: list[str] = []
    for record in records:
        match = _RECORD.match(record[0])
        level = match.group(1) if match else "?"
        head = _RECORD.sub(r"\1 ", record[0])
        tb = [i for i, line in enumerate(record) if "Traceback (most recent call last)" in line]
        if tb:
            rest = record[tb[-1] + 1:]
            at = next((i for i, line in enumerate(rest)
                       if line.strip() and not line.startswith((" ", "\t"))), None)
            last = "?" if at is None else rest[at].strip()
            if at is not None and at + 1 < len(rest) and rest[at + 1].startswith(" "):
                last += " " + rest[at + 1].strip()  # aiohttp's message goes on indented
            out.append(f"Traceback ({head[:200]}) {last}")
        elif level in ("ERROR", "CRITICAL"):
            out.append(head)
    return out


def signature(line: str) -> str:
    """A log entry, addresses blurred, shortened, for grouping."""
    return re.sub(r"0x[0-9a-f]+", "0x…", line)[:260]


# --- probes and their tally ------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """What a probe must get besides "no 5xx": a status range, and the field at fault."""

    low: int = 400
    high: int = 499
    field: str | None = None
    why: str = ""


@dataclass(frozen=True)
class Probe:
    daemon: str
    route: str  # "POST /dispatch", or "raw" for malformed HTTP
    label: str  # "kind: detail"
    make: Callable[[], bytes]
    method: str = "POST"
    stream: int = 0
    expect: Expect | None = None
    half_close: bool = False


@dataclass
class Outcome:
    probe: Probe
    status: int
    reply: Json
    log: list[str]
    secret_in_log: bool
    seconds: float

    @property
    def violations(self) -> list[str]:
        out: list[str] = []
        if self.status >= 500:
            out.append(f"HTTP {self.status}")
        if self.log:
            out.append("log")
        if self.secret_in_log:
            out.append("secret in log")
        exp = self.probe.expect
        if exp is not None and self.status < 500:
            if not exp.low <= self.status <= exp.high:
                out.append(f"wanted {exp.low}-{exp.high} ({exp.why})")
            elif exp.field is not None:
                got = self.reply.get("field") if isinstance(self.reply, dict) else None
                if not (isinstance(got, str) and (got == exp.field
                                                  or got.startswith(exp.field + "."))):
                    out.append(f"wanted field {exp.field!r}, got {got!r}")
        return out


@dataclass
class Tally:
    """Every outcome, and every bad log line no request could be blamed for."""

    outcomes: list[Outcome] = field(default_factory=list)
    stray: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)

    def summary(self) -> dict[str, Any]:
        statuses = Counter(str(o.status) if o.status else "no answer" for o in self.outcomes)
        tracebacks = sum(line.startswith("Traceback") for o in self.outcomes for line in o.log)
        tracebacks += sum(line.startswith("Traceback") for lines in self.stray.values()
                          for line in lines)
        errors = sum(line.removeprefix("Traceback (").startswith(("ERROR", "CRITICAL"))
                     for o in self.outcomes for line in o.log)
        return {"requests": len(self.outcomes),
                "by_status": dict(sorted(statuses.items())),
                "5xx": sum(o.status >= 500 for o in self.outcomes),
                "tracebacks": tracebacks, "error_lines": errors,
                "secret_in_log": sum(o.secret_in_log for o in self.outcomes),
                "failing_requests": sum(bool(o.violations) for o in self.outcomes)}


def _where(o: Outcome) -> str:
    role = o.probe.daemon.rsplit("-", 1)[0]
    return role if o.probe.route == "raw" else f"{role} {o.probe.route}"


def _blur(line: str) -> str:
    """A log entry without what differs from daemon to daemon, for grouping."""
    line = re.sub(r"\[(arbiter|scheduler|poller|dataserver|receiver) [^\]]+\]", "[…]", line)
    line = re.sub(r"(serving [A-Z]+) /\S*", r"\1 …", line)
    return signature(line)


def failure_classes(outcomes: Iterable[Outcome], limit: int = 60) -> list[str]:
    """Failing outcomes grouped by (kind of input, status, what went wrong, first log
    entry), each with its count, the endpoints it hit and a few of its inputs."""
    groups: dict[tuple[str, int, str, str], list[Outcome]] = defaultdict(list)
    for o in outcomes:
        if not o.violations:
            continue
        kind = o.probe.label.split(":", 1)[0]
        wrong = "; ".join(w for w in o.violations if w != "log")
        groups[(kind, o.status, wrong, _blur(o.log[0]) if o.log else "")].append(o)
    lines = []
    for (kind, status, wrong, _), members in sorted(
            groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        where = sorted({_where(m) for m in members})
        inputs = sorted({m.probe.label.split(":", 1)[-1].strip() for m in members})
        reply = next((m.reply for m in members if isinstance(m.reply, dict)), None)
        lines.append(
            f"[{kind}] status {status or 'no answer'}{' ' + wrong if wrong else ''} "
            f"x{len(members)} on {', '.join(where[:5])}"
            + (f" (+{len(where) - 5} more)" if len(where) > 5 else "")
            + f"\n      inputs: {'; '.join(inputs[:5])}"
            + (f" (+{len(inputs) - 5} more)" if len(inputs) > 5 else "")
            + (f"\n      reply: {json.dumps(reply)[:200]}" if reply and wrong else "")
            + "".join(f"\n      log: {_blur(x)}" for x in members[0].log[:2]))
    if len(lines) > limit:
        lines = [*lines[:limit], f"… and {len(lines) - limit} more classes"]
    return lines


def dump(outcomes: Iterable[Outcome], path: Path) -> None:
    """Every failing outcome as a JSON line (endpoint, input, status, reply, log)."""
    with open(path, "a", encoding="utf-8") as fh:
        for o in outcomes:
            if o.violations:
                fh.write(json.dumps({
                    "daemon": o.probe.daemon, "route": o.probe.route, "input": o.probe.label,
                    "status": o.status, "wrong": o.violations, "reply": o.reply,
                    "log": o.log}) + "\n")


def run(probes: list[Probe], addresses: Mapping[str, tuple[str, int]],
        watches: Mapping[str, LogWatch], secret: str, tally: Tally) -> list[Outcome]:
    """Send the probes, one thread per daemon (in order within a daemon), each outcome with
    the bad log lines its daemon wrote meanwhile."""
    by_daemon: dict[str, list[Probe]] = defaultdict(list)
    for probe in probes:
        by_daemon[probe.daemon].append(probe)
    results: list[Outcome] = []
    lock = threading.Lock()

    def work(daemon: str) -> None:
        address, port = addresses[daemon]
        watch = watches[daemon]
        watch.new()  # what came before is not ours
        for probe in by_daemon[daemon]:
            start = time.monotonic()
            try:
                reply = send(address, port, probe.make(), stream=probe.stream,
                             method=probe.method, half_close=probe.half_close,
                             timeout=10.0 if probe.half_close else 30.0)
            except OSError as exc:  # refused, reset before an answer, timed out
                reply = Reply(0, json.dumps({"error": type(exc).__name__,
                                             "message": str(exc)}).encode())
            text = watch.new()
            outcome = Outcome(probe, reply.status, reply.json(), bad_lines(text),
                              secret in text, time.monotonic() - start)
            tally.add(outcome)
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=work, args=(d,), name=f"badinput-{d}")
               for d in by_daemon]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results

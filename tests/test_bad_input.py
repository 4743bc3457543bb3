"""Issue 9: bad input to every endpoint of every role, generated from the route table.

The routes are those of `Daemon.build_app()` of each role, built (not started) from the same
configuration as the real cluster under test; each POST body is built from the model its
handler reads (tests/badinput.py). Against real daemon processes on loopback: requests
without (or with a malformed) secret change nothing; authenticated garbage gets a 4xx; no
request gets a 5xx, writes an ERROR or a traceback, or puts the secret in a log; every daemon
still answers afterwards. The last test prints one JSON line (BADINPUT {...}) with the totals.

Run: .venv/bin/pytest tests/test_bad_input.py -s
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.badinput import (
    NUMBERS,
    STRINGS,
    WRONG_TYPE,
    Expect,
    Header,
    LogWatch,
    Outcome,
    Probe,
    Route,
    Shape,
    Tally,
    bad_lines,
    dump,
    failure_classes,
    request_bytes,
    route_table,
    run,
    shape,
)
from tests.cluster import SECRET, Cluster

HOST, SERVICE = "web", "PASSIVE"
OBJECTS = f"""
define command {{
  command_name ok
  command_line $USER1$/check_dummy 0 "all good"
}}
define host {{
  host_name {HOST}
  address 127.0.0.1
  check_command ok
  active_checks_enabled 0
}}
define service {{
  host_name {HOST}
  service_description {SERVICE}
  active_checks_enabled 0
  max_check_attempts 1
}}
"""
S = SECRET.encode()
GOOD_AUTH: Header = (b"Authorization", b"Bearer " + S)
JSON_TYPE: Header = (b"Content-Type", b"application/json")
#: Fields set to real objects of the tree (and a time that is now), so that a body gets past
#: "unknown host" to the code behind it; the rest of each body comes from its model's schema.
NAMES: dict[str, Any] = {"host": HOST, "service": SERVICE, "time": round(time.time(), 3)}
TOP: dict[str, dict[str, Any]] = {"CommandLines": {"commands": [
    f"[{int(time.time())}] PROCESS_SERVICE_CHECK_RESULT;{HOST};{SERVICE};0;fine"]}}

#: Authorization headers that must not pass (several carry the real secret, malformed).
BAD_AUTH: tuple[tuple[str, list[Header]], ...] = (
    ("no secret", []),
    ("wrong secret", [(b"Authorization", b"Bearer wrong-secret")]),
    ("non-UTF-8", [(b"Authorization", b"Bearer \xff\xfe")]),
    ("non-UTF-8 after the secret", [(b"Authorization", b"Bearer " + S + b"\xff")]),
    ("latin-1 before the secret", [(b"Authorization", b"Bearer \xe9" + S)]),
    ("secret without a scheme", [(b"Authorization", S)]),
    ("secret glued to the scheme", [(b"Authorization", b"Bearer" + S)]),
    ("secret plus a byte", [(b"Authorization", b"Bearer " + S + b"x")]),
    ("secret minus a byte", [(b"Authorization", b"Bearer " + S[:-1])]),
    ("secret twice", [(b"Authorization", b"Bearer " + S + b" " + S)]),
    ("secret, other scheme", [(b"Authorization", b"Token " + S)]),
    ("secret as Basic", [(b"Authorization", b"Basic " + base64.b64encode(b"shinha:" + S))]),
    ("secret in another header", [(b"X-Authorization", b"Bearer " + S)]),
    ("empty", [(b"Authorization", b"")]),
    ("scheme only", [(b"Authorization", b"Bearer ")]),
    ("8 KB token", [(b"Authorization", b"Bearer " + b"x" * 8000)]),
    ("wrong one first, then the secret", [(b"Authorization", b"Bearer wrong"), GOOD_AUTH]),
)
NON_FINITE_MSG = "a non-finite number is refused naming the field"


# --- the cluster and the route table ---------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("badinput"))
    for role in ("arbiter", "scheduler", "poller", "dataserver", "receiver"):
        c.add(role, f"{role}-1")
    c.objects = OBJECTS
    c.write()
    try:
        c.start_all()
        c.wait(lambda: (v := c.get("arbiter-1", "/cluster"))["leading"] and all(
            d["alive"] and d["epoch"] == v["epoch"] for d in v["daemons"]), 30,
            "every daemon alive at the arbiter's epoch")
        yield c
    finally:
        c.stop_all()


@pytest.fixture(scope="module")
def routes(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> list[Route]:
    # Built from the tree the cluster runs, with a state root of its own: nothing started.
    return route_table(cluster.main, tmp_path_factory.mktemp("route-table-state"))


@pytest.fixture(scope="module")
def tally() -> Tally:
    return Tally()


@pytest.fixture(scope="module")
def watches(cluster: Cluster) -> dict[str, LogWatch]:
    """Each daemon's log from here on: what the battery caused."""
    return {name: LogWatch(cluster.root / f"{d.role}-{name}.log")
            for name, d in cluster.daemons.items()}


def _daemon_of(cluster: Cluster, role: str) -> str:
    return next(name for name, d in cluster.daemons.items() if d.role == role)


def _addresses(cluster: Cluster) -> dict[str, tuple[str, int]]:
    return {name: (d.address, d.port) for name, d in cluster.daemons.items()}


@functools.cache
def _shape(model: Any) -> Shape:
    built = shape(model, NAMES, TOP.get(model.__name__))
    model.model_validate_json(built.render())  # the base of every variation is valid
    return built


def _target(route: Route, values: dict[str, bytes] | None = None, query: bytes = b"") -> bytes:
    """The route's path with its parameters filled (valid values unless given)."""
    valid = {"host": HOST.encode(), "service": SERVICE.encode()}
    path = route.path.encode()
    for name in route.params:
        value = (values or {}).get(name, valid.get(name, b"x"))
        path = path.replace(b"{" + name.encode() + b"}", value)
    return path + query


def _probe(cluster: Cluster, route: Route, label: str, headers: list[Header],
           body: bytes | Callable[[], bytes] | None = None, *, target: bytes | None = None,
           method: str | None = None, content_length: int | None = None, stream: int = 0,
           expect: Expect | None = None) -> Probe:
    d = cluster.daemons[_daemon_of(cluster, route.role)]
    host = f"{d.address}:{d.port}"
    method = method or route.method
    where = target if target is not None else _target(route)

    def make() -> bytes:
        data = body() if callable(body) else body
        return request_bytes(method, where, host, headers, data, content_length,
                             chunked=stream > 0)

    return Probe(_daemon_of(cluster, route.role), f"{route.method} {route.path}", label,
                 make, method=method, stream=stream, expect=expect)


def _assert_clean(cluster: Cluster, outcomes: list[Outcome], what: str) -> None:
    classes = failure_classes(outcomes)
    failures = cluster.root / "badinput-failures.jsonl"
    dump(outcomes, failures)
    assert not classes, (f"{what}: {sum(bool(o.violations) for o in outcomes)} of "
                         f"{len(outcomes)} requests failed (each in {failures}), by class:\n  "
                         + "\n  ".join(classes))


# --- what must not change without the secret --------------------------------------------------


def _metric_lines(text: str, names: tuple[str, ...]) -> list[str]:
    return sorted(line for line in text.splitlines()
                  if line.split("{")[0].split(" ")[0] in names)


def observable(c: Cluster) -> dict[str, Any]:
    """The state a request could change: epochs, hashes, the receiver's queue, what the
    data-server stores, the scheduler's counts, the election terms."""
    out: dict[str, Any] = {}
    counters = tuple(f"shinha_{n}" for n in (
        "fenced_requests_total", "accepted_total", "refused_total",
        "results_total", "results_stored_total", "checks_handed_total", "orphans_total",
        "queued", "dead_letters", "leadership_taken_total"))
    owned = ("leading", "highest_epoch_seen", "parts", "master", "part", "hosts", "services",
             "checks", "problems", "pending", "in_flight", "ready", "outbox",
             "results_total", "pollers_seen", "queued", "dead_letters", "stored_new",
             "only_bumped", "duplicates", "unacked", "covering", "schedulers")
    for name in c.daemons:
        status = c.get(name, "/status")
        ping = c.get(name, "/ping")
        metrics = c.request(name, "GET", "/metrics")[1]
        owns = status["owns"]
        out[name] = {
            **{k: status[k] for k in ("epoch", "config_hash", "part_hash", "active")},
            **{k: ping[k] for k in ("topology_hash", "leader", "election_master",
                                    "election_term")},
            "owns": {k: owns[k] for k in owned if k in owns},
            "election": {k: v for k, v in owns.get("election", {}).items()},
            "metrics": _metric_lines(str(metrics), counters)}
    ds = _daemon_of(c, "dataserver")
    out["stored"] = {"hosts": c.get(ds, "/api/hosts?limit=1000")["items"],
                     "services": c.get(ds, "/api/services?limit=1000")["items"],
                     "history": c.history(ds, HOST, SERVICE)}
    return out


def _quiet_snapshot(c: Cluster) -> dict[str, Any]:
    """A snapshot once two in a row agree (the cluster has settled)."""
    last: list[dict[str, Any]] = [observable(c)]

    def settled() -> dict[str, Any] | None:
        now = observable(c)
        same = now == last[0]
        last[0] = now
        return now if same else None

    return c.wait(settled, 20, "the cluster's observable state to settle")


def _diff(before: Any, after: Any, path: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[str] = []
        for key in sorted(set(before) | set(after), key=str):
            out += _diff(before.get(key), after.get(key), f"{path}.{key}" if path else key)
        return out
    return [] if before == after else [f"{path}: {json.dumps(before)[:300]} -> "
                                       f"{json.dumps(after)[:300]}"]


# --- the batteries ---------------------------------------------------------------------------


def unauthenticated(cluster: Cluster, routes: list[Route]) -> list[Probe]:
    """Every route with a valid body and each bad Authorization; a few bad bodies too."""
    probes: list[Probe] = []
    for route in routes:
        if route.method == "POST":
            body = _shape(route.model).render() if route.model else b"{}"
            refused = Expect(400, 499, why="a state change without the secret")
            for label, headers in BAD_AUTH:
                probes.append(_probe(cluster, route, f"auth: {label}", [JSON_TYPE, *headers],
                                     body, expect=refused))
            for label, raw in (("invalid JSON", b"{not json"), ("deep nesting",
                                                                 b"[" * 100_000)):
                probes.append(_probe(cluster, route, f"auth: no secret, {label}",
                                     [JSON_TYPE], raw, expect=refused))
            probes.append(_probe(cluster, route, "auth: no secret, Content-Length over the "
                                 "limit", [JSON_TYPE], body[:1000],
                                 content_length=route.max_body + 1, expect=refused))
            probes.append(_probe(cluster, route, "auth: no secret, chunked over the limit",
                                 [JSON_TYPE], None, stream=route.max_body + (1 << 20),
                                 expect=refused))
        else:
            for label, headers in BAD_AUTH:
                probes.append(_probe(cluster, route, f"auth: {label}", headers))
    return probes


def malformed_http(cluster: Cluster, routes: list[Route]) -> list[Probe]:
    """Raw-socket requests no HTTP parser should take, several carrying the secret; sent to
    each role's first state-changing route."""
    probes: list[Probe] = []
    firsts: dict[str, Route] = {}
    for route in routes:
        if route.method == "POST":
            firsts.setdefault(route.role, route)
    for route in firsts.values():
        d = cluster.daemons[_daemon_of(cluster, route.role)]
        path = route.path.encode()
        start = b"POST " + path + b" HTTP/1.1\r\nHost: " + f"{d.address}".encode() + b"\r\n"
        body = b'{"x": 1}'
        cl = b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        raw: list[tuple[str, bytes]] = [
            ("garbage request line", b"\xff\xfe\x00 GARBAGE \x01\x02\r\n\r\n"),
            ("garbage request line with the secret", b"\xff\xfe " + S + b" \x01\r\n\r\n"),
            ("request line with the secret as method", S + b" " + path + b" HTTP/1.1\r\n\r\n"),
            ("method only", b"POST\r\n\r\n"),
            ("HTTP/9.9", b"POST " + path + b" HTTP/9.9\r\nHost: x\r\n\r\n"),
            ("blank lines only", b"\r\n\r\n\r\n\r\n"),
            ("bare LF", b"POST " + path + b" HTTP/1.1\nHost: x\nContent-Length: 2\n\n{}"),
            ("header line without a colon, with the secret",
             start + b"Authorization Bearer " + S + b"\r\n" + cl + b"\r\n" + body),
            ("header name with a space, with the secret",
             start + b"Authori zation: Bearer " + S + b"\r\n" + cl + b"\r\n" + body),
            ("folded header line, with the secret",
             start + b"X-A: 1\r\n Authorization: Bearer " + S + b"\r\n" + cl + b"\r\n" + body),
            ("NUL in the Authorization value, with the secret",
             start + b"Authorization: Bearer " + S + b"\x00\r\n" + cl + b"\r\n" + body),
            ("NUL in a header value", start + b"X-Shinha-Proof: a\x00b\r\n" + cl + b"\r\n"
             + body),
            ("NUL in a header name", start + b"X-\x00: v\r\n" + cl + b"\r\n" + body),
            ("0xFF in a header value", start + b"X-Foo: \xff\xfe\r\n" + cl + b"\r\n" + body),
            ("0xFF in a header name", start + b"X-\xff: v\r\n" + cl + b"\r\n" + body),
            ("0xFF in the path", b"POST " + path + b"\xff HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("secret in a header name", start + S + b": 1\r\n" + cl + b"\r\n" + body),
            ("Content-Length -1", start + b"Content-Length: -1\r\n\r\n" + body),
            ("Content-Length abc", start + b"Content-Length: abc\r\n\r\n" + body),
            ("two Content-Lengths", start + b"Content-Length: 8\r\nContent-Length: 3\r\n\r\n"
             + body),
            ("Content-Length and chunked", start + cl + b"Transfer-Encoding: chunked\r\n\r\n"
             + b"8\r\n" + body + b"\r\n0\r\n\r\n"),
            ("Transfer-Encoding gzip", start + b"Transfer-Encoding: gzip\r\n\r\n" + body),
            ("bad chunk size", start + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"
             + body + b"\r\n0\r\n\r\n"),
            ("chunk longer than said", start + b"Transfer-Encoding: chunked\r\n\r\n2\r\n"
             + body + b"\r\n0\r\n\r\n"),
            ("10 KB path", b"POST /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("10 KB header", start + b"X-Big: " + b"b" * 10_000 + b"\r\n" + cl + b"\r\n"
             + body),
            ("10 KB header with the secret", start + b"Authorization: Bearer " + S
             + b"b" * 10_000 + b"\r\n" + cl + b"\r\n" + body),
            ("300 headers", start + b"".join(b"X-H%d: v\r\n" % i for i in range(300)) + cl
             + b"\r\n" + body),
            ("HTTP/0.9", b"GET /ping\r\n"),
            ("TLS hello on the plain port", bytes.fromhex("16030100a5010000a10303")
             + b"\x00" * 32),
        ]
        for label, data in raw:
            probes.append(Probe(_daemon_of(cluster, route.role), "raw", f"raw: {label}",
                                functools.partial(bytes, data), half_close=True))
    return probes


@functools.cache
def _bomb(size: int) -> bytes:
    return gzip.compress(b" " * size, compresslevel=1)


def authenticated(cluster: Cluster, routes: list[Route]) -> list[Probe]:
    """Every route with the secret and garbage: bodies, fields, numbers, strings, sizes,
    content types, query strings, path parameters, headers."""
    probes: list[Probe] = []
    auth = [GOOD_AUTH, JSON_TYPE]
    bad = Expect(400, 499, why="a bad body")
    too_large = Expect(413, 413, why="over the body limit")
    streamed: set[tuple[str, int]] = set()
    paths: set[tuple[str, str]] = set()
    for route in routes:
        def add(label: str, body: bytes | Callable[[], bytes] | None,
                expect: Expect | None = None, headers: list[Header] = auth,
                route: Route = route, **kw: Any) -> None:
            probes.append(_probe(cluster, route, label, headers, body, expect=expect, **kw))

        if route.method == "POST" and route.model is not None:
            built = _shape(route.model)
            forbid = route.model.model_config.get("extra") == "forbid"
            add("body: empty", b"", bad)
            add("body: none at all", None, bad)
            for label, raw in (("invalid JSON", b"{not json"), ("unclosed object", b'{"a":'),
                               ("truncated", built.render()[: len(built.render()) // 2]),
                               ("BOM then JSON", b"\xef\xbb\xbf" + built.render()),
                               ("two documents", built.render() * 2),
                               ("invalid UTF-8", b"\xff\xfe\x00"),
                               ("trailing garbage", built.render() + b"\x00garbage")):
                add(f"body: {label}", raw, bad)
            for label, raw in (("null", b"null"), ("array", b"[]"), ("string", b'"x"'),
                               ("number", b"1"), ("true", b"true"),
                               ("the body in an array", b"[" + built.render() + b"]")):
                add(f"type: {label}", raw, bad)
            add("extra: unknown top-level field", built.with_extra(()),
                Expect(400, 499, "zz_unknown_field", "unknown field") if forbid else None)
            for leaf in built.leaves:
                if leaf.kind == "object" and leaf.path:
                    add(f"extra: unknown field in {leaf.dotted}", built.with_extra(leaf.path))
            add("deep: 100,000 nested arrays", b"[" * 100_000 + b"]" * 100_000, bad)
            add("deep: 100,000 nested objects",
                b'{"a":' * 100_000 + b"1" + b"}" * 100_000, bad)
            for leaf in built.leaves:
                if not leaf.path:
                    continue
                for raw in WRONG_TYPE[leaf.kind]:
                    add(f"wrong type: {leaf.dotted} = {raw.decode()}",
                        functools.partial(built.render, leaf.path, raw),
                        Expect(400, 499, leaf.dotted, "a value of the wrong type"))
                if leaf.kind in ("integer", "number"):
                    for label, raw, non_finite in NUMBERS:
                        must = non_finite or leaf.kind == "number"
                        add(f"number: {leaf.dotted} = {label}",
                            functools.partial(built.render, leaf.path, raw),
                            Expect(400, 400, leaf.dotted, NON_FINITE_MSG) if must else None)
                if leaf.kind == "string":
                    for label, raw in STRINGS:
                        add(f"string: {leaf.dotted} = {label}",
                            functools.partial(built.render, leaf.path, raw))
                if leaf.kind in ("array", "object") and len(leaf.path) == 1:
                    add(f"deep: 50,000 arrays in {leaf.dotted}",
                        functools.partial(built.render, leaf.path,
                                          b"[" * 50_000 + b"]" * 50_000),
                        bad)
                if leaf.kind == "array" and leaf.max_items is not None:
                    count = leaf.max_items + 1

                    def longer(built: Shape = built, leaf_path: Any = leaf.path,
                               count: int = count) -> bytes:
                        # null items: the length alone must be refused (and valid items
                        # would make the server validate 50,000 of them first)
                        return built.render(leaf_path, b"[" + b",".join([b"null"] * count)
                                            + b"]")

                    add(f"size: {leaf.dotted} with {count} items", longer,
                        Expect(400, 499, leaf.dotted, "over max_length"))
            add("size: Content-Length over the limit", built.render(), too_large,
                content_length=route.max_body + 1)
            if (route.role, route.max_body) not in streamed:
                # Streaming past a limit costs up to 256 MiB a time: once per daemon and
                # limit (every route reads its body through read_model with its limit).
                streamed.add((route.role, route.max_body))
                add("size: chunked over the limit", None, too_large,
                    stream=route.max_body + (1 << 20))
                add("size: gzip bomb over the limit", functools.partial(
                    _bomb, route.max_body + (1 << 20)), too_large,
                    headers=[*auth, (b"Content-Encoding", b"gzip")])
            add("encoding: Content-Encoding gzip, body not gzip", built.render(), bad,
                headers=[*auth, (b"Content-Encoding", b"gzip")])
            add("encoding: Content-Encoding deflate, body not deflate", built.render(), bad,
                headers=[*auth, (b"Content-Encoding", b"deflate")])
            add("encoding: Content-Encoding br", built.render(),
                headers=[*auth, (b"Content-Encoding", b"br")])
            add("encoding: Content-Encoding zz", built.render(),
                headers=[*auth, (b"Content-Encoding", b"zz")])
            for label, ctype, raw in (
                    ("text/plain", b"text/plain", built.render()),
                    ("form", b"application/x-www-form-urlencoded", b"a=b&c=%ff"),
                    ("multipart", b"multipart/form-data; boundary=zz",
                     b"--zz\r\nContent-Disposition: form-data; name=a\r\n\r\nb\r\n--zz--\r\n"),
                    ("JSON, charset latin-1", b"application/json; charset=latin-1",
                     built.render()),
                    ("0xFF in it", b"application/\xff", built.render()),
                    ("none", b"", built.render())):
                headers = [GOOD_AUTH] + ([(b"Content-Type", ctype)] if ctype else [])
                add(f"content type: {label}", raw, headers=headers)
        elif route.method == "POST":
            add("body: invalid JSON", b"{not json")
            add("size: chunked over the limit", None, stream=route.max_body + (1 << 20))
        else:
            probes.extend(_get_battery(cluster, route))
        if (route.role, route.path) not in paths:  # once per path (GET and HEAD share it)
            paths.add((route.role, route.path))
            for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "BREW"):
                add(f"method: {method}", b"{}" if method != "OPTIONS" else None,
                    method=method)
    return probes


QUERY_VALUES: tuple[bytes, ...] = (
    b"abc", b"-1", b"0", b"1.5", b"1e999", b"NaN", b"inf", b"-inf", b"0x10", b"1" + b"0" * 399,
    b"9" * 5000, b"99999999999999999999", b"%00", b"%ff", b"%ff%fe", b"", b"%20", b"+1",
    b"1;DROP%20TABLE%20results", b"'", b"%ed%a0%80", b"x" * 4000)
PATH_VALUES: tuple[bytes, ...] = (
    b"%00", b"%ff", b"%ff%fe", b"%ed%a0%80", b"%2e%2e", b"..%2f..%2fetc%2fpasswd", b"%zz",
    b"%", b"x" * 4000, b"%20", b"a%2Fb", b"'%22;--", b"%e2%80%ae", b"\xff", b"%0d%0aX:%20y")
HEADER_VALUES: tuple[bytes, ...] = (
    b"NaN", b"1e999", b"1" + b"0" * 399, b"-1", b"\xff\xfe", b"x" * 4000, b"", b"\x7f",
    b"Bearer " + S)


def _show(value: bytes) -> str:
    """A value for a label: short, bytes escaped, the secret masked."""
    text = repr(value.replace(S, b"<secret>"))[2:-1]
    return text if len(text) <= 24 else f"{text[:12]}…({len(value)} bytes)"


def _get_battery(cluster: Cluster, route: Route) -> list[Probe]:
    """A read endpoint: every query parameter its handler reads, every path parameter and
    every header it reads, each given garbage (the others valid)."""
    probes: list[Probe] = []
    auth = [GOOD_AUTH]

    def add(label: str, **kw: Any) -> None:
        probes.append(_probe(cluster, route, label, kw.pop("headers", auth), None, **kw))

    for name in route.query:
        for value in QUERY_VALUES:
            q = b"?" + name.encode() + b"=" + value
            add(f"query: {name}={_show(value)}", target=_target(route, query=q))
        add(f"query: {name} twice", target=_target(route, query=b"?" + name.encode()
                                                   + b"=1&" + name.encode() + b"=abc"))
    for label, q in (("empty", b"?"), ("1000 ampersands", b"?" + b"&" * 1000),
                     ("%ff name", b"?%ff=%ff"), ("= only", b"?="),
                     ("unknown", b"?zz_unknown=1"), ("fragment", b"#frag")):
        add(f"query: {label}", target=_target(route, query=q))
    for name in route.params:
        for value in PATH_VALUES:
            add(f"path: {{{name}}}={_show(value)}",
                target=_target(route, {name: value}))
    for name in route.headers:
        for value in HEADER_VALUES:
            others = [(h.encode(), b"1") for h in route.headers if h != name]
            add(f"header: {name}: {_show(value)}",
                headers=[*auth, *others, (name.encode(), value)])
    probes.append(_probe(cluster, route, "body: JSON on a read", [*auth, JSON_TYPE],
                         b'{"a": 1}'))
    probes.append(_probe(cluster, route, "body: chunked garbage on a read", [*auth],
                         None, stream=1 << 20))
    return probes


# --- the tests -------------------------------------------------------------------------------


def test_the_route_table_covers_every_role(routes: list[Route]) -> None:
    """Generated, not listed: each role's common endpoints are there, and every endpoint that
    changes state reads a model (else its bodies could not be built)."""
    by_role: dict[str, set[str]] = {}
    for route in routes:
        by_role.setdefault(route.role, set()).add(f"{route.method} {route.path}")
    assert sorted(by_role) == sorted(["arbiter", "scheduler", "poller", "dataserver",
                                      "receiver"])
    for role, paths in by_role.items():
        assert {"GET /ping", "GET /status", "GET /metrics", "POST /dispatch"} <= paths, role
    no_model = [str(r) for r in routes if r.method == "POST" and r.model is None]
    assert not no_model, f"POST routes whose handler reads no model via read_model: {no_model}"
    receiver = {r.path: r.max_body for r in routes if r.role == "receiver"}
    assert receiver["/api/results"] == 8 * 1024 * 1024
    assert receiver["/dispatch"] == 256 * 1024 * 1024


def test_without_the_secret_nothing_changes(cluster: Cluster, routes: list[Route],
                                            tally: Tally, watches: dict[str, LogWatch]
                                            ) -> None:
    before = _quiet_snapshot(cluster)
    outcomes = run(unauthenticated(cluster, routes), _addresses(cluster), watches, SECRET,
                   tally)
    after = observable(cluster)
    changed = _diff(before, after)
    assert not changed, "requests without the secret changed state:\n  " + "\n  ".join(
        changed)
    _assert_clean(cluster, outcomes, "requests without a valid secret")


def test_malformed_http_is_refused_cleanly(cluster: Cluster, routes: list[Route],
                                           tally: Tally, watches: dict[str, LogWatch]
                                           ) -> None:
    before = _quiet_snapshot(cluster)
    outcomes = run(malformed_http(cluster, routes), _addresses(cluster), watches, SECRET,
                   tally)
    changed = _diff(before, observable(cluster))
    assert not changed, "malformed HTTP changed state:\n  " + "\n  ".join(changed)
    _assert_clean(cluster, outcomes, "malformed HTTP")


def test_authenticated_garbage_gets_a_4xx(cluster: Cluster, routes: list[Route],
                                          tally: Tally, watches: dict[str, LogWatch]) -> None:
    outcomes = run(authenticated(cluster, routes), _addresses(cluster), watches, SECRET,
                   tally)
    _assert_clean(cluster, outcomes, "authenticated garbage")


def test_every_daemon_still_serves_and_no_log_has_the_secret(
        cluster: Cluster, tally: Tally, watches: dict[str, LogWatch]) -> None:
    problems: list[str] = []
    for name in cluster.daemons:
        for path in ("/ping", "/status", "/metrics"):
            try:
                status, body = cluster.request(name, "GET", path, timeout=5)
            except OSError as exc:
                status, body = 0, str(exc)
            if status != 200:
                problems.append(f"{name} GET {path}: {status} {str(body)[:200]}")
            elif path == "/status" and len(str(body.get("epoch"))) > 19:
                # what an int64 (SQLite, a float in /metrics) cannot hold
                problems.append(f"{name} now holds an epoch of {len(str(body['epoch']))} "
                                "digits (taken from an authenticated request)")
    for name, watch in watches.items():
        stray = bad_lines(watch.new())
        tally.stray[name] += stray
        problems += [f"{name} log, after the battery: {line[:300]}" for line in stray]
        if SECRET in cluster.log(name):
            problems.append(f"{name}: the secret is in the log")
    summary = tally.summary()
    print("BADINPUT " + json.dumps(summary))
    assert not problems, "\n".join(problems)
    assert summary["5xx"] == 0 and summary["tracebacks"] == 0, summary

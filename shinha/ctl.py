"""Operator commands that talk to a running cluster: status, send-result, command (and the
arbiter calls of `shinha db switchover|promote`).

They read the main file for the daemons' addresses and the cluster secret, and use plain
urllib: a CLI call is one request, and it should start fast.
"""

from __future__ import annotations

import json
import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shinha.config import load_config
from shinha.config.daemons import DaemonLink
from shinha.config.loader import Config
from shinha.errors import ShinhaError
from shinha.wire import (
    Accepted,
    ClusterView,
    CommandLines,
    DatabaseView,
    NodeStatus,
    PassiveBatch,
    PassiveResult,
)

M = TypeVar("M", bound=BaseModel)


class CtlError(ShinhaError):
    """A control command failed (no daemon answered, a daemon refused)."""


def load_tree(main_file: str) -> Config:
    """The loaded tree of `main_file`; CtlError when it has errors."""
    result = load_config(main_file)
    if result.config is None or not result.ok:
        raise CtlError("the configuration has errors; run: shinha check-config " + main_file)
    return result.config


def _url(d: DaemonLink, path: str) -> str:
    return f"{'https' if d.use_ssl else 'http'}://{d.address}:{d.listen_port}{path}"


def request(config: Config, d: DaemonLink, method: str, path: str,
            body: BaseModel | None = None, timeout: float = 5.0) -> Any:
    """One call to daemon `d`; its JSON answer. CtlError when it cannot be reached, or
    refuses (then with the message of its error body)."""
    data = body.model_dump_json().encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if method != "GET":
        # Only state-changing endpoints check the secret: never send it to the others.
        headers["Authorization"] = f"Bearer {config.main.cluster_secret}"
    req = urllib.request.Request(_url(d, path), data=data, method=method, headers=headers)
    ctx = None
    if d.use_ssl:
        ca = config.main.ca_cert
        if ca and not Path(ca).is_absolute():
            ca = str(Path(config.main_file).parent / ca)
        ctx = ssl.create_default_context(cafile=ca or None)
        ctx.check_hostname = d.hard_ssl_name_check
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        try:
            message = str(json.loads(text)["message"])
        except (ValueError, KeyError, TypeError):
            message = text[:300]
        raise CtlError(f"{d.role} {d.name} answered {exc.code}: {message}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise CtlError(f"{d.role} {d.name} at {_url(d, '')} unreachable: {exc}") from None


def body(model: type[M], what: str, **fields: Any) -> M:
    """A request body; CtlError naming the field when the operator's values do not fit."""
    try:
        return model(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise CtlError(f"{what}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def answer(model: type[M], value: Any, d: DaemonLink, path: str) -> M:
    """A daemon's answer as its model; CtlError when it is not (another shinha version)."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise CtlError(f"{d.role} {d.name}: unexpected answer to {path} ("
                       f"{'.'.join(map(str, err['loc']))}: {err['msg']}); is it the same "
                       "shinha version?") from None


def _first_answer(config: Config, role: str, method: str, path: str, reply: type[M],
                  body: BaseModel | None = None, name: str | None = None) -> M:
    daemons = sorted(config.daemons.get(role, {}).values(), key=lambda d: d.spare)
    if name:
        daemons = [d for d in daemons if d.name == name]
    errors: list[str] = []
    for d in daemons:
        try:
            value = request(config, d, method, path, body)
        except CtlError as exc:
            errors.append(str(exc))
            continue
        # It answered: an answer not of the model is no reason to send the body elsewhere.
        return answer(reply, value, d, path)
    raise CtlError("no " + role + " answered:\n  " + "\n  ".join(errors or ["none defined"]))


def cluster_view(config: Config, name: str | None = None) -> tuple[DaemonLink, ClusterView]:
    """The arbiter to ask and its `/cluster` view: the leading one (else the last that
    answered), or arbiter `name`."""
    arbiters = sorted(config.daemons.get("arbiter", {}).values(), key=lambda d: d.spare)
    if name:
        arbiters = [d for d in arbiters if d.name == name]
        if not arbiters:
            raise CtlError(f"no arbiter named {name} in {config.main_file}")
    found: tuple[DaemonLink, ClusterView] | None = None
    unexpected: CtlError | None = None
    for d in arbiters:
        try:
            value = request(config, d, "GET", "/cluster")
        except CtlError:
            continue
        try:
            candidate = answer(ClusterView, value, d, "/cluster")
        except CtlError as exc:
            unexpected = exc
            continue
        found = (d, candidate)
        if candidate.leading:
            break
    if found is None:
        raise unexpected or CtlError("no arbiter answered (is the cluster running? "
                                     "`shinha run`)")
    return found


def status(main_file: str, as_json: bool) -> int:
    """Print the cluster view of the leading arbiter."""
    config = load_tree(main_file)
    view = cluster_view(config)[1]
    if as_json:
        json.dump(view.model_dump(mode="json"), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_view(view)
    return 0 if all(d.alive for d in view.daemons if not d.spare) else 1


def print_view(view: ClusterView) -> None:
    """The cluster view as `shinha status` shows it."""
    now = time.time()
    print(f"arbiter {view.arbiter}  epoch {view.epoch}  config {view.config_hash}"
          f"  {'leading' if view.leading else 'NOT leading'}")
    header = f"{'ROLE':<11}{'NAME':<22}{'ADDRESS':<22}{'STATE':<8}{'SPARE':<6}{'SEEN':<8}HOLDS"
    print(header)
    for d in view.daemons:
        seen = d.last_contact
        ago = f"{now - seen:.0f}s" if seen else "never"
        state = "alive" if d.alive else "DEAD"
        print(f"{d.role:<11}{d.name:<22}{d.address + ':' + str(d.port):<22}"
              f"{state:<8}{'yes' if d.spare else 'no':<6}{ago:<8}{d.holds}"
              f"{'  ' + d.degraded if d.degraded else ''}")
    if view.database:
        _print_database(view.database)
    for problem in view.problems:
        print(f"problem: {problem}")


def _print_database(database: DatabaseView) -> None:
    """The MariaDB tier: what the arbiter publishes, then every node as it last probed it."""
    topology = database.topology
    print(f"\ndatabase primary {topology.primary or 'NONE (writes wait)'}  database epoch "
          f"{topology.epoch}" + ("  UNPROTECTED" if topology.unprotected else ""))
    print(f"{'NODE':<22}{'ROLE':<10}{'REACHABLE':<10}{'RO':<4}{'GTID':<24}{'LAG':<6}"
          f"{'IO/SQL':<18}{'EPOCH':<7}NOTE")
    for n in database.nodes:
        role = ("primary" if n.node == topology.primary else
                "diverged" if n.node in topology.diverged else
                "replica" if n.is_replica else "-")
        reachable = "yes" if n.reachable else "NO"
        ro, lag, threads, epoch, note = node_cells(n)
        if role == "primary" and topology.unprotected:
            note = "unprotected: semi-sync fell back to asynchronous (no replica acknowledged "\
                   "in time)"
        gtid = n.gtid_current_pos or "-"
        print(f"{n.node:<22}{role:<10}{reachable:<10}{ro:<4}{gtid:<24}{lag:<6}{threads:<18}"
              f"{epoch:<7}{note[:100]}")


def node_cells(n: NodeStatus) -> tuple[str, str, str, str, str]:
    """A database node's read-only, lag, IO/SQL threads, database epoch and last error, as
    `shinha status` and `shinha db status` show them."""
    ro = "-" if n.read_only is None else ("yes" if n.read_only else "no")
    lag = "-" if n.seconds_behind is None else f"{n.seconds_behind}s"
    threads = (f"{n.io_state or 'No'}/{'Yes' if n.sql_running else 'No'}"
               if n.is_replica else "-")
    epoch = "-" if n.db_epoch is None else str(n.db_epoch)
    return ro, lag, threads, epoch, n.error or n.last_io_error or n.last_sql_error


def send_result(main_file: str, host: str, service: str, code: int, output: str,
                receiver: str | None) -> int:
    config = load_tree(main_file)
    result = body(PassiveResult, "send-result", host=host, service=service, return_code=code,
                  output=output)
    reply = _first_answer(config, "receiver", "POST", "/api/results", Accepted,
                          PassiveBatch(results=[result]), receiver)
    print(f"accepted: {reply.accepted} ({', '.join(reply.ids)})")
    return 0


def command(main_file: str, lines: list[str], receiver: str | None) -> int:
    config = load_tree(main_file)
    reply = _first_answer(config, "receiver", "POST", "/api/commands", Accepted,
                          body(CommandLines, "command", commands=lines), receiver)
    print(f"accepted: {reply.accepted} ({', '.join(reply.ids)})")
    return 0

"""Operator commands that talk to a running cluster: status, send-result, command.

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
from typing import Any

from shinha.config import load_config
from shinha.config.daemons import DaemonLink
from shinha.config.loader import Config
from shinha.errors import ShinhaError


class CtlError(ShinhaError):
    """A control command failed (no daemon answered, a daemon refused)."""


def _load(main_file: str) -> Config:
    result = load_config(main_file)
    if result.config is None or not result.ok:
        raise CtlError("the configuration has errors; run: shinha check-config " + main_file)
    return result.config


def _url(d: DaemonLink, path: str) -> str:
    return f"{'https' if d.use_ssl else 'http'}://{d.address}:{d.listen_port}{path}"


def _request(config: Config, d: DaemonLink, method: str, path: str,
             body: dict[str, Any] | None = None, timeout: float = 5.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
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
        raise CtlError(f"{d.role} {d.name} answered {exc.code}: "
                       f"{exc.read().decode(errors='replace')[:300]}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise CtlError(f"{d.role} {d.name} at {_url(d, '')} unreachable: {exc}") from None


def _first_answer(config: Config, role: str, method: str, path: str,
                  body: dict[str, Any] | None = None, name: str | None = None) -> Any:
    daemons = sorted(config.daemons.get(role, {}).values(), key=lambda d: d.spare)
    if name:
        daemons = [d for d in daemons if d.name == name]
    errors: list[str] = []
    for d in daemons:
        try:
            return _request(config, d, method, path, body)
        except CtlError as exc:
            errors.append(str(exc))
    raise CtlError("no " + role + " answered:\n  " + "\n  ".join(errors or ["none defined"]))


def status(main_file: str, as_json: bool) -> int:
    """Print the cluster view of the leading arbiter."""
    config = _load(main_file)
    view = None
    for d in sorted(config.daemons.get("arbiter", {}).values(), key=lambda d: d.spare):
        try:
            candidate = _request(config, d, "GET", "/cluster")
        except CtlError:
            continue
        view = candidate
        if candidate.get("leading"):
            break
    if view is None:
        raise CtlError("no arbiter answered (is the cluster running? `shinha run`)")
    if as_json:
        json.dump(view, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    now = time.time()
    print(f"arbiter {view['arbiter']}  epoch {view['epoch']}  config {view['config_hash']}"
          f"  {'leading' if view['leading'] else 'NOT leading'}")
    header = f"{'ROLE':<11}{'NAME':<22}{'ADDRESS':<22}{'STATE':<8}{'SPARE':<6}{'SEEN':<8}HOLDS"
    print(header)
    for d in view["daemons"]:
        seen = d.get("last_contact")
        ago = f"{now - seen:.0f}s" if seen else "never"
        state = "alive" if d["alive"] else "DEAD"
        print(f"{d['role']:<11}{d['name']:<22}{d['address'] + ':' + str(d['port']):<22}"
              f"{state:<8}{'yes' if d['spare'] else 'no':<6}{ago:<8}{d.get('holds', '')}"
              f"{'  ' + d['degraded'] if d.get('degraded') else ''}")
    for problem in view.get("problems", []):
        print(f"problem: {problem}")
    return 0 if all(d["alive"] for d in view["daemons"] if not d["spare"]) else 1


def send_result(main_file: str, host: str, service: str, code: int, output: str,
                receiver: str | None) -> int:
    config = _load(main_file)
    body = {"results": [{"host": host, "service": service, "return_code": code,
                         "output": output}]}
    reply = _first_answer(config, "receiver", "POST", "/api/results", body, receiver)
    print(f"accepted: {reply['accepted']} ({', '.join(reply['ids'])})")
    return 0


def command(main_file: str, lines: list[str], receiver: str | None) -> int:
    config = _load(main_file)
    reply = _first_answer(config, "receiver", "POST", "/api/commands", {"commands": lines},
                          receiver)
    print(f"accepted: {reply['accepted']} ({', '.join(reply['ids'])})")
    return 0

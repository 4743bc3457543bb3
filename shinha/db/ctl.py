"""`shinha db init|status|promote|switchover|repoint|rejoin`: the operator's commands for the
MariaDB nodes of the data tier. They read the `module_type mariadb` module of the main file
(the same etc/ tree on every host) and talk to the nodes with its admin account — except
`switchover` and `promote`, which ask the leading arbiter (`run_change`): it alone publishes
the primary and the database epoch the data-servers write under. `--direct` acts on the
nodes instead, for when no arbiter runs.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
from typing import TYPE_CHECKING, Literal, TextIO

from shinha import ctl
from shinha.config import load_config
from shinha.db.admin import Promotion, promote, repoint, switchover
from shinha.db.failover import (
    cluster_identity,
    elect,
    history,
    next_epoch,
    primaries,
    replication_problem,
    role,
)
from shinha.db.options import MariadbOptions, Node, module_options
from shinha.db.probe import node_of, probe_all
from shinha.db.rejoin import RejoinReport, rejoin
from shinha.db.setup import init
from shinha.errors import ConfigError, DatabaseError
from shinha.wire import (
    DatabaseChange,
    DatabaseChangeReply,
    DatabaseStatus,
    NodeReport,
    NodeStatus,
)

if TYPE_CHECKING:
    from shinha.config.loader import Config

#: Where `shinha db init --bootstrap-user` takes the password from (never a command line).
BOOTSTRAP_PASSWORD_ENV = "SHINHA_DB_BOOTSTRAP_PASSWORD"


def load_options(main_file: str, module: str | None = None) -> MariadbOptions:
    """The options of the MariaDB storage module of the tree (`module` when several)."""
    result = load_config(main_file)
    if result.config is None or not result.ok:
        raise ConfigError(f"the configuration has errors; run: shinha check-config {main_file}")
    return options_of(result.config, module)


def options_of(config: Config, module: str | None = None) -> MariadbOptions:
    """The options of the MariaDB storage module of a loaded tree (see load_options)."""
    main_file = config.main_file
    mariadb = {name: m for name, m in config.modules.items() if m.module_type == "mariadb"}
    if module:
        if module not in config.modules:
            raise ConfigError(f"{main_file}: no module named {module!r}"
                              + (f" (mariadb modules: {', '.join(sorted(mariadb))})"
                                 if mariadb else ""))
        if module not in mariadb:
            raise ConfigError(f"module {module} is module_type "
                              f"{config.modules[module].module_type}, not mariadb")
        name = module
    else:
        if not mariadb:
            raise ConfigError(f"{main_file}: no module with module_type mariadb: define one "
                              "and list it in the data-servers' modules "
                              "(docs/high-availability.md)")
        used = {n for d in config.daemons.get("dataserver", {}).values() for n in d.modules}
        names = sorted(n for n in mariadb if n in used) or sorted(mariadb)
        if len(names) > 1:
            raise ConfigError("several mariadb modules (" + ", ".join(names) + "): choose "
                              "one with --module NAME")
        name = names[0]
    return module_options(mariadb[name], config.resources)


def parse_node(options: MariadbOptions, text: str) -> Node:
    """A node of ha_hosts by `host:port` (or `host` when its port is unambiguous)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, ""
    for node in options.ha_hosts:
        if node.host == host and (not port or str(node.port) == port):
            return node
    raise ConfigError(f"{text} is not in ha_hosts of module {options.module_name} ("
                      + ", ".join(n.name for n in options.ha_hosts) + ")")


def run_init(options: MariadbOptions, force: bool, bootstrap_user: str | None,
             out: TextIO | None = None) -> int:
    """`shinha db init`."""
    out = out or sys.stdout
    password = None
    if bootstrap_user:
        password = os.environ.get(BOOTSTRAP_PASSWORD_ENV)
        if password is None:
            if not sys.stdin.isatty():
                raise ConfigError(f"--bootstrap-user {bootstrap_user}: set its password in "
                                  f"${BOOTSTRAP_PASSWORD_ENV}")
            password = getpass.getpass(f"password of {bootstrap_user}: ")
    report = asyncio.run(init(options, force, bootstrap_user=bootstrap_user,
                              bootstrap_password=password))
    for warning in report.warnings:
        out.write(f"warning: {warning}\n")
    out.write(f"database cluster {report.cluster_id}: primary {report.primary.name}, "
              f"GTID {report.gtid_pos}\n")
    for node in report.replicas:
        out.write(f"  replica {node.name}: cloned, replicating (read_only=1, GTID slave_pos"
                  f"{', semi-sync' if report.semi_sync else ''})\n")
    return 0


def status_view(options: MariadbOptions, statuses: list[NodeStatus]) -> DatabaseStatus:
    """The document of `shinha db status --json`."""
    cluster = cluster_identity(statuses)
    heads = primaries(statuses, cluster)
    nodes: list[NodeReport] = []
    problems: list[str] = []
    for s in statuses:
        node = NodeReport(**s.model_dump(), role=role(s, statuses, cluster),
                          problem=replication_problem(s))
        nodes.append(node)
        if not s.reachable:
            problems.append(f"{s.node}: {s.error}")
        elif node.problem:
            problems.append(node.problem)
        elif node.role in ("diverged", "foreign", "uninitialised"):
            problems.append(f"{s.node} is {node.role}: {_ROLE_ADVICE[node.role]}"
                            .format(node=s.node, cluster=s.cluster_id or "none"))
        if node.role == "primary" and s.semi_sync_master_enabled \
                and s.semi_sync_master_status is False:
            problems.append(f"{s.node}: semi-sync fell back to asynchronous "
                            "(unprotected: no replica acknowledged in time)")
    if not heads:
        problems.append("no writable primary answers")
    elif len(heads) > 1:
        problems.append("split brain: several writable primaries ("
                        + ", ".join(h.node for h in heads) + ")")
    return DatabaseStatus(
        module=options.module_name, database=options.database, cluster_id=cluster,
        primary=heads[0].node if len(heads) == 1 else None,
        db_epoch=max((s.db_epoch for s in statuses if s.db_epoch is not None), default=None),
        nodes=nodes, problems=problems)


#: What to do about a node that is neither the primary nor a replica of it.
_ROLE_ADVICE = {
    "diverged": "it holds transactions the primary lacks and is never used; shinha db "
                "rejoin {node} salvages them and makes it a replica",
    "foreign": "it belongs to another cluster ({cluster}) and is never used; remove it "
               "from ha_hosts, or make it a member with shinha db init --force",
    "uninitialised": "it holds no shinha database; shinha db init --force clones the "
                     "primary to it",
}


def run_status(options: MariadbOptions, as_json: bool, out: TextIO | None = None) -> int:
    """`shinha db status`: exit 0 when one primary answers and no node has a problem."""
    out = out or sys.stdout
    view = status_view(options, asyncio.run(probe_all(options)))
    code = 0 if view.primary and not view.problems else 1
    if as_json:
        json.dump(view.model_dump(mode="json"), out, indent=2)
        out.write("\n")
        return code
    out.write(f"module {view.module}  database {view.database}  cluster "
              f"{view.cluster_id or '-'}  primary {view.primary or '-'}  database epoch "
              f"{view.db_epoch if view.db_epoch is not None else '-'}\n")
    out.write(f"{'NODE':<22}{'ROLE':<14}{'RO':<4}{'GTID':<24}{'LAG':<6}{'IO/SQL':<18}"
              f"{'EPOCH':<7}ERROR\n")
    for n in view.nodes:
        gtid = str(history(n)) if n.reachable else "-"
        ro, lag, threads, epoch, error = ctl.node_cells(n)
        out.write(f"{n.node:<22}{n.role:<14}"
                  f"{ro:<4}{gtid or '-':<24}{lag:<6}{threads:<18}{epoch:<7}{error[:120]}\n")
    for problem in view.problems:
        out.write(f"problem: {problem}\n")
    return code


def _report(promotion: Promotion, what: str, out: TextIO) -> None:
    out.write(f"{what} {promotion.primary.name}, database epoch {promotion.epoch} (written to "
              f"its shinha_fence; the leading arbiter publishes epoch {promotion.epoch} to the "
              "data-servers, which write to no other node from then on)\n")
    for node in promotion.repointed:
        out.write(f"  re-pointed {node.name} at it\n")
    for note in promotion.skipped:
        out.write(f"  not re-pointed: {note}\n")


def run_promote(options: MariadbOptions, node_text: str | None, timeout: float,
                out: TextIO | None = None) -> int:
    """`shinha db promote [NODE]`: epoch = the highest any reachable node holds + 1."""
    out = out or sys.stdout

    async def go() -> Promotion:
        statuses = await probe_all(options)
        node = parse_node(options, node_text) if node_text else _elected(statuses)
        return await promote(options, node, next_epoch(statuses), timeout=timeout)

    _report(asyncio.run(go()), "promoted", out)
    return 0


def _elected(statuses: list[NodeStatus]) -> Node:
    sources = [s.replicates_from for s in statuses if s.reachable and s.is_replica]
    if not sources:
        raise DatabaseError(statuses[0].node, "no replica answers: nothing to promote")
    old = node_of(max(sources, key=sources.count))
    election = elect(statuses, old)
    if election.candidate is None:
        raise DatabaseError(old.name, "no candidate: " + election.reason)
    return election.candidate


def run_switchover(options: MariadbOptions, node_text: str, timeout: float,
                   out: TextIO | None = None) -> int:
    """`shinha db switchover NODE`."""
    out = out or sys.stdout

    async def go() -> Promotion:
        node = parse_node(options, node_text)
        statuses = await probe_all(options)
        return await switchover(options, node, next_epoch(statuses), timeout=timeout)

    _report(asyncio.run(go()), "switched over to", out)
    return 0


def run_repoint(options: MariadbOptions, node_text: str, primary_text: str | None,
                timeout: float, out: TextIO | None = None) -> int:
    """`shinha db repoint NODE [--primary P]`: make NODE a replica of the primary."""
    out = out or sys.stdout

    async def go() -> Node:
        node = parse_node(options, node_text)
        primary = await _the_primary(options, node, primary_text)
        await repoint(options, node, primary, timeout=timeout)
        return primary

    primary = asyncio.run(go())
    out.write(f"{node_text} replicates from {primary.name} (read_only=1)\n")
    return 0


def run_rejoin(options: MariadbOptions, node_text: str, primary_text: str | None,
               timeout: float, out: TextIO | None = None) -> int:
    """`shinha db rejoin NODE [--primary P]`: salvage what a diverged NODE alone holds
    into the primary, then make it a replica again (shinha/db/rejoin.py)."""
    out = out or sys.stdout

    async def go() -> RejoinReport:
        node = parse_node(options, node_text)
        primary = await _the_primary(options, node, primary_text)
        return await rejoin(options, node, primary, timeout=timeout)

    for line in asyncio.run(go()).lines():
        out.write(line + "\n")
    return 0


async def _the_primary(options: MariadbOptions, node: Node, primary_text: str | None) -> Node:
    """The primary named, else the one writable primary of the cluster."""
    if primary_text:
        return parse_node(options, primary_text)
    statuses = await probe_all(options)
    heads = primaries(statuses, cluster_identity(statuses))
    if len(heads) != 1:
        raise DatabaseError(node.name, f"{len(heads)} writable primaries answer: say which "
                            "with --primary")
    return node_of(heads[0].node)


def run_change(main_file: str, module: str | None, action: Literal["switchover", "promote"],
               node_text: str | None, timeout: float, arbiter: str | None = None,
               out: TextIO | None = None) -> int:
    """`shinha db switchover|promote NODE`: ask the leading arbiter (or arbiter `arbiter`)
    to make NODE the primary; it publishes the new primary and database epoch to the
    data-servers before it answers. A tree that defines no arbiter acts directly."""
    out = out or sys.stdout
    config = ctl.load_tree(main_file)
    options = options_of(config, module)
    if not config.daemons.get("arbiter"):
        sys.stderr.write(f"{main_file} defines no arbiter: acting on the database nodes "
                         "directly (--direct)\n")
        if action == "switchover":
            return run_switchover(options, node_text or "", timeout, out)
        return run_promote(options, node_text, timeout, out)
    if not node_text:
        raise ConfigError("name the node to promote: shinha db promote NODE (shinha status "
                          "lists every node); --direct promotes the most advanced replica "
                          "without the arbiter")
    node = parse_node(options, node_text)
    link, _ = ctl.cluster_view(config, arbiter)
    change = ctl.body(DatabaseChange, f"db {action}", node=node.name, timeout=timeout)
    path = f"/db/{action}"
    reply = ctl.answer(DatabaseChangeReply, ctl.request(config, link, "POST", path, change,
                                                        timeout=timeout + 30.0), link, path)
    old = reply.old_primary or "none published"
    what = (f"switched over from {old} to {reply.primary}" if action == "switchover"
            else f"promoted {reply.primary} (primary was {old})")
    out.write(f"{what} in {reply.seconds:.2f} s: database epoch {reply.epoch} (was "
              f"{reply.previous_epoch}), published by arbiter {link.name} to the "
              "data-servers\n")
    for name in reply.repointed:
        out.write(f"  re-pointed {name} at it\n")
    for note in reply.skipped:
        out.write(f"  not re-pointed: {note}\n")
    return 0

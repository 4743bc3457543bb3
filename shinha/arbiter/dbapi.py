"""The arbiter's database endpoints, `POST /db/switchover` and `POST /db/promote`: what
`shinha db switchover|promote NODE` ask. Only the leading arbiter acts — it alone publishes
the primary and the database epoch that the data-servers write under — so that the change
reaches every data-server in a dispatch before the endpoint answers. An arbiter that does not
lead answers 409 and names the one that does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Literal

from shinha.db.options import MariadbOptions, Node
from shinha.errors import (
    DatabaseError,
    DatabaseFenced,
    DatabaseUnreachable,
    RequestError,
    ShinhaError,
)
from shinha.wire import DatabaseChange, DatabaseChangeReply, NotLeading

if TYPE_CHECKING:
    from shinha.arbiter.daemon import ArbiterDaemon
    from shinha.arbiter.dbwatch import DatabaseWatch
    from shinha.db.admin import Promotion

log = logging.getLogger(__name__)

Action = Literal["switchover", "promote"]


class NotLeadingError(ShinhaError):
    """This arbiter does not lead: only the leading one changes the database primary
    (answered 409 with `reply`)."""

    def __init__(self, reply: NotLeading) -> None:
        super().__init__(reply.message)
        self.reply = reply


class DatabaseApi:
    """The handlers, on the arbiter they serve."""

    def __init__(self, arbiter: ArbiterDaemon) -> None:
        self.arbiter = arbiter

    async def change(self, action: Action, change: DatabaseChange) -> DatabaseChangeReply:
        """Switch over (planned: a replica that has every transaction, nothing lost) or
        promote (the primary is lost; refused while another is writable); raise NotLeading
        on an arbiter that does not lead."""
        arbiter = self.arbiter
        watch, options = arbiter.dbwatch, arbiter.database
        if watch is None or options is None:
            raise RequestError(409, "no_database", "the data-servers of this cluster list no "
                               "module_type mariadb module: there is no database primary to "
                               "change")
        node = _node(options, change.node)
        if not arbiter.leading_now():
            raise NotLeadingError(_not_leading(arbiter))
        loop = asyncio.get_running_loop()
        started = loop.time()
        old, previous = watch.primary, watch.epoch
        log.warning("arbiter %s: %s to database node %s asked (primary %s, database epoch %d)",
                    arbiter.name, action, node.name, old.name if old else "unknown", previous)
        try:
            promotion = await _act(watch, action, node, change.timeout)
        except DatabaseError as exc:
            status, error = _status_of(exc)
            log.warning("arbiter %s: %s to %s refused: %s", arbiter.name, action, node.name,
                        exc)
            raise RequestError(status, error, f"{action} to {node.name} not done: {exc}"
                               "; `shinha db status` shows where each node stands"
                               ) from None
        seconds = round(loop.time() - started, 3)
        return DatabaseChangeReply(
            action=action, old_primary=old.name if old else "", primary=node.name,
            previous_epoch=previous, epoch=promotion.epoch, seconds=seconds,
            repointed=[n.name for n in promotion.repointed], skipped=promotion.skipped)


async def _act(watch: DatabaseWatch, action: Action, node: Node, timeout: float) -> Promotion:
    if action == "switchover":
        return await watch.switchover(node, timeout)
    return await watch.promote(node, timeout)


def _node(options: MariadbOptions, text: str) -> Node:
    """The node of ha_hosts named `host:port`; a 400 naming the field otherwise."""
    for node in options.ha_hosts:
        if node.name == text:
            return node
    raise RequestError(400, "invalid", f"node: {text} is not in ha_hosts of module "
                       f"{options.module_name} ("
                       + ", ".join(n.name for n in options.ha_hosts) + ")", "node")


def _status_of(exc: DatabaseError) -> tuple[int, str]:
    """The HTTP status of a refused change: the node did not answer (503), the change ran
    out of time (504), the nodes' state forbids it (409)."""
    if isinstance(exc, DatabaseUnreachable):
        return 503, "database_unreachable"
    if isinstance(exc, DatabaseFenced):
        return 409, "database_fenced"
    # admin's deadlines all say "… within N s" (probe.py tells timeouts apart the same way).
    if " within " in str(exc):
        return 504, "database_timeout"
    return 409, "database_refused"


def _not_leading(arbiter: ArbiterDaemon) -> NotLeading:
    leader = known_leader(arbiter)
    where = (f"arbiter {leader} leads: ask it" if leader else
             "no arbiter is known to lead right now: wait for one to take the lead "
             "(shinha status)")
    others = [a for a in arbiter.config.daemons.get("arbiter", {}).values()
              if a.name != arbiter.name]
    body = NotLeading(leader=leader, message=f"arbiter {arbiter.name} does not lead, and only "
                      f"the leading arbiter changes the database primary: {where}"
                      + (" (" + ", ".join(f"{a.name} at {a.address}:{a.listen_port}"
                                          for a in others) + ")" if others else ""))
    return body


def known_leader(arbiter: ArbiterDaemon) -> str:
    """The arbiter the daemons last saw leading (their pings say who reached them last at
    their epoch), other than this one; '' when none did."""
    seen = [(r.leader_seen_ago, r.leader) for r in arbiter.last_ping.values()
            if r.leader and r.leader != arbiter.name and r.leader_seen_ago is not None]
    return min(seen)[1] if seen else ""

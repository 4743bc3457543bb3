"""The operator's first look: every daemon, alive or dead, what it holds (`GET /cluster`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shinha.wire import ClusterView, DaemonView, DatabaseView

if TYPE_CHECKING:
    from shinha.arbiter.daemon import ArbiterDaemon


def cluster_view(arbiter: ArbiterDaemon) -> ClusterView:
    """What `arbiter` knows of every daemon and of the database nodes, now."""
    views = [DaemonView(
        name=arbiter.name, role="arbiter", address=arbiter.link.address,
        port=arbiter.link.listen_port, host_name=arbiter.link.host_name, spare=arbiter.link.spare,
        alive=True, attempts=0, last_contact=arbiter.clock.time(), epoch=arbiter.epoch,
        config_hash=arbiter.config.config_hash,
        holds="leading" if arbiter.leading else "standby")]
    now = arbiter.clock.monotonic()
    for link in arbiter.arbiters.values():
        d = arbiter.definition_of_arbiter(link)
        # A spare only hears its master (heartbeats): alive while they come in.
        alive = link.alive and link.ever_seen if not arbiter.link.spare else (
            link.last_contact_mono is not None
            and now - link.last_contact_mono <= arbiter.window(link.name))
        views.append(DaemonView(
            name=link.name, role="arbiter", address=link.ref.address, port=link.ref.port,
            host_name=d.host_name, spare=d.spare, alive=alive,
            attempts=link.attempts, last_contact=link.last_contact_wall,
            epoch=link.epoch, config_hash=link.part_hash))
    for name, link in sorted(arbiter.links.items()):
        d = arbiter.definition(link)
        reply = arbiter.last_ping.get(name)
        holds = ""
        part = arbiter.assignment.parts.get(name)
        if part is not None:
            holds = f"part {part.part_id} ({len(part.hosts)} hosts, {len(part.services)} " \
                    "services)"
        if name in arbiter.assignment.standing_in:
            holds = f"standing in for {arbiter.assignment.standing_in[name]}" + (
                f": {holds}" if holds else "")
        views.append(DaemonView(
            name=name, role=link.ref.role, address=link.ref.address, port=link.ref.port,
            host_name=d.host_name, spare=d.spare, alive=link.alive and link.ever_seen,
            attempts=link.attempts, last_contact=link.last_contact_wall,
            epoch=reply.epoch if reply else 0,
            config_hash=reply.config_hash if reply else "", holds=holds,
            degraded=arbiter.assignment.degraded.get(name, "") or (
                f"loops retrying: {', '.join(reply.degraded)}"
                if reply and link.alive and reply.health == "degraded" else ""),
            in_sync=reply is not None and link.alive and not arbiter.needs_dispatch(link),
            election=(f"master {reply.election_master or 'nobody'} (term "
                      f"{reply.election_term})" + (f", down: {', '.join(reply.election_down)}"
                                                  if reply.election_down else ""))
            if reply and reply.role in ("poller", "dataserver") else ""))
    return ClusterView(arbiter=arbiter.name, epoch=arbiter.epoch,
                       config_hash=arbiter.config.config_hash, leading=arbiter.leading,
                       spare_config_mismatch=arbiter.owns().config_mismatch,
                       daemons=views, unplaced_hosts=len(arbiter.plan.unplaced_hosts),
                       unowned_checks=len(arbiter.plan.unowned_checks),
                       problems=arbiter.problems,
                       database=DatabaseView(
                           topology=arbiter.dbwatch.topology(),
                           nodes=arbiter.dbwatch.view()) if arbiter.dbwatch else None)

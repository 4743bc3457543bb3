"""What the leading arbiter sends the daemons: the fence, the topology, a scheduler's part;
and the heartbeat between arbiters."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shinha.config.objects import Command, Contact, Contactgroup, Host, Service
from shinha.config.timeperiod import Timeperiod
from shinha.wire.alerting import AlertSettings, Dependency, Escalation
from shinha.wire.base import DaemonRef, Fence, Finite, Int64, Wire
from shinha.wire.database import DatabaseTopology


class CheckSettings(Finite):
    """Main-file settings a scheduler needs to run its part."""

    interval_length: Int64 = 60
    service_check_timeout: Int64 = 60
    host_check_timeout: Int64 = 30
    service_check_timeout_state: Literal["c", "u", "w", "o"] = "c"
    max_plugins_output_length: Int64 = 8192


class SchedulerPart(Finite):
    """One scheduler's share of the monitored objects, everything it needs to run them."""

    part_id: str
    part_hash: str
    realm: str
    hosts: list[Host]
    services: list[Service]
    commands: list[Command]
    timeperiods: list[Timeperiod]
    resources: dict[str, str] = Field(default_factory=dict, repr=False)
    settings: CheckSettings = Field(default_factory=CheckSettings)
    contacts: list[Contact] = Field(default_factory=list, description="The contacts its hosts, "
                                    "services and escalations name (groups expanded).")
    contactgroups: list[Contactgroup] = Field(default_factory=list, description="The contact "
                                              "groups they name, members resolved.")
    escalations: list[Escalation] = Field(default_factory=list)
    dependencies: list[Dependency] = Field(default_factory=list, description="Dependencies "
                                           "whose dependent is in this part (its master is "
                                           "too: the arbiter keeps them together).")
    alerting: AlertSettings = Field(default_factory=AlertSettings)


class Topology(Finite):
    """Where the active daemons are and who owns which host; sent to every daemon."""

    schedulers: list[DaemonRef] = Field(default_factory=list)
    pollers: list[DaemonRef] = Field(default_factory=list)
    dataservers: list[DaemonRef] = Field(default_factory=list)
    receivers: list[DaemonRef] = Field(default_factory=list)
    host_owner: dict[str, str] = Field(default_factory=dict, description="host -> scheduler")
    poller_standins: dict[str, str] = Field(default_factory=dict, description="dead poller -> "
                                            "the spare that pulls its checks")
    database: DatabaseTopology | None = Field(None, description="The MariaDB tier, when the "
                                              "data-servers use one.")


class ReceiverCatalog(Finite):
    """What a receiver accepts at its door: every configured host and each host's services."""

    catalog_hash: str = Field(max_length=64)
    services: dict[str, list[str]] = Field(default_factory=dict, description="host -> the "
                                           "services it has (none: the host alone)")


class Dispatch(Wire):
    """What an arbiter sends a daemon: the fence, the topology, and for a scheduler its part."""

    fence: Fence
    topology: Topology
    part: SchedulerPart | None = None
    catalog: ReceiverCatalog | None = Field(None, description="Receivers: what they accept.")
    part_hash: str = Field("", max_length=64, description="The hash of the part (schedulers) "
                           "or catalog (receivers) to hold: sent alone, without the part or "
                           "catalog, to a daemon that holds it already.")


class DispatchReply(Wire):
    accepted: bool
    reconfigured: bool = Field(description="False when the daemon already held this part.")
    epoch: Int64
    part_hash: str = ""
    topology_hash: str = ""


class Heartbeat(Wire):
    """Master arbiter → spare, every second: 'I lead, at this epoch, with this config'."""

    fence: Fence


class HeartbeatReply(Wire):
    epoch: Int64
    leading: bool
    config_hash: str

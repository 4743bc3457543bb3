"""Typed models of the daemon definitions: arbiter, scheduler, poller, dataserver, receiver.

The properties are Shinken's (seconds for every interval here, unlike hosts and services),
plus Pandora FMS's `master` token and `server_threshold`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from shinha.config.objects import ConfigObject, Names

DEFAULT_PORTS = {
    "arbiter": 7770,
    "scheduler": 7768,
    "poller": 7771,
    "dataserver": 7772,
    "receiver": 7773,
}

_SHINKEN_IGNORED = frozenset({
    "satellitemap", "use_timezone", "lock_file", "local_log", "log_level", "workdir",
    "pidfile", "idontcareaboutsecurity", "daemon_enabled", "max_queue_size",
    "max_plugins_output_length", "graceful_enabled", "harakiri_threshold", "q_factor",
    "statsd_host", "statsd_port", "statsd_prefix", "statsd_enabled",
})


class DaemonLink(ConfigObject):
    """What every daemon definition has: where it runs and how it is watched."""

    role: ClassVar[str] = ""
    list_properties: ClassVar[frozenset[str]] = frozenset({"modules"})
    ignored_properties: ClassVar[frozenset[str]] = _SHINKEN_IGNORED

    host_name: str = Field("localhost", description="Machine that runs the daemon "
                           "(`shinha run` starts the daemons whose host_name is this machine's "
                           "hostname, or --host).")
    address: str = Field("localhost", description="Address the daemon listens on and peers "
                         "reach it at.")
    port: int = Field(0, ge=0, le=65535, description="TCP port; 0: the role's default "
                      "(arbiter 7770, scheduler 7768, poller 7771, dataserver 7772, "
                      "receiver 7773).")
    spare: bool = Field(False, description="A spare only works when a dead daemon of its role "
                        "is replaced by it (or, for an arbiter, when the master is gone).")
    realm: str = Field("", description="Realm it serves; empty: the default realm.")
    modules: Names = Field((), description="Modules it loads.")
    timeout: int = Field(3, ge=1, description="Seconds before a ping or light call to it fails.")
    data_timeout: int = Field(120, ge=1, description="Seconds before a configuration or data "
                              "transfer to it fails.")
    max_check_attempts: int = Field(3, ge=1, description="Failed checks before it is "
                                    "declared dead.")
    check_interval: int = Field(60, ge=1, description="Seconds between two checks of it.")
    polling_interval: int = Field(1, ge=1, description="Seconds between polls of its peers.")
    manage_sub_realms: bool = Field(True, description="Also serve the realm's sub-realms.")
    manage_arbiters: bool = Field(False, description="Also serve the arbiters' data.")
    use_ssl: bool = Field(False, description="Serve and call over TLS.")
    hard_ssl_name_check: bool = Field(True, description="With use_ssl 1, check that the "
                                      "peer certificate names the peer's address (0 turns "
                                      "the check off: a stolen certificate then passes).")
    passive: bool = Field(False, description="Peers never open connections to it (Shinken); "
                          "accepted for compatibility.")
    master: int = Field(0, ge=0, le=7, description="Pandora master token: 1-7 makes it a "
                        "candidate for master of its role (the highest alive wins); 0: never.")
    server_threshold: int = Field(5, ge=1, description="Seconds between heartbeats with the "
                                  "servers of its role; down after 2 × server_threshold.")

    @property
    def name(self) -> str:
        return str(getattr(self, f"{self.role}_name"))

    @property
    def listen_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.role]


class Arbiter(DaemonLink):
    """The arbiter: owns the configuration and watches everyone. One master, one spare."""

    object_type: ClassVar[str] = "arbiter"
    key_property: ClassVar[str] = "arbiter_name"
    role: ClassVar[str] = "arbiter"

    arbiter_name: str = Field(description="Unique name.")
    accept_passive_unknown_check_results: bool = Field(False, description="Shinken; accepted.")


class Scheduler(DaemonLink):
    """A scheduler: runs the state machine of one part of the hosts and services."""

    object_type: ClassVar[str] = "scheduler"
    key_property: ClassVar[str] = "scheduler_name"
    role: ClassVar[str] = "scheduler"

    scheduler_name: str = Field(description="Unique name.")
    weight: int = Field(1, ge=1, description="Share of the hosts relative to the other "
                        "schedulers of the realm.")
    skip_initial_broks: bool = Field(False, description="Shinken; accepted.")
    accept_passive_unknown_check_results: bool = Field(False, description="Shinken; accepted.")


class Poller(DaemonLink):
    """A poller: runs checks for the schedulers of its realm."""

    object_type: ClassVar[str] = "poller"
    key_property: ClassVar[str] = "poller_name"
    role: ClassVar[str] = "poller"
    list_properties: ClassVar[frozenset[str]] = frozenset({"modules", "poller_tags"})

    poller_name: str = Field(description="Unique name; hosts and services may name it in "
                             "their `poller` property.")
    weight: int = Field(1, ge=1, description="Share of the checks when the arbiter chooses.")
    min_workers: int = Field(0, ge=0, description="Worker processes started at once; 0: one "
                             "per CPU.")
    max_workers: int = Field(0, ge=0, description="Most worker processes; 0: one per CPU.")
    processes_by_worker: int = Field(256, ge=1, description="Plugins one worker runs at once "
                                     "(native tcp/http checks have their own 256 per worker).")
    poller_tags: Names = Field(("None",), description="Tags of the "
                               "checks it runs; 'None' is the tag of untagged checks.")
    takeover: Literal["master", "spread"] = Field("master", description="Who runs the checks "
                                                  "of a downed poller: the master only, or "
                                                  "every alive poller by weight.")


class Dataserver(DaemonLink):
    """A data-server: stores results, states and history; answers queries."""

    object_type: ClassVar[str] = "dataserver"
    key_property: ClassVar[str] = "dataserver_name"
    role: ClassVar[str] = "dataserver"
    property_aliases: ClassVar[dict[str, str]] = {"broker_name": "dataserver_name"}

    dataserver_name: str = Field(description="Unique name.")


class Receiver(DaemonLink):
    """A receiver: takes passive results and external commands and routes them."""

    object_type: ClassVar[str] = "receiver"
    key_property: ClassVar[str] = "receiver_name"
    role: ClassVar[str] = "receiver"

    receiver_name: str = Field(description="Unique name.")
    direct_routing: bool = Field(True, description="Send to the owning scheduler directly.")
    accept_passive_unknown_check_results: bool = Field(False, description="Shinken; accepted.")


DAEMON_MODELS: dict[str, type[DaemonLink]] = {
    m.role: m for m in (Arbiter, Scheduler, Poller, Dataserver, Receiver)
}

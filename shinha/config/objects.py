"""Typed models of the monitored objects: hosts, services, groups, commands, contacts, realms.

Field descriptions are the configuration reference: docs/configuration.md is generated from
them (`python -m shinha.config.docgen`). Intervals of hosts and services count in units of
the main file's `interval_length` (60 s by default), as in Nagios.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

Names = tuple[str, ...]


class ConfigObject(BaseModel):
    """Base of every configuration object: knows its object type and where it was defined."""

    model_config = ConfigDict(extra="forbid", frozen=False, validate_default=False,
                              allow_inf_nan=False)

    object_type: ClassVar[str] = ""
    #: The property that names an object of this type (host_name, command_name, …).
    key_property: ClassVar[str] = ""
    #: Properties an object of this type may have that hold comma-separated lists.
    list_properties: ClassVar[frozenset[str]] = frozenset()
    #: Nagios/Shinken properties that are accepted but that shinha does not use.
    ignored_properties: ClassVar[frozenset[str]] = frozenset()
    #: Old spellings that still load: alias -> property.
    property_aliases: ClassVar[dict[str, str]] = {}
    #: Whether `_FOO` custom variables are allowed.
    has_customs: ClassVar[bool] = False

    source_file: str = Field("", description="File the object was defined in (set by shinha).")
    source_line: int = Field(0, description="Line of its `define` (set by shinha).")

    # Objects built by the loader share one frozenset of given fields per way of writing
    # them (see shinha.config.fastmodel); these two copy it before they change it.
    def __setattr__(self, name: str, value: Any) -> None:
        if name in type(self).model_fields:
            self.__dict__[name] = value
            given = self.__pydantic_fields_set__
            if name not in given:
                object.__setattr__(self, "__pydantic_fields_set__", given | {name})
            return
        super().__setattr__(name, value)

    def model_copy(self, *, update: Mapping[str, Any] | None = None,
                   deep: bool = False) -> Self:
        copied = super().model_copy(deep=deep)
        if update:
            copied.__dict__.update(update)
            object.__setattr__(copied, "__pydantic_fields_set__",
                               set(copied.__pydantic_fields_set__) | update.keys())
        return copied

    @property
    def object_name(self) -> str:
        return str(getattr(self, self.key_property))

    def where(self) -> str:
        return f"{self.source_file}:{self.source_line}"


class Command(ConfigObject):
    """A command: the line a poller runs, with `$ARGn$` and other macros."""

    object_type: ClassVar[str] = "command"
    key_property: ClassVar[str] = "command_name"

    command_name: str = Field(description="Name that `check_command` and handlers refer to.")
    command_line: str = Field(description="What to run; macros are expanded by the scheduler.")
    poller_tag: str = Field("None", description="Only pollers with this tag run it (Shinken).")
    reactionner_tag: str = Field("None", description="As a notification or event handler "
                                 "command: only pollers with this tag run it (Shinken).")
    module_type: str = Field("fork", description="fork: the poller runs command_line as a "
                             "plugin; tcp or http: the poller runs a native check, with "
                             "command_line holding its key=value arguments.")
    timeout: int = Field(-1, description="Seconds before the plugin is killed; -1: the main "
                         "file's service_check_timeout/host_check_timeout.")


_CHECKED_COMMON = frozenset({
    "contacts", "contact_groups", "notification_options", "flap_detection_options",
    "stalking_options", "escalations",
})
_IGNORED_CHECKED = frozenset({
    "obsess_over_host", "obsess_over_service", "obsess", "failure_prediction_enabled",
    "stalking_options",
    "retain_status_information", "retain_nonstatus_information", "icon_image",
    "icon_image_alt", "vrml_image", "statusmap_image", "2d_coords", "3d_coords",
    "failure_prediction_options", "trigger", "trigger_name", "trigger_broker_raise_enabled",
    "time_to_orphanage", "labels", "business_rule_output_template",
    "business_rule_smart_notifications", "business_rule_downtime_as_ack",
    "business_rule_host_notification_options", "business_rule_service_notification_options",
    "business_impact_modulations", "resultmodulations",
    "snapshot_enabled", "snapshot_command", "snapshot_period", "snapshot_criteria",
    "snapshot_interval", "checkmodulations", "macromodulations", "reactionner_tag",
    "initial_output", "trending_policies", "service_dependencies", "host_dependency_enabled",
    "hostdependency_enabled", "aggregation", "duplicate_foreach", "default_value",
    "parallelize_check", "check_freshness_threshold", "event_handler_timeout",
    "notification_timeout", "display_name2", "custom_views", "merge_host_contacts",
    "service_excludes", "service_includes", "service_overrides",
})


class Checkable(ConfigObject):
    """What hosts and services share: the check, its timetable, the state machine knobs."""

    has_customs: ClassVar[bool] = True

    display_name: str = Field("", description="Name shown in the console; defaults to the "
                              "object's name.")
    check_command: str = Field("", description="`command!arg1!arg2`; `$ARGn$` take the args.")
    max_check_attempts: int = Field(3, ge=1, description="Checks in a non-OK state before it "
                                    "is HARD.")
    check_interval: float = Field(5.0, ge=0, description="Between checks in a HARD or OK "
                                  "state, in interval_length units; 0: no active checks.")
    retry_interval: float = Field(1.0, gt=0, description="Between checks in a SOFT non-OK "
                                  "state, in interval_length units.")
    active_checks_enabled: bool = Field(True, description="Run the check on schedule.")
    passive_checks_enabled: bool = Field(True, description="Accept passive results.")
    check_period: str = Field("", description="Timeperiod in which checks run; empty: always.")
    check_freshness: bool = Field(False, description="Expect results within "
                                  "freshness_threshold.")
    freshness_threshold: int = Field(0, ge=0, description="Seconds; 0: computed from the "
                                     "interval.")
    event_handler: str = Field("", description="Command run on state changes.")
    event_handler_enabled: bool = Field(True, description="Run the event handler.")
    flap_detection_enabled: bool = Field(True, description="Detect flapping.")
    flap_detection_options: Names = Field((), description="States recorded in the flapping "
                                          "history (o,w,c,u / o,d,u); empty: all.")
    low_flap_threshold: float = Field(0.0, ge=0, le=100, description="Percent of state change "
                                      "under which flapping stops; 0: the main file's.")
    high_flap_threshold: float = Field(0.0, ge=0, le=100, description="Percent of state change "
                                       "from which it is flapping; 0: the main file's.")
    process_perf_data: bool = Field(True, description="Store performance data.")
    notifications_enabled: bool = Field(True, description="Send notifications.")
    notification_interval: float = Field(30.0, ge=0, description="Re-notify period, in "
                                         "interval_length units.")
    first_notification_delay: float = Field(0.0, ge=0, description="Delay of the first "
                                            "notification, in interval_length units.")
    notification_period: str = Field("", description="Timeperiod for notifications.")
    notification_options: Names = Field((), description="States that notify.")
    contacts: Names = Field((), description="Contacts to notify.")
    contact_groups: Names = Field((), description="Contact groups to notify.")
    escalations: Names = Field((), description="Shinken's `escalation` objects that apply to "
                               "its notifications.")
    notes: str = Field("", description="Free text shown in the console.")
    notes_url: str = Field("", description="Link shown in the console.")
    action_url: str = Field("", description="Link shown in the console.")
    poller_tag: str = Field("None", description="Only pollers whose poller_tags include this "
                            "tag run the check (Shinken).")
    poller: str = Field("", description="Name of the poller that owns the check (Pandora's "
                        "'server' field); empty: the arbiter chooses.")
    business_impact: int = Field(2, ge=0, le=5, description="Importance 0-5 (Shinken).")
    maintenance_period: str = Field("", description="Timeperiod of planned maintenance.")
    customs: dict[str, str] = Field(default_factory=dict, description="`_FOO value` custom "
                                    "variables, by upper-case name without the underscore.")


class Host(Checkable):
    """A monitored host."""

    object_type: ClassVar[str] = "host"
    key_property: ClassVar[str] = "host_name"
    list_properties: ClassVar[frozenset[str]] = _CHECKED_COMMON | {"parents", "hostgroups"}
    ignored_properties: ClassVar[frozenset[str]] = _IGNORED_CHECKED
    property_aliases: ClassVar[dict[str, str]] = {
        "normal_check_interval": "check_interval",
        "retry_check_interval": "retry_interval",
        "criticity": "business_impact",
    }

    host_name: str = Field(description="Unique name of the host.")
    alias: str = Field("", description="Long name; defaults to host_name.")
    address: str = Field("", description="Address checks use ($HOSTADDRESS$); defaults to "
                         "host_name.")
    parents: Names = Field((), description="Hosts this host is reached "
                           "through; linked hosts stay in one scheduler part.")
    hostgroups: Names = Field((), description="Hostgroups it belongs to.")
    realm: str = Field("", description="Realm; empty: the default realm.")
    initial_state: Literal["o", "d", "u", "up", "down", "unreachable"] = Field(
        "o", description="o (UP), d (DOWN) or u (UNREACHABLE).")


class Service(Checkable):
    """A monitored service: one per host it is attached to."""

    object_type: ClassVar[str] = "service"
    key_property: ClassVar[str] = "service_description"
    list_properties: ClassVar[frozenset[str]] = _CHECKED_COMMON | {
        "hostgroup_name", "servicegroups"}
    ignored_properties: ClassVar[frozenset[str]] = _IGNORED_CHECKED | {"host_dependency_enabled"}
    property_aliases: ClassVar[dict[str, str]] = {
        "normal_check_interval": "check_interval",
        "retry_check_interval": "retry_interval",
        "description": "service_description",
        "hostgroups": "hostgroup_name",
        "hostgroup": "hostgroup_name",
        "criticity": "business_impact",
    }

    host_name: str = Field("", description="Host(s), comma-separated, `!` excludes, `*` all; "
                           "the loaded object has the one host it was attached to.")
    hostgroup_name: Names = Field((), description="Attach to every host of "
                                  "these hostgroups; `!group` excludes.")
    service_description: str = Field(description="Name of the service, unique per host.")
    servicegroups: Names = Field((), description="Servicegroups it belongs "
                                 "to.")
    is_volatile: bool = Field(False, description="Every non-OK result is a new problem.")
    initial_state: Literal["o", "w", "u", "c", "ok", "warning", "unknown", "critical"] = Field(
        "o", description="o, w, u or c.")

    @property
    def key(self) -> tuple[str, str]:
        return (self.host_name, self.service_description)


class Hostgroup(ConfigObject):
    """A group of hosts; services can be attached to it."""

    object_type: ClassVar[str] = "hostgroup"
    key_property: ClassVar[str] = "hostgroup_name"
    list_properties: ClassVar[frozenset[str]] = frozenset({"members", "hostgroup_members"})
    ignored_properties: ClassVar[frozenset[str]] = frozenset({"unknown_members"})

    hostgroup_name: str = Field(description="Unique name of the group.")
    alias: str = Field("", description="Long name.")
    members: Names = Field((), description="Hosts (`*` all; the hosts' "
                           "`hostgroups` add more).")
    hostgroup_members: Names = Field((), description="Groups whose hosts "
                                     "are members too.")
    realm: str = Field("", description="Realm of its hosts that set none (Shinken).")
    notes: str = Field("", description="Free text.")
    notes_url: str = Field("", description="Link.")
    action_url: str = Field("", description="Link.")


class Servicegroup(ConfigObject):
    """A group of services."""

    object_type: ClassVar[str] = "servicegroup"
    key_property: ClassVar[str] = "servicegroup_name"
    list_properties: ClassVar[frozenset[str]] = frozenset({"members", "servicegroup_members"})
    ignored_properties: ClassVar[frozenset[str]] = frozenset({"unknown_members"})

    servicegroup_name: str = Field(description="Unique name of the group.")
    alias: str = Field("", description="Long name.")
    members: Names = Field((), description="`host,service` pairs.")
    servicegroup_members: Names = Field((), description="Nested groups.")
    notes: str = Field("", description="Free text.")
    notes_url: str = Field("", description="Link.")
    action_url: str = Field("", description="Link.")


class Contact(ConfigObject):
    """Someone to notify, and who may act in the console."""

    object_type: ClassVar[str] = "contact"
    key_property: ClassVar[str] = "contact_name"
    has_customs: ClassVar[bool] = True
    list_properties: ClassVar[frozenset[str]] = frozenset({
        "contactgroups", "host_notification_options", "service_notification_options",
        "host_notification_commands", "service_notification_commands"})
    ignored_properties: ClassVar[frozenset[str]] = frozenset({
        "address1", "address2", "address3", "address4", "address5", "address6",
        "retain_status_information", "retain_nonstatus_information", "min_business_impact",
        "notificationways", "expert", "acl_try_actions", "acl_allow_actions",
        "acl_try_downtimes", "acl_try_acknowledges", "minimum_value", "is_admin",
        "can_submit_commands", "password"})

    contact_name: str = Field(description="Unique name.")
    alias: str = Field("", description="Long name.")
    email: str = Field("", description="$CONTACTEMAIL$.")
    pager: str = Field("", description="$CONTACTPAGER$.")
    contactgroups: Names = Field((), description="Groups it belongs to.")
    host_notifications_enabled: bool = Field(True, description="Notify about hosts.")
    service_notifications_enabled: bool = Field(True, description="Notify about services.")
    host_notification_period: str = Field("", description="Timeperiod.")
    service_notification_period: str = Field("", description="Timeperiod.")
    host_notification_options: Names = Field((), description="d,u,r,f,s,n.")
    service_notification_options: Names = Field((),
                                                description="w,u,c,r,f,s,n.")
    host_notification_commands: Names = Field((), description="Commands.")
    service_notification_commands: Names = Field((), description="Commands.")
    customs: dict[str, str] = Field(default_factory=dict, description="`_FOO` variables.")


class Contactgroup(ConfigObject):
    """A group of contacts."""

    object_type: ClassVar[str] = "contactgroup"
    key_property: ClassVar[str] = "contactgroup_name"
    list_properties: ClassVar[frozenset[str]] = frozenset({"members", "contactgroup_members"})

    contactgroup_name: str = Field(description="Unique name.")
    alias: str = Field("", description="Long name.")
    members: Names = Field((), description="Contacts.")
    contactgroup_members: Names = Field((), description="Nested groups.")


class Realm(ConfigObject):
    """A realm: a part of the monitored world with its own schedulers and satellites."""

    object_type: ClassVar[str] = "realm"
    key_property: ClassVar[str] = "realm_name"
    list_properties: ClassVar[frozenset[str]] = frozenset({"realm_members", "higher_realms"})
    ignored_properties: ClassVar[frozenset[str]] = frozenset({"broker_complete_links"})

    realm_name: str = Field(description="Unique name.")
    alias: str = Field("", description="Long name.")
    realm_members: Names = Field((), description="Sub-realms.")
    higher_realms: Names = Field((), description="Parent realms (Alignak).")
    default: bool = Field(False, description="Realm of objects and daemons that name none.")


class Module(ConfigObject):
    """A module (Shinken): a named block of settings a daemon loads, e.g. its storage."""

    object_type: ClassVar[str] = "module"
    key_property: ClassVar[str] = "module_name"
    list_properties: ClassVar[frozenset[str]] = frozenset({"modules"})
    #: A module takes any property: they are the module's own settings.
    open_properties: ClassVar[bool] = True

    module_name: str = Field(description="Unique name that daemons list in `modules`.")
    module_type: str = Field("", description="What the module is (sqlite, mysql, …).")
    python_name: str = Field("", description="Alignak's name for module_type.")
    modules: Names = Field((), description="Sub-modules.")
    options: dict[str, str] = Field(default_factory=dict, description="Every other property, "
                                    "as written.")

"""The main file's `key=value` directives: the few shinha uses, and the Nagios/Shinken ones it
accepts with a warning so that an existing `nagios.cfg` or `shinken.cfg` loads as it is.

In the Shinken and Alignak dialects, the directives either engine documents load silently, an
unknown one is a warning (as those engines warn), and a `$NAME$=value` line in any file defines
a macro; in the shinha and Nagios dialects an unknown directive or such a line is an error."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shinha.config.diagnostics import Diagnostics, did_you_mean
from shinha.config.engines import known_directives
from shinha.config.parser import INCLUDE_DIRECTIVES, Directive

if TYPE_CHECKING:
    from shinha.config.dialect import Dialect

#: The directive that sets the dialect (shinha.config.dialect reads it).
DIALECT_DIRECTIVE = "shinha_dialect"


class MainConfig(BaseModel):
    """Directives of the main file that shinha acts on."""

    model_config = ConfigDict(extra="forbid")

    interval_length: int = Field(60, ge=1, description="Seconds in one unit of host and "
                                 "service intervals (Nagios).")
    cluster_secret: str = Field("", description="Shared secret every state-changing request "
                                "between daemons and from operators must carry.", repr=False)
    workdir: str = Field("var", description="Directory under which each daemon keeps its state "
                         "dir (relative paths resolve against the main file).")
    service_check_timeout: int = Field(60, ge=1, description="Seconds before a service plugin "
                                       "is killed.")
    host_check_timeout: int = Field(30, ge=1, description="Seconds before a host plugin is "
                                    "killed.")
    service_check_timeout_state: Literal["c", "u", "w", "o"] = Field(
        "c", description="State of a service whose plugin timed out (Nagios 4: c).")
    max_plugins_output_length: int = Field(8192, ge=64, description="Bytes of plugin output "
                                           "kept.")
    allow_empty_hostgroup_assignment: bool = Field(False, description="Accepted for Nagios "
                                                   "trees; changes nothing: a service on an "
                                                   "empty hostgroup creates nothing, silently, "
                                                   "as in Nagios 4.")
    use_timezone: str = Field("", description="Time zone of timeperiods; empty: the system's.")
    ca_cert: str = Field("", description="CA certificate daemons use to check each other's TLS "
                         "certificates (daemons with use_ssl 1).")
    server_cert: str = Field("", description="Certificate a daemon with use_ssl 1 serves.")
    server_key: str = Field("", description="Private key of server_cert.", repr=False)
    http_header_timeout: float = Field(
        10.0, gt=0, description="Seconds a client has to send a request's headers, from the "
        "moment it connects (after a TLS handshake, which has as long) or sends the first "
        "byte of its next request; then the daemon closes the connection.")
    http_idle_timeout: float = Field(
        60.0, ge=1, description="Seconds a keep-alive connection may stay idle between two "
        "requests before the daemon closes it (keep it above the 15 s after which shinha's own "
        "clients drop their idle connections). A request in progress is never idle.")
    http_body_timeout: float = Field(
        30.0, gt=0, description="Seconds a request's body may stop arriving (no byte while it "
        "is incomplete) before the daemon closes the connection.")
    http_max_connections: int = Field(
        8192, ge=16, description="Most client connections a daemon holds at once; lowered to "
        "what its open-file limit allows, less a quarter of it (at most 4096) for everything "
        "else. At the cap a new connection closes the oldest one that has not completed a "
        "request, else the one idle longest; it is refused only when every connection has a "
        "request in progress.")
    shutdown_timeout: float = Field(
        10.0, gt=0, le=300, description="Seconds a daemon has to stop on SIGTERM/SIGINT, every "
        "stage included: it refuses new work at once (503, or a closed port), drains what is in "
        "flight, cancels its loops and closes, each stage logged when late; a second signal "
        "ends it at once. `shinha run` stops its daemons in three waves (arbiter, receivers "
        "and pollers; schedulers; data-servers), each killed if still running 2 s after this.")
    passive_result_max_age: int = Field(
        7 * 86400, ge=60, description="Seconds: a passive result or external command timed "
        "further in the past is refused (400) at the receiver (an agent's buffer older than "
        "this is stale).")
    passive_result_max_future: int = Field(
        300, ge=0, description="Seconds: a passive result or command timed further in the "
        "future is refused (400) at the receiver; a scheduler clamps any result's time to "
        "now plus this (clock skew), so that no check is pinned in the future.")
    # Alerting (Nagios's names and defaults): the schedulers act on them.
    enable_notifications: bool = Field(True, description="Send notifications at all.")
    enable_event_handlers: bool = Field(True, description="Run event handlers at all.")
    enable_flap_detection: bool = Field(True, description="Detect flapping at all.")
    global_host_event_handler: str = Field("", description="`command!args` run on every host "
                                           "state change, before the host's own handler; the "
                                           "command must be defined.")
    global_service_event_handler: str = Field("", description="`command!args` run on every "
                                              "service state change, before the service's own "
                                              "handler; the command must be defined.")
    notification_timeout: int = Field(30, ge=1, description="Seconds before a notification "
                                      "command is killed.")
    event_handler_timeout: int = Field(30, ge=1, description="Seconds before an event handler "
                                       "is killed.")
    low_service_flap_threshold: float = Field(5.0, ge=0, le=100, description="Percent of state "
                                              "change under which a service stops flapping "
                                              "(a service's own low_flap_threshold wins).")
    high_service_flap_threshold: float = Field(20.0, ge=0, le=100, description="Percent of "
                                               "state change from which a service flaps.")
    low_host_flap_threshold: float = Field(5.0, ge=0, le=100, description="Percent of state "
                                           "change under which a host stops flapping.")
    high_host_flap_threshold: float = Field(20.0, ge=0, le=100, description="Percent of state "
                                            "change from which a host flaps.")
    cached_host_check_horizon: int = Field(15, ge=0, description="Seconds a host's state stays "
                                           "fresh enough not to check it again on demand "
                                           "(a dependency or a parent being looked at).")


#: Directives of nagios.cfg (Nagios 4) and shinken.cfg that shinha reads and ignores.
IGNORED_DIRECTIVES = frozenset({
    # Nagios 4
    "log_file", "object_cache_file", "precached_object_file", "status_file",
    "status_update_interval", "nagios_user", "nagios_group", "check_external_commands",
    "command_file", "command_check_interval", "lock_file", "temp_file", "temp_path",
    "event_broker_options", "broker_module", "log_rotation_method", "log_archive_path",
    "use_syslog", "log_notifications", "log_service_retries", "log_host_retries",
    "log_event_handlers", "log_initial_states", "log_current_states", "log_external_commands",
    "log_passive_checks", "service_inter_check_delay_method", "max_service_check_spread",
    "service_interleave_factor", "host_inter_check_delay_method", "max_host_check_spread",
    "max_concurrent_checks", "check_result_reaper_frequency", "max_check_result_reaper_time",
    "check_result_path", "max_check_result_file_age", "cached_service_check_horizon",
    "enable_predictive_host_dependency_checks",
    "enable_predictive_service_dependency_checks", "soft_state_dependencies",
    "auto_reschedule_checks", "auto_rescheduling_interval", "auto_rescheduling_window",
    "sleep_time", "ocsp_timeout",
    "ochp_timeout", "perfdata_timeout", "retain_state_information", "state_retention_file",
    "retention_update_interval", "use_retained_program_state",
    "use_retained_scheduling_info", "retained_host_attribute_mask",
    "retained_service_attribute_mask", "retained_process_host_attribute_mask",
    "retained_process_service_attribute_mask", "retained_contact_host_attribute_mask",
    "retained_contact_service_attribute_mask", "use_aggressive_host_checking",
    "execute_service_checks", "accept_passive_service_checks", "execute_host_checks",
    "accept_passive_host_checks", "process_performance_data", "host_perfdata_command",
    "service_perfdata_command",
    "host_perfdata_file", "service_perfdata_file", "host_perfdata_file_template",
    "service_perfdata_file_template", "host_perfdata_file_mode",
    "service_perfdata_file_mode", "host_perfdata_file_processing_interval",
    "service_perfdata_file_processing_interval", "host_perfdata_file_processing_command",
    "service_perfdata_file_processing_command", "host_perfdata_process_empty_results",
    "service_perfdata_process_empty_results", "obsess_over_services", "ocsp_command",
    "obsess_over_hosts", "ochp_command", "translate_passive_host_checks",
    "passive_host_checks_are_soft", "check_for_orphaned_services",
    "check_for_orphaned_hosts", "check_service_freshness", "service_freshness_check_interval",
    "check_host_freshness", "host_freshness_check_interval", "additional_freshness_latency",
    "date_format",
    "p1_file", "enable_embedded_perl", "use_embedded_perl_implicitly",
    "illegal_object_name_chars", "illegal_macro_output_chars", "admin_email", "admin_pager",
    "daemon_dumps_core",
    "use_large_installation_tweaks", "enable_environment_macros", "debug_level",
    "debug_verbosity", "debug_file", "max_debug_file_size", "check_for_updates",
    "bare_update_check", "query_socket", "check_workers", "host_down_disable_service_checks",
    "service_skip_check_dependency_status",
    "host_skip_check_dependency_status", "service_check_timeout_state",
    "free_child_process_memory", "child_processes_fork_twice", "external_command_buffer_slots",
    "check_result_buffer_slots", "enable_event_broker_options", "website_url",
    # Shinken / Alignak
    "shinken_user", "shinken_group", "modules_dir", "pack_distribution_file",
    "local_log", "log_level", "daemon_enabled", "use_local_log", "max_queue_size",
    "daemon_thread_pool_size", "idontcareaboutsecurity", "enable_problem_impacts_states_change",
    "no_event_handlers_during_downtimes", "disable_old_nagios_parameters_whining",
    "human_timestamp_log", "timeout_exit_status", "use_multiprocesses_serializer",
    "hard_ssl_name_check", "http_backend",
    "statsd_host", "statsd_port", "statsd_prefix", "statsd_enabled", "triggers_dir",
    "packs_dir", "objects_dir", "macros", "resource_macros_names", "conf_is_correct", "pidfile",
    "log_flappings", "log_snapshots", "log_active_checks",
    "check_orphaned", "daemon_check_interval", "alignak_name", "config_name",
    "flap_history", "max_plugins_output_length", "cleaning_queues_interval",
    "workdir", "use_ssl",
})


#: Directives the object linker reads from the raw tree (shinha/config/names.py), not the
#: main-file model: known, never warned about.
LINKER_DIRECTIVES = frozenset({"use_regexp_matching", "use_true_regexp_matching"})


def is_macro(key: str) -> bool:
    """Whether a directive's key is a `$NAME$` macro."""
    return len(key) > 2 and key[0] == "$" and key[-1] == "$"


def build_main(directives: list[Directive], diags: Diagnostics,
               dialect: Dialect | None = None, main_file: str | None = None) -> MainConfig:
    """Validate the main-file directives into a MainConfig; ignored ones become warnings."""
    own = MainConfig.model_fields
    engine = dialect.engine if dialect is not None else None
    known = known_directives() if engine is not None else frozenset()
    values: dict[str, str] = {}
    where: dict[str, Directive] = {}
    ignored: dict[str, Directive] = {}
    for d in directives:
        if d.key in INCLUDE_DIRECTIVES or d.key in LINKER_DIRECTIVES \
                or d.key == DIALECT_DIRECTIVE:
            continue
        if d.key in own:
            values[d.key] = d.value
            where[d.key] = d
        elif is_macro(d.key):
            if engine is None:
                kind = "the main file" if d.file == main_file else "an object file"
                diags.error(f"macro {d.key} set in {kind}", d.file, d.line,
                            "put $USERn$ macros in a resource file named by resource_file=")
        elif d.key in known:
            continue  # documented by the engine: loads as it does there
        elif d.key in IGNORED_DIRECTIVES:
            ignored.setdefault(d.key, d)
        elif dialect is not None and dialect.lenient:
            diags.warning(f"unknown directive '{d.key}' (ignored, as {dialect.title} does)",
                          d.file, d.line, did_you_mean(d.key, [*own, *known]))
        else:
            diags.error(f"unknown directive '{d.key}'", d.file, d.line,
                        did_you_mean(d.key, [*own, *INCLUDE_DIRECTIVES])
                        or "see docs/configuration.md for the main-file directives")
    for key, d in ignored.items():
        diags.warning(f"ignored: directive '{key}' (not used by shinha)", d.file, d.line)
    try:
        return MainConfig.model_validate(values)
    except ValidationError as exc:
        for err in exc.errors():
            key = str(err["loc"][0]) if err["loc"] else ""
            at = where.get(key)
            diags.error(f"{key}: {err['msg']} (got {values.get(key, '')!r})",
                        at.file if at else None, at.line if at else None)
            values.pop(key, None)
        return MainConfig.model_validate(values)

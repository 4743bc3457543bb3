"""What each engine knows: the object properties and main-file directives of Shinken and
Alignak, and the object properties Nagios 4 accepts. The dialects (shinha.config.dialect) read
these lists; nothing here is acted on.

Where the names come from (data, not guesses):

- Shinken 2.4.3 (PyPI sdist `Shinken-2.4.3`): `shinken/objects/*.py`, each class's
  `properties` and `old_properties` (old spellings such as `criticity`, `min_criticity`,
  `hostgroups` on a service), for every type of `Config.types_creations`; the main file's from
  `shinken/objects/config.py` `Config.properties`. Listed by importing the classes under
  Python 2.7. `running_properties` (run-time state) are not configuration and are left out, as
  Shinken itself warns when a file sets one.
- Alignak 2.1.5 (PyPI wheel `alignak-2.1.5`): `alignak/objects/*.py`, the same tables.
- Shinken's documented maintenance checks (its documentation, "Maintenance Downtime":
  `maintenance_check_command`, `maintenance_check_period`, `maintenance_check_interval`,
  `maintenance_retry_interval`, `maintenance_checks_enabled`) and `priority`, which issue 11
  names among the documented properties: they came after 2.4.3 and are in `DOCUMENTED`.
- Nagios 4 (`nagios4 -v`, 4.4.6 as Debian 12 ships it): each candidate name (every name above
  and every shinha property) was set on a minimal object of each Nagios type; the names
  `nagios4 -v` did not reject as an "Invalid ... object directive" are listed. `hostgroups` and
  `hostgroup` on a service were tried by hand (both mean `hostgroup_name`).
"""

from __future__ import annotations

from typing import Literal

Engine = Literal["shinken", "alignak"]

_BOTH: dict[str, frozenset[str]] = {
    "arbiter": frozenset({
        "address", "arbiter_name", "definition_order", "hard_ssl_name_check", "host_name",
        "imported_from", "manage_arbiters", "manage_sub_realms", "max_check_attempts", "modules",
        "name", "passive", "polling_interval", "port", "realm", "register", "spare", "use",
        "use_ssl", "use_timezone",
    }),
    "command": frozenset({
        "command_line", "command_name", "definition_order", "enable_environment_macros",
        "imported_from", "module_type", "name", "poller_tag", "reactionner_tag", "register",
        "timeout", "use",
    }),
    "contact": frozenset({
        "address1", "address2", "address3", "address4", "address5", "address6", "alias",
        "can_submit_commands", "contact_name", "contactgroups", "definition_order", "email",
        "expert", "host_notification_commands", "host_notification_options",
        "host_notification_period", "host_notifications_enabled", "imported_from", "is_admin",
        "min_business_impact", "min_criticity", "name", "notificationways", "pager", "password",
        "register", "retain_status_information", "service_notification_commands",
        "service_notification_options", "service_notification_period",
        "service_notifications_enabled", "use",
    }),
    "contactgroup": frozenset({
        "alias", "contactgroup_members", "contactgroup_name", "definition_order", "imported_from",
        "members", "name", "register", "use",
    }),
    "host": frozenset({
        "2d_coords", "3d_coords", "action_url", "active_checks_enabled", "address", "alias",
        "business_impact", "business_impact_modulations", "business_rule_downtime_as_ack",
        "business_rule_host_notification_options", "business_rule_output_template",
        "business_rule_service_notification_options", "business_rule_smart_notifications",
        "check_command", "check_freshness", "check_interval", "check_period", "checkmodulations",
        "contact_groups", "contacts", "criticity", "custom_views", "definition_order",
        "display_name", "escalations", "event_handler", "event_handler_enabled",
        "first_notification_delay", "flap_detection_enabled", "flap_detection_options",
        "freshness_threshold", "high_flap_threshold", "host_name", "hostgroup", "hostgroups",
        "icon_image", "icon_image_alt", "icon_set", "imported_from", "initial_state", "labels",
        "low_flap_threshold", "macromodulations", "maintenance_period", "max_check_attempts",
        "name", "normal_check_interval", "notes", "notes_url", "notification_interval",
        "notification_options", "notification_period", "notifications_enabled", "parents",
        "passive_checks_enabled", "poller_tag", "process_perf_data", "reactionner_tag", "realm",
        "register", "resultmodulations", "retain_nonstatus_information",
        "retain_status_information", "retry_check_interval", "retry_interval", "service_excludes",
        "service_includes", "service_overrides", "snapshot_command", "snapshot_criteria",
        "snapshot_enabled", "snapshot_interval", "snapshot_period", "stalking_options",
        "statusmap_image", "time_to_orphanage", "trending_policies", "use", "vrml_image",
    }),
    "hostgroup": frozenset({
        "action_url", "alias", "definition_order", "hostgroup_members", "hostgroup_name",
        "imported_from", "members", "name", "notes", "notes_url", "realm", "register", "use",
    }),
    "module": frozenset({
        "definition_order", "imported_from", "modules", "name", "register", "use",
    }),
    "poller": frozenset({
        "address", "definition_order", "hard_ssl_name_check", "imported_from", "manage_arbiters",
        "manage_sub_realms", "max_check_attempts", "modules", "name", "passive", "poller_name",
        "poller_tags", "polling_interval", "port", "realm", "register", "spare", "use", "use_ssl",
        "use_timezone",
    }),
    "realm": frozenset({
        "default", "definition_order", "higher_realms", "imported_from", "members", "name",
        "realm_members", "realm_name", "register", "use",
    }),
    "receiver": frozenset({
        "address", "definition_order", "hard_ssl_name_check", "imported_from", "manage_arbiters",
        "manage_sub_realms", "max_check_attempts", "modules", "name", "passive",
        "polling_interval", "port", "realm", "receiver_name", "register", "spare", "use",
        "use_ssl", "use_timezone",
    }),
    "scheduler": frozenset({
        "accept_passive_unknown_check_results", "address", "definition_order",
        "hard_ssl_name_check", "imported_from", "manage_arbiters", "manage_sub_realms",
        "max_check_attempts", "modules", "name", "passive", "polling_interval", "port", "realm",
        "register", "scheduler_name", "skip_initial_broks", "spare", "use", "use_ssl",
        "use_timezone", "weight",
    }),
    "service": frozenset({
        "action_url", "active_checks_enabled", "aggregation", "business_impact",
        "business_impact_modulations", "business_rule_downtime_as_ack",
        "business_rule_host_notification_options", "business_rule_output_template",
        "business_rule_service_notification_options", "business_rule_smart_notifications",
        "check_command", "check_freshness", "check_interval", "check_period", "checkmodulations",
        "contact_groups", "contacts", "criticity", "custom_views", "default_value",
        "definition_order", "display_name", "duplicate_foreach", "escalations", "event_handler",
        "event_handler_enabled", "first_notification_delay", "flap_detection_enabled",
        "flap_detection_options", "freshness_threshold", "high_flap_threshold",
        "host_dependency_enabled", "host_name", "hostgroup", "hostgroup_name", "hostgroups",
        "icon_image", "icon_image_alt", "icon_set", "imported_from", "initial_state",
        "is_volatile", "labels", "low_flap_threshold", "macromodulations", "maintenance_period",
        "max_check_attempts", "merge_host_contacts", "name", "normal_check_interval", "notes",
        "notes_url", "notification_interval", "notification_options", "notification_period",
        "notifications_enabled", "parallelize_check", "passive_checks_enabled", "poller_tag",
        "process_perf_data", "reactionner_tag", "register", "resultmodulations",
        "retain_nonstatus_information", "retain_status_information", "retry_check_interval",
        "retry_interval", "service_dependencies", "service_description", "servicegroups",
        "snapshot_command", "snapshot_criteria", "snapshot_enabled", "snapshot_interval",
        "snapshot_period", "stalking_options", "time_to_orphanage", "trending_policies", "use",
    }),
    "servicegroup": frozenset({
        "action_url", "alias", "definition_order", "imported_from", "members", "name", "notes",
        "notes_url", "register", "servicegroup_members", "servicegroup_name", "use",
    }),
    "timeperiod": frozenset({
        "alias", "dateranges", "definition_order", "exclude", "imported_from", "is_active", "name",
        "register", "timeperiod_name", "use",
    }),
}

_SHINKEN_ONLY: dict[str, frozenset[str]] = {
    "arbiter": frozenset({
        "check_interval", "data_timeout", "satellitemap", "timeout",
    }),
    "contactgroup": frozenset({
        "id", "unknown_members",
    }),
    "host": frozenset({
        "failure_prediction_enabled", "initial_output", "obsess_over_host", "trigger",
        "trigger_broker_raise_enabled", "trigger_name",
    }),
    "hostgroup": frozenset({
        "id", "unknown_members",
    }),
    "module": frozenset({
        "module_name", "module_type",
    }),
    "poller": frozenset({
        "check_interval", "data_timeout", "max_workers", "min_workers", "processes_by_worker",
        "satellitemap", "timeout",
    }),
    "realm": frozenset({
        "broker_complete_links", "id", "unknown_members",
    }),
    "receiver": frozenset({
        "accept_passive_unknown_check_results", "check_interval", "data_timeout", "direct_routing",
        "satellitemap", "timeout",
    }),
    "scheduler": frozenset({
        "check_interval", "data_timeout", "satellitemap", "timeout",
    }),
    "service": frozenset({
        "failure_prediction_enabled", "initial_output", "obsess_over_service", "trigger",
        "trigger_broker_raise_enabled", "trigger_name",
    }),
    "servicegroup": frozenset({
        "id", "unknown_members",
    }),
}

_ALIGNAK_ONLY: dict[str, frozenset[str]] = {
    "arbiter": frozenset({
        "active", "alignak_launched", "hash", "host", "instance_id", "last_master_speak",
        "long_timeout", "managed_conf_id", "missing_daemon", "ping_period", "push_flavor",
        "realm_name", "satellite_map", "short_timeout", "spare_check_interval",
        "spare_max_check_attempts", "type",
    }),
    "host": frozenset({
        "address6", "freshness_state",
    }),
    "module": frozenset({
        "daemon", "enabled", "log_level", "module_alias", "module_types", "python_name",
        "statsd_enabled", "statsd_host", "statsd_port", "statsd_prefix", "type",
    }),
    "poller": frozenset({
        "active", "alignak_launched", "hash", "host", "instance_id", "long_timeout",
        "managed_conf_id", "missing_daemon", "ping_period", "push_flavor", "realm_name",
        "satellite_map", "short_timeout", "spare_check_interval", "spare_max_check_attempts",
        "type",
    }),
    "realm": frozenset({
        "alias", "group_members",
    }),
    "receiver": frozenset({
        "active", "alignak_launched", "hash", "host", "instance_id", "long_timeout",
        "managed_conf_id", "missing_daemon", "ping_period", "push_flavor", "realm_name",
        "satellite_map", "short_timeout", "spare_check_interval", "spare_max_check_attempts",
        "type",
    }),
    "scheduler": frozenset({
        "active", "alignak_launched", "hash", "host", "instance_id", "long_timeout",
        "managed_conf_id", "missing_daemon", "ping_period", "push_flavor", "realm_name",
        "satellite_map", "short_timeout", "spare_check_interval", "spare_max_check_attempts",
        "type",
    }),
    "service": frozenset({
        "alias", "freshness_state",
    }),
    "timeperiod": frozenset({
        "activated_once", "invalid_entries", "unresolved",
    }),
}

NAGIOS4_PROPERTIES: dict[str, frozenset[str]] = {
    "command": frozenset({
        "command_line", "command_name", "name", "register", "use",
    }),
    "contact": frozenset({
        "address1", "address2", "address3", "address4", "address5", "address6", "alias",
        "can_submit_commands", "contact_name", "contactgroups", "email",
        "host_notification_commands", "host_notification_options", "host_notification_period",
        "host_notifications_enabled", "minimum_value", "name", "pager", "register",
        "retain_nonstatus_information", "retain_status_information",
        "service_notification_commands", "service_notification_options",
        "service_notification_period", "service_notifications_enabled", "use",
    }),
    "contactgroup": frozenset({
        "alias", "contactgroup_members", "contactgroup_name", "members", "name", "register", "use",
    }),
    "host": frozenset({
        "2d_coords", "3d_coords", "action_url", "active_checks_enabled", "address", "alias",
        "check_command", "check_freshness", "check_interval", "check_period", "contact_groups",
        "contacts", "display_name", "event_handler", "event_handler_enabled",
        "failure_prediction_enabled", "failure_prediction_options", "first_notification_delay",
        "flap_detection_enabled", "flap_detection_options", "freshness_threshold",
        "high_flap_threshold", "host_name", "hostgroups", "icon_image", "icon_image_alt",
        "initial_state", "low_flap_threshold", "max_check_attempts", "name",
        "normal_check_interval", "notes", "notes_url", "notification_interval",
        "notification_options", "notification_period", "notifications_enabled", "obsess",
        "obsess_over_host", "parents", "passive_checks_enabled", "process_perf_data", "register",
        "retain_nonstatus_information", "retain_status_information", "retry_check_interval",
        "retry_interval", "stalking_options", "statusmap_image", "use", "vrml_image",
    }),
    "hostgroup": frozenset({
        "action_url", "alias", "hostgroup_members", "hostgroup_name", "members", "name", "notes",
        "notes_url", "register", "use",
    }),
    "service": frozenset({
        "action_url", "active_checks_enabled", "check_command", "check_freshness",
        "check_interval", "check_period", "contact_groups", "contacts", "description",
        "display_name", "event_handler", "event_handler_enabled", "failure_prediction_enabled",
        "failure_prediction_options", "first_notification_delay", "flap_detection_enabled",
        "flap_detection_options", "freshness_threshold", "high_flap_threshold", "host_name",
        "hostgroup", "hostgroup_name", "hostgroups", "icon_image", "icon_image_alt",
        "initial_state", "is_volatile", "low_flap_threshold", "max_check_attempts", "name",
        "normal_check_interval", "notes", "notes_url", "notification_interval",
        "notification_options", "notification_period", "notifications_enabled", "obsess",
        "obsess_over_service", "parallelize_check", "passive_checks_enabled", "process_perf_data",
        "register", "retain_nonstatus_information", "retain_status_information",
        "retry_check_interval", "retry_interval", "service_description", "servicegroups",
        "stalking_options", "use",
    }),
    "servicegroup": frozenset({
        "action_url", "alias", "members", "name", "notes", "notes_url", "register",
        "servicegroup_members", "servicegroup_name", "use",
    }),
    "timeperiod": frozenset({
        "alias", "exclude", "name", "register", "timeperiod_name", "use",
    }),
}

_MAIN_BOTH = frozenset({
    "accept_passive_host_checks", "accept_passive_service_checks", "additional_freshness_latency",
    "admin_email", "admin_pager", "auto_reschedule_checks", "auto_rescheduling_interval",
    "auto_rescheduling_window", "bare_update_checks", "broker_module", "cached_host_check_horizon",
    "cached_service_check_horizon", "check_external_commands", "check_for_orphaned_hosts",
    "check_for_orphaned_services", "check_for_updates", "check_host_freshness",
    "check_result_path", "check_result_reaper_frequency", "check_service_freshness",
    "child_processes_fork_twice", "cleaning_queues_interval", "command_check_interval",
    "command_file", "config_base_dir", "daemon_thread_pool_size", "date_format",
    "enable_embedded_perl", "enable_environment_macros", "enable_event_handlers",
    "enable_flap_detection", "enable_notifications", "enable_predictive_host_dependency_checks",
    "enable_predictive_service_dependency_checks", "enable_problem_impacts_states_change",
    "event_broker_options", "event_handler_timeout", "execute_host_checks",
    "execute_service_checks", "external_command_buffer_slots", "flap_history",
    "free_child_process_memory", "global_host_event_handler", "global_service_event_handler",
    "high_host_flap_threshold", "high_service_flap_threshold", "host_check_timeout",
    "host_freshness_check_interval", "host_inter_check_delay_method", "host_perfdata_command",
    "host_perfdata_file", "host_perfdata_file_mode", "host_perfdata_file_processing_command",
    "host_perfdata_file_processing_interval", "host_perfdata_file_template",
    "illegal_macro_output_chars", "illegal_object_name_chars", "interval_length",
    "log_archive_path", "log_event_handlers", "log_external_commands", "log_file",
    "log_initial_states", "log_notifications", "log_passive_checks", "log_rotation_method",
    "low_host_flap_threshold", "low_service_flap_threshold", "max_check_result_file_age",
    "max_check_result_reaper_time", "max_concurrent_checks", "max_host_check_spread",
    "max_plugins_output_length", "max_service_check_spread", "modified_attributes", "nagios_group",
    "nagios_user", "no_event_handlers_during_downtimes", "notification_timeout",
    "object_cache_file", "passive_host_checks_are_soft", "perfdata_timeout",
    "precached_object_file", "process_performance_data", "resource_file", "resource_macros_names",
    "retain_state_information", "retained_contact_host_attribute_mask",
    "retained_contact_service_attribute_mask", "retained_host_attribute_mask",
    "retained_process_host_attribute_mask", "retained_process_service_attribute_mask",
    "retained_service_attribute_mask", "retention_update_interval", "runners_timeout",
    "service_check_timeout", "service_freshness_check_interval",
    "service_inter_check_delay_method", "service_interleave_factor", "service_perfdata_command",
    "service_perfdata_file", "service_perfdata_file_mode",
    "service_perfdata_file_processing_command", "service_perfdata_file_processing_interval",
    "service_perfdata_file_template", "sleep_time", "soft_state_dependencies",
    "state_retention_file", "status_file", "status_update_interval", "temp_file",
    "timeout_exit_status", "translate_passive_host_checks", "use_embedded_perl_implicitly",
    "use_large_installation_tweaks", "use_regexp_matching", "use_retained_program_state",
    "use_retained_scheduling_info", "use_syslog", "use_timezone", "use_true_regexp_matching",
})
_MAIN_SHINKEN_ONLY = frozenset({
    "api_key", "ca_cert", "daemon_enabled", "debug_file", "debug_level", "debug_verbosity",
    "disable_old_nagios_parameters_whining", "hard_ssl_name_check", "http_backend", "http_proxy",
    "human_timestamp_log", "idontcareaboutsecurity", "local_log", "lock_file", "log_host_retries",
    "log_level", "log_service_retries", "max_debug_file_size", "modules_dir", "modulesdir",
    "obsess_over_hosts", "obsess_over_services", "ochp_command", "ochp_timeout", "ocsp_command",
    "ocsp_timeout", "pack_distribution_file", "prefix", "secret", "server_cert", "server_key",
    "shinken_group", "shinken_user", "statsd_enabled", "statsd_host", "statsd_interval",
    "statsd_pattern", "statsd_port", "statsd_prefix", "statsd_types", "strip_idname_fqdn",
    "use_aggressive_host_checking", "use_local_log", "use_multiprocesses_serializer", "use_ssl",
    "webui_host", "webui_lock_file", "webui_port", "workdir",
})
_MAIN_ALIGNAK_ONLY = frozenset({
    "accept_passive_unknown_check_results", "alignak_env", "alignak_name", "config_files",
    "config_name", "daemon_mode", "daemons_arguments", "daemons_check_period",
    "daemons_dispatch_timeout", "daemons_failure_kill", "daemons_initial_port",
    "daemons_log_folder", "daemons_new_conf_timeout", "daemons_start_timeout",
    "daemons_stop_timeout", "env_variables_prefix", "events_date_format", "events_log_count",
    "forced_realms_hostgroups", "instance_id", "is_running", "last_alive", "last_command_check",
    "last_log_rotation", "launch_missing_daemons", "log_acknowledgements", "log_active_checks",
    "log_alerts", "log_alignak_checks", "log_downtimes", "log_flappings", "log_snapshots",
    "main_config_file", "modified_host_attributes", "modified_service_attributes", "packs_dir",
    "pid", "program_start", "state_retention_dir", "temp_path",
})

#: The main-file directives `nagios4 -v` accepts (each candidate tried in a nagios.cfg).
NAGIOS4_DIRECTIVES = frozenset({
    "accept_passive_host_checks", "accept_passive_service_checks", "additional_freshness_latency",
    "admin_email", "admin_pager", "allow_empty_hostgroup_assignment", "auto_reschedule_checks",
    "auto_rescheduling_interval", "auto_rescheduling_window", "bare_update_check", "broker_module",
    "cached_host_check_horizon", "cached_service_check_horizon", "cfg_dir", "cfg_file",
    "check_external_commands", "check_for_orphaned_hosts", "check_for_orphaned_services",
    "check_for_updates", "check_host_freshness", "check_result_path",
    "check_result_reaper_frequency", "check_service_freshness", "check_workers",
    "child_processes_fork_twice", "command_check_interval", "command_file", "daemon_dumps_core",
    "date_format", "debug_file", "debug_level", "debug_verbosity", "enable_embedded_perl",
    "enable_environment_macros", "enable_event_handlers", "enable_flap_detection",
    "enable_notifications", "enable_predictive_host_dependency_checks",
    "enable_predictive_service_dependency_checks", "event_broker_options", "event_handler_timeout",
    "execute_host_checks", "execute_service_checks", "external_command_buffer_slots",
    "free_child_process_memory", "global_host_event_handler", "global_service_event_handler",
    "high_host_flap_threshold", "high_service_flap_threshold", "host_check_timeout",
    "host_down_disable_service_checks", "host_freshness_check_interval",
    "host_inter_check_delay_method", "host_perfdata_command", "host_perfdata_file",
    "host_perfdata_file_mode", "host_perfdata_file_processing_command",
    "host_perfdata_file_processing_interval", "host_perfdata_file_template",
    "host_perfdata_process_empty_results", "host_skip_check_dependency_status",
    "illegal_macro_output_chars", "illegal_object_name_chars", "interval_length", "lock_file",
    "log_archive_path", "log_current_states", "log_event_handlers", "log_external_commands",
    "log_file", "log_host_retries", "log_initial_states", "log_notifications",
    "log_passive_checks", "log_rotation_method", "log_service_retries", "low_host_flap_threshold",
    "low_service_flap_threshold", "max_check_result_file_age", "max_check_result_reaper_time",
    "max_concurrent_checks", "max_debug_file_size", "max_host_check_spread",
    "max_service_check_spread", "nagios_group", "nagios_user", "notification_timeout",
    "object_cache_file", "obsess_over_hosts", "obsess_over_services", "ochp_command",
    "ochp_timeout", "ocsp_command", "ocsp_timeout", "p1_file", "passive_host_checks_are_soft",
    "perfdata_timeout", "precached_object_file", "process_performance_data", "query_socket",
    "resource_file", "retain_state_information", "retained_contact_host_attribute_mask",
    "retained_contact_service_attribute_mask", "retained_host_attribute_mask",
    "retained_process_host_attribute_mask", "retained_process_service_attribute_mask",
    "retained_service_attribute_mask", "retention_update_interval", "service_check_timeout",
    "service_check_timeout_state", "service_freshness_check_interval",
    "service_inter_check_delay_method", "service_interleave_factor", "service_perfdata_command",
    "service_perfdata_file", "service_perfdata_file_mode",
    "service_perfdata_file_processing_command", "service_perfdata_file_processing_interval",
    "service_perfdata_file_template", "service_perfdata_process_empty_results",
    "service_skip_check_dependency_status", "sleep_time", "soft_state_dependencies",
    "state_retention_file", "status_file", "status_update_interval", "temp_file", "temp_path",
    "translate_passive_host_checks", "use_aggressive_host_checking",
    "use_embedded_perl_implicitly", "use_large_installation_tweaks", "use_regexp_matching",
    "use_retained_program_state", "use_retained_scheduling_info", "use_syslog", "use_timezone",
    "use_true_regexp_matching", "website_url",
})

#: Properties documented after Shinken 2.4.3 (see the module docstring), on hosts and services.
DOCUMENTED = frozenset({
    "maintenance_check_command", "maintenance_check_interval", "maintenance_check_period",
    "maintenance_checks_enabled", "maintenance_retry_interval", "priority",
})
_EMPTY: frozenset[str] = frozenset()


def engine_properties(engine: Engine, type_: str) -> frozenset[str]:
    """The properties `engine` knows on objects of `type_` (empty for a type it lacks)."""
    own = _SHINKEN_ONLY if engine == "shinken" else _ALIGNAK_ONLY
    extra = DOCUMENTED if type_ in ("host", "service") else _EMPTY
    return _BOTH.get(type_, _EMPTY) | own.get(type_, _EMPTY) | extra


def known_properties(type_: str) -> frozenset[str]:
    """The properties of `type_` that Shinken or Alignak know: both dialects load them (a tree
    written for one engine often carries the other's, and each only warns about them)."""
    return engine_properties("shinken", type_) | engine_properties("alignak", type_)


def known_directives() -> frozenset[str]:
    """The main-file directives that Shinken or Alignak know."""
    return engine_directives("shinken") | engine_directives("alignak")


def engine_directives(engine: Engine) -> frozenset[str]:
    """The main-file directives `engine` knows."""
    return _MAIN_BOTH | (_MAIN_SHINKEN_ONLY if engine == "shinken" else _MAIN_ALIGNAK_ONLY)


def engine_only_directives(engine: Engine) -> frozenset[str]:
    """The directives `engine` knows and Nagios 4 does not."""
    return engine_directives(engine) - NAGIOS4_DIRECTIVES


def engine_only_properties(type_: str) -> frozenset[str]:
    """The properties of a Nagios type that Shinken or Alignak know and Nagios 4 does not."""
    if type_ not in NAGIOS4_PROPERTIES:
        return _EMPTY
    known = _BOTH.get(type_, _EMPTY) | _SHINKEN_ONLY.get(type_, _EMPTY) | _ALIGNAK_ONLY.get(
        type_, _EMPTY)
    return known - NAGIOS4_PROPERTIES.get(type_, _EMPTY) - _GENERIC


#: Properties every engine's objects have, which say nothing about the engine.
_GENERIC = frozenset({"imported_from", "name", "register", "use", "id"})

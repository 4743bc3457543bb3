"""The options of a `define module { module_type mariadb … }`, with Pandora FMS's names where
one exists (ha_hosts, ha_connect_retries, …). Passwords may be `$USERn$` macros of the
resource file, so that they live there and never in logs, /status, /metrics or /cluster."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shinha.config.loader import Config
from shinha.config.objects import Module
from shinha.errors import ConfigError

#: The data-server's own settings, which any storage module may carry (not MariaDB's).
DATASERVER_OPTIONS = ("retention_days", "stale_after", "jobs_interval")

_MACRO = re.compile(r"\$(USER\d+)\$")


class Node(BaseModel):
    """One database server, as written in `ha_hosts`."""

    model_config = ConfigDict(frozen=True)

    host: str
    port: int = Field(3306, ge=1, le=65535)

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"


class MariadbOptions(BaseModel):
    """A MariaDB storage module's settings."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    module_name: str = ""
    ha_hosts: list[Node] = Field(min_length=1, description="Ordered host:port list; the "
                                 "first is the preferred primary at bootstrap.")
    database: str = Field("shinha", pattern=r"^[A-Za-z0-9_]{1,64}$")
    dbuser: str = Field("shinha", min_length=1, max_length=80)
    dbpass: str = Field("", repr=False)
    ha_dbuser: str = Field("", description="The account that promotes and demotes (needs "
                           "SUPER / READ_ONLY ADMIN, REPLICATION SLAVE ADMIN); default dbuser.")
    ha_dbpass: str = Field("", repr=False)
    repl_dbuser: str = Field("shinha_repl", min_length=1, max_length=80)
    repl_dbpass: str = Field("", repr=False)
    ha_connect_retries: int = Field(3, ge=1, le=100, description="Failed checks of the "
                                    "primary before a failover.")
    ha_check_interval: float = Field(1.0, gt=0, le=300, description="Seconds between two "
                                     "checks of every node.")
    failover_min_interval: float = Field(60.0, ge=0, description="Anti-flap: seconds after "
                                         "a failover before another may happen.")
    connect_timeout: float = Field(2.0, gt=0, le=60)
    semi_sync: bool = Field(False, description="Semi-synchronous replication, AFTER_SYNC: a "
                            "commit returns once a replica has it.")
    semi_sync_timeout: float = Field(1.0, gt=0, le=600, description="Seconds a commit waits "
                                     "for a replica before semi-sync falls back to async "
                                     "(logged, shown as unprotected).")
    ssl_ca: str = ""
    ssl_cert: str = ""
    ssl_key: str = ""
    ssl_verify_server_cert: bool = False

    @field_validator("ha_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            nodes = []
            for item in re.split(r"[\s,]+", value.strip()):
                if not item:
                    continue
                host, sep, port = item.rpartition(":")
                if not sep:
                    host, port = item, "3306"
                if not port.isdigit():
                    raise ValueError(f"{item!r}: expected host:port")
                nodes.append({"host": host, "port": int(port)})
            if len({(n["host"], n["port"]) for n in nodes}) != len(nodes):
                raise ValueError("a node is listed twice")
            return nodes
        return value

    @property
    def admin_user(self) -> str:
        return self.ha_dbuser or self.dbuser

    @property
    def admin_pass(self) -> str:
        return self.ha_dbpass if self.ha_dbuser else self.dbpass

    def secrets(self) -> list[str]:
        """What must never be logged."""
        return [p for p in (self.dbpass, self.ha_dbpass, self.repl_dbpass) if p]


def mariadb_options(module_name: str, options: dict[str, str],
                    resources: dict[str, str]) -> MariadbOptions:
    """Validate a module's options; `$USERn$` in a value is taken from the resource file."""

    def expand(value: str) -> str:
        return _MACRO.sub(lambda m: resources.get(m.group(1), m.group(0)), value)

    values: dict[str, object] = {k: expand(v) for k, v in options.items()}
    values["module_name"] = module_name
    for key in ("semi_sync", "ssl_verify_server_cert"):
        if key in values:
            values[key] = str(values[key]).strip() not in ("0", "", "false", "no")
    try:
        return MariadbOptions.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"module {module_name}: {where}: {err['msg']}") from None


def module_options(module: Module, resources: dict[str, str]) -> MariadbOptions:
    """A `module_type mariadb` module's database options (the data-server's own options,
    DATASERVER_OPTIONS, are the data-server's to read)."""
    options = {k: v for k, v in module.options.items() if k not in DATASERVER_OPTIONS}
    return mariadb_options(module.module_name, options, resources)


def cluster_database(config: Config) -> MariadbOptions | None:
    """The MariaDB module the data-servers use (the same etc/ everywhere), or None when
    they store into SQLite."""
    for server in config.daemons.get("dataserver", {}).values():
        for name in server.modules:
            module = config.modules.get(name)
            if module is not None and module.module_type == "mariadb":
                return module_options(module, config.resources)
    return None

"""What every wire model shares: the schema version, the bounds of numbers, the roles, the
fence an arbiter signs its calls with, how to reach a daemon, and the error bodies."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
#: Every integer on the wire fits a database's BIGINT (a 400-digit one is a 400, not a 500).
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
#: Epochs are counters: this bound keeps a forged one from breaking arithmetic and metrics.
MAX_EPOCH = 2**53
Role = Literal["arbiter", "scheduler", "poller", "dataserver", "receiver"]
ROLES: tuple[Role, ...] = ("arbiter", "scheduler", "poller", "dataserver", "receiver")


class Finite(BaseModel):
    """Base of every model on the wire: no NaN or infinity in any number (JSON cannot carry
    them, and one of them in a queue blocked a receiver for good)."""

    model_config = ConfigDict(allow_inf_nan=False)


class Wire(Finite):
    """Base of every wire payload: strict about unknown fields, carries the schema version."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)


class Fence(Finite):
    """Who dispatched this, under which epoch, from which configuration."""

    model_config = ConfigDict(extra="forbid")

    epoch: int = Field(ge=0, le=MAX_EPOCH)
    arbiter: str = Field(max_length=255)
    config_hash: str = Field(max_length=128)


class DaemonRef(Finite):
    """How to reach a daemon."""

    model_config = ConfigDict(extra="forbid")

    name: str
    role: Role
    address: str
    port: Int64
    use_ssl: bool = False
    spare: bool = False
    realm: str = ""

    @property
    def url(self) -> str:
        scheme = "https" if self.use_ssl else "http"
        return f"{scheme}://{self.address}:{self.port}"


class FencedRefusal(Wire):
    """409: the request came from an epoch lower than the one this daemon holds."""

    error: Literal["stale_epoch"] = "stale_epoch"
    epoch: Int64
    message: str


class NotLeading(Finite):
    """409 from an arbiter that does not lead: only the leading one acts."""

    error: Literal["not_leading"] = "not_leading"
    message: str
    leader: str = Field("", description="The arbiter the daemons last saw leading ('' when "
                        "none is known).")


class ErrorBody(Finite):
    """Every 4xx/5xx body."""

    error: str
    message: str
    field: str | None = None

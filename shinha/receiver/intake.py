"""What a receiver accepts at its door: everything the next hop would refuse is a 400 here,
naming the item and the field (a configured host *and* service, a time within a sane window of
now), so that nothing it answers 202 for can be refused later."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from shinha.config.mainfile import MainConfig
from shinha.errors import RequestError
from shinha.perfdata import parse_output
from shinha.wire import CheckResult, ExternalCommand, PassiveResult, ReceiverCatalog


@dataclass(frozen=True)
class Window:
    """The times a passive result or command may carry, around now."""

    max_age: float
    max_future: float

    def check(self, when: float, now: float, field: str) -> None:
        if when > now + self.max_future:
            raise RequestError(400, "invalid", f"{field}: time {when:.0f} is more than "
                               f"{self.max_future:.0f} s in the future (passive_result_max_"
                               "future); check the sender's clock", field)
        if when < now - self.max_age:
            raise RequestError(400, "invalid", f"{field}: time {when:.0f} is more than "
                               f"{self.max_age:.0f} s in the past (passive_result_max_age)",
                               field)


class Catalog:
    """The hosts and services an arbiter dispatched, and the limits of the main file."""

    def __init__(self, main: MainConfig, catalog: ReceiverCatalog) -> None:
        self.catalog_hash = catalog.catalog_hash
        self.hosts = frozenset(catalog.services)
        self.services = frozenset((host, service) for host, names in catalog.services.items()
                                  for service in names)
        self.max_output = main.max_plugins_output_length
        self.window = Window(float(main.passive_result_max_age),
                             float(main.passive_result_max_future))

    def left(self, host: str, service: str) -> str | None:
        """Why an item queued for `host` (and `service`) can no longer be taken: its host or
        service left the configuration since it was accepted (None: it is still there)."""
        if host not in self.hosts:
            return f"host {host!r} is no longer in the configuration"
        if service and (host, service) not in self.services:
            return f"service {service!r} of host {host!r} is no longer in the configuration"
        return None

    def check_target(self, host: str, service: str, field: str) -> None:
        """Refuse a host, or a service of a host, that the configuration does not have."""
        if host not in self.hosts:
            raise RequestError(400, "unknown_host", f"{field}: host {host!r} is not in the "
                               "configuration", field)
        if service and (host, service) not in self.services:
            raise RequestError(400, "unknown_service", f"{field}: service {service!r} is not "
                               f"configured on host {host!r}", field)

    def passive(self, passive: PassiveResult, field: str, now: float) -> CheckResult:
        """Validate one passive result and make it the result a scheduler takes."""
        self.check_target(passive.host, passive.service, f"{field}.host")
        when = now if passive.time is None else passive.time
        self.window.check(when, now, f"{field}.time")
        output, long_output, perfdata = parse_output(
            passive.output + (f"|{passive.perfdata}" if passive.perfdata else ""),
            self.max_output)
        return CheckResult(result_id=passive.result_id or uuid.uuid4().hex,
                           host=passive.host, service=passive.service,
                           return_code=passive.return_code, output=output,
                           long_output=passive.long_output or long_output,
                           perfdata=perfdata, started=when, finished=when, passive=True)

    def command(self, item: CheckResult | ExternalCommand, field: str, now: float) -> None:
        """Validate a parsed command line's target and time."""
        if isinstance(item, CheckResult):
            self.check_target(item.host, item.service, field)
            self.window.check(item.finished, now, field)
            return
        if item.host:
            self.check_target(item.host, item.service, field)
        self.window.check(item.entry_time, now, field)

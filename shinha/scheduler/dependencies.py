"""Host and service dependencies (Nagios): a dependent's checks are skipped, or its
notifications silenced, while a master is in one of the dependency's failure states.

The master's last hard state counts (Nagios with soft_state_dependencies off), `p` while it was
never checked; outside its dependency_period a dependency never fails; with inherits_parent it
also fails when the master's own dependencies fail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from shinha.scheduler.items import CheckItem, Key
from shinha.scheduler.notify import letter
from shinha.scheduler.state import PENDING
from shinha.wire import Dependency

Kind = Literal["execution", "notification"]


class Dependencies:
    """The dependencies of a part, by dependent."""

    def __init__(self, in_period: Callable[[str, float], bool]) -> None:
        self.in_period = in_period
        self.by_dependent: dict[Key, list[Dependency]] = {}

    def load(self, dependencies: list[Dependency], items: dict[Key, CheckItem]) -> None:
        self.by_dependent = {}
        for dep in dependencies:
            self.by_dependent.setdefault((dep.host, dep.service), []).append(dep)

    def fails(self, key: Key, kind: Kind, wall: float, items: dict[Key, CheckItem],
              seen: frozenset[Key] = frozenset()) -> bool:
        """Whether a `kind` dependency of `key` fails now."""
        deps = self.by_dependent.get(key)
        if not deps:
            return False
        for dep in deps:
            criteria = (dep.execution_failure_criteria if kind == "execution"
                        else dep.notification_failure_criteria)
            master_key = (dep.master_host, dep.master_service)
            master = items.get(master_key)
            if master is None or not criteria or "n" in criteria:
                continue
            if dep.dependency_period and not self.in_period(dep.dependency_period, wall):
                continue
            ms = master.state
            state = PENDING if ms.state == PENDING else ms.last_hard_state
            if letter(not dep.master_service, state) in criteria:
                return True
            if dep.inherits_parent and master_key not in seen and self.fails(
                    master_key, kind, wall, items, seen | {key}):
                return True
        return False

"""The checks of a scheduler part: each host and service with its expanded command line, its
intervals in seconds, its owning poller, its state and its place in the timetable."""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, field
from datetime import datetime

from shinha.config.macros import MacroContext, command_line, split_check_command
from shinha.config.objects import Command, Host, Service
from shinha.config.timeperiod import Timeperiod
from shinha.scheduler.state import CheckState
from shinha.wire import SCHEMA_VERSION, CheckJob, SchedulerPart

Key = tuple[str, str]
TIMEOUT_STATES = {"o": 0, "w": 1, "c": 2, "u": 3}


@dataclass(slots=True)
class CheckItem:
    """One host (service "") or service of the part, as the scheduler runs it."""

    key: Key
    state: CheckState
    command_line: str
    module_type: str
    timeout: float
    timeout_state: int
    check_interval: float
    retry_interval: float
    active: bool
    passive: bool
    poller: str
    poller_tag: str
    check_period: str
    parents: tuple[str, ...] = ()
    next_due: float = 0.0
    generation: int = 0
    job_id: str = ""
    scheduled_wall: float = 0.0
    #: The CheckJob JSON of this item without job_id and due (made once: see job_json).
    job_prefix: str = ""

    def interval(self) -> float:
        """Seconds until the next check: the retry interval while in a SOFT problem."""
        if self.state.state_type == "SOFT" and self.state.problem:
            return self.retry_interval
        return self.check_interval

    def job(self) -> CheckJob:
        """The job of the current run (job_id, scheduled_wall)."""
        return CheckJob.model_validate_json(self.job_json())

    def job_json(self) -> str:
        """The CheckJob of the current run as JSON. Only job_id and due change from run to
        run, so the rest is serialized once: a scheduler hands out thousands a second."""
        if not self.job_prefix:
            static = CheckJob(job_id="", host=self.key[0], service=self.key[1],
                              command_line=self.command_line, module_type=self.module_type,
                              timeout=self.timeout, timeout_state=self.timeout_state, due=0.0,
                              poller_tag=self.poller_tag)
            self.job_prefix = static.model_dump_json(exclude={"job_id", "due"})[:-1]
        return f'{self.job_prefix},"job_id":"{self.job_id}","due":{self.scheduled_wall!r}}}'


def pull_reply(jobs_json: list[str]) -> bytes:
    """The PullReply of jobs, from their JSON (job_json; tests/test_wire.py parses it)."""
    return f'{{"schema_version":{SCHEMA_VERSION},"jobs":[{",".join(jobs_json)}]}}'.encode()


def build_items(part: SchedulerPart) -> dict[Key, CheckItem]:
    """Turn a part into check items, command lines expanded once with the config macros."""
    commands: dict[str, Command] = {c.command_name: c for c in part.commands}
    hosts: dict[str, Host] = {h.host_name: h for h in part.hosts}
    settings = part.settings
    unit = float(settings.interval_length)
    items: dict[Key, CheckItem] = {}
    for host in part.hosts:
        ctx = MacroContext(host=host, resources=part.resources)
        items[(host.host_name, "")] = _item(
            (host.host_name, ""), host, ctx, commands, unit, settings.host_check_timeout, 1,
            host.parents)
    for svc in part.services:
        owner = hosts.get(svc.host_name)
        if owner is None:
            continue
        ctx = MacroContext(host=owner, service=svc, resources=part.resources)
        items[(svc.host_name, svc.service_description)] = _item(
            (svc.host_name, svc.service_description), svc, ctx, commands, unit,
            settings.service_check_timeout,
            TIMEOUT_STATES[settings.service_check_timeout_state], ())
    return items


def _item(key: Key, obj: Host | Service, ctx: MacroContext, commands: dict[str, Command],
          unit: float, default_timeout: int, timeout_state: int,
          parents: tuple[str, ...]) -> CheckItem:
    name, _ = split_check_command(obj.check_command) if obj.check_command else ("", [])
    command = commands.get(name)
    line = command_line(obj.check_command, command.command_line, ctx) if command else ""
    timeout = command.timeout if command and command.timeout > 0 else default_timeout
    poller_tag = obj.poller_tag if obj.poller_tag != "None" or command is None else (
        command.poller_tag)
    return CheckItem(
        key=key, state=CheckState(host=key[0], service=key[1],
                                  max_attempts=obj.max_check_attempts),
        command_line=line, module_type=command.module_type if command else "fork",
        timeout=float(timeout), timeout_state=timeout_state,
        check_interval=obj.check_interval * unit, retry_interval=obj.retry_interval * unit,
        active=bool(line) and obj.active_checks_enabled and obj.check_interval > 0,
        passive=obj.passive_checks_enabled, poller=obj.poller, poller_tag=poller_tag,
        check_period=obj.check_period, parents=parents)


def initial_offset(key: Key, interval: float) -> float:
    """Spread first checks over the first interval, the same way on every restart."""
    digest = hashlib.blake2b(f"{key[0]}\0{key[1]}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") / 2**64) * max(interval, 0.0)


@dataclass
class Timetable:
    """The checks by due time (monotonic). Stale heap entries are skipped by generation."""

    heap: list[tuple[float, int, Key, int]] = field(default_factory=list)
    seq: int = 0

    def schedule(self, item: CheckItem, due: float) -> None:
        item.generation += 1
        item.next_due = due
        self.seq += 1
        heapq.heappush(self.heap, (due, self.seq, item.key, item.generation))

    def next_due(self) -> float | None:
        return self.heap[0][0] if self.heap else None

    def pop_due(self, now: float, items: dict[Key, CheckItem]) -> list[CheckItem]:
        out: list[CheckItem] = []
        heap = self.heap
        while heap and heap[0][0] <= now:
            _, _, key, generation = heapq.heappop(heap)
            item = items.get(key)
            if item is not None and item.generation == generation:
                out.append(item)
        return out


def period_allows(item: CheckItem, periods: dict[str, Timeperiod], wall: float) -> float:
    """Return 0 when the check may run at `wall`, else the seconds until its period opens
    (-1: it never opens within the horizon)."""
    if not item.check_period:
        return 0.0
    period = periods.get(item.check_period)
    if period is None:
        return 0.0
    when = datetime.fromtimestamp(wall).astimezone()
    if period.is_valid(when, periods):
        return 0.0
    nxt = period.next_valid(when, periods)
    if nxt is None:
        return -1.0
    return max(1.0, nxt.timestamp() - wall)

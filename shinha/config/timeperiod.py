"""Nagios timeperiods: parse the date-range grammar and answer "is this time in the period?".

Every entry line is a day specification followed by time ranges, e.g. `monday 09:00-17:00`,
`day -1 00:00-24:00`, `thursday -1 november 00:00-24:00`, `2026-12-24 - 2027-01-02 / 2 ...`.
As in Nagios, when several kinds of entry match one day the most specific kind alone decides
that day: calendar date > month date > day of month > nth weekday of a month > nth weekday >
weekday. `exclude` removes the times of other timeperiods.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from shinha.config.objects import ConfigObject, Names

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
Kind = Literal["calendar", "month_date", "month_day", "month_week_day", "week_day", "weekday"]
PRECEDENCE: tuple[Kind, ...] = ("calendar", "month_date", "month_day", "month_week_day",
                                "week_day", "weekday")

_TIME = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_NUM = re.compile(r"^-?\d+$")


class TimeperiodSyntaxError(ValueError):
    """An entry of a timeperiod is not in the Nagios date-range grammar."""


class DaySpec(BaseModel):
    """One end of a day range: which fields are set depends on the entry's kind."""

    year: int = 0
    month: int = 0  # 1-12, 0: every month
    day: int = 0  # day of month, negative counts from the end
    weekday: int = -1  # 0 = monday
    nth: int = 0  # nth weekday of the month, negative counts from the end


class DateRange(BaseModel):
    """One timeperiod line: a range of days, an optional skip, the times of those days."""

    kind: Kind
    start: DaySpec
    end: DaySpec
    skip: int = Field(1, ge=1)
    times: list[tuple[int, int]] = Field(description="Minute ranges [start, end) in the day.")
    text: str

    def matches(self, d: date) -> bool:
        """Tell whether day `d` is one of this entry's days."""
        if self.kind == "weekday":
            return d.weekday() == self.start.weekday
        if self.kind == "calendar":
            day0 = date(self.start.year, self.start.month, self.start.day)
            day1 = (date(self.end.year, self.end.month, self.end.day) if self.end.year
                    else (date.max if self.skip > 1 else day0))
            return day0 <= d <= day1 and (d - day0).days % self.skip == 0
        step = self._resolver()
        for period in (self._period_of(d, -1), self._period_of(d, 0)):
            first = step(self.start, period)
            last_period = period
            last = step(self.end, last_period) if first else None
            if first and last and last < first:
                last = step(self.end, self._shift(last_period, 1))
            if first and last and first <= d <= last and (d - first).days % self.skip == 0:
                return True
        return False

    def _resolver(self) -> Callable[[DaySpec, tuple[int, int]], date | None]:
        return {
            "month_date": _resolve_month_date,
            "month_day": _resolve_month_day,
            "month_week_day": _resolve_month_week_day,
            "week_day": _resolve_week_day,
        }[self.kind]

    def _period_of(self, d: date, offset: int) -> tuple[int, int]:
        """The (year, month) whose instance of this range could contain `d`."""
        if self.kind in ("month_date", "month_week_day"):
            return (d.year + offset, 0)
        return self._shift((d.year, d.month), offset)

    def _shift(self, period: tuple[int, int], by: int) -> tuple[int, int]:
        year, month = period
        if month == 0:
            return (year + by, 0)
        index = year * 12 + (month - 1) + by
        return (index // 12, index % 12 + 1)


def _month_length(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _day_in(year: int, month: int, day: int) -> date | None:
    length = _month_length(year, month)
    real = day if day > 0 else length + day + 1
    return date(year, month, real) if 1 <= real <= length else None


def _resolve_month_date(spec: DaySpec, period: tuple[int, int]) -> date | None:
    return _day_in(period[0], spec.month, spec.day)


def _resolve_month_day(spec: DaySpec, period: tuple[int, int]) -> date | None:
    return _day_in(period[0], period[1], spec.day)


def _nth_weekday(year: int, month: int, weekday: int, nth: int) -> date | None:
    days = [d for d in range(1, _month_length(year, month) + 1)
            if date(year, month, d).weekday() == weekday]
    index = nth - 1 if nth > 0 else len(days) + nth
    return date(year, month, days[index]) if 0 <= index < len(days) else None


def _resolve_month_week_day(spec: DaySpec, period: tuple[int, int]) -> date | None:
    return _nth_weekday(period[0], spec.month, spec.weekday, spec.nth)


def _resolve_week_day(spec: DaySpec, period: tuple[int, int]) -> date | None:
    return _nth_weekday(period[0], period[1], spec.weekday, spec.nth)


def parse_times(text: str) -> list[tuple[int, int]]:
    """Parse `HH:MM-HH:MM[,HH:MM-HH:MM…]` into minute ranges."""
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        part = part.strip()
        m = _TIME.match(part)
        if not m:
            raise TimeperiodSyntaxError(f"'{part}' is not a time range HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(x) for x in m.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59 or start > 1440 or end > 1440:
            raise TimeperiodSyntaxError(f"'{part}' is not a valid time of day")
        if end < start:
            raise TimeperiodSyntaxError(f"'{part}' ends before it starts")
        ranges.append((start, end))
    return ranges


def _one_day(words: list[str]) -> tuple[Kind, DaySpec]:
    """Parse one day specification (one side of a `-` range)."""
    text = " ".join(words)
    if len(words) == 1 and (m := _ISO.match(words[0])):
        year, month, day = (int(x) for x in m.groups())
        try:
            date(year, month, day)
        except ValueError as exc:
            raise TimeperiodSyntaxError(f"'{words[0]}' is not a date: {exc}") from None
        return "calendar", DaySpec(year=year, month=month, day=day)
    if len(words) == 2 and words[0] == "day" and _NUM.match(words[1]):
        return "month_day", DaySpec(day=_day_number(words[1]))
    if len(words) == 1 and words[0] in WEEKDAYS:
        return "weekday", DaySpec(weekday=WEEKDAYS.index(words[0]))
    if len(words) == 2 and words[0] in MONTHS and _NUM.match(words[1]):
        return "month_date", DaySpec(month=MONTHS.index(words[0]) + 1,
                                     day=_day_number(words[1]))
    if len(words) in (2, 3) and words[0] in WEEKDAYS and _NUM.match(words[1]):
        nth = int(words[1])
        if nth == 0 or abs(nth) > 5:
            raise TimeperiodSyntaxError(f"'{text}': the weekday offset must be 1..5 or -1..-5")
        spec = DaySpec(weekday=WEEKDAYS.index(words[0]), nth=nth)
        if len(words) == 2:
            return "week_day", spec
        if words[2] not in MONTHS:
            raise TimeperiodSyntaxError(f"'{words[2]}' is not a month")
        spec.month = MONTHS.index(words[2]) + 1
        return "month_week_day", spec
    raise TimeperiodSyntaxError(f"'{text}' is not a day: expected a weekday, 'day N', "
                                "'MONTH N', 'WEEKDAY N [MONTH]' or YYYY-MM-DD")


def _day_number(word: str) -> int:
    n = int(word)
    if n == 0 or abs(n) > 31:
        raise TimeperiodSyntaxError(f"day {n} is out of range (1..31 or -1..-31)")
    return n


def parse_entry(text: str) -> DateRange:
    """Parse one timeperiod line (day specification and time ranges)."""
    words = text.lower().split()
    split_at = next((i for i, w in enumerate(words) if w[:1].isdigit() and ":" in w), None)
    if split_at is None:
        raise TimeperiodSyntaxError(f"'{text}' has no time range (HH:MM-HH:MM)")
    times = parse_times("".join(words[split_at:]))
    days = words[:split_at]
    skip = 1
    if "/" in days:
        at = days.index("/")
        if at != len(days) - 2 or not days[-1].isdigit() or int(days[-1]) < 1:
            raise TimeperiodSyntaxError(f"'{text}': '/ N' must end the day range, N >= 1")
        skip = int(days[-1])
        days = days[:at]
    if not days:
        raise TimeperiodSyntaxError(f"'{text}' has no day specification")
    if "-" in days:
        at = days.index("-")
        left, right = days[:at], days[at + 1 :]
        kind, start = _one_day(left)
        if kind == "weekday":
            raise TimeperiodSyntaxError(f"'{text}': plain weekdays cannot form a range")
        if len(right) == 1 and _NUM.match(right[0]) and kind in ("month_date", "month_day"):
            end = start.model_copy(update={"day": _day_number(right[0])})
        elif len(right) == 1 and _NUM.match(right[0]) and kind == "calendar":
            raise TimeperiodSyntaxError(f"'{text}': a date range needs YYYY-MM-DD on both sides")
        else:
            end_kind, end = _one_day(right)
            if end_kind != kind:
                raise TimeperiodSyntaxError(f"'{text}': both ends of a range must be the same "
                                            "kind of day")
        if kind == "calendar" and (end.year, end.month, end.day) < (
                start.year, start.month, start.day):
            raise TimeperiodSyntaxError(f"'{text}': the range ends before it starts")
        return DateRange(kind=kind, start=start, end=end, skip=skip, times=times, text=text)
    kind, start = _one_day(days)
    end = (DaySpec() if skip > 1 else start) if kind == "calendar" else start
    return DateRange(kind=kind, start=start, end=end, skip=skip, times=times, text=text)


def _subtract(ranges: list[tuple[int, int]], cut: list[tuple[int, int]]) -> list[tuple[int, int]]:
    result = ranges
    for c0, c1 in cut:
        nxt: list[tuple[int, int]] = []
        for r0, r1 in result:
            if c1 <= r0 or c0 >= r1:
                nxt.append((r0, r1))
                continue
            if r0 < c0:
                nxt.append((r0, c0))
            if c1 < r1:
                nxt.append((c1, r1))
        result = nxt
    return result


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for r0, r1 in sorted(ranges):
        if r1 <= r0:
            continue
        if merged and r0 <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], r1))
        else:
            merged.append((r0, r1))
    return merged


class Timeperiod(ConfigObject):
    """A timeperiod: when checks and notifications may happen."""

    object_type: ClassVar[str] = "timeperiod"
    key_property: ClassVar[str] = "timeperiod_name"
    list_properties: ClassVar[frozenset[str]] = frozenset({"exclude"})

    timeperiod_name: str = Field(description="Unique name.")
    alias: str = Field("", description="Long name.")
    exclude: Names = Field((), description="Timeperiods whose times are "
                           "removed from this one.")
    ranges: tuple[DateRange, ...] = Field((), description="Entries: `monday "
                                    "09:00-17:00`, `day 1 - 15 00:00-24:00`, `2026-12-24 "
                                    "00:00-24:00`, `thursday -1 november …`, `… / N`.")

    def day_ranges(self, d: date, periods: dict[str, Timeperiod],
                   _depth: int = 0) -> list[tuple[int, int]]:
        """Return the valid minute ranges of day `d`, exclusions removed."""
        own: list[tuple[int, int]] = []
        for kind in PRECEDENCE:
            hits = [r for r in self.ranges if r.kind == kind and r.matches(d)]
            if hits:
                own = _merge([t for r in hits for t in r.times])
                break
        if not own or _depth > 16:
            return own
        for name in self.exclude:
            other = periods.get(name)
            if other is not None:
                own = _subtract(own, other.day_ranges(d, periods, _depth + 1))
        return own

    def is_valid(self, when: datetime, periods: dict[str, Timeperiod]) -> bool:
        """Tell whether local time `when` lies in this timeperiod."""
        minute = when.hour * 60 + when.minute
        return any(a <= minute < b for a, b in self.day_ranges(when.date(), periods))

    def next_valid(self, when: datetime, periods: dict[str, Timeperiod],
                   horizon_days: int = 400) -> datetime | None:
        """Return the first time at or after `when` in this timeperiod (None if none soon)."""
        day = when.date()
        minute = when.hour * 60 + when.minute
        for offset in range(horizon_days):
            current = day + timedelta(days=offset)
            for a, b in self.day_ranges(current, periods):
                if offset == 0 and b <= minute:
                    continue
                start = max(a, minute) if offset == 0 else a
                if offset == 0 and start == minute:
                    return when
                base = datetime.combine(current, datetime.min.time(), tzinfo=when.tzinfo)
                return base + timedelta(minutes=start)
        return None

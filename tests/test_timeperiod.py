"""Timeperiods: every entry form of the Nagios documentation, precedence, exclusions,
wrap-around ranges, next_valid, and syntax errors.

Dates are fixed and their weekdays asserted, e.g. 2026-03-16 is the third Monday of March.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from datetime import date, datetime

import pytest

from shinha.config.loader import LoadResult
from shinha.config.timeperiod import Timeperiod, TimeperiodSyntaxError, parse_entry

LoadObjects = Callable[..., LoadResult]  # the load_objects fixture of conftest.py

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


def at(text: str) -> datetime:
    """`2026-03-16 10:00` as a naive local datetime."""
    return datetime.fromisoformat(text)


def day(text: str, weekday: int) -> date:
    """A date, checked to be the weekday the test thinks it is."""
    d = date.fromisoformat(text)
    assert d.weekday() == weekday, f"{text} is not weekday {weekday}"
    return d


#: Every tree has one host, so that these tests do not depend on
#: test_a_tree_of_only_timeperiods_loads.
A_HOST = "define host {\n    host_name localhost\n}\n"


def periods_of(load_objects: LoadObjects, text: str) -> dict[str, Timeperiod]:
    """Load timeperiod definitions from a real file; the load must have no error."""
    result = load_objects(textwrap.dedent(text) + A_HOST)
    assert not result.errors, "\n".join(map(str, result.errors))
    assert result.config is not None
    return result.config.timeperiods


def one_period(load_objects: LoadObjects, *entries: str) -> tuple[Timeperiod,
                                                                 dict[str, Timeperiod]]:
    body = "\n".join(f"    {e}" for e in entries)
    periods = periods_of(load_objects, f"define timeperiod {{\n    timeperiod_name tp\n"
                                       f"    alias test\n{body}\n}}\n")
    return periods["tp"], periods


def valid_days(tp: Timeperiod, periods: dict[str, Timeperiod], first: str,
               last: str) -> list[str]:
    """The ISO dates from `first` to `last` (inclusive) with any valid time."""
    out = []
    d = date.fromisoformat(first)
    end = date.fromisoformat(last)
    while d <= end:
        if tp.day_ranges(d, periods):
            out.append(d.isoformat())
        d = date.fromordinal(d.toordinal() + 1)
    return out


# -- the entry forms ---------------------------------------------------------------------------


def test_weekday_entry_is_valid_in_its_hours_only(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "monday 09:00-17:00")
    day("2026-03-16", MON)
    assert tp.is_valid(at("2026-03-16 09:00"), periods)
    assert tp.is_valid(at("2026-03-16 16:59"), periods)
    assert not tp.is_valid(at("2026-03-16 08:59"), periods)
    assert not tp.is_valid(at("2026-03-16 17:00"), periods)  # the end is exclusive
    assert not tp.is_valid(at("2026-03-17 10:00"), periods)  # a tuesday
    assert tp.day_ranges(day("2026-03-23", MON), periods) == [(9 * 60, 17 * 60)]


def test_every_weekday_of_a_24x7(load_objects: LoadObjects) -> None:
    days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    tp, periods = one_period(load_objects, *(f"{d} 00:00-24:00" for d in days))
    assert valid_days(tp, periods, "2026-03-01", "2026-03-31") == [
        f"2026-03-{n:02d}" for n in range(1, 32)]
    assert tp.day_ranges(date(2026, 3, 1), periods) == [(0, 1440)]


def test_day_of_month(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "day 15 00:00-24:00")
    assert valid_days(tp, periods, "2026-01-01", "2026-04-30") == [
        "2026-01-15", "2026-02-15", "2026-03-15", "2026-04-15"]


def test_last_day_of_month_follows_month_length(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "day -1 00:00-24:00")
    assert valid_days(tp, periods, "2026-01-01", "2026-04-30") == [
        "2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]
    assert tp.day_ranges(date(2028, 2, 29), periods)  # leap year
    assert not tp.day_ranges(date(2028, 2, 28), periods)


def test_month_date(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "july 4 00:00-24:00")
    assert valid_days(tp, periods, "2026-01-01", "2027-12-31") == ["2026-07-04", "2027-07-04"]


def test_month_date_counted_from_the_end(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "february -2 00:00-24:00", "march -1 08:00-09:00")
    assert valid_days(tp, periods, "2026-01-01", "2026-12-31") == ["2026-02-27", "2026-03-31"]
    assert tp.day_ranges(date(2028, 2, 28), periods) == [(0, 1440)]  # 2028 is a leap year
    assert tp.day_ranges(date(2026, 3, 31), periods) == [(480, 540)]


def test_nth_weekday_of_every_month(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "monday 3 00:00-24:00")
    assert valid_days(tp, periods, "2026-03-01", "2026-05-31") == [
        day("2026-03-16", MON).isoformat(), day("2026-04-20", MON).isoformat(),
        day("2026-05-18", MON).isoformat()]


def test_last_weekday_of_every_month(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "friday -1 00:00-24:00")
    assert valid_days(tp, periods, "2026-03-01", "2026-04-30") == [
        day("2026-03-27", FRI).isoformat(), day("2026-04-24", FRI).isoformat()]


def test_nth_weekday_of_a_given_month(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "thursday -1 november 00:00-24:00",
                             "monday 1 september 00:00-24:00")
    assert valid_days(tp, periods, "2026-01-01", "2026-12-31") == [
        day("2026-09-07", MON).isoformat(), day("2026-11-26", THU).isoformat()]


def test_calendar_date(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "2026-12-25 10:00-12:00")
    assert valid_days(tp, periods, "2025-01-01", "2027-12-31") == ["2026-12-25"]
    assert tp.is_valid(at("2026-12-25 11:59"), periods)
    assert not tp.is_valid(at("2026-12-25 12:00"), periods)


def test_range_of_days_of_month(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "day 1 - 15 00:00-24:00")
    assert valid_days(tp, periods, "2026-03-01", "2026-03-31") == [
        f"2026-03-{n:02d}" for n in range(1, 16)]


def test_range_of_month_dates_across_two_months(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "april 10 - may 15 00:00-24:00")
    valid = valid_days(tp, periods, "2026-01-01", "2026-12-31")
    assert valid[0] == "2026-04-10"
    assert valid[-1] == "2026-05-15"
    assert len(valid) == 21 + 15


def test_range_within_one_month_with_day_only_on_the_right(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "july 10 - 15 00:00-24:00")
    assert valid_days(tp, periods, "2026-07-01", "2026-07-31") == [
        f"2026-07-{n:02d}" for n in range(10, 16)]


def test_range_of_nth_weekdays_of_every_month(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "monday 3 - thursday 4 00:00-24:00")
    day("2026-03-16", MON)  # third monday of March 2026
    day("2026-03-26", THU)  # fourth thursday of March 2026
    assert valid_days(tp, periods, "2026-03-01", "2026-03-31") == [
        f"2026-03-{n:02d}" for n in range(16, 27)]
    day("2026-04-20", MON)
    day("2026-04-23", THU)
    assert valid_days(tp, periods, "2026-04-01", "2026-04-30") == [
        f"2026-04-{n:02d}" for n in range(20, 24)]


def test_range_of_nth_weekdays_of_given_months(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "tuesday 1 april - friday 2 october 00:00-24:00")
    valid = valid_days(tp, periods, "2026-01-01", "2026-12-31")
    assert valid[0] == day("2026-04-07", TUE).isoformat()
    assert valid[-1] == day("2026-10-09", FRI).isoformat()
    assert len(valid) == (date(2026, 10, 9) - date(2026, 4, 7)).days + 1


def test_range_of_calendar_dates(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "2026-01-01 - 2026-02-01 00:00-24:00")
    valid = valid_days(tp, periods, "2025-12-01", "2026-03-01")
    assert valid[0] == "2026-01-01"
    assert valid[-1] == "2026-02-01"
    assert len(valid) == 32


# -- skips (`/ N`) -----------------------------------------------------------------------------


def test_skip_in_a_range_of_calendar_dates(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "2026-01-01 - 2026-02-01 / 3 00:00-24:00")
    valid = valid_days(tp, periods, "2025-12-01", "2026-03-01")
    assert valid == [date.fromordinal(date(2026, 1, 1).toordinal() + n).isoformat()
                     for n in range(0, 32, 3)]
    assert valid[-1] == "2026-01-31"  # 2026-02-01 is 31 days after the start: not a 3rd day


def test_skip_from_a_calendar_date_goes_on_forever(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "2026-04-01 / 7 00:00-24:00")
    assert valid_days(tp, periods, "2026-03-20", "2026-04-30") == [
        "2026-04-01", "2026-04-08", "2026-04-15", "2026-04-22", "2026-04-29"]
    assert tp.day_ranges(date(2031, 3, 26), periods)  # 1820 days = 260 weeks later
    assert not tp.day_ranges(date(2031, 3, 27), periods)


def test_skip_in_a_range_of_days_of_month(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "day 1 - 15 / 5 00:00-24:00")
    assert valid_days(tp, periods, "2026-03-01", "2026-04-30") == [
        "2026-03-01", "2026-03-06", "2026-03-11", "2026-04-01", "2026-04-06", "2026-04-11"]


def test_skip_in_a_range_of_month_dates(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "july 10 - 15 / 2 00:00-24:00")
    assert valid_days(tp, periods, "2026-07-01", "2026-07-31") == [
        "2026-07-10", "2026-07-12", "2026-07-14"]


def test_skip_in_a_range_of_nth_weekdays(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "monday 3 - thursday 4 / 2 00:00-24:00")
    assert valid_days(tp, periods, "2026-03-01", "2026-03-31") == [
        "2026-03-16", "2026-03-18", "2026-03-20", "2026-03-22", "2026-03-24", "2026-03-26"]


# -- time ranges -------------------------------------------------------------------------------


def test_several_time_ranges_in_one_entry(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "monday 00:00-09:00,17:00-24:00")
    assert tp.day_ranges(day("2026-03-16", MON), periods) == [(0, 540), (1020, 1440)]
    assert tp.is_valid(at("2026-03-16 08:59"), periods)
    assert not tp.is_valid(at("2026-03-16 09:00"), periods)
    assert not tp.is_valid(at("2026-03-16 12:00"), periods)
    assert tp.is_valid(at("2026-03-16 17:00"), periods)
    assert tp.is_valid(at("2026-03-16 23:59"), periods)


def test_time_ranges_may_be_spaced_after_commas() -> None:
    entry = parse_entry("tuesday 00:00-09:00, 12:00-13:00 ,17:00-24:00")
    assert entry.times == [(0, 540), (720, 780), (1020, 1440)]


# -- precedence --------------------------------------------------------------------------------


def test_calendar_date_with_no_time_blanks_out_a_weekday(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "monday 09:00-17:00", "2026-03-16 00:00-00:00")
    assert not tp.is_valid(at("2026-03-16 10:00"), periods)
    assert tp.day_ranges(day("2026-03-16", MON), periods) == []
    assert tp.is_valid(at("2026-03-23 10:00"), periods)  # the next monday is untouched


def test_holiday_template_inherited_with_use_blanks_out_weekdays(
        load_objects: LoadObjects) -> None:
    """The sample `24x7_sans_holidays` of Nagios: holidays come in with `use`."""
    periods = periods_of(load_objects, """
        define timeperiod {
            name             us-holidays
            timeperiod_name  us-holidays
            alias            U.S. Holidays
            december 25      00:00-00:00
            thursday 4 november 00:00-00:00
        }
        define timeperiod {
            timeperiod_name  24x7_sans_holidays
            alias            24x7 Sans Holidays
            use              us-holidays
            sunday    00:00-24:00
            monday    00:00-24:00
            tuesday   00:00-24:00
            wednesday 00:00-24:00
            thursday  00:00-24:00
            friday    00:00-24:00
            saturday  00:00-24:00
        }
        """)
    tp = periods["24x7_sans_holidays"]
    assert not tp.is_valid(datetime.combine(day("2026-12-25", FRI), datetime.min.time()),
                           periods)
    assert not tp.is_valid(datetime.combine(day("2026-11-26", THU), datetime.min.time()),
                           periods)
    assert tp.is_valid(at("2026-12-24 12:00"), periods)
    assert tp.is_valid(at("2026-11-19 12:00"), periods)


#: One entry of each kind, all matching monday 2026-03-16 (the 3rd monday, day 16 of March),
#: from the most specific kind to the least; each has its own hour.
ALL_KINDS = (
    ("2026-03-16 06:00-07:00", (360, 420)),  # calendar date
    ("march 16 05:00-06:00", (300, 360)),  # month date
    ("day 16 04:00-05:00", (240, 300)),  # day of month
    ("monday 3 march 03:00-04:00", (180, 240)),  # nth weekday of a month
    ("monday 3 02:00-03:00", (120, 180)),  # nth weekday
    ("monday 01:00-02:00", (60, 120)),  # weekday
)


@pytest.mark.parametrize("first", range(len(ALL_KINDS)),
                         ids=[text.rsplit(" ", 1)[0] for text, _ in ALL_KINDS])
def test_most_specific_kind_alone_decides_the_day(load_objects: LoadObjects,
                                                 first: int) -> None:
    entries = [text for text, _ in ALL_KINDS[first:]]
    tp, periods = one_period(load_objects, *entries)
    assert tp.day_ranges(day("2026-03-16", MON), periods) == [ALL_KINDS[first][1]]
    # A monday that matches only the weekday entry keeps the weekday hours.
    assert tp.day_ranges(day("2026-03-23", MON), periods) == [(60, 120)]


def test_entries_of_one_kind_add_up(load_objects: LoadObjects) -> None:
    # A choice of shinha: Nagios 4 (_get_matching_timerange) takes the times of only one
    # matching entry of the winning kind; shinha takes the union of them all.
    tp, periods = one_period(load_objects, "2026-03-01 - 2026-03-31 08:00-09:00",
                             "2026-03-16 10:00-11:00", "monday 12:00-13:00")
    assert tp.day_ranges(day("2026-03-16", MON), periods) == [(480, 540), (600, 660)]


# -- exclusions --------------------------------------------------------------------------------

WORKHOURS = """
    define timeperiod {
        name            workhours
        timeperiod_name workhours
        alias           Work hours
        monday    09:00-17:00
        tuesday   09:00-17:00
        wednesday 09:00-17:00
        thursday  09:00-17:00
        friday    09:00-17:00
    }
    define timeperiod {
        timeperiod_name lunch
        alias           Lunch
        monday    12:00-13:00
        tuesday   12:00-13:00
        wednesday 12:00-13:00
        thursday  12:00-13:00
        friday    12:00-13:00
    }
    define timeperiod {
        timeperiod_name holidays
        alias           Holidays
        2026-12-24 - 2026-12-28 00:00-24:00
        january 1       00:00-24:00
    }
    define timeperiod {
        timeperiod_name office
        alias           Office hours but lunch and holidays
        use             workhours
        exclude         lunch,holidays
    }
"""


def test_exclude_removes_the_hours_of_another_period(load_objects: LoadObjects) -> None:
    periods = periods_of(load_objects, WORKHOURS)
    office = periods["office"]
    day("2026-03-16", MON)
    assert office.day_ranges(date(2026, 3, 16), periods) == [(540, 720), (780, 1020)]
    assert office.is_valid(at("2026-03-16 11:59"), periods)
    assert not office.is_valid(at("2026-03-16 12:30"), periods)
    assert office.is_valid(at("2026-03-16 13:00"), periods)
    # The excluded periods are untouched.
    assert periods["workhours"].is_valid(at("2026-03-16 12:30"), periods)


def test_exclude_removes_whole_days(load_objects: LoadObjects) -> None:
    periods = periods_of(load_objects, WORKHOURS)
    office = periods["office"]
    assert valid_days(office, periods, "2026-12-21", "2027-01-04") == [
        "2026-12-21", "2026-12-22", "2026-12-23", "2026-12-29", "2026-12-30", "2026-12-31",
        "2027-01-04"]  # 2027-01-01 is a friday, a holiday; 02 and 03 are a weekend
    day("2027-01-01", FRI)


def test_nested_exclusion_gives_back_what_the_inner_period_excludes(
        load_objects: LoadObjects) -> None:
    periods = periods_of(load_objects, """
        define timeperiod {
            timeperiod_name outer
            alias           Monday but the busy hours
            monday          00:00-24:00
            exclude         busy
        }
        define timeperiod {
            timeperiod_name busy
            alias           Busy but the break
            monday          08:00-18:00
            exclude         break
        }
        define timeperiod {
            timeperiod_name break
            alias           Break
            monday          12:00-13:00
        }
        """)
    outer = periods["outer"]
    assert outer.day_ranges(day("2026-03-16", MON), periods) == [
        (0, 480), (720, 780), (1080, 1440)]
    assert outer.is_valid(at("2026-03-16 12:30"), periods)
    assert not outer.is_valid(at("2026-03-16 10:00"), periods)
    assert outer.is_valid(at("2026-03-16 07:59"), periods)


# -- wrap-around ranges ------------------------------------------------------------------------


def test_month_date_range_wraps_over_new_year(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "november 20 - february 5 00:00-24:00")
    for valid in ("2026-01-01", "2026-02-05", "2026-11-20", "2026-12-31", "2027-01-15",
                  "2027-02-05"):
        assert tp.day_ranges(date.fromisoformat(valid), periods), valid
    for invalid in ("2026-02-06", "2026-06-01", "2026-11-19", "2027-02-06"):
        assert not tp.day_ranges(date.fromisoformat(invalid), periods), invalid


def test_day_range_wraps_over_month_end(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "day 25 - 5 00:00-24:00")
    assert valid_days(tp, periods, "2026-02-20", "2026-03-10") == [
        "2026-02-25", "2026-02-26", "2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02",
        "2026-03-03", "2026-03-04", "2026-03-05"]
    assert tp.day_ranges(date(2026, 1, 3), periods)  # from December 25 of the year before


# -- next_valid --------------------------------------------------------------------------------


def test_next_valid_later_the_same_day(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "monday 09:00-17:00")
    assert tp.next_valid(at("2026-03-16 07:30"), periods) == at("2026-03-16 09:00")


def test_next_valid_inside_the_period_is_now(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "monday 09:00-17:00")
    now = at("2026-03-16 10:15:30")
    assert tp.next_valid(now, periods) == now


def test_next_valid_the_next_day(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "monday 09:00-17:00", "tuesday 08:00-10:00")
    assert tp.next_valid(at("2026-03-16 17:00"), periods) == at("2026-03-17 08:00")


def test_next_valid_a_week_later(load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "monday 09:00-17:00")
    assert tp.next_valid(at("2026-03-16 18:00"), periods) == at("2026-03-23 09:00")


def test_next_valid_skips_excluded_hours_and_days(load_objects: LoadObjects) -> None:
    periods = periods_of(load_objects, WORKHOURS)
    office = periods["office"]
    assert office.next_valid(at("2026-03-16 12:10"), periods) == at("2026-03-16 13:00")
    # Wednesday 23rd after work: 24 to 28 are holidays (26-27 a weekend), then monday 29th.
    day("2026-12-23", WED)
    assert office.next_valid(at("2026-12-23 17:30"), periods) == at("2026-12-29 09:00")


def test_next_valid_is_none_when_nothing_comes_within_the_horizon(
        load_objects: LoadObjects) -> None:
    tp, periods = one_period(load_objects, "2020-01-01 00:00-24:00", "2027-01-15 10:00-11:00")
    assert tp.next_valid(at("2026-03-16 00:00"), periods, horizon_days=30) is None
    assert tp.next_valid(at("2026-03-16 00:00"), periods) == at("2027-01-15 10:00")
    assert tp.next_valid(at("2027-01-15 11:00"), periods) is None


def test_next_valid_is_none_when_everything_is_excluded(load_objects: LoadObjects) -> None:
    periods = periods_of(load_objects, """
        define timeperiod {
            timeperiod_name never
            alias           Never
            monday          00:00-24:00
            exclude         mondays
        }
        define timeperiod {
            timeperiod_name mondays
            alias           Mondays
            monday          00:00-24:00
        }
        """)
    assert periods["never"].next_valid(at("2026-03-16 00:00"), periods) is None


# -- syntax errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("entry", [
    "monday 9-17",  # no HH:MM
    "monday 09:00",  # no range
    "monday 09:00-17",  # bad time
    "monday 09:00-25:00",  # 25:00
    "monday 25:00-26:00",
    "monday 09:60-10:00",
    "monday 17:00-09:00",  # ends before it starts
    "day 0 00:00-24:00",
    "day 32 00:00-24:00",
    "funday 09:00-17:00",  # unknown word
    "monday - friday 09:00-17:00",  # plain weekdays cannot form a range
    "monday 6 00:00-24:00",  # there is no 6th monday
    "monday 3 smarch 00:00-24:00",
    "2026-02-30 00:00-24:00",
    "2026-03-01 - 2026-02-01 00:00-24:00",  # ends before it starts
    "2026-03-01 / 0 00:00-24:00",
    "day 1 - july 4 00:00-24:00",  # two kinds of day
])
def test_syntax_errors_raise(entry: str) -> None:
    with pytest.raises(TimeperiodSyntaxError):
        parse_entry(entry)


def test_syntax_error_in_a_file_names_the_file_and_line(load_objects: LoadObjects) -> None:
    result = load_objects("""\
        define timeperiod {
            timeperiod_name tp
            alias           test
            monday          09:00-17:00
            tuesday         09:00-25:00
            day 0           00:00-24:00
        }
        """ + A_HOST)
    errors = [e for e in result.errors if "timeperiod 'tp'" in e.message]
    assert [(e.line, e.file is not None and e.file.endswith("objects.cfg")) for e in errors] == [
        (5, True), (6, True)], "\n".join(map(str, result.errors))
    assert "25:00" in errors[0].message
    assert "day 0" in errors[1].message
    # The good entry is kept.
    assert result.config is not None
    tp = result.config.timeperiods["tp"]
    assert tp.is_valid(at("2026-03-16 10:00"), result.config.timeperiods)


def test_a_tree_of_only_timeperiods_loads(load_objects: LoadObjects) -> None:
    result = load_objects("""
        define timeperiod {
            timeperiod_name tp
            alias           test
            monday          09:00-17:00
        }
        """)
    assert not result.errors
    assert result.config is not None
    assert list(result.config.timeperiods) == ["tp"]

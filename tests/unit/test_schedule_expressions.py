"""Schedule expressions: rate and cron parsing, next and previous fire times, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from firebox.runtime.errors import BadRequest
from firebox.runtime.events.schedule import CronSchedule, RateSchedule, parse


def at(text: str) -> datetime:
    """`2024-01-31 10:15` or `2024-01-31 10:15:30` as a UTC datetime."""
    fmt = "%Y-%m-%d %H:%M:%S" if text.count(":") == 2 else "%Y-%m-%d %H:%M"
    return datetime.strptime(text, fmt).replace(tzinfo=UTC)


ANCHOR = at("2024-01-01 00:00")


# --- rate ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("rate(1 minute)", "2024-01-01 00:00", "2024-01-01 00:01"),
        ("rate(1 minute)", "2024-01-01 00:00:59", "2024-01-01 00:01"),
        ("rate(1 minute)", "2024-01-01 00:01", "2024-01-01 00:02"),
        ("rate(5 minutes)", "2024-01-01 00:07", "2024-01-01 00:10"),
        ("rate(1 hour)", "2024-01-01 05:30", "2024-01-01 06:00"),
        ("rate(2 hours)", "2024-01-01 05:30", "2024-01-01 06:00"),
        ("rate(2 hours)", "2024-01-01 06:00", "2024-01-01 08:00"),
        ("rate(1 day)", "2024-01-01 00:00", "2024-01-02 00:00"),
        ("rate(3 days)", "2024-01-05 12:00", "2024-01-07 00:00"),
        # Before the anchor, the first tick is one interval after it.
        ("rate(5 minutes)", "2023-06-01 00:00", "2024-01-01 00:05"),
    ],
)
def test_rate_next_after(expression: str, after: str, expected: str) -> None:
    schedule = parse(expression, anchor=ANCHOR)
    assert isinstance(schedule, RateSchedule)
    assert schedule.next_after(at(after)) == at(expected)


def test_rate_counts_from_its_anchor() -> None:
    anchor = at("2024-01-01 00:00:17")
    schedule = parse("rate(1 minute)", anchor=anchor)
    assert schedule.next_after(at("2024-01-01 00:00:20")) == at("2024-01-01 00:01:17")
    assert schedule.latest_at_or_before(at("2024-01-01 00:05:00")) == at("2024-01-01 00:04:17")
    assert schedule.latest_at_or_before(at("2024-01-01 00:01:17")) == at("2024-01-01 00:01:17")
    # The anchor itself is no tick.
    assert schedule.latest_at_or_before(at("2024-01-01 00:01:00")) is None


def test_rate_without_anchor_counts_from_the_epoch() -> None:
    assert parse("rate(1 hour)").next_after(at("2024-03-03 03:03")) == at("2024-03-03 04:00")


def test_naive_and_offset_times_are_utc() -> None:
    schedule = parse("rate(1 hour)", anchor=ANCHOR)
    assert schedule.next_after(datetime(2024, 1, 1, 5, 30)) == at("2024-01-01 06:00")
    plus_two = datetime(2024, 1, 1, 7, 30, tzinfo=timezone(timedelta(hours=2)))
    assert schedule.next_after(plus_two) == at("2024-01-01 06:00")


def test_seconds_are_test_only() -> None:
    with pytest.raises(BadRequest, match="FIREBOX_SCHEDULE_ALLOW_SECONDS=1"):
        parse("rate(10 seconds)", allow_seconds=False)
    schedule = parse("rate(10 seconds)", anchor=ANCHOR, allow_seconds=True)
    assert schedule.next_after(at("2024-01-01 00:00:15")) == at("2024-01-01 00:00:20")
    one = parse("rate(1 second)", allow_seconds=True)
    assert isinstance(one, RateSchedule) and one.interval == timedelta(seconds=1)


def test_seconds_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FIREBOX_SCHEDULE_ALLOW_SECONDS", raising=False)
    with pytest.raises(BadRequest, match="test-only"):
        parse("rate(1 second)")
    monkeypatch.setenv("FIREBOX_SCHEDULE_ALLOW_SECONDS", "1")
    assert isinstance(parse("rate(1 second)"), RateSchedule)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("rate(1 minutes)", "singular for a value of 1: 'minute'"),
        ("rate(5 minute)", "plural for a value of 5: 'minutes'"),
        ("rate(2 day)", "plural for a value of 2: 'days'"),
        ("rate(0 minutes)", "the value must be a positive whole number, not '0'"),
        ("rate(-1 minutes)", "positive whole number"),
        ("rate(1.5 hours)", "positive whole number"),
        ("rate(1 week)", "the unit 'week' is not one of minute(s), hour(s), day(s)"),
        ("rate(5)", "rate(<value> <unit>)"),
        ("rate(5  minutes)", "rate(<value> <unit>)"),
        ("every 5 minutes", "must be rate(<value> <unit>) or cron("),
        ("", "must be rate("),
    ],
)
def test_rate_errors(expression: str, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse(expression, allow_seconds=False)
    assert message in caught.value.message


# --- cron ---------------------------------------------------------------------------------

# 2024-01-31 is a Wednesday; 2024 is a leap year.
NOW = "2024-01-31 10:15:30"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("cron(0 10 * * ? *)", "2024-02-01 10:00"),
        ("cron(15 10 * * ? *)", "2024-02-01 10:15"),
        ("cron(16 10 * * ? *)", "2024-01-31 10:16"),
        ("cron(* * * * ? *)", "2024-01-31 10:16"),
        ("cron(0/15 * * * ? *)", "2024-01-31 10:30"),
        ("cron(*/20 * * * ? *)", "2024-01-31 10:20"),
        ("cron(5/20 * * * ? *)", "2024-01-31 10:25"),
        ("cron(10-20/5 * * * ? *)", "2024-01-31 10:20"),
        ("cron(0,45 9,10 * * ? *)", "2024-01-31 10:45"),
        ("cron(0 18 ? * MON-FRI *)", "2024-01-31 18:00"),
        ("cron(0 8 ? * SAT,SUN *)", "2024-02-03 08:00"),
        ("cron(0 8 ? * 1 *)", "2024-02-04 08:00"),  # 1 is SUN
        ("cron(0 8 ? * 7 *)", "2024-02-03 08:00"),  # 7 is SAT
        ("cron(0 8 ? * fri-mon *)", "2024-02-02 08:00"),  # a wrapping range, any case
        ("cron(0 0 1 * ? *)", "2024-02-01 00:00"),
        ("cron(0 0 31 * ? *)", "2024-03-31 00:00"),  # February has no 31st
        ("cron(0 12 29 2 ? *)", "2024-02-29 12:00"),
        ("cron(0 12 29 FEB ? 2025-2028)", "2028-02-29 12:00"),
        ("cron(0 0 1 JAN ? *)", "2025-01-01 00:00"),
        ("cron(0 0 1 1/3 ? *)", "2024-04-01 00:00"),
        ("cron(0 0 1 NOV-FEB ? *)", "2024-02-01 00:00"),
        ("cron(30 22 * * ? 2030)", "2030-01-01 22:30"),
        ("cron(0 0 * * ? 2024/2)", "2024-02-01 00:00"),
        # L, W, #
        ("cron(0 0 L * ? *)", "2024-02-29 00:00"),
        ("cron(0 12 L * ? *)", "2024-01-31 12:00"),
        ("cron(0 0 L-1 * ? *)", "2024-02-28 00:00"),
        ("cron(0 0 LW * ? *)", "2024-02-29 00:00"),
        ("cron(0 0 LW 3 ? *)", "2024-03-29 00:00"),  # 31 is a Sunday: Friday the 29th
        ("cron(0 0 15W * ? *)", "2024-02-15 00:00"),
        ("cron(0 0 1W 6 ? *)", "2024-06-03 00:00"),  # the 1st is a Saturday: Monday the 3rd
        ("cron(0 0 16W 6 ? *)", "2024-06-17 00:00"),  # the 16th is a Sunday: Monday
        ("cron(0 0 15W 6 ? *)", "2024-06-14 00:00"),  # the 15th is a Saturday: Friday
        ("cron(0 0 30W 6 ? *)", "2024-06-28 00:00"),  # Sunday the 30th, last day: Friday
        ("cron(0 0 ? * 3#2 *)", "2024-02-13 00:00"),  # the second Tuesday
        ("cron(0 0 ? * MON#1 *)", "2024-02-05 00:00"),
        ("cron(0 0 ? * 5#5 *)", "2024-02-29 00:00"),  # a fifth Thursday
        ("cron(0 0 ? * 6L *)", "2024-02-23 00:00"),  # the last Friday
        ("cron(0 0 ? * FRIL *)", "2024-02-23 00:00"),
        ("cron(0 0 ? * L *)", "2024-02-03 00:00"),  # `L` alone: SAT
        ("cron(0 0 ? * 2,6L *)", "2024-02-05 00:00"),
    ],
)
def test_cron_next_after(expression: str, expected: str) -> None:
    schedule = parse(expression)
    assert isinstance(schedule, CronSchedule)
    assert schedule.next_after(at(NOW)) == at(expected)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("cron(0 10 * * ? *)", "2024-01-31 10:00"),
        ("cron(15 10 * * ? *)", "2024-01-31 10:15"),  # at the minute itself
        ("cron(16 10 * * ? *)", "2024-01-30 10:16"),
        ("cron(0 18 ? * MON-FRI *)", "2024-01-30 18:00"),
        ("cron(0 0 ? * 6L *)", "2024-01-26 00:00"),
        ("cron(0 0 L * ? *)", "2024-01-31 00:00"),  # January's last day is today
        ("cron(0 0 L 2 ? *)", "2023-02-28 00:00"),
        ("cron(0 0 1 1 ? 2023)", "2023-01-01 00:00"),
        ("cron(0 0 1 1 ? 2025)", None),
    ],
)
def test_cron_latest_at_or_before(expression: str, expected: str | None) -> None:
    want = at(expected) if expected else None
    assert parse(expression).latest_at_or_before(at(NOW)) == want


def test_cron_next_after_is_strict_and_chains() -> None:
    schedule = parse("cron(0/30 9-10 ? * MON-FRI *)")
    t, seen = at("2024-02-02 09:00"), []  # a Friday
    for _ in range(6):
        nxt = schedule.next_after(t)
        assert nxt is not None and nxt > t
        seen.append(nxt.strftime("%a %H:%M"))
        t = nxt
    assert seen == ["Fri 09:30", "Fri 10:00", "Fri 10:30", "Mon 09:00", "Mon 09:30", "Mon 10:00"]


def test_cron_that_never_fires_again() -> None:
    assert parse("cron(0 0 1 1 ? 2023)").next_after(at(NOW)) is None
    assert parse("cron(0 0 30 2 ? *)").next_after(at(NOW)) is None
    assert parse("cron(0 0 1 1 ? 2199)").next_after(at("2199-06-01 00:00")) is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("cron(0 10 * * *)", "6 fields (Minutes Hours Day-of-month Month Day-of-week Year), got 5"),
        ("cron(0 10 * * * *)", "exactly one of Day-of-month and Day-of-week must be '?'"),
        ("cron(0 10 ? * ? *)", "exactly one of Day-of-month and Day-of-week must be '?'"),
        ("cron(0 10 1 * MON *)", "exactly one of Day-of-month and Day-of-week"),
        ("cron(60 10 * * ? *)", "Minutes field: '60' is out of range 0-59"),
        ("cron(0 24 * * ? *)", "Hours field: '24' is out of range 0-23"),
        ("cron(0 0 0 * ? *)", "Day-of-month field: '0' is out of range 1-31"),
        ("cron(0 0 32 * ? *)", "Day-of-month field: '32' is out of range 1-31"),
        ("cron(0 0 1 13 ? *)", "Month field: '13' is out of range 1-12"),
        ("cron(0 0 1 JANUARY ? *)", "Month field: 'JANUARY' is not a number 1-12 or JAN-DEC"),
        ("cron(0 0 ? * 8 *)", "Day-of-week field: '8' is out of range 1-7"),
        ("cron(0 0 ? * 0 *)", "Day-of-week field: '0' is out of range 1-7"),
        ("cron(0 0 ? * FUN *)", "Day-of-week field: 'FUN' is not a number 1-7 or SUN-SAT"),
        ("cron(0 0 ? * MON/2 *)", "Day-of-week field: 'MON/2' uses '/'"),
        ("cron(0 0 ? * 3#6 *)", "Day-of-week field: '3#6' must be n#k with k from 1 to 5"),
        ("cron(0 0 ? * 3#x *)", "Day-of-week field: '3#X' must be n#k"),
        ("cron(0 0 ? * 3W *)", "Day-of-week field: '3W' is not a number"),
        ("cron(0 0 * * ? 1969)", "Year field: '1969' is out of range 1970-2199"),
        ("cron(0 0 * * ? 2200)", "Year field: '2200' is out of range 1970-2199"),
        ("cron(0/0 * * * ? *)", "Minutes field: '0/0' has a step that is not a positive"),
        ("cron(x * * * ? *)", "Minutes field: 'X' is not a number 0-59"),
        ("cron(1-x * * * ? *)", "Minutes field: '1-X' is not a number 0-59"),
        ("cron(? * * * ? *)", "Minutes field: '?' uses '?'"),
        ("cron(0 0 L-31 * ? *)", "Day-of-month field: 'L-31' must be L-n"),
        ("cron(0 0 32W * ? *)", "Day-of-month field: '32W' is out of range 1-31"),
        ("cron(0 0 1L * ? *)", "Day-of-month field: '1L' is not L, L-n, LW or nW"),
        ("cron(0 0 1#2 * ? *)", "Day-of-month field: '1#2' is not L, L-n, LW or nW"),
        ("cron(0 0 , * ? *)", "Day-of-month field: '' is not a number"),
    ],
)
def test_cron_errors(expression: str, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse(expression)
    assert message in caught.value.message


def test_expressions_keep_their_text() -> None:
    assert parse(" cron(0 10 * * ? *) ").expression == "cron(0 10 * * ? *)"
    assert parse("rate(5 minutes)").expression == "rate(5 minutes)"

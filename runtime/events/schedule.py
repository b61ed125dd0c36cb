"""Schedule expressions, `rate(...)` and `cron(...)` in EventBridge syntax, and their fire times
(events layer, pure: no clock, no I/O).

`rate(1 minute)`, `rate(5 minutes)`, `rate(1 hour)`, `rate(2 hours)`, `rate(1 day)`: a value
and a unit, singular for 1 and plural otherwise. A rate's ticks are `anchor + k * interval`
for k >= 1 (the scheduler anchors at the schedule's creation, to the whole second).
`rate(N seconds)` is a test-only unit, accepted only with FIREBOX_SCHEDULE_ALLOW_SECONDS=1.

`cron(Minutes Hours Day-of-month Month Day-of-week Year)`, always in UTC:

    Minutes       0-59                 , - * /
    Hours         0-23                 , - * /
    Day-of-month  1-31                 , - * ? / L L-n LW nW
    Month         1-12 or JAN-DEC      , - * /
    Day-of-week   1-7 or SUN-SAT       , - * ? L nL n#k      (1 = SUN, 7 = SAT)
    Year          1970-2199            , - * /

Exactly one of Day-of-month and Day-of-week is `?`. `L` is the last day of the month (or,
alone in Day-of-week, SAT); `nW` the weekday nearest day n within its month; `nL` the last
weekday n of the month; `n#k` the k-th weekday n of the month. A range may wrap (`FRI-MON`).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from firebox.runtime.config import FIREBOX_SCHEDULE_ALLOW_SECONDS
from firebox.runtime.errors import BadRequest

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ALLOW_SECONDS_ENV = FIREBOX_SCHEDULE_ALLOW_SECONDS.name
FIELDS = ("Minutes", "Hours", "Day-of-month", "Month", "Day-of-week", "Year")
BOUNDS = {"Minutes": (0, 59), "Hours": (0, 23), "Day-of-month": (1, 31), "Month": (1, 12),
          "Day-of-week": (1, 7), "Year": (1970, 2199)}  # fmt: skip
MONTHS = {n.upper(): i for i, n in enumerate(calendar.month_abbr) if n}
WEEKDAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
UNITS = {"minute": 60, "hour": 3600, "day": 86400, "second": 1}
RATE_RE = re.compile(r"^rate\((\S+) (\S+)\)$")
# Longer expressions are refused before any parsing (EventBridge's limit is 256).
MAX_EXPRESSION_CHARS = 256
# The longest rate: ticks further apart than this would leave datetime's range (year 9999).
MAX_RATE = timedelta(days=365 * 100)


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


@dataclass(frozen=True)
class RateSchedule:
    """A `rate(...)` schedule: ticks at `anchor + k * interval`, k >= 1."""

    expression: str
    interval: timedelta
    anchor: datetime = EPOCH

    def next_after(self, t: datetime) -> datetime | None:
        """Return the first tick strictly after `t` (a naive `t` is UTC)."""
        k = max(1, (_utc(t) - self.anchor) // self.interval + 1)
        return self.anchor + k * self.interval

    def latest_at_or_before(self, t: datetime) -> datetime | None:
        """Return the last tick at or before `t`, or None if there is none yet."""
        k = (_utc(t) - self.anchor) // self.interval
        return self.anchor + k * self.interval if k >= 1 else None


@dataclass(frozen=True)
class CronSchedule:
    """A `cron(...)` schedule; fields are parsed into sorted values plus L/W/# rules."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    day_rules: tuple[tuple[str, int], ...]  # ("L", n) last-n, ("LW", 0), ("W", n)
    months: tuple[int, ...]
    weekdays: frozenset[int]
    weekday_rules: tuple[tuple[str, int, int], ...]  # ("L", wd, 0), ("#", wd, k)
    years: tuple[int, ...]
    by_weekday: bool  # Day-of-month is `?`: days are chosen by Day-of-week

    def next_after(self, t: datetime) -> datetime | None:
        """Return the first fire time strictly after `t`, or None past the last year."""
        start = _utc(t).replace(second=0, microsecond=0) + timedelta(minutes=1)
        for year in (y for y in self.years if y >= start.year):
            for month in self.months:
                if (year, month) < (start.year, start.month):
                    continue
                first = start.day if (year, month) == (start.year, start.month) else 1
                for day in range(first, calendar.monthrange(year, month)[1] + 1):
                    if not self.matches_day(year, month, day):
                        continue
                    today = (year, month, day) == (start.year, start.month, start.day)
                    floor = (start.hour, start.minute) if today else (0, 0)
                    hm = next(((h, m) for h in self.hours for m in self.minutes
                               if (h, m) >= floor), None)  # fmt: skip
                    if hm is not None:
                        return datetime(year, month, day, *hm, tzinfo=UTC)
        return None

    def latest_at_or_before(self, t: datetime) -> datetime | None:
        """Return the last fire time at or before `t`, or None before the first year."""
        end = _utc(t).replace(second=0, microsecond=0)
        for year in (y for y in reversed(self.years) if y <= end.year):
            for month in reversed(self.months):
                if (year, month) > (end.year, end.month):
                    continue
                same = (year, month) == (end.year, end.month)
                last = end.day if same else calendar.monthrange(year, month)[1]
                for day in range(last, 0, -1):
                    if not self.matches_day(year, month, day):
                        continue
                    ceiling = (end.hour, end.minute) if same and day == end.day else (23, 59)
                    hm = next(((h, m) for h in reversed(self.hours)
                               for m in reversed(self.minutes) if (h, m) <= ceiling), None)  # fmt: skip
                    if hm is not None:
                        return datetime(year, month, day, *hm, tzinfo=UTC)
        return None

    def matches_day(self, year: int, month: int, day: int) -> bool:
        """Return whether the day fields (Day-of-month or Day-of-week) select this date."""
        last = calendar.monthrange(year, month)[1]
        if self.by_weekday:
            weekday = date(year, month, day).isoweekday() % 7 + 1  # SUN = 1 ... SAT = 7
            if weekday in self.weekdays:
                return True
            return any(
                wd == weekday and (day + 7 > last if kind == "L" else (day - 1) // 7 + 1 == k)
                for kind, wd, k in self.weekday_rules
            )
        if day in self.days:
            return True
        for kind, n in self.day_rules:
            if kind == "L" and day == last - n:
                return True
            if kind == "LW" and day == _nearest_weekday(year, month, last):
                return True
            if kind == "W" and n <= last and day == _nearest_weekday(year, month, n):
                return True
        return False


Schedule = RateSchedule | CronSchedule


def _nearest_weekday(year: int, month: int, day: int) -> int:
    """Return the weekday (MON-FRI) nearest `day` without leaving the month."""
    last = calendar.monthrange(year, month)[1]
    weekday = date(year, month, day).weekday()  # MON = 0
    if weekday == 5:
        return day - 1 if day > 1 else day + 2
    if weekday == 6:
        return day + 1 if day < last else day - 2
    return day


def parse(
    expression: str, *, anchor: datetime | None = None, allow_seconds: bool | None = None
) -> Schedule:
    """Parse a `rate(...)` or `cron(...)` expression; `anchor` is where rate ticks count from.

    `allow_seconds` None reads FIREBOX_SCHEDULE_ALLOW_SECONDS. Raises BadRequest naming
    the bad field.
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise BadRequest(
            f"a schedule expression is at most {MAX_EXPRESSION_CHARS} characters,"
            f" got {len(expression)}"
        )
    if not expression.isascii():
        raise BadRequest(f"schedule expression {expression!r} must be ASCII")
    text = expression.strip()
    if text.startswith("rate(") and text.endswith(")"):
        if allow_seconds is None:
            allow_seconds = FIREBOX_SCHEDULE_ALLOW_SECONDS.get()
        return _parse_rate(text, _utc(anchor) if anchor else EPOCH, allow_seconds)
    if text.startswith("cron(") and text.endswith(")"):
        return _parse_cron(text)
    raise BadRequest(
        f"schedule expression {expression!r} must be rate(<value> <unit>) or "
        "cron(<Minutes> <Hours> <Day-of-month> <Month> <Day-of-week> <Year>)"
    )


def _parse_rate(text: str, anchor: datetime, allow_seconds: bool) -> RateSchedule:
    match = RATE_RE.match(text)
    if match is None:
        raise BadRequest(f"{text}: a rate is `rate(<value> <unit>)`, e.g. rate(5 minutes)")
    raw, unit = match.groups()
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise BadRequest(f"{text}: the value must be a positive whole number, not {raw!r}")
    value = int(raw)
    base = unit[:-1] if unit.endswith("s") else unit
    if base not in UNITS:
        raise BadRequest(f"{text}: the unit {unit!r} is not one of minute(s), hour(s), day(s)")
    if base == "second" and not allow_seconds:
        raise BadRequest(
            f"{text}: seconds are a test-only unit; the unit must be minute(s), hour(s) or "
            f"day(s) (set {ALLOW_SECONDS_ENV}=1 to allow seconds in tests)"
        )
    wanted = base if value == 1 else base + "s"
    if unit != wanted:
        number = "singular" if value == 1 else "plural"
        raise BadRequest(f"{text}: the unit must be {number} for a value of {value}: {wanted!r}")
    if value * UNITS[base] > MAX_RATE.total_seconds():
        raise BadRequest(f"{text}: a rate is at most {MAX_RATE.days} days")
    return RateSchedule(text, timedelta(seconds=value * UNITS[base]), anchor)


def _parse_cron(text: str) -> CronSchedule:
    parts = text[5:-1].split()
    if len(parts) != 6:
        raise BadRequest(
            f"{text}: a cron expression has 6 fields (Minutes Hours Day-of-month Month "
            f"Day-of-week Year), got {len(parts)}"
        )
    dom, dow = parts[2], parts[4]
    if (dom == "?") == (dow == "?"):
        raise BadRequest(
            f"{text}: exactly one of Day-of-month and Day-of-week must be '?' "
            f"(got {dom!r} and {dow!r})"
        )
    values: dict[str, set[int]] = {}
    day_rules: list[tuple[str, int]] = []
    weekday_rules: list[tuple[str, int, int]] = []
    for name, field in zip(FIELDS, parts, strict=True):
        values[name] = set()
        if field == "?" and name in ("Day-of-month", "Day-of-week"):
            continue
        for item in field.upper().split(","):
            if name == "Day-of-week" and item == "L":
                item = "SAT"  # `L` alone is the last day of the week
            bad = _Field(text, name, item)
            if name == "Day-of-month" and (rule := _day_rule(item, bad)) is not None:
                day_rules.append(rule)
            elif name == "Day-of-week" and (wrule := _weekday_rule(item, bad)) is not None:
                weekday_rules.append(wrule)
            else:
                values[name] |= _values(item, bad)
    return CronSchedule(
        text,
        minutes=tuple(sorted(values["Minutes"])),
        hours=tuple(sorted(values["Hours"])),
        days=frozenset(values["Day-of-month"]),
        day_rules=tuple(day_rules),
        months=tuple(sorted(values["Month"])),
        weekdays=frozenset(values["Day-of-week"]),
        weekday_rules=tuple(weekday_rules),
        years=tuple(sorted(values["Year"])),
        by_weekday=dom == "?",
    )


@dataclass(frozen=True)
class _Field:
    """One comma-separated item of one cron field, for values and error messages."""

    text: str
    name: str
    item: str

    def error(self, why: str) -> BadRequest:
        return BadRequest(f"{self.text}: {self.name} field: {self.item!r} {why}")

    def number(self, raw: str) -> int:
        low, high = BOUNDS[self.name]
        names = MONTHS if self.name == "Month" else WEEKDAYS if self.name == "Day-of-week" else {}
        if raw in names:
            return names[raw]
        if not raw.isdigit():
            hint = {"Month": " or JAN-DEC", "Day-of-week": " or SUN-SAT"}.get(self.name, "")
            raise self.error(f"is not a number {low}-{high}{hint}")
        if not low <= int(raw) <= high:
            raise self.error(f"is out of range {low}-{high}")
        return int(raw)


def _values(item: str, f: _Field) -> set[int]:
    """Return the values of `*`, `a`, `a-b`, `a/s`, `a-b/s`, `*/s` (ranges may wrap)."""
    low, high = BOUNDS[f.name]
    base, slash, raw_step = item.partition("/")
    if slash and f.name == "Day-of-week":
        raise f.error("uses '/', which Day-of-week does not allow")
    if slash and (not raw_step.isdigit() or int(raw_step) < 1):
        raise f.error("has a step that is not a positive whole number")
    step = int(raw_step) if slash else 1
    if base == "*":
        start, end = low, high
    elif "-" in base:
        a, _, b = base.partition("-")
        start, end = f.number(a), f.number(b)
    elif base == "?":
        raise f.error("uses '?', allowed only alone in Day-of-month or Day-of-week")
    else:
        start = f.number(base)
        end = high if slash else start
    span = list(range(start, end + 1)) if start <= end else [
        *range(start, high + 1), *range(low, end + 1)
    ]  # fmt: skip
    return set(span[::step])


def _day_rule(item: str, f: _Field) -> tuple[str, int] | None:
    """Return the Day-of-month rule of `L`, `L-n`, `LW` or `nW`, or None for plain values."""
    if item == "L":
        return ("L", 0)
    if item == "LW":
        return ("LW", 0)
    if item.startswith("L-"):
        if not item[2:].isdigit() or not 0 <= int(item[2:]) <= 30:
            raise f.error("must be L-n with n from 0 to 30")
        return ("L", int(item[2:]))
    if item.endswith("W"):
        return ("W", f.number(item[:-1]))
    if "L" in item or "W" in item or "#" in item:
        raise f.error("is not L, L-n, LW or nW")
    return None


def _weekday_rule(item: str, f: _Field) -> tuple[str, int, int] | None:
    """Return the Day-of-week rule of `nL` or `n#k`, or None for plain values (`L` is SAT)."""
    if "#" in item:
        raw_day, _, raw_k = item.partition("#")
        if not raw_k.isdigit() or not 1 <= int(raw_k) <= 5:
            raise f.error("must be n#k with k from 1 to 5")
        return ("#", f.number(raw_day), int(raw_k))
    if item.endswith("L") and item != "L":
        return ("L", f.number(item[:-1]), 0)
    return None

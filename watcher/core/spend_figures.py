"""Spend figures for the `spend` kind (`watcher.core.spend`): calendar periods in a time
zone, and money spent in a span of time from balance samples. Pure: times are
parameters.

From samples, spend is the fall of the balance between consecutive samples; a rise is a
top-up, a refund or a credit and counts as nothing (never as negative spend), the same
cut as `watcher.core.forecast.segments`. An interval between two samples that straddles
an edge of the span counts in proportion to its part inside, so a window or a midnight
between two polls loses nothing and counts nothing twice.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from watcher.core.model import Amounts

Points = Sequence[tuple[datetime, Decimal]]
Span = tuple[datetime, datetime]


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`. Raises ValueError naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(
            f"unknown time zone {name!r}: give an IANA name such as UTC or Europe/Berlin"
        ) from exc


def local_day(now: datetime, tz: str) -> date:
    """The calendar date at `now` (aware) in zone `tz`."""
    return now.astimezone(zone(tz)).date()


def midnight(day: date, tz: str) -> datetime:
    """The instant `day` begins in zone `tz`, in UTC (arithmetic between two datetimes of
    one zone would ignore a clock change between them)."""
    return datetime.combine(day, time(0), tzinfo=zone(tz)).astimezone(UTC)


def period_start(period: str, now: datetime, tz: str) -> datetime:
    """When the `day` or `month` holding `now` began in zone `tz`."""
    today = local_day(now, tz)
    return midnight(today if period == "day" else today.replace(day=1), tz)


def previous_days(now: datetime, tz: str, count: int) -> list[Span]:
    """The `count` whole days before today in zone `tz`, latest first (a day of a
    clock change is 23 or 25 hours long)."""
    today = local_day(now, tz)
    return [
        (midnight(today - timedelta(days=k), tz), midnight(today - timedelta(days=k - 1), tz))
        for k in range(1, count + 1)
    ]


def previous_windows(now: datetime, window: timedelta, count: int) -> list[Span]:
    """The `count` windows of length `window` before the one ending at `now`, latest first."""
    return [(now - window * (k + 1), now - window * k) for k in range(1, count + 1)]


def ranked(pairs: Iterable[tuple[str, Decimal]]) -> Amounts:
    """Amounts summed by name (products, numbers), largest first (then by name)."""
    sums: dict[str, Decimal] = {}
    for name, amount in pairs:
        sums[name] = sums.get(name, Decimal(0)) + amount
    return tuple(sorted(sums.items(), key=lambda item: (-item[1], item[0])))


def ordered(points: Points) -> list[tuple[datetime, Decimal]]:
    """Samples by time; a repeated time keeps the later value."""
    unique: dict[datetime, Decimal] = {}
    for at, value in points:
        unique[at] = value
    return sorted(unique.items())


def spent(points: Points, start: datetime, end: datetime) -> Decimal:
    """Money spent in [`start`, `end`) from `(time, balance)` samples: the falls between
    consecutive samples, each in proportion to its interval's part inside the span;
    rises (top-ups, credits) count as 0."""
    total = Decimal(0)
    samples = ordered(points)
    for (t0, v0), (t1, v1) in itertools.pairwise(samples):
        inside = min(t1, end) - max(t0, start)
        if v1 >= v0 or inside <= timedelta(0):
            continue
        share = Decimal(inside.total_seconds()) / Decimal((t1 - t0).total_seconds())
        total += (v0 - v1) * min(share, Decimal(1))
    return total


def covered(points: Points, start: datetime) -> bool:
    """True when the samples reach back to `start` (a span they only partly see says
    too little for a baseline)."""
    return bool(points) and min(at for at, _ in points) <= start


def mean_spent(points: Points, spans: Sequence[Span]) -> tuple[Decimal, int] | None:
    """The mean spend of the `spans` the samples cover, and how many they cover; None
    when they cover none."""
    seen = [spent(points, start, end) for start, end in spans if covered(points, start)]
    if not seen:
        return None
    return sum(seen, Decimal(0)) / len(seen), len(seen)

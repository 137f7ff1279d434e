"""Burn-rate forecasts: how fast money is spent, and when it runs out. Pure.

Top-ups are not negative burn: the samples are cut into *segments* wherever the value
rises between two consecutive samples (a top-up, a refund, a credit), and one
least-squares slope is fitted to all segments together, each with its own level
(pooled within-segment regression). The interval that holds a rise says nothing about
spending and is left out; every other interval counts, before and after the top-up.
The projection starts from the current value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from watcher.core.durations import format_duration

# Projections further out than this are "never" (and would overflow a timedelta).
HORIZON = timedelta(days=3650)
_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Burn:
    """A fitted burn rate.

    - `per_hour`: money spent per hour (positive = spending; 0 or less = not spending).
    - `samples`: how many samples the fit used; `span`: time from the first to the last.
    """

    per_hour: Decimal
    samples: int
    span: timedelta


def segments(points: Sequence[tuple[datetime, Decimal]]) -> list[list[tuple[datetime, Decimal]]]:
    """Cut samples where the value rises.

    In: `(time, value)` samples in any order (a repeated time keeps the later value).
    Out: runs of samples, oldest first, within which the value never rises.
    """
    unique: dict[datetime, Decimal] = {}
    for at, value in points:
        unique[at] = value
    out: list[list[tuple[datetime, Decimal]]] = []
    for at, value in sorted(unique.items()):
        if not out or value > out[-1][-1][1]:
            out.append([])
        out[-1].append((at, value))
    return out


def fit_burn(points: Sequence[tuple[datetime, Decimal]]) -> Burn | None:
    """Least-squares burn rate over `points`, top-up jumps left out (see `segments`).

    In: `(time, value)` samples. Out: the `Burn`, or None when no segment holds two
    samples (nothing to fit).
    """
    runs = segments(points)
    if not runs:
        return None
    origin = runs[0][0][0]
    var = cov = 0.0
    for run in runs:
        xs = [(at - origin).total_seconds() / 3600 for at, _ in run]
        ys = [float(value) for _, value in run]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        var += sum((x - mean_x) ** 2 for x in xs)
        cov += sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    if var == 0:
        return None
    per_hour = Decimal(repr(round(-cov / var, 6)))
    if per_hour == 0:  # no "-0.000000"
        per_hour = Decimal(0)
    samples = sum(len(run) for run in runs)
    return Burn(per_hour=per_hour, samples=samples, span=runs[-1][-1][0] - origin)


def runs_out_in(current: Decimal, floor: Decimal, burn: Burn) -> timedelta | None:
    """Time until `current` reaches `floor` at the fitted burn rate.

    Out: `timedelta(0)` when already at or below the floor; None when not spending or
    when it is further out than `HORIZON`.
    """
    if current <= floor:
        return timedelta(0)
    if burn.per_hour <= 0:
        return None
    hours = (current - floor) / burn.per_hour
    if hours * 3600 > Decimal(HORIZON.total_seconds()):
        return None
    return timedelta(seconds=round(float(hours) * 3600))


def per_hour_text(burn: Burn) -> str:
    """The burn rate with two decimals, never negative: `'12.40'`."""
    return str(max(burn.per_hour, Decimal(0)).quantize(_CENT))


def runs_out_text(current: Decimal, floor: Decimal, eta: timedelta | None) -> str:
    """`eta` (rounded to minutes) for people: `never`, `0s` at or below the floor,
    `under 1m` above it but less than half a minute away (never "0s" then), else e.g.
    `6h 46m`."""
    if eta is None:
        return "never"
    if eta == timedelta(0) and current > floor:
        return "under 1m"
    return format_duration(eta)


def eta_phrase(current: Decimal, floor: Decimal, eta: timedelta) -> str:
    """How soon the floor is reached, for a value above it: `within a minute` when
    `eta` rounds to 0, else `in about 6h 46m`."""
    if eta == timedelta(0) and current > floor:
        return "within a minute"
    return f"in about {format_duration(eta)}"

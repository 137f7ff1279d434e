"""Spend: the `spend` rule kind and its evaluation (DESIGN section 4). Pure: `now` is a
parameter.

The figure is the money spent in the rule's calendar `period` (`day` or `month` so far,
in `timezone`) or rolling `window`:
- on a provider with charges (Telnyx) a calendar period comes from its charges summary
  (`AccountSnapshot.charges[timezone]`, a slow source: the last read, also between
  reads), with the top three products;
- every rolling window, and calendar periods elsewhere (Vonage), come from the stored
  balance samples (`watcher.core.spend_figures`: falls of the balance, top-ups cut out).

`above` fires at a threshold (a number, or one per severity); `spike` fires when the
figure is more than `factor` times the mean of equal windows (whole previous days for
`period: day`) within `baseline`, and never below `min_amount`. Baselines the samples do
not cover do not count; with none covered the rule is not judged.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from watcher.core import spend_figures as figures
from watcher.core.durations import Duration, format_duration
from watcher.core.findings import Finding, RuleResult
from watcher.core.model import (
    AccountSnapshot,
    AlertKey,
    Amounts,
    ChargesQuery,
    Severity,
    SourceName,
)
from watcher.core.money import money
from watcher.core.rulekinds import COMMON_PLACEHOLDERS, MAX_LOOKBACK, Threshold, _doc, _HoldsRule

MAX_BASELINE_DAYS = 30  # Telnyx charges ranges are at most 31 days
SAMPLE_BASELINE_DAYS = 6  # balance samples are kept 8 days: today and 6 days before it
TOP = 3  # products (and numbers) a message names
DAY = timedelta(days=1)


class Spike(BaseModel):
    """A spike: more than `factor` times the usual spend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    factor: Annotated[Decimal, Field(gt=1, allow_inf_nan=False)] = _doc(
        "fire when the spend is more than this many times the baseline mean", 3
    )
    baseline: Duration = _doc(
        "the equal windows (whole days for `period: day`) before this one whose mean is "
        "the usual spend",
        "7d",
    )
    min_amount: Annotated[Decimal, Field(ge=0, allow_inf_nan=False)] = _doc(
        "never fire below this spend", 20, default=Decimal(0)
    )


class SpendRule(_HoldsRule):
    """Fires when the money spent in a period or window is above a threshold, or a spike
    against its baseline (`watcher.core.spend`)."""

    placeholders: ClassVar[Mapping[str, str]] = {
        **COMMON_PLACEHOLDERS,
        "value": "e.g. `spent today 312.40 USD (top: Messaging 200.00, Voice 80.00)`",
        "spend": "the spend without currency, e.g. `312.40`",
        "currency": "its currency, e.g. `USD`",
        "period": "what was measured, e.g. `today (UTC)` or `in the last 1h`",
        "baseline": "the baseline mean without currency (spike rules), else empty",
        "products": "the top three products (Telnyx periods), else empty",
        "numbers": "the month's top three phone numbers (`numbers: true`), else empty",
    }

    kind: Literal["spend"] = _doc("money spent in a period or window", "spend")
    period: Literal["day", "month"] | None = _doc(
        "a calendar period so far, in `timezone` (give this or `window`)", "day", default=None
    )
    window: Duration | None = _doc(
        "a rolling window up to now, from balance samples (give this or `period`)",
        "1h",
        default=None,
    )
    timezone: str = _doc(
        "IANA time zone of the calendar `period`", "America/New_York", default="UTC"
    )
    above: Threshold | None = _doc(
        "fire when the spend is above this: a number or a threshold per severity",
        200,
        {"warning": 150, "critical": 300},
        default=None,
    )
    spike: Spike | None = _doc(
        "fire when the spend is a spike against its baseline (give this or `above`)",
        {"factor": 3, "baseline": "7d", "min_amount": 20},
        default=None,
    )
    numbers: bool = _doc(
        "telnyx, with `period`: the message also names the month's top three phone numbers "
        "by charges (read from charges_breakdown every poll.slow_interval)",
        True,
        default=False,
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        figures.zone(value)
        return value

    @model_validator(mode="after")
    def _check(self) -> Self:
        problem = _shape_problem(self) or _span_problem(self) or _level_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def levels(self) -> dict[Severity, Decimal]:
        """Threshold per severity (a plain number uses the rule's `severity`)."""
        if isinstance(self.above, dict):
            return {Severity.parse(k): v for k, v in self.above.items()}
        return {} if self.above is None else {self.level: self.above}

    @property
    def from_samples_span(self) -> timedelta:
        """How far back balance samples are needed if the figure comes from them."""
        baseline = self.spike.baseline if self.spike else timedelta(0)
        if self.window is not None:
            return self.window + baseline
        return DAY + timedelta(hours=2) + baseline if self.period == "day" else timedelta(0)


def _shape_problem(rule: SpendRule) -> str:
    if (rule.period is None) == (rule.window is None):
        return "give exactly one of `period` (day or month) or `window`"
    if (rule.above is None) == (rule.spike is None):
        return "give exactly one of `above` or `spike`"
    if rule.window is not None and "timezone" in rule.model_fields_set:
        return "`timezone` goes with a calendar `period`; a `window` is rolling"
    if rule.numbers and rule.period is None:
        return "`numbers` goes with a calendar `period` (Telnyx charges)"
    if isinstance(rule.above, dict) and "severity" in rule.model_fields_set:
        return "`severity` is not allowed when thresholds are given per severity"
    return ""


def _span_problem(rule: SpendRule) -> str:
    if rule.window is not None and rule.window <= timedelta(0):
        return "`window` must be longer than 0s"
    if rule.window is not None and rule.from_samples_span > MAX_LOOKBACK:
        return f"`window` plus the spike's `baseline` may be at most {MAX_LOOKBACK.days}d"
    if rule.spike is None:
        return ""
    baseline = rule.spike.baseline
    if rule.period == "month":
        return "`spike` with `period: month` is not supported: use `period: day` or `window`"
    if rule.window is not None and baseline < rule.window:
        return "the spike's `baseline` must hold at least one `window`"
    if rule.period == "day" and (baseline % DAY or not DAY <= baseline <= MAX_BASELINE_DAYS * DAY):
        return (
            f"with `period: day` the spike's `baseline` is whole days, 1d to {MAX_BASELINE_DAYS}d"
        )
    return ""


def _level_problem(rule: SpendRule) -> str:
    if isinstance(rule.above, dict) and not rule.above:
        return "the threshold map needs at least one severity"
    ordered = sorted(rule.levels.items())
    for (mild, mild_at), (severe, severe_at) in itertools.pairwise(ordered):
        if severe_at <= mild_at:
            return (
                f"`above`: the {mild.label} level ({mild_at}) can never fire, as any spend "
                f"above it is also above the {severe.label} level ({severe_at}); make "
                f"{severe.label} higher than {mild.label}"
            )
    return ""


# ---------------------------------------------------------------------------- needs


def spend_sources(rule: SpendRule) -> frozenset[SourceName]:
    """The balance (its samples) for a rolling window; the charges for a calendar
    period: a provider without charges reads its balance for them instead."""
    if rule.window is not None:
        return frozenset({SourceName.BALANCE})
    extra = {SourceName.CHARGES_BREAKDOWN} if rule.numbers else set()
    return frozenset({SourceName.CHARGES, *extra})


def charges_queries(rules: Iterable[object]) -> tuple[ChargesQuery, ...]:
    """One query per time zone of the enabled calendar spend rules, by zone."""
    by_zone: dict[str, ChargesQuery] = {}
    for rule in rules:
        if isinstance(rule, SpendRule) and rule.enabled and rule.period:
            was = by_zone.get(rule.timezone, ChargesQuery(rule.timezone))
            days = rule.spike.baseline // DAY if rule.spike else 0
            by_zone[rule.timezone] = ChargesQuery(
                rule.timezone,
                day=was.day or rule.period == "day",
                month=was.month or rule.period == "month",
                baselines=tuple(sorted({*was.baselines, days} - {0})),
                numbers=was.numbers or rule.numbers,
            )
    return tuple(by_zone[name] for name in sorted(by_zone))


# ---------------------------------------------------------------------------- evaluation


@dataclass(frozen=True, slots=True)
class Figure:
    """What a spend rule compares: the spend, and the baseline mean (spikes)."""

    spend: Decimal
    currency: str
    label: str
    baseline: Decimal | None = None
    baseline_text: str = ""
    products: Amounts = ()
    numbers: Amounts = ()


def judge_spend(
    rule: SpendRule, snap: AccountSnapshot, now: datetime, *, charges: bool | None = None
) -> RuleResult:
    """The spend rule for one account. In: `charges`, whether its provider gives calendar
    periods from charges (None: when the snapshot has any). Out: one finding; not judged
    without the figure or, for a spike, without a covered baseline."""
    with_charges = snap.charges is not None if charges is None else charges
    if rule.period and with_charges:
        figure = _from_charges(rule, snap, now)
    else:
        figure = _from_samples(rule, snap, now)
    if figure is None or (rule.spike is not None and figure.baseline is None):
        return RuleResult(rule.name, snap.account, False, hold_for=rule.for_)
    return RuleResult(
        rule.name, snap.account, True, (_finding(rule, snap, figure),), hold_for=rule.for_
    )


def _from_charges(rule: SpendRule, snap: AccountSnapshot, now: datetime) -> Figure | None:
    read = (snap.charges or {}).get(rule.timezone)
    if SourceName.CHARGES in snap.errors or read is None:
        return None
    if read.day != figures.local_day(now, rule.timezone):
        return None  # the last read is of another day: read again (due), judged then
    numbers = read.numbers if rule.numbers else ()
    if rule.period == "month":
        label, spend, products = "this month", read.month, read.month_products
    else:
        label, spend, products = "today", read.today, read.today_products
    if spend is None:
        return None
    figure = Figure(spend, read.currency, f"{label} ({rule.timezone})", None, "", products, numbers)
    if rule.period == "month":
        return figure
    if rule.spike is None:
        return figure
    days = rule.spike.baseline // DAY
    before = read.before(days)
    if before is None:
        return figure  # no baseline (yet): not judged
    return _with_baseline(figure, before / days, f"the mean of {days} previous days")


def _from_samples(rule: SpendRule, snap: AccountSnapshot, now: datetime) -> Figure | None:
    if snap.balance is None:
        return None
    points = [(at, b.balance) for at, b in snap.balance_history if at < now]
    points.append((now, snap.balance.balance))
    if rule.window is not None:
        start, label = now - rule.window, f"in the last {format_duration(rule.window)}"
        spans = figures.previous_windows(now, rule.window, _count(rule))
        unit = f"{format_duration(rule.window)} windows"
    else:
        start = figures.period_start(rule.period or "day", now, rule.timezone)
        label = f"{'today' if rule.period == 'day' else 'this month'} ({rule.timezone})"
        spans = figures.previous_days(now, rule.timezone, _count(rule))
        unit = "days"
    figure = Figure(figures.spent(points, start, now), snap.balance.currency, label)
    mean = figures.mean_spent(points, spans) if rule.spike else None
    if mean is None:
        return figure
    return _with_baseline(figure, mean[0], f"the mean of {mean[1]} previous {unit}")


def _count(rule: SpendRule) -> int:
    if rule.spike is None:
        return 0
    return rule.spike.baseline // (rule.window or DAY)


def _with_baseline(figure: Figure, mean: Decimal, text: str) -> Figure:
    return Figure(
        figure.spend, figure.currency, figure.label, mean, text, figure.products, figure.numbers
    )


def _finding(rule: SpendRule, snap: AccountSnapshot, figure: Figure) -> Finding:
    severity, threshold = _verdict(rule, figure)
    cur = figure.currency
    products = ", ".join(f"{name} {_cents(amount)}" for name, amount in figure.products[:TOP])
    value = f"spent {figure.label} {money(_cents(figure.spend), cur)}"
    numbers = ", ".join(f"{name} {_cents(amount)}" for name, amount in figure.numbers[:TOP])
    top = [
        f"top: {products}" if products else "",
        f"numbers this month: {numbers}" if numbers else "",
    ]
    if products or numbers:
        value += f" ({'; '.join(part for part in top if part)})"
    baseline = "" if figure.baseline is None else str(_cents(figure.baseline))
    return Finding(
        key=AlertKey(rule.name, snap.account),
        severity=severity,
        cleared=severity is None,
        value=value,
        threshold=threshold,
        facts={
            "spend": str(_cents(figure.spend)),
            "currency": cur,
            "period": figure.label,
            "baseline": baseline,
            "products": products,
            "numbers": numbers,
        },
    )


def _verdict(rule: SpendRule, figure: Figure) -> tuple[Severity | None, str]:
    """The severity the figure fires at (None: it does not), and the threshold's text."""
    cur = figure.currency
    if rule.spike is None:
        breached = [sev for sev, limit in rule.levels.items() if figure.spend > limit]
        shown = max(breached) if breached else min(rule.levels)
        return (max(breached) if breached else None), f"above {money(rule.levels[shown], cur)}"
    spike, mean = rule.spike, figure.baseline or Decimal(0)
    fires = figure.spend >= spike.min_amount and figure.spend > spike.factor * mean
    text = (
        f"more than {spike.factor}× {figure.baseline_text} ({money(_cents(mean), cur)}), "
        f"at least {money(spike.min_amount, cur)}"
    )
    return (rule.level if fires else None), text


def _cents(amount: Decimal) -> Decimal:
    """A figure to the cent (proportional shares of sample intervals have more digits)."""
    return amount.quantize(Decimal("0.01"))

"""The slow sources a rule test can script (`account-watcher test`): invoices, provider
settings and Telnyx charges, as they would have been read at each evaluation.

```yaml
tests:
  - name: an invoice paid late
    provider: telnyx                 # the provider whose settings fields apply (default telnyx)
    invoices:
      - {id: inv-1, period_start: 2026-01-01, period_end: 2026-01-31, paid_after: 10d}
    settings:
      - at: 0s
        values: {auto_recharge.enabled: false}
      - at: 2h                       # from then on (merged over the earlier values)
        values: {auto_recharge.enabled: true}
    charges:                         # telnyx charges summary, for calendar spend rules
      - at: 0s                       # from then on (until the next entry)
        today: 8
        month: 300
        daily: 10                    # each whole day before today (spike baselines)
        products: {Voice: 8}         # also `numbers: {"+15551234567": 8}`
```

An invoice is listed from `listed_after` (default: the start) and unpaid until
`paid_after` (default: never paid). Settings hold the merged `values` of every entry at
or before the evaluation; values are read as the provider's field types (money as a
quoted decimal), and a field the provider does not have is an error of the test file.
Charges are given for every calendar spend rule's time zone, for its local date.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from watcher.core.drift import DriftValue, as_expected
from watcher.core.durations import Duration
from watcher.core.model import Charges, ChargesQuery, Invoice
from watcher.core.spend_figures import local_day, ranked


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InvoiceInput(_Strict):
    """One invoice: listed from `listed_after`, paid from `paid_after` (None: never)."""

    id: str = Field(min_length=1)
    period_start: date
    period_end: date
    listed_after: Duration = timedelta(0)
    paid_after: Duration | None = None


class SettingsInput(_Strict):
    """Provider settings from `at` on, merged over earlier entries."""

    at: Duration
    values: dict[str, DriftValue] = Field(min_length=1)


class ChargesInput(_Strict):
    """What Telnyx's charges summary says from `at` on (until the next entry): today's
    spend, the month's, the spend of each whole day before today (`daily`, for spike
    baselines), per product and per number."""

    at: Duration
    today: Decimal | None = None
    month: Decimal | None = None
    daily: Decimal | None = None
    products: dict[str, Decimal] = Field(default_factory=dict)
    numbers: dict[str, Decimal] = Field(default_factory=dict)
    currency: str = "USD"

    def read(self, query: ChargesQuery, now: datetime) -> Charges:
        """The charges of `query`'s zone as the daemon would have read them at `now`."""
        products = ranked(self.products.items())
        return Charges(
            timezone=query.timezone,
            day=local_day(now, query.timezone),
            currency=self.currency,
            today=self.today,
            month=self.month,
            today_products=products,
            month_products=products,
            baselines=self._baselines(query),
            numbers=ranked(self.numbers.items()),
        )

    def _baselines(self, query: ChargesQuery) -> tuple[tuple[int, Decimal], ...]:
        if self.daily is None:
            return ()
        return tuple((days, self.daily * days) for days in query.baselines)


def charges_at(
    items: Sequence[ChargesInput],
    start: datetime,
    now: datetime,
    queries: Sequence[ChargesQuery],
) -> dict[str, Charges] | None:
    """The charges entry in force at `now`, for each zone (None: none scripted yet)."""
    current = [item for item in items if start + item.at <= now]
    if not current:
        return None
    entry = max(current, key=lambda item: item.at)
    return {query.timezone: entry.read(query, now) for query in queries}


def invoices_at(
    items: Sequence[InvoiceInput], start: datetime, now: datetime
) -> tuple[Invoice, ...] | None:
    """The invoices a read at `now` would list (None: the case scripts none)."""
    if not items:
        return None
    return tuple(
        Invoice(
            item.id,
            item.period_start,
            item.period_end,
            paid=item.paid_after is not None and start + item.paid_after <= now,
        )
        for item in items
        if start + item.listed_after <= now
    )


def settings_at(
    items: Sequence[SettingsInput], start: datetime, now: datetime, types: Mapping[str, type]
) -> dict[str, object] | None:
    """The settings at `now`, typed as the provider's fields (None: none scripted yet)."""
    merged: dict[str, object] = {}
    for item in sorted(items, key=lambda entry: entry.at):
        if start + item.at <= now:
            merged.update({name: as_expected(v, types[name]) for name, v in item.values.items()})
    return merged if merged else None


def settings_problems(items: Sequence[SettingsInput], types: Mapping[str, type]) -> list[str]:
    """A field the provider lacks, or a value of the wrong type, one line each."""
    problems = []
    for item in items:
        for name, value in item.values.items():
            problems += _field_problem(name, value, types)
    return problems


def _field_problem(name: str, value: Any, types: Mapping[str, type]) -> list[str]:
    if name not in types:
        return [f"settings: {name} is not a setting of this provider ({', '.join(types)})"]
    try:
        as_expected(value, types[name])
    except ValueError as exc:
        return [f"settings: {name} {exc}"]
    return []

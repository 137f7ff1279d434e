"""Telnyx charges on the wire: `GET /charges_summary` and `GET /charges_breakdown`
(shapes from tests/data/telnyx-account.openapi.yaml; money as decimal strings, parsed as
Decimal from the JSON text), and their conversion to totals per product and per number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from watcher.core.model import Amounts
from watcher.core.spend_figures import ranked
from watcher.providers.telnyx.wire import Money, _Wire

MAX_RANGE_DAYS = 31
"""The longest range (end exclusive) either endpoint accepts."""


class _MonthDetail(_Wire):
    mrc: Money
    otc: Money | None = None
    quantity: int | None = None


class _Line(_Wire):
    """A summary line: `simple` (`amount`) or `comparative` (new and existing MRC/OTC)."""

    type: str
    name: str
    alias: str = ""
    amount: Money | None = None
    new_this_month: _MonthDetail | None = None
    existing_this_month: _MonthDetail | None = None

    def total(self) -> Decimal:
        if self.amount is not None:
            return self.amount
        parts = [self.new_this_month, self.existing_this_month]
        return sum((p.mrc + (p.otc or 0) for p in parts if p is not None), Decimal(0))


class _Summary(_Wire):
    lines: list[_Line]


class _Total(_Wire):
    grand_total: Money


class _SummaryData(_Wire):
    currency: str
    start_date: date
    end_date: date
    summary: _Summary
    total: _Total


class SummaryBody(_Wire):
    data: _SummaryData


class _Service(_Wire):
    name: str
    cost: Money
    cost_type: str = ""


class _Number(_Wire):
    tn: str
    services: list[_Service]


class _BreakdownData(_Wire):
    currency: str
    results: list[_Number]


class BreakdownBody(_Wire):
    data: _BreakdownData


@dataclass(frozen=True, slots=True)
class ChargesTotal:
    """One range's charges: the grand total and the amount per product (or per number),
    largest first."""

    currency: str
    total: Decimal
    parts: Amounts


def to_summary(body: SummaryBody) -> ChargesTotal:
    """The summary's `total.grand_total`, and its lines per product `name`."""
    data = body.data
    parts = ranked((line.name, line.total()) for line in data.summary.lines)
    return ChargesTotal(data.currency, data.total.grand_total, parts)


def to_breakdown(body: BreakdownBody) -> ChargesTotal:
    """The breakdown per phone number (`tn`): the sum of its services' costs."""
    data = body.data
    parts = ranked((n.tn, s.cost) for n in data.results for s in n.services)
    return ChargesTotal(data.currency, sum((a for _, a in parts), Decimal(0)), parts)

"""The Telnyx simulator's charges: money charged per date, product and phone number, served
as `GET /charges_summary` and `GET /charges_breakdown` (shapes from
tests/data/telnyx-account.openapi.yaml). Tests script a spike with `add`.

Dates are half-open ranges `[start_date, end_date)`, at most 31 days, as the API says.
Summary lines are `simple` lines (one per product, `amount` the range's sum) except
products added with `comparative=True`, served as `comparative` lines (the amount as the
new month's MRC). The breakdown lists every number charged in the range with one
service per product (`cost` the range's sum, `cost_type` MRC).
"""

from __future__ import annotations

import calendar
import threading
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from watcher.providers.telnyx.sim_records import CENT, JSON, OWNER_USER_ID

MAX_DAYS = 31
USER_EMAIL = "owner@example.com"


class ChargesRangeError(ValueError):
    """A request's dates the API refuses: `status` (400 or 422) and one sentence."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class SimCharges:
    """Charges of one simulated account; thread-safe."""

    def __init__(self, currency: str = "USD") -> None:
        self.currency = currency
        self._lock = threading.Lock()
        self._rows: list[tuple[date, str, str | None, Decimal]] = []  # day, product, number
        self._comparative: set[str] = set()

    def add(
        self,
        day: date,
        product: str,
        amount: str | Decimal,
        *,
        number: str | None = None,
        comparative: bool = False,
    ) -> None:
        """Charge `amount` for `product` on `day` (for phone number `number`, if given)."""
        with self._lock:
            self._rows.append((day, product, number, Decimal(amount)))
            if comparative:
                self._comparative.add(product)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def _in(self, start: date, end: date) -> list[tuple[date, str, str | None, Decimal]]:
        with self._lock:
            return [row for row in self._rows if start <= row[0] < end]

    def summary(self, start: date, end: date) -> JSON:
        """`GET /charges_summary`'s body for `[start, end)`."""
        check_range(start, end)
        sums: dict[str, Decimal] = defaultdict(Decimal)
        for _, product, _, amount in self._in(start, end):
            sums[product] += amount
        lines = [self._line(name, amount) for name, amount in sorted(sums.items())]
        total = sum(sums.values(), Decimal(0))
        zero = "0.00"
        return {
            "data": {
                **self._head(start, end),
                "summary": {"lines": lines, "adjustments": []},
                "total": {
                    "new_mrc": zero,
                    "new_otc": zero,
                    "existing_mrc": zero,
                    "other": _money(total),
                    "credits": zero,
                    "ledger_adjustments": zero,
                    "grand_total": _money(total),
                },
            }
        }

    def breakdown(self, start: date, end: date) -> JSON:
        """`GET /charges_breakdown`'s JSON body for `[start, end)`."""
        check_range(start, end)
        costs: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        for _, product, number, amount in self._in(start, end):
            if number is not None:
                costs[number][product] += amount
        results = [
            {
                "tn": tn,
                "charge_type": "local",
                "service_owner_user_id": OWNER_USER_ID,
                "service_owner_email": USER_EMAIL,
                "services": [
                    {"name": name, "cost": _money(cost), "cost_type": "MRC"}
                    for name, cost in sorted(services.items())
                ],
            }
            for tn, services in sorted(costs.items())
        ]
        return {"data": {**self._head(start, end), "results": results}}

    def _head(self, start: date, end: date) -> JSON:
        return {
            "user_id": OWNER_USER_ID,
            "user_email": USER_EMAIL,
            "currency": self.currency,
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
        }

    def _line(self, name: str, amount: Decimal) -> JSON:
        alias = name.lower().replace(" ", "_")
        if name in self._comparative:
            detail = {"mrc": _money(amount), "otc": None, "quantity": 1}
            nothing = {"mrc": "0.00", "quantity": 0}
            return {
                "type": "comparative",
                "name": name,
                "alias": alias,
                "new_this_month": detail,
                "existing_this_month": nothing,
            }
        return {
            "type": "simple",
            "name": name,
            "alias": alias,
            "quantity": 1,
            "amount": _money(amount),
        }


def parse_dates(query: dict[str, str], *, end_required: bool) -> tuple[date, date]:
    """`start_date` and `end_date` of a request (`end_date` defaults to a month later).
    Raises ChargesRangeError."""
    start = _date(query, "start_date")
    if "end_date" not in query and not end_required:
        year, month = start.year + (start.month == 12), start.month % 12 + 1
        last = calendar.monthrange(year, month)[1]
        return start, date(year, month, min(start.day, last))
    return start, _date(query, "end_date")


def check_range(start: date, end: date) -> None:
    if end <= start:
        raise ChargesRangeError(422, "end_date must be after start_date")
    if end - start > timedelta(days=MAX_DAYS):
        raise ChargesRangeError(422, f"The date range cannot exceed {MAX_DAYS} days.")


def _date(query: dict[str, str], name: str) -> date:
    text = query.get(name)
    if text is None:
        raise ChargesRangeError(400, f"{name} is required")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ChargesRangeError(400, f"{name} must be a date (YYYY-MM-DD)") from None


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT))

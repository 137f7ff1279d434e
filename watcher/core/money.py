"""Money as messages show it. Pure; re-exported by `watcher.core.rules`."""

from __future__ import annotations

from decimal import Decimal


def money(value: Decimal, currency: str = "") -> str:
    """`Decimal('45.5')` -> `'45.50 USD'`: at least two places, and every digit given
    (Vonage's `Decimal('40.12345678')` -> `'40.12345678 EUR'`), never rounded."""
    if not value.is_finite():
        return f"{value} {currency}".strip()
    places = max(2, -int(value.as_tuple().exponent))
    return f"{value.quantize(Decimal(1).scaleb(-places)):,} {currency}".strip()

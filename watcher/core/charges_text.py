"""Telnyx charges as the state keeps them: the resume text of the `charges` source
(compact JSON, money as decimal strings), written by watcher/providers/telnyx/charges.py
and read back there and by the daily digest (DESIGN §12). Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from watcher.core.model import Amounts, Charges


def charges_text(charges: Mapping[str, Charges]) -> str:
    """The resume text keeping `charges`: `{"zones": [{...}, ...]}` (money as text)."""
    return dump_zones([_charges_row(c) for _, c in sorted(charges.items())])


def _charges_row(c: Charges) -> dict[str, Any]:
    return {
        "tz": c.timezone,
        "day": c.day.isoformat(),
        "cur": c.currency,
        "today": _opt(c.today),
        "month": _opt(c.month),
        "tp": amount_rows(c.today_products),
        "mp": amount_rows(c.month_products),
        "bl": [[days, str(total)] for days, total in c.baselines],
    }


def parse_charges(stored: str) -> dict[str, Charges]:
    """The kept charges by zone. Raises ValueError, KeyError, TypeError or
    ArithmeticError when `stored` is not such a text."""
    return {c.timezone: c for c in map(_charges, load_zones(stored))}


def _charges(row: dict[str, Any]) -> Charges:
    return Charges(
        timezone=str(row["tz"]),
        day=date.fromisoformat(row["day"]),
        currency=str(row["cur"]),
        today=_dec(row["today"]),
        month=_dec(row["month"]),
        today_products=row_amounts(row["tp"]),
        month_products=row_amounts(row["mp"]),
        baselines=tuple((int(days), Decimal(str(total))) for days, total in row["bl"]),
    )


def dump_zones(rows: list[dict[str, Any]]) -> str:
    return json.dumps({"zones": rows}, separators=(",", ":"), ensure_ascii=False)


def load_zones(stored: str) -> list[dict[str, Any]]:
    rows = json.loads(stored)["zones"]
    if not isinstance(rows, list):
        raise TypeError("zones is not a list")
    return rows


def _opt(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _dec(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def amount_rows(amounts: Amounts) -> list[list[str]]:
    return [[name, str(amount)] for name, amount in amounts]


def row_amounts(rows: list[list[str]]) -> Amounts:
    return tuple((str(name), Decimal(str(amount))) for name, amount in rows)

"""The Vonage top-up amount check (DESIGN §6.4), pure: table-driven."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from watcher.core.ledger_types import Entry, EntryState
from watcher.core.model import Severity
from watcher.core.topup_amount import amount_differs, render_amount_differs


@pytest.mark.parametrize(
    ("configured", "rose", "differs"),
    [
        ("50.00", "50.00", False),
        ("50.00", "45.00", False),  # 10 % off: still about the amount
        ("50.00", "55.00", False),
        ("50.00", "44.99", True),
        ("50.00", "55.01", True),
        ("50.00", "100.00", True),
        ("50.00", "25.00", True),
    ],
)
def test_amount_differs_beyond_ten_percent(configured: str, rose: str, differs: bool) -> None:
    assert amount_differs(Decimal(configured), Decimal(rose)) is differs


def test_the_alert_names_both_amounts_and_what_to_change() -> None:
    at = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    entry = Entry(3, "eu", Decimal("50.00"), "EUR", EntryState.SUCCEEDED, at, "low-credit", "x")
    message = render_amount_differs(entry, Decimal("100.00000000"))
    assert message.title == "[WARNING] top-up amount differs from configured 50.00 EUR — eu"
    assert "counted as 50.00 EUR" in message.body and "rose by 100.00 EUR" in message.body
    assert "accounts[].topup.amount" in message.body
    assert (message.severity, message.urgent, message.rule) == (
        Severity.WARNING,
        True,
        "low-credit",
    )

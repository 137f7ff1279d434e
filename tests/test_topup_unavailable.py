"""The built-in `watcher-topup-unavailable` (DESIGN §6.4), pure: table-driven."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from watcher.core.ledger_types import Entry, EntryState
from watcher.core.model import AccountSnapshot, Balance, Severity
from watcher.core.topup_unavailable import (
    TOPUP_UNAVAILABLE_RULE,
    judge_unavailable,
    unavailable_reason,
)

AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
OFF = "POST /account/top-up failed: HTTP 401 (401 not auto-reload enabled)"


def entry(state: EntryState, error: str | None = None) -> Entry:
    return Entry(1, "eu", Decimal("50.00"), "EUR", state, AT, "low-credit", "x", error=error)


@pytest.mark.parametrize(
    ("states", "reason"),
    [
        ([], None),
        ([entry(EntryState.FAILED, OFF)], OFF),
        ([entry(EntryState.FAILED, "HTTP 400 (invalid transaction reference)")], None),
        ([entry(EntryState.FAILED, OFF), entry(EntryState.SUCCEEDED)], None),  # made since
        ([entry(EntryState.FAILED, OFF), entry(EntryState.REFUSED)], OFF),  # no POST since
        ([entry(EntryState.FAILED, OFF), entry(EntryState.DRY_RUN)], OFF),
    ],
)
def test_the_reason_is_the_last_posted_entry_failing_for_auto_reload(
    states: list[Entry], reason: str | None
) -> None:
    assert unavailable_reason(states) == reason


def snap(auto_reload: bool | None, *, balance: bool = True) -> AccountSnapshot:
    value = Decimal("40.12345678")
    read = Balance(value, value, Decimal(0), Decimal(0), "EUR", auto_reload=auto_reload)
    return AccountSnapshot("eu", balance=read if balance else None, provider="vonage")


@pytest.mark.parametrize(
    ("snapshot", "reason", "judged", "firing"),
    [
        (snap(False), OFF, True, True),
        (snap(None), OFF, True, True),
        (snap(True), OFF, True, False),  # fixed: auto-reload is on again
        (snap(False), None, True, False),  # no failed top-up: nothing to say
        (snap(False, balance=False), OFF, False, False),  # unknown: the alert stays as is
    ],
)
def test_it_fires_until_auto_reload_is_on_again(
    snapshot: AccountSnapshot, reason: str | None, judged: bool, firing: bool
) -> None:
    result = judge_unavailable(snapshot, reason)
    assert (result.rule, result.judged, bool(result.findings)) == (
        TOPUP_UNAVAILABLE_RULE,
        judged,
        firing,
    )
    if firing:
        assert result.findings[0].severity is Severity.CRITICAL

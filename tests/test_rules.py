"""Rule models and pure evaluation: table-driven, time as a parameter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from watcher.core.model import (
    AccountSnapshot,
    AlertKey,
    AuditChange,
    AuditEvent,
    Balance,
    Severity,
    SourceError,
    SourceName,
    WebhookDelivery,
)
from watcher.core.rules import (
    SOURCE_DOWN_RULE,
    Rule,
    RuleFile,
    audit_matches,
    evaluate,
    money,
    ratio_windows,
    sources_needed,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RULE = TypeAdapter(Rule)


def rule(**data: Any) -> Rule:
    return RULE.validate_python({"name": "r", **data})


def balance(available: str, currency: str = "USD") -> Balance:
    value = Decimal(available)
    return Balance(value, value, Decimal("0"), Decimal("0"), currency)


def only(results: list[Any], name: str = "r") -> Any:
    (result,) = [r for r in results if r.rule == name]
    return result


# ---------------------------------------------------------------------------- models


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "balance"}, "exactly one of `below` or `above`"),
        ({"kind": "balance", "below": 1, "above": 2}, "exactly one of `below` or `above`"),
        (
            {"kind": "balance", "below": {"warning": 1}, "severity": "critical"},
            "`severity` is not allowed",
        ),
        ({"kind": "balance", "below": 100, "clear_above": 50}, "`clear_above` must be at least"),
        ({"kind": "balance", "below": 100, "clear_below": 50}, "`clear_below` goes with `above`"),
        ({"kind": "balance", "below": 100, "field": "money"}, "available_credit"),
        ({"kind": "balance", "below": "ten"}, "valid decimal"),
        ({"kind": "audit", "for": "5m"}, "`for` does not apply"),
        ({"kind": "audit", "ignore": [{}]}, "empty `ignore` entry"),
        ({"kind": "audit", "match": {"colour": "x"}}, "change_type"),
        ({"kind": "webhook_failures", "ratio": 1.5}, "less than or equal to 1"),
        ({"kind": "webhook_failures", "min_deliveries": 5}, "only applies together with `ratio`"),
        ({"kind": "webhook_failures", "group_by": "host"}, "'none', 'url' or 'event_type'"),
        ({"kind": "balance", "below": 1, "typo": True}, "Extra inputs are not permitted"),
        ({"kind": "nope"}, "does not match any of the expected tags"),
    ],
)
def test_invalid_rules_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        rule(**data)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("side", "levels", "message"),
    [
        (
            "below",
            {"warning": 50, "critical": 100},
            "`below`: the warning level (50) can never fire, as any value below it is also "
            "below the critical level (100); make critical lower than warning",
        ),
        (
            "below",
            {"warning": 50, "critical": 50},
            "`below`: the warning level (50) can never fire, as any value below it is also "
            "below the critical level (50); make critical lower than warning",
        ),
        (
            "below",
            {"info": 100, "warning": 200, "critical": 10},
            "`below`: the info level (100) can never fire, as any value below it is also "
            "below the warning level (200); make warning lower than info",
        ),
        (
            "below",
            {"info": 300, "warning": 100, "critical": 150},
            "`below`: the warning level (100) can never fire, as any value below it is also "
            "below the critical level (150); make critical lower than warning",
        ),
        (
            "above",
            {"warning": 500, "critical": 100},
            "`above`: the warning level (500) can never fire, as any value above it is also "
            "above the critical level (100); make critical higher than warning",
        ),
        (
            "above",
            {"info": 900, "critical": 1000, "warning": 800},
            "`above`: the info level (900) can never fire, as any value above it is also "
            "above the warning level (800); make warning higher than info",
        ),
    ],
)
def test_inverted_levels_are_refused(side: str, levels: dict[str, int], message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        rule(kind="balance", **{side: levels})
    (error,) = exc.value.errors()
    assert error["msg"] == f"Value error, {message}"


@pytest.mark.parametrize(
    ("side", "levels"),
    [
        ("below", {"warning": 100, "critical": 50}),
        ("below", {"info": 500, "warning": 100, "critical": 50}),
        ("below", {"info": 500, "critical": 50}),
        ("above", {"warning": 500, "critical": 1000}),
        ("above", {"info": 100, "warning": 500, "critical": 1000}),
        ("above", {"critical": 1000}),
    ],
)
def test_ordered_levels_are_accepted(side: str, levels: dict[str, int]) -> None:
    assert rule(kind="balance", **{side: levels})


def test_bad_name_is_refused() -> None:
    with pytest.raises(ValidationError, match="pattern"):
        RULE.validate_python({"name": "Low Credit", "kind": "audit"})


def test_rule_file_and_needs() -> None:
    parsed = RuleFile.model_validate(
        {
            "rules": [
                {"name": "a", "kind": "balance", "below": 5},
                {"name": "b", "kind": "webhook_failures", "window": "10m", "ratio": 0.5},
                {"name": "c", "kind": "audit", "enabled": False},
            ]
        }
    )
    assert sources_needed(parsed.rules) == {SourceName.BALANCE, SourceName.WEBHOOKS}
    assert ratio_windows(parsed.rules) == {timedelta(minutes=10)}


# ---------------------------------------------------------------------------- balance

LEVELS = {"kind": "balance", "below": {"warning": 100, "critical": 50}, "clear_above": 120}


@pytest.mark.parametrize(
    ("available", "severity", "cleared"),
    [
        ("150.00", None, True),
        ("120.00", None, True),  # at clear_above: cleared
        ("110.00", None, False),  # hysteresis band: holds a firing alert
        ("100.00", None, False),  # not below 100
        ("99.99", Severity.WARNING, False),
        ("50.00", Severity.WARNING, False),
        ("49.99", Severity.CRITICAL, False),
        ("-5", Severity.CRITICAL, False),
    ],
)
def test_balance_levels_and_hysteresis(
    available: str, severity: Severity | None, cleared: bool
) -> None:
    snap = AccountSnapshot("main", balance=balance(available))
    result = only(evaluate([rule(**LEVELS)], [snap], NOW))
    (finding,) = result.findings
    assert (finding.severity, finding.cleared) == (severity, cleared)
    assert finding.key == AlertKey("r", "main")


@pytest.mark.parametrize(
    ("data", "value", "severity"),
    [
        ({"below": 10}, "9", Severity.WARNING),
        ({"below": 10, "severity": "critical"}, "9", Severity.CRITICAL),
        ({"above": 10, "field": "pending"}, "11", Severity.WARNING),
        ({"above": 10, "field": "pending"}, "10", None),
    ],
)
def test_balance_single_threshold(
    data: dict[str, Any], value: str, severity: Severity | None
) -> None:
    snap = AccountSnapshot(
        "main", balance=Balance(Decimal(value), Decimal(value), Decimal(0), Decimal(value), "EUR")
    )
    (finding,) = only(evaluate([rule(kind="balance", **data)], [snap], NOW)).findings
    assert finding.severity == severity


def test_balance_finding_renders_money_exactly() -> None:
    snap = AccountSnapshot("main", balance=balance("45.5"))
    (finding,) = only(evaluate([rule(**LEVELS)], [snap], NOW)).findings
    assert finding.value == "45.50 USD"
    assert finding.threshold == "below 50.00 USD"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("45.5", "45.50 EUR"),  # at least two places
        ("45", "45.00 EUR"),
        ("1234.5", "1,234.50 EUR"),
        ("40.12345678", "40.12345678 EUR"),  # Vonage: up to 8 places, shown as given
        ("1234.00000001", "1,234.00000001 EUR"),
        ("-0.125", "-0.125 EUR"),
        ("40.10000000", "40.10000000 EUR"),  # digits given are never dropped
    ],
)
def test_money_keeps_every_digit_given_and_at_least_two(value: str, shown: str) -> None:
    assert money(Decimal(value), "EUR") == shown


def test_a_vonage_balance_finding_shows_the_exact_value() -> None:
    snap = AccountSnapshot("eu", balance=balance("40.12345678"), provider="vonage")
    (finding,) = only(evaluate([rule(**LEVELS)], [snap], NOW)).findings
    assert finding.value == "40.12345678 USD"


def test_balance_not_judged_without_balance() -> None:
    snap = AccountSnapshot(
        "main", errors={SourceName.BALANCE: SourceError(SourceName.BALANCE, "HTTP 503")}
    )
    result = only(evaluate([rule(**LEVELS)], [snap], NOW))
    assert result.judged is False


def test_rule_accounts_and_enabled() -> None:
    rules = [
        rule(kind="balance", below=10, accounts=["other"]),
        RULE.validate_python({"name": "off", "kind": "balance", "below": 10, "enabled": False}),
    ]
    results = evaluate(rules, [AccountSnapshot("main", balance=balance("1"))], NOW)
    assert [r.rule for r in results] == [SOURCE_DOWN_RULE]


# ---------------------------------------------------------------------------- audit


def event(**data: Any) -> AuditEvent:
    base: dict[str, Any] = {
        "id": "e1",
        "created_at": NOW,
        "change_type": "update",
        "change_made_by": "account_owner",
        "user_id": "u1",
        "resource_id": "r1",
        "changes": (AuditChange("webhook_url", "a", "b"),),
    }
    return AuditEvent(**(base | data))


@pytest.mark.parametrize(
    ("criteria", "matched"),
    [
        ({}, True),
        ({"change_made_by": "account_owner"}, True),
        ({"change_made_by": ["telnyx", "account_*"]}, True),
        ({"change_made_by": "telnyx"}, False),
        ({"field": "webhook*"}, True),
        ({"field": "tags"}, False),
        ({"alternate_resource_id": "*"}, False),  # None never matches
        ({"change_type": "update", "user_id": "u2"}, False),  # all keys must match
        ({"change_type": "UPDATE"}, False),  # case-sensitive
    ],
)
def test_audit_matching(criteria: dict[str, Any], matched: bool) -> None:
    assert audit_matches(event(), criteria) is matched


def test_audit_rule_match_and_ignore() -> None:
    events = (
        event(id="e1"),
        event(id="e2", user_id="6a09cdc3"),  # ignored by user
        event(id="e3", changes=(AuditChange("tags", [], ["x"]),)),  # ignored by field
        event(id="e4", change_made_by="telnyx"),  # not matched
    )
    r = rule(
        kind="audit",
        match={"change_made_by": ["account_owner", "organization_member"]},
        ignore=[{"user_id": "6a09cdc3"}, {"change_type": "update", "field": "tags"}],
        severity="critical",
    )
    result = only(evaluate([r], [AccountSnapshot("main", new_audit_events=events)], NOW))
    (finding,) = result.findings
    assert result.one_shot
    assert [e.id for e in finding.events] == ["e1"]
    assert finding.severity == Severity.CRITICAL


def test_audit_without_new_events_finds_nothing() -> None:
    result = only(evaluate([rule(kind="audit")], [AccountSnapshot("main")], NOW))
    assert result.judged and result.findings == ()


# ---------------------------------------------------------------------------- webhooks


def failures(
    n: int,
    *,
    url: str = "https://a",
    age: timedelta = timedelta(minutes=1),
    event_type: str = "message.sent",
) -> tuple[WebhookDelivery, ...]:
    return tuple(
        WebhookDelivery(f"{url}-{event_type}-{i}", NOW - age, "failed", event_type, url, 500)
        for i in range(n)
    )


@pytest.mark.parametrize(
    ("data", "deliveries", "total", "expected"),
    [
        ({"at_least": 10}, failures(12), None, {""}),
        ({"at_least": 10}, failures(3), None, set()),
        ({"at_least": 10}, failures(12, age=timedelta(minutes=16)), None, set()),  # outside window
        ({"at_least": 10, "event_type": "call.*"}, failures(12), None, set()),
        ({"at_least": 10, "event_type": ["message.*"]}, failures(12), None, {""}),
        ({"at_least": 5, "ratio": 0.25, "min_deliveries": 20}, failures(6), 100, set()),  # 6%
        ({"at_least": 5, "ratio": 0.25, "min_deliveries": 20}, failures(6), 20, {""}),  # 30%
        ({"at_least": 5, "ratio": 0.25, "min_deliveries": 20}, failures(6), 10, {""}),  # too few
        (
            {"at_least": 2, "group_by": "url"},
            failures(3, url="https://a") + failures(1, url="https://b"),
            None,
            {"https://a"},
        ),
        (
            {"at_least": 1, "group_by": "event_type"},
            failures(1, event_type="x") + failures(1, event_type="y"),
            None,
            {"x", "y"},
        ),
    ],
)
def test_webhook_failures(
    data: dict[str, Any],
    deliveries: tuple[WebhookDelivery, ...],
    total: int | None,
    expected: set[str],
) -> None:
    r = rule(kind="webhook_failures", window="15m", **data)
    totals = {timedelta(minutes=15): total} if total is not None else {}
    snap = AccountSnapshot("main", webhook_failures=deliveries, delivery_totals=totals)
    result = only(evaluate([r], [snap], NOW))
    assert result.judged
    assert {f.key.group for f in result.findings} == expected


def test_webhook_ratio_without_total_is_not_judged() -> None:
    r = rule(kind="webhook_failures", ratio=0.5)
    result = only(evaluate([r], [AccountSnapshot("main", webhook_failures=failures(5))], NOW))
    assert result.judged is False


# ---------------------------------------------------------------------------- source down


@pytest.mark.parametrize(
    ("error", "fires"),
    [
        (SourceError(SourceName.BALANCE, "HTTP 401", auth=True, failing_since=NOW), True),
        (
            SourceError(SourceName.BALANCE, "HTTP 503", failing_since=NOW - timedelta(minutes=1)),
            False,
        ),
        (
            SourceError(SourceName.BALANCE, "HTTP 503", failing_since=NOW - timedelta(minutes=6)),
            True,
        ),
    ],
)
def test_source_down(error: SourceError, fires: bool) -> None:
    snap = AccountSnapshot("main", errors={error.source: error})
    result = only(evaluate([], [snap], NOW), SOURCE_DOWN_RULE)
    assert bool(result.findings) is fires
    if fires:
        group = "api-key" if error.auth else "balance"  # a rejected key: one alert per account
        assert result.findings[0].key == AlertKey(SOURCE_DOWN_RULE, "main", group)
        assert result.findings[0].severity == Severity.CRITICAL

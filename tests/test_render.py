"""Message rendering: titles per the contract, bodies an on-call person can act on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter

from watcher.core.lifecycle import Reason, Transition
from watcher.core.model import (
    AlertKey,
    AlertState,
    AuditChange,
    AuditEvent,
    Phase,
    Severity,
    WebhookDelivery,
)
from watcher.core.render import audit_line, fill, render
from watcher.core.rules import SOURCE_DOWN_RULE, Finding, Rule

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
RULE = TypeAdapter(Rule)
LOW = RULE.validate_python(
    {
        "name": "low-credit",
        "kind": "balance",
        "below": {"warning": 100, "critical": 50},
        "description": "Add funds in the portal.",
    }
)
KEY = AlertKey("low-credit", "main")


def firing_state(at: datetime, severity: Severity = Severity.CRITICAL) -> AlertState:
    return AlertState(
        KEY,
        Phase.FIRING,
        severity,
        T0,
        fired_at=T0,
        last_notified_at=at,
        notified_severity=severity,
        value="45.00 USD",
        threshold="below 50.00 USD",
    )


FINDING = Finding(KEY, Severity.CRITICAL, value="45.00 USD", threshold="below 50.00 USD")


@pytest.mark.parametrize(
    ("reason", "at", "title"),
    [
        (Reason.FIRING, T0, "[CRITICAL] low-credit firing — main"),
        (
            Reason.ESCALATED,
            T0 + timedelta(minutes=3),
            "[CRITICAL] low-credit escalated to critical — main",
        ),
        (Reason.REPEAT, T0 + timedelta(hours=4), "[CRITICAL] low-credit still firing (4h) — main"),
    ],
)
def test_titles(reason: Reason, at: datetime, title: str) -> None:
    message = render(Transition(reason, KEY, Severity.CRITICAL, at, firing_state(at), FINDING), LOW)
    assert message.title == title
    assert "available_credit is 45.00 USD, below 50.00 USD." in message.body
    assert "Add funds in the portal." in message.body
    assert "Firing since 2026-11-23 10:00 UTC" in message.body


def test_resolved_says_for_how_long_and_current_value() -> None:
    at = T0 + timedelta(hours=2, minutes=5)
    cleared = Finding(KEY, None, value="130.00 USD")
    t = Transition(Reason.RESOLVED, KEY, Severity.CRITICAL, at, firing_state(T0), cleared)
    message = render(t, LOW)
    assert message.title == "[RESOLVED] low-credit — main (fired 2h 05m)"
    assert "now 130.00 USD" in message.body
    assert "Last seen firing: 45.00 USD (below 50.00 USD)." in message.body
    assert "Add funds" not in message.body


def test_resolved_group_without_finding() -> None:
    key = AlertKey("spike", "main", "https://a")
    state = AlertState(
        key,
        Phase.FIRING,
        Severity.CRITICAL,
        T0,
        fired_at=T0,
        value="12 failed in 15m",
        threshold="at least 10",
    )
    t = Transition(Reason.RESOLVED, key, Severity.CRITICAL, T0 + timedelta(minutes=20), state, None)
    message = render(t, None)
    assert message.title == "[RESOLVED] spike — main [https://a] (fired 20m)"
    assert "Resolved after 20m: the condition no longer holds." in message.body
    assert "Last seen firing: 12 failed in 15m (at least 10)." in message.body


def test_summary_template_is_safe() -> None:
    rule = RULE.validate_python({"name": "low-credit", "kind": "balance", "below": 50})
    # Loading refuses unknown placeholders; fill must still be safe if one slips through.
    summary = "{account}: {value} {currency} < {threshold} {__class__} {value.__dict__}"
    rule = rule.model_copy(update={"summary": summary})
    finding = Finding(
        KEY,
        Severity.WARNING,
        value="45.00 USD",
        facts={"value": "45.00", "currency": "USD", "threshold": "50.00"},
    )
    message = render(
        Transition(Reason.FIRING, KEY, Severity.WARNING, T0, firing_state(T0), finding), rule
    )
    assert message.body.splitlines()[0] == "main: 45.00 USD < 50.00 {__class__} {value.__dict__}"


def test_fill_leaves_unknown_names() -> None:
    assert fill("{a} {b} {{c}}", {"a": "1"}) == "1 {b} {{c}}"


def audit_event(i: int, **data: Any) -> AuditEvent:
    base: dict[str, Any] = {
        "id": f"e{i}",
        "created_at": T0 + timedelta(minutes=i),
        "change_type": "update",
        "change_made_by": "organization_member",
        "user_id": "u1",
        "record_type": "messaging_profile",
        "resource_id": "mp1",
        "changes": (AuditChange("webhook_url", "https://a", "https://b"),),
    }
    return AuditEvent(**(base | data))


def test_audit_message_lists_who_what_from_to() -> None:
    key = AlertKey("cfg", "main")
    finding = Finding(key, Severity.CRITICAL, events=(audit_event(1),))
    message = render(Transition(Reason.EVENTS, key, Severity.CRITICAL, T0, None, finding), None)
    assert message.title == "[CRITICAL] cfg: 1 audit event — main"
    assert (
        "- 2026-11-23 10:01 UTC organization_member (user u1) update messaging_profile mp1: "
        "webhook_url: https://a → https://b"
    ) in message.body


def test_audit_message_summarises_beyond_twenty() -> None:
    key = AlertKey("cfg", "main")
    events = tuple(audit_event(i) for i in range(20)) + tuple(
        audit_event(100 + i, change_made_by="account_owner", change_type="delete")
        for i in range(30)
    )
    message = render(
        Transition(
            Reason.EVENTS,
            key,
            Severity.CRITICAL,
            T0,
            None,
            Finding(key, Severity.CRITICAL, events=events),
        ),
        None,
    )
    assert message.title == "[CRITICAL] cfg: 50 audit events — main"
    assert message.body.count("\n- ") == 20
    assert "… and 30 more: 30× account_owner delete" in message.body


def test_webhook_message_lists_urls_statuses_and_a_sample_error() -> None:
    key = AlertKey("spike", "main", "")
    deliveries = (
        *(
            WebhookDelivery(
                f"d{i}",
                T0,
                "failed",
                "message.sent",
                "https://a/hook",
                503 if i % 2 else 500,
                "Service Unavailable",
            )
            for i in range(10)
        ),
        WebhookDelivery("x", T0, "failed", "message.sent", "https://b/hook", None, "timeout"),
    )
    finding = Finding(
        key,
        Severity.CRITICAL,
        value="11 failed in 15m",
        threshold="at least 10",
        deliveries=deliveries,
    )
    message = render(Transition(Reason.FIRING, key, Severity.CRITICAL, T0, None, finding), None)
    assert "- https://a/hook: 10 failed (5× 500, 5× 503)" in message.body
    assert "- https://b/hook: 1 failed (1× no response)" in message.body
    assert "Sample error (2026-11-23 10:00 UTC): timeout" in message.body


def test_source_down_message_gives_advice() -> None:
    key = AlertKey(SOURCE_DOWN_RULE, "main", "balance")
    finding = Finding(
        key,
        Severity.CRITICAL,
        value="the API rejected the key",
        threshold="failing since 2026-11-23 10:00 UTC",
    )
    message = render(Transition(Reason.FIRING, key, Severity.CRITICAL, T0, None, finding), None)
    assert message.title == "[CRITICAL] watcher-source-down firing — main [balance]"
    assert "Source balance is failing: the API rejected the key" in message.body
    assert "Check the API key" in message.body


def test_a_transition_without_a_finding_falls_back_to_the_last_values() -> None:
    """No finding this cycle (the source failed): the summary's facts are unknown, so
    the default headline with the last values is used, never a half-filled template."""
    rule = RULE.validate_python(
        {
            "name": "low-credit",
            "kind": "balance",
            "below": 50,
            "summary": "{account}: credit {value} {currency} below {threshold}",
        }
    )
    transition = Transition(
        Reason.REPEAT, KEY, Severity.CRITICAL, T0 + timedelta(hours=4), firing_state(T0), None
    )
    assert render(transition, rule).body.splitlines() == [
        "available_credit is 45.00 USD, below 50.00 USD.",
        "Firing since 2026-11-23 10:00 UTC; account main.",
    ]


def test_audit_line_does_not_show_the_api_record_type_as_a_resource() -> None:
    """The API puts `record_type: audit_event` on every entry: it names no resource."""
    event = audit_event(1, record_type="audit_event", resource_id="40017a1c")
    assert audit_line(event) == (
        "- 2026-11-23 10:01 UTC organization_member (user u1) update 40017a1c: "
        "webhook_url: https://a → https://b"
    )

"""Golden files for message rendering: one per transition kind.

The expected messages live in tests/golden/*.txt. After a deliberate change of wording,
regenerate them with `UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_golden.py` and review
the diff like code.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from watcher.core.lifecycle import Reason, Transition, step
from watcher.core.model import (
    AlertKey,
    AlertState,
    AuditChange,
    AuditEvent,
    Phase,
    Severity,
    WebhookDelivery,
)
from watcher.core.render import Message, render
from watcher.core.rules import SOURCE_DOWN_RULE, Finding, Rule, RuleResult
from watcher.core.silences import Silence, still_firing
from watcher.notify.flush import route_message

GOLDEN = Path(__file__).parent / "golden"
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
RULE = TypeAdapter(Rule)
LOW = RULE.validate_python(
    {
        "name": "low-credit",
        "kind": "balance",
        "below": {"warning": 100, "critical": 50},
        "clear_above": 120,
        "description": "Add funds in the portal (Billing → Add funds).",
    }
)
AUDIT = RULE.validate_python(
    {
        "name": "unexpected-config-change",
        "kind": "audit",
        "severity": "critical",
        "description": "Check the change was planned; revert it if not.",
    }
)
SPIKE = RULE.validate_python(
    {
        "name": "webhook-failure-spike",
        "kind": "webhook_failures",
        "at_least": 10,
        "group_by": "url",
        "severity": "critical",
        "description": "Check the endpoint.",
    }
)
KEY = AlertKey("low-credit", "main")


def state(severity: Severity, fired_at: datetime = T0) -> AlertState:
    return AlertState(
        KEY,
        Phase.FIRING,
        severity,
        T0,
        fired_at=fired_at,
        last_notified_at=T0,
        notified_severity=severity,
        value="45.00 USD",
        threshold="below 50.00 USD",
    )


def balance_finding(severity: Severity | None, value: str, threshold: str) -> Finding:
    return Finding(KEY, severity, value=value, threshold=threshold)


def audit_events(n: int) -> tuple[AuditEvent, ...]:
    return tuple(
        AuditEvent(
            f"e{i}",
            T0 + timedelta(minutes=i),
            "update",
            "organization_member" if i % 3 else "account_owner",
            user_id="0c3b9e6e-4a8b-4f0e-9d2a-5c8f1e7d3a21",
            record_type="messaging_profile",
            resource_id="40017a1c",
            changes=(AuditChange("webhook_url", f"https://a/{i}", f"https://b/{i}"),),
        )
        for i in range(n)
    )


def spike_deliveries() -> tuple[WebhookDelivery, ...]:
    return tuple(
        WebhookDelivery(
            f"d{i}",
            T0 - timedelta(minutes=i % 10),
            "failed",
            "message.finalized",
            "https://hooks.example.com/telnyx",
            503 if i % 3 else 500,
            "error 75499: Service Unavailable",
        )
        for i in range(12)
    )


CASES: dict[str, tuple[Transition, Rule | None]] = {
    "balance-firing": (
        Transition(
            Reason.FIRING,
            KEY,
            Severity.WARNING,
            T0,
            state(Severity.WARNING),
            balance_finding(Severity.WARNING, "98.80 USD", "below 100.00 USD"),
        ),
        LOW,
    ),
    "balance-escalated": (
        Transition(
            Reason.ESCALATED,
            KEY,
            Severity.CRITICAL,
            T0 + timedelta(minutes=40),
            state(Severity.CRITICAL),
            balance_finding(Severity.CRITICAL, "45.00 USD", "below 50.00 USD"),
        ),
        LOW,
    ),
    "balance-repeat": (
        Transition(
            Reason.REPEAT,
            KEY,
            Severity.CRITICAL,
            T0 + timedelta(hours=4),
            state(Severity.CRITICAL),
            balance_finding(Severity.CRITICAL, "31.20 USD", "below 50.00 USD"),
        ),
        LOW,
    ),
    "balance-resolved": (
        Transition(
            Reason.RESOLVED,
            KEY,
            Severity.CRITICAL,
            T0 + timedelta(hours=2, minutes=5),
            state(Severity.CRITICAL),
            balance_finding(None, "388.00 USD", ""),
        ),
        LOW,
    ),
    "audit-events": (
        Transition(
            Reason.EVENTS,
            AlertKey("unexpected-config-change", "main"),
            Severity.CRITICAL,
            T0 + timedelta(hours=1),
            None,
            Finding(
                AlertKey("unexpected-config-change", "main"),
                Severity.CRITICAL,
                value="25 events",
                events=audit_events(25),
            ),
        ),
        AUDIT,
    ),
    "webhook-firing": (
        Transition(
            Reason.FIRING,
            AlertKey("webhook-failure-spike", "main", "https://hooks.example.com/telnyx"),
            Severity.CRITICAL,
            T0,
            None,
            Finding(
                AlertKey("webhook-failure-spike", "main", "https://hooks.example.com/telnyx"),
                Severity.CRITICAL,
                value="12 failed in 15m",
                threshold="at least 10",
                deliveries=spike_deliveries(),
            ),
        ),
        SPIKE,
    ),
    "forecast-firing": (
        Transition(
            Reason.FIRING,
            AlertKey("credit-runway", "main"),
            Severity.WARNING,
            T0,
            None,
            Finding(
                AlertKey("credit-runway", "main"),
                Severity.WARNING,
                value="credit 86.80 USD runs out in about 7h at 12.40 USD/h",
                threshold="alert under 1d",
            ),
        ),
        RULE.validate_python(
            {
                "name": "credit-runway",
                "kind": "forecast",
                "runs_out_within": "1d",
                "description": "Add funds before the projected time.",
            }
        ),
    ),
    "source-down": (
        Transition(
            Reason.FIRING,
            AlertKey(SOURCE_DOWN_RULE, "main", "balance"),
            Severity.CRITICAL,
            T0,
            None,
            Finding(
                AlertKey(SOURCE_DOWN_RULE, "main", "balance"),
                Severity.CRITICAL,
                value="the API rejected the key",
                threshold="failing since 2026-11-23 08:00 UTC",
            ),
        ),
        None,
    ),
}


SUMMED = RULE.validate_python(
    {
        "name": "low-credit",
        "kind": "balance",
        "below": 200,
        "severity": "critical",
        "summary": "{account}: credit {value} {currency} below {threshold}",
        "description": "Add funds in the portal (Billing → Add funds).",
    }
)
NOW = T0 + timedelta(hours=2)
CURRENT = Finding(
    KEY,
    Severity.CRITICAL,
    value="150.00 USD",
    threshold="below 200.00 USD",
    facts={
        "field": "available_credit",
        "value": "150.00",
        "threshold": "200.00",
        "currency": "USD",
        "clear_at": "200.00",
    },
)


def silence_ended() -> Transition:
    """The "still firing" repeat of an alert whose silence just ended (as the daemon
    builds it: the alerts after this cycle's step, and this cycle's findings)."""
    stepped = step(
        {KEY: state(Severity.CRITICAL)}, [result()], NOW, repeat_interval=timedelta(days=1)
    )
    ended = Silence(1, "low-*", None, "topping up", "ops", T0, NOW)
    findings = {f.key: f for f in result().findings}
    [transition] = still_firing(stepped.states, findings, [ended], [], NOW)
    return transition


def result() -> RuleResult:
    return RuleResult("low-credit", "main", True, (CURRENT,))


def repeat_due() -> Transition:
    """The repeat the lifecycle itself emits when `repeat_interval` has passed."""
    stepped = step(
        {KEY: state(Severity.CRITICAL)}, [result()], NOW, repeat_interval=timedelta(hours=1)
    )
    [transition] = stepped.transitions
    return transition


def test_still_firing_after_a_silence_is_rendered_as_a_repeat() -> None:
    ended, due = silence_ended(), repeat_due()
    assert ended.reason is due.reason is Reason.REPEAT
    assert render(ended, SUMMED) == render(due, SUMMED)
    assert ended.state == due.state


def as_text(message: Message) -> str:
    return f"{message.title}\n\n{message.body}\n"


def rendered() -> dict[str, str]:
    out = {name: as_text(render(t, rule)) for name, (t, rule) in CASES.items()}
    out["balance-silence-ended"] = as_text(render(silence_ended(), SUMMED))
    out["route-failing"] = as_text(route_message("ops", 3, failing=True))
    out["route-recovered"] = as_text(route_message("ops", 0, failing=False))
    return out


@pytest.mark.parametrize("name", sorted(rendered()))
def test_golden(name: str) -> None:
    text = rendered()[name]
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing {path}: run with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text()

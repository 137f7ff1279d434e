"""The summary of `once`: counts read as English (one message, two messages)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from watcher.cli.summary import summarize
from watcher.core.lifecycle import Reason
from watcher.core.model import AccountSnapshot, AuditEvent, Severity, WebhookDelivery
from watcher.core.render import Message, count_of
from watcher.notify.delivery import Delivery
from watcher.providers.base import Collected
from watcher.service.cycle import CycleResult

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def report(n: int) -> CycleResult:
    message = Message("t", "b", Severity.WARNING, "low", "main", Reason.FIRING)
    events = tuple(AuditEvent(f"e{i}", T0, "update", "account_owner") for i in range(n))
    failures = tuple(
        WebhookDelivery(f"d{i}", T0 - timedelta(minutes=1), "failed", "x", "u", 500, "")
        for i in range(n)
    )
    snap = AccountSnapshot("main", new_audit_events=events, webhook_failures=failures)
    return CycleResult(
        at=T0,
        collected=[Collected(snap)],
        messages=[message] * n,
        deliveries=[Delivery("ops", "json://…", True)] * n + [Delivery("ops", "x", False, "e")] * n,
        backlog=n,
    )


@pytest.mark.parametrize(
    ("n", "lines"),
    [
        (
            1,
            [
                "    1 new audit event",
                "    1 failed webhook delivery in the window",
                "notifications: 1 new message, 1 delivery ok, 1 failed, 1 waiting for retry",
            ],
        ),
        (
            2,
            [
                "    2 new audit events",
                "    2 failed webhook deliveries in the window",
                "notifications: 2 new messages, 2 deliveries ok, 2 failed, 2 waiting for retry",
            ],
        ),
    ],
)
def test_counts_are_pluralized(n: int, lines: list[str]) -> None:
    summary = summarize(dataclasses.replace(report(n), requests=n))
    assert summary[0].startswith(
        f"cycle at 2026-11-23 08:00:00 UTC: {count_of(n, 'API request')} in"
    )
    for line in lines:
        assert line in summary


@pytest.mark.parametrize(
    ("n", "noun", "plural", "text"),
    [
        (0, "message", None, "0 messages"),
        (1, "message", None, "1 message"),
        (2, "delivery", "deliveries", "2 deliveries"),
        (1, "delivery", "deliveries", "1 delivery"),
    ],
)
def test_count_of(n: int, noun: str, plural: str | None, text: str) -> None:
    assert count_of(n, noun, plural) == text

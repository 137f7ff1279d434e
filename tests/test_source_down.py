"""The built-in `watcher-source-down` rule, pure: a rejected key is one alert per account
(naming the sources it affects); other failures stay one alert per source."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watcher.core.lifecycle import Reason, Transition
from watcher.core.model import AccountSnapshot, AlertKey, Severity, SourceError, SourceName
from watcher.core.render import render
from watcher.core.rules import KEY_REJECTED_GROUP, SOURCE_DOWN_RULE, Finding, evaluate

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)
B, A, W = SourceName.BALANCE, SourceName.AUDIT, SourceName.WEBHOOKS


def rejected(source: SourceName, ago: timedelta = timedelta(0), status: int = 401) -> SourceError:
    message = f"GET /{source}: the API rejected the key (HTTP {status})"
    return SourceError(source, message, auth=True, failing_since=NOW - ago)


def failing(source: SourceName, ago: timedelta) -> SourceError:
    return SourceError(source, f"GET /{source} failed: HTTP 503", failing_since=NOW - ago)


def findings(*errors: SourceError) -> list[Finding]:
    snap = AccountSnapshot("main", errors={e.source: e for e in errors})
    [result] = [r for r in evaluate([], [snap], NOW) if r.rule == SOURCE_DOWN_RULE]
    assert result.judged
    return list(result.findings)


KEY = AlertKey(SOURCE_DOWN_RULE, "main", KEY_REJECTED_GROUP)


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        pytest.param([], {}, id="all-well"),
        pytest.param(
            [rejected(B), rejected(A), rejected(W)],
            {
                KEY_REJECTED_GROUP: "the API rejected the key; sources affected: audit, balance, "
                "webhooks"
            },
            id="revoked-key-is-one-alert",
        ),
        pytest.param(
            [rejected(A, status=403)],
            {KEY_REJECTED_GROUP: "the API rejected the key; sources affected: audit"},
            id="one-source-forbidden",
        ),
        pytest.param(
            [rejected(B), failing(W, 6 * M)],
            {
                KEY_REJECTED_GROUP: "the API rejected the key; sources affected: balance",
                "webhooks": "GET /webhooks failed: HTTP 503",
            },
            id="rejected-and-a-failing-source",
        ),
        pytest.param([failing(B, M), failing(W, M)], {}, id="failing-briefly"),
        pytest.param(
            [failing(B, 6 * M), failing(W, 6 * M)],
            {
                "balance": "GET /balance failed: HTTP 503",
                "webhooks": "GET /webhooks failed: HTTP 503",
            },
            id="failing-long-is-one-alert-per-source",
        ),
    ],
)
def test_source_down(errors: list[SourceError], expected: dict[str, str]) -> None:
    found = findings(*errors)
    assert {f.key.group: f.value for f in found} == expected
    assert all(f.severity is Severity.CRITICAL for f in found)
    assert all(f.key.rule == SOURCE_DOWN_RULE and f.key.account == "main" for f in found)


def test_rejected_key_fails_since_the_first_source_rejected() -> None:
    [finding] = findings(rejected(B, 2 * M), rejected(A, 7 * M), rejected(W))
    assert finding.key == KEY
    assert finding.threshold == "failing since 2026-11-23 11:53 UTC"
    assert finding.facts["sources"] == "audit, balance, webhooks"


def test_rejected_key_is_one_alert_per_account() -> None:
    snaps = [
        AccountSnapshot(name, errors={s: rejected(s) for s in (B, A, W)})
        for name in ("main", "other")
    ]
    keys = [f.key for r in evaluate([], snaps, NOW) for f in r.findings]
    assert keys == [KEY, AlertKey(SOURCE_DOWN_RULE, "other", KEY_REJECTED_GROUP)]


def test_rejected_key_message_names_the_key_and_the_sources() -> None:
    [finding] = findings(rejected(B), rejected(A), rejected(W))
    message = render(Transition(Reason.FIRING, KEY, Severity.CRITICAL, NOW, None, finding), None)
    assert message.title == "[CRITICAL] watcher-source-down firing — main [api-key]"
    assert message.body.splitlines()[0] == (
        "The API rejected the key; sources affected: audit, balance, webhooks "
        "(failing since 2026-11-23 12:00 UTC)."
    )
    assert "Check the API key" in message.body

"""Rules for Vonage accounts, pure: the `credentials` kind and audit on Vonage's fields.

Time is a parameter; snapshots are built by hand as the Vonage sources would fill them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from watcher.core.capabilities import Capabilities
from watcher.core.lifecycle import Reason, Transition
from watcher.core.model import (
    AccountSnapshot,
    AlertKey,
    AuditEvent,
    CredentialChange,
    Severity,
    SourceError,
    SourceName,
)
from watcher.core.render import render
from watcher.core.rules import CredentialsRule, Rule, audit_matches, evaluate, sources_needed

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RULE = TypeAdapter(Rule)
ADDED = CredentialChange(
    "ad6dc56f-07b5-46e1-a527-85530e625800", "added", NOW - timedelta(minutes=3)
)
REMOVED = CredentialChange("0f3c1a2b-0000-4000-8000-000000000001", "removed")


def rule(**data: Any) -> Rule:
    return RULE.validate_python({"name": "r", **data})


def snapshot(**data: Any) -> AccountSnapshot:
    return AccountSnapshot(account="eu", provider="vonage", **data)


def only(results: list[Any], name: str = "r") -> Any:
    (result,) = [r for r in results if r.rule == name]
    return result


def vonage_event(event_id: str = "e1", **fields: Any) -> AuditEvent:
    defaults: dict[str, Any] = {
        "event_type": "AUTORELOAD_DISABLE",
        "source": "DEVAPI",
        "source_ip": "203.0.113.7",
        "source_country": "DE",
        "user_email": "ops@example.com",
        "context": {"auto_reload": False},
    }
    return AuditEvent(event_id, NOW - timedelta(minutes=1), **{**defaults, **fields})


# ---------------------------------------------------------------------------- credentials


def test_credentials_rule_defaults() -> None:
    parsed = rule(kind="credentials")
    assert isinstance(parsed, CredentialsRule)
    assert parsed.severity == "warning"
    assert sources_needed([parsed]) == {SourceName.CREDENTIALS}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "credentials", "for": "5m"}, "`for` does not apply to credentials rules"),
        ({"kind": "credentials", "window": "5m"}, "Extra inputs are not permitted"),
        ({"kind": "credentials", "summary": "{nope}"}, "unknown placeholder {nope}"),
    ],
)
def test_credentials_rule_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        rule(**data)


@pytest.mark.parametrize(
    ("changes", "value", "facts"),
    [
        (
            (ADDED,),
            f"secret added: {ADDED.id}",
            {"count": "1", "added": ADDED.id, "removed": ""},
        ),
        (
            (REMOVED,),
            f"secret removed: {REMOVED.id}",
            {"count": "1", "added": "", "removed": REMOVED.id},
        ),
        (
            (ADDED, REMOVED),
            f"secret added: {ADDED.id}; secret removed: {REMOVED.id}",
            {"count": "2", "added": ADDED.id, "removed": REMOVED.id},
        ),
    ],
)
def test_each_credential_change_fires_once(
    changes: tuple[CredentialChange, ...], value: str, facts: dict[str, str]
) -> None:
    result = only(evaluate([rule(kind="credentials")], [snapshot(credential_changes=changes)], NOW))
    assert result.judged and result.one_shot
    (finding,) = result.findings
    assert finding.key == AlertKey("r", "eu")
    assert finding.severity is Severity.WARNING
    assert (finding.value, dict(finding.facts)) == (value, facts)
    assert finding.credential_changes == changes


@pytest.mark.parametrize(
    ("snap", "judged"),
    [
        (snapshot(), True),  # the first poll only records: no changes in the snapshot
        (
            snapshot(errors={SourceName.CREDENTIALS: SourceError(SourceName.CREDENTIALS, "503")}),
            False,
        ),
    ],
)
def test_no_change_no_finding(snap: AccountSnapshot, judged: bool) -> None:
    result = only(evaluate([rule(kind="credentials")], [snap], NOW))
    assert (result.judged, result.findings) == (judged, ())


def test_credentials_message_names_ids_never_secrets() -> None:
    parsed = rule(kind="credentials", severity="critical")
    result = only(evaluate([parsed], [snapshot(credential_changes=(ADDED, REMOVED))], NOW))
    (finding,) = result.findings
    message = render(
        Transition(Reason.EVENTS, finding.key, Severity.CRITICAL, NOW, None, finding), parsed
    )
    assert message.title == "[CRITICAL] r: 2 credential changes — eu"
    assert message.body.splitlines() == [
        f"The account's API secrets changed: secret added: {ADDED.id}; secret removed: "
        f"{REMOVED.id}.",
        "",
        f"- added secret {ADDED.id} (created 2026-11-23 11:57 UTC)",
        f"- removed secret {REMOVED.id}",
    ]


def test_credentials_summary_placeholders() -> None:
    parsed = rule(kind="credentials", summary="{account}: new {added}, gone {removed}")
    (finding,) = only(evaluate([parsed], [snapshot(credential_changes=(ADDED,))], NOW)).findings
    message = render(
        Transition(Reason.EVENTS, finding.key, Severity.WARNING, NOW, None, finding), parsed
    )
    assert message.body.splitlines()[0] == f"eu: new {ADDED.id}, gone "


# ---------------------------------------------------------------------------- audit, Vonage fields


@pytest.mark.parametrize(
    ("criteria", "matches"),
    [
        ({"event_type": "AUTORELOAD_DISABLE"}, True),
        ({"event_type": "AUTORELOAD_*"}, True),
        ({"event_type": ["API_SECRET_*", "AUTORELOAD_*"]}, True),
        ({"event_type": "API_SECRET_*"}, False),
        ({"source": "DEVAPI"}, True),
        ({"source": "CD"}, False),
        ({"source_ip": "203.0.113.*"}, True),
        ({"source_country": ["FR", "NL"]}, False),
        ({"user_email": "*@example.com"}, True),
        ({"event_type": "AUTORELOAD_*", "source": "CD"}, False),  # all keys must match
        ({"change_type": "update"}, False),  # a Telnyx field: empty on a Vonage event
        ({"user_id": "*"}, False),
    ],
)
def test_audit_matches_vonage_fields(criteria: dict[str, Any], matches: bool) -> None:
    assert audit_matches(vonage_event(), criteria) is matches


def test_vonage_audit_event_alerts_once_and_an_ignored_one_never() -> None:
    parsed = rule(
        kind="audit",
        match={"event_type": "AUTORELOAD_*"},
        ignore=[{"user_email": "robot@example.com"}],
        severity="critical",
    )
    events = (
        vonage_event("e1"),
        vonage_event("e2", user_email="robot@example.com"),
        vonage_event("e3", event_type="USER_LOGIN"),
    )
    result = only(evaluate([parsed], [snapshot(new_audit_events=events)], NOW))
    (finding,) = result.findings
    assert result.one_shot
    assert [event.id for event in finding.events] == ["e1"]
    message = render(
        Transition(Reason.EVENTS, finding.key, Severity.CRITICAL, NOW, None, finding), parsed
    )
    assert message.title == "[CRITICAL] r: 1 audit event — eu"
    assert (
        "- 2026-11-23 11:59 UTC ops@example.com AUTORELOAD_DISABLE via DEVAPI from 203.0.113.7 (DE)"
        in message.body.splitlines()
    )


@pytest.mark.parametrize(
    "field", ["event_type", "source", "source_ip", "source_country", "user_email"]
)
def test_audit_rules_accept_every_vonage_field(field: str) -> None:
    assert rule(kind="audit", match={field: "x"}, ignore=[{field: "y"}]).kind == "audit"


# ---------------------------------------------------------------------------- per provider

OFFERS = {
    "telnyx": Capabilities(
        frozenset({"balance", "forecast", "audit", "webhook_failures"}),
        balance_fields=frozenset({"available_credit", "balance", "credit_limit", "pending"}),
    ),
    "vonage": Capabilities(
        frozenset({"balance", "forecast", "audit", "credentials"}),
        balance_fields=frozenset({"available_credit", "balance"}),
    ),
}


@pytest.mark.parametrize(
    ("data", "judged_for"),
    [
        ({"kind": "balance", "below": 1}, ["eu", "main"]),
        ({"kind": "balance", "field": "credit_limit", "below": 1}, ["main"]),
        ({"kind": "credentials"}, ["eu"]),
        ({"kind": "webhook_failures"}, ["main"]),
        ({"kind": "audit"}, ["eu", "main"]),
    ],
)
def test_a_rule_is_judged_only_where_the_provider_offers_it(
    data: dict[str, Any], judged_for: list[str]
) -> None:
    snaps = [snapshot(), AccountSnapshot(account="main")]
    results = evaluate([rule(**data)], snaps, NOW, capabilities=OFFERS)
    assert sorted(r.account for r in results if r.rule == "r") == judged_for
    everywhere = evaluate([rule(**data)], snaps, NOW)  # without capabilities: as before
    assert sorted(r.account for r in everywhere if r.rule == "r") == ["eu", "main"]

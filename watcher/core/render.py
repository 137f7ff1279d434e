"""Messages: titles and bodies an on-call person can act on. Pure.

`render(transition, rule)` → `Message`. Titles follow the contract:
`[CRITICAL] low-credit firing — main`, `[RESOLVED] low-credit — main (fired 2h 05m)`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from watcher.core.durations import format_duration
from watcher.core.lifecycle import Reason, Transition
from watcher.core.model import AuditEvent, CredentialChange, Severity, WebhookDelivery
from watcher.core.rules import (
    KEY_REJECTED_GROUP,
    SOURCE_DOWN_RULE,
    AuditRule,
    BalanceRule,
    CredentialsRule,
    DriftRule,
    ForecastRule,
    InvoiceRule,
    Rule,
    SpendRule,
    WebhookFailuresRule,
)

MAX_EVENTS_LISTED = 20
MAX_URLS_LISTED = 5
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True, slots=True)
class Message:
    """A rendered notification. `urgent` ones (money: top-up outcomes) ignore route mutes."""

    title: str
    body: str
    severity: Severity
    rule: str
    account: str
    reason: Reason
    urgent: bool = False


def fill(template: str, values: Mapping[str, str]) -> str:
    """Safe `{placeholder}` substitution: names only, unknown ones are left as they are."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def count_of(n: int, noun: str, plural: str | None = None) -> str:
    """`1 message`, `2 messages`; `plural` for irregular nouns (`deliveries`)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


def render(transition: Transition, rule: Rule | None) -> Message:
    """Render one transition. `rule` is None for built-in rules."""
    key = transition.key
    where = key.account + (f" [{key.group}]" if key.group else "")
    title = _title(transition, where)
    if transition.reason is Reason.ACKED:
        return _acked(transition, title)
    lines = [_headline(transition, rule)]
    lines += _details(transition, rule)
    if transition.reason is Reason.UNACKED:
        lines += ["", _unacked_advice(transition)]
    if rule is not None and rule.description and transition.reason is not Reason.RESOLVED:
        lines += ["", rule.description.strip()]
    elif key.rule == SOURCE_DOWN_RULE and transition.reason is not Reason.RESOLVED:
        lines += ["", _SOURCE_DOWN_ADVICE]
    return Message(
        title, "\n".join(lines), transition.severity, key.rule, key.account, transition.reason
    )


_SOURCE_DOWN_ADVICE = (
    "account-watcher cannot read this source, so rules that need it are not evaluated. "
    "Check the API key (a 401/403 means it was revoked or lacks permissions) and "
    "`account-watcher status`."
)


def _acked(t: Transition, title: str) -> Message:
    state, ack = t.state, t.state.ack if t.state else None
    assert state is not None and ack is not None  # announcements() makes it so
    lines = [
        f"Acknowledged by {ack.by} at {when(ack.at)}: {ack.reason}",
        f"No repeats and no escalation until it resolves, is escalated to a higher "
        f"severity, or until {when(ack.expires_at)}.",
        f"Still {state.value} ({state.threshold}); firing since {when(ack.fired_at)}.",
    ]
    return Message(title, "\n".join(lines), t.severity, t.key.rule, t.key.account, t.reason)


def _unacked_advice(t: Transition) -> str:
    where = f" --account {t.key.account}" + (f" --group {t.key.group}" if t.key.group else "")
    return (
        "Nobody has acknowledged it yet. To take it: "
        f'account-watcher ack {t.key.rule}{where} --reason "..."'
    )


def _title(t: Transition, where: str) -> str:
    sev = t.severity.name
    rule = t.key.rule
    match t.reason:
        case Reason.FIRING:
            return f"[{sev}] {rule} firing — {where}"
        case Reason.ESCALATED:
            return f"[{sev}] {rule} escalated to {t.severity.label} — {where}"
        case Reason.REPEAT:
            return f"[{sev}] {rule} still firing ({format_duration(t.fired_for)}) — {where}"
        case Reason.RESOLVED:
            return f"[RESOLVED] {rule} — {where} (fired {format_duration(t.fired_for)})"
        case Reason.ACKED if t.state is not None and t.state.ack is not None:
            return f"[ACK] {rule} — {where}: {t.state.ack.by}: {t.state.ack.reason}"
        case Reason.UNACKED:
            return (
                f"[{sev}] {rule} firing {format_duration(t.fired_for)}, not acknowledged — {where}"
            )
        case Reason.EVENTS if t.finding is not None and t.finding.credential_changes:
            count = len(t.finding.credential_changes)
            return f"[{sev}] {rule}: {count_of(count, 'credential change')} — {where}"
        case Reason.EVENTS:
            count = len(t.finding.events) if t.finding else 0
            return f"[{sev}] {rule}: {count_of(count, 'audit event')} — {where}"
    raise AssertionError(t.reason)  # pragma: no cover


def _headline(t: Transition, rule: Rule | None) -> str:
    finding = t.finding
    value = finding.value if finding else (t.state.value if t.state else "")
    threshold = finding.threshold if finding else (t.state.threshold if t.state else "")
    if t.reason is Reason.RESOLVED:
        if t.retired:
            return (
                f"Resolved after {format_duration(t.fired_for)}: the rule is no longer "
                "evaluated for this account (removed, disabled or narrowed by a reload)."
            )
        if finding is None:  # the key is gone from the results: the condition no longer holds
            return f"Resolved after {format_duration(t.fired_for)}: the condition no longer holds."
        return f"Resolved after {format_duration(t.fired_for)}: now {value}."
    if rule is not None and rule.summary and finding is not None:
        placeholders = {
            "rule": t.key.rule,
            "account": t.key.account,
            "group": t.key.group,
            "severity": t.severity.label,
            "value": value,
            "threshold": threshold,
            **(finding.facts if finding else {}),
        }
        return fill(rule.summary, placeholders)
    return _default_headline(t, rule, value, threshold)


def _default_headline(t: Transition, rule: Rule | None, value: str, threshold: str) -> str:
    if isinstance(rule, BalanceRule):
        return f"{rule.field} is {value}, {threshold}."
    if isinstance(rule, ForecastRule):
        return f"At the current burn rate, {value} ({threshold})."
    if isinstance(rule, WebhookFailuresRule):
        return f"Webhook deliveries failing: {value} ({threshold})."
    if isinstance(rule, AuditRule):
        return f"{value} matched {t.key.rule}."
    if isinstance(rule, CredentialsRule):
        return f"The account's API secrets changed: {value}."
    if isinstance(rule, InvoiceRule):
        return f"{value[:1].upper()}{value[1:]} ({threshold})."
    if isinstance(rule, SpendRule):
        return f"{value[:1].upper()}{value[1:]}, {threshold}."
    if isinstance(rule, DriftRule):
        return f"Provider settings differ from what the rule expects: {value}."
    if t.key.rule == SOURCE_DOWN_RULE and t.key.group == KEY_REJECTED_GROUP:
        return f"{value[:1].upper()}{value[1:]} ({threshold})."
    if t.key.rule == SOURCE_DOWN_RULE:
        return f"Source {t.key.group} is failing: {value} ({threshold})."
    return f"{value} ({threshold})"


def _details(t: Transition, rule: Rule | None) -> list[str]:
    state = t.state
    lines: list[str] = []
    if t.reason is Reason.RESOLVED:
        if state is not None and state.fired_at is not None:
            lines.append(f"Fired at {when(state.fired_at)}, resolved at {when(t.at)}.")
        if state is not None and state.threshold:
            lines.append(f"Last seen firing: {state.value} ({state.threshold}).")
        return lines
    finding = t.finding  # None: not judged this cycle; the headline has the last values
    if finding is not None and finding.events:
        lines += ["", *audit_lines(finding.events)]
    elif finding is not None and finding.credential_changes:
        lines += ["", *(_credential_line(c) for c in finding.credential_changes)]
    elif finding is not None and finding.deliveries:
        lines += ["", *webhook_lines(finding.deliveries)]
    elif finding is not None and rule is not None and rule.summary:  # else the headline says it
        lines.append(f"Value: {finding.value}; threshold: {finding.threshold}.")
    if state is not None and state.fired_at is not None and t.reason is not Reason.EVENTS:
        lines.append(f"Firing since {when(state.fired_at)}; account {t.key.account}.")
    return lines


def _credential_line(change: CredentialChange) -> str:
    """`- added secret ad6dc56f (created 2026-11-23 10:00 UTC)`: the id, never the secret."""
    created = f" (created {when(change.created_at)})" if change.created_at else ""
    return f"- {change.change} secret {change.id}{created}"


# ---------------------------------------------------------------------------- audit


_API_RECORD_TYPE = "audit_event"  # what the API puts on every entry: no resource type


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _actor(event: AuditEvent) -> str:
    who = event.change_made_by or "unknown"
    return f"{who} (user {event.user_id})" if event.user_id else who


def audit_line(event: AuditEvent) -> str:
    """`2026-11-23 10:00 UTC account_owner (user u1) update messaging_profile r1: a "x" → "y"`.

    A Vonage event: `2026-11-23 10:00 UTC ops@example.com AUTORELOAD_DISABLE via DEVAPI from
    203.0.113.7 (DE)`.
    """
    if event.event_type is not None:
        return _vonage_line(event)
    kind = event.record_type if event.record_type != _API_RECORD_TYPE else None
    resource = " ".join(
        part for part in (kind, event.resource_id or event.alternate_resource_id) if part
    )
    changes = "; ".join(f"{c.field}: {_short(c.old)} → {_short(c.new)}" for c in event.changes[:5])
    more = f" (+{len(event.changes) - 5} more changes)" if len(event.changes) > 5 else ""
    head = f"- {when(event.created_at)} {_actor(event)} {event.change_type or 'change'} {resource}"
    return f"{head.rstrip()}: {changes}{more}" if changes else head.rstrip()


def _vonage_line(event: AuditEvent) -> str:
    where = f" from {event.source_ip}" if event.source_ip else ""
    where += f" ({event.source_country})" if event.source_country else ""
    via = f" via {event.source}" if event.source else ""
    who = event.user_email or "unknown"
    return f"- {when(event.created_at)} {who} {event.event_type}{via}{where}"


def audit_lines(events: Sequence[AuditEvent]) -> list[str]:
    """Up to 20 events listed, the rest summarised by actor and change type."""
    lines = [audit_line(e) for e in events[:MAX_EVENTS_LISTED]]
    rest = events[MAX_EVENTS_LISTED:]
    if rest:
        counts = Counter(
            (
                e.change_made_by or e.user_email or "unknown",
                e.change_type or e.event_type or "change",
            )
            for e in rest
        )
        summary = ", ".join(f"{n}× {who} {what}" for (who, what), n in counts.most_common())
        lines.append(f"… and {len(rest)} more: {summary}")
    return lines


# ---------------------------------------------------------------------------- webhooks


def webhook_lines(deliveries: Sequence[WebhookDelivery]) -> list[str]:
    """Top failing URLs with HTTP status counts, and one sample error."""
    by_url: dict[str, Counter[str]] = {}
    for d in deliveries:
        status = str(d.http_status) if d.http_status is not None else "no response"
        by_url.setdefault(d.url or "(no url)", Counter())[status] += 1
    ranked = sorted(by_url.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    lines = ["Failing URLs:", ""]
    for url, statuses in ranked[:MAX_URLS_LISTED]:
        ranked_statuses = sorted(statuses.items(), key=lambda item: (-item[1], item[0]))
        detail = ", ".join(f"{n}× {status}" for status, n in ranked_statuses)
        lines.append(f"- {url}: {sum(statuses.values())} failed ({detail})")
    if len(ranked) > MAX_URLS_LISTED:
        lines.append(f"- … and {len(ranked) - MAX_URLS_LISTED} more URLs")
    sample = next((d for d in reversed(deliveries) if d.error), None)
    if sample is not None:
        lines.append(f"Sample error ({when(sample.started_at)}): {_short(sample.error)}")
    return lines

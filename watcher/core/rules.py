"""Rules: the pure evaluation beside the rule kinds' models (`watcher.core.rulekinds`).

`evaluate(rules, snapshots, now)` turns what the sources saw into `RuleResult`s: for each
(rule, account) whether the rule could be judged and which alert keys hold. No clock,
no I/O: `now` is a parameter. Every name of `rulekinds` is re-exported here.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from watcher.core.auditfields import TELNYX_AUDIT_FIELDS, VONAGE_AUDIT_FIELDS, AuditField
from watcher.core.capabilities import Capabilities
from watcher.core.drift import DriftRule, drift_sources, judge_drift
from watcher.core.durations import format_duration
from watcher.core.findings import Finding, RuleResult
from watcher.core.forecast import eta_phrase, fit_burn, per_hour_text, runs_out_in, runs_out_text
from watcher.core.invoice import judge_invoices
from watcher.core.model import (
    AccountSnapshot,
    AlertKey,
    AuditEvent,
    Severity,
    SourceError,
    SourceName,
    WebhookDelivery,
)
from watcher.core.money import money
from watcher.core.rulefile import Rule, RuleFile
from watcher.core.rulekinds import (
    COMMON_PLACEHOLDERS,
    KEY_REJECTED_GROUP,
    MAX_LOOKBACK,
    SOURCE_DOWN_RULE,
    AuditRule,
    BalanceField,
    BalanceRule,
    CredentialsRule,
    ForecastField,
    ForecastRule,
    InvoiceRule,
    Patterns,
    SeverityName,
    Threshold,
    WebhookFailuresRule,
)
from watcher.core.spend import SpendRule, judge_spend, spend_sources

__all__ = [
    "COMMON_PLACEHOLDERS",
    "KEY_REJECTED_GROUP",
    "MAX_LOOKBACK",
    "SOURCE_DOWN_RULE",
    "TELNYX_AUDIT_FIELDS",
    "VONAGE_AUDIT_FIELDS",
    "AuditField",
    "AuditRule",
    "BalanceField",
    "BalanceRule",
    "CredentialsRule",
    "DriftRule",
    "Finding",
    "ForecastField",
    "ForecastRule",
    "InvoiceRule",
    "Patterns",
    "Rule",
    "RuleFile",
    "RuleResult",
    "SeverityName",
    "SpendRule",
    "Threshold",
    "WebhookFailuresRule",
    "audit_matches",
    "can_judge",
    "evaluate",
    "longest_lookback",
    "longest_window",
    "money",
    "ratio_floors",
    "ratio_windows",
    "sources_needed",
]


def sources_needed(rules: Iterable[Rule]) -> frozenset[SourceName]:
    """Which sources the enabled rules need polled."""
    kinds = {
        BalanceRule: SourceName.BALANCE,
        ForecastRule: SourceName.BALANCE,
        AuditRule: SourceName.AUDIT,
        WebhookFailuresRule: SourceName.WEBHOOKS,
        CredentialsRule: SourceName.CREDENTIALS,
        InvoiceRule: SourceName.INVOICES,
    }
    enabled = [rule for rule in rules if rule.enabled]
    drifts = [drift_sources(r) for r in enabled if isinstance(r, DriftRule)]
    spends = [spend_sources(r) for r in enabled if isinstance(r, SpendRule)]
    return frozenset(kinds[type(r)] for r in enabled if type(r) in kinds).union(*drifts, *spends)


def ratio_windows(rules: Iterable[Rule]) -> frozenset[timedelta]:
    """Windows for which the delivery total (ratio denominator) must be fetched."""
    return frozenset(
        rule.window
        for rule in rules
        if isinstance(rule, WebhookFailuresRule) and rule.enabled and rule.ratio is not None
    )


def ratio_floors(rules: Iterable[Rule]) -> dict[timedelta, int]:
    """Per ratio window, the fewest failures in it from which a `ratio` rule may fire
    (its smallest `at_least`): with fewer, the window's delivery total cannot matter."""
    floors: dict[timedelta, int] = {}
    for rule in rules:
        if isinstance(rule, WebhookFailuresRule) and rule.enabled and rule.ratio is not None:
            floors[rule.window] = min(rule.at_least, floors.get(rule.window, rule.at_least))
    return floors


def longest_window(rules: Iterable[Rule]) -> timedelta:
    windows = [r.window for r in rules if isinstance(r, WebhookFailuresRule) and r.enabled]
    return max(windows, default=timedelta(0))


def longest_lookback(rules: Iterable[Rule]) -> timedelta:
    """How far back balance samples are needed: the longest `lookback` of enabled
    forecast rules, or span of spend rules from samples (0s without any)."""
    enabled = [rule for rule in rules if rule.enabled]
    lookbacks = [r.lookback for r in enabled if isinstance(r, ForecastRule)]
    spans = [r.from_samples_span for r in enabled if isinstance(r, SpendRule)]
    return min(max([*lookbacks, *spans], default=timedelta(0)), MAX_LOOKBACK + timedelta(days=1))


def evaluate(
    rules: Sequence[Rule],
    snapshots: Sequence[AccountSnapshot],
    now: datetime,
    *,
    source_down_after: timedelta = timedelta(minutes=5),
    capabilities: Mapping[str, Capabilities] | None = None,
) -> list[RuleResult]:
    """Judge every enabled rule for every account it applies to.

    Also judges the built-in `watcher-source-down` rule from the snapshots' errors.
    In: rules, one snapshot per account, the cycle's `now`; `capabilities` (by provider,
    optional): a rule is skipped for an account whose provider cannot judge it (e.g. a
    `credit_limit` balance rule for a Vonage account of a mixed config).
    Out: one result per judged pair.
    """
    offers = capabilities or {}
    results: list[RuleResult] = []
    for snap in snapshots:
        offer = offers.get(snap.provider)
        for rule in rules:
            if rule.applies_to(snap.account) and (offer is None or can_judge(offer, rule)):
                result = _evaluate_one(rule, snap, now, offer)
                results.append(dataclasses.replace(result, keep_for=rule.keep_firing_for))
        results.append(_source_down(snap, now, source_down_after))
    return results


def can_judge(offer: Capabilities, rule: Rule) -> bool:
    """Whether a provider offering `offer` has the rule's kind (and balance field, or one
    of a drift rule's fields)."""
    if not offer.offers(rule.kind):
        return False
    if isinstance(rule, DriftRule):
        return any(name in offer.drift_fields for name in rule.expect)
    if isinstance(rule, SpendRule):
        return rule.period is None or rule.period in offer.spend_periods
    return not isinstance(rule, BalanceRule | ForecastRule) or rule.field in offer.balance_fields


def _evaluate_one(
    rule: Rule, snap: AccountSnapshot, now: datetime, offer: Capabilities | None
) -> RuleResult:
    if isinstance(rule, DriftRule):
        return judge_drift(rule, snap, None if offer is None else offer.drift_fields)
    if isinstance(rule, BalanceRule):
        return _balance(rule, snap)
    if isinstance(rule, ForecastRule):
        return _forecast(rule, snap, now)
    if isinstance(rule, AuditRule):
        return _audit(rule, snap)
    if isinstance(rule, CredentialsRule):
        return _credentials(rule, snap)
    if isinstance(rule, InvoiceRule):
        return judge_invoices(rule, snap, now)
    if isinstance(rule, SpendRule):
        return judge_spend(rule, snap, now, charges=None if offer is None else offer.charges)
    return _webhooks(rule, snap, now)


def _not_judged(rule: Rule, snap: AccountSnapshot) -> RuleResult:
    return RuleResult(rule.name, snap.account, judged=False, hold_for=rule.for_)


# ---------------------------------------------------------------------------- balance


def _balance(rule: BalanceRule, snap: AccountSnapshot) -> RuleResult:
    if snap.balance is None:
        return _not_judged(rule, snap)
    value = snap.balance.field(rule.field)
    below = rule.below is not None
    breached = [
        sev for sev, limit in rule.levels.items() if (value < limit if below else value > limit)
    ]
    severity = max(breached) if breached else None
    cleared = value >= rule.clear_at if below else value <= rule.clear_at
    shown = severity if severity is not None else min(rule.levels)
    word = "below" if below else "above"
    threshold = money(rule.levels[shown], snap.balance.currency)
    finding = Finding(
        key=AlertKey(rule.name, snap.account),
        severity=severity,
        cleared=cleared and severity is None,
        value=money(value, snap.balance.currency),
        threshold=f"{word} {threshold}",
        facts={
            "field": rule.field,
            "value": money(value),
            "threshold": money(rule.levels[shown]),
            "currency": snap.balance.currency,
            "clear_at": money(rule.clear_at),
        },
    )
    return RuleResult(rule.name, snap.account, True, (finding,), hold_for=rule.for_)


# ---------------------------------------------------------------------------- forecast

_FORECAST_WORD = {"available_credit": "credit", "balance": "balance"}


def _forecast(rule: ForecastRule, snap: AccountSnapshot, now: datetime) -> RuleResult:
    """Not judged without a balance, or with too few samples or too short a span."""
    if snap.balance is None:
        return _not_judged(rule, snap)
    current = snap.balance.field(rule.field)
    start = now - rule.lookback
    points = [(at, b.field(rule.field)) for at, b in snap.balance_history if start <= at < now]
    burn = fit_burn([*points, (now, current)])
    if burn is None or burn.samples < rule.min_samples or burn.span < rule.lookback * rule.min_span:
        return _not_judged(rule, snap)
    eta = runs_out_in(current, rule.floor, burn)
    if eta is not None:
        eta = timedelta(minutes=round(eta.total_seconds() / 60))
    holds = eta is not None and eta < rule.runs_out_within
    currency = snap.balance.currency
    rate = f"{per_hour_text(burn)} {currency}/h".strip()
    word = _FORECAST_WORD[rule.field]
    floor = "" if rule.floor == 0 else f" {money(rule.floor, currency)}"
    if eta is None:
        value = f"{word} {money(current, currency)} is not running out ({rate})"
    elif current <= rule.floor:
        value = f"{word} {money(current, currency)} has reached the floor{floor} ({rate})"
    elif floor:
        value = f"{word} {money(current, currency)} reaches{floor} "
        value += f"{eta_phrase(current, rule.floor, eta)} at {rate}"
    else:
        value = f"{word} {money(current, currency)} runs out "
        value += f"{eta_phrase(current, rule.floor, eta)} at {rate}"
    finding = Finding(
        key=AlertKey(rule.name, snap.account),
        severity=rule.level if holds else None,
        cleared=not holds,
        value=value,
        threshold=f"alert under {format_duration(rule.runs_out_within)}",
        facts={
            "field": rule.field,
            "value": money(current),
            "currency": currency,
            "burn_rate": per_hour_text(burn),
            "runs_out_in": runs_out_text(current, rule.floor, eta),
            "runs_out_at": "never" if eta is None else f"{now + eta:%Y-%m-%d %H:%M} UTC",
            "floor": money(rule.floor),
            "runs_out_within": format_duration(rule.runs_out_within),
            "lookback": format_duration(rule.lookback),
            "samples": str(burn.samples),
        },
    )
    return RuleResult(rule.name, snap.account, True, (finding,), hold_for=rule.for_)


# ---------------------------------------------------------------------------- audit


def _as_list(patterns: Patterns) -> list[str]:
    return [patterns] if isinstance(patterns, str) else patterns


def _values(event: AuditEvent, field: str) -> list[str]:
    if field == "field":
        return [change.field for change in event.changes]
    value = getattr(event, field)
    return [] if value is None else [str(value)]


def audit_matches(
    event: AuditEvent, criteria: Mapping[AuditField, Patterns] | Mapping[str, Patterns]
) -> bool:
    """True when every key of `criteria` matches (globs; a list matches any of)."""
    return all(
        any(
            fnmatch.fnmatchcase(value, pattern)
            for value in _values(event, key)
            for pattern in _as_list(patterns)
        )
        for key, patterns in criteria.items()
    )


def _audit(rule: AuditRule, snap: AccountSnapshot) -> RuleResult:
    if SourceName.AUDIT in snap.errors and not snap.new_audit_events:
        return _not_judged(rule, snap)
    hits = tuple(
        event
        for event in snap.new_audit_events
        if audit_matches(event, rule.match)
        and not any(audit_matches(event, entry) for entry in rule.ignore)
    )
    findings: tuple[Finding, ...] = ()
    if hits:
        finding = Finding(
            key=AlertKey(rule.name, snap.account),
            severity=rule.level,
            value=f"{len(hits)} event{'s' if len(hits) != 1 else ''}",
            facts={"count": str(len(hits))},
            events=hits,
        )
        findings = (finding,)
    return RuleResult(rule.name, snap.account, True, findings, one_shot=True)


# ---------------------------------------------------------------------------- credentials


def _credentials(rule: CredentialsRule, snap: AccountSnapshot) -> RuleResult:
    """One finding for the secrets added or removed in this poll (ids only); one-shot."""
    changes = snap.credential_changes
    if SourceName.CREDENTIALS in snap.errors and not changes:
        return _not_judged(rule, snap)
    if not changes:
        return RuleResult(rule.name, snap.account, True, (), one_shot=True)
    added = ", ".join(c.id for c in changes if c.change == "added")
    removed = ", ".join(c.id for c in changes if c.change == "removed")
    parts = [
        f"secret added: {added}" if added else "",
        f"secret removed: {removed}" if removed else "",
    ]
    finding = Finding(
        key=AlertKey(rule.name, snap.account),
        severity=rule.level,
        value="; ".join(part for part in parts if part),
        facts={"count": str(len(changes)), "added": added, "removed": removed},
        credential_changes=changes,
    )
    return RuleResult(rule.name, snap.account, True, (finding,), one_shot=True)


# ---------------------------------------------------------------------------- webhooks


def _group_of(delivery: WebhookDelivery, group_by: str) -> str:
    if group_by == "url":
        return delivery.url or "(no url)"
    if group_by == "event_type":
        return delivery.event_type or "(no event type)"
    return ""


def _webhooks(rule: WebhookFailuresRule, snap: AccountSnapshot, now: datetime) -> RuleResult:
    total = snap.delivery_totals.get(rule.window)
    if SourceName.WEBHOOKS in snap.errors:
        return _not_judged(rule, snap)
    start = now - rule.window
    patterns = None if rule.event_type is None else _as_list(rule.event_type)
    groups: dict[str, list[WebhookDelivery]] = defaultdict(list)
    for delivery in snap.webhook_failures:
        if not start <= delivery.started_at <= now:
            continue
        if patterns and not any(fnmatch.fnmatchcase(delivery.event_type, p) for p in patterns):
            continue
        groups[_group_of(delivery, rule.group_by)].append(delivery)
    could_fire = any(len(failed) >= rule.at_least for failed in groups.values())
    if rule.ratio is not None and total is None and could_fire:  # read when it can matter
        return _not_judged(rule, snap)
    findings = tuple(
        _webhook_finding(rule, snap.account, group, failed, total)
        for group, failed in sorted(groups.items())
        if _webhook_condition(rule, len(failed), total)
    )
    return RuleResult(rule.name, snap.account, True, findings, hold_for=rule.for_)


def _webhook_condition(rule: WebhookFailuresRule, failed: int, total: int | None) -> bool:
    if failed < rule.at_least:
        return False
    if rule.ratio is None or total is None or total < rule.min_deliveries or total == 0:
        return True
    return failed / total >= rule.ratio


def _webhook_finding(
    rule: WebhookFailuresRule,
    account: str,
    group: str,
    failed: list[WebhookDelivery],
    total: int | None,
) -> Finding:
    window = format_duration(rule.window)
    value = f"{len(failed)} failed in {window}"
    threshold = f"at least {rule.at_least}"
    facts = {"count": str(len(failed)), "window": window, "group": group}
    if rule.ratio is not None and total:
        value += f" of {total} ({len(failed) / total:.0%})"
        threshold += f" and {rule.ratio:.0%} of deliveries"
        facts["total"] = str(total)
        facts["ratio"] = f"{len(failed) / total:.0%}"
    return Finding(
        key=AlertKey(rule.name, account, group),
        severity=rule.level,
        value=value,
        threshold=threshold,
        facts=facts,
        deliveries=tuple(failed),
    )


# ---------------------------------------------------------------------------- source down


def _source_down(snap: AccountSnapshot, now: datetime, after: timedelta) -> RuleResult:
    """A rejected key (401/403) is one alert per account, naming the sources it affects,
    at once; any other failure is one alert per source once it lasted `after`."""
    findings = []
    rejected = {source: error for source, error in snap.errors.items() if error.auth}
    if rejected:
        findings.append(_key_rejected(snap.account, rejected, now))
    for source, error in sorted(snap.errors.items()):
        since = error.failing_since or now
        if not error.auth and now - since >= after:
            findings.append(
                Finding(
                    key=AlertKey(SOURCE_DOWN_RULE, snap.account, str(source)),
                    severity=Severity.CRITICAL,
                    value=error.message,
                    threshold=f"failing since {since:%Y-%m-%d %H:%M} UTC",
                    facts={"source": str(source), "error": error.message},
                )
            )
    return RuleResult(SOURCE_DOWN_RULE, snap.account, True, tuple(findings))


def _key_rejected(
    account: str, rejected: Mapping[SourceName, SourceError], now: datetime
) -> Finding:
    sources = ", ".join(sorted(str(source) for source in rejected))
    since = min(error.failing_since or now for error in rejected.values())
    return Finding(
        key=AlertKey(SOURCE_DOWN_RULE, account, KEY_REJECTED_GROUP),
        severity=Severity.CRITICAL,
        value=f"the API rejected the key; sources affected: {sources}",
        threshold=f"failing since {since:%Y-%m-%d %H:%M} UTC",
        facts={
            "sources": sources,
            "error": "; ".join(rejected[source].message for source in sorted(rejected)),
        },
    )

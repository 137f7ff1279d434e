"""Rules: frozen pydantic models (one per `kind`) and the pure evaluation beside them.

`evaluate(rules, snapshots, now)` turns what the sources saw into `RuleResult`s: for each
(rule, account) whether the rule could be judged and which alert keys hold. No clock,
no I/O: `now` is a parameter.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from watcher.durations import Duration, format_duration
from watcher.model import (
    AccountSnapshot,
    AlertKey,
    AuditEvent,
    Severity,
    SourceName,
    WebhookDelivery,
)

SeverityName = Literal["info", "warning", "critical"]
BalanceField = Literal["available_credit", "balance", "credit_limit", "pending"]
AuditField = Literal[
    "change_type", "change_made_by", "resource_id", "alternate_resource_id", "user_id", "field"
]
Patterns = str | list[str]
Threshold = Decimal | dict[SeverityName, Decimal]

SOURCE_DOWN_RULE = "watcher-source-down"


class _Rule(BaseModel):
    """Keys common to every rule kind."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: Annotated[str, Field(pattern=r"^[a-z0-9_-]+$", max_length=100)]
    description: str = ""
    severity: SeverityName = "warning"
    for_: Duration = Field(default=timedelta(0), alias="for")
    route: str | list[str] | None = None
    accounts: list[str] | None = None
    summary: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True

    @property
    def routes(self) -> tuple[str, ...]:
        """Route names given by the rule (empty: the default route)."""
        if self.route is None:
            return ()
        return (self.route,) if isinstance(self.route, str) else tuple(self.route)

    def applies_to(self, account: str) -> bool:
        return self.enabled and (self.accounts is None or account in self.accounts)

    @property
    def level(self) -> Severity:
        return Severity.parse(self.severity)


class BalanceRule(_Rule):
    """Fires when a balance field is below (or above) a threshold, per severity."""

    kind: Literal["balance"]
    field: BalanceField = "available_credit"
    below: Threshold | None = None
    above: Threshold | None = None
    clear_above: Decimal | None = None
    clear_below: Decimal | None = None
    topup: bool = False

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.below is None) == (self.above is None):
            raise ValueError("give exactly one of `below` or `above`")
        if self.below is not None and self.clear_below is not None:
            raise ValueError("`clear_below` goes with `above`; use `clear_above` with `below`")
        if self.above is not None and self.clear_above is not None:
            raise ValueError("`clear_above` goes with `below`; use `clear_below` with `above`")
        threshold = self.below if self.below is not None else self.above
        if isinstance(threshold, dict):
            if not threshold:
                raise ValueError("the threshold map needs at least one severity")
            if "severity" in self.model_fields_set:
                raise ValueError("`severity` is not allowed when thresholds are given per severity")
        least = self.least_severe_threshold
        if self.clear_above is not None and self.clear_above < least:
            raise ValueError(f"`clear_above` must be at least the threshold {least}")
        if self.clear_below is not None and self.clear_below > least:
            raise ValueError(f"`clear_below` must be at most the threshold {least}")
        return self

    @property
    def levels(self) -> dict[Severity, Decimal]:
        """Threshold per severity (a plain number uses the rule's `severity`)."""
        threshold = self.below if self.below is not None else self.above
        if isinstance(threshold, dict):
            return {Severity.parse(k): v for k, v in threshold.items()}
        assert threshold is not None
        return {self.level: threshold}

    @property
    def least_severe_threshold(self) -> Decimal:
        return self.levels[min(self.levels)]

    @property
    def clear_at(self) -> Decimal:
        if self.below is not None:
            return self.clear_above if self.clear_above is not None else self.least_severe_threshold
        return self.clear_below if self.clear_below is not None else self.least_severe_threshold


class AuditRule(_Rule):
    """Alerts once for each new audit event that matches `match` and no `ignore` entry."""

    kind: Literal["audit"]
    match: dict[AuditField, Patterns] = Field(default_factory=dict)
    ignore: list[dict[AuditField, Patterns]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.for_ > timedelta(0):
            raise ValueError("`for` does not apply to audit rules: each event alerts once")
        if any(not entry for entry in self.ignore):
            raise ValueError("an empty `ignore` entry would ignore every event")
        return self


class WebhookFailuresRule(_Rule):
    """Fires when failed webhook deliveries in `window` reach `at_least` (and `ratio`)."""

    kind: Literal["webhook_failures"]
    window: Duration = timedelta(minutes=15)
    at_least: Annotated[int, Field(ge=1)] = 1
    ratio: Annotated[float, Field(gt=0, le=1)] | None = None
    min_deliveries: Annotated[int, Field(ge=0)] = 0
    event_type: Patterns | None = None
    group_by: Literal["none", "url", "event_type"] = "none"

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.window <= timedelta(0):
            raise ValueError("`window` must be longer than 0s")
        if "min_deliveries" in self.model_fields_set and self.ratio is None:
            raise ValueError("`min_deliveries` only applies together with `ratio`")
        return self


Rule = Annotated[BalanceRule | AuditRule | WebhookFailuresRule, Field(discriminator="kind")]


class RuleFile(BaseModel):
    """The top level of a rule file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[Rule] = Field(default_factory=list)


def sources_needed(rules: Iterable[Rule]) -> frozenset[SourceName]:
    """Which sources the enabled rules need polled."""
    kinds = {
        BalanceRule: SourceName.BALANCE,
        AuditRule: SourceName.AUDIT,
        WebhookFailuresRule: SourceName.WEBHOOKS,
    }
    return frozenset(kinds[type(rule)] for rule in rules if rule.enabled)


def ratio_windows(rules: Iterable[Rule]) -> frozenset[timedelta]:
    """Windows for which the delivery total (ratio denominator) must be fetched."""
    return frozenset(
        rule.window
        for rule in rules
        if isinstance(rule, WebhookFailuresRule) and rule.enabled and rule.ratio is not None
    )


def longest_window(rules: Iterable[Rule]) -> timedelta:
    windows = [r.window for r in rules if isinstance(r, WebhookFailuresRule) and r.enabled]
    return max(windows, default=timedelta(0))


# ---------------------------------------------------------------------------- findings


@dataclass(frozen=True, slots=True)
class Finding:
    """The state of one alert key right now.

    - `severity`: the condition holds at this severity; None when it does not.
    - `cleared`: the condition is past its resolve threshold (hysteresis); a finding with
      `severity=None, cleared=False` keeps a firing alert firing.
    - `value` / `threshold`: rendered for messages; `facts` are template placeholders.
    - `events` / `deliveries`: the audit events or failed deliveries behind it.
    """

    key: AlertKey
    severity: Severity | None
    cleared: bool = True
    value: str = ""
    threshold: str = ""
    facts: Mapping[str, str] = dc_field(default_factory=dict)
    events: tuple[AuditEvent, ...] = ()
    deliveries: tuple[WebhookDelivery, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule judged for one account.

    `judged` is False when a source the rule needs failed this cycle: the lifecycle then
    leaves that rule's alerts exactly as they are. Keys of the rule absent from
    `findings` are treated as cleared.
    """

    rule: str
    account: str
    judged: bool
    findings: tuple[Finding, ...] = ()
    hold_for: timedelta = timedelta(0)
    one_shot: bool = False


def evaluate(
    rules: Sequence[Rule],
    snapshots: Sequence[AccountSnapshot],
    now: datetime,
    *,
    source_down_after: timedelta = timedelta(minutes=5),
) -> list[RuleResult]:
    """Judge every enabled rule for every account it applies to.

    Also judges the built-in `watcher-source-down` rule from the snapshots' errors.
    In: rules, one snapshot per account, the cycle's `now`. Out: one result per pair.
    """
    results: list[RuleResult] = []
    for snap in snapshots:
        for rule in rules:
            if rule.applies_to(snap.account):
                results.append(_evaluate_one(rule, snap, now))
        results.append(_source_down(snap, now, source_down_after))
    return results


def _evaluate_one(rule: Rule, snap: AccountSnapshot, now: datetime) -> RuleResult:
    if isinstance(rule, BalanceRule):
        return _balance(rule, snap)
    if isinstance(rule, AuditRule):
        return _audit(rule, snap)
    return _webhooks(rule, snap, now)


def _not_judged(rule: Rule, snap: AccountSnapshot) -> RuleResult:
    return RuleResult(rule.name, snap.account, judged=False, hold_for=rule.for_)


# ---------------------------------------------------------------------------- balance


def money(value: Decimal, currency: str = "") -> str:
    """`Decimal('45.5')` -> `'45.50 USD'`."""
    text = f"{value.quantize(Decimal('0.01')):,}" if value == value else str(value)
    return f"{text} {currency}".strip()


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


# ---------------------------------------------------------------------------- webhooks


def _group_of(delivery: WebhookDelivery, group_by: str) -> str:
    if group_by == "url":
        return delivery.url or "(no url)"
    if group_by == "event_type":
        return delivery.event_type or "(no event type)"
    return ""


def _webhooks(rule: WebhookFailuresRule, snap: AccountSnapshot, now: datetime) -> RuleResult:
    total = snap.delivery_totals.get(rule.window)
    if SourceName.WEBHOOKS in snap.errors or (rule.ratio is not None and total is None):
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
    findings = []
    for source, error in sorted(snap.errors.items()):
        since = error.failing_since or now
        if error.auth or now - since >= after:
            reason = "the API rejected the key" if error.auth else error.message
            findings.append(
                Finding(
                    key=AlertKey(SOURCE_DOWN_RULE, snap.account, str(source)),
                    severity=Severity.CRITICAL,
                    value=reason,
                    threshold=f"failing since {since:%Y-%m-%d %H:%M} UTC",
                    facts={"source": str(source), "error": error.message},
                )
            )
    return RuleResult(SOURCE_DOWN_RULE, snap.account, True, tuple(findings))

"""Rules: frozen pydantic models (one per `kind`) and the pure evaluation beside them.

`evaluate(rules, snapshots, now)` turns what the sources saw into `RuleResult`s: for each
(rule, account) whether the rule could be judged and which alert keys hold. No clock,
no I/O: `now` is a parameter.
"""

from __future__ import annotations

import fnmatch
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, Self, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from watcher.core.durations import Duration, format_duration
from watcher.core.forecast import eta_phrase, fit_burn, per_hour_text, runs_out_in, runs_out_text
from watcher.core.model import (
    AccountSnapshot,
    AlertKey,
    AuditEvent,
    Severity,
    SourceError,
    SourceName,
    WebhookDelivery,
)
from watcher.core.mute import MuteSpec

SeverityName = Literal["info", "warning", "critical"]
BalanceField = Literal["available_credit", "balance", "credit_limit", "pending"]
ForecastField = Literal["available_credit", "balance"]
AuditField = Literal[
    "change_type", "change_made_by", "resource_id", "alternate_resource_id", "user_id", "field"
]


def _shape(value: Any) -> str:
    """Pick the union member by the input's shape, so an error names only that one."""
    return "many" if isinstance(value, dict | list) else "one"


Patterns = Annotated[
    Annotated[str, Tag("one")] | Annotated[list[str], Tag("many")], Discriminator(_shape)
]
Threshold = Annotated[
    Annotated[Decimal, Tag("one")] | Annotated[dict[SeverityName, Decimal], Tag("many")],
    Discriminator(_shape),
]

SOURCE_DOWN_RULE = "watcher-source-down"
KEY_REJECTED_GROUP = "api-key"  # the group of the one source-down alert of a rejected key
MAX_LOOKBACK = timedelta(days=7)  # balance samples are kept for 8 days

COMMON_PLACEHOLDERS: Mapping[str, str] = {
    "rule": "the rule's name",
    "account": "the account's name",
    "group": "the alert's group (webhook rules with `group_by`), else empty",
    "severity": "info, warning or critical",
    "value": "what was seen, e.g. `45.50 USD`",
    "threshold": "what it was compared with, e.g. `below 50.00 USD`",
}
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_PATTERNS_DOC = "a glob pattern (`*`, `?`, `[abc]`) or a list of them (any of)"


def _doc(description: str, *examples: Any, **extra: Any) -> Any:
    """A `Field` with a description and examples (for the JSON schema editors use)."""
    return Field(description=description, examples=list(examples), **extra)


class _Rule(BaseModel):
    """Keys common to every rule kind."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)
    placeholders: ClassVar[Mapping[str, str]] = COMMON_PLACEHOLDERS

    name: Annotated[str, Field(pattern=r"^[a-z0-9_-]+$", max_length=100)] = _doc(
        "unique name of the rule across all files: lower-case letters, digits, `_` and `-`",
        "low-credit",
    )
    description: str = _doc(
        "what happened and what to do; printed in every firing message",
        "Credit is running low. Add funds in the portal (Billing → Add funds).",
        default="",
    )
    severity: SeverityName = _doc(
        "severity of the alert: info, warning or critical", "critical", default="warning"
    )
    for_: Duration = _doc(
        "how long the condition must hold before the alert fires (0s: at once); taken "
        "in steps of poll.interval",
        "5m",
        default=timedelta(0),
        alias="for",
    )
    route: str | list[str] | None = _doc(
        "route name(s) from notify.routes in the config; default: notify.default_route",
        "ops",
        ["billing", "ops"],
        default=None,
    )
    accounts: list[str] | None = _doc(
        "names of the accounts the rule applies to; default: all", ["main"], default=None
    )
    summary: str | None = _doc(
        "first line of the message, with `{placeholders}` (names only; which ones depends "
        "on the kind: " + ", ".join(f"{{{p}}}" for p in COMMON_PLACEHOLDERS) + " always)",
        "{account}: credit is {value} {currency}, below {threshold}",
        default=None,
    )
    labels: dict[str, str] = _doc(
        "free-form labels for your own bookkeeping", {"team": "billing"}, default_factory=dict
    )
    enabled: bool = _doc("false turns the rule off without deleting it", False, default=True)
    mute: list[MuteSpec] = _doc(
        "quiet hours or maintenance windows: while one covers the time, the rule is still "
        "evaluated but its notifications are not sent (for audit rules: an expected-change "
        "window)",
        ["Sat 00:00-06:00 Europe/Berlin"],
        ["Mon-Fri 22:00-07:00 UTC", "2026-12-24 00:00-2026-12-27 00:00 UTC"],
        default_factory=list,
    )

    @field_validator("summary")
    @classmethod
    def _known_placeholders(cls, value: str | None) -> str | None:
        unknown = sorted({m for m in _PLACEHOLDER.findall(value or "")} - set(cls.placeholders))
        if unknown:
            known = ", ".join(f"{{{p}}}" for p in sorted(cls.placeholders))
            names = ", ".join(f"{{{p}}}" for p in unknown)
            kind = get_args(cls.model_fields["kind"].annotation)[0]
            raise ValueError(f"unknown placeholder {names}; {kind} rules know {known}")
        return value

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


class _MoneyRule(_Rule):
    """Rules about money can trigger a top-up (DESIGN §6)."""

    topup: bool = _doc(
        "top the account up (accounts[].topup in the config) when the rule starts firing "
        "at critical",
        True,
        default=False,
    )


class BalanceRule(_MoneyRule):
    """Fires when a balance field is below (or above) a threshold, per severity."""

    placeholders: ClassVar[Mapping[str, str]] = {
        **COMMON_PLACEHOLDERS,
        "field": "the balance field, e.g. `available_credit`",
        "value": "the field's value without currency, e.g. `45.50`",
        "threshold": "the breached (else the least severe) threshold, e.g. `50.00`",
        "currency": "the account's currency, e.g. `USD`",
        "clear_at": "the value at which the alert resolves, e.g. `120.00`",
    }

    kind: Literal["balance"] = _doc("a threshold on a balance field", "balance")
    field: BalanceField = _doc(
        "the balance field to watch: available_credit (balance + credit limit: what can "
        "still be spent), balance, credit_limit or pending",
        "available_credit",
        default="available_credit",
    )
    below: Threshold | None = _doc(
        "fire when the value is below this: a number (the rule's severity applies) or a "
        "threshold per severity (then `severity` is not allowed)",
        100,
        {"warning": 100, "critical": 50},
        default=None,
    )
    above: Threshold | None = _doc(
        "fire when the value is above this: a number or a threshold per severity",
        1000,
        {"warning": 500, "critical": 1000},
        default=None,
    )
    clear_above: Decimal | None = _doc(
        "with `below`: resolve only once the value is back at or above this (hysteresis); "
        "default: the least severe threshold",
        120,
        default=None,
    )
    clear_below: Decimal | None = _doc(
        "with `above`: resolve only once the value is back at or below this; default: the "
        "least severe threshold",
        400,
        default=None,
    )

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
        problem = self._level_order_problem()
        if problem:
            raise ValueError(problem)
        least = self.least_severe_threshold
        if self.clear_above is not None and self.clear_above < least:
            raise ValueError(f"`clear_above` must be at least the threshold {least}")
        if self.clear_below is not None and self.clear_below > least:
            raise ValueError(f"`clear_below` must be at most the threshold {least}")
        return self

    def _level_order_problem(self) -> str:
        """Why a level can never fire, or "": with `below`, a more severe level must be
        lower (with `above`, higher), else the less severe one is always outdone."""
        side, word = ("below", "lower") if self.below is not None else ("above", "higher")
        ordered = sorted(self.levels.items())
        for index, (mild, mild_at) in enumerate(ordered):
            for severe, severe_at in ordered[index + 1 :]:
                if (severe_at >= mild_at) if side == "below" else (severe_at <= mild_at):
                    return (
                        f"`{side}`: the {mild.label} level ({mild_at}) can never fire, as any "
                        f"value {side} it is also {side} the {severe.label} level "
                        f"({severe_at}); make {severe.label} {word} than {mild.label}"
                    )
        return ""

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


class ForecastRule(_MoneyRule):
    """Fires when the balance, at its current burn rate, reaches `floor` within
    `runs_out_within` (a least-squares fit over the samples in `lookback`)."""

    placeholders: ClassVar[Mapping[str, str]] = {
        **COMMON_PLACEHOLDERS,
        "field": "the balance field, e.g. `available_credit`",
        "value": "the field's value now without currency, e.g. `84.00`",
        "currency": "the account's currency, e.g. `USD`",
        "burn_rate": "money spent per hour, e.g. `12.40`",
        "runs_out_in": "projected time until `floor`, e.g. `6h 46m` (`never` when not spending)",
        "runs_out_at": "projected time of reaching `floor`, e.g. `2026-11-23 17:00 UTC`",
        "floor": "the rule's floor, e.g. `0.00`",
        "runs_out_within": "the rule's `runs_out_within`, e.g. `24h`",
        "lookback": "the rule's `lookback`, e.g. `6h`",
        "samples": "how many balance samples the fit used",
    }

    kind: Literal["forecast"] = _doc("when credit will run out at the current burn", "forecast")
    field: ForecastField = _doc(
        "the balance field to project: available_credit or balance",
        "available_credit",
        default="available_credit",
    )
    runs_out_within: Duration = _doc(
        "fire when the field is projected to reach `floor` sooner than this", "24h", "3d"
    )
    floor: Decimal = _doc(
        "the value that counts as running out", 0, "10.00", default=Decimal(0), allow_inf_nan=False
    )
    lookback: Duration = _doc(
        "fit the burn rate over the balance samples of this window (at most 7d); rises "
        "between samples (top-ups, refunds) are money coming in, not negative burn",
        "6h",
        default=timedelta(hours=6),
    )
    min_samples: Annotated[int, Field(ge=2)] = _doc(
        "judge only with at least this many samples in `lookback` (the current one counts)",
        5,
        default=5,
    )
    min_span: Annotated[float, Field(gt=0, le=1)] = _doc(
        "judge only when the samples cover at least this fraction of `lookback`",
        0.5,
        default=0.5,
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.runs_out_within <= timedelta(0):
            raise ValueError("`runs_out_within` must be longer than 0s")
        if not timedelta(0) < self.lookback <= MAX_LOOKBACK:
            raise ValueError(f"`lookback` must be longer than 0s and at most {MAX_LOOKBACK.days}d")
        return self


class AuditRule(_Rule):
    """Alerts once for each new audit event that matches `match` and no `ignore` entry."""

    placeholders: ClassVar[Mapping[str, str]] = {
        **COMMON_PLACEHOLDERS,
        "value": "how many events matched, e.g. `3 events`",
        "count": "how many events matched in this poll, e.g. `3`",
    }

    kind: Literal["audit"] = _doc("new audit-log events, each alerted once", "audit")
    match: dict[AuditField, Patterns] = _doc(
        "every key must match: change_type, change_made_by, resource_id, "
        "alternate_resource_id, user_id, field (any of changes[].field); each value is "
        + _PATTERNS_DOC,
        {"change_made_by": ["account_owner", "organization_member"]},
        {"change_type": "update", "field": "webhook_*"},
        default_factory=dict,
    )
    ignore: list[dict[AuditField, Patterns]] = _doc(
        "an event matching any entry (all keys of it) is expected and never alerted",
        [{"user_id": "6a09cdc3-8948-47f0-aa62-74ac943d6c58"}],
        [{"change_type": "update", "field": "tags"}],
        default_factory=list,
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.for_ > timedelta(0):
            raise ValueError("`for` does not apply to audit rules: each event alerts once")
        if any(not entry for entry in self.ignore):
            raise ValueError("an empty `ignore` entry would ignore every event")
        return self


class WebhookFailuresRule(_Rule):
    """Fires when failed webhook deliveries in `window` reach `at_least` (and `ratio`)."""

    placeholders: ClassVar[Mapping[str, str]] = {
        **COMMON_PLACEHOLDERS,
        "value": "e.g. `12 failed in 15m of 40 (30%)`",
        "count": "failed deliveries in the window, e.g. `12`",
        "window": "the window, e.g. `15m`",
        "total": "all deliveries in the window (only with `ratio`)",
        "ratio": "failed share of all deliveries, e.g. `30%` (only with `ratio`)",
    }

    kind: Literal["webhook_failures"] = _doc(
        "failed webhook deliveries in a window", "webhook_failures"
    )
    window: Duration = _doc(
        "count failed deliveries started in this window (at least poll.interval)",
        "15m",
        default=timedelta(minutes=15),
    )
    at_least: Annotated[int, Field(ge=1)] = _doc(
        "fire at this many failed deliveries in the window", 10, default=1
    )
    ratio: Annotated[float, Field(gt=0, le=1)] | None = _doc(
        "also require this share of all deliveries to have failed (one extra request per poll)",
        0.25,
        default=None,
    )
    min_deliveries: Annotated[int, Field(ge=0)] = _doc(
        "with `ratio`: judge the share only when the window holds at least this many deliveries",
        20,
        default=0,
    )
    event_type: Patterns | None = _doc(
        "only deliveries whose webhook event_type matches: " + _PATTERNS_DOC,
        ["message.*"],
        "call.hangup",
        default=None,
    )
    group_by: Literal["none", "url", "event_type"] = _doc(
        "one alert per failing url or event_type, or one for all (none)",
        "url",
        default="none",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.window <= timedelta(0):
            raise ValueError("`window` must be longer than 0s")
        if "min_deliveries" in self.model_fields_set and self.ratio is None:
            raise ValueError("`min_deliveries` only applies together with `ratio`")
        return self


Rule = Annotated[
    BalanceRule | ForecastRule | AuditRule | WebhookFailuresRule, Field(discriminator="kind")
]


class RuleFile(BaseModel):
    """A rule file of account-watcher: a list of rules under `rules:`."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="account-watcher rule file")

    rules: list[Rule] = _doc(
        "the rules of this file; names must be unique across all files",
        [{"name": "low-credit", "kind": "balance", "below": {"warning": 100, "critical": 50}}],
        default_factory=list,
    )


def sources_needed(rules: Iterable[Rule]) -> frozenset[SourceName]:
    """Which sources the enabled rules need polled."""
    kinds = {
        BalanceRule: SourceName.BALANCE,
        ForecastRule: SourceName.BALANCE,
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


def longest_lookback(rules: Iterable[Rule]) -> timedelta:
    """How far back balance samples are needed: the longest `lookback` of enabled
    forecast rules (0s without any)."""
    lookbacks = [r.lookback for r in rules if isinstance(r, ForecastRule) and r.enabled]
    return max(lookbacks, default=timedelta(0))


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
    if isinstance(rule, ForecastRule):
        return _forecast(rule, snap, now)
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

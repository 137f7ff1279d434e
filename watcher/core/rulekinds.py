"""Rule kinds: frozen pydantic models, one per `kind` (DESIGN section 4), and their base.

Pure data: no client, no clock, no file. The evaluation beside them is in
`watcher.core.rules`, which re-exports every name of this module. A kind may live in its
own module beside its evaluation (`watcher.core.drift`); the union of all kinds, `Rule`,
and `RuleFile` are in `watcher.core.rulefile`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
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

from watcher.core.accountmatch import selects
from watcher.core.auditfields import AuditField
from watcher.core.durations import Duration
from watcher.core.escalate import Escalate
from watcher.core.model import Severity
from watcher.core.mute import MuteSpec

SeverityName = Literal["info", "warning", "critical"]
BalanceField = Literal["available_credit", "balance", "credit_limit", "pending"]
ForecastField = Literal["available_credit", "balance"]


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
    keep_firing_for: Duration = _doc(
        "flap damping (as in Prometheus): once firing, stay firing this long after the "
        "condition clears; a return inside the window continues the alert (not for audit, "
        "credentials)",
        "10m",
        default=timedelta(0),
    )
    route: str | list[str] | None = _doc(
        "route name(s) from notify.routes in the config; default: notify.default_route",
        "ops",
        ["billing", "ops"],
        default=None,
    )
    accounts: list[str] | None = _doc(
        "names of the accounts the rule applies to, or globs such as `reseller/*` (discovered "
        "accounts); default: all",
        ["main"],
        ["reseller/*"],
        default=None,
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
    escalate: Escalate | None = _doc(
        "send a firing alert nobody acknowledged to another route too, after a while",
        {"after": "30m", "route": "pager"},
        default=None,
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
        return self.enabled and selects(self.accounts, account)

    @property
    def level(self) -> Severity:
        return Severity.parse(self.severity)


def _one_shot_keep(value: timedelta, why: str) -> timedelta:
    """One-shot kinds never resolve, so there is nothing to keep firing."""
    if value > timedelta(0):
        raise ValueError(f"`keep_firing_for` does not apply to {why}")
    return value


class _MoneyRule(_Rule):
    """Rules about money can trigger a top-up (DESIGN §6)."""

    topup: bool = _doc(
        "top the account up (accounts[].topup in the config) when the rule starts firing "
        "at critical",
        True,
        default=False,
    )


class _HoldsRule(_Rule):
    """A kind deriving from this can hold the account's top-ups (DESIGN §6.3)."""

    holds_topups: bool = _doc(
        "when the rule fires, hold the account's top-ups for accounts[].topup.hold_after "
        "(from its last firing), until then or `account-watcher topups release`",
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


class AuditRule(_HoldsRule):
    """Alerts once for each new audit event that matches `match` and no `ignore` entry."""

    placeholders: ClassVar[Mapping[str, str]] = {
        **COMMON_PLACEHOLDERS,
        "value": "how many events matched, e.g. `3 events`",
        "count": "how many events matched in this poll, e.g. `3`",
    }

    kind: Literal["audit"] = _doc("new audit-log events, each alerted once", "audit")
    match: dict[AuditField, Patterns] = _doc(
        "every key must match: Telnyx change_type, change_made_by, resource_id, "
        "alternate_resource_id, user_id, field (any of changes[].field); Vonage event_type, "
        "source (CD or DEVAPI), source_ip, source_country, user_email; each value is "
        + _PATTERNS_DOC,
        {"change_made_by": ["account_owner", "organization_member"]},
        {"change_type": "update", "field": "webhook_*"},
        {"event_type": ["AUTORELOAD_*", "API_SECRET_*"], "source": "DEVAPI"},
        default_factory=dict,
    )
    ignore: list[dict[AuditField, Patterns]] = _doc(
        "an event matching any entry (all keys of it) is expected and never alerted",
        [{"user_id": "6a09cdc3-8948-47f0-aa62-74ac943d6c58"}],
        [{"change_type": "update", "field": "tags"}],
        default_factory=list,
    )

    _no_keep = field_validator("keep_firing_for")(
        lambda value: _one_shot_keep(value, "audit rules: each event alerts once")
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


class CredentialsRule(_HoldsRule):
    """Alerts once for each API secret that appeared or disappeared (Vonage); the first
    poll only records the secrets there are."""

    placeholders: ClassVar[Mapping[str, str]] = {
        **COMMON_PLACEHOLDERS,
        "value": "what changed, e.g. `secret added: ad6dc56f-…`",
        "count": "how many secrets were added or removed in this poll, e.g. `1`",
        "added": "ids of the secrets added, comma-separated (never the secrets)",
        "removed": "ids of the secrets removed, comma-separated",
    }

    kind: Literal["credentials"] = _doc(
        "an API secret of the account appeared or disappeared (vonage), each alerted once",
        "credentials",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.for_ > timedelta(0):
            raise ValueError("`for` does not apply to credentials rules: each change alerts once")
        return self

    _no_keep = field_validator("keep_firing_for")(
        lambda value: _one_shot_keep(value, "credentials rules: each change alerts once")
    )


class InvoiceRule(_Rule):
    """Fires for each invoice (Telnyx) still unpaid `unpaid_for` after its period ended;
    one alert per invoice, resolved when it is paid (or gone)."""

    placeholders: ClassVar[Mapping[str, str]] = {
        **COMMON_PLACEHOLDERS,
        "value": "e.g. `invoice 48eff763-… for 2026-10-01 – 2026-10-31 unpaid for 9d 4h`",
        "invoice_id": "the invoice's id",
        "period": "the invoiced period, e.g. `2026-10-01 – 2026-10-31`",
        "unpaid_for": "how long since the period ended (end of its last day, UTC)",
    }

    kind: Literal["invoice"] = _doc("an unpaid invoice (telnyx), one alert each", "invoice")
    unpaid_for: Duration = _doc(
        "fire for an invoice with `paid: false` whose period ended (at the end of its last "
        "day, UTC) longer ago than this; invoices are read at most hourly",
        "7d",
    )

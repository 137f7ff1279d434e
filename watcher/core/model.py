"""Core data: what the sources observed, what the rules found, what the lifecycle decided.

Pure: no I/O, no clock. Everything is a frozen, slotted dataclass so that values can be
compared in tests and shared between tasks without copies.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal


class Severity(enum.IntEnum):
    """Alert severity; ordered so that `max()` picks the most severe."""

    INFO = 1
    WARNING = 2
    CRITICAL = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        return cls[text.upper()]


class SourceName(enum.StrEnum):
    """The account data the daemon can poll."""

    BALANCE = "balance"
    AUDIT = "audit"
    WEBHOOKS = "webhooks"
    CREDENTIALS = "credentials"  # vonage: the account's API secrets
    SETTINGS = "settings"  # vonage: POST /account/settings with an empty form
    SUBACCOUNTS = "subaccounts"  # vonage: when `subaccounts: true`
    INVOICES = "invoices"  # telnyx: GET /invoices, at most hourly
    CHARGES = "charges"  # telnyx: GET /charges_summary, every poll.slow_interval
    CHARGES_BREAKDOWN = "charges_breakdown"  # telnyx: GET /charges_breakdown, likewise
    DISCOVERY = "discovery"  # the listing of managed accounts / subaccounts (DESIGN §10)


BALANCE_FIELDS = ("available_credit", "balance", "credit_limit", "pending")


@dataclass(frozen=True, slots=True)
class Balance:
    """`GET /balance`; money is Decimal, never float.

    Vonage reports one `value` (both `balance` and `available_credit`; no credit limit,
    nothing pending), no currency (the account's configured one) and `autoReload`
    (`auto_reload`; None for Telnyx).
    """

    balance: Decimal
    available_credit: Decimal
    credit_limit: Decimal
    pending: Decimal
    currency: str
    auto_reload: bool | None = None

    def field(self, name: str) -> Decimal:
        value: Decimal = getattr(self, name)
        return value


@dataclass(frozen=True, slots=True)
class AuditChange:
    """One entry of an audit event's `changes[]`; `old`/`new` are any JSON value."""

    field: str
    old: Any = None
    new: Any = None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit event: Telnyx's `GET /audit_events` or Vonage's `GET /beta/audit/events`.

    Telnyx fills `change_type` to `changes`; Vonage fills `event_type` (e.g.
    `AUTORELOAD_DISABLE`), `source` (`CD` | `DEVAPI`), `source_ip`, `source_country`,
    `user_email` and `context` (any JSON object). `created_at` is UTC.
    """

    id: str
    created_at: datetime
    change_type: str = ""
    change_made_by: str = ""
    resource_id: str | None = None
    alternate_resource_id: str | None = None
    user_id: str | None = None
    record_type: str | None = None
    changes: tuple[AuditChange, ...] = ()
    event_type: str | None = None
    source: str | None = None
    source_ip: str | None = None
    source_country: str | None = None
    user_email: str | None = None
    context: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CredentialChange:
    """An API secret that appeared (`added`) or disappeared (`removed`) since the last
    poll (Vonage `GET /accounts/{api_key}/secrets`). Only the id: never the secret."""

    id: str
    change: Literal["added", "removed"]
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One entry of `GET /webhook_deliveries`, flattened to what rules and messages use.

    `url`, `http_status` and `error` come from the most recent attempt.
    """

    id: str
    started_at: datetime
    status: str
    event_type: str = ""
    url: str = ""
    http_status: int | None = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class Invoice:
    """One entry of Telnyx's `GET /invoices`: the billing period (dates, both days
    included) and whether it is paid. The API gives no amount or currency."""

    id: str
    period_start: date
    period_end: date
    paid: bool


Amounts = tuple[tuple[str, Decimal], ...]
"""Money per name (a product, a phone number), largest first."""


@dataclass(frozen=True, slots=True)
class ChargesQuery:
    """What the spend rules of one time zone need of Telnyx's charges: today's spend,
    the month's, the totals of whole days before today (`baselines`: one per spike
    baseline length in days), and the
    top phone numbers of the month (`numbers`, from the charges breakdown)."""

    timezone: str
    day: bool = False
    month: bool = False
    baselines: tuple[int, ...] = ()
    numbers: bool = False


@dataclass(frozen=True, slots=True)
class Charges:
    """Telnyx's charges for one time zone's calendar, as of the last read.

    `day` is the date (in `timezone`) the read was for: `today` is that day's spend so
    far, `month` its month's up to and including it (None when no rule asked for
    that period, so it was not read); `*_products` per product (the
    summary's lines); `baselines` the total of the N whole days before `day`, as
    `(N, total)` for each N a spike rule asked for; `numbers` the month's top phone
    numbers (from the breakdown; empty when not read). Money as Decimal in `currency`.
    """

    timezone: str
    day: date
    currency: str
    today: Decimal | None
    month: Decimal | None
    today_products: Amounts = ()
    month_products: Amounts = ()
    baselines: tuple[tuple[int, Decimal], ...] = ()
    numbers: Amounts = ()

    def before(self, days: int) -> Decimal | None:
        """The total of the `days` whole days before `day`; None when not read."""
        return dict(self.baselines).get(days)


@dataclass(frozen=True, slots=True)
class SourceError:
    """A source that could not be read this cycle. `auth` is set when the key was rejected."""

    source: SourceName
    message: str
    auth: bool = False
    failing_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """What one cycle learned about one account.

    - `balance`: None when not polled or failed.
    - `balance_history`: stored samples (oldest first), for forecasts.
    - `new_audit_events`: events not seen in an earlier cycle (deduplicated by the store).
    - `webhook_failures`: failed deliveries from the local store covering the longest window.
    - `delivery_totals`: all deliveries (any status) started since `now - window`, per window.
    - `credential_changes`: API secrets added or removed since the last poll (the first
      poll only records what is there, so it has none).
    - `errors`: sources that failed this cycle; rules needing them are not judged.
    - `provider`: the account's provider (`telnyx`, `vonage`).
    - `invoices`: the invoices of the last read (a slow source, read at most hourly; the
      same ones on every cycle in between); None when not polled or never read.
    - `settings`: the provider's settings flattened to its drift field names (e.g.
      `auto_recharge.enabled`, `settings.mo_callback_url`; money as Decimal), the last
      read of a slow source included; None when no drift rule needs them.
    - `charges`: Telnyx's charges by time zone (a slow source; the last read, also
      between reads); None when no spend rule needs them or never read.
    """

    account: str
    balance: Balance | None = None
    balance_history: tuple[tuple[datetime, Balance], ...] = ()
    new_audit_events: tuple[AuditEvent, ...] = ()
    webhook_failures: tuple[WebhookDelivery, ...] = ()
    delivery_totals: Mapping[timedelta, int] = field(default_factory=dict)
    errors: Mapping[SourceName, SourceError] = field(default_factory=dict)
    provider: str = "telnyx"
    credential_changes: tuple[CredentialChange, ...] = ()
    invoices: tuple[Invoice, ...] | None = None
    settings: Mapping[str, object] | None = None
    charges: Mapping[str, Charges] | None = None


@dataclass(frozen=True, slots=True, order=True)
class AlertKey:
    """Identifies one alert: a rule, an account and a group (`""` when ungrouped)."""

    rule: str
    account: str
    group: str = ""

    def __str__(self) -> str:
        suffix = f" [{self.group}]" if self.group else ""
        return f"{self.rule}/{self.account}{suffix}"


class Phase(enum.StrEnum):
    """Where an alert is in its lifecycle (absent = inactive)."""

    PENDING = "pending"
    FIRING = "firing"


@dataclass(frozen=True, slots=True)
class AlertState:
    """The persisted state of one alert key.

    - `active_since`: when the condition was first seen holding (start of `for`).
    - `fired_at`: when it went firing (None while pending).
    - `last_notified_at` / `notified_severity`: what was last notified, for repeats and
      escalation.
    - `value` / `threshold`: last rendered values, for `status` and resolved messages.
    - `clear_since`: when the condition of a firing alert cleared, while the rule's
      `keep_firing_for` keeps it firing (None otherwise).
    - `notified_routes`: every route that got a notification of this episode (firing,
      escalation, repeats); the resolve goes to exactly these (DESIGN §5). None: not
      recorded (a state written before routes were recorded): the resolve is routed
      like any message.
    - `escalated_at`: when the rule's `escalate.route` was first sent this episode.
    - `ack`: the acknowledgement in force (watcher/core/ack.py); not a column of the
      alert, it is read from the acks and attached by decide (`with_acks`).
    """

    key: AlertKey
    phase: Phase
    severity: Severity
    active_since: datetime
    fired_at: datetime | None = None
    last_notified_at: datetime | None = None
    notified_severity: Severity | None = None
    value: str = ""
    threshold: str = ""
    clear_since: datetime | None = None
    notified_routes: tuple[str, ...] | None = None
    escalated_at: datetime | None = None
    ack: Ack | None = None

    @property
    def acked_by(self) -> str | None:
        """Who acknowledged the episode (the ack in force), else None."""
        return None if self.ack is None else self.ack.by

    @property
    def ack_reason(self) -> str | None:
        """Why, as given to `account-watcher ack`, else None."""
        return None if self.ack is None else self.ack.reason


@dataclass(frozen=True, slots=True)
class Ack:
    """`account-watcher ack`: `by` took the firing episode of `key` that started at
    `fired_at` (at `severity`), at `at`, until `expires_at`. `announced` once the
    `[ACK]` message was queued."""

    id: int
    key: AlertKey
    fired_at: datetime
    severity: Severity
    by: str
    reason: str
    at: datetime
    expires_at: datetime
    announced: bool = False

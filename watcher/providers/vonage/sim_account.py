"""The scripted state of a simulated Vonage account (see `sim` for the server).

`VonageSimServer` serves one `VonageSimAccount` on `127.0.0.1`, answering both hosts'
paths on one port: the rest.nexmo.com ones (`/account/get-balance`, `/account/top-up`,
`/account/settings`) and the api.nexmo.com ones (`/accounts/{api_key}/secrets`,
`/accounts/{api_key}/subaccounts`, `/beta/audit/events`), so a client's `rest_url` and
`api_url` can both be `server.url`. Shapes follow the vendored specs (see
`tests/data/vonage-*.openapi.yaml`); routes and error shapes live in `sim_routes`.
Tests script the account, inject faults (`simkit.Fault`) and read back every request.
"""

from __future__ import annotations

import secrets as _random
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from watcher.providers.simkit import (
    Clock,
    RecordedRequest,
    SimAccountBase,
    as_utc,
)

Source = Literal["CD", "DEVAPI"]
TopUpOutcome = Literal["paid", "disabled", "bad-trx"]
MAX_SECRETS = 2
SIM_KEY = "sim-key"
SIM_SECRET = "sim-Secret-1"  # noqa: S105 (the simulator's fake default)
SETTINGS_FIELDS = {"moCallBackUrl": "mo-callback-url", "drCallBackUrl": "dr-callback-url"}
SOURCE_DESCRIPTIONS = {"CD": "Customer Dashboard", "DEVAPI": "Developer API"}


def _decimal(value: str | Decimal) -> Decimal:
    number = value if isinstance(value, Decimal) else Decimal(value)
    if not number.is_finite():
        raise ValueError(f"{value} is not a finite amount")
    return number


def _whole_seconds(moment: datetime) -> datetime:
    return as_utc(moment).replace(microsecond=0)


def _naive(moment: datetime) -> str:
    """The audit API's `created_at`: UTC without a zone, e.g. `2026-12-01T10:00:00`."""
    return as_utc(moment).replace(tzinfo=None).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class Secret:
    """One API secret: its id, when it was created and the secret text itself."""

    id: str
    created_at: datetime
    value: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One stored audit event: listed once the clock reaches `visible_at`."""

    created_at: datetime
    visible_at: datetime
    json: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Subaccount:
    """One subaccount; `balance` / `credit_limit` are served as null when shared."""

    api_key: str
    name: str
    balance: Decimal
    credit_limit: Decimal
    suspended: bool
    use_primary_account_balance: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TopUpAttempt:
    """One `POST /account/top-up` that reached the route: what it sent and what it got."""

    trx: str | None
    succeeded: bool
    amount: Decimal | None
    at: datetime


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """One `POST /account/settings` that carried fields (and so changed settings)."""

    fields: tuple[tuple[str, str], ...]
    at: datetime


class VonageSimAccount(SimAccountBase):
    """All state of one simulated Vonage account; every method is thread-safe.

    Money is `Decimal` and is served exactly as given (`Decimal("40.12345678")` is sent
    as `40.12345678`). Auth is HTTP Basic `api_key:<any current secret>`. `clock`
    (default: real UTC; see `set_now` / `advance`) dates new events, secrets,
    subaccounts and recorded requests.
    """

    def __init__(
        self,
        *,
        api_key: str = SIM_KEY,
        api_secret: str = SIM_SECRET,
        clock: Clock | None = None,
        balance: str | Decimal = "40.12345678",
        auto_reload: bool = False,
        trx: str = "8ef2447e69604f642ae59363aa5f781b",
        reload_amount: str | Decimal = "50.00",
        primary_name: str = "Primary account",
    ) -> None:
        super().__init__(clock=clock)
        self.api_key = api_key
        self.primary_name = primary_name
        self._balance = _decimal(balance)
        self._primary_credit_limit = Decimal("0")
        self._auto_reload = auto_reload
        self._trx = trx
        self._reload_amount = _decimal(reload_amount)
        self._settings: dict[str, Any] = _default_settings()
        self._secrets = [Secret(str(uuid.uuid4()), self.now(), api_secret)]
        self._events: list[AuditEvent] = []
        self._subaccounts: list[Subaccount] = []
        self._audit_enabled = True
        self._subaccounts_enabled = True
        self._attempts: list[TopUpAttempt] = []
        self._changes: list[SettingsChange] = []
        self._query_credentials: list[RecordedRequest] = []
        self.created_at = self.now()

    def __repr__(self) -> str:
        return f"VonageSimAccount(api_key={self.api_key!r}, revoked={self.revoked})"

    # balance and top-up

    def set_balance(self, value: str | Decimal) -> None:
        """Set the balance served by `get-balance` (any number of decimals, kept exactly)."""
        with self._lock:
            self._balance = _decimal(value)

    def balance(self) -> Decimal:
        """The balance as served now."""
        with self._lock:
            return self._balance

    def set_auto_reload(
        self, enabled: bool, *, trx: str | None = None, amount: str | Decimal | None = None
    ) -> None:
        """Turn auto-reload on or off; optionally change the accepted `trx` and the fixed
        amount one top-up adds."""
        with self._lock:
            self._auto_reload = enabled
            self._trx = self._trx if trx is None else trx
            self._reload_amount = self._reload_amount if amount is None else _decimal(amount)

    @property
    def auto_reload(self) -> bool:
        """Whether auto-reload is enabled (served as `autoReload`)."""
        with self._lock:
            return self._auto_reload

    @property
    def topups(self) -> list[Decimal]:
        """Amounts added by successful top-ups, oldest first (a copy)."""
        with self._lock:
            return [a.amount for a in self._attempts if a.succeeded and a.amount is not None]

    @property
    def topup_attempts(self) -> list[TopUpAttempt]:
        """Every top-up POST that reached the route (failed ones too), oldest first."""
        with self._lock:
            return list(self._attempts)

    # settings

    def set_settings(self, **values: Any) -> None:
        """Change served settings by their JSON names with `_` for `-`, e.g.
        `set_settings(mo_callback_url="https://x")`; not recorded as a change.

        Raises KeyError for an unknown name.
        """
        with self._lock:
            for name, value in values.items():
                key = name.replace("_", "-")
                if key not in self._settings:
                    raise KeyError(name)
                self._settings[key] = value

    def settings(self) -> dict[str, Any]:
        """The settings as served (a copy)."""
        with self._lock:
            return dict(self._settings)

    @property
    def settings_changes(self) -> list[SettingsChange]:
        """Every settings POST that carried fields (form or query), oldest first."""
        with self._lock:
            return list(self._changes)

    # secrets

    def add_secret(
        self, *, value: str | None = None, id: str | None = None, created_at: datetime | None = None
    ) -> Secret:
        """Add an API secret (usable for auth at once). Raises ValueError past two."""
        made = as_utc(created_at) if created_at is not None else self.now()
        secret = Secret(id or str(uuid.uuid4()), made, value or _random.token_urlsafe(12))
        with self._lock:
            if len(self._secrets) >= MAX_SECRETS:
                raise ValueError(f"an account has at most {MAX_SECRETS} secrets")
            self._secrets.append(secret)
        return secret

    def remove_secret(self, id: str) -> None:
        """Revoke a secret. Raises KeyError if unknown, ValueError for the last one."""
        with self._lock:
            found = [s for s in self._secrets if s.id == id]
            if not found:
                raise KeyError(id)
            if len(self._secrets) == 1:
                raise ValueError("the last secret cannot be removed")
            self._secrets.remove(found[0])

    def secrets(self) -> list[Secret]:
        """The current secrets, oldest first (a copy)."""
        with self._lock:
            return list(self._secrets)

    # audit events

    def add_audit_event(
        self,
        *,
        event_type: str = "ACCOUNT_UPDATE_SETTINGS_API",
        created_at: datetime | None = None,
        visible_at: datetime | None = None,
        user_email: str = "owner@example.com",
        source: Source = "DEVAPI",
        source_ip: str = "192.0.2.10",
        source_country: str = "GB",
        context: dict[str, Any] | None = None,
        id: str | None = None,
    ) -> dict[str, Any]:
        """Store an audit event; return its JSON as served (without `_links`).

        `created_at` defaults to the clock, is cut to whole seconds and is served without
        a zone (`2026-12-01T10:00:00`); `visible_at` (default `created_at`) delays
        listing until the clock reaches it, modelling eventual consistency.
        """
        created = _whole_seconds(created_at if created_at is not None else self.now())
        visible = as_utc(visible_at) if visible_at is not None else created
        event: dict[str, Any] = {
            "id": id or str(uuid.uuid4()),
            "event_type": event_type,
            "event_type_description": event_type.replace("_", " ").capitalize(),
            "created_at": _naive(created),
            "user_email": user_email,
            "account_id": self.api_key,
            "source": source,
            "source_description": SOURCE_DESCRIPTIONS[source],
            "source_ip": source_ip,
            "source_country": source_country,
            "context": dict(context or {}),
        }
        with self._lock:
            self._events.append(AuditEvent(created, visible, event))
        return dict(event)

    def visible_audit_events(self) -> list[AuditEvent]:
        """The events listed now (visible by the clock), sorted by `created_at`, id."""
        now = self.now()
        with self._lock:
            events = [e for e in self._events if e.visible_at <= now]
        return sorted(events, key=lambda e: (e.created_at, e.json["id"]))

    def disable_audit(self, disabled: bool = True) -> None:
        """Make the audit API answer 403 (the beta is not enabled); False undoes it."""
        with self._lock:
            self._audit_enabled = not disabled

    @property
    def audit_enabled(self) -> bool:
        """Whether the audit API answers (see `disable_audit`)."""
        with self._lock:
            return self._audit_enabled

    # subaccounts

    def add_subaccount(
        self,
        *,
        name: str = "Subaccount",
        api_key: str | None = None,
        use_primary_account_balance: bool = True,
        balance: str | Decimal = "0",
        credit_limit: str | Decimal = "0",
        suspended: bool = False,
        created_at: datetime | None = None,
    ) -> Subaccount:
        """Add a subaccount; with `use_primary_account_balance` its balance and credit
        limit are served as null."""
        made = as_utc(created_at) if created_at is not None else self.now()
        key = api_key or uuid.uuid4().hex[:8]
        sub = Subaccount(
            key, name, _decimal(balance), _decimal(credit_limit), suspended,
            use_primary_account_balance, made,
        )  # fmt: skip
        with self._lock:
            self._subaccounts.append(sub)
        return sub

    def update_subaccount(self, api_key: str, **changes: Any) -> Subaccount:
        """Replace fields of a subaccount (e.g. `suspended=True`). Raises KeyError."""
        with self._lock:
            for i, sub in enumerate(self._subaccounts):
                if sub.api_key == api_key:
                    self._subaccounts[i] = replace(sub, **changes)
                    return self._subaccounts[i]
        raise KeyError(api_key)

    def remove_subaccount(self, api_key: str) -> None:
        """Take a subaccount away (it is no longer listed)."""
        with self._lock:
            self._subaccounts = [s for s in self._subaccounts if s.api_key != api_key]

    def subaccounts(self) -> list[Subaccount]:
        """The subaccounts, oldest first (a copy)."""
        with self._lock:
            return list(self._subaccounts)

    def set_primary_credit_limit(self, value: str | Decimal) -> None:
        """The primary account's `credit_limit` in the subaccounts listing."""
        with self._lock:
            self._primary_credit_limit = _decimal(value)

    @property
    def primary_credit_limit(self) -> Decimal:
        """The primary account's credit limit (default 0)."""
        with self._lock:
            return self._primary_credit_limit

    def disable_subaccounts(self, disabled: bool = True) -> None:
        """Make the subaccounts API answer 403 (not provisioned); False undoes it."""
        with self._lock:
            self._subaccounts_enabled = not disabled

    @property
    def subaccounts_enabled(self) -> bool:
        """Whether the subaccounts API answers (see `disable_subaccounts`)."""
        with self._lock:
            return self._subaccounts_enabled

    # credentials

    @property
    def query_credentials(self) -> list[RecordedRequest]:
        """Requests (`RecordedRequest`) that carried `api_key` / `api_secret` in the
        query: the legacy way, which puts the secret in URLs. Should stay empty."""
        with self._lock:
            return list(self._query_credentials)

    # used by the routes

    def _authorized(self, key: str, secret: str) -> bool:
        with self._lock:
            valid = key == self.api_key and any(s.value == secret for s in self._secrets)
            return valid and not self._revoked

    def _topup(self, trx: str | None, at: datetime) -> TopUpOutcome:
        """Apply one top-up request: `paid` adds the reload amount to the balance."""
        with self._lock:
            outcome: TopUpOutcome = "paid" if trx == self._trx else "bad-trx"
            outcome = outcome if self._auto_reload else "disabled"
            amount = self._reload_amount if outcome == "paid" else None
            self._attempts.append(TopUpAttempt(trx, amount is not None, amount, at))
            if amount is not None:
                self._balance += amount
            return outcome

    def _change_settings(self, fields: list[tuple[str, str]], at: datetime) -> None:
        with self._lock:
            self._changes.append(SettingsChange(tuple(fields), at))
            for name, value in fields:
                if name in SETTINGS_FIELDS:
                    self._settings[SETTINGS_FIELDS[name]] = value

    def _note_query_credentials(self, request: RecordedRequest) -> None:
        with self._lock:
            self._query_credentials.append(request)


def _default_settings() -> dict[str, Any]:
    return {
        "mo-callback-url": "https://example.com/webhooks/inbound-sms",
        "dr-callback-url": "https://example.com/webhooks/delivery-receipt",
        "max-outbound-request": 30,
        "max-inbound-request": 30,
        "max-calls-per-second": 30,
    }

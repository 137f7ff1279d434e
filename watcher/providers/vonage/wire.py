"""Vonage wire models and the provider-level values the client returns.

Bodies are decoded with `json.loads(..., parse_float=Decimal)` and only then validated
(`load`): a JSON number such as a balance of `40.12345678` becomes that exact Decimal,
never a float (pydantic's own JSON parser goes through a float and loses digits beyond
about 16). NaN and Infinity are refused.

The values (`VonageBalance`, `VonageAuditEvent`, ...) are frozen dataclasses with aware
UTC times; the sources convert them to `watcher.core.model` values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

MAX_AUDIT_PAGE_SIZE = 100
"""The largest `size` the Audit API accepts."""

ModelT = TypeVar("ModelT", bound=BaseModel)


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


def load(model: type[ModelT], content: bytes) -> ModelT:
    """Decode `content` (numbers with a fraction as Decimal) and validate it as `model`.

    Raises ValueError for text that is not JSON, pydantic.ValidationError (a ValueError)
    for a wrong shape.
    """
    data = json.loads(content, parse_float=Decimal, parse_constant=_no_constant)
    return model.model_validate(data)


def load_any(content: bytes) -> object:
    """Decode `content` as JSON (Decimal numbers); None when it is not JSON."""
    try:
        return json.loads(content, parse_float=Decimal, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None


def _not_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("money must be a number, not a boolean")
    return value


Money = Annotated[Decimal, BeforeValidator(_not_bool), Field(allow_inf_nan=False)]


def _id_text(value: object) -> object:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


IdText = Annotated[str, BeforeValidator(_id_text)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class ErrorBody(_Wire):
    """Either shape: rest.nexmo.com `{error-code, error-code-label}` or RFC 7807."""

    error_code: IdText | None = Field(default=None, alias="error-code")
    error_code_label: str | None = Field(default=None, alias="error-code-label")
    type: str | None = None
    title: str | None = None
    detail: str | None = None
    instance: str | None = None


class BalanceBody(_Wire):
    value: Money
    auto_reload: bool = Field(alias="autoReload")


class SettingsBody(_Wire):
    mo_callback_url: str | None = Field(default=None, alias="mo-callback-url")
    dr_callback_url: str | None = Field(default=None, alias="dr-callback-url")
    max_outbound_request: int | None = Field(default=None, alias="max-outbound-request")
    max_inbound_request: int | None = Field(default=None, alias="max-inbound-request")
    max_calls_per_second: int | None = Field(default=None, alias="max-calls-per-second")


class SecretItem(_Wire):
    id: IdText
    created_at: datetime


class _SecretsEmbedded(_Wire):
    secrets: list[SecretItem] = []


class SecretsBody(_Wire):
    embedded: _SecretsEmbedded = Field(default_factory=_SecretsEmbedded, alias="_embedded")


class AuditItem(_Wire):
    id: IdText
    event_type: str = ""
    event_type_description: str | None = None
    created_at: datetime
    user_email: str | None = None
    user_id: IdText | None = None
    account_id: str | None = None
    source: str | None = None
    source_ip: str | None = None
    source_description: str | None = None
    source_country: str | None = None
    context: dict[str, Any] | None = None


class _AuditEmbedded(_Wire):
    events: list[AuditItem] = []


class PageData(_Wire):
    size: int | None = None
    total_elements: int | None = Field(default=None, alias="totalElements")
    total_pages: int | None = Field(default=None, alias="totalPages")
    number: int | None = None


class AuditBody(_Wire):
    embedded: _AuditEmbedded = Field(default_factory=_AuditEmbedded, alias="_embedded")
    page: PageData | None = None


class SubaccountItem(_Wire):
    api_key: str
    name: str = ""
    balance: Money | None = None
    credit_limit: Money | None = None
    suspended: bool = False
    use_primary_account_balance: bool = False


class _SubaccountsEmbedded(_Wire):
    primary_account: SubaccountItem | None = None
    subaccounts: list[SubaccountItem] = []


class SubaccountsBody(_Wire):
    total_balance: Money | None = None
    total_credit_limit: Money | None = None
    embedded: _SubaccountsEmbedded = Field(default_factory=_SubaccountsEmbedded, alias="_embedded")


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class VonageBalance:
    """`GET /account/get-balance`: the balance as given (no currency: it is configured)."""

    value: Decimal
    auto_reload: bool


@dataclass(frozen=True, slots=True)
class VonageSettings:
    """The current account settings, read with an empty `POST /account/settings`."""

    mo_callback_url: str | None
    dr_callback_url: str | None
    max_outbound_request: int | None
    max_inbound_request: int | None
    max_calls_per_second: int | None


@dataclass(frozen=True, slots=True)
class VonageSecret:
    """One API secret of the account (its id, never its value: the API has none)."""

    id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class VonageAuditEvent:
    """One Audit API event; `created_at` is aware UTC (the API sends it without a zone)."""

    id: str
    event_type: str
    created_at: datetime
    description: str | None = None
    user_email: str | None = None
    source: str | None = None
    source_ip: str | None = None
    source_country: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VonageSubaccount:
    """One subaccount; `balance` and `credit_limit` are None when it shares the primary's
    balance (`use_primary_account_balance`)."""

    api_key: str
    name: str
    balance: Decimal | None
    credit_limit: Decimal | None
    suspended: bool
    use_primary_account_balance: bool


@dataclass(frozen=True, slots=True)
class VonageSubaccounts:
    """`GET /accounts/{api_key}/subaccounts`: the total, the primary and the subaccounts."""

    total_balance: Decimal | None
    total_credit_limit: Decimal | None
    primary: VonageSubaccount | None
    subaccounts: list[VonageSubaccount]


# --------------------------------------------------------------------------- conversion


def utc(value: datetime) -> datetime:
    """A naive time is read as UTC; an aware one converted to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def query_time(value: datetime, *, upper: bool = False) -> str:
    """`YYYY-MM-DDTHH:MM:SS` in UTC, without a zone, as the Audit API writes its own
    times; whole seconds: a lower bound truncated, an `upper` bound rounded up, so that
    no event of the range is left out. Raises ValueError for a naive time."""
    if value.tzinfo is None:
        raise ValueError("a naive datetime was given; pass an aware UTC datetime")
    value = value.astimezone(UTC)
    if upper and value.microsecond:
        value = value.replace(microsecond=0) + timedelta(seconds=1)
    return value.strftime("%Y-%m-%dT%H:%M:%S")


def to_balance(body: BalanceBody) -> VonageBalance:
    return VonageBalance(value=body.value, auto_reload=body.auto_reload)


def to_settings(body: SettingsBody) -> VonageSettings:
    return VonageSettings(
        mo_callback_url=body.mo_callback_url,
        dr_callback_url=body.dr_callback_url,
        max_outbound_request=body.max_outbound_request,
        max_inbound_request=body.max_inbound_request,
        max_calls_per_second=body.max_calls_per_second,
    )


def to_secrets(body: SecretsBody) -> list[VonageSecret]:
    return [VonageSecret(id=s.id, created_at=utc(s.created_at)) for s in body.embedded.secrets]


def to_audit_event(item: AuditItem) -> VonageAuditEvent:
    return VonageAuditEvent(
        id=item.id,
        event_type=item.event_type,
        created_at=utc(item.created_at),
        description=item.event_type_description,
        user_email=item.user_email,
        source=item.source,
        source_ip=item.source_ip,
        source_country=item.source_country,
        context=dict(item.context or {}),
    )


def is_last_audit_page(body: AuditBody, requested: int) -> bool:
    """Last when empty, without page data, or at/after `totalPages` (pages count from 1)."""
    page = body.page
    if not body.embedded.events or page is None or page.total_pages is None:
        return True
    return max(requested, page.number or requested) >= page.total_pages


def to_subaccount(item: SubaccountItem) -> VonageSubaccount:
    shared = item.use_primary_account_balance
    return VonageSubaccount(
        api_key=item.api_key,
        name=item.name,
        balance=None if shared else item.balance,
        credit_limit=None if shared else item.credit_limit,
        suspended=item.suspended,
        use_primary_account_balance=shared,
    )


def to_subaccounts(body: SubaccountsBody) -> VonageSubaccounts:
    primary = body.embedded.primary_account
    return VonageSubaccounts(
        total_balance=body.total_balance,
        total_credit_limit=body.total_credit_limit,
        primary=None if primary is None else to_subaccount(primary),
        subaccounts=[to_subaccount(item) for item in body.embedded.subaccounts],
    )

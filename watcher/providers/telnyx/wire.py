"""Telnyx wire models (pydantic, validated from the raw JSON bytes: money is a decimal
string, never a float) and their conversion to `watcher.core.model` values."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from watcher.core.model import AuditChange, AuditEvent, Balance, Invoice, WebhookDelivery
from watcher.providers.http import clip

MAX_PAGE_SIZE = 250
"""The largest `page[size]` the API accepts (422 beyond)."""


def _money_text(value: object) -> object:
    if isinstance(value, float):
        raise ValueError("money must be a decimal string, not a JSON number")
    return value


Money = Annotated[Decimal, BeforeValidator(_money_text), Field(allow_inf_nan=False)]
ItemT = TypeVar("ItemT")


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class ErrorItem(_Wire):
    code: str | int | None = None
    title: str | None = None
    detail: str | None = None


class ErrorBody(_Wire):
    errors: list[ErrorItem] = []


class _BalanceData(_Wire):
    balance: Money
    available_credit: Money
    credit_limit: Money
    pending: Money
    currency: str


class BalanceBody(_Wire):
    data: _BalanceData


class _Meta(_Wire):
    page_number: int | None = None
    page_size: int | None = None
    total_pages: int | None = None
    total_results: int | None = None


class PageBody(_Wire, Generic[ItemT]):
    data: list[ItemT]
    meta: _Meta | None = None


class CountBody(_Wire):
    meta: _Meta


class _Change(_Wire):
    field: str = ""
    old: Any = Field(default=None, alias="from")
    new: Any = Field(default=None, alias="to")


class AuditLog(_Wire):
    id: str
    created_at: datetime
    change_type: str | None = None
    change_made_by: str | None = None
    resource_id: str | None = None
    alternate_resource_id: str | None = None
    user_id: str | None = None
    record_type: str | None = None
    changes: list[_Change] | None = None


class _HttpRequest(_Wire):
    url: str | None = None


class _HttpResponse(_Wire):
    status: int | None = None
    body: str | None = None


class _Http(_Wire):
    request: _HttpRequest | None = None
    response: _HttpResponse | None = None


class _Attempt(_Wire):
    errors: list[Any] | None = None
    http: _Http | None = None


class _Webhook(_Wire):
    event_type: str | None = None


class Delivery(_Wire):
    id: str
    started_at: datetime
    status: str
    webhook: _Webhook | None = None
    attempts: list[_Attempt] | None = None


class _AutoRechargeData(_Wire):
    enabled: bool
    threshold_amount: Money | None = None
    recharge_amount: Money | None = None
    preference: str | None = None


class AutoRechargeBody(_Wire):
    data: _AutoRechargeData


class InvoiceItem(_Wire):
    """One entry of `GET /invoices` (also `data` of `GET /invoices/{id}`); the fields
    the rule needs are required: an invoice without them is a malformed answer."""

    invoice_id: str = Field(min_length=1)
    paid: bool
    period_start: date
    period_end: date


class _TransactionData(_Wire):
    id: str = Field(min_length=1)


class TransactionBody(_Wire):
    data: _TransactionData


@dataclass(frozen=True, slots=True)
class AutoRechargePrefs:
    """`GET /payment/auto_recharge_prefs`: Telnyx's own automatic top-up settings."""

    enabled: bool
    threshold_amount: Decimal | None
    recharge_amount: Decimal | None
    preference: str | None


def utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@functools.lru_cache(maxsize=1024)
def query_time(value: datetime, *, upper: bool = False) -> str:
    """ISO 8601 UTC with `Z`, whole seconds: a lower bound is truncated (it never moves
    later), an `upper` bound rounded up (it never moves earlier), so that no item of the
    range [lower, upper] is left out. Kept: the accounts of a cycle share their bounds."""
    if value.tzinfo is None:
        raise ValueError("a naive datetime was given; pass an aware UTC datetime")
    value = value.astimezone(UTC)
    if upper and value.microsecond:
        value = value.replace(microsecond=0) + timedelta(seconds=1)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def to_balance(body: BalanceBody) -> Balance:
    data = body.data
    return Balance(
        balance=data.balance,
        available_credit=data.available_credit,
        credit_limit=data.credit_limit,
        pending=data.pending,
        currency=data.currency,
    )


def to_audit_event(item: AuditLog) -> AuditEvent:
    return AuditEvent(
        id=item.id,
        created_at=utc(item.created_at),
        change_type=item.change_type or "",
        change_made_by=item.change_made_by or "",
        resource_id=item.resource_id,
        alternate_resource_id=item.alternate_resource_id,
        user_id=item.user_id,
        record_type=item.record_type,
        changes=tuple(AuditChange(field=c.field, old=c.old, new=c.new) for c in item.changes or ()),
    )


def _attempt_error(attempt: _Attempt) -> str:
    """The first error of an attempt: an object's detail/title/code, or an int code as text
    followed by the endpoint's response body (what the webhook receiver answered)."""
    first = attempt.errors[0] if attempt.errors else None
    if isinstance(first, Mapping):
        for key in ("detail", "title", "code"):
            if first.get(key) not in (None, ""):
                return clip(str(first[key]))
        return ""
    if first is None:
        return ""
    response = attempt.http.response if attempt.http else None
    body = (response.body or "").strip() if response else ""
    return clip(f"error {first}: {body}" if body else f"error {first}")


def to_delivery(item: Delivery) -> WebhookDelivery:
    latest = item.attempts[0] if item.attempts else None
    http = latest.http if latest else None
    request = http.request if http else None
    response = http.response if http else None
    return WebhookDelivery(
        id=item.id,
        started_at=utc(item.started_at),
        status=item.status,
        event_type=(item.webhook.event_type or "") if item.webhook else "",
        url=(request.url or "") if request else "",
        http_status=response.status if response else None,
        error=_attempt_error(latest) if latest else "",
    )


def to_prefs(body: AutoRechargeBody) -> AutoRechargePrefs:
    data = body.data
    return AutoRechargePrefs(
        enabled=data.enabled,
        threshold_amount=data.threshold_amount,
        recharge_amount=data.recharge_amount,
        preference=data.preference,
    )


def to_invoice(item: InvoiceItem) -> Invoice:
    return Invoice(item.invoice_id, item.period_start, item.period_end, item.paid)

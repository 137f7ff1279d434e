"""Async client for the few Telnyx API v2 endpoints the watcher reads.

An edge module: HTTP in, `watcher.core.model` values out. One function, `classify`, decides
what an HTTP outcome means (success, retryable, rejected key, permanent); the retry loop
only follows its verdict. Every failure leaves the client as a `TelnyxError`: never an
httpx, pydantic or JSON exception.

The API key lives in a `SecretStr` and is unwrapped once, into the default headers of the
`httpx.AsyncClient`; it is never an argument of a retried function, never in a log event,
an error message or `repr()`.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import math
import os
import random
import ssl
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Annotated, Any, Generic, Self, TypeVar
from urllib.parse import urlencode

import httpx
import pydantic
import structlog
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from watcher.core.model import AuditChange, AuditEvent, Balance, WebhookDelivery
from watcher.core.payment import TopupOutcome as TopupOutcome
from watcher.core.payment import TopupResult as TopupResult
from watcher.providers.errors import ProviderError

log = structlog.get_logger(__name__)

MAX_PAGE_SIZE = 250
"""The largest `page[size]` the API accepts (422 beyond)."""

MAX_PAGES = 1000
"""Safety stop for pagination: more pages than this is treated as a broken response."""

BACKOFF_INITIAL = 0.5
"""First backoff wait in seconds when the server gives no Retry-After; doubles per attempt."""

BACKOFF_JITTER = 0.5
"""Up to this many seconds of random jitter are added to each backoff wait."""

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

_RNG = random.SystemRandom()
_ERROR_TEXT_LIMIT = 200


KEEPALIVE_DEFAULT = 5.0
"""httpx's own keep-alive expiry in seconds, kept for long poll intervals."""

KEEPALIVE_LIMIT = 60.0
"""Idle connections are kept at most this long: servers and load balancers commonly drop
them at 60 s, and reusing one the server is closing fails the request."""


@functools.cache
def _user_agent() -> str:
    from importlib import metadata  # once per process: it scans the installed packages

    try:
        version = metadata.version("account-watcher")
    except metadata.PackageNotFoundError:
        version = "0+unknown"
    return f"account-watcher/{version}"


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One TLS context for every client of the process, the one httpx would build for
    each (`SSL_CERT_FILE`, else `SSL_CERT_DIR`, else certifi's bundle): building it
    parses the CA bundle (~27 ms of CPU and 0.84 MiB per client otherwise)."""
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def keepalive_expiry(interval: timedelta) -> float:
    """Seconds an idle GET connection is kept: one poll interval and 5 s more, so that
    each cycle reuses the last one's connection (no new TCP and TLS handshake), as long
    as that stays within `KEEPALIVE_LIMIT`; else httpx's default."""
    seconds = interval.total_seconds() + KEEPALIVE_DEFAULT
    return seconds if seconds <= KEEPALIVE_LIMIT else KEEPALIVE_DEFAULT


# --------------------------------------------------------------------------- errors


class TelnyxError(ProviderError):
    """The one error type of the client.

    `retryable` (429, 5xx, timeouts, connection failures) and `auth` (401/403) are decided
    in one place, `classify`. `retry_after` is the server's requested wait in seconds
    (Retry-After or x-ratelimit-reset), uncapped. `str(err)` is one sentence without
    secrets, e.g. "GET /balance failed: HTTP 503 (10011 Too many requests)".
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        status: int | None = None,
        code: str | None = None,
        retryable: bool = False,
        auth: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint
        self.status = status
        self.code = code
        self.retryable = retryable
        self.auth = auth
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"TelnyxError({self.message!r}, endpoint={self.endpoint!r}, status={self.status!r}, "
            f"code={self.code!r}, retryable={self.retryable!r}, auth={self.auth!r}, "
            f"retry_after={self.retry_after!r})"
        )

    def redacted(self, secret: str) -> TelnyxError:
        """A copy whose message has every occurrence of `secret` masked (self if absent)."""
        if not secret or secret not in self.message:
            return self
        return TelnyxError(
            self.message.replace(secret, "**********"),
            endpoint=self.endpoint,
            status=self.status,
            code=self.code,
            retryable=self.retryable,
            auth=self.auth,
            retry_after=self.retry_after,
        )


def classify(
    endpoint: str,
    response: httpx.Response | None,
    exc: Exception | None,
    *,
    method: str = "GET",
) -> TelnyxError | None:
    """Decide what one HTTP outcome means: THE place that sets `retryable` and `auth`.

    In: the endpoint path (e.g. "/balance"), and either the response or the exception
    raised while sending. Out: None for a 2xx response, else a `TelnyxError`:
    429/5xx/timeouts/connection errors are retryable (with `retry_after` from Retry-After
    or x-ratelimit-reset); 401/403 set `auth`; any other status is permanent. Raises
    nothing.
    """
    where = f"{method} {endpoint}"
    if response is None:
        return _classify_exception(where, endpoint, exc)
    status = response.status_code
    if 200 <= status < 300:
        return None
    code, text = _error_summary(response)
    if status in (401, 403):
        return TelnyxError(
            f"{where}: the API rejected the key (HTTP {status})",
            endpoint=endpoint,
            status=status,
            code=code,
            auth=True,
        )
    retryable = status == 429 or status >= 500
    detail = f" ({text})" if text else ""
    return TelnyxError(
        f"{where} failed: HTTP {status}{detail}",
        endpoint=endpoint,
        status=status,
        code=code,
        retryable=retryable,
        retry_after=_retry_after(response.headers),
    )


def _classify_exception(where: str, endpoint: str, exc: Exception | None) -> TelnyxError:
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        seconds = _timeout_of(exc)
        after = f" after {seconds:g}s" if seconds is not None else ""
        return TelnyxError(f"{where} timed out{after}", endpoint=endpoint, retryable=True)
    if exc is None:
        return TelnyxError(f"{where}: no response", endpoint=endpoint, retryable=True)
    retryable = isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError)
    return TelnyxError(
        f"{where}: request failed ({type(exc).__name__}: {_clip(str(exc))})",
        endpoint=endpoint,
        retryable=retryable,
    )


def _timeout_of(exc: Exception) -> float | None:
    """The read timeout the failed request was sent with, when the exception knows it."""
    try:
        request = exc.request if isinstance(exc, httpx.RequestError) else None
    except RuntimeError:  # an httpx exception raised without its request
        return None
    timeouts = request.extensions.get("timeout") if request is not None else None
    if isinstance(timeouts, Mapping):
        read = timeouts.get("read")
        if isinstance(read, int | float):
            return float(read)
    return None


def _error_summary(response: httpx.Response) -> tuple[str | None, str]:
    """The first Telnyx error of the body as (code, "code title"), or (None, "")."""
    try:
        body = _ErrorBody.model_validate_json(response.content)
    except pydantic.ValidationError:
        return None, ""
    if not body.errors:
        return None, ""
    first = body.errors[0]
    code = None if first.code is None else str(first.code)
    title = first.title or first.detail or ""
    text = " ".join(part for part in (code, title) if part)
    return code, _clip(text)


def _clip(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= _ERROR_TEXT_LIMIT:
        return text
    return text[: _ERROR_TEXT_LIMIT - 1] + "…"


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from Retry-After (seconds or HTTP date), else x-ratelimit-reset."""
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        seconds = _seconds(retry_after)
        if seconds is None:
            seconds = _seconds_until_date(retry_after, headers.get("date"))
        if seconds is not None:
            return seconds
    reset = headers.get("x-ratelimit-reset")
    return _seconds(reset) if reset is not None else None


def _seconds(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    if math.isnan(value) or math.isinf(value) or value < 0:
        return None
    return value


def _seconds_until_date(text: str, date_header: str | None) -> float | None:
    """An HTTP-date Retry-After, measured against the response's own Date header."""
    if date_header is None:
        return None
    try:
        until = email.utils.parsedate_to_datetime(text)
        sent = email.utils.parsedate_to_datetime(date_header)
        return max(0.0, (until - sent).total_seconds())
    except (TypeError, ValueError):  # unparsable, or naive minus aware
        return None


# --------------------------------------------------------------------------- wire models


def _money_text(value: object) -> object:
    if isinstance(value, float):
        raise ValueError("money must be a decimal string, not a JSON number")
    return value


Money = Annotated[Decimal, BeforeValidator(_money_text), Field(allow_inf_nan=False)]
ItemT = TypeVar("ItemT")
WireT = TypeVar("WireT")
OutT = TypeVar("OutT")


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class _ErrorItem(_Wire):
    code: str | int | None = None
    title: str | None = None
    detail: str | None = None


class _ErrorBody(_Wire):
    errors: list[_ErrorItem] = []


class _BalanceData(_Wire):
    balance: Money
    available_credit: Money
    credit_limit: Money
    pending: Money
    currency: str


class _BalanceBody(_Wire):
    data: _BalanceData


class _Meta(_Wire):
    page_number: int | None = None
    page_size: int | None = None
    total_pages: int | None = None
    total_results: int | None = None


class _Page(_Wire, Generic[ItemT]):
    data: list[ItemT]
    meta: _Meta | None = None


class _CountBody(_Wire):
    meta: _Meta


class _Change(_Wire):
    field: str = ""
    old: Any = Field(default=None, alias="from")
    new: Any = Field(default=None, alias="to")


class _AuditLog(_Wire):
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


class _Delivery(_Wire):
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


class _AutoRechargeBody(_Wire):
    data: _AutoRechargeData


class _TransactionData(_Wire):
    id: str = Field(min_length=1)


class _TransactionBody(_Wire):
    data: _TransactionData


@dataclass(frozen=True, slots=True)
class Page(Generic[ItemT]):
    """One page of a list endpoint: its number, its items, and whether it is the last."""

    number: int
    items: list[ItemT]
    last: bool
    total_pages: int | None = None


# --------------------------------------------------------------------------- top-up

TOPUP_ENDPOINT = "/payment/stored_payment_transactions"
"""The top-up path relative to the `/v2` base URL (never `/v2/v2/...` as the SDKs send it)."""

_CENT = Decimal("0.01")


def topup_amount_text(amount: Decimal) -> str:
    """The amount as the API wants it: `Decimal("100")` -> `"100.00"`.

    Raises ValueError for an amount that is not positive or has more than two decimals
    (money is never rounded silently).
    """
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"a top-up amount must be positive, not {amount}")
    if amount != amount.quantize(_CENT):
        raise ValueError(f"a top-up amount has at most two decimals, not {amount}")
    return str(amount.quantize(_CENT))


def classify_topup(response: httpx.Response | None, exc: Exception | None) -> TopupResult:
    """Decide what one top-up POST outcome means (never retryable: see `TopupResult`).

    In: the response, or the exception raised while sending. Out: a `TopupResult`.
    """
    where = f"POST {TOPUP_ENDPOINT}"
    if response is None:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
            return TopupResult(
                TopupOutcome.FAILED,
                error=f"{where}: could not connect, nothing was sent ({type(exc).__name__})",
            )
        error = _classify_exception(where, TOPUP_ENDPOINT, exc)
        return TopupResult(TopupOutcome.UNKNOWN, error=error.message)
    status = response.status_code
    if 200 <= status < 300:
        try:
            body = _TransactionBody.model_validate_json(response.content)
        except pydantic.ValidationError:
            return TopupResult(
                TopupOutcome.UNKNOWN,
                status=status,
                error=f"{where}: HTTP {status} but the answer has no transaction id",
            )
        return TopupResult(TopupOutcome.SUCCEEDED, transaction_id=body.data.id, status=status)
    first = _first_error(response)
    code = None if first is None or first.code is None else str(first.code)
    title = None if first is None else first.title
    detail = None if first is None else first.detail
    text = " ".join(part for part in (code, title) if part)
    said = f" ({_clip(text)})" if text else ""
    outcome = TopupOutcome.FAILED if 400 <= status < 500 else TopupOutcome.UNKNOWN
    return TopupResult(
        outcome,
        status=status,
        code=code,
        title=title,
        detail=detail,
        error=f"{where} failed: HTTP {status}{said}",
    )


def _first_error(response: httpx.Response) -> _ErrorItem | None:
    try:
        body = _ErrorBody.model_validate_json(response.content)
    except pydantic.ValidationError:
        return None
    return body.errors[0] if body.errors else None


# --------------------------------------------------------------------------- mapping


@dataclass(frozen=True, slots=True)
class AutoRechargePrefs:
    """`GET /payment/auto_recharge_prefs`: Telnyx's own automatic top-up settings."""

    enabled: bool
    threshold_amount: Decimal | None
    recharge_amount: Decimal | None
    preference: str | None


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _query_time(value: datetime, *, upper: bool = False) -> str:
    """ISO 8601 UTC with `Z`, whole seconds: a lower bound is truncated (it never moves
    later), an `upper` bound rounded up (it never moves earlier), so that no item of the
    range [lower, upper] is left out."""
    if value.tzinfo is None:
        raise ValueError("a naive datetime was given; pass an aware UTC datetime")
    value = value.astimezone(UTC)
    if upper and value.microsecond:
        value = value.replace(microsecond=0) + timedelta(seconds=1)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _to_balance(body: _BalanceBody) -> Balance:
    data = body.data
    return Balance(
        balance=data.balance,
        available_credit=data.available_credit,
        credit_limit=data.credit_limit,
        pending=data.pending,
        currency=data.currency,
    )


def _to_audit_event(item: _AuditLog) -> AuditEvent:
    return AuditEvent(
        id=item.id,
        created_at=_utc(item.created_at),
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
                return _clip(str(first[key]))
        return ""
    if first is None:
        return ""
    response = attempt.http.response if attempt.http else None
    body = (response.body or "").strip() if response else ""
    return _clip(f"error {first}: {body}" if body else f"error {first}")


def _to_delivery(item: _Delivery) -> WebhookDelivery:
    latest = item.attempts[0] if item.attempts else None
    http = latest.http if latest else None
    request = http.request if http else None
    response = http.response if http else None
    return WebhookDelivery(
        id=item.id,
        started_at=_utc(item.started_at),
        status=item.status,
        event_type=(item.webhook.event_type or "") if item.webhook else "",
        url=(request.url or "") if request else "",
        http_status=response.status if response else None,
        error=_attempt_error(latest) if latest else "",
    )


def _to_prefs(body: _AutoRechargeBody) -> AutoRechargePrefs:
    data = body.data
    return AutoRechargePrefs(
        enabled=data.enabled,
        threshold_amount=data.threshold_amount,
        recharge_amount=data.recharge_amount,
        preference=data.preference,
    )


ModelT = TypeVar("ModelT", bound=BaseModel)


def _parse(model: type[ModelT], response: httpx.Response, endpoint: str) -> ModelT:
    """Validate a 2xx body; raises a permanent TelnyxError for bad JSON or a wrong shape."""
    try:
        return model.model_validate_json(response.content)
    except pydantic.ValidationError as exc:
        raise _shape_error(exc, endpoint, response.status_code) from None


def _shape_error(exc: pydantic.ValidationError, endpoint: str, status: int) -> TelnyxError:
    problems = exc.errors(include_input=False, include_url=False)
    where = f"GET {endpoint}"
    if any(p["type"] == "json_invalid" for p in problems):
        return TelnyxError(f"{where}: response is not valid JSON", endpoint=endpoint, status=status)
    shown = "; ".join(
        f"{'.'.join(str(part) for part in p['loc']) or 'body'}: {p['msg']}" for p in problems[:3]
    )
    more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
    return TelnyxError(
        f"{where}: response has an unexpected shape ({_clip(shown)}{more})",
        endpoint=endpoint,
        status=status,
    )


# --------------------------------------------------------------------------- client


class TelnyxClient:
    """Reads balance, audit events, webhook deliveries and auto-recharge prefs.

    Retries follow `classify`: only retryable errors, at most `max_attempts` requests per
    call (per page), waiting the server's Retry-After / x-ratelimit-reset (capped at
    `max_wait`) or an exponential backoff with jitter, and never past `deadline` (a
    `time.monotonic()` value). `sleep` and `clock` are injectable for tests.
    `requests_sent` counts HTTP requests actually sent; `on_request(endpoint, status)` is
    called once per attempt (status None for a transport error or timeout), for metrics.

    Connections: the GETs share a pool whose idle connections live `keepalive` seconds
    (see `keepalive_expiry`); the top-up POST always opens a connection of its own and
    closes it after the answer, so it is never written to a kept-alive connection the
    server may be closing. A given `transport` (tests) carries both. The HTTP clients are
    built at their first request, with the process's one TLS context.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: pydantic.SecretStr,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_attempts: int = 4,
        max_wait: float = 30.0,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        on_request: Callable[[str, int | None], None] | None = None,
        keepalive: float = KEEPALIVE_DEFAULT,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.base_url = base_url
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.requests_sent = 0
        self._api_key = api_key
        self._sleep = sleep
        self._clock = clock
        self._on_request = on_request
        self._transport = transport
        self._keepalive = keepalive
        self._get_client: httpx.AsyncClient | None = None
        self._post_client: httpx.AsyncClient | None = None
        self._base = str(httpx.URL(base_url)).rstrip("/")  # absolute request URLs: _attempt
        self._default_headers = httpx.Headers(self._headers(api_key))  # checked here, as before

    @property
    def _http(self) -> httpx.AsyncClient:
        """The GET client (kept-alive connections), built at the first request."""
        if self._get_client is None:
            self._get_client = self._client(
                httpx.Limits(max_keepalive_connections=20, keepalive_expiry=self._keepalive)
            )
        return self._get_client

    @property
    def _post_http(self) -> httpx.AsyncClient:
        """The top-up client: no connection outlives its request (none is ever reused)."""
        if self._transport is not None:
            return self._http  # the given transport decides about connections
        if self._post_client is None:
            self._post_client = self._client(httpx.Limits(max_keepalive_connections=0))
        return self._post_client

    def _client(self, limits: httpx.Limits) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url,
            headers=self._default_headers,
            timeout=self.timeout,
            transport=self._transport,
            follow_redirects=False,
            limits=limits,
            verify=shared_ssl_context() if self._transport is None else True,
        )

    @staticmethod
    def _headers(api_key: pydantic.SecretStr) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {api_key.get_secret_value()}",
            "Accept": "application/json",
            "User-Agent": _user_agent(),
        }

    def __repr__(self) -> str:
        return f"TelnyxClient(base_url={self.base_url!r}, requests_sent={self.requests_sent})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pools; the client is unusable afterwards."""
        for client in (self._get_client, self._post_client):
            if client is not None:
                await client.aclose()

    # ----------------------------------------------------------------- endpoints

    async def get_balance(self, *, deadline: float | None = None) -> Balance:
        """`GET /balance` → Balance (Decimal money). Raises TelnyxError."""
        response = await self._get("/balance", {}, deadline)
        return _to_balance(_parse(_BalanceBody, response, "/balance"))

    async def list_audit_events(
        self,
        *,
        created_after: datetime,
        page_size: int = MAX_PAGE_SIZE,
        deadline: float | None = None,
    ) -> list[AuditEvent]:
        """All audit events created after `created_after` (aware), oldest first, every page.

        `page_size` is clamped to 1..250. Raises TelnyxError, ValueError for a naive time.
        """
        pages = self.audit_event_pages(
            created_after=created_after, page_size=page_size, deadline=deadline
        )
        return [event async for page in pages for event in page.items]

    def audit_event_pages(
        self,
        *,
        created_after: datetime,
        page_size: int = MAX_PAGE_SIZE,
        first_page: int = 1,
        deadline: float | None = None,
    ) -> AsyncGenerator[Page[AuditEvent], None]:
        """Audit events created after `created_after` (aware), oldest first, one page at a
        time from `first_page` on; the caller may stop between pages (nothing is held).

        `page_size` is clamped to 1..250. Raises TelnyxError, ValueError for a naive time.
        """
        params = {
            "filter[created_after]": _query_time(created_after),
            "sort": "asc",
            "page[size]": str(min(max(page_size, 1), MAX_PAGE_SIZE)),
        }
        return self._pages(
            "/audit_events", params, _Page[_AuditLog], _to_audit_event, first_page, deadline
        )

    async def list_failed_deliveries(
        self, *, started_gte: datetime, deadline: float | None = None
    ) -> list[WebhookDelivery]:
        """Failed webhook deliveries started at/after `started_gte` (aware), every page.

        The endpoint has no `sort`; order is the server's. Raises TelnyxError, ValueError.
        """
        pages = self.failed_delivery_pages(started_gte=started_gte, deadline=deadline)
        return [delivery async for page in pages for delivery in page.items]

    def failed_delivery_pages(
        self,
        *,
        started_gte: datetime,
        started_lte: datetime | None = None,
        first_page: int = 1,
        deadline: float | None = None,
    ) -> AsyncGenerator[Page[WebhookDelivery], None]:
        """Failed deliveries started in [`started_gte`, `started_lte`] (aware; no upper
        bound when None), one page at a time from `first_page` on.

        The endpoint has no `sort`: with both bounds fixed the pages stay the same from
        one call to the next, so a read can resume at a page number. The caller may stop
        between pages. Raises TelnyxError, ValueError for a naive time.
        """
        params = {
            "filter[status][eq]": "failed",
            "filter[started_at][gte]": _query_time(started_gte),
            "page[size]": str(MAX_PAGE_SIZE),
        }
        if started_lte is not None:
            params["filter[started_at][lte]"] = _query_time(started_lte, upper=True)
        return self._pages(
            "/webhook_deliveries", params, _Page[_Delivery], _to_delivery, first_page, deadline
        )

    async def count_deliveries(
        self, *, started_gte: datetime, deadline: float | None = None
    ) -> int:
        """Deliveries of any status started at/after `started_gte`, in one request.

        Reads `meta.total_results` of a `page[size]=1` query. Raises TelnyxError, ValueError.
        """
        params = {"filter[started_at][gte]": _query_time(started_gte), "page[size]": "1"}
        response = await self._get("/webhook_deliveries", params, deadline)
        total = _parse(_CountBody, response, "/webhook_deliveries").meta.total_results
        if total is None or total < 0:
            raise TelnyxError(
                "GET /webhook_deliveries: response has no meta.total_results",
                endpoint="/webhook_deliveries",
                status=response.status_code,
            )
        return total

    async def get_auto_recharge_prefs(self, *, deadline: float | None = None) -> AutoRechargePrefs:
        """`GET /payment/auto_recharge_prefs` → AutoRechargePrefs. Raises TelnyxError."""
        endpoint = "/payment/auto_recharge_prefs"
        response = await self._get(endpoint, {}, deadline)
        return _to_prefs(_parse(_AutoRechargeBody, response, endpoint))

    async def create_topup(
        self,
        amount: Decimal,
        *,
        timeout: float,  # noqa: ASYNC109 - the HTTP timeout, also given to httpx
    ) -> TopupResult:
        """`POST /payment/stored_payment_transactions` with `{"amount": "100.00"}`, ONCE.

        Never retried: not by the retry loop (`_get`), not by the transport (the client's
        default transport has `retries=0`; do not give it a retrying one), not on a
        redirect. Sent on a new connection, closed after the answer (`_post_http`): no
        connection is `failed` (nothing was sent), any failure once it is open is
        `unknown`. In: the amount (positive, at most two decimals) and the time limit in
        seconds for the whole exchange. Out: a `TopupResult` (see `classify_topup`);
        network problems are results, not exceptions.
        Raises: ValueError for a bad amount (before anything is sent).
        """
        body = {"amount": topup_amount_text(amount)}
        http = self._post_http
        request = http.build_request(
            "POST", TOPUP_ENDPOINT, json=body, timeout=httpx.Timeout(timeout)
        )
        self.requests_sent += 1
        response: httpx.Response | None = None
        failure: Exception | None = None
        try:
            async with asyncio.timeout(timeout):
                response = await http.send(request)
        except TimeoutError:  # the total limit, when the server trickles bytes
            failure = httpx.ReadTimeout("total time limit reached", request=request)
        except httpx.RequestError as exc:
            failure = exc
        self._observed(TOPUP_ENDPOINT, None if response is None else response.status_code)
        result = classify_topup(response, failure)
        return self._redacted_result(result)

    def _redacted_result(self, result: TopupResult) -> TopupResult:
        secret = self._api_key.get_secret_value()

        def clean(text: str | None) -> str | None:
            return text.replace(secret, "**********") if text and secret else text

        return TopupResult(
            result.outcome,
            transaction_id=result.transaction_id,
            status=result.status,
            code=result.code,
            title=clean(result.title),
            detail=clean(result.detail),
            error=clean(result.error) or "",
        )

    # ----------------------------------------------------------------- pagination

    async def _pages(
        self,
        endpoint: str,
        params: dict[str, str],
        model: type[_Page[WireT]],
        convert: Callable[[WireT], OutT],
        first_page: int,
        deadline: float | None,
    ) -> AsyncGenerator[Page[OutT], None]:
        """Pages `first_page`.. until page_number >= total_pages (or an empty page)."""
        if first_page < 1:
            raise ValueError("first_page must be at least 1")
        for number in range(first_page, first_page + MAX_PAGES):
            response = await self._get(endpoint, {**params, "page[number]": str(number)}, deadline)
            page = _parse(model, response, endpoint)
            last = _is_last_page(page, number)
            total = page.meta.total_pages if page.meta is not None else None
            yield Page(number, [convert(item) for item in page.data], last, total)
            if last:
                return
        raise TelnyxError(
            f"GET {endpoint}: more than {MAX_PAGES} pages; refusing to read on",
            endpoint=endpoint,
        )

    # ----------------------------------------------------------------- retry loop

    async def _get(
        self, endpoint: str, params: Mapping[str, str], deadline: float | None
    ) -> httpx.Response:
        """One logical GET with retries; returns a 2xx response or raises TelnyxError."""
        attempt = 0
        while True:
            attempt += 1
            outcome = await self._attempt(endpoint, params, deadline)
            if isinstance(outcome, httpx.Response):
                return outcome
            error = outcome
            wait = self._next_wait(error, attempt, deadline)
            log.warning(
                "telnyx.request_failed",
                endpoint=endpoint,
                status=error.status,
                attempt=attempt,
                retryable=error.retryable,
                wait=None if wait is None else round(wait, 3),
                error=error.message,
            )
            if wait is None:
                raise error
            await self._sleep(wait)

    async def _attempt(
        self, endpoint: str, params: Mapping[str, str], deadline: float | None
    ) -> httpx.Response | TelnyxError:
        """Send one request; a 2xx response, or the classified (redacted) error."""
        timeout = self._request_timeout(endpoint, deadline)
        # The whole URL as one string: httpx parses it once, where base_url + params
        # would parse (and validate character by character) three times per request.
        query = f"?{urlencode(params)}" if params else ""
        url = f"{self._base}{endpoint}{query}"
        request = self._http.build_request("GET", url, timeout=httpx.Timeout(timeout))
        self.requests_sent += 1
        try:
            async with asyncio.timeout(timeout):
                response = await self._http.send(request)
        except TimeoutError:  # the total limit, when the server trickles bytes
            self._observed(endpoint, None)
            exc: Exception = httpx.ReadTimeout("total time limit reached", request=request)
            return self._redacted(classify(endpoint, None, exc))
        except httpx.RequestError as failure:
            self._observed(endpoint, None)
            return self._redacted(classify(endpoint, None, failure))
        self._observed(endpoint, response.status_code)
        verdict = classify(endpoint, response, None)
        return response if verdict is None else self._redacted(verdict)

    def _observed(self, endpoint: str, status: int | None) -> None:
        """Tell the `on_request` hook (metrics) about one attempt; a failing hook is logged."""
        if self._on_request is None:
            return
        try:
            self._on_request(endpoint, status)
        except Exception:
            log.exception("telnyx.on_request_failed", endpoint=endpoint)

    def _redacted(self, error: TelnyxError | None) -> TelnyxError:
        assert error is not None  # classify returns an error for every exception
        return error.redacted(self._api_key.get_secret_value())

    def _request_timeout(self, endpoint: str, deadline: float | None) -> float:
        if deadline is None:
            return self.timeout
        left = deadline - self._clock()
        if left <= 0:
            raise TelnyxError(
                f"GET {endpoint}: no time left in this cycle's budget",
                endpoint=endpoint,
                retryable=True,
            )
        return min(self.timeout, left)

    def _next_wait(self, error: TelnyxError, attempt: int, deadline: float | None) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        if not error.retryable or attempt >= self.max_attempts:
            return None
        if error.retry_after is not None:
            wait = min(error.retry_after, self.max_wait)
        else:
            wait = _backoff(attempt, self.max_wait)
        if deadline is not None and self._clock() + wait >= deadline:
            return None
        return wait


def _backoff(attempt: int, max_wait: float) -> float:
    """Exponential backoff with jitter: 0.5 s, 1 s, 2 s, ... plus up to 0.5 s, capped."""
    base = BACKOFF_INITIAL * 2.0 ** (attempt - 1)
    return min(max_wait, base + _RNG.uniform(0, BACKOFF_JITTER))


def _is_last_page(page: _Page[Any], requested: int) -> bool:
    if not page.data or page.meta is None or page.meta.total_pages is None:
        return True
    number = max(requested, page.meta.page_number or requested)
    return number >= page.meta.total_pages

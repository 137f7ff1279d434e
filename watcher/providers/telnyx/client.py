"""Async client for the few Telnyx API v2 endpoints the watcher reads.

An edge module: HTTP in, `watcher.core.model` values out. One function, `classify`
(`errors.py`), decides what an HTTP outcome means (success, retryable, rejected key,
permanent); the retry loop only follows its verdict. Every failure leaves the client as a
`TelnyxError`: never an httpx, pydantic or JSON exception. Wire models: `wire.py`; shared
HTTP helpers: `watcher.providers.http`.

The API key lives in a `SecretStr` and is unwrapped once, into the default headers of the
`httpx.AsyncClient`; it is never an argument of a retried function, never in a log event,
an error message or `repr()`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Self, TypeVar

import httpx
import pydantic
import structlog

from watcher.core.model import AuditEvent, Balance, Invoice, WebhookDelivery
from watcher.core.payment import TopupOutcome, TopupResult
from watcher.providers.http import (
    BACKOFF_INITIAL,
    BACKOFF_JITTER,
    KEEPALIVE_DEFAULT,
    KEEPALIVE_LIMIT,
    MAX_PAGES,
    Clock,
    Connections,
    Page,
    RetryPolicy,
    Sleep,
    keepalive_expiry,
    query_string,
    shared_ssl_context,
    user_agent,
)
from watcher.providers.pool import HostPool
from watcher.providers.telnyx.charges_wire import (
    BreakdownBody,
    ChargesTotal,
    SummaryBody,
    to_breakdown,
    to_summary,
)
from watcher.providers.telnyx.errors import (
    TOPUP_ENDPOINT,
    TelnyxError,
    classify,
    classify_topup,
    parse,
    topup_amount_text,
)
from watcher.providers.telnyx.pages import KeptPages
from watcher.providers.telnyx.wire import (
    MAX_PAGE_SIZE,
    AuditLog,
    AutoRechargeBody,
    AutoRechargePrefs,
    BalanceBody,
    CountBody,
    Delivery,
    InvoiceItem,
    PageBody,
    query_time,
    to_audit_event,
    to_balance,
    to_delivery,
    to_invoice,
    to_prefs,
)

__all__ = [  # the names other modules import from here (some defined elsewhere)
    "BACKOFF_INITIAL",
    "BACKOFF_JITTER",
    "KEEPALIVE_DEFAULT",
    "KEEPALIVE_LIMIT",
    "MAX_PAGES",
    "MAX_PAGE_SIZE",
    "TOPUP_ENDPOINT",
    "AutoRechargePrefs",
    "Page",
    "TelnyxClient",
    "TelnyxError",
    "TopupOutcome",
    "TopupResult",
    "classify",
    "classify_topup",
    "keepalive_expiry",
    "shared_ssl_context",
    "topup_amount_text",
]

log = structlog.get_logger(__name__)

WireT = TypeVar("WireT")
ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)
OutT = TypeVar("OutT")


class TelnyxClient:
    """Reads balance, audit events, webhook deliveries, auto-recharge prefs and invoices.

    Retries follow `classify`: only retryable errors, at most `max_attempts` requests per
    call (per page), waiting the server's Retry-After / x-ratelimit-reset (capped at
    `max_wait`) or an exponential backoff with jitter, and never past `deadline` (a
    `time.monotonic()` value). `sleep`, `clock` and `wall_clock` (epoch seconds, for an
    x-ratelimit-reset given as an instant) are injectable for tests.
    `requests_sent` counts HTTP requests actually sent; `on_request(endpoint, status)` is
    called once per attempt (status None for a transport error or timeout), for metrics.

    Connections: the GETs share a pool whose idle connections live `keepalive` seconds
    (see `keepalive_expiry`); the top-up POST always opens a connection of its own and
    closes it after the answer, so it is never written to a kept-alive connection the
    server may be closing. A given `transport` (tests) carries both. The HTTP clients are
    built at their first request, with the process's one TLS context. With a `pool` (its
    host's, shared by every account there), the GETs use the host's one connection pool
    and every request waits for a place under the host's bound on requests in flight.
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
        wall_clock: Clock = time.time,
        pool: HostPool | None = None,
    ) -> None:
        self._policy = RetryPolicy(timeout=timeout, max_attempts=max_attempts, max_wait=max_wait)
        self._wall_clock = wall_clock
        self.base_url = base_url
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.requests_sent = 0
        self._kept_pages = KeptPages()
        self._api_key = api_key
        self._sleep = sleep
        self._clock = clock
        self._on_request = on_request
        self._transport = transport
        self._keepalive = keepalive
        self._base = str(httpx.URL(base_url)).rstrip("/")  # absolute request URLs: _attempt
        self._base_path = httpx.URL(self._base).raw_path.rstrip(b"/")  # of the targets
        self._default_headers = httpx.Headers(self._headers(api_key))  # checked here, as before
        self._connections = Connections(
            headers=self._default_headers,
            timeout=timeout,
            keepalive=keepalive,
            transport=transport,
            base_url=base_url,
            pool=pool,
        )

    @property
    def _http(self) -> httpx.AsyncClient:
        """The GET client (kept-alive connections), built at the first request."""
        return self._connections.get

    @property
    def _post_http(self) -> httpx.AsyncClient:
        """The top-up client: no connection outlives its request (none is ever reused)."""
        return self._connections.post

    @staticmethod
    def _headers(api_key: pydantic.SecretStr) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {api_key.get_secret_value()}",
            "Accept": "application/json",
            "User-Agent": user_agent(),
        }

    @property
    def pages_parsed(self) -> int:
        """Pages validated and converted (not those found unchanged: `KeptPages`)."""
        return self._kept_pages.parsed

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
        await self._connections.aclose()

    # ----------------------------------------------------------------- endpoints

    async def get_balance(self, *, deadline: float | None = None) -> Balance:
        """`GET /balance` → Balance (Decimal money). Raises TelnyxError."""
        response = await self._get("/balance", {}, deadline)
        return to_balance(parse(BalanceBody, response, "/balance"))

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
            "filter[created_after]": query_time(created_after),
            "sort": "asc",
            "page[size]": str(min(max(page_size, 1), MAX_PAGE_SIZE)),
        }
        return self._pages(
            "/audit_events", params, PageBody[AuditLog], to_audit_event, first_page, deadline
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
            "filter[started_at][gte]": query_time(started_gte),
            "page[size]": str(MAX_PAGE_SIZE),
        }
        if started_lte is not None:
            params["filter[started_at][lte]"] = query_time(started_lte, upper=True)
        return self._pages(
            "/webhook_deliveries", params, PageBody[Delivery], to_delivery, first_page, deadline
        )

    async def count_deliveries(
        self, *, started_gte: datetime, deadline: float | None = None
    ) -> int:
        """Deliveries of any status started at/after `started_gte`, in one request.

        Reads `meta.total_results` of a `page[size]=1` query. Raises TelnyxError, ValueError.
        """
        params = {"filter[started_at][gte]": query_time(started_gte), "page[size]": "1"}
        response = await self._get("/webhook_deliveries", params, deadline)
        total = parse(CountBody, response, "/webhook_deliveries").meta.total_results
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
        return to_prefs(parse(AutoRechargeBody, response, endpoint))

    async def list_invoices(self, *, deadline: float | None = None) -> list[Invoice]:
        """Every invoice (`GET /invoices`, oldest period first, 250 per page, every page
        until `page_number >= total_pages`). Raises TelnyxError (also for an invoice
        without `invoice_id`, `paid`, `period_start` or `period_end`)."""
        params = {"sort": "period_start", "page[size]": str(MAX_PAGE_SIZE)}
        pages = self._pages("/invoices", params, PageBody[InvoiceItem], to_invoice, 1, deadline)
        return [invoice async for page in pages for invoice in page.items]

    async def get_charges_summary(
        self, start: date, end: date, *, deadline: float | None = None
    ) -> ChargesTotal:
        """`GET /charges_summary?start_date=D&end_date=D` (dates; `end` exclusive, at most
        31 days after `start`): the grand total and per product. Raises TelnyxError."""
        return to_summary(
            await self._charges("/charges_summary", SummaryBody, start, end, deadline)
        )

    async def get_charges_breakdown(
        self, start: date, end: date, *, deadline: float | None = None
    ) -> ChargesTotal:
        """`GET /charges_breakdown?start_date=D&end_date=D` (JSON): charges per phone
        number. Raises TelnyxError."""
        body = await self._charges("/charges_breakdown", BreakdownBody, start, end, deadline)
        return to_breakdown(body)

    async def _charges(
        self, endpoint: str, model: type[ModelT], start: date, end: date, deadline: float | None
    ) -> ModelT:
        params = {"start_date": start.isoformat(), "end_date": end.isoformat()}
        return parse(model, await self._get(endpoint, params, deadline), endpoint)

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
        outcome = await self._connections.send(http, request, timeout)
        response = outcome if isinstance(outcome, httpx.Response) else None
        failure = None if isinstance(outcome, httpx.Response) else outcome
        self._observed(TOPUP_ENDPOINT, None if response is None else response.status_code)
        result = classify_topup(response, failure)
        return result.masked(self._api_key.get_secret_value())

    # ----------------------------------------------------------------- pagination

    async def _pages(
        self,
        endpoint: str,
        params: dict[str, str],
        model: type[PageBody[WireT]],
        convert: Callable[[WireT], OutT],
        first_page: int,
        deadline: float | None,
    ) -> AsyncGenerator[Page[OutT], None]:
        """Pages `first_page`.. until page_number >= total_pages (or an empty page)."""
        if first_page < 1:
            raise ValueError("first_page must be at least 1")
        for number in range(first_page, first_page + MAX_PAGES):
            response = await self._get(endpoint, {**params, "page[number]": str(number)}, deadline)
            page = self._kept_pages.page(endpoint, number, model, convert, response)
            yield page
            if page.last:
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
        query = f"?{query_string(params)}" if params else ""
        url = f"{self._base}{endpoint}{query}"
        self.requests_sent += 1
        if self._connections.pooled:  # the host's lanes, without an httpx.Request
            target = self._base_path + f"{endpoint}{query}".encode("ascii")
            outcome = await self._connections.fetch(url, target, timeout)
        else:
            request = self._http.build_request("GET", url, timeout=httpx.Timeout(timeout))
            outcome = await self._connections.send(self._http, request, timeout)
        if not isinstance(outcome, httpx.Response):
            self._observed(endpoint, None)
            return self._redacted(classify(endpoint, None, outcome))
        self._observed(endpoint, outcome.status_code)
        verdict = classify(endpoint, outcome, None, now=self._wall_clock())
        return outcome if verdict is None else self._redacted(verdict)

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
        timeout = self._policy.request_timeout(self._clock(), deadline)
        if timeout is None:
            raise TelnyxError(
                f"GET {endpoint}: no time left in this cycle's budget",
                endpoint=endpoint,
                retryable=True,
            )
        return timeout

    def _next_wait(self, error: TelnyxError, attempt: int, deadline: float | None) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        return self._policy.next_wait(
            retryable=error.retryable,
            server_wait=error.retry_after,
            attempt=attempt,
            now=self._clock(),
            deadline=deadline,
        )

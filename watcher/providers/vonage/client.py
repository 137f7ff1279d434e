"""Async client for the few Vonage endpoints the watcher reads, and the top-up.

An edge module: HTTP in, the frozen values of `wire.py` out. `classify` (`errors.py`)
decides what an outcome means; the retry loop only follows its verdict. Every failure
leaves the client as a `VonageError`: never an httpx, pydantic or JSON exception.

Two hosts: `rest_url` (rest.nexmo.com: balance, settings, top-up) and `api_url`
(api.nexmo.com: secrets, subaccounts, audit). Auth is HTTP Basic `api_key:api_secret`,
unwrapped once into the default headers (with `Accept: application/json`, and
`application/problem+json` for errors); the secret is never in a URL or query, never an
argument of a retried function, never in a log event, an error message or `repr()`.
Endpoint labels in logs and errors name `{api_key}` instead of the key.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Self, TypeVar
from urllib.parse import quote, urlencode

import httpx
import structlog
from pydantic import BaseModel, SecretStr

from watcher.core.payment import TopupResult
from watcher.providers.http import (
    KEEPALIVE_DEFAULT,
    MAX_PAGES,
    Clock,
    Connections,
    Page,
    Sleep,
    user_agent,
)
from watcher.providers.pool import HostPool
from watcher.providers.vonage.errors import (
    TOPUP_ENDPOINT,
    VonageError,
    classify,
    classify_topup,
    parse,
)
from watcher.providers.vonage.wire import (
    MAX_AUDIT_PAGE_SIZE,
    AuditBody,
    BalanceBody,
    SecretsBody,
    SettingsBody,
    SubaccountsBody,
    VonageAuditEvent,
    VonageBalance,
    VonageSecret,
    VonageSettings,
    VonageSubaccounts,
    is_last_audit_page,
    query_time,
    to_audit_event,
    to_balance,
    to_secrets,
    to_settings,
    to_subaccounts,
)
from watcher.providers.waits import RetryPolicy

log = structlog.get_logger(__name__)

DEFAULT_REST_URL = "https://rest.nexmo.com"
DEFAULT_API_URL = "https://api.nexmo.com"

BALANCE_ENDPOINT = "/account/get-balance"
SETTINGS_ENDPOINT = "/account/settings"
SECRETS_ENDPOINT = "/accounts/{api_key}/secrets"
SUBACCOUNTS_ENDPOINT = "/accounts/{api_key}/subaccounts"
AUDIT_ENDPOINT = "/beta/audit/events"

_FORM = "application/x-www-form-urlencoded"
ACCEPT = "application/json, application/problem+json"
"""JSON for the bodies, and RFC 7807 for api.nexmo.com's errors (the specs declare them
`application/problem+json`; a server that honours Accept strictly would otherwise not
send them)."""
ModelT = TypeVar("ModelT", bound=BaseModel)


class VonageClient:
    """Reads balance, settings, secrets, subaccounts and audit events; sends top-ups.

    Retries follow `classify`: only retryable errors, at most `max_attempts` requests per
    call (per page), waiting the server's Retry-After / X-RateLimit-Reset (capped at
    `max_wait`) or an exponential backoff with jitter, and never past `deadline` (a
    `time.monotonic()` value). `sleep`, `clock` and `wall_clock` (epoch seconds, for a
    reset given as an instant) are injectable for tests. `requests_sent` counts HTTP
    requests actually sent; `on_request(endpoint, status)` is called once per attempt
    (status None for a transport error or timeout), for metrics.

    Connections: the reads share one pool for both hosts, idle connections kept
    `keepalive` seconds (see `http.keepalive_expiry`); the top-up POST opens a connection
    of its own and closes it after the answer. A given `transport` (tests) carries both.
    The HTTP clients are built at their first request, with the process's one TLS context.
    With a `pool` (shared by every account of its host), the reads go through it and each
    request waits for a place under the host's bound on requests in flight.
    """

    def __init__(
        self,
        *,
        api_key: str | SecretStr,
        api_secret: SecretStr,
        rest_url: str = DEFAULT_REST_URL,
        api_url: str = DEFAULT_API_URL,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_attempts: int = 4,
        max_wait: float = 30.0,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        on_request: Callable[[str, int | None], None] | None = None,
        keepalive: float = KEEPALIVE_DEFAULT,
        pool: HostPool | None = None,
    ) -> None:
        self._policy = RetryPolicy(timeout=timeout, max_attempts=max_attempts, max_wait=max_wait)
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        if not key:
            raise ValueError("the Vonage api_key is empty")
        self.rest_url = str(httpx.URL(rest_url)).rstrip("/")
        self.api_url = str(httpx.URL(api_url)).rstrip("/")
        self.timeout = timeout
        self.requests_sent = 0
        self._key = key
        self._secret = api_secret
        self._token = base64.b64encode(f"{key}:{api_secret.get_secret_value()}".encode()).decode()
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._on_request = on_request
        self._transport = transport
        self._keepalive = keepalive
        self._default_headers = httpx.Headers(  # a value httpx cannot send fails here
            {
                "Authorization": f"Basic {self._token}",
                "Accept": ACCEPT,
                "User-Agent": user_agent(),
            }
        )
        self._connections = Connections(
            headers=self._default_headers,
            timeout=timeout,
            keepalive=keepalive,
            transport=transport,
            pool=pool,
        )

    def __repr__(self) -> str:
        return (
            f"VonageClient(rest_url={self.rest_url!r}, api_url={self.api_url!r}, "
            f"requests_sent={self.requests_sent})"
        )

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

    # ----------------------------------------------------------------- connections

    @property
    def _http(self) -> httpx.AsyncClient:
        """The read client (kept-alive connections), built at the first request."""
        return self._connections.get

    @property
    def _post_http(self) -> httpx.AsyncClient:
        """The top-up client: no connection outlives its request (none is ever reused)."""
        return self._connections.post

    def _key_path(self, template: str) -> str:
        return template.replace("{api_key}", quote(self._key, safe=""))

    # ----------------------------------------------------------------- endpoints

    async def get_balance(self, *, deadline: float | None = None) -> VonageBalance:
        """`GET {rest_url}/account/get-balance` → VonageBalance (exact Decimal value).
        Raises VonageError."""
        url = f"{self.rest_url}{BALANCE_ENDPOINT}"
        response = await self._read("GET", url, BALANCE_ENDPOINT, deadline)
        return to_balance(parse(BalanceBody, response, BALANCE_ENDPOINT))

    async def read_settings(self, *, deadline: float | None = None) -> VonageSettings:
        """The current settings: `POST {rest_url}/account/settings` with an EMPTY form.

        The API has no GET for settings, and every field sent CHANGES that setting; this
        method takes no argument that could become a field and always sends a body of zero
        bytes (`Content-Type: application/x-www-form-urlencoded`). That makes it safe to
        retry like a GET. Raises VonageError.
        """
        url = f"{self.rest_url}{SETTINGS_ENDPOINT}"
        response = await self._read("POST", url, SETTINGS_ENDPOINT, deadline, form=b"")
        return to_settings(parse(SettingsBody, response, SETTINGS_ENDPOINT, "POST"))

    async def list_secrets(self, *, deadline: float | None = None) -> list[VonageSecret]:
        """`GET {api_url}/accounts/{api_key}/secrets` → the secrets' ids and creation
        times (at most two). Raises VonageError."""
        url = f"{self.api_url}{self._key_path(SECRETS_ENDPOINT)}"
        response = await self._read("GET", url, SECRETS_ENDPOINT, deadline)
        return to_secrets(parse(SecretsBody, response, SECRETS_ENDPOINT))

    async def list_subaccounts(self, *, deadline: float | None = None) -> VonageSubaccounts:
        """`GET {api_url}/accounts/{api_key}/subaccounts`; a 403 (feature not provisioned)
        is a VonageError with `auth` and status 403. Raises VonageError."""
        url = f"{self.api_url}{self._key_path(SUBACCOUNTS_ENDPOINT)}"
        response = await self._read("GET", url, SUBACCOUNTS_ENDPOINT, deadline)
        return to_subaccounts(parse(SubaccountsBody, response, SUBACCOUNTS_ENDPOINT))

    def audit_event_pages(
        self,
        date_from: datetime,
        *,
        date_to: datetime | None = None,
        size: int = MAX_AUDIT_PAGE_SIZE,
        start_page: int = 1,
        deadline: float | None = None,
    ) -> AsyncGenerator[Page[VonageAuditEvent], None]:
        """Audit events from `date_from` (to `date_to`; aware times), one page at a time
        from `start_page` (pages count from 1) until `page.number >= page.totalPages` or
        an empty page; the caller may stop between pages. `created_at` without a zone is
        read as UTC. `size` is clamped to 1..100. A 403/404 (the beta is not enabled) is a
        VonageError with that status. Raises VonageError, ValueError for a naive time.
        """
        if start_page < 1:
            raise ValueError("start_page must be at least 1")
        params = {
            "date_from": query_time(date_from),
            "size": str(min(max(size, 1), MAX_AUDIT_PAGE_SIZE)),
        }
        if date_to is not None:
            params["date_to"] = query_time(date_to, upper=True)
        return self._audit_pages(params, start_page, deadline)

    async def _audit_pages(
        self, params: dict[str, str], start_page: int, deadline: float | None
    ) -> AsyncGenerator[Page[VonageAuditEvent], None]:
        for number in range(start_page, start_page + MAX_PAGES):
            query = urlencode({**params, "page": str(number)})
            url = f"{self.api_url}{AUDIT_ENDPOINT}?{query}"
            response = await self._read("GET", url, AUDIT_ENDPOINT, deadline)
            body = parse(AuditBody, response, AUDIT_ENDPOINT)
            last = is_last_audit_page(body, number)
            total = body.page.total_pages if body.page is not None else None
            events = [to_audit_event(item) for item in body.embedded.events]
            yield Page(number, events, last, total)
            if last:
                return
        raise VonageError(
            f"GET {AUDIT_ENDPOINT}: more than {MAX_PAGES} pages; refusing to read on",
            endpoint=AUDIT_ENDPOINT,
        )

    async def create_topup(
        self,
        trx: SecretStr,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109 - the HTTP timeout, also given to httpx
    ) -> TopupResult:
        """`POST {rest_url}/account/top-up` with the form `trx=...`, ONCE.

        Never retried: not by the retry loop (`_read`), not by the transport (the default
        transport has `retries=0`; do not give it a retrying one), not on a redirect. Sent
        on a connection of its own, closed after the answer. The amount is fixed by
        Vonage (the payment that enabled auto-reload). Out: a `TopupResult` (see
        `classify_topup`; a success has no transaction id); network problems are results,
        not exceptions. Raises ValueError for an empty `trx` (before anything is sent).
        """
        reference = trx.get_secret_value()
        if not reference:
            raise ValueError("the top-up trx reference is empty")
        http = self._post_http
        request = http.build_request(
            "POST",
            f"{self.rest_url}{TOPUP_ENDPOINT}",
            content=urlencode({"trx": reference}).encode(),
            headers={"Content-Type": _FORM},
            timeout=httpx.Timeout(timeout),
        )
        self.requests_sent += 1
        outcome = await self._connections.send(http, request, timeout)
        response = outcome if isinstance(outcome, httpx.Response) else None
        failure = None if isinstance(outcome, httpx.Response) else outcome
        self._observed(TOPUP_ENDPOINT, None if response is None else response.status_code)
        result = classify_topup(response, failure)
        for secret in (reference, *self._secrets()):
            result = result.masked(secret)
        return result

    # ----------------------------------------------------------------- retry loop

    async def _read(
        self,
        method: str,
        url: str,
        endpoint: str,
        deadline: float | None,
        *,
        form: bytes | None = None,
    ) -> httpx.Response:
        """One logical read with retries; a 2xx response, or raises VonageError."""
        attempt = 0
        while True:
            attempt += 1
            outcome = await self._attempt(method, url, endpoint, deadline, form)
            if isinstance(outcome, httpx.Response):
                return outcome
            wait = self._policy.next_wait(
                retryable=outcome.retryable,
                server_wait=outcome.retry_after,
                attempt=attempt,
                now=self._clock(),
                deadline=deadline,
            )
            log.warning(
                "vonage.request_failed",
                endpoint=endpoint,
                status=outcome.status,
                attempt=attempt,
                retryable=outcome.retryable,
                wait=None if wait is None else round(wait, 3),
                error=outcome.message,
            )
            if wait is None:
                raise outcome
            await self._sleep(wait)

    async def _attempt(
        self, method: str, url: str, endpoint: str, deadline: float | None, form: bytes | None
    ) -> httpx.Response | VonageError:
        """Send one request; a 2xx response, or the classified (redacted) error."""
        timeout = self._policy.request_timeout(self._clock(), deadline)
        if timeout is None:
            raise VonageError(
                f"{method} {endpoint}: no time left in this cycle's budget",
                endpoint=endpoint,
                retryable=True,
            )
        headers: Mapping[str, str] | None = None if form is None else {"Content-Type": _FORM}
        request = self._http.build_request(
            method, url, content=form, headers=headers, timeout=httpx.Timeout(timeout)
        )
        self.requests_sent += 1
        outcome = await self._connections.send(self._http, request, timeout)
        if not isinstance(outcome, httpx.Response):
            self._observed(endpoint, None)
            return self._redacted(classify(endpoint, None, outcome, method=method))
        self._observed(endpoint, outcome.status_code)
        verdict = classify(endpoint, outcome, None, method=method, now=self._wall_clock())
        return outcome if verdict is None else self._redacted(verdict)

    def _observed(self, endpoint: str, status: int | None) -> None:
        """Tell the `on_request` hook (metrics) about one attempt; a failing hook is logged."""
        if self._on_request is None:
            return
        try:
            self._on_request(endpoint, status)
        except Exception:
            log.exception("vonage.on_request_failed", endpoint=endpoint)

    def _secrets(self) -> tuple[str, ...]:
        """What must never show in a text: the secret, the Basic token, and the key."""
        return (self._secret.get_secret_value(), self._token, self._key)

    def _redacted(self, error: VonageError | None) -> VonageError:
        assert error is not None  # classify returns an error for every exception
        return error.redacted(*self._secrets())

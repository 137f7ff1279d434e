"""HTTP helpers shared by the provider clients: user agent, TLS context, keep-alive,
server-requested waits (Retry-After, rate-limit reset), backoff and retry decisions,
one bounded send, and error-text clipping.

Pure helpers take the current time as an argument; only `send_once` does I/O.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import logging
import math
import os
import random
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, Protocol, TypeVar

import httpx

from watcher.providers.transport import Ask, Origin, header_block, keeps_open, origin_of

BACKOFF_INITIAL = 0.5
"""First backoff wait in seconds when the server gives no Retry-After; doubles per attempt."""

BACKOFF_JITTER = 0.5
"""Up to this many seconds of random jitter are added to each backoff wait."""

KEEPALIVE_DEFAULT = 5.0
"""httpx's own keep-alive expiry in seconds, kept for long poll intervals."""

KEEPALIVE_LIMIT = 60.0
"""Idle connections are kept at most this long: servers and load balancers commonly drop
them at 60 s, and reusing one the server is closing fails the request."""

MAX_PAGES = 1000
"""Safety stop for pagination: more pages than this is treated as a broken response."""

ERROR_TEXT_LIMIT = 200
"""Longest piece of server text quoted in an error message."""

_EPOCH_SECONDS_FLOOR = 0.5
"""A reset value above this fraction of "now" (epoch seconds) is an instant, not a wait:
no server asks for a wait of decades."""

_EPOCH_MS_FACTOR = 100.0
"""A reset value above `now * 100` is an instant in epoch milliseconds."""

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
ItemT = TypeVar("ItemT")

_RNG = random.SystemRandom()
_HTTPX_LOG = logging.getLogger("httpx")


@functools.cache
def user_agent() -> str:
    """`account-watcher/<version>`, looked up once per process."""
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


class SharedPool(Protocol):
    """What `Connections` needs of a host's shared pool (`watcher.providers.pool.HostPool`):
    a transport into it for one client, and the bound on requests in flight."""

    bound: asyncio.Semaphore

    def transport(self) -> httpx.AsyncBaseTransport:
        """A transport for one client, sharing the host's connections."""
        ...

    async def send(self, request: httpx.Request) -> httpx.Response:
        """`request` on one of the host's connections, its whole answer read."""
        ...

    async def fetch(self, ask: Ask) -> httpx.Response:
        """`ask` on one of the host's connections, its whole answer read."""
        ...


class Connections:
    """A provider client's two connection pools, each built at its first use.

    `get`: the pool for reads, whose connections are kept alive for `keepalive` seconds.
    `post`: the top-up's pool, whose connection never outlives its request (a payment is
    never sent on a connection a read left behind). A given `transport` (tests) serves
    both. Redirects are never followed; TLS uses the shared context.

    With a `pool` (the account's host's `HostPool`), the reads go through the host's one
    pool, shared with every other account on it, and `send` waits for a place under the
    host's bound on requests in flight (also for the top-up) before its time limit starts.
    The reads then go straight to the pool, not through `httpx.AsyncClient.send` (no
    redirects are followed and no cookies kept either way; the client's cookie jar and
    auth and redirect steps cost a fifth of a read's CPU); `get` still builds them.
    """

    def __init__(
        self,
        *,
        headers: httpx.Headers,
        timeout: float,
        keepalive: float,
        transport: httpx.AsyncBaseTransport | None = None,
        base_url: str = "",
        pool: SharedPool | None = None,
    ) -> None:
        self._headers = headers
        self._timeout = timeout
        self._keepalive = keepalive
        self._transport = transport
        self._base_url = base_url
        self._pool = pool
        self._get: httpx.AsyncClient | None = None
        self._post: httpx.AsyncClient | None = None
        self._read_head: tuple[Origin, list[tuple[bytes, bytes]], bytes, bool] | None = None

    @property
    def get(self) -> httpx.AsyncClient:
        """The read client (kept-alive connections)."""
        if self._get is None:
            limits = httpx.Limits(max_keepalive_connections=20, keepalive_expiry=self._keepalive)
            shared = None if self._pool is None else self._pool.transport()
            self._get = self._client(limits, shared)
        return self._get

    async def send(
        self,
        http: httpx.AsyncClient,
        request: httpx.Request,
        timeout: float,  # noqa: ASYNC109 - the total limit of `send_once`
    ) -> httpx.Response | httpx.RequestError:
        """`send_once` on `http` (`get` or `post`), under the host's bound when pooled."""
        if self._pool is None:
            return await send_once(http, request, timeout)
        async with self._pool.bound:
            if http is self._get:
                return await send_pooled(self._pool, request, timeout)
            return await send_once(http, request, timeout)

    @property
    def pooled(self) -> bool:
        """Whether the reads go through a host's shared pool (then `fetch` serves them)."""
        return self._pool is not None

    async def fetch(
        self,
        url: str,
        target: bytes,
        timeout: float,  # noqa: ASYNC109 - the total limit, also each step's
    ) -> httpx.Response | httpx.RequestError:
        """A GET of `url` (its path and query are `target`) on the host's pool, under its
        bound, within `timeout` in total: `send_pooled` without an `httpx.Request`. The
        header lines are the read client's for its base URL (what `get.build_request`
        gives: its default headers and Host), worked out and written out once. Pooled
        only."""
        assert self._pool is not None, "fetch is for pooled reads"
        if self._read_head is None:
            request = self.get.build_request("GET", url)
            lines = request.headers.raw
            try:
                block = header_block(lines)
            except ValueError as exc:  # a line break in a key, say; names no value
                return httpx.LocalProtocolError(str(exc), request=request)
            self._read_head = (origin_of(request.url), lines, block, keeps_open(lines))
        origin, lines, block, keep = self._read_head
        ask = Ask("GET", origin, target, lines, url, timeout, timeout, block=block, keep=keep)
        async with self._pool.bound:
            return await fetch_pooled(self._pool, ask, timeout)

    @property
    def post(self) -> httpx.AsyncClient:
        """The top-up client: no connection outlives its request (none is ever reused)."""
        if self._transport is not None:
            return self.get  # the given transport decides about connections
        if self._post is None:
            self._post = self._client(httpx.Limits(max_keepalive_connections=0))
        return self._post

    async def aclose(self) -> None:
        """Close both pools; the connections are unusable afterwards."""
        for client in (self._get, self._post):
            if client is not None:
                await client.aclose()

    def _client(
        self, limits: httpx.Limits, shared: httpx.AsyncBaseTransport | None = None
    ) -> httpx.AsyncClient:
        transport = self._transport or shared
        return httpx.AsyncClient(
            base_url=self._base_url,
            headers=self._headers,
            timeout=self._timeout,
            transport=transport,
            follow_redirects=False,
            limits=limits,
            verify=shared_ssl_context() if transport is None else True,
        )


def keepalive_expiry(interval: timedelta) -> float:
    """Seconds an idle GET connection is kept: one poll interval and 5 s more, so that
    each cycle reuses the last one's connection (no new TCP and TLS handshake), as long
    as that stays within `KEEPALIVE_LIMIT`; else httpx's default."""
    seconds = interval.total_seconds() + KEEPALIVE_DEFAULT
    return seconds if seconds <= KEEPALIVE_LIMIT else KEEPALIVE_DEFAULT


@dataclass(frozen=True, slots=True)
class Page(Generic[ItemT]):
    """One page of a list endpoint: its number, its items, and whether it is the last."""

    number: int
    items: list[ItemT]
    last: bool
    total_pages: int | None = None


# --------------------------------------------------------------------------- text


@functools.lru_cache(maxsize=4096)
def _quoted(text: str) -> str:
    return urllib.parse.quote_plus(text)


def query_string(params: Mapping[str, str]) -> str:
    """`urllib.parse.urlencode(params)`, the same text, for the reads' few parameters:
    their names and most values (a page size, a cycle's `since`, shared by every
    account of the cycle) repeat, so each is percent-encoded once, not on every read."""
    return "&".join(f"{_quoted(name)}={_quoted(value)}" for name, value in params.items())


def clip(text: str) -> str:
    """Whitespace collapsed, at most `ERROR_TEXT_LIMIT` characters (… when cut)."""
    text = " ".join(text.split())
    if len(text) <= ERROR_TEXT_LIMIT:
        return text
    return text[: ERROR_TEXT_LIMIT - 1] + "…"


def mask(text: str, secret: str) -> str:
    """`text` with every occurrence of `secret` replaced by asterisks."""
    return text.replace(secret, "**********") if secret and text else text


def timeout_of(exc: Exception) -> float | None:
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


def is_retryable_exception(exc: Exception | None) -> bool:
    """Timeouts and network failures are worth another GET; anything else is not."""
    if exc is None or isinstance(exc, httpx.TimeoutException | TimeoutError):
        return True
    return isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError)


def exception_text(where: str, exc: Exception | None) -> str:
    """One sentence for a request that got no response, e.g. "GET /x timed out after 5s"."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        seconds = timeout_of(exc)
        after = f" after {seconds:g}s" if seconds is not None else ""
        return f"{where} timed out{after}"
    if exc is None:
        return f"{where}: no response"
    if isinstance(exc, httpx.LocalProtocolError):  # h11's text quotes the header's value
        return f"{where}: not sent (a header or the target is not valid HTTP; not shown)"
    return f"{where}: request failed ({type(exc).__name__}: {clip(str(exc))})"


def never_sent(exc: Exception | None) -> bool:
    """True when the request cannot have left this machine (no connection was opened)."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


# --------------------------------------------------------------------------- waits


def retry_after(headers: httpx.Headers, now: float | None = None) -> float | None:
    """Seconds to wait from Retry-After (seconds or HTTP date), else X-RateLimit-Reset.

    `now` is the current time in epoch seconds, needed for a reset given as an instant
    (see `reset_seconds`); when None, the response's own Date header stands in for it,
    and without one only a reset given as seconds-until is understood.
    """
    value = headers.get("retry-after")
    if value is not None:
        seconds = _seconds(value)
        if seconds is None:
            seconds = _seconds_until_date(value, headers.get("date"))
        if seconds is not None:
            return seconds
    reset = headers.get("x-ratelimit-reset")
    if reset is None:
        return None
    return reset_seconds(reset, now if now is not None else _date_epoch(headers.get("date")))


def reset_seconds(text: str, now: float | None) -> float | None:
    """A rate-limit reset as seconds from `now` (epoch seconds), whatever its unit.

    Decided by magnitude relative to now: above `now * 100` it is an instant in epoch
    milliseconds, above half of now an instant in epoch seconds, else seconds-until. An
    instant already past is 0. None for a value that is not a non-negative number, or an
    instant when `now` is unknown.
    """
    value = _seconds(text)
    if value is None:
        return None
    if now is None or now <= 0:
        return value if value < 1e9 else None
    if value > now * _EPOCH_MS_FACTOR:
        return max(0.0, value / 1000.0 - now)
    if value > now * _EPOCH_SECONDS_FLOOR:
        return max(0.0, value - now)
    return value


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


def _date_epoch(date_header: str | None) -> float | None:
    if date_header is None:
        return None
    try:
        return email.utils.parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError):
        return None


def backoff(attempt: int, max_wait: float) -> float:
    """Exponential backoff with jitter: 0.5 s, 1 s, 2 s, ... plus up to 0.5 s, capped."""
    base = BACKOFF_INITIAL * 2.0 ** (attempt - 1)
    return min(max_wait, base + _RNG.uniform(0, BACKOFF_JITTER))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a client retries its GETs: at most `max_attempts` requests per call, waits
    capped at `max_wait`, each request at most `timeout` seconds."""

    timeout: float = 10.0
    max_attempts: int = 4
    max_wait: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")

    def next_wait(
        self,
        *,
        retryable: bool,
        server_wait: float | None,
        attempt: int,
        now: float,
        deadline: float | None,
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now.

        `now` and `deadline` are on the same (monotonic) clock; a wait that would reach
        the deadline gives up instead.
        """
        if not retryable or attempt >= self.max_attempts:
            return None
        if server_wait is not None:
            wait = min(server_wait, self.max_wait)
        else:
            wait = backoff(attempt, self.max_wait)
        if deadline is not None and now + wait >= deadline:
            return None
        return wait

    def request_timeout(self, now: float, deadline: float | None) -> float | None:
        """The time limit of one request: `timeout`, less when the deadline is closer;
        None when no time is left."""
        if deadline is None:
            return self.timeout
        left = deadline - now
        return None if left <= 0 else min(self.timeout, left)


async def send_once(
    http: httpx.AsyncClient,
    request: httpx.Request,
    timeout: float,  # noqa: ASYNC109 - the total limit, also in the request's own timeouts
) -> httpx.Response | httpx.RequestError:
    """Send `request` once within `timeout` seconds in total (also when the server
    trickles bytes); the response, or the httpx error (a ReadTimeout for the total limit).
    Never retries."""
    try:
        async with asyncio.timeout(timeout):
            return await http.send(request)
    except TimeoutError:
        return httpx.ReadTimeout("total time limit reached", request=request)
    except httpx.RequestError as exc:
        return exc


async def send_pooled(
    pool: SharedPool,
    request: httpx.Request,
    timeout: float,  # noqa: ASYNC109 - the total limit, also in the request's own timeouts
) -> httpx.Response | httpx.RequestError:
    """`send_once` for a read on the host's pool, without the client around it: the
    response (its body read and decoded) or the httpx error. Never retries."""
    try:
        async with asyncio.timeout(timeout):
            response = await pool.send(request)
    except TimeoutError:
        return httpx.ReadTimeout("total time limit reached", request=request)
    except httpx.RequestError as exc:
        return exc
    response.request = request
    return _decoded(response, request.method, str(request.url))


async def fetch_pooled(
    pool: SharedPool,
    ask: Ask,
    timeout: float,  # noqa: ASYNC109 - the total limit, also in the ask's own timeouts
) -> httpx.Response | httpx.RequestError:
    """`send_pooled` of an `Ask`: the response (its body read and decoded; it carries no
    request) or the httpx error. Never retries."""
    try:
        async with asyncio.timeout(timeout):
            response = await pool.fetch(ask)
    except TimeoutError:
        return httpx.ReadTimeout("total time limit reached", request=ask.request())
    except httpx.RequestError as exc:
        return exc
    return _decoded(response, ask.method, ask.url)


def _decoded(
    response: httpx.Response, method: str, url: str
) -> httpx.Response | httpx.RequestError:
    if _HTTPX_LOG.isEnabledFor(logging.INFO):  # the line httpx's client logs (debug runs)
        _HTTPX_LOG.info(
            'HTTP Request: %s %s "%s %d %s"',
            method,
            url,
            response.http_version,
            response.status_code,
            response.reason_phrase,
        )
    try:
        response.read()  # the lane read the body: this only decodes it (gzip, ...)
    except httpx.DecodingError as exc:
        return exc
    return response

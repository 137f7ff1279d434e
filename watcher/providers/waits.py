"""How long a client waits before it asks again: the server's Retry-After (or
X-RateLimit-Reset, whatever its unit), else exponential backoff with jitter; and the
retry policy of the clients' GETs (attempts, waits, each request's time limit)."""

from __future__ import annotations

import email.utils
import math
import random
from dataclasses import dataclass

import httpx

BACKOFF_INITIAL = 0.5
"""First backoff wait in seconds when the server gives no Retry-After; doubles per attempt."""

BACKOFF_JITTER = 0.5
"""Up to this many seconds of random jitter are added to each backoff wait."""

_EPOCH_SECONDS_FLOOR = 0.5
"""A reset value above this fraction of "now" (epoch seconds) is an instant, not a wait:
no server asks for a wait of decades."""

_EPOCH_MS_FACTOR = 100.0
"""A reset value above `now * 100` is an instant in epoch milliseconds."""

_RNG = random.SystemRandom()


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

"""What the Telnyx simulator keeps and serves: wire records, error bodies, its faults.

Telnyx shapes (`tests/data/telnyx-account.openapi.yaml`): the error body, the audit
event and webhook delivery records, ISO 8601 `Z` times; and `Fault`, simkit's with
the Telnyx simulator's defaults. Standard library only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from watcher.providers import simkit
from watcher.providers.simkit import ResetForm, as_utc, iso

JSON = dict[str, Any]

ORGANIZATION_ID = "5f3a2c1e-9b7d-4e8a-a1c2-0d9e8f7a6b5c"
OWNER_USER_ID = "6a09cdc3-8948-47f0-aa62-74ac943d6c58"
DELIVERY_STATUSES = ("delivered", "failed")
CENT = Decimal("0.01")
RATE_LIMIT = 100  # x-ratelimit-limit of a 429
MALFORMED = '{"data": ['  # the default body of a malformed answer

# status -> (Telnyx error code, title, detail) for generated error bodies
_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("10015", "Bad request", "The request could not be parsed."),
    401: ("10009", "Authentication failed", "The API key is missing, invalid or revoked."),
    403: ("10010", "Authorization failed", "The API key may not perform this operation."),
    404: ("10005", "Resource not found", "The requested resource or path does not exist."),
    405: ("10015", "Method not allowed", "This method is not supported on this path."),
    422: ("10015", "Invalid parameter", "A request parameter is invalid."),
    429: (
        "10011",
        "Too many requests",
        "You have exceeded the maximum number of allowed requests.",
    ),
    500: ("10007", "Unexpected error", "An unexpected error occurred."),
    502: ("10008", "Bad gateway", "An upstream service failed."),
    503: ("10008", "Service unavailable", "The service is temporarily unavailable."),
    504: ("10008", "Gateway timeout", "An upstream service timed out."),
}


def error_body(status: int, *, detail: str | None = None, code: str | None = None) -> JSON:
    """Build a Telnyx error body `{"errors": [{code, title, detail}]}` for `status`.

    Unknown statuses get code "10007". `detail` / `code` override the defaults.
    """
    default_code, title, default_detail = _ERRORS.get(status, ("10007", "Error", "Error."))
    error = {"code": code or default_code, "title": title, "detail": detail or default_detail}
    return {"errors": [error]}


class Fault(simkit.Fault):
    """simkit's `Fault` with the Telnyx simulator's defaults: a 429 says a limit of 100
    requests, and a malformed answer is a cut-off list `{"data": [`."""

    __slots__ = ()

    @classmethod
    def status(
        cls,
        code: int,
        *,
        body: dict[str, Any] | str | None = None,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
        after_s: int = 1,
        reset: ResetForm = "seconds",
    ) -> simkit.Fault:
        """Answer with HTTP `code` and a JSON body (default: a Telnyx error body for `code`).

        With `headers=None`, a 429 carries `Retry-After: 1` and `x-ratelimit-*` headers;
        given headers replace those defaults entirely.
        """
        fault = super().status(
            code,
            body=body,
            headers=headers,
            content_type=content_type,
            after_s=after_s,
            reset=reset,
        )
        limit = fault.rate_limit
        return (
            fault if limit is None else replace(fault, rate_limit=replace(limit, limit=RATE_LIMIT))
        )

    @classmethod
    def malformed(cls, body: str = MALFORMED) -> simkit.Fault:
        """Answer 200 `application/json` with `body`, which should not be valid JSON."""
        return super().malformed(body)


# --- stored records -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One audit event; listed once the clock reaches `visible_at`."""

    created_at: datetime
    visible_at: datetime
    json: JSON


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    """One webhook delivery record."""

    started_at: datetime
    json: JSON


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a list request sees: the time and the records visible then."""

    now: datetime
    events: tuple[StoredEvent, ...] = ()
    deliveries: tuple[StoredDelivery, ...] = ()


# --- records as served ------------------------------------------------------------------


def delivery_record(
    id: str, status: str, started: datetime, event_type: str, attempt: JSON
) -> JSON:
    """A `webhook_delivery` record as the API lists it, with its one attempt."""
    return {
        "id": id,
        "record_type": "webhook_delivery",
        "user_id": OWNER_USER_ID,
        "status": status,
        "started_at": iso(started),
        "finished_at": attempt["finished_at"],
        "webhook": {
            "event_type": event_type,
            "id": str(uuid.uuid4()),
            "occurred_at": iso(started - timedelta(seconds=1)),
            "payload": {},
            "record_type": "event",
        },
        "attempts": [attempt],
    }


def spread(count: int, start: datetime, end: datetime) -> timedelta:
    """The step between `count` records spread evenly over [start, end). Raises ValueError."""
    if count < 0:
        raise ValueError("count must not be negative")
    return (as_utc(end) - as_utc(start)) / max(count, 1)


def attempt_record(
    status: str, started: datetime, url: str, http_status: int | None, error_detail: str | None
) -> JSON:
    attempt: JSON = {
        "started_at": iso(started),
        "finished_at": iso(started + timedelta(milliseconds=250)),
        "status": status,
        "http": {"request": {"url": url, "headers": [["Accept", "*/*"]]}},
    }
    if status == "delivered":
        code = http_status if http_status is not None and http_status < 400 else 200
        attempt["http"]["response"] = _attempt_response(code, "OK")
    elif http_status is not None:
        body = error_detail or f"HTTP {http_status}"
        attempt["http"]["response"] = _attempt_response(http_status, body)
        attempt["errors"] = [75499]
    else:
        detail = error_detail or "Unable to connect to the webhook URL"
        attempt["errors"] = [{"code": "75001", "title": "Could not deliver", "detail": detail}]
    return attempt


def _attempt_response(status: int, body: str) -> JSON:
    return {"status": status, "headers": [["Content-Type", "text/plain"]], "body": body}

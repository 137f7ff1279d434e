"""What the Telnyx simulator keeps and serves: wire records, error bodies, faults, requests.

Telnyx shapes (`tests/data/telnyx-account.openapi.yaml`): the error body, the audit
event and webhook delivery records, ISO 8601 `Z` times. Plus the scripted `Fault` and
the `RecordedRequest` a test reads back. Standard library only.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

JSON = dict[str, Any]
FaultKind = Literal["status", "delay", "malformed", "disconnect", "hold"]

ORGANIZATION_ID = "5f3a2c1e-9b7d-4e8a-a1c2-0d9e8f7a6b5c"
OWNER_USER_ID = "6a09cdc3-8948-47f0-aa62-74ac943d6c58"
DELIVERY_STATUSES = ("delivered", "failed")
CENT = Decimal("0.01")

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
_RATE_LIMIT_HEADERS = (
    ("Retry-After", "1"),
    ("x-ratelimit-limit", "100"),
    ("x-ratelimit-remaining", "0"),
    ("x-ratelimit-reset", "1"),
)


def error_body(status: int, *, detail: str | None = None, code: str | None = None) -> JSON:
    """Build a Telnyx error body `{"errors": [{code, title, detail}]}` for `status`.

    Unknown statuses get code "10007". `detail` / `code` override the defaults.
    """
    default_code, title, default_detail = _ERRORS.get(status, ("10007", "Error", "Error."))
    error = {"code": code or default_code, "title": title, "detail": detail or default_detail}
    return {"errors": [error]}


def iso(moment: datetime) -> str:
    """Format an aware datetime as ISO 8601 UTC with `Z` (microseconds only when non-zero)."""
    utc = as_utc(moment).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds") + "Z"


def as_utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime (a naive one is taken to be UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def utc_now() -> datetime:
    """The real clock, as an aware UTC datetime (the default clock of an account)."""
    return datetime.now(UTC)


# --- faults -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fault:
    """A scripted misbehaviour for one request; build it with the factory classmethods."""

    kind: FaultKind
    code: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""
    seconds: float = 0.0
    gate: threading.Event | None = field(default=None, compare=False, repr=False)

    @classmethod
    def status(
        cls, code: int, *, headers: dict[str, str] | None = None, body: dict[str, Any] | None = None
    ) -> Fault:
        """Answer with HTTP `code` and a JSON body (default: a Telnyx error body for `code`).

        With `headers=None`, a 429 carries `Retry-After: 1` and `x-ratelimit-*` headers;
        given headers replace those defaults entirely.
        """
        pairs: tuple[tuple[str, str], ...]
        if headers is None:
            pairs = _RATE_LIMIT_HEADERS if code == 429 else ()
        else:
            pairs = tuple(headers.items())
        payload = error_body(code) if body is None else body
        return cls(kind="status", code=code, headers=pairs, body=json.dumps(payload))

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait `seconds` (cut short when the server stops), then answer normally."""
        if seconds < 0:
            raise ValueError("delay must not be negative")
        return cls(kind="delay", seconds=seconds)

    @classmethod
    def malformed(cls, body: str = '{"data": [') -> Fault:
        """Answer 200 `application/json` with `body`, which should not be valid JSON."""
        return cls(kind="malformed", body=body)

    @classmethod
    def disconnect(cls) -> Fault:
        """Close the connection without sending any response."""
        return cls(kind="disconnect")

    @classmethod
    def hold(cls, release: threading.Event, *, seconds: float = 30.0) -> Fault:
        """Hold the request open until `release` is set (at most `seconds`, or until the
        server stops), then answer it normally (a held top-up is then paid).

        The request is recorded before it is held, so a test can wait for
        `request_count(path)` to see that it arrived, act (e.g. kill the client), and
        then set `release`.
        """
        if seconds < 0:
            raise ValueError("hold must not be negative")
        return cls(kind="hold", seconds=seconds, gate=release)


@dataclass(slots=True)
class FaultSlot:
    path: str
    fault: Fault
    remaining: int  # -1 = until cleared


# --- recorded requests and stored records ------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server received it.

    - `path`: the URL path without the `/v2` prefix (`/v2/v2/x` is recorded as `/v2/x`;
      a path outside `/v2` is recorded unchanged and answered 404).
    - `query`: raw decoded keys such as `filter[created_after]` (last value wins).
    - `headers`: names lower-cased; left out of `repr()` since they carry the key.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str] = field(repr=False)
    body: bytes
    raw_path: str
    received_at: datetime


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

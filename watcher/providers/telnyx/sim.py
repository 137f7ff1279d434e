"""A simulated Telnyx account API on loopback, for the demo and integration tests.

`SimServer` serves the account-monitoring subset of the Telnyx API v2 (shapes from
`tests/data/telnyx-account.openapi.yaml`) from a `SimAccount`, on `127.0.0.1` in a
background thread. Tests script the account (balances, audit events, webhook
deliveries, a fake clock), inject faults (status codes, delays, malformed bodies,
dropped connections) and read back every request the server received.

Request handling, in order: record the request, apply a pending fault for its path,
check the bearer key, route. Standard library only.
"""

from __future__ import annotations

import copy
import hmac
import json
import math
import re
import socket
import socketserver
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qsl, urlsplit

from watcher.core.model import Balance

JSON = dict[str, Any]
Clock = Callable[[], datetime]
BalanceScript = Callable[[datetime], Decimal]
FaultKind = Literal["status", "delay", "malformed", "disconnect", "hold"]

API_PREFIX = "/v2"
HOST = "127.0.0.1"
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 250
ORGANIZATION_ID = "5f3a2c1e-9b7d-4e8a-a1c2-0d9e8f7a6b5c"
OWNER_USER_ID = "6a09cdc3-8948-47f0-aa62-74ac943d6c58"
DELIVERY_STATUSES = ("delivered", "failed")

_CENT = Decimal("0.01")
_AMOUNT_RE = re.compile(r"[0-9]+\.[0-9]{2}")
_JSON_TYPE = "application/json"

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


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def error_body(status: int, *, detail: str | None = None, code: str | None = None) -> JSON:
    """Build a Telnyx error body `{"errors": [{code, title, detail}]}` for `status`.

    Unknown statuses get code "10007". `detail` / `code` override the defaults.
    """
    default_code, title, default_detail = _ERRORS.get(status, ("10007", "Error", "Error."))
    error = {"code": code or default_code, "title": title, "detail": detail or default_detail}
    return {"errors": [error]}


def iso(moment: datetime) -> str:
    """Format an aware datetime as ISO 8601 UTC with `Z` (microseconds only when non-zero)."""
    utc = _as_utc(moment).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds") + "Z"


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _money(value: Decimal) -> str:
    return str(value.quantize(_CENT))


def _decimal(value: str | Decimal) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(value)


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
class _FaultSlot:
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
class _StoredEvent:
    created_at: datetime
    visible_at: datetime
    json: JSON


@dataclass(frozen=True, slots=True)
class _StoredDelivery:
    started_at: datetime
    json: JSON


@dataclass(frozen=True, slots=True)
class _Snapshot:
    now: datetime
    events: tuple[_StoredEvent, ...] = ()
    deliveries: tuple[_StoredDelivery, ...] = ()


# --- the account --------------------------------------------------------------------------


class SimAccount:
    """All state of one simulated account; every method is thread-safe (one lock).

    `clock` (default: the real UTC clock) is read for `created_at` defaults, audit-event
    visibility, balance scripts and transaction timestamps; tests replace it.
    """

    def __init__(
        self,
        *,
        api_key: str = "sim-key",
        clock: Clock | None = None,
        balance: str = "500.00",
        credit_limit: str = "0.00",
        pending: str = "0.00",
        currency: str = "USD",
    ) -> None:
        self.clock: Clock = clock or _utc_now
        self.currency = currency
        self._lock = threading.Lock()
        self._api_key = api_key
        self._revoked = False
        self._balance = Decimal(balance)
        self._credit_limit = Decimal(credit_limit)
        self._pending = Decimal(pending)
        self._script: BalanceScript | None = None
        self._script_offset = Decimal(0)
        self._events: list[_StoredEvent] = []
        self._deliveries: list[_StoredDelivery] = []
        self._version = 0  # bumped by every added record; keys the listing cache
        self._listing: dict[str, tuple[tuple[Any, ...], list[JSON]]] = {}  # per endpoint
        self._faults: list[_FaultSlot] = []
        self._requests: list[RecordedRequest] = []
        self._topups: list[Decimal] = []
        self._transactions: list[JSON] = []
        self._auto_recharge: JSON = {
            "enabled": False,
            "id": "1524126400473204723",
            "invoice_enabled": False,
            "preference": "credit_paypal",
            "recharge_amount": "100.00",
            "record_type": "auto_recharge_pref",
            "threshold_amount": "50.00",
        }

    def __repr__(self) -> str:
        return f"SimAccount(currency={self.currency!r}, revoked={self._revoked})"

    def now(self) -> datetime:
        """The account clock's current time, as an aware UTC datetime."""
        return _as_utc(self.clock())

    # balance

    def set_balance(
        self,
        balance: str | Decimal,
        *,
        credit_limit: str | Decimal | None = None,
        pending: str | Decimal | None = None,
    ) -> None:
        """Set the balance (and optionally credit limit / pending); removes any balance script."""
        with self._lock:
            self._balance = _decimal(balance)
            self._script = None
            if credit_limit is not None:
                self._credit_limit = _decimal(credit_limit)
            if pending is not None:
                self._pending = _decimal(pending)

    def set_balance_script(self, fn: BalanceScript | None) -> None:
        """Compute the balance as `fn(now)` plus any top-ups made since; None = static again.

        Removing a script freezes the balance at its last scripted value.
        """
        current = self.balance().balance if fn is None else None
        with self._lock:
            if current is not None and self._script is not None:
                self._balance = current
            self._script = fn
            self._script_offset = Decimal(0)

    def balance(self) -> Balance:
        """The balance as `GET /balance` would serve it now (available = balance + limit)."""
        now = self.now()
        with self._lock:
            script, offset, static = self._script, self._script_offset, self._balance
            limit, pending = self._credit_limit, self._pending
        value = static if script is None else _decimal(script(now)) + offset
        return Balance(
            balance=value.quantize(_CENT),
            available_credit=(value + limit).quantize(_CENT),
            credit_limit=limit.quantize(_CENT),
            pending=pending.quantize(_CENT),
            currency=self.currency,
        )

    def set_auto_recharge(
        self, *, enabled: bool, threshold_amount: str = "50.00", recharge_amount: str = "100.00"
    ) -> None:
        """Change what `GET /payment/auto_recharge_prefs` serves."""
        with self._lock:
            self._auto_recharge.update(
                enabled=enabled, threshold_amount=threshold_amount, recharge_amount=recharge_amount
            )

    def auto_recharge_prefs(self) -> JSON:
        """The auto-recharge preference object as served (a copy)."""
        with self._lock:
            return dict(self._auto_recharge)

    # audit events

    def add_audit_event(
        self,
        *,
        created_at: datetime | None = None,
        visible_at: datetime | None = None,
        change_type: str = "update",
        change_made_by: str = "account_owner",
        user_id: str | None = None,
        resource_id: str | None = None,
        alternate_resource_id: str | None = None,
        record_type: str = "audit_event",
        changes: list[dict[str, Any]] | None = None,
        id: str | None = None,
    ) -> JSON:
        """Store an audit event; return its JSON as served (a copy).

        - `created_at` defaults to the clock; `visible_at` (default `created_at`) delays
          listing until the clock reaches it, modelling eventual consistency.
        - `user_id` defaults to the account owner, `resource_id` to a new UUID, `id` too.
        - `record_type` is what the API puts there: `audit_event` (the spec's example).
        """
        created = _as_utc(created_at) if created_at is not None else self.now()
        visible = _as_utc(visible_at) if visible_at is not None else created
        event: JSON = {
            "id": id or str(uuid.uuid4()),
            "record_type": record_type,
            "change_type": change_type,
            "change_made_by": change_made_by,
            "changes": copy.deepcopy(changes),
            "created_at": iso(created),
            "organization_id": ORGANIZATION_ID,
            "resource_id": resource_id or str(uuid.uuid4()),
            "alternate_resource_id": alternate_resource_id,
            "user_id": user_id or OWNER_USER_ID,
        }
        with self._lock:
            self._events.append(_StoredEvent(created, visible, event))
            self._version += 1
        return copy.deepcopy(event)

    def add_audit_backlog(
        self,
        count: int,
        *,
        start: datetime,
        end: datetime,
        change_made_by: str = "account_owner",
        user_id: str | None = None,
        record_type: str = "audit_event",
    ) -> None:
        """Store `count` audit events created evenly over [start, end), visible at once.

        For big backlogs: no copies are made and nothing is returned. Each event has a new
        id and resource id and one `changes` entry. Raises ValueError for a negative count.
        """
        step = _spread(count, start, end)
        first = _as_utc(start)
        events = []
        for i in range(count):
            created = first + step * i
            event: JSON = {
                "id": str(uuid.uuid4()),
                "record_type": record_type,
                "change_type": "update",
                "change_made_by": change_made_by,
                "changes": [{"field": "webhook_url", "from": None, "to": f"https://x/{i}"}],
                "created_at": iso(created),
                "organization_id": ORGANIZATION_ID,
                "resource_id": str(uuid.uuid4()),
                "alternate_resource_id": None,
                "user_id": user_id or OWNER_USER_ID,
            }
            events.append(_StoredEvent(created, created, event))
        with self._lock:
            self._events.extend(events)
            self._version += 1

    # webhook deliveries

    def add_webhook_delivery(
        self,
        *,
        status: str = "failed",
        started_at: datetime | None = None,
        event_type: str = "message.finalized",
        url: str = "https://hooks.example.com/telnyx",
        http_status: int | None = 500,
        error_detail: str | None = None,
        id: str | None = None,
    ) -> JSON:
        """Store a webhook delivery with one attempt; return its JSON as served (a copy).

        A failed attempt with an HTTP response carries `errors: [75499]` and the response
        body `error_detail`; without one (`http_status=None`) it carries an error object
        `{code: "75001", title, detail: error_detail}`, as in the spec's examples. A
        delivered attempt answers `http_status` when below 400, else 200.
        Raises ValueError for a status other than delivered / failed.
        """
        if status not in DELIVERY_STATUSES:
            raise ValueError(f"status must be one of {DELIVERY_STATUSES}")
        started = _as_utc(started_at) if started_at is not None else self.now()
        attempt = _attempt(status, started, url, http_status, error_detail)
        delivery = _delivery(id or str(uuid.uuid4()), status, started, event_type, attempt)
        with self._lock:
            self._deliveries.append(_StoredDelivery(started, delivery))
            self._version += 1
        return copy.deepcopy(delivery)

    def add_webhook_backlog(
        self,
        count: int,
        *,
        start: datetime,
        end: datetime,
        status: str = "failed",
        event_type: str = "message.finalized",
        url: str = "https://hooks.example.com/telnyx",
        http_status: int | None = 500,
    ) -> None:
        """Store `count` deliveries started evenly over [start, end), each with one attempt.

        For big backlogs: no copies are made and nothing is returned. Raises ValueError
        for a negative count or an unknown status.
        """
        if status not in DELIVERY_STATUSES:
            raise ValueError(f"status must be one of {DELIVERY_STATUSES}")
        step = _spread(count, start, end)
        first = _as_utc(start)
        deliveries = []
        for i in range(count):
            started = first + step * i
            attempt = _attempt(status, started, url, http_status, None)
            delivery = _delivery(str(uuid.uuid4()), status, started, event_type, attempt)
            deliveries.append(_StoredDelivery(started, delivery))
        with self._lock:
            self._deliveries.extend(deliveries)
            self._version += 1

    # faults and auth

    def inject_fault(self, path: str, fault: Fault, *, times: int = 1) -> None:
        """Give the next `times` requests to `path` (relative to /v2) `fault`; -1 = until cleared.

        Faults on one path queue up in injection order. Raises ValueError for bad `times`.
        """
        if times == 0 or times < -1:
            raise ValueError("times must be positive or -1")
        with self._lock:
            self._faults.append(_FaultSlot(path, fault, times))

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._faults.clear()

    def revoke_key(self) -> None:
        """From now on every request is answered 401."""
        with self._lock:
            self._revoked = True

    # what the server saw

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def request_count(self, path: str | None = None, *, method: str | None = None) -> int:
        """How many requests arrived (for `path` relative to /v2 and `method`, when given)."""
        with self._lock:
            return sum(
                1
                for r in self._requests
                if (path is None or r.path == path) and (method is None or r.method == method)
            )

    @property
    def topups(self) -> list[Decimal]:
        """Amounts of successful top-up POSTs, oldest first (a copy)."""
        with self._lock:
            return list(self._topups)

    @property
    def transactions(self) -> list[JSON]:
        """The `data` objects returned by successful top-ups, oldest first (copies)."""
        with self._lock:
            return copy.deepcopy(self._transactions)

    # used by the request handler

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for slot in self._faults:
                if slot.path == path:
                    if slot.remaining > 0:
                        slot.remaining -= 1
                    if slot.remaining == 0:
                        self._faults.remove(slot)
                    return slot.fault
        return None

    def _authorized(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        with self._lock:
            revoked, key = self._revoked, self._api_key
        valid = hmac.compare_digest(token.strip().encode(), key.encode())
        return not revoked and scheme.lower() == "bearer" and valid

    def _listed(
        self, endpoint: str, key: tuple[Any, ...], build: Callable[[_Snapshot], list[JSON]]
    ) -> list[JSON]:
        """The filtered, sorted items of one list query; the last one per endpoint is
        cached, so that a big backlog read page by page is not sorted for every page."""
        snapshot = self._snapshot()
        with self._lock:
            full_key = (self._version, len(snapshot.events), *key)
            cached = self._listing.get(endpoint)
            if cached is not None and cached[0] == full_key:
                return cached[1]
        items = build(snapshot)
        with self._lock:
            self._listing[endpoint] = (full_key, items)
        return items

    def _snapshot(self) -> _Snapshot:
        now = self.now()
        with self._lock:
            events = tuple(e for e in self._events if e.visible_at <= now)
            return _Snapshot(now, events, tuple(self._deliveries))

    def _topup(self, amount: Decimal) -> JSON:
        now = self.now()
        transaction: JSON = {
            "amount_cents": int(amount * 100),
            "amount_currency": self.currency,
            "auto_recharge": False,
            "created_at": iso(now),
            "id": str(uuid.uuid4()),
            "processor_status": "submitted_for_settlement",
            "record_type": "transaction",
            "transaction_processing_type": "stored_payment",
        }
        with self._lock:
            if self._script is None:
                self._balance += amount
            else:
                self._script_offset += amount
            self._topups.append(amount)
            self._transactions.append(transaction)
        return copy.deepcopy(transaction)


def _delivery(id: str, status: str, started: datetime, event_type: str, attempt: JSON) -> JSON:
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


def _spread(count: int, start: datetime, end: datetime) -> timedelta:
    if count < 0:
        raise ValueError("count must not be negative")
    return (_as_utc(end) - _as_utc(start)) / max(count, 1)


def _attempt(
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


# --- endpoints ----------------------------------------------------------------------------


class _ApiError(Exception):
    """Aborts a request with a Telnyx error response."""

    def __init__(self, status: int, detail: str | None = None, *, code: str | None = None):
        super().__init__(detail)
        self.status = status
        self.body = error_body(status, detail=detail, code=code)


@dataclass(frozen=True, slots=True)
class _Page:
    number: int
    size: int


def _int_param(query: Mapping[str, str], name: str, default: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise _ApiError(422, f"{name} must be an integer") from None


def _page(query: Mapping[str, str]) -> _Page:
    number = _int_param(query, "page[number]", 1)
    size = _int_param(query, "page[size]", DEFAULT_PAGE_SIZE)
    if number < 1:
        raise _ApiError(422, "page[number] must be at least 1")
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise _ApiError(422, f"page[size] must be between 1 and {MAX_PAGE_SIZE}")
    return _Page(number, size)


def _paginate(items: list[JSON], page: _Page) -> JSON:
    start = (page.number - 1) * page.size
    meta = {
        "page_number": page.number,
        "page_size": page.size,
        "total_pages": max(1, math.ceil(len(items) / page.size)),
        "total_results": len(items),
    }
    return {"data": items[start : start + page.size], "meta": meta}


def _time_param(query: Mapping[str, str], name: str) -> datetime | None:
    text = query.get(name)
    if text is None:
        return None
    try:  # an unencoded "+00:00" arrives as " 00:00"
        return _as_utc(datetime.fromisoformat(text.strip().replace(" ", "+")))
    except ValueError:
        raise _ApiError(422, f"{name} must be an ISO 8601 date-time") from None


def _get_balance(account: SimAccount, request: RecordedRequest) -> JSON:
    value = account.balance()
    data = {
        "balance": _money(value.balance),
        "available_credit": _money(value.available_credit),
        "credit_limit": _money(value.credit_limit),
        "pending": _money(value.pending),
        "currency": value.currency,
        "record_type": "balance",
    }
    return {"data": data}


def _list_audit_events(account: SimAccount, request: RecordedRequest) -> JSON:
    query = request.query
    page = _page(query)
    after = _time_param(query, "filter[created_after]")
    before = _time_param(query, "filter[created_before]")
    order = query.get("sort", "desc")
    if order not in ("asc", "desc"):
        raise _ApiError(422, "sort must be asc or desc")

    def build(snapshot: _Snapshot) -> list[JSON]:
        events = [
            e
            for e in snapshot.events
            if (after is None or e.created_at > after) and (before is None or e.created_at < before)
        ]
        events.sort(key=lambda e: (e.created_at, e.json["id"]), reverse=order == "desc")
        return [e.json for e in events]

    return _paginate(account._listed("audit", (after, before, order), build), page)


def _list_webhook_deliveries(account: SimAccount, request: RecordedRequest) -> JSON:
    query = request.query
    page = _page(query)
    status = query.get("filter[status][eq]")
    if status is not None and status not in DELIVERY_STATUSES:
        raise _ApiError(422, "filter[status][eq] must be delivered or failed")
    gte = _time_param(query, "filter[started_at][gte]")
    lte = _time_param(query, "filter[started_at][lte]")
    types_text = query.get("filter[event_type]")
    types = {t.strip() for t in types_text.split(",")} if types_text is not None else None

    def build(snapshot: _Snapshot) -> list[JSON]:
        deliveries = [
            d
            for d in snapshot.deliveries
            if (status is None or d.json["status"] == status)
            and (gte is None or d.started_at >= gte)
            and (lte is None or d.started_at <= lte)
            and (types is None or d.json["webhook"]["event_type"] in types)
        ]
        deliveries.sort(key=lambda d: (d.started_at, d.json["id"]), reverse=True)
        return [d.json for d in deliveries]

    key = (status, gte, lte, None if types is None else tuple(sorted(types)))
    return _paginate(account._listed("webhooks", key, build), page)


def _get_auto_recharge_prefs(account: SimAccount, request: RecordedRequest) -> JSON:
    return {"data": account.auto_recharge_prefs()}


def _post_topup(account: SimAccount, request: RecordedRequest) -> JSON:
    try:
        payload = json.loads(request.body or b"null")
    except ValueError:
        raise _ApiError(400, "The request body is not valid JSON.") from None
    amount = payload.get("amount") if isinstance(payload, dict) else None
    if not isinstance(amount, str) or not _AMOUNT_RE.fullmatch(amount):
        raise _ApiError(422, 'Amount must include dollars and cents (e.g. "120.00").', code="10027")
    value = Decimal(amount)  # the pattern admits only plain decimals
    if value <= 0:
        raise _ApiError(422, "Amount must be greater than zero.", code="10027")
    return {"data": account._topup(value)}


_Endpoint = Callable[[SimAccount, RecordedRequest], JSON]
_ROUTES: dict[tuple[str, str], _Endpoint] = {
    ("GET", "/balance"): _get_balance,
    ("GET", "/audit_events"): _list_audit_events,
    ("GET", "/webhook_deliveries"): _list_webhook_deliveries,
    ("GET", "/payment/auto_recharge_prefs"): _get_auto_recharge_prefs,
    ("POST", "/payment/stored_payment_transactions"): _post_topup,
}
_KNOWN_PATHS = frozenset(path for _, path in _ROUTES)


# --- HTTP plumbing ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _json_response(status: int, payload: JSON) -> _Response:
    return _Response(status, json.dumps(payload).encode())


def _fault_response(fault: Fault) -> _Response:
    status = 200 if fault.kind == "malformed" else fault.code
    return _Response(status, fault.body.encode(), fault.headers)


def _route(account: SimAccount, request: RecordedRequest, under_prefix: bool) -> _Response:
    if not account._authorized(request.headers.get("authorization")):
        raise _ApiError(401)
    endpoint = _ROUTES.get((request.method, request.path)) if under_prefix else None
    if endpoint is not None:
        return _json_response(200, endpoint(account, request))
    if under_prefix and request.path in _KNOWN_PATHS:
        raise _ApiError(405)
    raise _ApiError(404)


def _hold(server: _SimHTTPServer, fault: Fault) -> None:
    """Wait for the fault's gate, the server's stop or the time limit, whichever is first."""
    gate = fault.gate
    if gate is None:
        return
    give_up = time.monotonic() + fault.seconds
    while not gate.is_set() and not server.stopping.is_set():
        left = give_up - time.monotonic()
        if left <= 0:
            return
        gate.wait(min(left, 0.05))


def _answer(
    server: _SimHTTPServer, request: RecordedRequest, under_prefix: bool
) -> _Response | None:
    """Apply a pending fault, else handle normally; None = drop the connection."""
    account = server.account
    fault = account._take_fault(request.path) if under_prefix else None
    if fault is not None and fault.kind == "disconnect":
        return None
    if fault is not None and fault.kind == "delay":
        server.stopping.wait(fault.seconds)
    elif fault is not None and fault.kind == "hold":
        _hold(server, fault)
    elif fault is not None:
        return _fault_response(fault)
    try:
        return _route(account, request, under_prefix)
    except _ApiError as exc:
        return _json_response(exc.status, exc.body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: _SimHTTPServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self) -> None:
        raw_path = urlsplit(self.path).path
        under_prefix = raw_path.startswith(API_PREFIX + "/")
        request = self._read_request(raw_path, under_prefix)
        self.server.account._record(request)
        try:
            response = _answer(self.server, request, under_prefix)
        except Exception as exc:
            self.server.handler_errors.append(exc)
            response = _json_response(500, error_body(500))
        if response is None:
            self.close_connection = True
            return
        self._write(response)

    def _read_request(self, raw_path: str, under_prefix: bool) -> RecordedRequest:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        return RecordedRequest(
            method=self.command,
            path=raw_path[len(API_PREFIX) :] if under_prefix else raw_path,
            query=dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            raw_path=raw_path,
            received_at=self.server.account.now(),
        )

    def _write(self, response: _Response) -> None:
        self.send_response(response.status)
        names = {name.lower() for name, _ in response.headers}
        for name, value in response.headers:
            self.send_header(name, value)
        if "content-type" not in names:
            self.send_header("Content-Type", _JSON_TYPE)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)


class _SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], account: SimAccount, errors: list[BaseException]
    ) -> None:
        self.account = account
        self.stopping = threading.Event()
        self.handler_errors = errors
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() resolves the host name (getfqdn), which can be slow.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = HOST, int(self.server_address[1])

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, ConnectionError | TimeoutError):
            self.handler_errors.append(exc)


class SimServer:
    """Serves a `SimAccount` on http://127.0.0.1:PORT/v2 from a background thread.

    Use as a context manager, or call `start()` / `stop()`. `port=0` picks a free port.
    """

    def __init__(self, account: SimAccount, *, port: int = 0) -> None:
        self.account = account
        self._requested_port = port
        self._httpd: _SimHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._errors: list[BaseException] = []

    def __repr__(self) -> str:
        state = f"port={self.port}" if self._httpd is not None else "stopped"
        return f"SimServer({state})"

    def start(self) -> None:
        """Bind and serve in a daemon thread. Raises RuntimeError if already running."""
        if self._httpd is not None:
            raise RuntimeError("the simulator is already running")
        httpd = _SimHTTPServer((HOST, self._requested_port), self.account, self._errors)
        thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, name="telnyx-sim"
        )
        thread.daemon = True
        thread.start()
        self._httpd, self._thread = httpd, thread

    def stop(self) -> None:
        """Stop serving, wake delayed requests and close the socket; a no-op when stopped."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        httpd.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
        self._httpd = self._thread = None

    @property
    def port(self) -> int:
        """The bound port. Raises RuntimeError when not running."""
        return self._running().server_port

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v2`. Raises RuntimeError when not running."""
        return f"http://{HOST}:{self.port}{API_PREFIX}"

    @property
    def handler_errors(self) -> list[BaseException]:
        """Unexpected exceptions raised while handling requests (should stay empty)."""
        return list(self._errors)

    def _running(self) -> _SimHTTPServer:
        if self._httpd is None:
            raise RuntimeError("the simulator is not running")
        return self._httpd

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

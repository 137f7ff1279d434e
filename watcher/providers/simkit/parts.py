"""The simulators' data: faults, recorded requests, responses, exact JSON, the account base."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl

HOST = "127.0.0.1"
JSON_TYPE = "application/json"

Clock = Callable[[], datetime]
Headers = tuple[tuple[str, str], ...]
FaultKind = Literal["status", "delay", "malformed", "disconnect", "hold"]
ResetForm = Literal["seconds", "epoch_s", "epoch_ms"]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def as_utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime (a naive one is taken to be UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """Format a datetime as ISO 8601 UTC with `Z` (microseconds only when non-zero)."""
    utc = as_utc(moment).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds") + "Z"


def utc_now() -> datetime:
    """The real clock, as an aware UTC datetime (the default clock of an account)."""
    return datetime.now(UTC)


def json_bytes(payload: Any) -> bytes:
    """Serialize `payload` as JSON, writing every `Decimal` as the exact number it holds.

    `Decimal("40.12345678")` becomes `40.12345678` (never via float, never in exponent
    form). Raises ValueError for a NaN or infinite Decimal, which JSON cannot express.
    """
    return _json_text(payload).encode()


def _json_text(value: Any) -> str:
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))}: {_json_text(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_json_text(v) for v in value) + "]"
    return json.dumps(value)


def _decimal_text(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"{value} cannot be written as a JSON number")
    return format(value, "f")


# --- faults -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The rate-limit headers of a 429: `Retry-After` plus `X-RateLimit-*`.

    `X-RateLimit-Reset` says when the window resets, `after_s` seconds from now, in the
    form `reset`: `seconds` (seconds until), `epoch_s` or `epoch_ms` (Unix time).
    """

    after_s: int = 1
    reset: ResetForm = "seconds"
    limit: int = 30
    remaining: int = 0

    def headers(self, now: datetime) -> Headers:
        """The headers to send with an answer given at `now`."""
        return (
            ("Retry-After", str(self.after_s)),
            ("X-RateLimit-Limit", str(self.limit)),
            ("X-RateLimit-Remaining", str(self.remaining)),
            ("X-RateLimit-Reset", self.reset_value(now)),
        )

    def reset_value(self, now: datetime) -> str:
        """The `X-RateLimit-Reset` value for an answer given at `now`."""
        if self.reset == "seconds":
            return str(self.after_s)
        at = as_utc(now) + timedelta(seconds=self.after_s)
        epoch_ms = int(at.timestamp() * 1000)
        return str(epoch_ms if self.reset == "epoch_ms" else epoch_ms // 1000)


@dataclass(frozen=True, slots=True)
class Fault:
    """A scripted misbehaviour for one request; build it with the factory classmethods.

    For `status`, `body=None` lets the provider write its own error body for `code` (in
    the shape of the path's host); `content_type=None` takes the provider's type.
    """

    kind: FaultKind
    code: int = 200
    headers: Headers = ()
    body: str | None = None
    content_type: str | None = None
    rate_limit: RateLimit | None = None
    seconds: float = 0.0
    gate: threading.Event | None = field(default=None, compare=False, repr=False)

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
    ) -> Fault:
        """Answer with HTTP `code`; `body` is JSON (a dict) or raw text, None = provider's.

        With `headers=None`, a 429 carries `RateLimit(after_s, reset)` headers (the epoch
        forms count from the account clock at arrival); given headers are sent as they
        are and replace those defaults entirely.
        """
        limit = RateLimit(after_s, reset) if code == 429 and headers is None else None
        text = json.dumps(body) if isinstance(body, dict) else body
        pairs = tuple((headers or {}).items())
        return cls("status", code, pairs, text, content_type, limit)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait `seconds` (cut short when the server stops), then answer normally."""
        if seconds < 0:
            raise ValueError("delay must not be negative")
        return cls(kind="delay", seconds=seconds)

    @classmethod
    def malformed(cls, body: str = '{"value": ') -> Fault:
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
        `request_count(path)` to see that it arrived, act, and then set `release`.
        """
        if seconds < 0:
            raise ValueError("hold must not be negative")
        return cls(kind="hold", seconds=seconds, gate=release)


@dataclass(slots=True)
class _FaultSlot:
    path: str
    fault: Fault
    remaining: int  # -1 = until cleared


class FaultTable:
    """Pending faults keyed by path; thread-safe. Faults on one path queue in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: list[_FaultSlot] = []

    def add(self, path: str, fault: Fault, times: int = 1) -> None:
        """Give the next `times` requests to `path` `fault`; -1 = until cleared.

        Raises ValueError for `times` 0 or below -1.
        """
        if times == 0 or times < -1:
            raise ValueError("times must be positive or -1")
        with self._lock:
            self._slots.append(_FaultSlot(path, fault, times))

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._slots.clear()

    def take(self, path: str) -> Fault | None:
        """The fault for one request to `path` (consuming one use of it), if any."""
        with self._lock:
            for slot in self._slots:
                if slot.path == path:
                    if slot.remaining > 0:
                        slot.remaining -= 1
                    if slot.remaining == 0:
                        self._slots.remove(slot)
                    return slot.fault
        return None


# --- requests and responses ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server received it.

    - `path`: the URL path, without the server's prefix when it has one.
    - `query`: decoded keys and values (last value wins); `query_pairs` keeps them all.
    - `headers`: names lower-cased; left out of `repr()` since they carry credentials.
    - `received_at`: the account clock when the request arrived.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str] = field(repr=False)
    body: bytes
    raw_path: str
    received_at: datetime
    query_pairs: tuple[tuple[str, str], ...] = ()

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def form(self) -> list[tuple[str, str]]:
        """The body read as `application/x-www-form-urlencoded` fields, in order."""
        return parse_qsl(self.text, keep_blank_values=True)


@dataclass(frozen=True, slots=True)
class Response:
    """An answer to send: status, body bytes, extra headers and the content type."""

    status: int
    body: bytes
    headers: Headers = ()
    content_type: str = JSON_TYPE


def json_response(status: int, payload: Any, content_type: str = JSON_TYPE) -> Response:
    """A `Response` whose body is `payload` as JSON (Decimals written exactly)."""
    return Response(status, json_bytes(payload), content_type=content_type)


class ApiError(Exception):
    """Raised by a route to abort a request; the routes' `error()` writes the body."""

    def __init__(self, status: int, detail: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Routes(Protocol):
    """What a provider supplies to the server: its endpoints and its error shapes."""

    def handle(self, request: RecordedRequest) -> Response:
        """Answer a request (auth included); may raise `ApiError`."""
        ...

    def error(self, request: RecordedRequest, status: int, detail: str | None) -> Response:
        """An error answer for `request` in the shape of its host."""
        ...


# --- the account base ---------------------------------------------------------------------


class SimAccountBase:
    """State every simulated account has: a clock, a fault table, the request log and a
    revoked flag. Subclasses add the provider's scripted state; all methods are
    thread-safe (subclasses may share `_lock`).

    `clock` (default: the real UTC clock) is read for `received_at` and for whatever the
    provider timestamps; `set_now()` / `advance()` replace it with a fake one.
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or utc_now
        self._lock = threading.RLock()
        self._faults = FaultTable()
        self._requests: list[RecordedRequest] = []
        self._revoked = False

    def now(self) -> datetime:
        """The account clock's current time, as an aware UTC datetime."""
        return as_utc(self.clock())

    def set_now(self, moment: datetime) -> None:
        """Stop the clock at `moment` (a naive datetime is taken to be UTC)."""
        frozen = as_utc(moment)
        self.clock = lambda: frozen

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward by `delta` and stop it there."""
        self.set_now(self.now() + delta)

    # faults and auth

    def inject_fault(self, path: str, fault: Fault, *, times: int = 1) -> None:
        """Give the next `times` requests to `path` `fault`; -1 = until cleared.

        Faults on one path queue up in injection order. Raises ValueError for bad `times`.
        """
        self._faults.add(path, fault, times)

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        self._faults.clear()

    def revoke_key(self) -> None:
        """From now on every request is answered 401."""
        with self._lock:
            self._revoked = True

    @property
    def revoked(self) -> bool:
        """Whether `revoke_key()` was called."""
        with self._lock:
            return self._revoked

    # what the server saw

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def request_count(self, path: str | None = None, *, method: str | None = None) -> int:
        """How many requests arrived (for `path` and `method`, when given)."""
        with self._lock:
            return sum(
                1
                for r in self._requests
                if (path is None or r.path == path) and (method is None or r.method == method)
            )

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _take_fault(self, path: str) -> Fault | None:
        return self._faults.take(path)

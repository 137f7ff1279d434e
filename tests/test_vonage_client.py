"""The Vonage client on an `httpx.MockTransport`: requests, parsing, the one error
classifier, retries within the deadline, redaction, and every top-up outcome.

No network, nothing of ours patched: time comes in through the client's `sleep`,
`clock` and `wall_clock` parameters.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import structlog
from pydantic import SecretStr

from watcher.core.payment import TopupOutcome
from watcher.providers.vonage.client import VonageClient
from watcher.providers.vonage.errors import VonageError, auto_reload_disabled
from watcher.providers.vonage.sim import VonageSimAccount, VonageSimServer
from watcher.providers.vonage.wire import VonageBalance, VonageSecret, VonageSubaccount
from watcher.providers.waits import reset_seconds, retry_after

KEY = "abcd1234"
SECRET = "Sup3rSECRETdoNotLeak"
TRX = "8ef2447e69604f642ae59363aa5f781b"
REST = "https://rest.vonage.test"
API = "https://api.vonage.test"
NOW = 1_800_000_000.0  # epoch seconds of the injected wall clock
MONO = 1_000.0  # the injected monotonic clock
SIM_T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)

Handler = Callable[[httpx.Request], httpx.Response]

BALANCE = {"value": 40.12345678, "autoReload": True}
LEGACY_ERROR = {"error-code": "500", "error-code-label": "internal error"}
PROBLEM = {
    "type": "https://developer.vonage.com/api-errors#throttled",
    "title": "Too Many Requests",
    "detail": "slow down",
    "instance": "bf0ca0bf927b3b52e3cb03217e1a1ddf",
}


class Recorder:
    """Records the waits the client asks for (instead of sleeping)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class FakeApi:
    """Answers each request with the next item of `script` (the last one repeats)."""

    def __init__(self, *script: httpx.Response | Exception | Handler) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        if isinstance(item, httpx.Response):
            return item
        return item(request)


def reply(
    status: int = 200,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx.Response(status, content=content, headers=headers or {})


def client_for(api: FakeApi, sleep: Recorder | None = None, **options: Any) -> VonageClient:
    return VonageClient(
        api_key=KEY,
        api_secret=SecretStr(SECRET),
        rest_url=REST,
        api_url=API,
        transport=httpx.MockTransport(api),
        sleep=sleep or Recorder(),
        clock=lambda: MONO,
        wall_clock=lambda: NOW,
        **options,
    )


def basic() -> str:
    return "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()


# ----------------------------------------------------------------------------- requests


async def test_balance_request_uses_basic_auth_and_accept_json() -> None:
    api = FakeApi(reply(body=BALANCE))
    async with client_for(api) as client:
        balance = await client.get_balance()
    request = api.requests[0]
    assert request.method == "GET"
    assert request.url == httpx.URL(f"{REST}/account/get-balance")
    assert request.headers["authorization"] == basic()
    assert request.headers["accept"] == "application/json, application/problem+json"
    assert request.headers["user-agent"].startswith("account-watcher/")
    assert balance.auto_reload is True


@pytest.mark.parametrize(
    "text",
    ["40.12345678", "10.28", "0.00000001", "1.0000000000000000000001", "123456789.12345678"],
)
async def test_balance_value_is_the_exact_decimal_of_the_json_text(text: str) -> None:
    raw = f'{{"value": {text}, "autoReload": false}}'.encode()
    async with client_for(FakeApi(reply(raw=raw))) as client:
        balance = await client.get_balance()
    assert balance.value == Decimal(text)
    assert str(balance.value) == str(Decimal(text))


async def test_settings_is_an_empty_form_post() -> None:
    body = {
        "mo-callback-url": "https://example.com/in",
        "dr-callback-url": "https://example.com/dr",
        "max-outbound-request": 30,
        "max-inbound-request": 20,
        "max-calls-per-second": 10,
    }
    api = FakeApi(reply(body=body))
    async with client_for(api) as client:
        settings = await client.read_settings()
    request = api.requests[0]
    assert request.method == "POST"
    assert request.url == httpx.URL(f"{REST}/account/settings")
    assert request.content == b""
    assert request.headers["content-length"] == "0"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert not request.url.query
    assert settings.mo_callback_url == "https://example.com/in"
    assert (settings.max_outbound_request, settings.max_inbound_request) == (30, 20)
    assert settings.max_calls_per_second == 10


async def test_secrets_are_read_from_the_api_host() -> None:
    body = {
        "_embedded": {
            "secrets": [
                {"id": "s-1", "created_at": "2018-12-03T10:07:23Z"},
                {"id": "s-2", "created_at": "2019-01-01T00:00:00"},
            ]
        }
    }
    api = FakeApi(reply(body=body))
    async with client_for(api) as client:
        secrets = await client.list_secrets()
    assert api.requests[0].url == httpx.URL(f"{API}/accounts/{KEY}/secrets")
    assert secrets == [
        VonageSecret("s-1", datetime(2018, 12, 3, 10, 7, 23, tzinfo=UTC)),
        VonageSecret("s-2", datetime(2019, 1, 1, tzinfo=UTC)),
    ]


async def test_subaccounts_shared_balance_is_none() -> None:
    body = {
        "total_balance": 250.5,
        "total_credit_limit": 0,
        "_embedded": {
            "primary_account": {"api_key": KEY, "name": "main", "balance": 150.25},
            "subaccounts": [
                {
                    "api_key": "bbe6222f",
                    "name": "A",
                    "balance": 100.25,
                    "credit_limit": -100.25,
                    "suspended": False,
                    "use_primary_account_balance": False,
                },
                {
                    "api_key": "ccf7333a",
                    "name": "B",
                    "balance": None,
                    "credit_limit": None,
                    "suspended": True,
                    "use_primary_account_balance": True,
                },
            ],
        },
    }
    api = FakeApi(reply(body=body))
    async with client_for(api) as client:
        result = await client.list_subaccounts()
    assert api.requests[0].url == httpx.URL(f"{API}/accounts/{KEY}/subaccounts")
    assert result.total_balance == Decimal("250.5")
    assert result.primary is not None and result.primary.balance == Decimal("150.25")
    assert result.subaccounts == [
        VonageSubaccount("bbe6222f", "A", Decimal("100.25"), Decimal("-100.25"), False, False),
        VonageSubaccount("ccf7333a", "B", None, None, True, True),
    ]


def audit_page(number: int, total: int, *ids: Any) -> dict[str, Any]:
    events = [
        {"id": i, "event_type": "ACCOUNT_SECRET_CREATE", "created_at": "2026-11-23T10:05:00"}
        for i in ids
    ]
    return {
        "_embedded": {"events": events},
        "page": {"size": 100, "totalElements": 3, "totalPages": total, "number": number},
    }


async def test_audit_pages_query_created_at_as_utc_and_ids_as_text() -> None:
    api = FakeApi(reply(body=audit_page(1, 2, "a", "b")), reply(body=audit_page(2, 2, 7)))
    since = datetime(2026, 11, 23, 10, 0, 0, 500_000, tzinfo=UTC)
    async with client_for(api) as client:
        pages = [page async for page in client.audit_event_pages(since, size=500)]
    assert [(p.number, p.last, p.total_pages) for p in pages] == [(1, False, 2), (2, True, 2)]
    assert [e.id for p in pages for e in p.items] == ["a", "b", "7"]
    event = pages[0].items[0]
    assert event.created_at == datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
    first = api.requests[0]
    assert first.url.path == "/beta/audit/events"
    assert first.url.host == "api.vonage.test"
    assert dict(first.url.params) == {
        "date_from": "2026-11-23T10:00:00",
        "size": "100",
        "page": "1",
    }
    assert api.requests[1].url.params["page"] == "2"


async def test_audit_empty_page_is_the_last() -> None:
    api = FakeApi(reply(body={"page": {"totalPages": 0, "number": 1}}))
    async with client_for(api) as client:
        pages = [page async for page in client.audit_event_pages(datetime(2026, 1, 1, tzinfo=UTC))]
    assert [(p.items, p.last) for p in pages] == [([], True)]


async def test_audit_refuses_a_naive_time() -> None:
    async with client_for(FakeApi(reply(body={}))) as client:
        with pytest.raises(ValueError, match="naive"):
            client.audit_event_pages(datetime(2026, 1, 1))


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("answer", "status", "auth", "retryable", "text"),
    [
        pytest.param(reply(500, LEGACY_ERROR), 500, False, True, "500 internal error", id="legacy"),
        pytest.param(
            reply(429, PROBLEM), 429, False, True, "Too Many Requests: slow down", id="7807"
        ),
        pytest.param(
            reply(401, {"error-code": "401", "error-code-label": "authentication failed"}),
            401,
            True,
            False,
            "401 authentication failed",
            id="401-legacy",
        ),
        pytest.param(
            reply(401, {"type": "t", "title": "Invalid credentials supplied", "instance": "i"}),
            401,
            True,
            False,
            "Invalid credentials supplied",
            id="401-7807",
        ),
        pytest.param(
            reply(403, {"type": "t", "title": "Unprovisioned", "instance": "i"}),
            403,
            True,
            False,
            "Unprovisioned",
            id="403",
        ),
        pytest.param(reply(404, raw=b"<html>nope</html>"), 404, False, False, "HTTP 404", id="404"),
        pytest.param(reply(503, raw=b""), 503, False, True, "HTTP 503", id="503-empty"),
    ],
)
async def test_one_classifier_for_both_error_shapes(
    answer: httpx.Response, status: int, auth: bool, retryable: bool, text: str
) -> None:
    api = FakeApi(answer)
    async with client_for(api, max_attempts=1) as client:
        with pytest.raises(VonageError) as caught:
            await client.get_balance()
    error = caught.value
    assert (error.status, error.auth, error.retryable) == (status, auth, retryable)
    assert text in str(error)
    assert str(error).startswith("GET /account/get-balance")
    assert "\n" not in str(error)


async def test_auth_errors_are_not_retried() -> None:
    api = FakeApi(reply(401, {"error-code": "401", "error-code-label": "authentication failed"}))
    async with client_for(api) as client:
        with pytest.raises(VonageError):
            await client.get_balance()
    assert len(api.requests) == 1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"value": NaN, "autoReload": false}', "not valid JSON"),
        (b'{"value": "lots", "autoReload": false}', "unexpected shape"),
        (b'{"autoReload": false}', "unexpected shape"),
        (b"[]", "unexpected shape"),
    ],
)
async def test_malformed_or_wrong_shaped_bodies_are_permanent(raw: bytes, message: str) -> None:
    api = FakeApi(reply(raw=raw))
    async with client_for(api) as client:
        with pytest.raises(VonageError, match=message) as caught:
            await client.get_balance()
    assert caught.value.retryable is False
    assert len(api.requests) == 1


# ----------------------------------------------------------------------------- retries


async def test_5xx_then_success_is_retried_with_backoff() -> None:
    sleep = Recorder()
    api = FakeApi(reply(502, LEGACY_ERROR), reply(503, PROBLEM), reply(body=BALANCE))
    async with client_for(api, sleep) as client:
        balance = await client.get_balance()
    assert balance.value == Decimal("40.12345678")
    assert len(api.requests) == 3 and client.requests_sent == 3
    assert len(sleep.waits) == 2 and all(0.5 <= w <= 1.5 for w in sleep.waits)


async def test_timeout_then_success_is_retried() -> None:
    api = FakeApi(httpx.ReadTimeout("slow"), reply(body=BALANCE))
    async with client_for(api) as client:
        await client.get_balance()
    assert len(api.requests) == 2


async def test_timeouts_to_the_end_raise_a_retryable_error() -> None:
    api = FakeApi(httpx.ReadTimeout("slow"))
    async with client_for(api, max_attempts=3) as client:
        with pytest.raises(VonageError, match="timed out") as caught:
            await client.get_balance()
    assert caught.value.retryable is True
    assert len(api.requests) == 3


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        pytest.param({"Retry-After": "3"}, 3.0, id="retry-after"),
        pytest.param({"X-RateLimit-Reset": "7"}, 7.0, id="reset-seconds-until"),
        pytest.param({"X-RateLimit-Reset": str(int(NOW) + 12)}, 12.0, id="reset-epoch-s"),
        pytest.param({"X-RateLimit-Reset": str(int(NOW + 9) * 1000)}, 9.0, id="reset-epoch-ms"),
        pytest.param({"X-RateLimit-Reset": str(int(NOW) - 5)}, 0.0, id="reset-past"),
        pytest.param({"Retry-After": "2", "X-RateLimit-Reset": "40"}, 2.0, id="both"),
        pytest.param({"X-RateLimit-Reset": str(int(NOW + 100) * 1000)}, 30.0, id="max-wait"),
    ],
)
async def test_429_waits_what_the_server_asks(headers: dict[str, str], wait: float) -> None:
    sleep = Recorder()
    api = FakeApi(reply(429, PROBLEM, headers=headers), reply(body=BALANCE))
    async with client_for(api, sleep) as client:
        await client.get_balance()
    assert sleep.waits == [pytest.approx(wait)]


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "12"},
        {"X-RateLimit-Reset": "12"},
        {"X-RateLimit-Reset": str(int(NOW) + 12)},
        {"X-RateLimit-Reset": str(int(NOW + 12) * 1000)},
    ],
)
async def test_a_wait_beyond_the_deadline_gives_up_at_once(headers: dict[str, str]) -> None:
    sleep = Recorder()
    api = FakeApi(reply(429, PROBLEM, headers=headers), reply(body=BALANCE))
    async with client_for(api, sleep) as client:
        with pytest.raises(VonageError) as caught:
            await client.get_balance(deadline=MONO + 5)
    assert caught.value.status == 429
    assert len(api.requests) == 1 and sleep.waits == []


async def test_no_time_left_sends_nothing() -> None:
    api = FakeApi(reply(body=BALANCE))
    async with client_for(api) as client:
        with pytest.raises(VonageError, match="budget"):
            await client.get_balance(deadline=MONO)
    assert api.requests == []


async def test_on_request_sees_every_attempt() -> None:
    seen: list[tuple[str, int | None]] = []
    api = FakeApi(httpx.ConnectError("refused"), reply(429, PROBLEM), reply(body={}))
    async with client_for(api, on_request=lambda e, s: seen.append((e, s))) as client:
        await client.list_secrets()
    endpoint = "/accounts/{api_key}/secrets"
    assert seen == [(endpoint, None), (endpoint, 429), (endpoint, 200)]


@pytest.mark.parametrize(
    ("text", "now", "seconds"),
    [
        ("30", NOW, 30.0),
        ("0", NOW, 0.0),
        (str(NOW + 60), NOW, 60.0),
        (str(int(NOW + 60) * 1000), NOW, 60.0),
        ("1769182705723", 1769182700.0, pytest.approx(5.723)),
        (str(NOW - 10), NOW, 0.0),
        ("30", None, 30.0),
        (str(NOW + 60), None, None),
        ("soon", NOW, None),
        ("-1", NOW, None),
        ("nan", NOW, None),
    ],
)
def test_reset_seconds_by_magnitude(text: str, now: float | None, seconds: object) -> None:
    assert reset_seconds(text, now) == seconds


def test_reset_instant_uses_the_date_header_without_now() -> None:
    headers = httpx.Headers(
        {"X-RateLimit-Reset": "1769182710000", "Date": "Fri, 23 Jan 2026 15:38:20 GMT"}
    )
    assert retry_after(headers) == pytest.approx(10.0)


# ----------------------------------------------------------------------------- secrets


async def test_the_secret_never_shows_in_urls_errors_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    echo = {
        "type": "t",
        "title": f"bad {SECRET}",
        "detail": f"key {KEY} token {basic()}",
        "instance": "i",
    }
    api = FakeApi(reply(500, echo), httpx.ConnectError(f"boom {SECRET}"))
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as logs:
        async with client_for(api, max_attempts=2) as client:
            with pytest.raises(VonageError) as caught:
                await client.list_secrets()
            assert SECRET not in repr(client)
    texts = [str(caught.value), repr(caught.value), caplog.text, repr(logs)]
    texts += [str(r.url) for r in api.requests]
    for text in texts:
        assert SECRET not in text
        assert basic().split()[1] not in text
    # the key is in the URL path (the API wants it there), so httpx's own debug line has
    # it; our events and errors name `{api_key}` instead
    assert all(KEY not in text for text in (texts[0], texts[1], texts[3]))
    assert all("api_secret" not in str(r.url) for r in api.requests)


# ----------------------------------------------------------------------------- top-up


def _ok() -> httpx.Response:
    return reply(body={"error-code": "200", "error-code-label": "success"})


TOPUP_CASES = [
    pytest.param(_ok(), TopupOutcome.SUCCEEDED, False, id="200-error-code-200"),
    pytest.param(
        reply(
            body={"error-code": "200", "error-code-label": "success"},
            headers={"Content-Type": "application/json"},
        ),
        TopupOutcome.SUCCEEDED,
        False,
        id="200-json",
    ),
    pytest.param(
        reply(body={"error-code": "420", "error-code-label": "x"}),
        TopupOutcome.UNKNOWN,
        False,
        id="200-other-code",
    ),
    pytest.param(reply(body={}), TopupOutcome.UNKNOWN, False, id="200-empty-object"),
    pytest.param(reply(raw=b"<html>"), TopupOutcome.UNKNOWN, False, id="200-unreadable"),
    pytest.param(reply(202, {"error-code": "200"}), TopupOutcome.UNKNOWN, False, id="202"),
    pytest.param(
        reply(401, {"error-code": "401", "error-code-label": "not auto-reload enabled"}),
        TopupOutcome.FAILED,
        True,
        id="401-not-auto-reload",
    ),
    pytest.param(
        reply(401, {"error-code": "401", "error-code-label": "authentication failed"}),
        TopupOutcome.FAILED,
        False,
        id="401-auth",
    ),
    pytest.param(
        reply(401, {"type": "t", "title": "Invalid credentials", "instance": "i"}),
        TopupOutcome.FAILED,
        False,
        id="401-7807",
    ),
    pytest.param(reply(500, LEGACY_ERROR), TopupOutcome.UNKNOWN, False, id="500"),
    pytest.param(reply(503, raw=b""), TopupOutcome.UNKNOWN, False, id="503"),
    pytest.param(
        reply(302, raw=b"", headers={"Location": "https://x.test/"}),
        TopupOutcome.UNKNOWN,
        False,
        id="302",
    ),
    pytest.param(httpx.ReadTimeout("slow"), TopupOutcome.UNKNOWN, False, id="timeout"),
    pytest.param(httpx.RemoteProtocolError("disconnected"), TopupOutcome.UNKNOWN, False, id="lost"),
    pytest.param(httpx.ReadError("reset"), TopupOutcome.UNKNOWN, False, id="read-error"),
    pytest.param(httpx.ConnectError("refused"), TopupOutcome.FAILED, False, id="refused"),
    pytest.param(
        httpx.ConnectTimeout("no route"), TopupOutcome.FAILED, False, id="connect-timeout"
    ),
]


@pytest.mark.parametrize(("answer", "outcome", "no_reload"), TOPUP_CASES)
async def test_topup_outcome_and_exactly_one_request(
    answer: httpx.Response | Exception, outcome: TopupOutcome, no_reload: bool
) -> None:
    api = FakeApi(answer, reply(body={"error-code": "200"}))  # a retry would succeed
    async with client_for(api) as client:
        result = await client.create_topup(SecretStr(TRX), timeout=5.0)
    assert result.outcome is outcome
    assert result.transaction_id is None
    assert auto_reload_disabled(result) is no_reload
    assert len(api.requests) == 1 and client.requests_sent == 1
    assert result.outcome is TopupOutcome.SUCCEEDED or result.error.startswith(
        "POST /account/top-up"
    )


async def test_topup_request_is_one_form_field_in_the_body() -> None:
    api = FakeApi(_ok())
    async with client_for(api) as client:
        result = await client.create_topup(SecretStr(TRX))
    request = api.requests[0]
    assert request.method == "POST"
    assert request.url == httpx.URL(f"{REST}/account/top-up")
    assert request.content == f"trx={TRX}".encode()
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["authorization"] == basic()
    assert TRX not in str(request.url)
    assert result.status == 200


async def test_topup_texts_never_carry_the_secret_or_the_trx() -> None:
    echo = {"error-code": "401", "error-code-label": f"authentication failed {SECRET} {TRX}"}
    async with client_for(FakeApi(reply(401, echo))) as client:
        result = await client.create_topup(SecretStr(TRX))
    for text in (result.error, result.title or "", repr(result)):
        assert SECRET not in text and TRX not in text


async def test_an_empty_trx_is_refused_before_sending() -> None:
    api = FakeApi(_ok())
    async with client_for(api) as client:
        with pytest.raises(ValueError, match="trx"):
            await client.create_topup(SecretStr(""))
    assert api.requests == []


# ----------------------------------------------------------------------------- real sockets


class LoopbackServer:
    """A real HTTP/1.1 server on 127.0.0.1 that keeps connections alive and records
    (connection number, method, path, body); `hang_up_on_post` closes the connection
    after reading a POST, without an answer (a payment whose outcome is not known)."""

    def __init__(self, *, hang_up_on_post: bool = False) -> None:
        self.hang_up_on_post = hang_up_on_post
        self.seen: list[tuple[int, str, str, bytes]] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                method, path, _ = head[0].split(" ", 2)
                fields = dict(line.lower().split(": ", 1) for line in head[1:] if ": " in line)
                body = await reader.readexactly(int(fields.get("content-length", "0")))
                self.seen.append((number, method, path, body))
                if method == "POST" and self.hang_up_on_post:
                    return
                answer = _ok_body() if method == "POST" else json.dumps(BALANCE).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


def _ok_body() -> bytes:
    return json.dumps({"error-code": "200", "error-code-label": "success"}).encode()


@contextlib.asynccontextmanager
async def serving(server: LoopbackServer) -> AsyncIterator[str]:
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        listener.close()
        await listener.wait_closed()


def real_client(url: str) -> VonageClient:
    return VonageClient(
        api_key=KEY, api_secret=SecretStr(SECRET), rest_url=url, api_url=url, timeout=5.0
    )


async def test_gets_share_a_connection_and_the_topup_opens_its_own() -> None:
    server = LoopbackServer()
    async with serving(server) as url, real_client(url) as client:
        await client.get_balance()
        await client.get_balance()
        result = await client.create_topup(SecretStr(TRX))
    assert result.outcome is TopupOutcome.SUCCEEDED
    assert [(n, m, p) for n, m, p, _ in server.seen] == [
        (1, "GET", "/account/get-balance"),
        (1, "GET", "/account/get-balance"),
        (2, "POST", "/account/top-up"),
    ]
    assert server.seen[2][3] == f"trx={TRX}".encode()


async def test_a_topup_the_server_hangs_up_on_is_unknown_and_sent_once() -> None:
    server = LoopbackServer(hang_up_on_post=True)
    async with serving(server) as url, real_client(url) as client:
        result = await client.create_topup(SecretStr(TRX))
    assert result.outcome is TopupOutcome.UNKNOWN
    assert [m for _, m, _, _ in server.seen] == ["POST"]
    assert server.connections == 1


async def test_a_topup_to_a_closed_port_is_failed() -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with real_client(f"http://127.0.0.1:{port}") as client:
        result = await client.create_topup(SecretStr(TRX))
    assert result.outcome is TopupOutcome.FAILED
    assert "nothing was sent" in result.error


# ----------------------------------------------------------------------------- simulator


async def test_every_method_against_the_vonage_simulator() -> None:
    """The client and the simulator (another engineer's reading of the same specs) agree."""
    sim_account = VonageSimAccount(
        api_key=KEY, api_secret=SECRET, clock=lambda: SIM_T0, trx=TRX, auto_reload=True
    )
    sim_account.add_audit_event(created_at=SIM_T0)
    sim_account.add_subaccount(api_key="bbe6222f", name="shared")
    with VonageSimServer(sim_account) as sim:
        async with real_client(sim.url) as client:
            balance = await client.get_balance()
            settings = await client.read_settings()
            secrets = await client.list_secrets()
            subs = await client.list_subaccounts()
            pages = [p async for p in client.audit_event_pages(SIM_T0 - timedelta(minutes=5))]
            result = await client.create_topup(SecretStr(TRX))
        assert sim.handler_errors == []
    assert balance == VonageBalance(Decimal("40.12345678"), True)
    assert settings.max_calls_per_second is not None
    assert sim_account.settings_changes == []  # the empty form changed nothing
    assert [s.id for s in secrets] == [s.id for s in sim_account.secrets()]
    assert [(s.api_key, s.balance) for s in subs.subaccounts] == [("bbe6222f", None)]
    assert [e.created_at for p in pages for e in p.items] == [SIM_T0]
    assert result.outcome is TopupOutcome.SUCCEEDED
    assert sim_account.balance() == Decimal("90.12345678")


async def test_topup_with_auto_reload_off_in_the_simulator() -> None:
    sim_account = VonageSimAccount(api_key=KEY, api_secret=SECRET, trx=TRX, auto_reload=False)
    with VonageSimServer(sim_account) as sim:
        async with real_client(sim.url) as client:
            result = await client.create_topup(SecretStr(TRX))
    assert result.outcome is TopupOutcome.FAILED and auto_reload_disabled(result)

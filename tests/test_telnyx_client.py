"""Unit tests of the Telnyx client against httpx.MockTransport fakes (no network, no patches).

Backoff waits go to a recording `sleep`, so retry tests never really sleep; the only real
wait is the 50 ms total-timeout test.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest
import structlog
from pydantic import SecretStr

from watcher.core.model import AuditChange, AuditEvent, Balance, WebhookDelivery
from watcher.providers.telnyx.client import (
    BACKOFF_INITIAL,
    BACKOFF_JITTER,
    AutoRechargePrefs,
    TelnyxClient,
    TelnyxError,
    classify,
)

KEY = "KEY01234567890abcdefSECRETdoNotLeak"
BASE_URL = "https://api.telnyx.test/v2"
SINCE = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

Handler = Callable[[httpx.Request], httpx.Response]

BALANCE_DATA = {
    "available_credit": "400.00",
    "balance": "300.00",
    "credit_limit": "100.00",
    "currency": "USD",
    "pending": "10.00",
    "record_type": "balance",
}
BALANCE_OK = {"data": BALANCE_DATA}
RATE_LIMITED = {
    "errors": [
        {
            "code": "10011",
            "title": "Too many requests",
            "detail": "You have exceeded the maximum number of allowed requests.",
        }
    ]
}


class SleepRecorder:
    """A `sleep` that records the requested waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class FakeApi:
    """A scripted Telnyx: answers each request with the next item of `script`.

    An item is a response, an exception to raise, or a handler; the last item repeats.
    Every request is recorded.
    """

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

    def params(self, index: int = 0) -> dict[str, str]:
        return dict(self.requests[index].url.params)


def reply(
    status: int = 200, body: Any = None, *, raw: bytes | None = None, **headers: str
) -> httpx.Response:
    content = raw if raw is not None else json.dumps(body).encode()
    header_items = {name.replace("_", "-"): value for name, value in headers.items()}
    return httpx.Response(status, content=content, headers=header_items)


@pytest.fixture
def sleep() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def make_client(sleep: SleepRecorder) -> Iterator[Callable[..., TelnyxClient]]:
    """Builds clients on a FakeApi; `max_wait`, `max_attempts`, `timeout` may be overridden."""

    def build(api: FakeApi, **options: Any) -> TelnyxClient:
        return TelnyxClient(
            base_url=BASE_URL,
            api_key=SecretStr(KEY),
            transport=httpx.MockTransport(api),
            sleep=sleep,
            **options,
        )

    yield build


# ----------------------------------------------------------------------------- requests


async def test_sends_bearer_key_accept_and_user_agent(make_client: Any) -> None:
    api = FakeApi(reply(body=BALANCE_OK))
    async with make_client(api) as client:
        await client.get_balance()
    request = api.requests[0]
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"].startswith("account-watcher/")
    assert request.url == httpx.URL("https://api.telnyx.test/v2/balance")


async def test_audit_query_has_filter_sort_and_page_params(make_client: Any) -> None:
    api = FakeApi(reply(body={"data": [], "meta": {"page_number": 1, "total_pages": 1}}))
    after = datetime(2026, 11, 23, 12, 0, 0, 999_999, tzinfo=timezone(timedelta(hours=2)))
    async with make_client(api) as client:
        await client.list_audit_events(created_after=after)
    assert api.requests[0].url.path == "/v2/audit_events"
    assert api.params() == {
        "filter[created_after]": "2026-11-23T10:00:00Z",
        "sort": "asc",
        "page[size]": "250",
        "page[number]": "1",
    }


async def test_webhook_query_filters_failed_and_has_no_sort(make_client: Any) -> None:
    api = FakeApi(reply(body={"data": [], "meta": {"page_number": 1, "total_pages": 0}}))
    async with make_client(api) as client:
        await client.list_failed_deliveries(started_gte=SINCE)
    assert api.requests[0].url.path == "/v2/webhook_deliveries"
    assert api.params() == {
        "filter[status][eq]": "failed",
        "filter[started_at][gte]": "2026-11-23T10:00:00Z",
        "page[size]": "250",
        "page[number]": "1",
    }
    assert "sort" not in api.requests[0].url.query.decode()


@pytest.mark.parametrize(("asked", "sent"), [(1000, "250"), (251, "250"), (10, "10"), (0, "1")])
async def test_page_size_is_kept_within_1_to_250(make_client: Any, asked: int, sent: str) -> None:
    api = FakeApi(reply(body={"data": [], "meta": {"page_number": 1, "total_pages": 1}}))
    async with make_client(api) as client:
        await client.list_audit_events(created_after=SINCE, page_size=asked)
    assert api.params()["page[size]"] == sent


async def test_count_deliveries_is_one_request_without_status_filter(make_client: Any) -> None:
    meta = {"page_number": 1, "page_size": 1, "total_pages": 412, "total_results": 412}
    api = FakeApi(reply(body={"data": [{"id": "x", "extra": True}], "meta": meta}))
    async with make_client(api) as client:
        total = await client.count_deliveries(started_gte=SINCE)
        assert client.requests_sent == 1
    assert total == 412
    assert len(api.requests) == 1
    assert api.params() == {"filter[started_at][gte]": "2026-11-23T10:00:00Z", "page[size]": "1"}


async def test_count_deliveries_without_total_is_an_error(make_client: Any) -> None:
    api = FakeApi(reply(body={"data": [], "meta": {"page_number": 1}}))
    async with make_client(api) as client:
        with pytest.raises(TelnyxError, match="total_results") as caught:
            await client.count_deliveries(started_gte=SINCE)
    assert not caught.value.retryable


async def test_naive_datetime_is_refused_before_any_request(make_client: Any) -> None:
    api = FakeApi(reply(body={"data": []}))
    async with make_client(api) as client:
        with pytest.raises(ValueError, match="naive"):
            await client.list_audit_events(created_after=datetime(2026, 11, 23, 10, 0))
    assert api.requests == []


# ----------------------------------------------------------------------------- pagination


def paged(pages: list[list[dict[str, Any]]], *, page_size: int = 250) -> Handler:
    """A handler serving `pages` by page[number] with Telnyx's meta block."""

    def handle(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page[number]"])
        meta = {
            "page_number": number,
            "page_size": page_size,
            "total_pages": len(pages),
            "total_results": sum(len(p) for p in pages),
        }
        return reply(body={"data": pages[number - 1], "meta": meta})

    return handle


def audit_item(n: int) -> dict[str, Any]:
    return {"id": f"ev-{n}", "created_at": f"2026-11-23T10:00:{n:02d}Z", "unknown_field": n}


async def test_audit_pagination_reads_three_pages_then_stops(make_client: Any) -> None:
    api = FakeApi(paged([[audit_item(1), audit_item(2)], [audit_item(3)], [audit_item(4)]]))
    async with make_client(api) as client:
        events = await client.list_audit_events(created_after=SINCE)
        assert client.requests_sent == 3
    assert [e.id for e in events] == ["ev-1", "ev-2", "ev-3", "ev-4"]
    assert [api.params(i)["page[number]"] for i in range(3)] == ["1", "2", "3"]
    assert {api.params(i)["page[size]"] for i in range(3)} == {"250"}


async def test_webhook_pagination_reads_three_pages_then_stops(make_client: Any) -> None:
    def delivery(n: int) -> dict[str, Any]:
        return {"id": f"d-{n}", "started_at": "2026-11-23T10:00:00Z", "status": "failed"}

    api = FakeApi(paged([[delivery(1)], [delivery(2)], [delivery(3)]]))
    async with make_client(api) as client:
        deliveries = await client.list_failed_deliveries(started_gte=SINCE)
    assert [d.id for d in deliveries] == ["d-1", "d-2", "d-3"]
    assert [api.params(i)["page[number]"] for i in range(3)] == ["1", "2", "3"]
    assert all(api.params(i)["page[size]"] == "250" for i in range(3))


async def test_failed_delivery_pages_resume_at_a_page_with_a_fixed_upper_bound(
    make_client: Any,
) -> None:
    def delivery(n: int) -> dict[str, Any]:
        return {"id": f"d-{n}", "started_at": "2026-11-23T10:00:00Z", "status": "failed"}

    api = FakeApi(paged([[delivery(1)], [delivery(2)], [delivery(3)], [delivery(4)]]))
    until = SINCE + timedelta(minutes=30, microseconds=5)
    async with make_client(api) as client:
        pages = client.failed_delivery_pages(started_gte=SINCE, started_lte=until, first_page=2)
        seen = [(p.number, [d.id for d in p.items], p.last, p.total_pages) async for p in pages]
    assert seen == [(2, ["d-2"], False, 4), (3, ["d-3"], False, 4), (4, ["d-4"], True, 4)]
    # the upper bound is rounded up: a delivery started at 10:30:00.000001 is in the range
    assert {api.params(i)["filter[started_at][lte]"] for i in range(3)} == {"2026-11-23T10:30:01Z"}
    assert {api.params(i)["filter[started_at][gte]"] for i in range(3)} == {"2026-11-23T10:00:00Z"}


async def test_audit_pages_stop_when_the_caller_stops(make_client: Any) -> None:
    api = FakeApi(paged([[audit_item(1)], [audit_item(2)], [audit_item(3)]]))
    async with make_client(api) as client:
        async for page in client.audit_event_pages(created_after=SINCE):
            assert [e.id for e in page.items] == ["ev-1"]
            break
    assert len(api.requests) == 1


async def test_first_page_below_one_is_refused(make_client: Any) -> None:
    api = FakeApi(paged([[audit_item(1)]]))
    async with make_client(api) as client:
        with pytest.raises(ValueError, match="first_page"):
            async for _ in client.audit_event_pages(created_after=SINCE, first_page=0):
                pass
    assert api.requests == []


@pytest.mark.parametrize(
    ("body", "expected_ids"),
    [
        pytest.param({"data": [audit_item(1)]}, ["ev-1"], id="no-meta"),
        pytest.param(
            {"data": [], "meta": {"page_number": 1, "total_pages": 9}}, [], id="empty-page"
        ),
        pytest.param(
            {"data": [audit_item(1)], "meta": {"page_number": 4, "total_pages": 4}},
            ["ev-1"],
            id="server-says-last",
        ),
    ],
)
async def test_pagination_stops_on_missing_meta_empty_page_or_last_number(
    make_client: Any, body: dict[str, Any], expected_ids: list[str]
) -> None:
    api = FakeApi(reply(body=body))
    async with make_client(api) as client:
        events = await client.list_audit_events(created_after=SINCE)
    assert [e.id for e in events] == expected_ids
    assert len(api.requests) == 1


# ----------------------------------------------------------------------------- parsing


async def test_balance_is_parsed_to_exact_decimals_ignoring_unknown_fields(
    make_client: Any,
) -> None:
    data = {**BALANCE_DATA, "balance": "0.10", "pending": "0.000001", "new_field": {"x": 1}}
    api = FakeApi(reply(body={"data": data, "also_new": [1, 2]}))
    async with make_client(api) as client:
        balance = await client.get_balance()
    assert balance == Balance(
        balance=Decimal("0.10"),
        available_credit=Decimal("400.00"),
        credit_limit=Decimal("100.00"),
        pending=Decimal("0.000001"),
        currency="USD",
    )
    assert str(balance.balance) == "0.10"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        pytest.param({**BALANCE_DATA, "balance": "abc"}, "data.balance", id="not-a-number"),
        pytest.param({**BALANCE_DATA, "balance": "NaN"}, "data.balance", id="nan"),
        pytest.param({**BALANCE_DATA, "balance": 0.1}, "decimal string", id="json-float"),
        pytest.param({**BALANCE_DATA, "balance": None}, "data.balance", id="null"),
        pytest.param(
            {k: v for k, v in BALANCE_DATA.items() if k != "pending"}, "data.pending", id="missing"
        ),
        pytest.param("nope", "data", id="data-not-object"),
    ],
)
async def test_wrong_balance_shape_is_a_permanent_error(
    make_client: Any, data: Any, fragment: str
) -> None:
    api = FakeApi(reply(body={"data": data}))
    async with make_client(api) as client:
        with pytest.raises(TelnyxError) as caught:
            await client.get_balance()
    error = caught.value
    assert str(error).startswith("GET /balance: response has an unexpected shape")
    assert fragment in str(error)
    assert (error.retryable, error.auth, error.status) == (False, False, 200)
    assert len(api.requests) == 1


@pytest.mark.parametrize("raw", [b"<html>bad gateway</html>", b"", b'{"data": {', b"\xff\xfe"])
async def test_malformed_json_is_a_permanent_error_not_a_crash(
    make_client: Any, raw: bytes
) -> None:
    api = FakeApi(reply(raw=raw))
    async with make_client(api) as client:
        with pytest.raises(TelnyxError) as caught:
            await client.get_balance()
    assert str(caught.value) == "GET /balance: response is not valid JSON"
    assert caught.value.retryable is False


async def test_audit_event_is_mapped_to_the_model(make_client: Any) -> None:
    item = {
        "id": "550e8400-e29b-41d4-a716-446655440000",
        "created_at": "2026-11-23T12:30:00+02:00",
        "change_type": "update",
        "change_made_by": "organization_member",
        "resource_id": "r-1",
        "alternate_resource_id": None,
        "user_id": "u-1",
        "organization_id": "org-1",
        "record_type": "audit_event",
        "changes": [
            {"field": "tags", "from": ["a"], "to": ["a", "b"]},
            {"field": "enabled", "from": True, "to": None},
            {"field": "limit", "to": 12345},
        ],
    }
    api = FakeApi(reply(body={"data": [item, {"id": "e2", "created_at": "2026-11-23T10:00:00Z"}]}))
    async with make_client(api) as client:
        events = await client.list_audit_events(created_after=SINCE)
    assert events == [
        AuditEvent(
            id="550e8400-e29b-41d4-a716-446655440000",
            created_at=datetime(2026, 11, 23, 10, 30, tzinfo=UTC),
            change_type="update",
            change_made_by="organization_member",
            resource_id="r-1",
            alternate_resource_id=None,
            user_id="u-1",
            record_type="audit_event",
            changes=(
                AuditChange(field="tags", old=["a"], new=["a", "b"]),
                AuditChange(field="enabled", old=True, new=None),
                AuditChange(field="limit", old=None, new=12345),
            ),
        ),
        AuditEvent(id="e2", created_at=SINCE),
    ]
    assert events[0].created_at.tzinfo is UTC


async def test_audit_event_without_id_is_a_permanent_error(make_client: Any) -> None:
    api = FakeApi(reply(body={"data": [{"created_at": "2026-11-23T10:00:00Z"}]}))
    async with make_client(api) as client:
        with pytest.raises(TelnyxError, match=r"data\.0\.id") as caught:
            await client.list_audit_events(created_after=SINCE)
    assert not caught.value.retryable


SPEC_ATTEMPTS = [  # the spec's example, most recent first
    {
        "errors": [75499],
        "finished_at": "2020-08-10T14:00:05.360Z",
        "http": {
            "request": {"headers": [["Accept", "*/*"]], "url": "https://typo.example.com/webhooks"},
            "response": {"body": "Oops. Not found.", "headers": [], "status": 404},
        },
        "started_at": "2020-08-10T14:00:05.004Z",
        "status": "failed",
    },
    {
        "errors": [
            {
                "code": "75001",
                "detail": "Unable to resolve the webhook URL domain name",
                "title": "Could not resolve name",
            }
        ],
        "http": {"reponse": None, "request": {"url": "https://slow.example.com/webhooks"}},
        "status": "failed",
    },
]


@pytest.mark.parametrize(
    ("attempts", "url", "http_status", "error"),
    [
        pytest.param(
            SPEC_ATTEMPTS,
            "https://typo.example.com/webhooks",
            404,
            "error 75499: Oops. Not found.",
            id="int",
        ),
        pytest.param(
            SPEC_ATTEMPTS[1:],
            "https://slow.example.com/webhooks",
            None,
            "Unable to resolve the webhook URL domain name",
            id="object-no-response",
        ),
        pytest.param(
            [{"errors": [{"code": "75002", "title": "Timed out"}], "http": {"response": None}}],
            "",
            None,
            "Timed out",
            id="object-title",
        ),
        pytest.param([], "", None, "", id="no-attempts"),
        pytest.param(None, "", None, "", id="null-attempts"),
    ],
)
async def test_webhook_delivery_is_mapped_from_the_latest_attempt(
    make_client: Any, attempts: Any, url: str, http_status: int | None, error: str
) -> None:
    item = {
        "id": "f5586561-8ff0-4291-a0ac-84fe544797bd",
        "started_at": "2020-08-10T14:00:00.000Z",
        "status": "failed",
        "record_type": "webhook_delivery",
        "webhook": {"event_type": "message.finalized", "payload": {"a": 1}},
        "attempts": attempts,
    }
    api = FakeApi(reply(body={"data": [item], "meta": {"page_number": 1, "total_pages": 1}}))
    async with make_client(api) as client:
        deliveries = await client.list_failed_deliveries(started_gte=SINCE)
    assert deliveries == [
        WebhookDelivery(
            id="f5586561-8ff0-4291-a0ac-84fe544797bd",
            started_at=datetime(2020, 8, 10, 14, 0, tzinfo=UTC),
            status="failed",
            event_type="message.finalized",
            url=url,
            http_status=http_status,
            error=error,
        )
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            {
                "enabled": True,
                "id": "1524126400473204723",
                "invoice_enabled": True,
                "preference": "credit_paypal",
                "recharge_amount": "104.00",
                "record_type": "auto_recharge_pref",
                "threshold_amount": "0.50",
            },
            AutoRechargePrefs(True, Decimal("0.50"), Decimal("104.00"), "credit_paypal"),
            id="full",
        ),
        pytest.param({"enabled": False}, AutoRechargePrefs(False, None, None, None), id="minimal"),
    ],
)
async def test_auto_recharge_prefs_are_parsed(
    make_client: Any, data: dict[str, Any], expected: AutoRechargePrefs
) -> None:
    api = FakeApi(reply(body={"data": data}))
    async with make_client(api) as client:
        prefs = await client.get_auto_recharge_prefs()
    assert prefs == expected
    assert api.requests[0].url.path == "/v2/payment/auto_recharge_prefs"


# ----------------------------------------------------------------------------- retries


@pytest.mark.parametrize(
    ("headers", "expected_wait"),
    [
        pytest.param({"Retry-After": "7"}, 7.0, id="retry-after"),
        pytest.param({"x-ratelimit-reset": "12"}, 12.0, id="x-ratelimit-reset"),
        pytest.param({"Retry-After": "3", "x-ratelimit-reset": "12"}, 3.0, id="both"),
        pytest.param(
            {
                "Retry-After": "Mon, 23 Nov 2026 14:00:20 GMT",
                "Date": "Mon, 23 Nov 2026 14:00:00 GMT",
            },
            20.0,
            id="http-date",
        ),
        pytest.param({"Retry-After": "120"}, 30.0, id="capped-at-max-wait"),
    ],
)
async def test_429_then_200_waits_what_the_server_asked(
    make_client: Any, sleep: SleepRecorder, headers: dict[str, str], expected_wait: float
) -> None:
    limited = httpx.Response(429, json=RATE_LIMITED, headers=headers)
    api = FakeApi(limited, reply(body=BALANCE_OK))
    async with make_client(api, max_wait=30.0) as client:
        balance = await client.get_balance()
        assert client.requests_sent == 2
    assert balance.available_credit == Decimal("400.00")
    assert sleep.waits == [expected_wait]


async def test_retry_after_beyond_the_deadline_raises_at_once(
    make_client: Any, sleep: SleepRecorder
) -> None:
    api = FakeApi(reply(429, RATE_LIMITED, x_ratelimit_reset="30"), reply(body=BALANCE_OK))
    async with make_client(api) as client:
        with pytest.raises(TelnyxError) as caught:
            await client.get_balance(deadline=time.monotonic() + 5)
    assert sleep.waits == []
    assert len(api.requests) == 1
    error = caught.value
    assert (error.status, error.retryable, error.retry_after, error.code) == (
        429,
        True,
        30.0,
        "10011",
    )
    assert str(error) == "GET /balance failed: HTTP 429 (10011 Too many requests)"


async def test_503_three_times_then_200_backs_off_exponentially(
    make_client: Any, sleep: SleepRecorder
) -> None:
    unavailable = reply(503, {"errors": [{"code": "10002", "title": "Service unavailable"}]})
    api = FakeApi(unavailable, unavailable, unavailable, reply(body=BALANCE_OK))
    async with make_client(api, max_attempts=4) as client:
        balance = await client.get_balance()
    assert balance.balance == Decimal("300.00")
    assert len(api.requests) == 4
    assert len(sleep.waits) == 3
    for n, wait in enumerate(sleep.waits):
        base = BACKOFF_INITIAL * 2**n
        assert base <= wait <= base + BACKOFF_JITTER


async def test_backoff_never_exceeds_max_wait(make_client: Any, sleep: SleepRecorder) -> None:
    api = FakeApi(reply(500, {}))
    async with make_client(api, max_attempts=6, max_wait=1.0) as client:
        with pytest.raises(TelnyxError):
            await client.get_balance()
    assert len(sleep.waits) == 5
    assert max(sleep.waits) <= 1.0


async def test_500_forever_gives_up_after_max_attempts(
    make_client: Any, sleep: SleepRecorder
) -> None:
    api = FakeApi(reply(500, raw=b"Internal Server Error"))
    async with make_client(api, max_attempts=4) as client:
        with pytest.raises(TelnyxError) as caught:
            await client.get_balance()
        assert client.requests_sent == 4
    assert len(sleep.waits) == 3
    assert (caught.value.retryable, caught.value.status) == (True, 500)
    assert str(caught.value) == "GET /balance failed: HTTP 500"


async def test_timeout_is_retried_then_reported(make_client: Any, sleep: SleepRecorder) -> None:
    api = FakeApi(httpx.ReadTimeout("read timed out"))
    async with make_client(api, max_attempts=3, timeout=10.0) as client:
        with pytest.raises(TelnyxError) as caught:
            await client.get_balance()
    assert len(api.requests) == 3
    assert len(sleep.waits) == 2
    assert caught.value.retryable
    assert str(caught.value) == "GET /balance timed out after 10s"


async def test_timeout_then_success(make_client: Any, sleep: SleepRecorder) -> None:
    api = FakeApi(httpx.ConnectTimeout("connect timed out"), reply(body=BALANCE_OK))
    async with make_client(api) as client:
        balance = await client.get_balance()
    assert balance.currency == "USD"
    assert len(sleep.waits) == 1


async def test_connection_refused_is_retryable(make_client: Any) -> None:
    api = FakeApi(httpx.ConnectError("Connection refused"))
    async with make_client(api, max_attempts=2) as client:
        with pytest.raises(TelnyxError) as caught:
            await client.get_balance()
    assert caught.value.retryable
    assert str(caught.value) == "GET /balance: request failed (ConnectError: Connection refused)"
    assert len(api.requests) == 2


@pytest.mark.parametrize("status", [401, 403])
async def test_rejected_key_is_auth_and_never_retried(
    make_client: Any, sleep: SleepRecorder, status: int
) -> None:
    body = {"errors": [{"code": "10009", "title": "Authentication failed"}]}
    api = FakeApi(reply(status, body), reply(body=BALANCE_OK))
    async with make_client(api) as client:
        with pytest.raises(TelnyxError) as caught:
            await client.get_balance()
    error = caught.value
    assert (error.auth, error.retryable, error.status, error.code) == (True, False, status, "10009")
    assert str(error) == f"GET /balance: the API rejected the key (HTTP {status})"
    assert len(api.requests) == 1
    assert sleep.waits == []


@pytest.mark.parametrize("status", [400, 404, 409, 422])
async def test_other_4xx_is_permanent_and_sent_once(
    make_client: Any, sleep: SleepRecorder, status: int
) -> None:
    body = {"errors": [{"code": "10015", "title": "Bad Request", "detail": "page[size] > 250"}]}
    api = FakeApi(reply(status, body), reply(body=BALANCE_OK))
    async with make_client(api) as client:
        with pytest.raises(TelnyxError) as caught:
            await client.get_balance()
    error = caught.value
    assert (error.auth, error.retryable, error.status) == (False, False, status)
    assert str(error) == f"GET /balance failed: HTTP {status} (10015 Bad Request)"
    assert len(api.requests) == 1
    assert sleep.waits == []


async def test_per_request_timeout_shrinks_to_the_deadline(make_client: Any) -> None:
    api = FakeApi(reply(body=BALANCE_OK))
    async with make_client(api, timeout=10.0) as client:
        await client.get_balance(deadline=time.monotonic() + 2.0)
    sent_timeout = api.requests[0].extensions["timeout"]
    assert 0 < sent_timeout["read"] <= 2.0
    assert 0 < sent_timeout["connect"] <= 2.0


async def test_spent_deadline_sends_nothing(make_client: Any) -> None:
    api = FakeApi(reply(body=BALANCE_OK))
    async with make_client(api) as client:
        with pytest.raises(TelnyxError, match="no time left") as caught:
            await client.get_balance(deadline=time.monotonic() - 1)
        assert client.requests_sent == 0
    assert caught.value.retryable


class StallingTransport(httpx.AsyncBaseTransport):
    """Answers nothing for a long time, like a server that accepts and stalls."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200)


async def test_a_stalled_request_ends_at_the_timeout(sleep: SleepRecorder) -> None:
    client = TelnyxClient(
        base_url=BASE_URL,
        api_key=SecretStr(KEY),
        transport=StallingTransport(),
        timeout=0.05,
        max_attempts=1,
        sleep=sleep,
    )
    started = time.monotonic()
    async with client:
        with pytest.raises(TelnyxError, match=r"timed out after 0\.05s") as caught:
            await client.get_balance()
    assert time.monotonic() - started < 2.0
    assert caught.value.retryable


# ----------------------------------------------------------------------------- classify


def response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, content=b"")


@pytest.mark.parametrize(
    ("status", "retryable", "auth"),
    [
        (429, True, False),
        (500, True, False),
        (502, True, False),
        (503, True, False),
        (504, True, False),
        (401, False, True),
        (403, False, True),
        (400, False, False),
        (404, False, False),
        (422, False, False),
        (451, False, False),
        (301, False, False),
    ],
)
def test_classify_status(status: int, retryable: bool, auth: bool) -> None:
    error = classify("/balance", response(status), None)
    assert error is not None
    assert (error.retryable, error.auth, error.status, error.endpoint) == (
        retryable,
        auth,
        status,
        "/balance",
    )


@pytest.mark.parametrize("status", [200, 201, 204])
def test_classify_2xx_is_success(status: int) -> None:
    assert classify("/balance", response(status), None) is None


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (httpx.ReadTimeout("t"), True),
        (httpx.ConnectTimeout("t"), True),
        (httpx.PoolTimeout("t"), True),
        (httpx.ConnectError("refused"), True),
        (httpx.ReadError("reset"), True),
        (httpx.RemoteProtocolError("closed"), True),
        (httpx.UnsupportedProtocol("ftp"), False),
    ],
)
def test_classify_exceptions(exc: Exception, retryable: bool) -> None:
    error = classify("/balance", None, exc)
    assert error is not None
    assert error.retryable is retryable
    assert error.status is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "5"}, 5.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"x-ratelimit-reset": "30"}, 30.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "-3"}, None),
        ({"Retry-After": "soon", "x-ratelimit-reset": "9"}, 9.0),
        ({}, None),
    ],
)
def test_classify_reads_the_requested_wait(headers: dict[str, str], expected: float | None) -> None:
    error = classify("/balance", response(429, **headers), None)
    assert error is not None
    assert error.retry_after == expected


# ----------------------------------------------------------------------------- secrets


def echoing_error(request: httpx.Request) -> httpx.Response:
    """A badly behaved server that echoes the Authorization header in its error body."""
    echoed = request.headers["authorization"]
    return reply(400, {"errors": [{"code": "1", "title": f"bad header {echoed}"}]})


@pytest.mark.parametrize(
    "script",
    [
        pytest.param([echoing_error], id="echoed-in-body"),
        pytest.param([reply(503, RATE_LIMITED)], id="retried-503"),
        pytest.param([reply(401, {})], id="rejected"),
        pytest.param([httpx.ConnectError("refused")], id="connect-error"),
    ],
)
async def test_api_key_never_leaks_into_errors_repr_or_logs(
    make_client: Any, caplog: pytest.LogCaptureFixture, script: list[Any]
) -> None:
    api = FakeApi(*script)
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as logs:
        async with make_client(api, max_attempts=2) as client:
            with pytest.raises(TelnyxError) as caught:
                await client.get_balance()
            assert KEY not in repr(client)
    assert api.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in str(caught.value)
    assert KEY not in repr(caught.value)
    assert logs, "the failed request should have been logged"
    assert KEY not in repr(logs)
    assert KEY not in caplog.text


async def test_failed_attempts_are_logged_with_fields(make_client: Any) -> None:
    api = FakeApi(reply(503, RATE_LIMITED, retry_after="2"), reply(404, {}))
    with structlog.testing.capture_logs() as logs:
        async with make_client(api) as client:
            with pytest.raises(TelnyxError):
                await client.get_balance()
    failures = [entry for entry in logs if entry["event"] == "telnyx.request_failed"]
    assert [
        {k: e[k] for k in ("endpoint", "status", "attempt", "retryable", "wait", "log_level")}
        for e in failures
    ] == [
        {
            "endpoint": "/balance",
            "status": 503,
            "attempt": 1,
            "retryable": True,
            "wait": 2.0,
            "log_level": "warning",
        },
        {
            "endpoint": "/balance",
            "status": 404,
            "attempt": 2,
            "retryable": False,
            "wait": None,
            "log_level": "warning",
        },
    ]

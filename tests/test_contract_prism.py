"""Contract tests: the real client against Prism serving the vendored Telnyx spec.

Prism (`@stoplight/prism-cli` 5.14.2) runs in static mode with `--errors`: it validates
every request against the spec (query parameters, enums, formats, bounds, the bearer
security scheme) and answers an invalid one with 401/422, so a client request that
drifts from the spec fails these tests. Responses are the spec's examples.

Prism 5 serves the spec's paths at the root: the `/v2` of `servers[0].url` is not part
of them (`/v2/balance` is a 404), so the client's base URL is `http://127.0.0.1:PORT`.

The binary comes from `$PRISM_BIN` (default `<repo>/node_modules/.bin/prism`). Without
it the module is skipped, except under `CI=true`, where a missing Prism fails.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from prism_support import DATA, RecordingTransport, running_prism
from pydantic import SecretStr

from watcher.core.model import AuditChange, AuditEvent, Balance, WebhookDelivery
from watcher.providers.telnyx.client import AutoRechargePrefs, TelnyxClient, TelnyxError, classify

pytestmark = pytest.mark.contract

SPEC = DATA / "telnyx-account.openapi.yaml"
KEY = "KEYcontract0123456789"
SINCE = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def prism_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Prism process for the module: `prism mock --errors SPEC` on a free loopback port."""
    with running_prism(SPEC, tmp_path_factory.mktemp("prism"), probe="/balance") as url:
        yield url


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def transport() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture
async def client(prism_url: str, transport: RecordingTransport) -> AsyncIterator[TelnyxClient]:
    async with TelnyxClient(
        base_url=prism_url, api_key=SecretStr(KEY), transport=transport, timeout=5.0
    ) as client:
        yield client
    assert transport.violations() == [], "Prism reported spec violations for our requests"


async def test_get_balance(client: TelnyxClient) -> None:
    assert await client.get_balance() == Balance(
        balance=Decimal("300.00"),
        available_credit=Decimal("400.00"),
        credit_limit=Decimal("100.00"),
        pending=Decimal("10.00"),
        currency="USD",
    )


async def test_list_audit_events_reads_every_page(client: TelnyxClient) -> None:
    events = await client.list_audit_events(created_after=SINCE)
    # Prism's static example says total_pages 3 on every page: three requests, then stop.
    assert client.requests_sent == 3
    assert (
        events
        == [
            AuditEvent(
                id="550e8400-e29b-41d4-a716-446655440000",
                created_at=datetime(2026, 1, 3, tzinfo=UTC),
                change_type="update",
                change_made_by="telnyx",
                resource_id="550e8400-e29b-41d4-a716-446655440002",
                alternate_resource_id="+14155551234",
                user_id="550e8400-e29b-41d4-a716-446655440001",
                record_type="audit_event",
                changes=(AuditChange(field="field.name", old="new value", new="old value"),),
            )
        ]
        * 3
    )


async def test_list_failed_deliveries(client: TelnyxClient) -> None:
    deliveries = await client.list_failed_deliveries(started_gte=SINCE)
    assert client.requests_sent == 3
    assert deliveries[0] == WebhookDelivery(
        id="f5586561-8ff0-4291-a0ac-84fe544797bd",
        started_at=datetime(2020, 8, 10, 14, 0, tzinfo=UTC),
        status="delivered",
        event_type="call_initiated",
        url="https://fallback.example.com/webhooks",
        http_status=200,
        error="",
    )


async def test_count_deliveries(client: TelnyxClient) -> None:
    assert await client.count_deliveries(started_gte=SINCE) == 55
    assert client.requests_sent == 1


async def test_get_auto_recharge_prefs(client: TelnyxClient) -> None:
    assert await client.get_auto_recharge_prefs() == AutoRechargePrefs(
        enabled=True,
        threshold_amount=Decimal("104.00"),
        recharge_amount=Decimal("104.00"),
        preference="credit_paypal",
    )


AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.mark.parametrize(
    ("path", "params", "headers", "status"),
    [
        pytest.param("/webhook_deliveries", {"page[size]": "500"}, AUTH, 422, id="page-size-500"),
        pytest.param(
            "/webhook_deliveries", {"filter[status][eq]": "bogus"}, AUTH, 422, id="status-enum"
        ),
        pytest.param("/audit_events", {"sort": "sideways"}, AUTH, 422, id="sort-enum"),
        pytest.param(
            "/audit_events", {"filter[created_after]": "yesterday"}, AUTH, 422, id="date-format"
        ),
        pytest.param("/balance", {}, {}, 401, id="no-authorization"),
        pytest.param("/balance", {}, {"Authorization": f"Basic {KEY}"}, 401, id="not-bearer"),
    ],
)
async def test_prism_rejects_invalid_requests(
    prism_url: str, path: str, params: dict[str, str], headers: dict[str, str], status: int
) -> None:
    """Proves the validation is live, so the passing tests above mean something."""
    async with httpx.AsyncClient(base_url=prism_url, headers=headers) as raw:
        response = await raw.get(path, params=params)
    assert response.status_code == status
    assert "sl-violations" in response.headers
    error = classify(path, response, None)
    assert error is not None
    assert not error.retryable
    assert error.auth is (status == 401)


async def test_the_v2_prefix_is_not_part_of_prisms_paths(prism_url: str) -> None:
    async with TelnyxClient(base_url=f"{prism_url}/v2", api_key=SecretStr(KEY)) as client:
        with pytest.raises(TelnyxError) as caught:
            await client.get_balance()
    assert caught.value.status == 404


async def test_rate_limit_response_is_retryable_with_reset_30(prism_url: str) -> None:
    transport = RecordingTransport({"Prefer": "code=429"})
    sleeps = Sleeps()
    async with TelnyxClient(
        base_url=prism_url, api_key=SecretStr(KEY), transport=transport, sleep=sleeps
    ) as client:
        with pytest.raises(TelnyxError) as caught:
            await client.get_balance(deadline=time.monotonic() + 5.0)
        assert client.requests_sent == 1
    error = caught.value
    assert (error.status, error.retryable, error.auth, error.code) == (429, True, False, "10011")
    assert error.retry_after == 30.0
    assert transport.responses[0].headers["x-ratelimit-reset"] == "30"
    assert str(error) == "GET /balance failed: HTTP 429 (10011 Too many requests)"
    assert sleeps.waits == [], "a 30 s wait does not fit a 5 s budget"


async def test_rate_limit_wait_is_honoured_without_a_deadline(prism_url: str) -> None:
    transport = RecordingTransport({"Prefer": "code=429"})
    sleeps = Sleeps()
    async with TelnyxClient(
        base_url=prism_url,
        api_key=SecretStr(KEY),
        transport=transport,
        sleep=sleeps,
        max_attempts=2,
    ) as client:
        with pytest.raises(TelnyxError):
            await client.get_balance()
    assert sleeps.waits == [30.0]
    assert len(transport.responses) == 2


@pytest.mark.parametrize(("code", "retryable", "auth"), [(503, True, False), (403, False, True)])
async def test_documented_error_responses_are_classified(
    prism_url: str, code: int, retryable: bool, auth: bool
) -> None:
    transport = RecordingTransport({"Prefer": f"code={code}"})
    async with TelnyxClient(
        base_url=prism_url, api_key=SecretStr(KEY), transport=transport, max_attempts=1
    ) as client:
        with pytest.raises(TelnyxError) as caught:
            await client.get_balance()
    assert (caught.value.status, caught.value.retryable, caught.value.auth) == (
        code,
        retryable,
        auth,
    )

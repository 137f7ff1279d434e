"""`TelnyxClient.create_topup`: one POST, never retried, every outcome classified."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import httpx
import pytest
from conftest import API_KEY
from pydantic import SecretStr

from watcher.providers.telnyx.client import (
    TelnyxClient,
    TopupOutcome,
    classify_topup,
    topup_amount_text,
)
from watcher.providers.telnyx.sim import Fault, SimServer, error_body, free_port

TOPUP = "/payment/stored_payment_transactions"
OK_BODY = {"data": {"id": "de06811a-2e43-4561-af5a-7d0a26e20aaa", "amount_cents": 10000}}


class Counting:
    """A MockTransport handler that counts requests and answers from a script."""

    def __init__(self, answer: httpx.Response | Exception) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def client_for(handler: Counting, **kwargs: object) -> TelnyxClient:
    return TelnyxClient(
        base_url="https://api.telnyx.test/v2",
        api_key=SecretStr(API_KEY),
        transport=httpx.MockTransport(handler),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("answer", "outcome", "error"),
    [
        pytest.param(httpx.Response(200, json=OK_BODY), TopupOutcome.SUCCEEDED, "", id="200"),
        pytest.param(
            httpx.Response(200, text="<html>ok</html>"),
            TopupOutcome.UNKNOWN,
            "HTTP 200 but the answer has no transaction id",
            id="200-unreadable",
        ),
        pytest.param(
            httpx.Response(422, json=error_body(422, code="10027")),
            TopupOutcome.FAILED,
            "HTTP 422 (10027 Invalid parameter)",
            id="422",
        ),
        pytest.param(
            httpx.Response(403, json=error_body(403)),
            TopupOutcome.FAILED,
            "HTTP 403 (10010 Authorization failed)",
            id="403",
        ),
        pytest.param(
            httpx.Response(429, json=error_body(429), headers={"Retry-After": "0"}),
            TopupOutcome.FAILED,
            "HTTP 429",
            id="429",
        ),
        pytest.param(
            httpx.Response(500, json=error_body(500)),
            TopupOutcome.UNKNOWN,
            "HTTP 500 (10007 Unexpected error)",
            id="500",
        ),
        pytest.param(
            httpx.Response(503, text="upstream down"),
            TopupOutcome.UNKNOWN,
            "HTTP 503",
            id="503-no-api-error",
        ),
        pytest.param(
            httpx.Response(307, headers={"Location": "https://elsewhere.test/"}),
            TopupOutcome.UNKNOWN,
            "HTTP 307",
            id="redirect-not-followed",
        ),
        pytest.param(
            httpx.ReadTimeout("read timed out"), TopupOutcome.UNKNOWN, "timed out", id="timeout"
        ),
        pytest.param(
            httpx.RemoteProtocolError("server disconnected"),
            TopupOutcome.UNKNOWN,
            "RemoteProtocolError",
            id="connection-lost",
        ),
        pytest.param(
            httpx.ConnectError("connection refused"),
            TopupOutcome.FAILED,
            "could not connect, nothing was sent",
            id="connect-refused",
        ),
    ],
)
async def test_every_outcome_is_classified_after_exactly_one_request(
    answer: httpx.Response | Exception, outcome: TopupOutcome, error: str
) -> None:
    handler = Counting(answer)
    async with client_for(handler, max_attempts=4) as client:
        result = await client.create_topup(Decimal("100.00"), timeout=5.0)
        assert client.requests_sent == 1
    assert len(handler.requests) == 1, "a top-up POST is never retried"
    assert result.outcome is outcome
    assert error in result.error
    assert API_KEY not in repr(result)
    request = handler.requests[0]
    assert (request.method, request.url.path) == ("POST", "/v2/payment/stored_payment_transactions")
    assert json.loads(request.content) == {"amount": "100.00"}
    if outcome is TopupOutcome.SUCCEEDED:
        assert result.transaction_id == OK_BODY["data"]["id"]


def test_api_error_fields_are_kept() -> None:
    body = error_body(
        422, code="10027", detail='Amount must include dollars and cents (e.g. "120.00").'
    )
    result = classify_topup(httpx.Response(422, json=body), None)
    assert (result.status, result.code, result.title) == (422, "10027", "Invalid parameter")
    assert result.detail == 'Amount must include dollars and cents (e.g. "120.00").'


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        pytest.param(Fault.status(500), TopupOutcome.UNKNOWN, id="500"),
        pytest.param(Fault.status(503), TopupOutcome.UNKNOWN, id="503"),
        pytest.param(Fault.status(429), TopupOutcome.FAILED, id="429"),
        pytest.param(Fault.delay(2.0), TopupOutcome.UNKNOWN, id="timeout"),
        pytest.param(Fault.disconnect(), TopupOutcome.UNKNOWN, id="disconnect"),
    ],
)
async def test_real_http_sends_one_post_against_the_simulator(
    sim: SimServer, fault: Fault, outcome: TopupOutcome
) -> None:
    sim.account.inject_fault(TOPUP, fault, times=-1)  # it would fail every retry too
    async with TelnyxClient(base_url=sim.base_url, api_key=SecretStr(API_KEY)) as client:
        result = await client.create_topup(Decimal("100.00"), timeout=0.5)
    await asyncio.sleep(0.1)  # would a retry arrive late?
    assert sim.account.request_count(TOPUP, method="POST") == 1
    assert result.outcome is outcome


async def test_closed_port_is_a_failure_that_sent_nothing() -> None:
    base = f"http://127.0.0.1:{free_port()}/v2"
    async with TelnyxClient(base_url=base, api_key=SecretStr(API_KEY)) as client:
        result = await client.create_topup(Decimal("100.00"), timeout=1.0)
    assert result.outcome is TopupOutcome.FAILED
    assert "nothing was sent" in result.error


async def test_a_paid_topup_against_the_simulator(sim: SimServer) -> None:
    async with TelnyxClient(base_url=sim.base_url, api_key=SecretStr(API_KEY)) as client:
        result = await client.create_topup(Decimal("100"), timeout=2.0)
    assert result.outcome is TopupOutcome.SUCCEEDED
    assert sim.account.topups == [Decimal("100.00")]
    assert result.transaction_id == sim.account.transactions[0]["id"]


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("100"), "100.00"),
        (Decimal("100.5"), "100.50"),
        (Decimal("0.01"), "0.01"),
        (Decimal("1234.00"), "1234.00"),
    ],
)
def test_amount_text(amount: Decimal, text: str) -> None:
    assert topup_amount_text(amount) == text


@pytest.mark.parametrize("amount", ["0", "-1.00", "1.005", "NaN", "Infinity"])
async def test_bad_amounts_are_refused_before_anything_is_sent(amount: str) -> None:
    handler = Counting(httpx.Response(200, json=OK_BODY))
    async with client_for(handler) as client:
        with pytest.raises(ValueError, match="top-up amount"):
            await client.create_topup(Decimal(amount), timeout=1.0)
    assert handler.requests == []


async def test_the_key_never_shows_in_a_result(sim: SimServer) -> None:
    body = error_body(422, detail=f"bad key {API_KEY}")
    sim.account.inject_fault(TOPUP, Fault.status(422, body=body))
    async with TelnyxClient(base_url=sim.base_url, api_key=SecretStr(API_KEY)) as client:
        result = await client.create_topup(Decimal("1.00"), timeout=1.0)
    assert result.outcome is TopupOutcome.FAILED
    assert API_KEY not in repr(result)
    assert "**********" in (result.detail or "")

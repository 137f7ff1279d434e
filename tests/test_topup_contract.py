"""Contract: the top-up POST against Prism serving the vendored Telnyx spec.

Reuses the Prism fixture of `test_contract_prism.py` (same skip/fail rules: Prism from
`$PRISM_BIN` or `node_modules/.bin/prism`; mandatory under `CI=true`). Prism serves the
spec's paths at the root, so the client's base URL is `http://127.0.0.1:PORT` and our
request path must be exactly the spec's `/payment/stored_payment_transactions`; the
doubled `/v2/v2/...` path of the official SDKs would be a 404 here and fail these tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from prism_support import RecordingTransport
from pydantic import SecretStr
from test_contract_prism import KEY, prism_url

from watcher.providers.telnyx.client import TelnyxClient, TopupOutcome, classify_topup

__all__ = ["prism_url"]  # the module-scoped fixture, shared

pytestmark = pytest.mark.contract

AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
async def recorded(prism_url: str) -> AsyncIterator[tuple[TelnyxClient, RecordingTransport]]:
    transport = RecordingTransport()
    async with TelnyxClient(
        base_url=prism_url, api_key=SecretStr(KEY), transport=transport, timeout=5.0
    ) as client:
        yield client, transport


async def test_topup_post_is_accepted_by_the_spec(
    recorded: tuple[TelnyxClient, RecordingTransport],
) -> None:
    client, transport = recorded
    result = await client.create_topup(Decimal("120.00"), timeout=5.0)
    assert transport.violations() == [], "Prism reported spec violations for the POST"
    assert result.outcome is TopupOutcome.SUCCEEDED
    assert result.transaction_id == "de06811a-2e43-4561-af5a-7d0a26e20aaa"
    assert client.requests_sent == 1
    assert [r.request.url.path for r in transport.responses] == [
        "/payment/stored_payment_transactions"
    ]


async def test_topup_outcomes_of_the_documented_errors(prism_url: str) -> None:
    transport = RecordingTransport({"Prefer": "code=422"})
    async with TelnyxClient(base_url=prism_url, api_key=SecretStr(KEY), transport=transport) as c:
        result = await c.create_topup(Decimal("120.00"), timeout=5.0)
    assert (result.outcome, result.status, result.code) == (TopupOutcome.FAILED, 422, "10027")
    assert len(transport.responses) == 1


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        pytest.param(
            "/v2/payment/stored_payment_transactions",
            {"amount": "120.00"},
            404,
            id="doubled-v2-path",
        ),
        pytest.param(
            "/payment/stored_payment_transactions", {"amount": 120}, 422, id="amount-not-a-string"
        ),
        pytest.param("/payment/stored_payment_transactions", {}, 422, id="amount-missing"),
    ],
)
async def test_prism_rejects_what_the_client_must_not_send(
    prism_url: str, path: str, body: dict[str, object], status: int
) -> None:
    """Proves the validation is live: a drifting path or body would fail the test above."""
    async with httpx.AsyncClient(base_url=prism_url, headers=AUTH) as raw:
        response = await raw.post(path, json=body)
    assert response.status_code == status
    assert classify_topup(response, None).outcome is TopupOutcome.FAILED


async def test_a_client_configured_with_a_doubled_base_fails(prism_url: str) -> None:
    async with TelnyxClient(base_url=f"{prism_url}/v2", api_key=SecretStr(KEY)) as client:
        result = await client.create_topup(Decimal("120.00"), timeout=5.0)
    assert (result.outcome, result.status) == (TopupOutcome.FAILED, 404)

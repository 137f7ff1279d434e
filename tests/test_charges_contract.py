"""Contract: the client's `GET /charges_summary` and `GET /charges_breakdown` against Prism
serving the vendored Telnyx spec (`--errors`: a request that drifts from the spec is
answered 422 and fails here), and the static answers parse (money as Decimal).

See tests/test_contract_prism.py for how Prism is run (static mode, paths at the root).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date
from decimal import Decimal

import httpx
import pytest
from prism_support import DATA, RecordingTransport, running_prism
from pydantic import SecretStr

from watcher.providers.telnyx.client import TelnyxClient

pytestmark = pytest.mark.contract

SPEC = DATA / "telnyx-account.openapi.yaml"
KEY = "KEYcontract0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
PROBE = "/charges_summary?start_date=2026-11-01&end_date=2026-11-10"


@pytest.fixture(scope="module")
def prism_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_prism(SPEC, tmp_path_factory.mktemp("prism"), probe=PROBE) as url:
        yield url


@pytest.fixture
async def client(prism_url: str) -> AsyncIterator[tuple[TelnyxClient, RecordingTransport]]:
    transport = RecordingTransport()
    async with TelnyxClient(
        base_url=prism_url, api_key=SecretStr(KEY), transport=transport, timeout=5.0
    ) as telnyx:
        yield telnyx, transport
    assert transport.violations() == [], "Prism reported spec violations for our requests"


async def test_charges_summary(client: tuple[TelnyxClient, RecordingTransport]) -> None:
    telnyx, transport = client
    got = await telnyx.get_charges_summary(date(2026, 11, 1), date(2026, 11, 10))
    assert got.currency == "USD"
    assert isinstance(got.total, Decimal)
    assert got.parts and all(isinstance(amount, Decimal) for _, amount in got.parts)
    (response,) = transport.responses
    assert response.status_code == 200
    assert response.request.url.params["start_date"] == "2026-11-01"


async def test_charges_breakdown(client: tuple[TelnyxClient, RecordingTransport]) -> None:
    telnyx, transport = client
    got = await telnyx.get_charges_breakdown(date(2026, 11, 1), date(2026, 11, 10))
    assert got.currency == "USD"
    assert all(isinstance(amount, Decimal) for _, amount in got.parts)
    (response,) = transport.responses
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("path", "params"),
    [
        pytest.param("/charges_summary", {"start_date": "2026-11-01"}, id="summary-no-end"),
        pytest.param("/charges_summary", {"end_date": "2026-11-01"}, id="summary-no-start"),
        pytest.param(
            "/charges_breakdown", {"format": "xml", "start_date": "2026-11-01"}, id="format"
        ),
    ],
)
async def test_prism_rejects_invalid_charges_requests(
    prism_url: str, path: str, params: dict[str, str]
) -> None:
    """Proves the validation is live, so the passing tests above mean something."""
    async with httpx.AsyncClient(base_url=prism_url, headers=AUTH) as raw:
        response = await raw.get(path, params=params)
    assert response.status_code == 422
    assert "sl-violations" in response.headers

"""Contract: the client's `GET /invoices` against Prism serving the vendored Telnyx spec
(`--errors`: a request that drifts from the spec is answered 422 and fails here).

See tests/test_contract_prism.py for how Prism is run (static mode, paths at the root).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date

import httpx
import pytest
from prism_support import DATA, RecordingTransport, running_prism
from pydantic import SecretStr

from watcher.core.model import Invoice
from watcher.providers.telnyx.client import TelnyxClient

pytestmark = pytest.mark.contract

SPEC = DATA / "telnyx-account.openapi.yaml"
KEY = "KEYcontract0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def prism_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_prism(SPEC, tmp_path_factory.mktemp("prism"), probe="/invoices") as url:
        yield url


@pytest.fixture
async def client(prism_url: str) -> AsyncIterator[tuple[TelnyxClient, RecordingTransport]]:
    transport = RecordingTransport()
    async with TelnyxClient(
        base_url=prism_url, api_key=SecretStr(KEY), transport=transport, timeout=5.0
    ) as telnyx:
        yield telnyx, transport
    assert transport.violations() == [], "Prism reported spec violations for our requests"


async def test_list_invoices(client: tuple[TelnyxClient, RecordingTransport]) -> None:
    telnyx, transport = client
    assert await telnyx.list_invoices() == [
        Invoice(
            "48eff763-ea80-4345-b688-78249eb165a8",
            date(2023, 11, 1),
            date(2023, 11, 30),
            paid=True,
        )
    ]
    (response,) = transport.responses
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("params", "status"),
    [
        pytest.param({"page[size]": "500"}, 422, id="page-size-500"),
        pytest.param({"page[number]": "0"}, 422, id="page-number-0"),
        pytest.param({"sort": "paid"}, 422, id="sort-enum"),
    ],
)
async def test_prism_rejects_invalid_invoice_requests(
    prism_url: str, params: dict[str, str], status: int
) -> None:
    """Proves the validation is live, so the passing test above means something."""
    async with httpx.AsyncClient(base_url=prism_url, headers=AUTH) as raw:
        response = await raw.get("/invoices", params=params)
    assert response.status_code == status
    assert "sl-violations" in response.headers

"""The Telnyx simulator's invoices: `GET /invoices` (paginated, sortable) and
`GET /invoices/{id}` in the vendored spec's shapes, scripted by the test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from watcher.providers.telnyx.sim import SimAccount, SimServer

SPEC = yaml.safe_load((Path(__file__).parent / "data" / "telnyx-account.openapi.yaml").read_text())
KEY = "sim-invoices-key"


def schema(path: str) -> dict[str, Any]:
    """The 200 answer's schema of `path`, with the spec's components to resolve $refs."""
    answer = SPEC["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    return {**answer["schema"], "components": SPEC["components"]}


@pytest.fixture
def server() -> Iterator[SimServer]:
    with SimServer(SimAccount(api_key=KEY)) as running:
        yield running


def get(server: SimServer, path: str, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {KEY}"}
    return httpx.get(f"{server.base_url}{path}", params=params, headers=headers)


def months(server: SimServer, *numbers: int) -> list[str]:
    ids = []
    for month in numbers:
        start, end = date(2026, month, 1), date(2026, month, 28)
        ids.append(server.account.add_invoice(period_start=start, period_end=end)["invoice_id"])
    return ids


def test_invoices_are_served_in_the_spec_shape_page_by_page(server: SimServer) -> None:
    months(server, 3, 1, 2)
    first = get(server, "/invoices", **{"page[size]": "2", "sort": "period_start"})
    assert first.status_code == 200
    body = first.json()
    jsonschema.validate(body, schema("/invoices"))
    assert [i["period_start"] for i in body["data"]] == ["2026-01-01", "2026-02-01"]
    assert body["meta"] == {"page_number": 1, "page_size": 2, "total_pages": 2, "total_results": 3}
    second = get(server, "/invoices", **{"page[size]": "2", "page[number]": "2"}).json()
    assert len(second["data"]) == 1 and second["meta"]["page_number"] == 2
    newest = get(server, "/invoices", sort="-period_start").json()["data"]
    assert newest[0]["period_start"] == "2026-03-01"


def test_one_invoice_by_id_and_paid_when_scripted(server: SimServer) -> None:
    (invoice_id,) = months(server, 10)
    assert get(server, f"/invoices/{invoice_id}").json()["data"]["paid"] is False
    server.account.set_invoice_paid(invoice_id)
    answer = get(server, f"/invoices/{invoice_id}")
    jsonschema.validate(answer.json(), schema("/invoices/{id}"))
    assert answer.json()["data"]["paid"] is True
    assert get(server, "/invoices").json()["data"][0]["paid"] is True
    server.account.remove_invoice(invoice_id)
    assert get(server, "/invoices").json()["data"] == []
    assert get(server, f"/invoices/{invoice_id}").status_code == 404


@pytest.mark.parametrize(
    ("params", "status"),
    [({"page[size]": "500"}, 422), ({"page[number]": "0"}, 422), ({"sort": "paid"}, 400)],
)
def test_invalid_queries_are_refused(
    server: SimServer, params: dict[str, str], status: int
) -> None:
    answer = get(server, "/invoices", **params)
    assert answer.status_code == status
    assert "errors" in answer.json()


def test_the_key_is_checked(server: SimServer) -> None:
    answer = httpx.get(f"{server.base_url}/invoices", headers={"Authorization": "Bearer nope"})
    assert answer.status_code == 401


def test_scripting_an_unknown_invoice_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        SimAccount().set_invoice_paid("nope")

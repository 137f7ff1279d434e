"""The Telnyx invoices source: the client's `GET /invoices` against httpx.MockTransport
fakes (pagination, shapes, malformed answers), the kept invoices' text, and the
slow-source cadence of `collect` on a real SQLite state in tmp_path (no patches)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from watcher.core.model import Invoice, SourceName
from watcher.providers import slow
from watcher.providers.base import Collected, Needs
from watcher.providers.telnyx import invoices
from watcher.providers.telnyx.client import TelnyxClient, TelnyxError
from watcher.providers.telnyx.sources import collect
from watcher.state.store import Store

BASE_URL = "https://api.telnyx.test/v2"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NEEDS = Needs(sources=frozenset({SourceName.INVOICES}))


def item(invoice_id: str, *, paid: bool = False, month: int = 10) -> dict[str, Any]:
    """An invoice as the spec shows it (`Invoice` of tests/data/telnyx-account.openapi.yaml)."""
    return {
        "file_id": "454ea3b0-9eaa-4fa9-992e-6d9f31c0a37e",
        "invoice_id": invoice_id,
        "paid": paid,
        "period_start": f"2026-{month:02d}-01",
        "period_end": f"2026-{month:02d}-28",
        "url": f"https://api.telnyx.com:443/v2/invoices/{invoice_id}",
    }


def page(items: list[dict[str, Any]], number: int, total_pages: int) -> dict[str, Any]:
    meta = {"page_number": number, "page_size": 250, "total_pages": total_pages}
    return {"data": items, "meta": {**meta, "total_results": len(items)}}


class Api:
    """Answers `GET /invoices` page by page from `pages` (or `body` for every request)."""

    def __init__(self, *pages: Any, status: int = 200) -> None:
        self.pages = list(pages)
        self.status = status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        number = int(request.url.params.get("page[number]", "1"))
        body = self.pages[min(number, len(self.pages)) - 1]
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(self.status, content=raw)


def client(api: Api) -> TelnyxClient:
    return TelnyxClient(
        base_url=BASE_URL, api_key=SecretStr("KEY-invoices"), transport=httpx.MockTransport(api)
    )


async def test_every_page_is_read_until_page_number_reaches_total_pages() -> None:
    api = Api(
        page([item("a"), item("b", paid=True)], 1, 3),
        page([item("c", month=11)], 2, 3),
        page([item("d", month=9)], 3, 3),
        page([item("never")], 4, 3),
    )
    async with client(api) as telnyx:
        found = await telnyx.list_invoices()
    assert [i.id for i in found] == ["a", "b", "c", "d"]
    assert len(api.requests) == 3
    params = [dict(r.url.params) for r in api.requests]
    assert [p["page[number]"] for p in params] == ["1", "2", "3"]
    assert all(p["page[size]"] == "250" and p["sort"] == "period_start" for p in params)
    assert api.requests[0].url.path == "/v2/invoices"


async def test_an_invoice_is_mapped_with_dates_and_paid() -> None:
    async with client(Api(page([item("a", paid=True)], 1, 1))) as telnyx:
        (found,) = await telnyx.list_invoices()
    assert found == Invoice("a", date(2026, 10, 1), date(2026, 10, 28), paid=True)


async def test_no_invoices_is_an_empty_list_in_one_request() -> None:
    api = Api(page([], 1, 0))
    async with client(api) as telnyx:
        assert await telnyx.list_invoices() == []
    assert len(api.requests) == 1


@pytest.mark.parametrize(
    ("broken", "fragment"),
    [
        pytest.param({"paid": None}, "paid", id="paid-null"),
        pytest.param({"paid": "perhaps"}, "paid", id="paid-not-bool"),
        pytest.param({"period_end": "30 Nov"}, "period_end", id="bad-date"),
        pytest.param({"invoice_id": ""}, "invoice_id", id="empty-id"),
    ],
)
async def test_an_invoice_of_the_wrong_shape_is_a_permanent_error(
    broken: dict[str, Any], fragment: str
) -> None:
    api = Api(page([{**item("a"), **broken}], 1, 1))
    async with client(api) as telnyx:
        with pytest.raises(TelnyxError) as caught:
            await telnyx.list_invoices()
    assert str(caught.value).startswith("GET /invoices: response has an unexpected shape")
    assert fragment in str(caught.value)
    assert caught.value.retryable is False


@pytest.mark.parametrize("field", ["invoice_id", "paid", "period_start", "period_end"])
async def test_an_invoice_without_a_needed_field_is_an_error(field: str) -> None:
    data = {k: v for k, v in item("a").items() if k != field}
    async with client(Api(page([data], 1, 1))) as telnyx:
        with pytest.raises(TelnyxError, match=field):
            await telnyx.list_invoices()


async def test_malformed_json_is_an_error_not_a_crash() -> None:
    async with client(Api(b'{"data": [')) as telnyx:
        with pytest.raises(TelnyxError, match="not valid JSON"):
            await telnyx.list_invoices()


async def test_a_403_is_a_rejected_key() -> None:
    body = {"errors": [{"code": "10010", "title": "Authorization failed"}]}
    async with client(Api(body, status=403)) as telnyx:
        with pytest.raises(TelnyxError) as caught:
            await telnyx.list_invoices()
    assert caught.value.auth and caught.value.status == 403


# ----------------------------------------------------------------------------- kept text


def test_the_kept_text_round_trips_and_is_small() -> None:
    kept = (
        Invoice(
            "48eff763-ea80-4345-b688-78249eb165a8", date(2026, 10, 1), date(2026, 10, 31), True
        ),
        Invoice("b", date(2026, 11, 1), date(2026, 11, 30), False),
    )
    text = invoices.text(kept)
    assert invoices.parse(text) == kept
    assert len(text) < 2 * 80
    assert invoices.parse(invoices.text(())) == ()


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "{",
        '{"x": []}',
        '{"invoices": [["a", "2026-10-01"]]}',
        '{"invoices": [["a", "2026-10-01", "2026-10-31", "no"]]}',
    ],
)
def test_a_missing_or_unreadable_kept_text_is_none(text: str | None) -> None:
    assert invoices.parse(text) is None


@pytest.mark.parametrize(
    ("slow_interval", "expected"),
    [
        (timedelta(seconds=1), timedelta(hours=1)),
        (timedelta(minutes=10), timedelta(hours=1)),
        (timedelta(hours=3), timedelta(hours=3)),
    ],
)
def test_invoices_are_read_at_most_hourly(slow_interval: timedelta, expected: timedelta) -> None:
    assert slow.cadence(SourceName.INVOICES, slow_interval) == expected
    assert slow.cadence(SourceName.CREDENTIALS, slow_interval) == slow_interval


# ----------------------------------------------------------------------------- cadence


def commit(store: Store, collected: Collected) -> None:
    """What the cycle's commit writes of a collect (cursors and resume texts)."""
    with store.transaction():
        for source, cursor in collected.cursors.items():
            store.set_cursor("main", str(source), cursor)
        for source, resume in collected.resumes.items():
            store.set_resume("main", str(source), resume)


async def poll(
    store: Store, api: Api, at: datetime, slow_interval: timedelta = timedelta(minutes=10)
) -> Collected:
    async with client(api) as telnyx:
        got = await collect(
            "main", telnyx, store, NEEDS, at, first_start=NOW, slow_interval=slow_interval
        )
    commit(store, got)
    return got


@pytest.mark.parametrize(
    ("slow_interval", "due_after"),
    [(timedelta(minutes=10), timedelta(hours=1)), (timedelta(hours=2), timedelta(hours=2))],
)
async def test_collect_reads_invoices_first_then_only_when_due_and_keeps_them_between(
    tmp_path: Path, slow_interval: timedelta, due_after: timedelta
) -> None:
    store = Store.open(tmp_path / "state.db")
    api = Api(page([item("a"), item("b", paid=True)], 1, 1))
    first = await poll(store, api, NOW, slow_interval)
    assert len(api.requests) == 1 and SourceName.INVOICES in first.succeeded
    assert first.snapshot.invoices is not None and len(first.snapshot.invoices) == 2

    between = await poll(store, api, NOW + due_after - timedelta(seconds=1), slow_interval)
    assert len(api.requests) == 1  # not due: nothing sent
    assert between.snapshot.invoices == first.snapshot.invoices  # the rule still sees them
    assert between.succeeded == frozenset() and not between.failures

    await poll(store, api, NOW + due_after, slow_interval)
    assert len(api.requests) == 2
    store.close()


async def test_a_failed_read_is_a_failure_and_is_tried_again_next_cycle(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state.db")
    await poll(store, Api(page([item("a")], 1, 1)), NOW)
    failing = Api({"errors": [{"code": "10007", "title": "Unexpected error"}]}, status=400)
    later = NOW + timedelta(hours=1)
    failed = await poll(store, failing, later)
    assert SourceName.INVOICES in failed.failures
    await poll(store, failing, later + timedelta(minutes=1))
    assert len(failing.requests) == 2  # the cursor stayed: still due
    store.close()


async def test_invoices_are_not_read_when_no_rule_needs_them(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state.db")
    api = Api(page([item("a")], 1, 1))
    async with client(api) as telnyx:
        got = await collect("main", telnyx, store, Needs(sources=frozenset()), NOW, first_start=NOW)
    assert api.requests == [] and got.snapshot.invoices is None
    store.close()

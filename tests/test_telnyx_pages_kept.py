"""A one-page read whose body is byte for byte the last one's is not validated again.

The steady state of a cycle re-reads the audit and webhook overlap windows, in which
nothing changed: the client keeps the digest and values of each endpoint's last one-page
read, and its last balance, and gives those values again for the same bytes. These tests
count the pages validated (`pages_parsed`) and check the values stay right when the body
changes, when a read has more pages (never kept: the memory stays one page per endpoint)
and when a kept body is followed by a malformed one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from watcher.core.model import AuditEvent
from watcher.providers.telnyx.client import TelnyxClient, TelnyxError

SINCE = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


class Api:
    """Answers each request with the next body of `bodies` (the last one repeats)."""

    def __init__(self, *bodies: Any) -> None:
        self.bodies = list(bodies)
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        body = self.bodies.pop(0) if len(self.bodies) > 1 else self.bodies[0]
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(200, content=raw)


def client(api: Api) -> TelnyxClient:
    return TelnyxClient(
        base_url="https://api.telnyx.test/v2",
        api_key=SecretStr("KEY0123456789abcdef"),
        transport=httpx.MockTransport(api),
    )


def events(*ids: str) -> dict[str, Any]:
    return {"data": [{"id": i, "created_at": "2026-11-23T10:00:01Z"} for i in ids]}


def paged(ids: list[str], number: int, total: int) -> dict[str, Any]:
    return {**events(*ids), "meta": {"page_number": number, "total_pages": total}}


async def test_the_same_one_page_body_is_validated_once_and_gives_the_same_values() -> None:
    api = Api(events("a", "b"))
    async with client(api) as c:
        first = await c.list_audit_events(created_after=SINCE)
        second = await c.list_audit_events(created_after=SINCE)
        third = await c.list_audit_events(created_after=SINCE)
        assert (api.requests, c.pages_parsed) == (3, 1)
        second.clear()  # a caller's list is its own: the kept values are not touched
        assert [e.id for e in await c.list_audit_events(created_after=SINCE)] == ["a", "b"]
    assert (
        first
        == third
        == [
            AuditEvent(id="a", created_at=datetime(2026, 11, 23, 10, 0, 1, tzinfo=UTC)),
            AuditEvent(id="b", created_at=datetime(2026, 11, 23, 10, 0, 1, tzinfo=UTC)),
        ]
    )


async def test_a_changed_body_is_validated_and_its_values_given() -> None:
    api = Api(events("a"), events("a", "b"), events("b"))
    async with client(api) as c:
        reads = [[e.id for e in await c.list_audit_events(created_after=SINCE)] for _ in range(4)]
        assert c.pages_parsed == 3
    assert reads == [["a"], ["a", "b"], ["b"], ["b"]]


async def test_a_read_of_more_pages_is_never_kept() -> None:
    api = Api(paged(["a"], 1, 2), paged(["b"], 2, 2), paged(["a"], 1, 2), paged(["b"], 2, 2))
    async with client(api) as c:
        for _ in range(2):
            assert [e.id for e in await c.list_audit_events(created_after=SINCE)] == ["a", "b"]
        assert c.pages_parsed == 4


async def test_each_endpoint_keeps_its_own_page() -> None:
    api = Api({"data": []})
    async with client(api) as c:
        assert await c.list_audit_events(created_after=SINCE) == []
        assert await c.list_failed_deliveries(started_gte=SINCE) == []
        assert await c.list_audit_events(created_after=SINCE) == []
        assert c.pages_parsed == 2


async def test_a_malformed_body_after_a_kept_one_is_still_an_error() -> None:
    api = Api(events("a"), b'{"data": [{"created_at": "2026-11-23T10:00:01Z"}]}', events("a"))
    async with client(api) as c:
        await c.list_audit_events(created_after=SINCE)
        with pytest.raises(TelnyxError, match=r"data\.0\.id"):
            await c.list_audit_events(created_after=SINCE)
        assert [e.id for e in await c.list_audit_events(created_after=SINCE)] == ["a"]


def balance(amount: str) -> dict[str, Any]:
    money = {"balance": amount, "available_credit": amount, "pending": "0.00"}
    return {"data": {**money, "currency": "USD", "credit_limit": "0.00"}}


async def test_the_same_balance_body_is_validated_once_and_a_changed_one_again() -> None:
    api = Api(balance("10.00"), balance("10.00"), balance("9.50"), b'{"data": {}}', balance("9.50"))
    async with client(api) as c:
        first, second, third = [await c.get_balance() for _ in range(3)]
        with pytest.raises(TelnyxError, match=r"data\.balance"):
            await c.get_balance()
        fifth = await c.get_balance()
        assert c.pages_parsed == 2  # 10.00 and 9.50 once each (the error changed nothing)
    assert first is second and first.balance == Decimal("10.00")
    assert third is fifth and third.balance == Decimal("9.50")

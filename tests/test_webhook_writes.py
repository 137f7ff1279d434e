"""The failed deliveries a collect gives the commit to write: only those the state does
not hold as they are. A cycle that re-reads an overlap window in which nothing changed
writes none (the steady state of many accounts), a changed one is written again, and the
window the rules count is the same either way. Against a real SQLite store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from watcher.core.model import SourceName
from watcher.providers.base import Collected, Needs
from watcher.providers.telnyx.client import TelnyxClient
from watcher.providers.telnyx.sources import collect
from watcher.state.store import Store

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NEEDS = Needs(sources=frozenset({SourceName.WEBHOOKS}), window=timedelta(minutes=15))


def delivery(n: int, error: str = "connection refused") -> dict[str, Any]:
    return {
        "id": f"d-{n}",
        "started_at": f"2026-12-01T11:5{n}:00Z",
        "status": "failed",
        "attempts": [{"errors": [{"detail": error}]}],
    }


async def cycle(store: Store, body: dict[str, Any], at: datetime) -> Collected:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps(body).encode())

    async with TelnyxClient(
        base_url="https://api.telnyx.test/v2",
        api_key=SecretStr("KEY0123456789abcdef"),
        transport=httpx.MockTransport(answer),
    ) as client:
        got = await collect("main", client, store, NEEDS, at, first_start=NOW)
    with store.transaction():  # what the cycle's commit writes of it
        store.upsert_webhook_failures("main", got.webhook_failures)
        for source, cursor in got.cursors.items():
            store.set_cursor("main", str(source), cursor)
    return got


async def test_only_deliveries_the_state_lacks_as_they_are_are_written(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state.db")
    try:
        first = await cycle(store, {"data": [delivery(1), delivery(2)]}, NOW)
        assert [d.id for d in first.webhook_failures] == ["d-1", "d-2"]

        same = await cycle(store, {"data": [delivery(1), delivery(2)]}, NOW + timedelta(seconds=60))
        assert same.webhook_failures == ()
        assert [d.id for d in same.snapshot.webhook_failures] == ["d-1", "d-2"]

        body = {"data": [delivery(1), delivery(2, "timed out"), delivery(3)]}
        changed = await cycle(store, body, NOW + timedelta(seconds=120))
        assert [(d.id, d.error) for d in changed.webhook_failures] == [
            ("d-2", "timed out"),
            ("d-3", "connection refused"),
        ]
        window = store.webhook_failures("main", NOW - timedelta(minutes=15))
        assert [(d.id, d.error) for d in window] == [
            ("d-1", "connection refused"),
            ("d-2", "timed out"),
            ("d-3", "connection refused"),
        ]
        assert changed.snapshot.webhook_failures == tuple(window)
    finally:
        store.close()

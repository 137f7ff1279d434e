"""Which TCP connection each request of `TelnyxClient` uses, seen by a real HTTP/1.1
server on 127.0.0.1 that keeps connections alive and records (connection, request).

GETs share one kept-alive connection; the top-up POST never goes over a connection that
has carried anything before (a stale kept-alive connection could fail after the request
was written, turning a payment into `unknown`), and none is kept after it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import pytest
from conftest import json_answer
from pydantic import SecretStr

from watcher.providers.telnyx.client import TelnyxClient, TopupOutcome, keepalive_expiry

KEY = "KEY0123456789connectionsSECRET"
BALANCE = {
    "data": {
        "available_credit": "400.00",
        "balance": "300.00",
        "credit_limit": "100.00",
        "currency": "USD",
        "pending": "0.00",
        "record_type": "balance",
    }
}
PAID = {"data": {"id": "de06811a-2e43-4561-af5a-7d0a26e20aaa", "amount_cents": 10000}}


@dataclass
class KeepAliveServer:
    """(connection number, method, path) of every request, in arrival order."""

    port: int = 0
    seen: list[tuple[int, str, str]] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        number = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
                length = int({k.lower(): v for k, v in headers.items()}.get("content-length", 0))
                await reader.readexactly(length)
                self.seen.append((number, method, path.split("?")[0]))
                body = json.dumps(PAID if method == "POST" else BALANCE).encode()
                writer.write(json_answer(body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open_now -= 1
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[KeepAliveServer]:
    state = KeepAliveServer()
    listener = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield state


def client_for(server: KeepAliveServer) -> TelnyxClient:
    return TelnyxClient(base_url=f"http://127.0.0.1:{server.port}/v2", api_key=SecretStr(KEY))


async def test_gets_share_one_kept_alive_connection(server: KeepAliveServer) -> None:
    async with client_for(server) as client:
        for _ in range(3):
            await client.get_balance()
    assert [c for c, _, _ in server.seen] == [1, 1, 1]


async def test_the_topup_post_never_reuses_a_connection(server: KeepAliveServer) -> None:
    async with client_for(server) as client:
        await client.get_balance()
        first = await client.create_topup(Decimal("100.00"), timeout=5.0)
        second = await client.create_topup(Decimal("100.00"), timeout=5.0)
        await client.get_balance()
        await asyncio.sleep(0)  # let the server see a closed connection
        posts = [c for c, method, _ in server.seen if method == "POST"]
        gets = [c for c, method, _ in server.seen if method == "GET"]
        assert (first.outcome, second.outcome) == (TopupOutcome.SUCCEEDED,) * 2
        assert len(set(posts)) == 2, "each POST on a connection of its own"
        assert not set(posts) & set(gets), "no POST on a connection a GET used"
        assert all([c for c, _, _ in server.seen].count(c) == 1 for c in posts), (
            "nothing else on a POST's connection"
        )
        assert gets == [gets[0]] * 2, "the GETs keep their own connection"
        for _ in range(20):  # the POSTs' connections are closed, not kept
            if server.open_now == 1:
                break
            await asyncio.sleep(0.01)
        assert server.open_now == 1


@pytest.mark.parametrize(
    ("interval", "expiry"),
    [
        (timedelta(seconds=1), 6.0),
        (timedelta(seconds=10), 15.0),
        (timedelta(seconds=55), 60.0),
        (timedelta(seconds=56), 5.0),  # servers commonly drop idle connections at 60 s
        (timedelta(minutes=5), 5.0),
    ],
)
def test_keepalive_expiry_spans_one_poll_interval_under_a_minute(
    interval: timedelta, expiry: float
) -> None:
    assert keepalive_expiry(interval) == expiry


def test_a_key_that_cannot_be_sent_is_refused_when_the_client_is_built() -> None:
    """The HTTP clients are built at the first request; the headers are still checked at
    construction, as when the client was built there."""
    with pytest.raises(UnicodeEncodeError):
        TelnyxClient(base_url="http://127.0.0.1:9/v2", api_key=SecretStr("k\u00e9y-not-ascii"))

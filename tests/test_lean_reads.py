"""A pooled read is sent without an `httpx.Request` (`Connections.fetch`, `Lane.fetch`):
what reaches the server must be what httpx would have sent, byte for byte, and a failure
must read as it did. A real HTTP/1.1 server on 127.0.0.1 records each request's head;
the same calls go through a client on a host pool and through one without."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest
from conftest import json_answer
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from watcher.providers.http import query_string, shared_ssl_context
from watcher.providers.pool import HostPool
from watcher.providers.telnyx.client import TelnyxClient, TelnyxError
from watcher.providers.transport import Lane

KEY = "KEY0123456789leanSECRET"
SINCE = datetime(2026, 12, 1, 11, 59, 30, 250000, tzinfo=UTC)
BALANCE = {
    "data": {
        "available_credit": "400.00",
        "balance": "300.00",
        "credit_limit": "100.00",
        "currency": "USD",
        "pending": "0.00",
    }
}


@dataclass
class HeadServer:
    """Answers every GET (balance or an empty page) and keeps each request's head."""

    port: int = 0
    heads: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    """Each request's line and header lines, in order and as sent."""
    bodies: list[bytes] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                line, *headers = head.rstrip("\r\n").split("\r\n")
                self.heads.append((line, tuple(headers)))
                sizes = [
                    h.split(":")[1] for h in headers if h.lower().startswith("content-length:")
                ]
                self.bodies.append(await reader.readexactly(int(sizes[0]) if sizes else 0))
                path = line.split(" ")[1]
                body = json.dumps(BALANCE if path.endswith("/balance") else {"data": []})
                writer.write(json_answer(body.encode()))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[HeadServer]:
    recorder = HeadServer()
    listening = await asyncio.start_server(recorder.handle, "127.0.0.1", 0)
    recorder.port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield recorder


async def calls(client: TelnyxClient) -> None:
    await client.get_balance()
    await client.list_audit_events(created_after=SINCE)
    pages = client.failed_delivery_pages(started_gte=SINCE, started_lte=SINCE, first_page=3)
    async for _ in pages:
        pass


@pytest.mark.parametrize("base_path", ["", "/v2", "/v2/"])
async def test_a_pooled_read_sends_what_httpx_sends(server: HeadServer, base_path: str) -> None:
    base_url = f"http://127.0.0.1:{server.port}{base_path}"
    async with TelnyxClient(base_url=base_url, api_key=SecretStr(KEY)) as plain:
        await calls(plain)
    by_httpx, server.heads[:] = list(server.heads), []
    pool = HostPool(base_url, limit=2, keepalive=5.0)
    async with TelnyxClient(base_url=base_url, api_key=SecretStr(KEY), pool=pool) as pooled:
        await calls(pooled)
    assert server.heads == by_httpx
    assert [line for line, _ in by_httpx] == [
        f"GET {base_path.rstrip('/')}/balance HTTP/1.1",
        f"GET {base_path.rstrip('/')}/audit_events?filter%5Bcreated_after%5D="
        "2026-12-01T11%3A59%3A30Z&sort=asc&page%5Bsize%5D=250&page%5Bnumber%5D=1 HTTP/1.1",
        f"GET {base_path.rstrip('/')}/webhook_deliveries?filter%5Bstatus%5D%5Beq%5D=failed"
        "&filter%5Bstarted_at%5D%5Bgte%5D=2026-12-01T11%3A59%3A30Z&page%5Bsize%5D=250"
        "&filter%5Bstarted_at%5D%5Blte%5D=2026-12-01T11%3A59%3A31Z&page%5Bnumber%5D=3 HTTP/1.1",
    ]
    assert by_httpx[0][1][0] == f"Host: 127.0.0.1:{server.port}"
    assert f"Authorization: Bearer {KEY}" in by_httpx[0][1]


async def test_a_post_through_a_lane_is_what_httpx_sends(server: HeadServer) -> None:
    """Byte for byte, head and body: a lane writes the request itself (no h11)."""
    url = f"http://127.0.0.1:{server.port}/v2/balance?a=1&b=%C3%A9"
    sent = []
    for transport in (None, Lane(ssl_context=shared_ssl_context(), keepalive=5.0)):
        async with httpx.AsyncClient(transport=transport) as http:
            headers = {"Authorization": f"Bearer {KEY}", "Idempotency-Key": "k-1"}
            await http.post(url, json={"amount": "10.00", "currency": "USD"}, headers=headers)
            await http.get(url)
        sent.append((server.heads[:], server.bodies[:]))
        server.heads[:], server.bodies[:] = [], []
    assert sent[0] == sent[1]
    heads, bodies = sent[0]
    assert [line for line, _ in heads] == [
        "POST /v2/balance?a=1&b=%C3%A9 HTTP/1.1",
        "GET /v2/balance?a=1&b=%C3%A9 HTTP/1.1",
    ]
    assert bodies[0] == b'{"amount":"10.00","currency":"USD"}'
    assert f"Content-Length: {len(bodies[0])}" in heads[0][1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_refused_pooled_read_fails_as_an_unpooled_one() -> None:
    """The same kind of error, retryable (the texts of the causes differ: httpx's pool
    says "All connection attempts failed", a lane what the socket said)."""
    base_url = f"http://127.0.0.1:{closed_port()}"
    errors = []
    for pool in (None, HostPool(base_url, limit=1, keepalive=5.0)):
        client = TelnyxClient(base_url=base_url, api_key=SecretStr(KEY), pool=pool, max_attempts=1)
        async with client:
            with pytest.raises(TelnyxError) as caught:
                await client.get_balance()
        errors.append((str(caught.value).split(":")[:2], caught.value.retryable))
    assert errors[0] == errors[1] == (["GET /balance", " request failed (ConnectError"], True)


async def test_a_pooled_read_that_times_out_says_so_as_an_unpooled_one() -> None:
    """The error names the time limit ("timed out after 0.3s"): the request built for
    the exception carries the timeouts the read was sent with."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads, never answers
        writer.close()

    listening = await asyncio.start_server(silent, "127.0.0.1", 0)
    base_url = f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}"
    texts = []
    async with listening:
        for pool in (None, HostPool(base_url, limit=1, keepalive=5.0)):
            client = TelnyxClient(
                base_url=base_url, api_key=SecretStr(KEY), pool=pool, max_attempts=1, timeout=0.3
            )
            async with client:
                with pytest.raises(TelnyxError) as caught:
                    await client.get_balance()
            texts.append(str(caught.value))
    assert texts == ["GET /balance timed out after 0.3s"] * 2


async def test_a_key_http_forbids_is_sent_nowhere_and_named_nowhere(server: HeadServer) -> None:
    """A key with a line break (a header smuggled in) is refused before anything is
    sent, pooled or not, and the error does not quote it (h11's own refusal does)."""
    base_url = f"http://127.0.0.1:{server.port}"
    texts = []
    for pool in (None, HostPool(base_url, limit=1, keepalive=5.0)):
        key = SecretStr(KEY + "\r\nX-Smuggled: 1")
        client = TelnyxClient(base_url=base_url, api_key=key, pool=pool, max_attempts=1)
        async with client:
            with pytest.raises(TelnyxError) as caught:
                await client.get_balance()
        texts.append((str(caught.value), caught.value.retryable))
    assert server.heads == []
    assert (
        texts
        == [("GET /balance: not sent (a header or the target is not valid HTTP; not shown)", False)]
        * 2
    )


@given(st.dictionaries(st.text(), st.text()))
def test_a_query_string_is_what_urlencode_gives(params: dict[str, str]) -> None:
    """Percent-encoded once per name and value (memoised), the same text as urlencode."""
    assert query_string(params) == urllib.parse.urlencode(params)
    assert query_string(params) == urllib.parse.urlencode(params)  # from the memo

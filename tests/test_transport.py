"""The reads' HTTP/1.1 lane (watcher/providers/transport.py) and the host pool over it,
against real loopback servers: a raw asyncio server that answers each request as a test
scripts it (kept alive, closed, reset, stalled, malformed, chunked, gzip), a TLS server
with a certificate made here, and the Telnyx client through the pool."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import json
import shutil
import socket
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from watcher.providers.http import (
    exception_text,
    is_retryable_exception,
    never_sent,
    send_once,
    shared_ssl_context,
)
from watcher.providers.pool import HostPool
from watcher.providers.telnyx.client import TelnyxClient
from watcher.providers.telnyx.sim import SimAccount, SimServer
from watcher.providers.transport import Lane

BODY = json.dumps({"data": {"balance": "10.00", "currency": "USD"}}).encode()
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)

Writer = asyncio.StreamWriter
Script = Callable[[int, Writer], Awaitable[bool]]
"""Answers request number N (from 1) on a connection; False closes the connection."""


async def answer_ok(_: int, writer: Writer) -> bool:
    writer.write(OK)
    return True


@dataclass
class RawServer:
    """Reads HTTP/1.1 requests and lets `script` answer each; records what it saw."""

    script: Script = answer_ok
    seen: list[tuple[int, str]] = field(default_factory=list)  # (connection, method)
    connections: int = 0
    requests: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                fields = dict(line.lower().split(": ", 1) for line in head[1:] if ": " in line)
                await reader.readexactly(int(fields.get("content-length", "0")))
                self.requests += 1
                self.seen.append((number, head[0].split(" ")[0]))
                keep = await self.script(self.requests, writer)
                await writer.drain()
                if not keep:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def serving(server: RawServer, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        listener.close()
        await listener.wait_closed()


def lane(keepalive: float = 60.0, clock: Callable[[], float] | None = None) -> Lane:
    if clock is None:
        return Lane(ssl_context=shared_ssl_context(), keepalive=keepalive)
    return Lane(ssl_context=shared_ssl_context(), keepalive=keepalive, clock=clock)


def req(url: str, method: str = "GET", read: float = 5.0) -> httpx.Request:
    timeout = httpx.Timeout(5.0, read=read)
    return httpx.Request(method, url + "/balance", extensions={"timeout": timeout.as_dict()})


async def answers(server: RawServer, n: int) -> list[httpx.Response]:
    """`n` GETs on one lane to `server`, one after another."""
    one = lane()
    async with serving(server) as url:
        got = [await one.handle_async_request(req(url)) for _ in range(n)]
        await one.aclose()
    return got


def reset(writer: Writer) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a crashed proxy does."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# ----------------------------------------------------------------------------- keep-alive


async def test_requests_share_one_kept_alive_connection() -> None:
    server = RawServer()
    one = lane()
    async with serving(server) as url:
        for _ in range(3):
            response = await one.handle_async_request(req(url))
            assert response.status_code == 200
            assert json.loads(response.read()) == json.loads(BODY)
        await one.aclose()
    assert server.connections == 1 and server.requests == 3


async def test_a_connection_the_server_closed_between_requests_is_replaced() -> None:
    async def close_after(_: int, writer: Writer) -> bool:
        writer.write(OK)
        return False  # answered, then closed while the lane keeps it

    server = RawServer(close_after)
    one = lane()
    async with serving(server) as url:
        await one.handle_async_request(req(url))
        await asyncio.sleep(0.05)  # the close arrives while the connection is idle
        response = await one.handle_async_request(req(url))
        await one.aclose()
    assert response.status_code == 200
    assert server.seen == [(1, "GET"), (2, "GET")]


async def test_a_get_on_a_connection_closed_as_it_was_sent_is_sent_again_once() -> None:
    async def close_second(n: int, writer: Writer) -> bool:
        if n == 2:
            return False  # read the request, then closed without an answer
        writer.write(OK)
        return True

    server = RawServer(close_second)
    one = lane()
    async with serving(server) as url:
        await one.handle_async_request(req(url))
        response = await one.handle_async_request(req(url))
        await one.aclose()
    assert response.status_code == 200
    assert server.seen == [(1, "GET"), (1, "GET"), (2, "GET")]


async def test_a_post_on_a_connection_closed_as_it_was_sent_is_never_sent_again() -> None:
    async def close_second(n: int, writer: Writer) -> bool:
        if n == 2:
            return False
        writer.write(OK)
        return True

    server = RawServer(close_second)
    one = lane()
    async with serving(server) as url:
        await one.handle_async_request(req(url))
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await one.handle_async_request(req(url, "POST"))
        await asyncio.sleep(0.05)
        await one.aclose()
    assert server.seen == [(1, "GET"), (1, "POST")]
    assert not never_sent(caught.value)


async def test_connection_close_from_the_server_opens_a_new_connection_next_time() -> None:
    async def says_close(_: int, writer: Writer) -> bool:
        writer.write(OK.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
        return True  # the lane must not wait for the server to act on it

    server = RawServer(says_close)
    one = lane()
    async with serving(server) as url:
        await one.handle_async_request(req(url))
        await one.handle_async_request(req(url))
        await one.aclose()
    assert [c for c, _ in server.seen] == [1, 2]


async def test_an_exchange_leaves_nothing_for_the_cyclic_collector() -> None:
    """An answer and its parser refer to each other while it is read; that is undone at
    the end, so reads are freed as they go (a cycle of 1,000 accounts left 3,000 such
    pairs a cycle for the collector, which then ran more often)."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        await answers(RawServer(), 3)
        gc.collect()
        left = [o for o in gc.garbage if type(o).__module__.startswith(("watcher", "httptools"))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert left == []


async def test_a_request_saying_connection_close_is_not_followed_on_its_connection() -> None:
    server = RawServer()
    one = lane()
    async with serving(server) as url:
        closing = req(url)
        closing.headers["Connection"] = "close"
        await one.handle_async_request(closing)
        await one.handle_async_request(req(url))
        await one.handle_async_request(req(url))
        await one.aclose()
    assert [c for c, _ in server.seen] == [1, 2, 2]


async def test_bytes_after_an_answer_end_its_connection_and_not_the_answer() -> None:
    """An answer followed by bytes nobody asked for (a second answer, or garbage) is
    read as sent; the connection is not used again (what follows would be misread)."""

    async def extra(n: int, writer: Writer) -> bool:
        writer.write(OK + (b"HTTP/1.1 200 OK\r\n" if n == 1 else b"\x00garbage"))
        return True

    server = RawServer(extra)
    first, second, third = await answers(server, 3)
    assert first.read() == second.read() == third.read() == BODY
    assert [c for c, _ in server.seen] == [1, 2, 3]


async def test_an_answer_in_one_byte_pieces_is_read_whole() -> None:
    answer = OK.replace(b"200 OK", b"200 All Right", 1)

    async def trickle(_: int, writer: Writer) -> bool:
        for i in range(len(answer)):
            writer.write(answer[i : i + 1])
            await writer.drain()
            await asyncio.sleep(0)
        return True

    server = RawServer(trickle)
    response, again = await answers(server, 2)
    assert (response.status_code, response.reason_phrase) == (200, "All Right")
    assert response.headers["content-length"] == str(len(BODY))
    assert response.read() == again.read() == BODY
    assert server.connections == 1


async def test_an_answer_to_head_has_no_body_whatever_its_length_says() -> None:
    async def head(_: int, writer: Writer) -> bool:
        writer.write(OK.removesuffix(BODY))  # the length of a GET's body, and none
        return True

    async with serving(RawServer(head)) as url:
        one = lane()
        response = await asyncio.wait_for(one.handle_async_request(req(url, "HEAD")), 2.0)
        await one.aclose()
    assert (response.status_code, response.read()) == (200, b"")
    assert response.headers["content-length"] == str(len(BODY))


async def test_an_idle_connection_is_not_kept_past_keepalive() -> None:
    now = [0.0]
    server = RawServer()
    one = lane(keepalive=5.0, clock=lambda: now[0])
    async with serving(server) as url:
        await one.handle_async_request(req(url))
        now[0] = 4.9
        await one.handle_async_request(req(url))
        now[0] = 4.9 + 5.0
        await one.handle_async_request(req(url))
        await one.aclose()
    assert [c for c, _ in server.seen] == [1, 1, 2]


# ----------------------------------------------------------------------------- failures


async def test_a_refused_connection_is_a_connect_error_that_sent_nothing() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(httpx.ConnectError) as caught:
        await lane().handle_async_request(req(f"http://127.0.0.1:{port}"))
    assert never_sent(caught.value) and is_retryable_exception(caught.value)


async def test_a_reset_is_a_read_error() -> None:
    async def rst(_: int, writer: Writer) -> bool:
        reset(writer)
        return False

    async with serving(RawServer(rst)) as url:
        with pytest.raises(httpx.ReadError) as caught:
            await lane().handle_async_request(req(url))
    assert is_retryable_exception(caught.value) and not never_sent(caught.value)


async def test_a_stalled_server_is_a_read_timeout_with_its_limit() -> None:
    async def stall(_: int, writer: Writer) -> bool:
        await asyncio.sleep(2)
        return False

    async with serving(RawServer(stall)) as url:
        with pytest.raises(httpx.ReadTimeout) as caught:
            await lane().handle_async_request(req(url, read=0.2))
    assert exception_text("GET /balance", caught.value) == "GET /balance timed out after 0.2s"


async def test_a_trickling_server_is_stopped_by_the_total_limit_and_the_lane_recovers() -> None:
    async def trickle(n: int, writer: Writer) -> bool:
        if n > 1:
            writer.write(OK)
            return True
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(40):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.05)
        return False

    server = RawServer(trickle)
    pool = HostPool("x", limit=1, keepalive=60.0)
    async with serving(server) as url, httpx.AsyncClient(transport=pool.transport()) as http:
        outcome = await send_once(http, http.build_request("GET", url + "/b", timeout=1.0), 0.3)
        assert isinstance(outcome, httpx.ReadTimeout)
        again = await send_once(http, http.build_request("GET", url + "/b"), 5.0)
        assert isinstance(again, httpx.Response) and again.status_code == 200
    assert server.connections == 2


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}",
    ],
    ids=["status", "not-http", "length", "chunk-size", "body-cut-short"],
)
async def test_a_malformed_answer_is_a_remote_protocol_error(answer: bytes) -> None:
    async def bad(_: int, writer: Writer) -> bool:
        writer.write(answer)
        await asyncio.sleep(0.2)
        return False

    async with serving(RawServer(bad)) as url:
        with pytest.raises(httpx.RemoteProtocolError):
            await lane().handle_async_request(req(url))


async def test_a_server_that_closes_before_answering_disconnected() -> None:
    async def hang_up(_: int, writer: Writer) -> bool:
        return False

    async with serving(RawServer(hang_up)) as url:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await lane().handle_async_request(req(url))


# ----------------------------------------------------------------------------- bodies


async def test_a_chunked_gzip_body_in_pieces_is_read_whole_and_decoded() -> None:
    packed = gzip.compress(BODY)
    chunks = [packed[:7], packed[7:20], packed[20:]]

    async def chunked(_: int, writer: Writer) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for piece in chunks:
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        return True

    server = RawServer(chunked)
    pool = HostPool("x", limit=2, keepalive=60.0)
    async with serving(server) as url, httpx.AsyncClient(transport=pool.transport()) as http:
        first = await http.get(url + "/a")
        second = await http.get(url + "/b")
    assert first.json() == second.json() == json.loads(BODY)
    assert server.connections == 1


# ----------------------------------------------------------------------------- TLS


def make_certificate(tmp_path: Path, names: str) -> tuple[Path, Path]:
    """A self-signed certificate (and its key) for the subjectAltName `names`."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=watcher-test"),
            *("-addext", f"subjectAltName={names}"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return make_certificate(tmp_path, "DNS:localhost,IP:127.0.0.1")


def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


async def test_https_with_a_trusted_certificate_is_kept_alive(
    certificate: tuple[Path, Path],
) -> None:
    server = RawServer()
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    one = Lane(ssl_context=trusting, keepalive=60.0)
    async with serving(server, server_tls(certificate)) as url:
        for _ in range(2):
            assert (await one.handle_async_request(req(url))).status_code == 200
        await one.aclose()
    assert server.connections == 1


async def test_https_with_an_untrusted_certificate_is_refused_before_sending(
    certificate: tuple[Path, Path],
) -> None:
    server = RawServer()
    async with serving(server, server_tls(certificate)) as url:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED") as caught:
            await lane().handle_async_request(req(url))
    assert never_sent(caught.value) and server.requests == 0


async def test_https_checks_the_host_name(tmp_path: Path) -> None:
    elsewhere = make_certificate(tmp_path, "DNS:elsewhere.test")  # not 127.0.0.1
    trusting = ssl.create_default_context(cafile=str(elsewhere[0]))
    server = RawServer()
    async with serving(server, server_tls(elsewhere)) as url:
        with pytest.raises(httpx.ConnectError, match="IP address mismatch"):
            await Lane(ssl_context=trusting, keepalive=60.0).handle_async_request(req(url))
    assert server.requests == 0


# ----------------------------------------------------------------------------- the pool


async def test_many_clients_of_a_host_share_the_pools_lanes_against_the_simulator() -> None:
    accounts = [SimAccount(api_key=f"key-{i}") for i in range(30)]
    with SimServer(accounts[0], accounts=accounts) as sim:
        pool = HostPool(sim.base_url, limit=5, keepalive=60.0)
        clients = [
            TelnyxClient(base_url=sim.base_url, api_key=SecretStr(f"key-{i}"), pool=pool)
            for i in range(30)
        ]
        try:
            balances = await asyncio.gather(*(c.get_balance() for c in clients))
            await asyncio.gather(*(c.get_balance() for c in clients))
            opened = pool.connections
        finally:
            for client in clients:
                await client.aclose()
        connections = sim.traffic.connections
    assert len(balances) == 30
    assert opened == connections <= 5


async def test_an_interim_answer_is_skipped_and_a_body_until_close_is_read_whole() -> None:
    async def interim_then_close(_: int, writer: Writer) -> bool:
        writer.write(b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\nHTTP/1.0 200 OK\r\n\r\n")
        await writer.drain()
        writer.write(BODY)
        return False  # the end of the body is the close

    server = RawServer(interim_then_close)
    first, second = await answers(server, 2)
    assert first.read() == second.read() == BODY
    assert (first.reason_phrase, list(first.headers.keys())) == ("OK", [])
    assert server.connections == 2  # a body until the close is never followed by another


async def test_an_answer_without_a_body_keeps_the_connection() -> None:
    async def no_content(n: int, writer: Writer) -> bool:
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n" if n == 1 else OK)
        return True

    server = RawServer(no_content)
    empty, full = await answers(server, 2)
    assert (empty.status_code, empty.read()) == (204, b"")
    assert full.read() == BODY and server.connections == 1


async def test_a_context_factory_is_called_at_the_first_https_connection_only(
    certificate: tuple[Path, Path],
) -> None:
    """A lane given a factory (the pool gives `shared_ssl_context`) builds no TLS context
    for http:// (parsing the CA bundle costs ~30 ms and ~1.7 MiB), and one for https."""
    made: list[ssl.SSLContext] = []

    def factory() -> ssl.SSLContext:
        made.append(ssl.create_default_context(cafile=str(certificate[0])))
        return made[-1]

    one = Lane(ssl_context=factory, keepalive=60.0)
    plain, secure = RawServer(), RawServer()
    async with serving(plain) as url:
        assert (await one.handle_async_request(req(url))).status_code == 200
    assert made == []
    async with serving(secure, server_tls(certificate)) as url:
        for _ in range(2):
            assert (await one.handle_async_request(req(url))).status_code == 200
            await one.aclose()  # the next request opens a new connection
    assert len(made) == 1 and secure.connections == 2

"""A light HTTP/1.1 client connection for the reads: one kept-alive connection on an
`asyncio.Protocol`, the messages parsed by h11 (DESIGN §2, issue 9's CPU budget).

httpx's own async stack (httpcore's pool, anyio streams, h11) costs 1.2–2.5 ms of CPU per
request here; this costs a fraction of that (`bench/httpx_floor.py`). A `Lane` is one
connection, used by one request at a time (the host's `HostPool` hands lanes out), and
speaks httpx's types: it takes an `httpx.Request` and gives an `httpx.Response` whose
body has been read in full, or raises the httpx exception httpx itself would raise:

- `ConnectTimeout` / `ConnectError` when no connection could be opened (refused, name
  not resolved, TLS handshake or certificate failure): nothing was sent;
- `ReadTimeout` when the server sends nothing for the request's read timeout;
- `ReadError` when the connection is reset, `WriteError` when it cannot be written;
- `RemoteProtocolError` for a malformed answer, or a connection closed before the end of
  the answer ("Server disconnected without sending a response.").

Timeouts come from the request's `timeout` extension (connect, read), as httpx sets it.
A read that a client builds many times (the same origin and headers, another target) can
skip `httpx.Request` altogether: `Lane.fetch` takes an `Ask` (method, origin, target,
the header lines, the two timeouts), and an `httpx.Request` is built from it only for
an exception that must carry one.
TLS (https) uses the given context (or the one its factory makes at the first https
connection), with certificate and host name verification as that context says. A
connection is kept for `keepalive` seconds after its last answer, unless either side
said `Connection: close` or the server closed it meanwhile (seen as it happens, without
polling). A GET or HEAD written to a kept-alive connection that the
server had closed (nothing came back) is sent once more on a new connection; any other
method never is: a lane never sends a POST twice.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import h11
import httpx

_IDEMPOTENT = frozenset({"GET", "HEAD"})
_DISCONNECTED = "Server disconnected without sending a response."
_READ_SIZE_LIMIT = 64 * 1024 * 1024
"""An answer longer than this is a broken one (no list page comes near it)."""


Origin = tuple[bytes, str, int]
"""Scheme (b"http" or b"https"), host and port."""


@dataclass(slots=True)
class Ask:
    """One request as a lane sends it. `headers` are the lines sent (Host among them),
    `url` the whole URL (for an `httpx.Request` built when an exception needs one)."""

    method: str
    origin: Origin
    target: bytes
    headers: list[tuple[bytes, bytes]]
    url: str
    connect: float | None = None
    read: float | None = None
    content: bytes = b""
    _request: httpx.Request | None = field(default=None, repr=False)

    @classmethod
    def of(cls, request: httpx.Request) -> Ask:
        timeouts = request.extensions.get("timeout", {})
        return cls(
            method=request.method,
            origin=origin_of(request.url),
            target=request.url.raw_path,
            headers=request.headers.raw,
            url=str(request.url),
            connect=timeouts.get("connect"),
            read=timeouts.get("read"),
            content=request.read(),
            _request=request,
        )

    def request(self) -> httpx.Request:
        """The `httpx.Request` this is (built at the first ask), for an exception."""
        if self._request is None:
            headers = [(k, v) for k, v in self.headers if k.lower() != b"host"]
            timeouts = {"connect": self.connect, "read": self.read}
            timeouts |= {"write": self.read, "pool": self.connect}  # as httpx.Timeout(t)
            self._request = httpx.Request(
                self.method, self.url, headers=headers, extensions={"timeout": timeouts}
            )
        return self._request


class _Stale(Exception):
    """A kept-alive connection was found closed before any byte of the answer."""


class _Wire(asyncio.Protocol):
    """The bytes of one connection, as they arrive; `read` waits for the next chunk."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._chunks: collections.deque[bytes] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self.transport: asyncio.Transport | None = None
        self.eof = False
        self.lost: Exception | None = None
        self.received = 0
        """Bytes received so far."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but are ones
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        self._chunks.append(data)
        self._wake()

    def eof_received(self) -> None:
        self.eof = True
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.lost = exc
        self._wake()

    @property
    def idle(self) -> bool:
        """Open, and nothing arrived since the last answer: fit for another request."""
        return not self.eof and not self._chunks and self.transport is not None

    async def read(self, timeout: float | None) -> bytes:  # noqa: ASYNC109 - per read
        """The next chunk; b"" once the peer closed. Raises TimeoutError, or the
        connection's error (e.g. ConnectionResetError) when it was lost by one."""
        while not self._chunks:
            if self.eof:
                if self.lost is not None:
                    raise self.lost
                return b""
            waiter = self._waiter = self._loop.create_future()
            timer = None if timeout is None else self._loop.call_later(timeout, _expire, waiter)
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        return self._chunks.popleft()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.eof = True


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Lane(httpx.AsyncBaseTransport):
    """One HTTP/1.1 connection to one origin, one request at a time (see the module)."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | Callable[[], ssl.SSLContext],
        keepalive: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ssl = ssl_context
        self._keepalive = keepalive
        self._clock = clock
        self._wire: _Wire | None = None
        self._h11 = h11.Connection(h11.CLIENT)
        self._origin: Origin | None = None
        self._idle_until = 0.0
        self.connections = 0
        """Connections this lane has opened (for tests and the bench)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request`, read its whole answer; raises httpx's exceptions."""
        return await self.fetch(Ask.of(request))

    async def fetch(self, ask: Ask) -> httpx.Response:
        """Send `ask`, read its whole answer; raises httpx's exceptions."""
        reused = self._reusable(ask.origin)
        if not reused:
            await self._connect(ask)
        try:
            return await self._exchange(ask, reused=reused)
        except _Stale:
            await self._connect(ask)
            return await self._exchange(ask, reused=False)

    async def aclose(self) -> None:
        """Close the connection (a later request opens a new one)."""
        self._drop()

    def _tls(self) -> ssl.SSLContext:
        """The TLS context: given, or made by the given factory at the first https
        connection (so that a lane to an http:// simulator never builds one)."""
        if not isinstance(self._ssl, ssl.SSLContext):
            self._ssl = self._ssl()
        return self._ssl

    def _reusable(self, origin: Origin) -> bool:
        wire = self._wire
        if wire is None or not wire.idle or self._origin != origin:
            self._drop()
            return False
        if self._clock() >= self._idle_until:
            self._drop()
            return False
        return True

    async def _connect(self, ask: Ask) -> None:
        self._drop()
        scheme, host, port = origin = ask.origin
        tls = self._tls() if scheme == b"https" else None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(ask.connect):
                _, wire = await loop.create_connection(
                    lambda: _Wire(loop), host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(
                "timed out while connecting", request=ask.request()
            ) from None
        except OSError as exc:  # refused, unreachable, not resolved, TLS (ssl.SSLError)
            message = str(exc) or type(exc).__name__
            raise httpx.ConnectError(message, request=ask.request()) from exc
        self._wire, self._origin = wire, origin
        self._h11 = h11.Connection(h11.CLIENT)
        self.connections += 1

    async def _exchange(self, ask: Ask, *, reused: bool) -> httpx.Response:
        wire = self._wire
        assert wire is not None and wire.transport is not None
        try:
            wire.transport.write(self._request_bytes(ask))
            response = await self._head(wire, ask, reused=reused)
            body = await self._body(wire, ask)
        except BaseException:
            self._drop()  # cancelled or failed mid-exchange: the connection is unusable
            raise
        self._finish()
        return httpx.Response(
            response.status_code,
            headers=response.headers.raw_items(),
            stream=httpx.ByteStream(body),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": response.reason},
        )

    def _request_bytes(self, ask: Ask) -> bytes:
        h = self._h11
        content = ask.content
        event = h11.Request(method=ask.method, target=ask.target, headers=ask.headers)
        data = h.send(event) or b""
        if content:
            data += h.send(h11.Data(data=content)) or b""
        return data + (h.send(h11.EndOfMessage()) or b"")

    async def _head(self, wire: _Wire, ask: Ask, *, reused: bool) -> h11.Response:
        before = wire.received
        try:
            while True:
                event = await self._next(wire, ask)
                if isinstance(event, h11.Response):
                    return event
                if not isinstance(event, h11.InformationalResponse):
                    break  # h11.ConnectionClosed
        except h11.RemoteProtocolError as exc:
            if not wire.eof:  # a malformed answer
                raise httpx.RemoteProtocolError(str(exc), request=ask.request()) from None
        except httpx.ReadError:
            if not (reused and wire.received == before and ask.method in _IDEMPOTENT):
                raise
            raise _Stale from None
        # The peer closed before any answer.
        if reused and wire.received == before and ask.method in _IDEMPOTENT:
            raise _Stale
        raise httpx.RemoteProtocolError(_DISCONNECTED, request=ask.request())

    async def _body(self, wire: _Wire, ask: Ask) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            try:
                event = await self._next(wire, ask)
            except h11.RemoteProtocolError as exc:  # malformed, or closed mid-body
                raise httpx.RemoteProtocolError(str(exc), request=ask.request()) from None
            if isinstance(event, h11.Data):
                parts.append(bytes(event.data))
                size += len(event.data)
                if size > _READ_SIZE_LIMIT:
                    raise httpx.RemoteProtocolError("answer too long", request=ask.request())
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            else:
                raise httpx.RemoteProtocolError(_DISCONNECTED, request=ask.request())

    async def _next(self, wire: _Wire, ask: Ask) -> object:
        """The next h11 event (raises h11.RemoteProtocolError, ReadTimeout, ReadError)."""
        h = self._h11
        while True:
            event = h.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                chunk = await wire.read(ask.read)
            except TimeoutError:
                raise httpx.ReadTimeout("timed out while reading", request=ask.request()) from None
            except OSError as exc:  # reset by the peer
                message = str(exc) or type(exc).__name__
                raise httpx.ReadError(message, request=ask.request()) from exc
            h.receive_data(chunk)  # b"": the peer closed

    def _finish(self) -> None:
        h = self._h11
        if h.our_state is h11.DONE and h.their_state is h11.DONE:
            h.start_next_cycle()
            self._idle_until = self._clock() + self._keepalive
        else:  # either side said Connection: close
            self._drop()

    def _drop(self) -> None:
        if self._wire is not None:
            self._wire.close()
            self._wire = None
        self._origin = None


def origin_of(url: httpx.URL) -> Origin:
    """The `Origin` of `url` (the scheme's default port written out)."""
    scheme = url.raw_scheme
    return scheme, url.host, url.port or (443 if scheme == b"https" else 80)

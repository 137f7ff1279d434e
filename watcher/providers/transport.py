"""A light HTTP/1.1 client connection for the reads: one kept-alive connection on an
`asyncio.Protocol`, the messages read by `watcher.providers.http11` (DESIGN §2, issue 9's
CPU budget).

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
TLS (https) uses the given context, with certificate and host name verification as that
context says. A connection is kept for `keepalive` seconds after its last answer, unless
either side said `Connection: close` or the server closed it meanwhile (seen as it
happens, without polling). A GET or HEAD written to a kept-alive connection that the
server had closed (nothing came back) is sent once more on a new connection; any other
method never is: a lane never sends a POST twice.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable

import httpx

from watcher.providers import http11

_IDEMPOTENT = frozenset({"GET", "HEAD"})
_DISCONNECTED = "Server disconnected without sending a response."
_CUT = "peer closed connection without sending complete message body"
_READ_SIZE_LIMIT = 64 * 1024 * 1024
"""An answer longer than this is a broken one (no list page comes near it)."""


class _Stale(Exception):
    """A kept-alive connection was found closed before any byte of the answer."""


class _Wire(asyncio.Protocol):
    """The bytes of one connection as they arrive, in `buffer`; `more` waits for more."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self.transport: asyncio.Transport | None = None
        self.eof = False
        self.lost: Exception | None = None
        self.received = 0
        """Bytes received so far."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        self.buffer += data
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
        return not self.eof and not self.buffer and self.transport is not None

    async def more(self, timeout: float | None) -> bool:  # noqa: ASYNC109 - per read
        """Wait for more bytes in `buffer`; False once the peer closed. Raises
        TimeoutError, or the connection's error (e.g. ConnectionResetError)."""
        if self.eof:
            if self.lost is not None:
                raise self.lost
            return False
        waiter = self._waiter = self._loop.create_future()
        timer = None if timeout is None else self._loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        if self.lost is not None:
            raise self.lost
        return not self.eof or bool(self.buffer)

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
        ssl_context: ssl.SSLContext,
        keepalive: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ssl = ssl_context
        self._keepalive = keepalive
        self._clock = clock
        self._wire: _Wire | None = None
        self._origin: tuple[bytes, str, int] | None = None
        self._idle_until = 0.0
        self.connections = 0
        """Connections this lane has opened (for tests and the bench)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request`, read its whole answer; raises httpx's exceptions."""
        timeouts = request.extensions.get("timeout", {})
        reused = self._reusable(request.url)
        if not reused:
            await self._connect(request, timeouts.get("connect"))
        try:
            return await self._exchange(request, timeouts.get("read"), reused=reused)
        except _Stale:
            await self._connect(request, timeouts.get("connect"))
            return await self._exchange(request, timeouts.get("read"), reused=False)

    async def aclose(self) -> None:
        """Close the connection (a later request opens a new one)."""
        self._drop()

    def _reusable(self, url: httpx.URL) -> bool:
        wire = self._wire
        if wire is None or not wire.idle or self._origin != _origin(url):
            self._drop()
            return False
        if self._clock() >= self._idle_until:
            self._drop()
            return False
        return True

    async def _connect(self, request: httpx.Request, timeout: float | None) -> None:  # noqa: ASYNC109
        self._drop()
        scheme, host, port = origin = _origin(request.url)
        tls = self._ssl if scheme == b"https" else None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, wire = await loop.create_connection(
                    lambda: _Wire(loop), host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError:
            raise httpx.ConnectTimeout("timed out while connecting", request=request) from None
        except OSError as exc:  # refused, unreachable, not resolved, TLS (ssl.SSLError)
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        self._wire, self._origin = wire, origin
        self.connections += 1

    async def _exchange(
        self,
        request: httpx.Request,
        timeout: float | None,  # noqa: ASYNC109 - the read timeout, per read
        *,
        reused: bool,
    ) -> httpx.Response:
        wire = self._wire
        assert wire is not None and wire.transport is not None
        try:
            wire.transport.write(_request_bytes(request))
            head = await self._head(wire, request, timeout, reused=reused)
            length = http11.framing(head, request.method)
            body = await self._body(wire, request, timeout, length)
        except http11.ProtocolError as exc:
            self._drop()
            raise httpx.RemoteProtocolError(str(exc), request=request) from None
        except BaseException:
            self._drop()  # cancelled or failed mid-exchange: the connection is unusable
            raise
        if http11.keeps_alive(head, length):
            self._idle_until = self._clock() + self._keepalive
        else:  # either side said Connection: close, or the body ran until the close
            self._drop()
        return httpx.Response(
            head.status,
            headers=head.fields,
            stream=httpx.ByteStream(body),
            extensions={"http_version": b"HTTP/1.%d" % head.minor, "reason_phrase": head.reason},
        )

    async def _head(
        self,
        wire: _Wire,
        request: httpx.Request,
        timeout: float | None,  # noqa: ASYNC109
        *,
        reused: bool,
    ) -> http11.Head:
        """The answer's head (1xx interim answers skipped)."""
        before = wire.received
        while True:
            raw = http11.take_head(wire.buffer)
            if raw is not None:
                head = http11.parse_head(raw)
                if 100 <= head.status < 200:
                    continue
                return head
            try:
                more = await self._more(wire, request, timeout)
            except httpx.ReadError:
                if reused and wire.received == before and request.method in _IDEMPOTENT:
                    raise _Stale from None
                raise
            if not more:
                break
        # The peer closed before a whole answer head.
        if reused and wire.received == before and request.method in _IDEMPOTENT:
            raise _Stale
        if wire.buffer:
            raise http11.ProtocolError("malformed answer: closed within its head")
        raise httpx.RemoteProtocolError(_DISCONNECTED, request=request)

    async def _body(
        self,
        wire: _Wire,
        request: httpx.Request,
        timeout: float | None,  # noqa: ASYNC109
        length: int,
    ) -> bytes:
        if length == http11.CHUNKED:
            return await self._chunked(wire, request, timeout)
        if length == http11.UNTIL_CLOSE:
            while await self._more(wire, request, timeout):
                _check_size(len(wire.buffer))
            body = bytes(wire.buffer)
            wire.buffer.clear()
            return body
        return await self._exactly(wire, request, timeout, length)

    async def _chunked(self, wire: _Wire, request: httpx.Request, timeout: float | None) -> bytes:  # noqa: ASYNC109
        parts: list[bytes] = []
        size = 0
        while True:
            chunk = http11.chunk_size(await self._line(wire, request, timeout))
            if chunk == 0:
                while await self._line(wire, request, timeout):
                    pass  # trailer fields, ignored
                return b"".join(parts)
            size += chunk
            _check_size(size)
            data = await self._exactly(wire, request, timeout, chunk + 2)
            if data[-2:] != b"\r\n":
                raise http11.ProtocolError("malformed chunk")
            parts.append(data[:-2])

    async def _line(self, wire: _Wire, request: httpx.Request, timeout: float | None) -> bytes:  # noqa: ASYNC109
        while True:
            line = http11.take_line(wire.buffer)
            if line is not None:
                return line
            if not await self._more(wire, request, timeout):
                raise http11.ProtocolError(_CUT)

    async def _exactly(
        self,
        wire: _Wire,
        request: httpx.Request,
        timeout: float | None,  # noqa: ASYNC109
        count: int,
    ) -> bytes:
        _check_size(count)
        while len(wire.buffer) < count:
            if not await self._more(wire, request, timeout):
                raise http11.ProtocolError(_CUT)
        data = bytes(wire.buffer[:count])
        del wire.buffer[:count]
        return data

    async def _more(self, wire: _Wire, request: httpx.Request, timeout: float | None) -> bool:  # noqa: ASYNC109
        """`wire.more`, its failures as httpx's ReadTimeout and ReadError."""
        try:
            return await wire.more(timeout)
        except TimeoutError:
            raise httpx.ReadTimeout("timed out while reading", request=request) from None
        except OSError as exc:  # reset by the peer
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc

    def _drop(self) -> None:
        if self._wire is not None:
            self._wire.close()
            self._wire = None
        self._origin = None


def _request_bytes(request: httpx.Request) -> bytes:
    try:
        return http11.request_bytes(
            request.method, request.url.raw_path, request.headers.raw, request.read()
        )
    except ValueError as exc:
        raise httpx.LocalProtocolError(str(exc), request=request) from None


def _check_size(size: int) -> None:
    if size > _READ_SIZE_LIMIT:
        raise http11.ProtocolError("answer too long")


def _origin(url: httpx.URL) -> tuple[bytes, str, int]:
    scheme = url.raw_scheme
    return scheme, url.host, url.port or (443 if scheme == b"https" else 80)

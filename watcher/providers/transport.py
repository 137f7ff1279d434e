"""A light HTTP/1.1 client connection for the reads: one kept-alive connection on an
`asyncio.Protocol`, the answers parsed by httptools (llhttp, Node's C parser; uvicorn's)
and the requests written here (DESIGN §2, issue 9's CPU budget).

httpx's own async stack (httpcore's pool, anyio streams, h11) costs 1.2–2.5 ms of CPU per
request here, and h11 alone about 0.1 ms per exchange; this costs a fraction of that
(`bench/httpx_floor.py`). A request is checked as h11 checks one (a target and header
lines HTTP allows, a Host) and written as h11 and httpx write it, byte for byte. A `Lane` is one
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
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import httptools
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
    `url` the whole URL (for an `httpx.Request` built when an exception needs one);
    `block` those lines as written (`header_block`), when the caller worked them out;
    `keep` False when they say `Connection: close` (`keeps_open`)."""

    method: str
    origin: Origin
    target: bytes
    headers: list[tuple[bytes, bytes]]
    url: str
    connect: float | None = None
    read: float | None = None
    content: bytes = b""
    block: bytes | None = None
    keep: bool = True
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
            keep=keeps_open(request.headers.raw),
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

    def message(self) -> bytes:
        """The request as sent: the request line, the header lines, the body. Raises
        `httpx.LocalProtocolError` for a target or a header line that HTTP forbids."""
        if _TARGET.fullmatch(self.target) is None:
            raise httpx.LocalProtocolError("Illegal request target", request=self.request())
        block = self.block
        if block is None:
            try:
                block = header_block(self.headers, len(self.content))
            except ValueError as exc:
                raise httpx.LocalProtocolError(str(exc), request=self.request()) from None
        method = self.method.encode("ascii")
        return b"%s %s HTTP/1.1\r\n%s\r\n%s" % (method, self.target, block, self.content)


def keeps_open(lines: list[tuple[bytes, bytes]]) -> bool:
    """The request lets the connection stay open: its lines say no `Connection: close`."""
    for name, value in lines:
        if name.lower() == b"connection" and b"close" in value.lower():
            return False
    return True


_TARGET = re.compile(rb"[\x21-\x7e]+")
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_VALUE = re.compile(rb"(?:[\x21-\x7e\x80-\xff]+(?:[ \t]+[\x21-\x7e\x80-\xff]+)*)?")


def header_block(lines: list[tuple[bytes, bytes]], length: int = 0) -> bytes:
    """`lines` as a request writes them ("Name: value\\r\\n" each), with a Content-Length
    for a body of `length` bytes when they name none. Raises ValueError for a name or a
    value HTTP forbids (a line break smuggled into a value, say), no Host, or a body
    framed by Transfer-Encoding (a lane sends the body it was given, whole)."""
    out = []
    host = sized = False
    for name, value in lines:
        if _TOKEN.fullmatch(name) is None:
            raise ValueError(f"Illegal header name {name!r}")
        if _VALUE.fullmatch(value) is None:
            raise ValueError(f"Illegal header value for {name.decode()!r}")
        lowered = name.lower()
        if lowered == b"host":
            host = True
        elif lowered == b"content-length":
            sized = True
        elif lowered == b"transfer-encoding":
            raise ValueError("A body framed by Transfer-Encoding is not sent by a lane")
        out.append(b"%s: %s\r\n" % (name, value))
    if not host:
        raise ValueError("Missing mandatory Host: header")
    if length and not sized:
        out.append(b"Content-Length: %d\r\n" % length)
    return b"".join(out)


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


class _Answer:
    """httptools' callbacks for one answer: the final response's status, reason, header
    lines and body (an interim 1xx answer is skipped), and where the parse stands."""

    __slots__ = (
        "complete", "encoded", "extra", "framed", "head", "headers", "keep", "parser", "parts",
        "reason", "size", "status",
    )  # fmt: skip

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.parts: list[bytes] = []
        self.size = 0
        self.head = False
        """The final response's head is in."""
        self.complete = False
        self.keep = False
        """The server keeps the connection open after this answer."""
        self.framed = False
        """The body's end is known without the close (a length or chunks); an answer
        that has none (204, 304) is complete at its head."""
        self.extra = False
        """Bytes came after the answer (a connection that is not reused)."""
        self.encoded = False
        """A Content-Encoding (gzip, ...) that httpx decodes when the body is read."""

    def on_message_begin(self) -> None:
        if self.complete:
            self.extra = True

    def on_status(self, reason: bytes) -> None:
        if not self.complete:
            self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.complete:
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        status = self.parser.get_status_code()
        if status < 200:  # interim: the final answer follows
            self.reason, self.headers[:] = b"", []
            return
        self.status, self.head = status, True
        for name, value in self.headers:
            lowered = name.lower()
            if lowered == b"content-length" or lowered == b"transfer-encoding":
                self.framed = True
            elif lowered == b"content-encoding" and value.strip().lower() != b"identity":
                self.encoded = True

    def on_body(self, body: bytes) -> None:
        if not self.complete:
            self.parts.append(body)
            self.size += len(body)

    def on_message_complete(self) -> None:
        if self.head and not self.complete:
            self.complete = True
            self.keep = self.parser.should_keep_alive()


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
        self.connections += 1

    async def _exchange(self, ask: Ask, *, reused: bool) -> httpx.Response:
        wire = self._wire
        assert wire is not None and wire.transport is not None
        try:
            wire.transport.write(ask.message())
            answer = await self._answer(wire, ask, reused=reused)
        except BaseException:
            self._drop()  # cancelled or failed mid-exchange: the connection is unusable
            raise
        if answer.keep and not answer.extra and ask.keep and wire.idle:
            self._idle_until = self._clock() + self._keepalive
        else:  # either side said Connection: close, or the answer ended with the close
            self._drop()
        body = b"".join(answer.parts)
        response = httpx.Response(
            answer.status,
            headers=answer.headers,
            stream=httpx.ByteStream(body),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": answer.reason},
        )
        if not answer.encoded:  # as read() would leave it, without copying the body through
            response._content = body  # httpx's decoders (a third of building the response)
        return response

    async def _answer(self, wire: _Wire, ask: Ask, *, reused: bool) -> _Answer:
        """The whole answer (raises RemoteProtocolError, ReadTimeout, ReadError, or
        _Stale for a reused connection that closed before any byte of it)."""
        answer = _Answer()
        try:
            return await self._parse(wire, ask, answer, reused=reused)
        finally:  # the parser holds the answer's methods: leave no cycle to collect
            del answer.parser

    async def _parse(self, wire: _Wire, ask: Ask, answer: _Answer, *, reused: bool) -> _Answer:
        before = wire.received
        while True:
            try:
                chunk = await wire.read(ask.read)
            except TimeoutError:
                raise httpx.ReadTimeout("timed out while reading", request=ask.request()) from None
            except OSError as exc:  # reset by the peer
                if reused and wire.received == before and ask.method in _IDEMPOTENT:
                    raise _Stale from None
                message = str(exc) or type(exc).__name__
                raise httpx.ReadError(message, request=ask.request()) from exc
            if not chunk:  # the peer closed
                if answer.head and not answer.framed and ask.method != "HEAD":
                    answer.complete = True  # the body ran until the close
                    return answer
                if reused and wire.received == before and ask.method in _IDEMPOTENT:
                    raise _Stale
                if answer.head:
                    raise httpx.RemoteProtocolError(
                        "peer closed connection without sending complete message body",
                        request=ask.request(),
                    )
                raise httpx.RemoteProtocolError(_DISCONNECTED, request=ask.request())
            try:
                answer.parser.feed_data(chunk)
            except httptools.HttpParserError as exc:
                if not answer.complete:  # a malformed answer (bytes after one are dropped)
                    raise httpx.RemoteProtocolError(str(exc), request=ask.request()) from None
                answer.extra = True
            if answer.size > _READ_SIZE_LIMIT:
                raise httpx.RemoteProtocolError("answer too long", request=ask.request())
            if answer.complete:
                return answer
            if answer.head and ask.method == "HEAD":  # no body follows, whatever it says
                answer.complete, answer.keep = True, False
                return answer

    def _drop(self) -> None:
        if self._wire is not None:
            self._wire.close()
            self._wire = None
        self._origin = None


def origin_of(url: httpx.URL) -> Origin:
    """The `Origin` of `url` (the scheme's default port written out)."""
    scheme = url.raw_scheme
    return scheme, url.host, url.port or (443 if scheme == b"https" else 80)

"""The lane's HTTP/1.1 message reading (watcher/providers/http11.py): pure tables."""

from __future__ import annotations

import pytest

from watcher.providers.http11 import (
    CHUNKED,
    UNTIL_CLOSE,
    ProtocolError,
    chunk_size,
    framing,
    keeps_alive,
    parse_head,
    request_bytes,
    take_head,
    take_line,
)


@pytest.mark.parametrize(
    ("head", "method", "body", "alive"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 12", "GET", 12, True),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 0", "GET", 0, True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5", "GET", 5, True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", "GET", CHUNKED, True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked", "GET", CHUNKED, True),
        (b"HTTP/1.1 200 OK", "GET", UNTIL_CLOSE, False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close", "GET", 3, False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: Keep-Alive, Close", "GET", 3, False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 3", "GET", 3, False),
        (b"HTTP/1.1 204 No Content", "GET", 0, True),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 40", "GET", 0, True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 40", "HEAD", 0, True),
        (b"HTTP/1.1 429", "GET", UNTIL_CLOSE, False),  # no reason phrase at all
    ],
)
def test_framing_and_keep_alive(head: bytes, method: str, body: int, alive: bool) -> None:
    parsed = parse_head(head)
    assert framing(parsed, method) == body
    assert keeps_alive(parsed, body) is alive


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 abc OK",
        b"HTTP/2 200 OK",
        b"SMTP ready",
        b"HTTP/1.1 20 OK",
        b"HTTP/1.1 200 OK\r\nno colon here",
        b"HTTP/1.1 200 OK\r\nbad name: x",
        b"HTTP/1.1 200 OK\r\n folded: continuation",
        b"HTTP/1.1 200 OK\r\n: empty name",
    ],
)
def test_a_malformed_head_is_refused(head: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_head(head)


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: nope",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity",
    ],
)
def test_a_framing_not_read_is_refused(head: bytes) -> None:
    with pytest.raises(ProtocolError):
        framing(parse_head(head), "GET")


def test_fields_keep_their_names_and_values() -> None:
    head = parse_head(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After:  7 \r\nX-A: b")
    assert (head.status, head.reason, head.minor) == (429, b"Too Many Requests", 1)
    assert head.fields == [(b"Retry-After", b"7"), (b"X-A", b"b")]


def test_take_head_and_line_leave_the_rest() -> None:
    buffer = bytearray(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n5\r\nhello")
    assert take_head(buffer) == b"HTTP/1.1 200 OK\r\nA: b"
    assert take_line(buffer) == b"5"
    assert buffer == b"hello"
    assert take_head(bytearray(b"HTTP/1.1 200 OK\r\n")) is None
    with pytest.raises(ProtocolError):
        take_head(bytearray(b"x" * 70_000))


@pytest.mark.parametrize(
    ("line", "size"), [(b"0", 0), (b"1a", 26), (b"FF;ext=1", 255), (b"10 ", 16)]
)
def test_chunk_sizes(line: bytes, size: int) -> None:
    assert chunk_size(line) == size


@pytest.mark.parametrize("line", [b"", b"zz", b"-1", b"1" * 17])
def test_a_malformed_chunk_size_is_refused(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        chunk_size(line)


def test_request_bytes() -> None:
    fields = [(b"Host", b"example.test"), (b"Content-Length", b"2")]
    assert request_bytes("POST", b"/v2/x?a=1", fields, b"{}") == (
        b"POST /v2/x?a=1 HTTP/1.1\r\nHost: example.test\r\nContent-Length: 2\r\n\r\n{}"
    )


@pytest.mark.parametrize(
    ("target", "fields"),
    [
        (b"/x", [(b"X-Key", b"a\r\nInjected: 1")]),
        (b"/x", [(b"Bad Name", b"v")]),
        (b"/x y", [(b"Host", b"h")]),
        (b"/x\r\n", [(b"Host", b"h")]),
    ],
)
def test_a_request_that_would_break_the_framing_is_refused(
    target: bytes, fields: list[tuple[bytes, bytes]]
) -> None:
    with pytest.raises(ValueError, match="cannot be sent"):
        request_bytes("GET", target, fields, b"")

"""The HTTP/1.1 messages of a `watcher.providers.transport.Lane`, pure: a request's bytes,
an answer's head (status line and fields, RFC 9112 §4–5) and its framing (§6), chunk
sizes (§7.1). Nothing here does I/O; `ProtocolError` is a malformed answer.

Written for the lane instead of h11, which cost a third of a read's CPU: the answers of
an API are small and plain (a status line, a few fields, a Content-Length or chunked
body), and what does not fit that is refused, never guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_HEAD = 64 * 1024
"""An answer head (or a chunk-size line) longer than this is a broken answer."""

CHUNKED = -1
"""`framing`: a chunked body (§7.1)."""

UNTIL_CLOSE = -2
"""`framing`: the body runs until the server closes the connection (§6.3, item 8)."""

_STATUS = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: ([^\r\n]*))?")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_FORBIDDEN = re.compile(rb"[\r\n\x00]")


class ProtocolError(Exception):
    """The answer is not well-formed HTTP/1.1 (or not one this client reads)."""


@dataclass(frozen=True, slots=True)
class Head:
    """An answer's status line and fields (names and values as sent)."""

    status: int
    reason: bytes
    fields: list[tuple[bytes, bytes]]
    minor: int  # HTTP/1.<minor>

    def values(self, name: bytes) -> list[bytes]:
        """The values of field `name` (lower-case), each comma-separated item apart."""
        found: list[bytes] = []
        for key, value in self.fields:
            if key.lower() == name:
                found.extend(item.strip() for item in value.split(b",") if item.strip())
        return found


def request_bytes(
    method: str, target: bytes, fields: list[tuple[bytes, bytes]], content: bytes
) -> bytes:
    """A request's bytes; raises ValueError for a field that would break the framing."""
    lines = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
    for name, value in fields:
        if not _TOKEN.fullmatch(name) or _FORBIDDEN.search(value):
            raise ValueError("a request header cannot be sent (invalid name or value)")
        lines += [name, b": ", value, b"\r\n"]
    if _FORBIDDEN.search(target) or b" " in target:
        raise ValueError("the request target cannot be sent")
    lines.append(b"\r\n")
    return b"".join(lines) + content


def take_head(buffer: bytearray) -> bytes | None:
    """The head at the start of `buffer` (taken out, without its blank line), or None
    when it has not fully arrived. Raises ProtocolError when it is too long."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_HEAD:
            raise ProtocolError("answer head too long")
        return None
    head = bytes(buffer[:end])
    del buffer[: end + 4]
    return head


def take_line(buffer: bytearray) -> bytes | None:
    """One CRLF-ended line from the start of `buffer` (taken out), or None."""
    end = buffer.find(b"\r\n")
    if end < 0:
        if len(buffer) > MAX_HEAD:
            raise ProtocolError("chunk line too long")
        return None
    line = bytes(buffer[:end])
    del buffer[: end + 2]
    return line


def parse_head(head: bytes) -> Head:
    """The status line and fields of `head`. Raises ProtocolError."""
    status_line, *lines = head.split(b"\r\n")
    match = _STATUS.fullmatch(status_line)
    if match is None:
        raise ProtocolError("malformed status line")
    fields: list[tuple[bytes, bytes]] = []
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name) or _FORBIDDEN.search(value):
            raise ProtocolError("malformed header line")
        fields.append((name, value.strip(b" \t")))
    return Head(int(match[2]), match[3] or b"", fields, int(match[1]))


def framing(head: Head, method: str) -> int:
    """The body's length in bytes, or `CHUNKED`, or `UNTIL_CLOSE` (§6.3).
    Raises ProtocolError for a framing this client does not read."""
    if method == "HEAD" or head.status in (204, 304) or 100 <= head.status < 200:
        return 0
    codings = head.values(b"transfer-encoding")
    if codings:
        if [c.lower() for c in codings] != [b"chunked"]:
            raise ProtocolError("unsupported transfer coding")
        return CHUNKED
    lengths = set(head.values(b"content-length"))
    if not lengths:
        return UNTIL_CLOSE
    if len(lengths) > 1 or not lengths.copy().pop().isdigit():
        raise ProtocolError("malformed Content-Length")
    return int(lengths.pop())


def keeps_alive(head: Head, body: int) -> bool:
    """Whether the connection can carry another request after this answer."""
    if body == UNTIL_CLOSE or head.minor == 0:
        return False
    return b"close" not in (value.lower() for value in head.values(b"connection"))


def chunk_size(line: bytes) -> int:
    """The size of a chunk from its size line (extensions ignored). Raises ProtocolError."""
    size = line.split(b";", 1)[0].strip(b" \t")
    if not _HEX.fullmatch(size):
        raise ProtocolError("malformed chunk size")
    return int(size, 16)

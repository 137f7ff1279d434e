"""List pages of the Telnyx API, validated and converted, and the last one-page read of
each endpoint kept: a re-read whose body is byte for byte the same is not validated
again (its items are the same values). In the steady state a cycle re-reads the audit
and webhook overlap windows, in which nothing changed, at the cost of a digest; and the
balance, kept the same way (`KeptPages.body`)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from watcher.providers.http import Page
from watcher.providers.telnyx.errors import parse
from watcher.providers.telnyx.wire import PageBody

WireT = TypeVar("WireT")
OutT = TypeVar("OutT")
BodyT = TypeVar("BodyT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class _Kept:
    """The last one-page read of an endpoint: its body's digest and its values."""

    digest: bytes
    convert: Callable[[Any], Any]
    items: tuple[Any, ...]
    total_pages: int | None


class KeptPages:
    """One client's pages: `page` validates and converts, or gives the kept values.

    One page per endpoint is kept (page 1 of a read that had no other), so the memory
    stays bounded by the endpoints a client reads. `parsed` counts the pages validated.
    """

    def __init__(self) -> None:
        self._kept: dict[str, _Kept] = {}
        self._bodies: dict[str, tuple[bytes, Callable[[Any], Any], Any]] = {}
        self.parsed = 0

    def body(
        self,
        endpoint: str,
        model: type[BodyT],
        convert: Callable[[BodyT], OutT],
        response: httpx.Response,
    ) -> OutT:
        """The value of a one-object body (`GET /balance`): validated and converted, or
        the last one's for the same bytes (a small body: kept whole, compared whole).
        Raises TelnyxError for a body that is not valid JSON or not of `model`'s shape."""
        content = response.content
        kept = self._bodies.get(endpoint)
        if kept is not None and kept[0] == content and kept[1] is convert:
            value: OutT = kept[2]
            return value
        value = convert(parse(model, response, endpoint))
        self.parsed += 1
        self._bodies[endpoint] = (content, convert, value)
        return value

    def page(
        self,
        endpoint: str,
        number: int,
        model: type[PageBody[WireT]],
        convert: Callable[[WireT], OutT],
        response: httpx.Response,
    ) -> Page[OutT]:
        """Page `number` of `endpoint` in `response` (a 2xx). Raises TelnyxError for a
        body that is not valid JSON or not of `model`'s shape."""
        content = response.content
        digest = hashlib.blake2b(content, digest_size=16).digest() if number == 1 else b""
        kept = self._kept.get(endpoint) if digest else None
        if kept is not None and kept.digest == digest and kept.convert is convert:
            return Page(number, list(kept.items), True, kept.total_pages)
        body = parse(model, response, endpoint)
        last = is_last_page(body, number)
        total = body.meta.total_pages if body.meta is not None else None
        items = [convert(item) for item in body.data]
        self.parsed += 1
        if digest and last:
            self._kept[endpoint] = _Kept(digest, convert, tuple(items), total)
        elif digest:
            self._kept.pop(endpoint, None)
        return Page(number, items, last, total)


def is_last_page(page: PageBody[Any], requested: int) -> bool:
    """Whether `page` (asked for as page `requested`) ends the read: no items, no
    `meta.total_pages`, or its number at or past the total."""
    if not page.data or page.meta is None or page.meta.total_pages is None:
        return True
    number = max(requested, page.meta.page_number or requested)
    return number >= page.meta.total_pages

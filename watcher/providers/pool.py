"""One connection pool per provider host, shared by the clients of every account on it,
and the bound on the requests in flight to that host (DESIGN §10).

A client keeps its own `httpx.AsyncClient` (its API key in its default headers, its
base URL) but sends through its host's `HostPool`: `limit` lanes, each a
`watcher.providers.transport.Lane` of one kept-alive connection (with the process's one
TLS context), and a semaphore of `limit` requests. A request takes a free lane until its
answer is read (a lane reads the whole body). One lane per connection, not one httpcore
pool of `limit` connections: that pool scans every connection and every queued request
(polling each idle socket) at each request and each answer, which at 20 connections
cost more CPU than the rest of a cycle; and a lane is not httpx's async stack, which
cost 1.2–2.5 ms of CPU per request (`bench/httpx_floor.py`). A request waits for the
semaphore before its time limit starts, so a queue of accounts never turns into
timeouts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx

from watcher.providers.http import KEEPALIVE_DEFAULT, shared_ssl_context
from watcher.providers.transport import Ask, Lane

DEFAULT_CONCURRENCY = 20
"""Requests in flight to one provider host at most (`poll.concurrency`)."""


class HostPool:
    """The connections to one host and its bound on requests in flight.

    `bound`: a semaphore of `limit`; `transport()`: a transport for one client, sharing
    the lanes; the lanes' connections close when the last client's transport is closed
    (and open again if a client sends after that).
    """

    def __init__(self, origin: str, *, limit: int, keepalive: float) -> None:
        if limit < 1:
            raise ValueError("the concurrency limit must be at least 1")
        self.origin = origin
        self.limit = limit
        self.bound = asyncio.Semaphore(limit)
        self._keepalive = keepalive
        self._free: list[Lane] = []
        self._lanes: list[Lane] = []
        self._slots = asyncio.Semaphore(limit)
        self._users = 0

    def __repr__(self) -> str:
        return f"HostPool({self.origin!r}, limit={self.limit}, clients={self._users})"

    def transport(self) -> httpx.AsyncBaseTransport:
        """A transport for one client: its requests go through this pool's lanes."""
        self._users += 1
        return _Borrowed(self)

    async def send(self, request: httpx.Request) -> httpx.Response:
        """`request` on a free lane, its whole answer read."""
        return await self.fetch(Ask.of(request))

    async def fetch(self, ask: Ask) -> httpx.Response:
        """`ask` on a free lane, its whole answer read."""
        await self._slots.acquire()  # at most `limit` lanes, each busy with one request
        lane = self._free.pop() if self._free else self._new_lane()
        try:
            return await lane.fetch(ask)
        finally:
            self._free.append(lane)
            self._slots.release()

    @property
    def connections(self) -> int:
        """Connections the lanes have opened so far."""
        return sum(lane.connections for lane in self._lanes)

    def _new_lane(self) -> Lane:
        lane = Lane(ssl_context=shared_ssl_context, keepalive=self._keepalive)
        self._lanes.append(lane)
        return lane

    async def _release(self) -> None:
        self._users -= 1
        if self._users > 0:
            return
        lanes, self._lanes, self._free = self._lanes, [], []
        for lane in lanes:
            await lane.aclose()


class _Borrowed(httpx.AsyncBaseTransport):
    """One client's handle on a `HostPool`: closing it releases the pool."""

    def __init__(self, owner: HostPool) -> None:
        self._owner = owner
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._owner.send(request)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._owner._release()


@dataclass
class HostPools:
    """The `HostPool` of each host the providers of one wiring talk to, by origin
    (scheme, host and port of a base URL); every pool gets `limit` and `keepalive`."""

    limit: int = DEFAULT_CONCURRENCY
    keepalive: float = KEEPALIVE_DEFAULT
    _pools: dict[str, HostPool] = field(default_factory=dict)

    def for_url(self, url: str) -> HostPool:
        """The pool of `url`'s host (made at the first ask)."""
        origin = origin_of(url)
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = HostPool(
                origin, limit=self.limit, keepalive=self.keepalive
            )
        return pool

    def __len__(self) -> int:
        return len(self._pools)


def origin_of(url: str) -> str:
    """`scheme://host:port` of `url` (the default port written out)."""
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return f"{parsed.scheme}://{parsed.host}:{port}"

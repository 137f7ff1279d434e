"""The simulators' HTTP plumbing: a threaded server on loopback and its request handler."""

from __future__ import annotations

import random
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from watcher.providers.simkit.parts import (
    HOST,
    ApiError,
    Fault,
    RecordedRequest,
    Response,
    Routes,
    SimAccountBase,
)

# --- HTTP plumbing ------------------------------------------------------------------------

Select = Callable[[RecordedRequest], SimAccountBase]
"""Picks the account a request is for (a server serving several accounts, by key)."""


@dataclass(slots=True)
class Traffic:
    """What the server saw of its clients: connections accepted, requests in flight now
    and at most (for tests of a client's pool and concurrency bound)."""

    connections: int = 0
    in_flight: int = 0
    max_in_flight: int = 0


class SimHTTPServer(ThreadingHTTPServer):
    """The threaded HTTP server of one simulator: an account, its routes, a path prefix."""

    daemon_threads = True
    request_queue_size = 256
    """The listen backlog (socketserver's default is 5): a client opening 20 connections
    at once would see SYNs dropped and retried a second later."""

    def __init__(
        self,
        address: tuple[str, int],
        account: SimAccountBase,
        routes: Routes,
        *,
        prefix: str = "",
        errors: list[BaseException] | None = None,
        latency: float = 0.0,
        jitter: float = 0.0,
        select: Select | None = None,
    ) -> None:
        self.account = account
        self.routes = routes
        self.prefix = prefix
        self.latency = latency
        self.jitter = jitter
        self.select: Select = select or (lambda request: account)
        self.traffic = Traffic()
        self.traffic_lock = threading.Lock()
        self.stopping = threading.Event()
        self.handler_errors: list[BaseException] = [] if errors is None else errors
        super().__init__(address, SimHandler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's host-name lookup (getfqdn can be slow)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = HOST, int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        """Count the accepted connection, then serve it in its own thread."""
        with self.traffic_lock:
            self.traffic.connections += 1
        super().process_request(request, client_address)

    def in_flight(self, change: int) -> None:
        """One request more (1) or fewer (-1) being answered."""
        with self.traffic_lock:
            traffic = self.traffic
            traffic.in_flight += change
            traffic.max_in_flight = max(traffic.max_in_flight, traffic.in_flight)

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        """Keep unexpected handler exceptions (not dropped connections) for the tests."""
        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, ConnectionError | TimeoutError):
            self.handler_errors.append(exc)


def _hold(server: SimHTTPServer, fault: Fault) -> None:
    """Wait for the fault's gate, the server's stop or the time limit, whichever is first."""
    gate = fault.gate
    if gate is None:
        return
    give_up = time.monotonic() + fault.seconds
    while not gate.is_set() and not server.stopping.is_set():
        left = give_up - time.monotonic()
        if left <= 0:
            return
        gate.wait(min(left, 0.05))


def _fault_response(server: SimHTTPServer, request: RecordedRequest, fault: Fault) -> Response:
    if fault.kind == "malformed":
        return Response(200, (fault.body or "").encode())
    base = server.routes.error(request, fault.code, None)
    body = base.body if fault.body is None else fault.body.encode()
    limit = () if fault.rate_limit is None else fault.rate_limit.headers(request.received_at)
    content_type = fault.content_type or base.content_type
    return Response(fault.code, body, base.headers + limit + fault.headers, content_type)


def added_latency(
    latency: float, jitter: float, draw: Callable[[float, float], float] = random.uniform
) -> float:
    """The wait before one answer: `latency` plus a uniform draw from ±`jitter`, never
    below 0. Jitter keeps answers of requests sent together from coming back together,
    as they do not on a real network (a fixed latency returns them in waves, each wave
    read in one wake-up: cheaper per request than any real API would allow)."""
    if jitter <= 0:
        return latency
    return max(0.0, latency + draw(-jitter, jitter))


def _answer(
    server: SimHTTPServer, account: SimAccountBase, request: RecordedRequest, in_api: bool
) -> Response | None:
    """Wait the added latency, apply a pending fault, else route; None = drop the
    connection."""
    delay = added_latency(server.latency, server.jitter)
    if delay > 0:
        server.stopping.wait(delay)
    fault = account._take_fault(request.path) if in_api else None
    if fault is not None and fault.kind == "disconnect":
        return None
    if fault is not None and fault.kind == "delay":
        server.stopping.wait(fault.seconds)
    elif fault is not None and fault.kind == "hold":
        _hold(server, fault)
    elif fault is not None:
        return _fault_response(server, request, fault)
    if not in_api:
        return server.routes.error(request, 404, None)
    try:
        return server.routes.handle(request)
    except ApiError as exc:
        return server.routes.error(request, exc.status, exc.detail)


class SimHandler(BaseHTTPRequestHandler):
    """Request plumbing: read and record the request, answer it, write the response."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: SimHTTPServer

    def do_GET(self) -> None:
        """Serve a GET."""
        self._serve()

    def do_POST(self) -> None:
        """Serve a POST."""
        self._serve()

    def do_PUT(self) -> None:
        """Serve a PUT."""
        self._serve()

    def do_PATCH(self) -> None:
        """Serve a PATCH."""
        self._serve()

    def do_DELETE(self) -> None:
        """Serve a DELETE."""
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""
        return

    def _serve(self) -> None:
        raw_path = urlsplit(self.path).path
        prefix = self.server.prefix
        in_api = not prefix or raw_path.startswith(prefix + "/")
        request = self._read_request(raw_path, raw_path[len(prefix) :] if in_api else raw_path)
        account = self.server.select(request)
        self.server.in_flight(1)  # before it is recorded: a test that saw it sees this
        try:
            account._record(request)
            self._respond(account, request, in_api)
        finally:
            self.server.in_flight(-1)

    def _respond(self, account: SimAccountBase, request: RecordedRequest, in_api: bool) -> None:
        try:
            response = _answer(self.server, account, request, in_api)
        except Exception as exc:
            self.server.handler_errors.append(exc)
            response = self.server.routes.error(request, 500, None)
        if response is None:
            self.close_connection = True
            return
        self._write(response)

    def _read_request(self, raw_path: str, path: str) -> RecordedRequest:
        length = int(self.headers.get("Content-Length") or 0)
        pairs = tuple(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        return RecordedRequest(
            method=self.command,
            path=path,
            query=dict(pairs),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length) if length > 0 else b"",
            raw_path=raw_path,
            received_at=self.server.account.now(),
            query_pairs=pairs,
        )

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        if not any(name.lower() == "content-type" for name, _ in response.headers):
            self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)


class SimServerBase:
    """Serves an account's routes on http://127.0.0.1:PORT from a background thread.

    Use as a context manager, or call `start()` / `stop()`. `port=0` picks a free port;
    requests outside `prefix` (when given) get the routes' 404 and no fault. `latency`:
    seconds every request waits before it is answered, give or take a uniform `jitter`
    (`added_latency`). `select`: the account a request is recorded for and faulted by
    (default: `account`; the routes pick theirs).
    """

    def __init__(
        self,
        account: SimAccountBase,
        routes: Routes,
        *,
        port: int = 0,
        prefix: str = "",
        name: str = "sim",
        latency: float = 0.0,
        jitter: float = 0.0,
        select: Select | None = None,
    ) -> None:
        if latency < 0 or jitter < 0:
            raise ValueError("latency and jitter are seconds, at least 0")
        self.account = account
        self.routes = routes
        self.prefix = prefix
        self.name = name
        self.latency = latency
        self.jitter = jitter
        self._select = select
        self._requested_port = port
        self._httpd: SimHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._errors: list[BaseException] = []

    def __repr__(self) -> str:
        state = f"port={self.port}" if self._httpd is not None else "stopped"
        return f"{type(self).__name__}({state})"

    def start(self) -> None:
        """Bind and serve in a daemon thread. Raises RuntimeError if already running."""
        if self._httpd is not None:
            raise RuntimeError("the simulator is already running")
        address = (HOST, self._requested_port)
        httpd = SimHTTPServer(
            address,
            self.account,
            self.routes,
            prefix=self.prefix,
            errors=self._errors,
            latency=self.latency,
            jitter=self.jitter,
            select=self._select,
        )
        thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, name=self.name
        )
        thread.daemon = True
        thread.start()
        self._httpd, self._thread = httpd, thread

    def stop(self) -> None:
        """Stop serving, wake delayed requests and close the socket; a no-op when stopped."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        httpd.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
        self._httpd = self._thread = None

    @property
    def port(self) -> int:
        """The bound port. Raises RuntimeError when not running."""
        if self._httpd is None:
            raise RuntimeError("the simulator is not running")
        return self._httpd.server_port

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT` plus the prefix. Raises RuntimeError when not running."""
        return f"http://{HOST}:{self.port}{self.prefix}"

    @property
    def traffic(self) -> Traffic:
        """Connections accepted and requests in flight so far (a copy). Raises
        RuntimeError when not running."""
        if self._httpd is None:
            raise RuntimeError("the simulator is not running")
        with self._httpd.traffic_lock:
            return replace(self._httpd.traffic)

    @property
    def handler_errors(self) -> list[BaseException]:
        """Unexpected exceptions raised while handling requests (should stay empty)."""
        return list(self._errors)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

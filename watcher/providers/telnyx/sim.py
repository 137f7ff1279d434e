"""A simulated Telnyx account API on loopback, for the demo and integration tests.

`SimServer` serves the account-monitoring subset of the Telnyx API v2 (shapes from
`tests/data/telnyx-account.openapi.yaml`) from a `SimAccount`, on `127.0.0.1` in a
background thread. Tests script the account (balances, audit events, webhook
deliveries, a fake clock), inject faults (status codes, delays, malformed bodies,
dropped connections) and read back every request the server received.

Request handling, in order: record the request, apply a pending fault for its path,
check the bearer key, route. Standard library only (and the core's `Balance`).

Layout: this module is the HTTP plumbing and `SimServer`, and the simulator's public
face; the account model and its scripting are in `sim_account.py`, the endpoints in
`sim_routes.py`, the wire records, faults and recorded requests in `sim_records.py`.
"""

from __future__ import annotations

import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from watcher.providers.telnyx.sim_account import BalanceScript, Clock, SimAccount
from watcher.providers.telnyx.sim_records import (
    JSON,
    Fault,
    FaultKind,
    RecordedRequest,
    error_body,
    iso,
)
from watcher.providers.telnyx.sim_routes import Response, json_response, respond

__all__ = [
    "API_PREFIX",
    "HOST",
    "JSON",
    "BalanceScript",
    "Clock",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "SimAccount",
    "SimServer",
    "error_body",
    "free_port",
    "iso",
]

API_PREFIX = "/v2"
HOST = "127.0.0.1"

_JSON_TYPE = "application/json"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# --- HTTP plumbing ------------------------------------------------------------------------


def _fault_response(fault: Fault) -> Response:
    status = 200 if fault.kind == "malformed" else fault.code
    return Response(status, fault.body.encode(), fault.headers)


def _hold(server: _SimHTTPServer, fault: Fault) -> None:
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


def _answer(
    server: _SimHTTPServer, request: RecordedRequest, under_prefix: bool
) -> Response | None:
    """Apply a pending fault, else handle normally; None = drop the connection."""
    account = server.account
    fault = account._take_fault(request.path) if under_prefix else None
    if fault is not None and fault.kind == "disconnect":
        return None
    if fault is not None and fault.kind == "delay":
        server.stopping.wait(fault.seconds)
    elif fault is not None and fault.kind == "hold":
        _hold(server, fault)
    elif fault is not None:
        return _fault_response(fault)
    return respond(account, request, under_prefix)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: _SimHTTPServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self) -> None:
        raw_path = urlsplit(self.path).path
        under_prefix = raw_path.startswith(API_PREFIX + "/")
        request = self._read_request(raw_path, under_prefix)
        self.server.account._record(request)
        try:
            response = _answer(self.server, request, under_prefix)
        except Exception as exc:
            self.server.handler_errors.append(exc)
            response = json_response(500, error_body(500))
        if response is None:
            self.close_connection = True
            return
        self._write(response)

    def _read_request(self, raw_path: str, under_prefix: bool) -> RecordedRequest:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        return RecordedRequest(
            method=self.command,
            path=raw_path[len(API_PREFIX) :] if under_prefix else raw_path,
            query=dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            raw_path=raw_path,
            received_at=self.server.account.now(),
        )

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        names = {name.lower() for name, _ in response.headers}
        for name, value in response.headers:
            self.send_header(name, value)
        if "content-type" not in names:
            self.send_header("Content-Type", _JSON_TYPE)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)


class _SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], account: SimAccount, errors: list[BaseException]
    ) -> None:
        self.account = account
        self.stopping = threading.Event()
        self.handler_errors = errors
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() resolves the host name (getfqdn), which can be slow.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = HOST, int(self.server_address[1])

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, ConnectionError | TimeoutError):
            self.handler_errors.append(exc)


class SimServer:
    """Serves a `SimAccount` on http://127.0.0.1:PORT/v2 from a background thread.

    Use as a context manager, or call `start()` / `stop()`. `port=0` picks a free port.
    """

    def __init__(self, account: SimAccount, *, port: int = 0) -> None:
        self.account = account
        self._requested_port = port
        self._httpd: _SimHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._errors: list[BaseException] = []

    def __repr__(self) -> str:
        state = f"port={self.port}" if self._httpd is not None else "stopped"
        return f"SimServer({state})"

    def start(self) -> None:
        """Bind and serve in a daemon thread. Raises RuntimeError if already running."""
        if self._httpd is not None:
            raise RuntimeError("the simulator is already running")
        httpd = _SimHTTPServer((HOST, self._requested_port), self.account, self._errors)
        thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, name="telnyx-sim"
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
        return self._running().server_port

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v2`. Raises RuntimeError when not running."""
        return f"http://{HOST}:{self.port}{API_PREFIX}"

    @property
    def handler_errors(self) -> list[BaseException]:
        """Unexpected exceptions raised while handling requests (should stay empty)."""
        return list(self._errors)

    def _running(self) -> _SimHTTPServer:
        if self._httpd is None:
            raise RuntimeError("the simulator is not running")
        return self._httpd

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

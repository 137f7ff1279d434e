"""Prism (`@stoplight/prism-cli` 5.14.2) for the contract tests: start one `prism mock` on
a free loopback port serving a vendored spec, and a recording transport.

The binary comes from `$PRISM_BIN` (default `<repo>/node_modules/.bin/prism`). Without
it the tests are skipped, except under `CI=true`, where a missing Prism fails.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
PRISM_BIN = Path(os.environ.get("PRISM_BIN", str(REPO / "node_modules" / ".bin" / "prism")))
STARTUP_LIMIT = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def require_prism() -> None:
    if PRISM_BIN.exists():
        return
    reason = f"Prism not found at {PRISM_BIN} (run `npm ci` or set PRISM_BIN)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; contract tests are mandatory under CI=true")
    pytest.skip(reason)


def _wait_until_up(url: str, probe: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    give_up = time.monotonic() + STARTUP_LIMIT
    while time.monotonic() < give_up:
        if process.poll() is not None:
            output = log_path.read_text(errors="replace")[-2000:]
            pytest.fail(f"Prism exited with {process.returncode} during start-up:\n{output}")
        try:
            httpx.get(f"{url}{probe}", headers={"Authorization": "Bearer x"}, timeout=1.0)
        except httpx.TransportError:
            time.sleep(0.1)
        else:
            return
    output = log_path.read_text(errors="replace")[-2000:]
    pytest.fail(f"Prism did not answer within {STARTUP_LIMIT:g}s:\n{output}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextmanager
def running_prism(
    spec: Path, log_dir: Path, *, errors: bool = True, probe: str = "/"
) -> Iterator[str]:
    """`prism mock [--errors] SPEC` on a free loopback port; yields its base URL and stops
    it at the end. Skips (or fails under CI=true) when Prism is missing. `probe` is the
    path requested until Prism answers at all."""
    require_prism()
    port = free_port()
    log_path = log_dir / f"prism-{spec.stem}.log"
    command = [str(PRISM_BIN), "mock", "-h", "127.0.0.1", "-p", str(port), str(spec)]
    if errors:
        command.insert(-1, "--errors")
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, probe, process, log_path)
        yield url
    finally:
        _stop(process)


class RecordingTransport(httpx.AsyncBaseTransport):
    """A real HTTP transport that keeps every response and can add headers (e.g. Prefer)."""

    def __init__(self, extra_headers: dict[str, str] | None = None) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._extra = extra_headers or {}
        self.responses: list[httpx.Response] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.headers.update(self._extra)
        response = await self._inner.handle_async_request(request)
        self.responses.append(response)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()

    def violations(self) -> list[str]:
        return [r.headers["sl-violations"] for r in self.responses if "sl-violations" in r.headers]


def violations_of(headers: httpx.Headers) -> list[dict[str, object]]:
    """The parsed `sl-violations` header of a Prism answer ([] without one)."""
    text = headers.get("sl-violations")
    if not text:
        return []
    parsed = json.loads(text)
    return [item for item in parsed if isinstance(item, dict)]

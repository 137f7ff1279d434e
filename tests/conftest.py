"""Shared fixtures: the loopback simulator, a JSON receiver, an SMTP server, the real CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop
from aiosmtpd.controller import Controller

from watcher.providers.telnyx.sim import SimAccount, SimServer, free_port

API_KEY = "KEYtest0123456789abcdefSECRET"
REPO = Path(__file__).resolve().parent.parent

BOTH_LOOPS = {"test_transport", "test_lean_reads", "test_telnyx_connections", "test_eventloop"}
"""Modules whose async tests run on asyncio's loop and on uvloop's (the daemon's loop,
watcher/service/eventloop.py): the transports differ there."""


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Any:
    """pytest-asyncio's hook: both loops for the tests of `BOTH_LOOPS`, asyncio's for
    the others (the hook must name at least one)."""
    module = getattr(item, "module", None)
    if module is not None and module.__name__ in BOTH_LOOPS:
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


@pytest.fixture
def sim() -> Iterator[SimServer]:
    """A simulated Telnyx account on 127.0.0.1 with plenty of credit."""
    server = SimServer(SimAccount(api_key=API_KEY, balance="500.00"))
    with server:
        yield server


@dataclass
class Receiver:
    """A local HTTP endpoint for apprise's `json://` URLs; `status` is what it answers."""

    port: int
    messages: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    hits: int = 0  # every POST, also those answered with an error status

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    @property
    def titles(self) -> list[str]:
        return [str(m.get("title", "")) for m in self.messages]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from _receiver()


@pytest.fixture
def receiver2() -> Iterator[Receiver]:
    yield from _receiver()


def _receiver() -> Iterator[Receiver]:
    state = Receiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            state.hits += 1
            if state.status == 200:
                state.messages.append(json.loads(body))
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@dataclass
class Mailbox:
    port: int
    messages: list[Any] = field(default_factory=list)
    controller: Any = None
    handler: Any = None

    def down(self) -> None:
        self.controller.stop()

    def up(self) -> None:
        """A new server on the same port (a stopped aiosmtpd Controller cannot restart)."""
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    @property
    def url(self) -> str:
        return (
            f"mailto://127.0.0.1:{self.port}/?from=watcher@example.com"
            "&to=oncall@example.com&mode=insecure"
        )

    @property
    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(port=free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            box.messages.append(
                message_from_bytes(envelope.original_content, policy=policy.default)
            )
            return "250 OK"

    box.handler = Handler()
    box.up()
    yield box
    with contextlib.suppress(AssertionError, RuntimeError):
        box.controller.stop()


def json_answer(body: bytes) -> bytes:
    """A whole kept-alive HTTP/1.1 200 answer carrying the JSON `body` (raw test servers)."""
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


def write_config(
    tmp_path: Path,
    base_url: str,
    urls: list[str],
    rules: str,
    *,
    extra: str = "",
    interval: str = "10s",
    timeout: str = "3s",
) -> Path:
    """A config file plus one rule file in `tmp_path`; returns the config path."""
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "rules.yaml").write_text(rules)
    config = tmp_path / "config.yaml"
    url_list = ", ".join(json.dumps(u) for u in urls)
    config.write_text(
        f"""\
accounts:
  - name: main
    api_key: env:TELNYX_API_KEY
    base_url: {base_url}
poll:
  interval: {interval}
  timeout: {timeout}
rules: [rules/*.yaml]
state:
  path: {tmp_path / "state.db"}
notify:
  routes:
    ops:
      urls: [{url_list}]
{extra}"""
    )
    return config


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    env.update(TELNYX_API_KEY=API_KEY, PYTHONUNBUFFERED="1", **extra)
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process (`python -m watcher ...`)."""
    return subprocess.run(
        [sys.executable, "-m", "watcher", *args],
        capture_output=True,
        text=True,
        env=env or cli_env(),
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


T = TypeVar("T", bound=Path | str)


def established_state(path: T) -> T:
    """Make `path` (a SQLite file, or a PostgreSQL URL) a state database that is not
    fresh (as if the daemon had run on this host before and an operator had lifted the
    fresh-state wait): out `path`.

    Tests of top-up behaviour other than the fresh-state wait start from such a state.
    """
    from datetime import UTC, datetime

    from watcher.state.ledger import Ledger
    from watcher.state.store import open_store

    with open_store(path) as store:
        ledger = Ledger(store)
        ledger.recover(datetime.now(UTC))
        ledger.resume()
    return path


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """One throwaway PostgreSQL server per pytest worker (tests/pgserver.py).

    Missing binaries skip the PostgreSQL tests outside CI; under `CI=true` (where
    `make test` installs Debian's package) they fail instead.
    """
    import pgserver

    if not pgserver.available():
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not installed (make test installs it)")
        pytest.skip("PostgreSQL is not installed (make test installs it)")
    server = pgserver.PgServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: Any) -> str:
    """A postgresql:// URL of an empty schema of this test's own on the worker's server."""
    return str(pg_server.fresh_url())


@pytest.fixture(params=["sqlite", "postgresql"])
def state_target(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a test's state lives, once per backend: a SQLite file in `tmp_path`, or a
    PostgreSQL URL of a fresh schema (`pg_url`); open it with `open_store(target)`."""
    if request.param == "sqlite":
        return tmp_path / "state" / "state.db"
    return str(request.getfixturevalue("pg_url"))

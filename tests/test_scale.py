"""Many accounts in one daemon (issue 13 item 1): the accounts of one host share one
connection pool, the requests in flight to it stay under `poll.concurrency`, and the
notifications of many accounts reach each URL in order while the URLs are served
concurrently. Real cycles of the daemon against one simulator serving every account."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from watcher.core.model import AccountSnapshot, WebhookDelivery
from watcher.core.rules import WebhookFailuresRule, evaluate
from watcher.providers.telnyx.sim import SimAccount, SimServer
from watcher.service import logs
from watcher.service.cycle import CycleResult, Daemon
from watcher.service.wiring import build_wiring, load_runtime
from watcher.state.store import Store

RULES = """\
rules:
  - {name: low-credit, kind: balance, below: {warning: 100}}
  - {name: config-change, kind: audit, match: {change_made_by: organization_member}}
  - {name: spike, kind: webhook_failures, window: 15m, at_least: 10, ratio: 0.25}
"""


def _key(index: int) -> str:
    return f"scale-key-{index:03d}-0123456789abcdef"


def _accounts(count: int, balance: str = "500.00") -> list[SimAccount]:
    return [SimAccount(api_key=_key(i), balance=balance) for i in range(count)]


def _config(tmp_path: Path, base_url: str, count: int, urls: list[str], poll: str) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES)
    accounts = "".join(
        f"  - {{name: a{i:03d}, api_key: 'env:SCALE_KEY_{i}', base_url: '{base_url}'}}\n"
        for i in range(count)
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        f"accounts:\n{accounts}poll: {{{poll}}}\nrules: [rules.yaml]\n"
        f"state: {{path: {tmp_path / 'state.db'}}}\n"
        f"notify: {{routes: {{ops: {{urls: {json.dumps(urls)}}}}}}}\n"
    )
    return config


def _cycles(config: Path, count: int, cycles: int) -> list[CycleResult]:
    """`cycles` cycles of one daemon (one wiring, one store), in this process."""
    environ = {**os.environ, **{f"SCALE_KEY_{i}": _key(i) for i in range(count)}}
    runtime = load_runtime(config, environ)

    async def run() -> list[CycleResult]:
        with Store.open(config.parent / "state.db") as store:
            daemon = Daemon(build_wiring(runtime), store)
            try:
                return [await daemon.cycle() for _ in range(cycles)]
            finally:
                await daemon.aclose()

    logs.configure_logging(level="error")
    return asyncio.run(run())


def test_fifty_accounts_share_one_pool_of_at_most_the_limit_over_two_cycles(
    tmp_path: Path,
) -> None:
    accounts = _accounts(50)
    with SimServer(accounts[0], accounts=accounts, latency=0.005) as sim:
        config = _config(tmp_path, sim.base_url, 50, ["json://127.0.0.1:9/"], "concurrency: 5")
        results = _cycles(config, 50, 2)
        traffic = sim.traffic
    assert [r.source_errors for r in results] == [[], []]
    assert all(a.request_count("/balance") == 2 for a in accounts)
    assert 1 <= traffic.connections <= 5  # per host, not per account, and kept alive


def test_requests_in_flight_to_a_host_stay_under_poll_concurrency(tmp_path: Path) -> None:
    accounts = _accounts(50)
    with SimServer(accounts[0], accounts=accounts, latency=0.01) as sim:
        config = _config(tmp_path, sim.base_url, 50, ["json://127.0.0.1:9/"], "concurrency: 4")
        results = _cycles(config, 50, 1)
        traffic = sim.traffic
    assert results[0].source_errors == []
    assert results[0].requests == sum(a.request_count() for a in accounts) >= 150
    assert 1 < traffic.max_in_flight <= 4


def test_the_default_bound_is_twenty_in_flight(tmp_path: Path) -> None:
    accounts = _accounts(60)
    with SimServer(accounts[0], accounts=accounts, latency=0.01) as sim:
        config = _config(tmp_path, sim.base_url, 60, ["json://127.0.0.1:9/"], "interval: 60s")
        _cycles(config, 60, 1)
        traffic = sim.traffic
    assert traffic.max_in_flight <= 20
    assert traffic.connections <= 20


@dataclass
class Gated:
    """A JSON endpoint that records titles in arrival order; with `hold`, its first
    request waits until `release` is set (or 20 s)."""

    port: int = 0
    titles: list[str] = field(default_factory=list)
    hold: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    released_in_time: bool | None = None

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"


@pytest.fixture
def endpoints() -> Iterator[tuple[Gated, Gated]]:
    pair = (Gated(hold=True), Gated())
    servers = []
    for state in pair:

        class Handler(BaseHTTPRequestHandler):
            gate = state

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                gate = self.gate
                if gate.hold and gate.released_in_time is None:
                    gate.released_in_time = gate.release.wait(20)
                gate.titles.append(str(json.loads(body)["title"]))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        state.port = int(server.server_address[1])
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield pair
    for server in servers:
        server.shutdown()
        server.server_close()


def test_many_accounts_notifying_at_once_keep_each_urls_order(
    tmp_path: Path, endpoints: tuple[Gated, Gated]
) -> None:
    held, free = endpoints
    accounts = _accounts(30, balance="50.00")

    class Releasing(list[str]):
        """`free`'s titles; the 30th releases `held` (so `held` waited for all 30)."""

        def append(self, title: str) -> None:
            super().append(title)
            if len(self) == 30:
                held.release.set()

    free.titles = Releasing()
    with SimServer(accounts[0], accounts=accounts) as sim:
        config = _config(tmp_path, sim.base_url, 30, [held.url, free.url], "interval: 60s")
        result = _cycles(config, 30, 1)[0]
    with sqlite3.connect(tmp_path / "state.db") as db:
        outbox = [row[0] for row in db.execute("SELECT title FROM outbox_messages ORDER BY id")]
    assert len(outbox) == 30 and len({t.split(" — ")[0] for t in outbox}) >= 1
    assert held.released_in_time is True  # the other URL got all 30 while this one waited
    assert list(free.titles) == outbox
    assert held.titles == outbox
    assert sum(1 for d in result.deliveries if d.ok) == 60


# --- the delivery total is asked for only when it can matter ------------------------------

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SPIKE = TypeAdapter(WebhookFailuresRule).validate_python(
    {"name": "spike", "kind": "webhook_failures", "window": "15m", "at_least": 3, "ratio": 0.25}
)


def _failed(count: int) -> tuple[WebhookDelivery, ...]:
    return tuple(
        WebhookDelivery(f"d{i}", NOW - timedelta(minutes=1), "failed", "message.sent")
        for i in range(count)
    )


@pytest.mark.parametrize(
    ("failed", "total", "judged", "firing"),
    [
        (0, None, True, False),  # nothing failed: the total cannot matter
        (2, None, True, False),  # fewer than at_least: it cannot fire, whatever the total
        (3, None, False, False),  # could fire, the total is unknown: not judged
        (3, 100, True, False),  # 3 of 100 is under 25 %
        (3, 10, True, True),
    ],
)
def test_a_ratio_rule_needs_the_total_only_from_at_least_failures_on(
    failed: int, total: int | None, judged: bool, firing: bool
) -> None:
    totals = {} if total is None else {SPIKE.window: total}
    snap = AccountSnapshot("a", webhook_failures=_failed(failed), delivery_totals=totals)
    [result] = [r for r in evaluate([SPIKE], [snap], NOW) if r.rule == "spike"]
    assert (result.judged, bool(result.findings)) == (judged, firing)


def _count_requests(account: SimAccount) -> int:
    return sum(
        1
        for r in account.requests
        if r.path == "/webhook_deliveries" and r.query.get("page[size]") == "1"
    )


@pytest.mark.parametrize(("failures", "counts"), [(5, 0), (12, 2)])
def test_the_total_is_read_only_when_the_failures_reach_at_least(
    tmp_path: Path, failures: int, counts: int
) -> None:
    account = SimAccount(api_key=_key(0))
    for i in range(failures):
        account.add_webhook_delivery(started_at=datetime.now(UTC) - timedelta(seconds=i))
    with SimServer(account) as sim:
        config = _config(tmp_path, sim.base_url, 1, ["json://127.0.0.1:9/"], "interval: 60s")
        results = _cycles(config, 1, 2)
    assert [r.source_errors for r in results] == [[], []]
    assert _count_requests(account) == counts  # at_least is 10 (RULES)

"""Steady-state cost of a cycle against the loopback simulator.

Prints, for N cycles with nothing new: HTTP requests per cycle, cycle wall time
(median / max), and the evaluation cost of 10,000 audit events through the pure core.

    .venv/bin/python bench/steady_state.py [CYCLES]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import TypeAdapter

from watcher.core.model import AccountSnapshot, AuditEvent
from watcher.core.rules import Rule, evaluate
from watcher.providers.telnyx.sim import SimAccount, SimServer
from watcher.service import logs
from watcher.service.cycle import Daemon
from watcher.service.wiring import build_wiring, load_runtime
from watcher.state.store import Store

RULES = """\
rules:
  - {name: low-credit, kind: balance, below: {warning: 100, critical: 50}}
  - {name: config-change, kind: audit, match: {change_made_by: organization_member}}
  - {name: spike, kind: webhook_failures, window: 15m, at_least: 10, ratio: 0.25}
"""


async def cycles(n: int) -> None:
    logs.configure_logging(level="warning")
    account = SimAccount(api_key="bench-key-0123456789")
    with SimServer(account) as server, tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "rules.yaml").write_text(RULES)
        (base / "config.yaml").write_text(
            f"accounts: [{{name: main, api_key: 'env:BENCH_KEY', base_url: '{server.base_url}'}}]\n"
            f"rules: [rules.yaml]\nstate: {{path: {base / 'state.db'}}}\n"
            "notify: {routes: {ops: {urls: ['json://127.0.0.1:9/']}}}\n"
        )
        environ = {**os.environ, "BENCH_KEY": "bench-key-0123456789"}
        runtime = load_runtime(base / "config.yaml", environ)
        with Store.open(base / "state.db") as store:
            daemon = Daemon(build_wiring(runtime), store)
            await daemon.cycle()  # first cycle: baseline
            times, requests = [], []
            for _ in range(n):
                report = await daemon.cycle()
                times.append(report.duration_s * 1000)
                requests.append(report.requests)
            await daemon.aclose()
    print(f"steady-state cycles: {n}")
    print(f"  requests per cycle: {statistics.mean(requests):.2f} (3 sources + 1 ratio total)")
    print(f"  cycle time ms: median {statistics.median(times):.1f}, max {max(times):.1f}")


def evaluation(events: int) -> None:
    rules = [
        TypeAdapter(Rule).validate_python(r)
        for r in [
            {
                "name": "a",
                "kind": "audit",
                "match": {"change_made_by": ["account_*", "org*"]},
                "ignore": [{"field": "tags"}],
            },
        ]
    ]
    now = datetime.now(UTC)
    snap = AccountSnapshot(
        "main",
        new_audit_events=tuple(
            AuditEvent(str(i), now - timedelta(seconds=i), "update", "organization_member")
            for i in range(events)
        ),
    )
    started = time.perf_counter()
    evaluate(rules, [snap], now)
    print(f"evaluate {events} audit events: {(time.perf_counter() - started) * 1000:.1f} ms")


if __name__ == "__main__":
    asyncio.run(cycles(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
    evaluation(10_000)

"""A big backlog at the API: how many cycles, requests and how much memory to catch up.

Starts the loopback simulator with a latency per request, creates a state with one
`once`, rewinds it by an hour (the daemon was stopped), seeds the backlog the daemon
missed (failed webhook deliveries and audit events over the last hour), then runs
`account-watcher once` in a child process cycle after cycle until it has caught up
(every delivery in the store, every audit event seen) or
`--cycles` is reached. Prints one row per cycle: exit code, API requests, wall time,
peak RSS of the child (its VmHWM), what the store holds, and the audit alerts.

    .venv/bin/python bench/backlog.py                       # 50,000 + 20,000 at 30 s
    .venv/bin/python bench/backlog.py --interval 10s --latency 0.07   # quicker
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from watcher.core.durations import parse_duration
from watcher.providers.telnyx.sim import Fault, SimAccount, SimServer
from watcher.state.store import ts

KEY = "bench-key-0123456789"
REPO = Path(__file__).resolve().parent.parent
RULES = """\
rules:
  - {name: low-credit, kind: balance, below: {warning: 100, critical: 50}}
  - {name: config-change, kind: audit, match: {change_made_by: organization_member}}
  - {name: spike, kind: webhook_failures, window: 1h, at_least: 10}
"""
PATHS = ("/balance", "/audit_events", "/webhook_deliveries")
DOWNTIME = timedelta(hours=1)
MATCHING_EVERY = 100  # one audit event in this many matches the audit rule


class Receiver(ThreadingHTTPServer):
    """Counts the audit events named by the alerts it receives (apprise `json://`)."""

    def __init__(self) -> None:
        self.audit_events = 0
        self.messages = 0
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.messages += 1
        found = re.search(r"(\d+) (?:new )?audit events?", str(body.get("title", "")))
        if "config-change" in str(body.get("title", "")) and found:
            self.server.audit_events += int(found.group(1))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


def once(config: Path) -> tuple[int, float, float]:
    """Run one `once`; out: exit code, wall seconds, peak RSS in MB of that child.

    The peak is the child's own VmHWM, read from /proc while it runs (every 10 ms; the
    high-water mark only grows). Not `wait4`'s ru_maxrss: that one starts from the
    parent's RSS at fork time (here the simulator with its whole backlog).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    env.update(BENCH_KEY=KEY, WATCHER_ALLOW_FAST_POLL="1")
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", str(config), "once"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    status = Path(f"/proc/{child.pid}/status")
    peak_kb = 0
    while True:
        with contextlib.suppress(OSError, ValueError, StopIteration):  # gone, or a zombie
            hwm = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM"))
            peak_kb = max(peak_kb, int(hwm.split()[1]))
        try:
            code = child.wait(timeout=0.01)
            break
        except subprocess.TimeoutExpired:
            continue
    return code, time.monotonic() - started, peak_kb / 1024


def rewind(state: Path, by: timedelta) -> None:
    """Move the first start and every cursor `by` into the past (the daemon was down)."""
    with sqlite3.connect(state) as db:
        start = datetime.fromisoformat(
            db.execute("SELECT value FROM meta WHERE key = 'first_start'").fetchone()[0]
        )
        db.execute("UPDATE meta SET value = ? WHERE key = 'first_start'", (ts(start - by),))
        for account, source, value in db.execute("SELECT * FROM cursors").fetchall():
            moved = ts(datetime.fromisoformat(value) - by)
            db.execute(
                "UPDATE cursors SET value = ? WHERE account = ? AND source = ?",
                (moved, account, source),
            )


def stored(state: Path) -> tuple[int, int]:
    """Failed deliveries stored, audit ids seen."""
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        failures = db.execute("SELECT COUNT(*) FROM webhook_failures").fetchone()[0]
        seen = db.execute("SELECT COUNT(*) FROM audit_seen").fetchone()[0]
        return failures, seen


def seed(account: SimAccount, deliveries: int, audit: int) -> int:
    """The backlog over the downtime; out: how many audit events match the rule."""
    end = datetime.now(UTC) - timedelta(seconds=30)
    start = end - DOWNTIME + timedelta(minutes=5)
    account.add_webhook_backlog(deliveries, start=start, end=end)
    matching = audit // MATCHING_EVERY
    account.add_audit_backlog(audit - matching, start=start, end=end)
    account.add_audit_backlog(matching, start=start, end=end, change_made_by="organization_member")
    return matching


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=50_000)
    parser.add_argument("--audit", type=int, default=20_000)
    parser.add_argument("--interval", default="30s", help="poll.interval (the cycle budget)")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per API request")
    parser.add_argument("--cycles", type=int, default=6, help="stop after this many")
    args = parser.parse_args()
    interval = parse_duration(args.interval)

    account = SimAccount(api_key=KEY)
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    with SimServer(account) as server, tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        state = base / "state.db"
        (base / "rules.yaml").write_text(RULES)
        (base / "config.yaml").write_text(
            f"accounts: [{{name: main, api_key: 'env:BENCH_KEY', base_url: '{server.base_url}'}}]\n"
            f"poll: {{interval: {args.interval}, timeout: 10s}}\n"
            f"rules: [rules.yaml]\nstate: {{path: {state}}}\n"
            f"notify: {{routes: {{ops: {{urls: ['json://127.0.0.1:{receiver.server_port}/']}}}}}}\n"
        )
        code, _, _ = once(base / "config.yaml")
        if code != 0:
            sys.exit(f"the first `once` failed with exit code {code}")
        rewind(state, DOWNTIME)
        matching = seed(account, args.deliveries, args.audit)
        for path in PATHS:
            account.inject_fault(path, Fault.delay(args.latency), times=-1)
        print(
            f"backlog: {args.deliveries:,} failed deliveries, {args.audit:,} audit events "
            f"({matching} matching), poll.interval {args.interval}, "
            f"{args.latency * 1000:.0f} ms per request"
        )
        print(
            f"{'cycle':>5} {'exit':>4} {'requests':>8} {'wall s':>7} {'budget':>6} "
            f"{'peak RSS MB':>11} {'deliveries':>10} {'audit seen':>10} {'alerted':>7}"
        )
        peak = 0.0
        for cycle in range(1, args.cycles + 1):
            before = account.request_count()
            code, wall, rss = once(base / "config.yaml")
            peak = max(peak, rss)
            failures, seen = stored(state)
            within = "ok" if wall <= interval.total_seconds() else "OVER"
            print(
                f"{cycle:>5} {code:>4} {account.request_count() - before:>8} {wall:>7.1f} "
                f"{within:>6} {rss:>11.1f} {failures:>10,} {seen:>10,} "
                f"{receiver.audit_events:>7}"
            )
            if failures >= args.deliveries and seen >= args.audit:
                print(f"caught up after {cycle} cycles; peak RSS {peak:.1f} MB")
                break
        else:
            print(f"NOT caught up after {args.cycles} cycles; peak RSS {peak:.1f} MB")
    receiver.shutdown()


if __name__ == "__main__":
    main()

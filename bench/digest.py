"""How long building the daily digest takes, and its size, for many accounts.

Builds a state with N accounts, each with 25 h of balance samples at the poll interval,
a few alert-history entries and a ledger entry, then times `watcher.notify.digest.build`
(what the daemon's commit runs once a day, inside its transaction). Prints one row per N:
accounts, samples read, seconds, messages, characters of text.

    .venv/bin/python bench/digest.py                 # 10, 100, 1000 accounts at 60 s
    .venv/bin/python bench/digest.py --accounts 50 500 --interval 30s
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from watcher.config.settings import Settings
from watcher.core.digest import Happening
from watcher.core.durations import parse_duration
from watcher.core.lifecycle import Reason
from watcher.core.model import AlertKey, Severity
from watcher.notify.digest import build
from watcher.state.digests import DigestLog
from watcher.state.store import Store, ts

NOW = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


def seed(store: Store, accounts: int, interval: timedelta) -> int:
    """Samples, history and a ledger row per account; out: samples written."""
    steps = int(timedelta(hours=25) / interval)
    rows = []
    for a in range(accounts):
        for i in range(steps):
            value = str(Decimal(1000) - Decimal(i) / 10)
            at = ts(NOW - interval * (steps - i))
            rows.append((f"acct-{a:04d}", at, value, value, "0", "0", "USD"))
    store.executemany(
        "INSERT INTO balance_samples (account, at, balance, available_credit, credit_limit, "
        "pending, currency) VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    history = [
        Happening(
            NOW - timedelta(hours=h), AlertKey("low", f"acct-{a:04d}"), reason, sev, "balance"
        )
        for a in range(0, accounts, 3)
        for h, reason, sev in (
            (5, Reason.FIRING, Severity.WARNING),
            (2, Reason.RESOLVED, Severity.WARNING),
        )
    ]
    DigestLog(store).add_history(history)
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--interval", default="60s")
    args = parser.parse_args()
    interval = parse_duration(args.interval)
    print(f"{'accounts':>8} {'samples':>9} {'seconds':>8} {'messages':>8} {'chars':>9}")
    for n in args.accounts:
        with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "state.db") as store:
            samples = seed(store, n, interval)
            settings = Settings.model_validate(
                {"accounts": [{"name": f"acct-{a:04d}"} for a in range(n)]}
            )
            started = time.perf_counter()
            messages = build(store, settings, {"low": "balance"}, NOW)
            took = time.perf_counter() - started
            chars = sum(len(m.title) + len(m.body) for m in messages)
            print(f"{n:>8} {samples:>9} {took:>8.2f} {len(messages):>8} {chars:>9}")


if __name__ == "__main__":
    main()

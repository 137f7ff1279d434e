"""The state's cost per poll cycle on SQLite and on PostgreSQL, through the real store.

One "cycle" writes what a daemon cycle of N accounts writes (per account: a balance
sample, three source results, seen audit ids; then the alert states, the last cycle,
one outbox message with one target and its delivery) in one transaction, and reads
what the next cycle reads (cursors, unseen audit ids, samples of the last hour). Printed:
median wall milliseconds per cycle over `--cycles`, for 10 and 100 accounts.

PostgreSQL: `--url postgresql://…` (its search_path schema must be empty), else a
throwaway server (tests/pgserver.py: Debian's PostgreSQL 15 on 127.0.0.1, fsync off as
in the tests — so the numbers are the round trips and the server's CPU, not the disk).

    .venv/bin/python bench/state_backends.py [--cycles 30] [--url URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from watcher.core.lifecycle import Reason
from watcher.core.model import AlertKey, AlertState, AuditEvent, Balance, Phase, Severity
from watcher.core.render import Message
from watcher.notify.delivery import Target
from watcher.notify.outbox import Outbox
from watcher.service import logs
from watcher.state.store import StateTarget, Store, open_store

T0 = datetime(2026, 12, 1, tzinfo=UTC)
BALANCE = Balance(Decimal("80.00"), Decimal("80.00"), Decimal(0), Decimal(0), "USD")
MESSAGE = Message("[WARNING] low", "body", Severity.WARNING, "low", "a0", Reason.FIRING)


def cycle(store: Store, accounts: list[str], number: int) -> None:
    now = T0 + timedelta(minutes=number)
    events = [AuditEvent(f"e{number}-{i}", now) for i in range(3)]
    with store.transaction():
        for name in accounts:
            store.get_cursor(name, "audit")
            unseen = store.unseen_audit_events(name, events)
            store.add_balance_sample(name, now, BALANCE)
            store.mark_audit_seen(name, unseen, now)
            for source in ("balance", "audit", "webhooks"):
                store.record_source_result(name, source, now, None)
            store.balance_samples(name, now - timedelta(hours=1))
        key = AlertKey("low", accounts[0], "")
        store.save_alerts({key: AlertState(key, Phase.FIRING, Severity.WARNING, T0, T0)})
        store.record_cycle(now, duration_s=0.5, errors=0)
    outbox = Outbox(store, owner="bench")
    outbox.enqueue(MESSAGE, [Target("ops", "u1", "json://…")], now)
    for item in outbox.pending(now):
        if outbox.claim(item, now, timedelta(seconds=20)):
            outbox.mark_delivered(item, now)


def per_cycle_ms(target: StateTarget, accounts: int, cycles: int) -> float:
    names = [f"a{i}" for i in range(accounts)]
    times = []
    with open_store(target) as store:
        for number in range(cycles):
            start = time.perf_counter()
            cycle(store, names, number)
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


@contextmanager
def postgresql(url: str | None) -> Iterator[Callable[[], str]]:
    if url is not None:
        yield lambda: url
        return
    import pgserver

    server = pgserver.PgServer().start()
    try:
        yield server.fresh_url
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--url", help="an empty PostgreSQL schema (default: a throwaway server)")
    args = parser.parse_args()
    logs.configure_logging(level="warning", fmt="console")
    print("| accounts | SQLite ms/cycle | PostgreSQL ms/cycle |")
    print("|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp, postgresql(args.url) as fresh:
        for accounts in (10, 100):
            lite = per_cycle_ms(Path(tmp) / f"s{accounts}.db", accounts, args.cycles)
            pg = per_cycle_ms(fresh(), accounts, args.cycles)
            print(f"| {accounts} | {lite:.1f} | {pg:.1f} |")


if __name__ == "__main__":
    main()

"""The cycle commit's writes of what the collects read, at 10 / 100 / 1,000 accounts.

Each account's `Collected` is a steady cycle of a balance + audit + webhook watch: a
balance sample, three cursors, two resume points done (deleted), two sources read and
one failed, one new audit id and one new failed delivery. `write_collected`
(watcher/service/commit.py) writes them inside a transaction on a real SQLite file, as
the cycle's commit does. Printed: the median and the least CPU time
(`time.process_time`) of that commit over `--cycles` cycles after a first one, per
account (the least is the steadier figure on a machine that others load too), and the
median wall time. `--postgresql`: on a throwaway PostgreSQL server instead
(tests/pgserver.py, fsync off as in the tests: the round trips, not the disk).

    .venv/bin/python bench/commit.py [--cycles 15] [--postgresql]
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

from watcher.core.model import AccountSnapshot, AuditEvent, Balance, SourceName, WebhookDelivery
from watcher.providers.base import Collected, SourceFailure
from watcher.service import logs
from watcher.service.commit import write_collected
from watcher.state.store import StateTarget, open_store

T0 = datetime(2026, 12, 1, tzinfo=UTC)
BALANCE = Balance(Decimal("80.00"), Decimal("80.00"), Decimal(0), Decimal(0), "USD")
SOURCES = (SourceName.BALANCE, SourceName.AUDIT, SourceName.WEBHOOKS)


def collected(account: str, now: datetime, number: int) -> Collected:
    failed = WebhookDelivery(f"d{number}", now, "failed", "message.sent", "https://h/x", 503, "")
    return Collected(
        snapshot=AccountSnapshot(account=account),
        succeeded=frozenset(SOURCES[:2]),
        failures={SourceName.WEBHOOKS: SourceFailure("HTTP 503")},
        balance_sample=BALANCE,
        audit_seen=(AuditEvent(f"e{number}", now),),
        webhook_failures=(failed,),
        cursors=dict.fromkeys(SOURCES, now),
        resumes={SourceName.AUDIT: None, SourceName.WEBHOOKS: None},
    )


def measure(target: StateTarget, accounts: int, cycles: int) -> tuple[list[float], float]:
    """The CPU seconds of each steady commit of `accounts` accounts; their median wall."""
    cpu, wall = [], []
    with open_store(target) as store:
        for number in range(cycles + 1):
            now = T0 + timedelta(minutes=number)
            batch = [collected(f"acct-{i:04d}", now, number) for i in range(accounts)]
            start, started = time.process_time(), time.perf_counter()
            with store.transaction():
                write_collected(store, batch, now)
            if number:  # the first cycle creates every row: not the steady state
                cpu.append(time.process_time() - start)
                wall.append(time.perf_counter() - started)
    return cpu, statistics.median(wall)


@contextmanager
def targets(postgresql: bool) -> Iterator[Callable[[int], StateTarget]]:
    """A fresh state per size: a SQLite file, or a schema of a throwaway server."""
    with tempfile.TemporaryDirectory() as tmp:
        if not postgresql:
            yield lambda accounts: Path(tmp) / f"state-{accounts}.db"
            return
        import pgserver

        server = pgserver.PgServer().start()
        try:
            yield lambda _: str(server.fresh_url())
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=15)
    parser.add_argument("--postgresql", action="store_true")
    args = parser.parse_args()
    logs.configure_logging(level="warning", fmt="console")
    print("| accounts | CPU ms/commit | CPU µs/account | (least) | wall ms/commit |")
    print("|---:|---:|---:|---:|---:|")
    with targets(args.postgresql) as target:
        for accounts in (10, 100, 1000):
            times, wall = measure(target(accounts), accounts, args.cycles)
            median, least = statistics.median(times), min(times)
            per = f"{median / accounts * 1e6:.0f} | {least / accounts * 1e6:.0f}"
            print(f"| {accounts} | {median * 1000:.1f} | {per} | {wall * 1000:.0f} |")


if __name__ == "__main__":
    main()

"""What the invoices source costs: `GET /invoices` requests per hour, per account.

Replays a day of cycles (`--hours`, at `--interval`) on a simulated clock: each cycle
runs the Telnyx `collect` of an `invoice` rule against the loopback simulator and
writes what it read (cursors, kept invoices) into a real SQLite state, as the daemon's
commit does. Prints one row per (`poll.slow_interval`, number of invoices): requests
in all, per hour, and the cycles that judged the rule on kept invoices without a read.

    .venv/bin/python bench/invoice_requests.py
    .venv/bin/python bench/invoice_requests.py --hours 6 --interval 10s
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

from watcher.core.durations import parse_duration
from watcher.core.model import SourceName
from watcher.providers.base import Needs
from watcher.providers.telnyx.client import TelnyxClient
from watcher.providers.telnyx.sim import SimAccount, SimServer
from watcher.providers.telnyx.sources import collect
from watcher.state.store import Store

KEY = "bench-key-0123456789"
START = datetime(2026, 12, 1, tzinfo=UTC)
NEEDS = Needs(sources=frozenset({SourceName.INVOICES}))


async def replay(
    server: SimServer, state: Path, hours: int, interval: timedelta, slow: timedelta
) -> tuple[int, int]:
    """Out: (requests to /invoices, cycles that judged the rule on kept invoices)."""
    before = server.account.request_count("/invoices")
    kept_only = 0
    with Store.open(state) as store:
        async with TelnyxClient(base_url=server.base_url, api_key=SecretStr(KEY)) as client:
            now = START
            while now < START + timedelta(hours=hours):
                got = await collect(
                    "main", client, store, NEEDS, now, first_start=START, slow_interval=slow
                )
                kept_only += SourceName.INVOICES not in got.succeeded and bool(
                    got.snapshot.invoices
                )
                with store.transaction():
                    for source, cursor in got.cursors.items():
                        store.set_cursor("main", str(source), cursor)
                    for source, resume in got.resumes.items():
                        store.set_resume("main", str(source), resume)
                now += interval
    return server.account.request_count("/invoices") - before, kept_only


def account_with(invoices: int) -> SimAccount:
    account = SimAccount(api_key=KEY)
    for number in range(invoices):
        month = date(2000 + number // 12, number % 12 + 1, 1)
        end = date(month.year, month.month, 28)
        account.add_invoice(period_start=month, period_end=end, paid=number % 7 != 0)
    return account


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--interval", type=parse_duration, default=timedelta(seconds=60))
    args = parser.parse_args()
    print(f"{args.hours} h of cycles every {args.interval.total_seconds():g}s")
    print(f"{'slow_interval':>13} {'invoices':>8} {'requests':>8} {'per hour':>8} {'kept':>6}")
    for slow in ("1m", "10m", "2h"):
        for invoices in (12, 300):
            with SimServer(account_with(invoices)) as server, tempfile.TemporaryDirectory() as tmp:
                state = Path(tmp) / "state.db"
                sent, kept = asyncio.run(
                    replay(server, state, args.hours, args.interval, parse_duration(slow))
                )
            rate = sent / args.hours
            print(f"{slow:>13} {invoices:>8} {sent:>8} {rate:>8.2f} {kept:>6}")


if __name__ == "__main__":
    main()

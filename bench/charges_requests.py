"""What the charges sources cost: `GET /charges_summary` and `GET /charges_breakdown`
requests per hour, per Telnyx account.

Replays a day of cycles (`--hours`, at `--interval`) on a simulated clock: each cycle
runs the Telnyx `collect` of the spend rules of a scenario against the loopback
simulator and writes what it read (cursors, kept reads) into a real SQLite state, as the
daemon's commit does. Prints one row per (scenario, `poll.slow_interval`): requests to
each endpoint in all and per hour. The replay starts at 12:00 UTC on 15 November and so crosses one
local midnight in every zone (never the 1st of a month, when the day and the month are
one request).

    .venv/bin/python bench/charges_requests.py
    .venv/bin/python bench/charges_requests.py --hours 6 --interval 10s
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from pydantic import SecretStr

from watcher.core.durations import parse_duration
from watcher.core.model import ChargesQuery, SourceName
from watcher.core.rules import RuleFile, sources_needed
from watcher.core.spend import charges_queries
from watcher.providers.base import Needs
from watcher.providers.telnyx.client import TelnyxClient
from watcher.providers.telnyx.sim import SimAccount, SimServer
from watcher.providers.telnyx.sources import collect
from watcher.state.store import Store

KEY = "bench-key-0123456789"
START = datetime(2026, 11, 15, 12, tzinfo=UTC)  # mid-month, midday: crosses one midnight
SUMMARY, BREAKDOWN = "/charges_summary", "/charges_breakdown"

SCENARIOS: dict[str, list[dict[str, object]]] = {
    "day above": [{"period": "day", "above": 100}],
    "month above": [{"period": "month", "above": 1000}],
    "day spike 7d": [{"period": "day", "spike": {"factor": 3, "baseline": "7d"}}],
    "rules/spend.yaml": [
        {"period": "day", "spike": {"factor": 3, "baseline": "7d", "min_amount": 20}},
        {"period": "month", "above": {"warning": 500, "critical": 1000}},
    ],
    "month + numbers": [{"period": "month", "above": 1000, "numbers": True}],
    "two zones": [
        {"period": "day", "above": 100},
        {"period": "day", "above": 100, "timezone": "Asia/Tokyo"},
    ],
}


def needs_of(rules: list[dict[str, object]]) -> Needs:
    data = [{"name": f"r{i}", "kind": "spend", **r} for i, r in enumerate(rules)]
    loaded = RuleFile.model_validate({"rules": data}).rules
    return Needs(sources_needed(loaded), charges=charges_queries(loaded))


async def replay(
    server: SimServer, state: Path, needs: Needs, hours: int, interval: timedelta, slow: timedelta
) -> tuple[int, int]:
    """Out: requests to /charges_summary and to /charges_breakdown."""
    account = server.account
    before = account.request_count(SUMMARY), account.request_count(BREAKDOWN)
    sources = needs.sources & {SourceName.CHARGES, SourceName.CHARGES_BREAKDOWN}
    needs = Needs(frozenset(sources), charges=needs.charges)
    with Store.open(state) as store:
        async with TelnyxClient(base_url=server.base_url, api_key=SecretStr(KEY)) as client:
            now = START
            while now < START + timedelta(hours=hours):
                got = await collect(
                    "main", client, store, needs, now, first_start=START, slow_interval=slow
                )
                assert not got.failures, got.failures
                with store.transaction():
                    for source, cursor in got.cursors.items():
                        store.set_cursor("main", str(source), cursor)
                    for source, resume in got.resumes.items():
                        store.set_resume("main", str(source), resume)
                now += interval
    return account.request_count(SUMMARY) - before[0], account.request_count(BREAKDOWN) - before[1]


def zones(queries: tuple[ChargesQuery, ...]) -> str:
    return ",".join(q.timezone for q in queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--interval", type=parse_duration, default=timedelta(seconds=60))
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    every = f"{args.interval.total_seconds():g}s"
    print(f"{args.hours} h of cycles every {every} from {START:%Y-%m-%d %H:%M} UTC")
    print(f"{'scenario':<17} {'zones':<15} {'slow':>5} {'summary':>8} {'/h':>6}", end="")
    print(f" {'breakdown':>9} {'/h':>6}")
    for name, rules in SCENARIOS.items():
        needs = needs_of(rules)
        for slow in ("10m", "1h"):
            with SimServer(SimAccount(api_key=KEY)) as server, tempfile.TemporaryDirectory() as tmp:
                summary, breakdown = asyncio.run(
                    replay(
                        server,
                        Path(tmp) / "state.db",
                        needs,
                        args.hours,
                        args.interval,
                        parse_duration(slow),
                    )
                )
            print(
                f"{name:<17} {zones(needs.charges):<15} {slow:>5} {summary:>8} "
                f"{summary / args.hours:>6.2f} {breakdown:>9} {breakdown / args.hours:>6.2f}"
            )


if __name__ == "__main__":
    main()

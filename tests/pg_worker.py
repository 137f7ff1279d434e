"""One of several processes writing one PostgreSQL state at once (test_pg_concurrency.py).

`python tests/pg_worker.py ledger|claim URL NAME`: opens the state, waits at the gate
(a shared advisory lock the test holds exclusively until every worker waits on it), then
- `ledger`: tries ATTEMPTS top-ups, each paid only while fewer than CAP entries exist
  (the read and the insert are `Ledger.begin_if`'s one transaction), and prints how
  many it wrote;
- `claim`: claims the outbox's only target and prints 1 if it got it, else 0.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg

from watcher.notify.outbox import Outbox
from watcher.state.ledger import Entry, Guard, Ledger, NewEntry
from watcher.state.store import open_store

GATE = 4242
CAP = 3
ATTEMPTS = 6
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NEW = NewEntry("main", Decimal("100.00"), "USD", "low", "why", "ep")


def gate(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock_shared(%s)", (GATE,))


def ledger(url: str) -> int:
    def under_cap(entries: list[Entry], guard: Guard) -> bool:
        return len(entries) < CAP

    wrote = 0
    with open_store(url) as store:
        book = Ledger(store)
        gate(url)
        for _ in range(ATTEMPTS):
            _, entry = book.begin_if(
                under_cap, bool, NEW, account="main", since=NOW - timedelta(days=1), now=NOW
            )
            wrote += entry is not None
    return wrote


def claim(url: str, name: str) -> int:
    with open_store(url) as store:
        outbox = Outbox(store, owner=name)
        (item,) = outbox.pending()
        gate(url)
        return int(outbox.claim(item, NOW, timedelta(minutes=1)))


if __name__ == "__main__":
    kind, url, name = sys.argv[1:4]
    print(ledger(url) if kind == "ledger" else claim(url, name))

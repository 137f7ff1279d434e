"""What every account's collect read, written by the cycle's commit (DESIGN §9 step 6).

The cycle (watcher/service/cycle.py) calls `write_collected` inside its one commit
transaction. The rows of all accounts are gathered per kind and each kind is one
batched statement (the store's `*_many` methods), so the statements of a commit do not
grow with the number of accounts; the tables are independent and every key is one
account's, so the order across accounts changes nothing that is stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from watcher.providers.base import Collected
from watcher.state.store import Store


def write_collected(store: Store, collected: Sequence[Collected], now: datetime) -> None:
    """What the accounts' collects read, into the store, atomically (inside the commit).

    Per account: its balance sample at `now`, failed deliveries (upserted by id), audit
    ids seen at `now`, cursors, resume points (None deletes one) and the results of
    the sources read and failed (source health). Raises StoreError.
    """
    with store.transaction():
        store.add_balance_sample_many(
            (c.account, now, c.balance_sample) for c in collected if c.balance_sample is not None
        )
        store.upsert_webhook_failures_many(
            (c.account, delivery) for c in collected for delivery in c.webhook_failures
        )
        store.mark_audit_seen_many(
            ((c.account, event) for c in collected for event in c.audit_seen), now
        )
        store.set_cursor_many(
            (c.account, str(source), value)
            for c in collected
            for source, value in c.cursors.items()
        )
        store.set_resume_many(
            (c.account, str(source), text) for c in collected for source, text in c.resumes.items()
        )
        store.record_source_result_many(_results(collected), now)


def _results(collected: Sequence[Collected]) -> list[tuple[str, str, str | None, bool]]:
    """(account, source, error or None, auth) of every source read or failed."""
    rows: list[tuple[str, str, str | None, bool]] = []
    for c in collected:
        rows += [(c.account, str(source), None, False) for source in c.succeeded]
        rows += [(c.account, str(s), f.message, f.auth) for s, f in c.failures.items()]
    return rows

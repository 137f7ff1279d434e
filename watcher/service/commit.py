"""What every account's collect read, written by the cycle's commit (DESIGN §9 step 6).

The cycle (watcher/service/cycle.py) calls `write_collected` inside its one commit
transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from watcher.providers.base import Collected
from watcher.state.store import Store


def write_collected(store: Store, collected: Sequence[Collected], now: datetime) -> None:
    """What the accounts' collects read, into the store (inside the commit)."""
    with store.transaction():
        for one in collected:
            _write_one(store, one, now)


def _write_one(store: Store, collected: Collected, now: datetime) -> None:
    account = collected.account
    if collected.balance_sample is not None:
        store.add_balance_sample(account, now, collected.balance_sample)
    if collected.webhook_failures:
        store.upsert_webhook_failures(account, collected.webhook_failures)
    if collected.audit_seen:
        store.mark_audit_seen(account, collected.audit_seen, now)
    for source, value in collected.cursors.items():
        store.set_cursor(account, str(source), value)
    for source, resume in collected.resumes.items():
        store.set_resume(account, str(source), resume)
    for source in collected.succeeded:
        store.record_source_result(account, str(source), now, None)
    for source, failure in collected.failures.items():
        store.record_source_result(account, str(source), now, failure.message, auth=failure.auth)

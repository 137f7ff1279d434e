"""`CollectView` (watcher/state/snapshot.py): the state a cycle's collect reads, read
for every account at once. It must answer every read exactly as the store does (on
SQLite and PostgreSQL), fall back to the store for what it did not read ahead, answer
as the state was when it was made (the collect writes nothing; the commit comes after),
and read in the same few queries whatever the number of accounts."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from test_commit_batch import Counting

from watcher.core.model import SourceName, WebhookDelivery
from watcher.state.snapshot import CollectView
from watcher.state.store import StateTarget, Store, open_store

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
FAST = (SourceName.BALANCE, SourceName.AUDIT, SourceName.WEBHOOKS)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def delivery(id_: str, minutes: float) -> WebhookDelivery:
    return WebhookDelivery(id_, at(minutes), "failed", "sent", "https://h/a", 503, "")


def seed(store: Store, accounts: Sequence[str]) -> None:
    for n, account in enumerate(accounts):
        store.set_cursor(account, "audit", at(n))
        store.set_cursor(account, "invoices", at(100 + n))
        store.set_resume(account, "webhooks", f"page {n}")
        store.set_resume(account, "invoices", f"kept {n}")
        store.upsert_webhook_failures(
            account, [delivery(f"{account}-old", -30), delivery(f"{account}-b", 5)]
        )
        store.upsert_webhook_failures(account, [delivery(f"{account}-a", 2)])


def reads(view: Any, account: str) -> list[object]:
    return [
        view.get_cursor(account, "audit"),
        view.get_cursor(account, SourceName.WEBHOOKS),
        view.get_cursor(account, "invoices"),  # not read ahead: from the store
        view.get_resume(account, "webhooks"),
        view.get_resume(account, SourceName.AUDIT),
        view.get_resume(account, "invoices"),
        view.webhook_failures(account, at(0)),
        view.webhook_failures(account, at(3)),
        view.webhook_failures(account, at(-60)),  # before what was read ahead: the store
    ]


def test_a_view_answers_as_the_store_does(state_target: StateTarget) -> None:
    with open_store(state_target) as store:
        seed(store, ["a", "b", "reseller/c"])
        view = CollectView(store, FAST, at(0))
        for account in ("a", "b", "reseller/c", "ghost"):
            assert reads(view, account) == reads(store, account), account
        assert [d.id for d in view.webhook_failures("a", at(0))] == ["a-a", "a-b"]
        assert view.get_resume("b", "invoices") == "kept 1"


def test_a_view_without_failures_read_ahead_asks_the_store(state_target: StateTarget) -> None:
    with open_store(state_target) as store:
        seed(store, ["a"])
        view = CollectView(store, FAST, None)
        assert reads(view, "a") == reads(store, "a")


def test_a_view_answers_as_the_state_was_when_it_was_made(state_target: StateTarget) -> None:
    with open_store(state_target) as store:
        seed(store, ["a"])
        before = reads(store, "a")
        view = CollectView(store, FAST, at(0))
        store.set_cursor("a", "audit", at(50))
        store.upsert_webhook_failures("a", [delivery("a-late", 9)])
        assert reads(view, "a")[:2] == before[:2]
        assert reads(view, "a")[6] == before[6]


def statements(path: Path, accounts: int) -> int:
    with Store.open(path) as store:
        seed(store, [f"acct-{i:03d}" for i in range(accounts)])
    counting = Counting(sqlite3.connect(path, isolation_level=None))
    with Store(path, counting) as store:
        view = CollectView(store, FAST, at(0))
        for i in range(accounts):
            account = f"acct-{i:03d}"
            view.get_cursor(account, "audit")
            view.get_resume(account, "webhooks")
            view.webhook_failures(account, at(0))
        return counting.calls


def test_a_view_reads_in_as_many_queries_for_fifty_accounts_as_for_one(tmp_path: Path) -> None:
    assert statements(tmp_path / "one.db", 1) == statements(tmp_path / "fifty.db", 50) == 2

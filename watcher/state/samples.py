"""What was read: balance samples and failed webhook deliveries, and their retention.

Mixed into `Store` (watcher/state/store.py); every write runs in `transaction()`.
`prune` also forgets old audit ids (watcher/state/cursors.py), as it always did.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog

from watcher.core.model import Balance, WebhookDelivery
from watcher.state.cursors import stored_ids
from watcher.state.db import Database, dt, ts

log = structlog.get_logger("watcher.state.store")  # log lines unchanged by the split

_FAILURES = (
    "SELECT account, id, started_at, status, event_type, url, http_status, error "
    "FROM webhook_failures"
)
"""The stored failed deliveries, as `SampleTables._deliveries` reads them."""


class SampleTables(Database):
    """The `balance_samples` and `webhook_failures` tables, and `prune`."""

    def add_balance_sample(self, account: str, at: datetime, balance: Balance) -> None:
        """Store one balance sample; a second sample at the same instant replaces it."""
        self.add_balance_sample_many([(account, at, balance)])

    def add_balance_sample_many(self, rows: Iterable[tuple[str, datetime, Balance]]) -> None:
        """`add_balance_sample` for each (account, at, balance), as one batched statement."""
        self.executemany(
            "INSERT INTO balance_samples (account, at, balance, available_credit, "
            "credit_limit, pending, currency) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (account, at) DO UPDATE SET balance = excluded.balance, "
            "available_credit = excluded.available_credit, "
            "credit_limit = excluded.credit_limit, pending = excluded.pending, "
            "currency = excluded.currency",
            [
                (
                    account,
                    ts(at),
                    str(balance.balance),
                    str(balance.available_credit),
                    str(balance.credit_limit),
                    str(balance.pending),
                    balance.currency,
                )
                for account, at, balance in rows
            ],
        )

    def balance_samples(self, account: str, since: datetime) -> list[tuple[datetime, Balance]]:
        """Samples of `account` taken at or after `since`, oldest first."""
        rows = self._query(
            "SELECT at, balance, available_credit, credit_limit, pending, currency "
            "FROM balance_samples WHERE account = ? AND at >= ? ORDER BY at",
            (account, ts(since)),
        )
        return [
            (
                dt(at),
                Balance(
                    balance=Decimal(bal),
                    available_credit=Decimal(avail),
                    credit_limit=Decimal(limit),
                    pending=Decimal(pending),
                    currency=currency,
                ),
            )
            for at, bal, avail, limit, pending, currency in rows
        ]

    def latest_balances(self) -> dict[str, tuple[datetime, Balance]]:
        """The newest sample of every account that has one, by account name."""
        rows = self._query(  # one grouped scan, then a key lookup per account
            "SELECT s.account, s.at, s.balance, s.available_credit, s.credit_limit, "
            "s.pending, s.currency FROM balance_samples s JOIN (SELECT account, "
            "max(at) AS at FROM balance_samples GROUP BY account) m "
            "ON s.account = m.account AND s.at = m.at ORDER BY s.account"
        )
        return {
            account: (
                dt(at),
                Balance(Decimal(bal), Decimal(avail), Decimal(limit), Decimal(pend), cur),
            )
            for account, at, bal, avail, limit, pend, cur in rows
        }

    # -- webhook failures ----------------------------------------------------------

    def upsert_webhook_failures(self, account: str, deliveries: Sequence[WebhookDelivery]) -> int:
        """Store failed deliveries; a known id is updated in place, not duplicated.

        Out: how many ids were not stored before.
        """
        if not deliveries:
            return 0
        ids = {delivery.id for delivery in deliveries}
        with self.transaction():
            known = stored_ids(self, "webhook_failures", account, list(ids))
            self.upsert_webhook_failures_many([(account, d) for d in deliveries])
        return len(ids - known)

    def upsert_webhook_failures_many(self, rows: Iterable[tuple[str, WebhookDelivery]]) -> None:
        """Store each (account, failed delivery), as one batched statement: a known id
        is updated in place (a later row of the same id wins), not duplicated."""
        self.executemany(
            "INSERT INTO webhook_failures (account, id, started_at, status, event_type, "
            "url, http_status, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (account, id) DO UPDATE SET started_at = excluded.started_at, "
            "status = excluded.status, event_type = excluded.event_type, url = excluded.url, "
            "http_status = excluded.http_status, error = excluded.error",
            [_delivery_row(account, delivery) for account, delivery in rows],
        )

    def webhook_failures(self, account: str, since: datetime) -> list[WebhookDelivery]:
        """Stored failed deliveries of `account` started at or after `since`, oldest first.

        Rows are read one by one (never all of them as well as the result), and texts
        that repeat from row to row (status, event type, URL, error) are one object each,
        so that a window of 50,000 failures costs a few MB, not tens.
        """
        rows = self._run(
            f"{_FAILURES} WHERE account = ? AND started_at >= ? ORDER BY started_at, id",
            (account, ts(since)),
        )
        return [delivery for _, delivery in self._deliveries(rows)]

    def all_webhook_failures(self, since: datetime) -> list[tuple[str, WebhookDelivery]]:
        """Every account's stored failed deliveries started at or after `since`, as
        (account, delivery), each account's oldest first (one query for a cycle)."""
        rows = self._run(
            f"{_FAILURES} WHERE started_at >= ? ORDER BY account, started_at, id",
            (ts(since),),
        )
        return self._deliveries(rows)

    def _deliveries(self, rows: Iterable[Sequence[Any]]) -> list[tuple[str, WebhookDelivery]]:
        """(account, delivery) of each row of `_FAILURES`."""
        shared: dict[str, str] = {}
        one = shared.setdefault  # one(text, text): the first object of this text
        try:
            return [
                (
                    account,
                    WebhookDelivery(
                        id_,
                        dt(started_at),
                        one(status, status),
                        one(event_type, event_type),
                        one(url, url),
                        http_status,
                        one(error, error),
                    ),
                )
                for account, id_, started_at, status, event_type, url, http_status, error in rows
            ]
        except self.dialect.errors as exc:  # a row that fails to arrive
            raise self._failed(exc) from exc

    # -- size ----------------------------------------------------------------------

    def prune(
        self,
        now: datetime,
        *,
        keep_samples: timedelta = timedelta(days=8),
        keep_seen: timedelta = timedelta(days=3),
        keep_failures: timedelta = timedelta(days=2),
    ) -> dict[str, int]:
        """Delete rows older than their retention, measured back from `now`.

        Audit ids go only when both their event and their sighting are older than
        `keep_seen`, so an id that a re-read may still return is never forgotten.
        Out: rows deleted per table (`balance_samples`, `audit_seen`, `webhook_failures`).
        """
        seen_cutoff = ts(now - keep_seen)
        statements = {
            "balance_samples": (
                "DELETE FROM balance_samples WHERE at < ?",
                (ts(now - keep_samples),),
            ),
            "audit_seen": (
                "DELETE FROM audit_seen WHERE seen_at < ? AND created_at < ?",
                (seen_cutoff, seen_cutoff),
            ),
            "webhook_failures": (
                "DELETE FROM webhook_failures WHERE started_at < ?",
                (ts(now - keep_failures),),
            ),
        }
        deleted: dict[str, int] = {}
        with self.transaction():
            for table, (sql, params) in statements.items():
                deleted[table] = self._run(sql, params).rowcount
        if any(deleted.values()):
            log.debug("store.pruned", path=self.where, **deleted)
        return deleted


def _delivery_row(account: str, delivery: WebhookDelivery) -> tuple[Any, ...]:
    return (
        account,
        delivery.id,
        ts(delivery.started_at),
        delivery.status,
        delivery.event_type,
        delivery.url,
        delivery.http_status,
        delivery.error,
    )

"""Collect: poll the sources one account needs into an `AccountSnapshot`.

Incremental: audit events and failed webhook deliveries are read from a stored cursor
minus an overlap window, deduplicated by id; failed deliveries are kept in the store so
that windows are counted locally. A failing source becomes a recorded error, never an
exception. Cursors move only in `Collected.commit`, and only for sources that succeeded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

import structlog

from watcher.model import (
    AccountSnapshot,
    AuditEvent,
    Balance,
    SourceError,
    SourceName,
    WebhookDelivery,
)
from watcher.store import Store
from watcher.telnyx import TelnyxClient, TelnyxError

log = structlog.get_logger(__name__)
T = TypeVar("T")

DEFAULT_OVERLAP = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Needs:
    """What the loaded rules need polled."""

    sources: frozenset[SourceName]
    ratio_windows: frozenset[timedelta] = frozenset()
    window: timedelta = timedelta(0)  # longest webhook window
    overlap: timedelta = DEFAULT_OVERLAP
    history: timedelta = timedelta(0)  # balance samples the rules look back on


@dataclass(slots=True)
class Collected:
    """A snapshot plus what to write back when the cycle commits."""

    snapshot: AccountSnapshot
    balance: Balance | None = None
    audit_events: list[AuditEvent] = field(default_factory=list)
    succeeded: set[SourceName] = field(default_factory=set)
    errors: dict[SourceName, TelnyxError] = field(default_factory=dict)

    def commit(self, store: Store, now: datetime) -> None:
        """Advance cursors of the sources that succeeded and record source health."""
        account = self.snapshot.account
        if self.balance is not None:
            store.add_balance_sample(account, now, self.balance)
        if self.audit_events:
            store.mark_audit_seen(account, self.audit_events, now)
        for source in self.succeeded:
            store.set_cursor(account, str(source), now)
            store.record_source_result(account, str(source), now, None)
        for source, error in self.errors.items():
            store.record_source_result(account, str(source), now, str(error), auth=error.auth)


async def collect(
    account: str,
    client: TelnyxClient,
    store: Store,
    needs: Needs,
    now: datetime,
    *,
    first_start: datetime,
    deadline: float | None = None,
) -> Collected:
    """Poll every needed source of one account concurrently.

    In: the account's client and the store, what to poll, the cycle's `now`, the time
    of the daemon's very first start (older audit events are never alerted), and the
    cycle's monotonic deadline. Out: the snapshot and what to commit. Never raises
    TelnyxError: a failed source is recorded in `snapshot.errors`.
    """
    out = Collected(AccountSnapshot(account))
    balance: Balance | None = None
    new_events: list[AuditEvent] = []
    totals: dict[timedelta, int] = {}

    async def guarded(source: SourceName, work: Callable[[], Awaitable[T]]) -> T | None:
        try:
            value = await work()
        except TelnyxError as exc:
            out.errors[source] = exc
            log.warning("source.failed", account=account, source=str(source), error=str(exc))
            return None
        out.succeeded.add(source)
        return value

    async def audit() -> list[AuditEvent]:
        cursor = store.get_cursor(account, str(SourceName.AUDIT)) or first_start
        events = await client.list_audit_events(
            created_after=cursor - needs.overlap, deadline=deadline
        )
        fresh = [e for e in events if e.created_at >= first_start]
        return store.unseen_audit_events(account, fresh)

    async def webhooks() -> None:
        oldest = now - needs.window
        cursor = store.get_cursor(account, str(SourceName.WEBHOOKS)) or oldest
        since = max(cursor - needs.overlap, oldest)
        failed = await client.list_failed_deliveries(started_gte=since, deadline=deadline)
        store.upsert_webhook_failures(account, failed)
        for window in needs.ratio_windows:
            totals[window] = await client.count_deliveries(
                started_gte=now - window, deadline=deadline
            )

    async def get_balance() -> Balance:
        return await client.get_balance(deadline=deadline)

    jobs: list[Awaitable[object]] = []
    if SourceName.BALANCE in needs.sources:
        jobs.append(guarded(SourceName.BALANCE, get_balance))
    if SourceName.AUDIT in needs.sources:
        jobs.append(guarded(SourceName.AUDIT, audit))
    if SourceName.WEBHOOKS in needs.sources:
        jobs.append(guarded(SourceName.WEBHOOKS, webhooks))
    for value in await asyncio.gather(*jobs):
        if isinstance(value, Balance):
            balance = value
        elif isinstance(value, list):
            new_events = value

    failures: list[WebhookDelivery] = []
    if SourceName.WEBHOOKS in needs.sources:
        failures = store.webhook_failures(account, now - needs.window)
    history = store.balance_samples(account, now - needs.history) if needs.history else []
    out.balance = balance
    out.audit_events = new_events
    out.snapshot = AccountSnapshot(
        account=account,
        balance=balance,
        balance_history=tuple(history),
        new_audit_events=tuple(new_events),
        webhook_failures=tuple(failures),
        delivery_totals=totals,
        errors=_source_errors(store, account, out.errors, now),
    )
    return out


def _source_errors(
    store: Store, account: str, errors: dict[SourceName, TelnyxError], now: datetime
) -> dict[SourceName, SourceError]:
    if not errors:
        return {}
    since = {
        (h.account, h.source): h.failing_since for h in store.source_health() if h.failing_since
    }
    return {
        source: SourceError(
            source, str(exc), auth=exc.auth, failing_since=since.get((account, str(source)), now)
        )
        for source, exc in errors.items()
    }

"""Collect: poll the sources one account needs into an `AccountSnapshot`.

Incremental: audit events and failed webhook deliveries are read from a stored cursor
minus an overlap window, deduplicated by id; failed deliveries are kept in the store so
that windows are counted locally. A failing source becomes a recorded error, never an
exception.

A backlog is read page by page within the cycle's budget: new pages are started only in
the first `PAGING_SHARE` of the time left, and the read goes on in the next cycle from a
resume point (the query's fixed bounds and the next page number, in the cursors table).
Failed deliveries are written to the store page by page, each page with its resume point
in one transaction, and the webhook cursor moves with the last page. Audit events become
alerts, so their seen marks, resume point and cursor are written in `Collected.commit`,
in the cycle's one transaction with the messages: each event is alerted exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeVar

import structlog

from watcher.core.model import (
    AccountSnapshot,
    AuditEvent,
    Balance,
    SourceError,
    SourceName,
    WebhookDelivery,
)
from watcher.providers.telnyx.client import Page, TelnyxClient, TelnyxError
from watcher.state.store import Store, dt, ts

log = structlog.get_logger(__name__)
T = TypeVar("T")

DEFAULT_OVERLAP = timedelta(minutes=10)

PAGING_SHARE = 0.75
"""Share of the budget left when collecting begins in which new pages may be started;
the rest is for evaluating, committing and delivering."""


@dataclass(frozen=True, slots=True)
class Needs:
    """What the loaded rules need polled."""

    sources: frozenset[SourceName]
    ratio_windows: frozenset[timedelta] = frozenset()
    window: timedelta = timedelta(0)  # longest webhook window
    overlap: timedelta = DEFAULT_OVERLAP
    history: timedelta = timedelta(0)  # balance samples the rules look back on


@dataclass(frozen=True, slots=True)
class Resume:
    """A paged read: the query's bounds (fixed until the read is done) and the next page."""

    since: datetime
    until: datetime | None
    page: int = 1

    def text(self) -> str:
        until = None if self.until is None else ts(self.until)
        return json.dumps({"since": ts(self.since), "until": until, "page": self.page})

    @classmethod
    def parse(cls, text: str | None) -> Resume | None:
        """The resume point stored as `text`; None for none or an unreadable one."""
        if text is None:
            return None
        try:
            data = json.loads(text)
            until = data["until"]
            page = int(data["page"])
            resume = cls(dt(data["since"]), None if until is None else dt(until), page)
        except (ValueError, KeyError, TypeError):
            log.warning("source.resume_unreadable", resume=text[:100])
            return None
        return resume if page >= 1 else None


@dataclass(slots=True)
class Collected:
    """A snapshot plus what to write back when the cycle commits.

    `cursors` and `resumes` (None: the read is done) are written for sources that
    succeeded; `behind` says, per source still reading a backlog, how far it got.
    """

    snapshot: AccountSnapshot
    balance: Balance | None = None
    audit_events: list[AuditEvent] = field(default_factory=list)
    succeeded: set[SourceName] = field(default_factory=set)
    errors: dict[SourceName, TelnyxError] = field(default_factory=dict)
    cursors: dict[SourceName, datetime] = field(default_factory=dict)
    resumes: dict[SourceName, str | None] = field(default_factory=dict)
    behind: dict[SourceName, str] = field(default_factory=dict)

    def commit(self, store: Store, now: datetime) -> None:
        """Write what was read (audit seen marks, cursors, resume points) and record
        source health."""
        account = self.snapshot.account
        if self.balance is not None:
            store.add_balance_sample(account, now, self.balance)
        if self.audit_events:
            store.mark_audit_seen(account, self.audit_events, now)
        for source, value in self.cursors.items():
            store.set_cursor(account, str(source), value)
        for source, resume in self.resumes.items():
            store.set_resume(account, str(source), resume)
        for source in self.succeeded:
            store.record_source_result(account, str(source), now, None)
        for source, error in self.errors.items():
            store.record_source_result(account, str(source), now, str(error), auth=error.auth)


@dataclass(frozen=True, slots=True)
class _Read:
    """How a paged read ended: `done` (last page read), else the last page read."""

    done: bool
    page: int = 0
    total_pages: int | None = None

    def behind(self) -> str:
        of = f" of {self.total_pages}" if self.total_pages else ""
        return f"catching up (page {self.page}{of} read)"


async def _read_pages(
    pages: AsyncGenerator[Page[T], None],
    stop: float | None,
    take: Callable[[Page[T]], None],
) -> _Read:
    """Give each page to `take` until the last one, or until another page would end
    after `stop` (a monotonic time; judged by the previous page's duration).

    The first page is always read, so every cycle makes progress. Raises TelnyxError.
    """
    async with contextlib.aclosing(pages) as stream:
        began = time.monotonic()
        async for page in stream:
            take(page)
            if page.last:
                return _Read(True)
            ended = time.monotonic()
            if stop is not None and ended + (ended - began) > stop:
                return _Read(False, page.number, page.total_pages)
            began = ended
    return _Read(True)


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
    stop = _paging_stop(deadline)

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
        source = SourceName.AUDIT
        resume = Resume.parse(store.get_resume(account, str(source)))
        if resume is None:
            cursor = store.get_cursor(account, str(source)) or first_start
            resume = Resume(cursor - needs.overlap, None)
        events: list[AuditEvent] = []
        ids: set[str] = set()

        def take(page: Page[AuditEvent]) -> None:
            fresh = [e for e in page.items if e.created_at >= first_start and e.id not in ids]
            unseen = store.unseen_audit_events(account, fresh)
            ids.update(e.id for e in unseen)
            events.extend(unseen)

        pages = client.audit_event_pages(
            created_after=resume.since, first_page=resume.page, deadline=deadline
        )
        read = await _read_pages(pages, stop, take)
        if read.done:
            out.cursors[source] = now
            out.resumes[source] = None
        else:
            out.resumes[source] = replace(resume, page=read.page + 1).text()
            _behind(out, account, source, read)
        return events

    async def webhooks() -> None:
        for window in needs.ratio_windows:
            totals[window] = await client.count_deliveries(
                started_gte=now - window, deadline=deadline
            )
        source = str(SourceName.WEBHOOKS)
        scan = Resume.parse(store.get_resume(account, source)) or _webhook_scan(
            store.get_cursor(account, source), needs, now
        )

        def take(page: Page[WebhookDelivery]) -> None:
            with store.transaction():
                store.upsert_webhook_failures(account, page.items)
                if page.last:
                    store.set_cursor(account, source, scan.until or now)
                    store.set_resume(account, source, None)
                else:
                    store.set_resume(account, source, replace(scan, page=page.number + 1).text())

        pages = client.failed_delivery_pages(
            started_gte=scan.since,
            started_lte=scan.until,
            first_page=scan.page,
            deadline=deadline,
        )
        read = await _read_pages(pages, stop, take)
        if not read.done:
            _behind(out, account, SourceName.WEBHOOKS, read)

    async def get_balance() -> Balance:
        value = await client.get_balance(deadline=deadline)
        out.cursors[SourceName.BALANCE] = now
        return value

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


def _paging_stop(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    began = time.monotonic()
    return began + PAGING_SHARE * max(0.0, deadline - began)


def _webhook_scan(cursor: datetime | None, needs: Needs, now: datetime) -> Resume:
    """A new read of failed deliveries: from the cursor minus the overlap (never before
    the longest window) up to `now`, fixed until the read is done."""
    oldest = now - needs.window
    since = max((cursor or oldest) - needs.overlap, oldest)
    return Resume(since, now)


def _behind(out: Collected, account: str, source: SourceName, read: _Read) -> None:
    out.behind[source] = read.behind()
    log.info(
        "source.catching_up",
        account=account,
        source=str(source),
        page=read.page,
        total_pages=read.total_pages,
    )


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

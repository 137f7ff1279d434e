"""Collect: poll the sources one account needs into an `AccountSnapshot`.

Incremental: audit events and failed webhook deliveries are read from a stored cursor
minus an overlap window, deduplicated by id; failed deliveries are kept in the store so
that windows are counted locally. A failing source becomes a recorded error, never an
exception.

A backlog is read page by page within the cycle's budget: new pages are started only in
the first `PAGING_SHARE` of the time left, and the read goes on in the next cycle from a
resume point (the query's fixed bounds and the next page number, in the cursors table).
Nothing is written here: the failed deliveries read (those the state does not hold as
they are), the audit events to mark seen, the resume points and cursors come back in
`Collected` and the cycle writes them in its one commit transaction with the messages.
So each audit event is alerted exactly once, and a crash in the middle of a backlog
re-reads only what the last commit did not keep.

Invoices are a slow source (`invoices.py`): read only when due, at most hourly; between
reads the snapshot carries the invoices of the last read, kept in the state. So are the
auto-recharge prefs for drift rules (`prefs.py`, `SourceName.SETTINGS`): every
`poll.slow_interval`, the last read kept and given as `AccountSnapshot.settings`. And the
charges for calendar spend rules (`charges.py`: the summary per time zone, and the
breakdown per number for `numbers: true`), given as `AccountSnapshot.charges`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import structlog

from watcher.core.charges_text import charges_text
from watcher.core.model import (
    AccountSnapshot,
    AuditEvent,
    Balance,
    Charges,
    Invoice,
    SourceName,
    WebhookDelivery,
)
from watcher.providers.base import Collected, Needs, SourceFailure, StateView
from watcher.providers.settings_text import settings_text
from watcher.providers.telnyx import charges, invoices, prefs
from watcher.providers.telnyx.charges import Numbers
from watcher.providers.telnyx.client import Page, TelnyxClient, TelnyxError

log = structlog.get_logger(__name__)
T = TypeVar("T")

PAGING_SHARE = 0.75
"""Share of the budget left when collecting begins in which new pages may be started;
the rest is for evaluating, committing and delivering."""


@dataclass(frozen=True, slots=True)
class Resume:
    """A paged read: the query's bounds (fixed until the read is done) and the next page."""

    since: datetime
    until: datetime | None
    page: int = 1

    def text(self) -> str:
        until = None if self.until is None else _ts(self.until)
        return json.dumps({"since": _ts(self.since), "until": until, "page": self.page})

    @classmethod
    def parse(cls, text: str | None) -> Resume | None:
        """The resume point stored as `text`; None for none or an unreadable one."""
        if text is None:
            return None
        try:
            data = json.loads(text)
            until = data["until"]
            page = int(data["page"])
            resume = cls(_dt(data["since"]), None if until is None else _dt(until), page)
        except (ValueError, KeyError, TypeError):
            log.warning("source.resume_unreadable", resume=text[:100])
            return None
        return resume if page >= 1 else None


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


@dataclass(slots=True)
class _Reading:
    """What the concurrent source reads of one collect gather (private, mutable)."""

    succeeded: set[SourceName] = field(default_factory=set)
    failures: dict[SourceName, SourceFailure] = field(default_factory=dict)
    cursors: dict[SourceName, datetime] = field(default_factory=dict)
    resumes: dict[SourceName, str | None] = field(default_factory=dict)
    behind: dict[SourceName, str] = field(default_factory=dict)
    balance: Balance | None = None
    audit: list[AuditEvent] = field(default_factory=list)
    failed_deliveries: list[WebhookDelivery] = field(default_factory=list)
    totals: dict[timedelta, int] = field(default_factory=dict)
    invoices: tuple[Invoice, ...] | None = None
    settings: dict[str, object] | None = None
    window: tuple[WebhookDelivery, ...] | None = None  # `_failures`, once read
    changed: tuple[WebhookDelivery, ...] | None = None  # with `window`: what to write
    charges: dict[str, Charges] | None = None
    numbers: Numbers | None = None


@dataclass(frozen=True, slots=True)
class _Job:
    """One collect's fixed inputs."""

    account: str
    client: TelnyxClient
    view: StateView
    needs: Needs
    now: datetime
    first_start: datetime
    deadline: float | None
    stop: float | None
    slow_interval: timedelta = timedelta(minutes=10)


async def collect(
    account: str,
    client: TelnyxClient,
    view: StateView,
    needs: Needs,
    now: datetime,
    *,
    first_start: datetime,
    deadline: float | None = None,
    slow_interval: timedelta = timedelta(minutes=10),
) -> Collected:
    """Poll every needed (and due) source of one account concurrently; write nothing.

    In: the account's client, the state to read cursors, resume points and stored
    windows from, what to poll, the cycle's `now`, the time of the daemon's very first
    start (older audit events are never alerted), the cycle's monotonic deadline and
    how often slow sources are read (`poll.slow_interval`; invoices at least hourly).
    Out: the snapshot and what the cycle's commit writes (samples, seen audit events,
    failed deliveries, cursors, resume points). Never raises TelnyxError: a failed
    source is in `Collected.failures`.
    """
    stop = _paging_stop(deadline)
    job = _Job(account, client, view, needs, now, first_start, deadline, stop, slow_interval)
    got = _Reading()
    readers = {
        SourceName.BALANCE: _read_balance,
        SourceName.AUDIT: _read_audit,
        SourceName.WEBHOOKS: _read_webhooks,
        SourceName.INVOICES: _read_invoices,
        SourceName.SETTINGS: _read_prefs,
        SourceName.CHARGES: _read_charges,
        SourceName.CHARGES_BREAKDOWN: _read_numbers,
    }
    wanted = {s: read for s, read in readers.items() if s in needs.sources and _due(job, s)}
    await asyncio.gather(*(_guarded(job, got, s, read) for s, read in wanted.items()))
    return _collected(job, got)


def _due(job: _Job, source: SourceName) -> bool:
    """Every cycle for a fast source; the invoices, prefs and charges when due."""
    queries = job.needs.charges
    if source is SourceName.CHARGES:
        return charges.due(job.view, job.account, job.now, job.slow_interval, queries)
    if source is SourceName.CHARGES_BREAKDOWN:
        return charges.breakdown_due(job.view, job.account, job.now, job.slow_interval, queries)
    if source is SourceName.INVOICES:
        return invoices.due(job.view, job.account, job.now, job.slow_interval)
    if source is SourceName.SETTINGS:
        return prefs.due(job.view, job.account, job.now, job.slow_interval)
    return True


async def _guarded(
    job: _Job,
    got: _Reading,
    source: SourceName,
    read: Callable[[_Job, _Reading], Awaitable[None]],
) -> None:
    try:
        await read(job, got)
    except TelnyxError as exc:
        got.failures[source] = SourceFailure.of(exc)
        log.warning("source.failed", account=job.account, source=str(source), error=str(exc))
        return
    got.succeeded.add(source)


async def _read_balance(job: _Job, got: _Reading) -> None:
    got.balance = await job.client.get_balance(deadline=job.deadline)
    got.cursors[SourceName.BALANCE] = job.now


async def _read_audit(job: _Job, got: _Reading) -> None:
    source, account = SourceName.AUDIT, job.account
    resume = Resume.parse(job.view.get_resume(account, str(source)))
    if resume is None:
        cursor = job.view.get_cursor(account, str(source)) or job.first_start
        resume = Resume(cursor - job.needs.overlap, None)
    events: list[AuditEvent] = []
    ids: set[str] = set()

    def take(page: Page[AuditEvent]) -> None:
        fresh = [e for e in page.items if e.created_at >= job.first_start and e.id not in ids]
        unseen = job.view.unseen_audit_events(account, fresh)
        ids.update(e.id for e in unseen)
        events.extend(unseen)

    pages = job.client.audit_event_pages(
        created_after=resume.since, first_page=resume.page, deadline=job.deadline
    )
    read = await _read_pages(pages, job.stop, take)
    if read.done:
        got.cursors[source] = job.now
        got.resumes[source] = None
    else:
        got.resumes[source] = replace(resume, page=read.page + 1).text()
        _behind(got, account, source, read)
    got.audit = events


async def _read_webhooks(job: _Job, got: _Reading) -> None:
    """The failed deliveries since the cursor (minus the overlap), page by page within
    the budget, then the delivery totals of the ratio windows where they can matter; the
    pages and the resume point are written at the commit (also those read before a page
    that failed), so a crash re-reads from the last committed page."""
    source = SourceName.WEBHOOKS
    scan = Resume.parse(job.view.get_resume(job.account, str(source))) or _webhook_scan(
        job.view.get_cursor(job.account, str(source)), job.needs, job.now
    )
    pages = job.client.failed_delivery_pages(
        started_gte=scan.since,
        started_lte=scan.until,
        first_page=scan.page,
        deadline=job.deadline,
    )

    def take(page: Page[WebhookDelivery]) -> None:  # progress kept even if a later page fails
        got.failed_deliveries.extend(page.items)
        if page.last:
            got.cursors[source] = scan.until or job.now
            got.resumes[source] = None
        else:
            got.resumes[source] = replace(scan, page=page.number + 1).text()

    read = await _read_pages(pages, job.stop, take)
    if not read.done:
        _behind(got, job.account, source, read)
    await _read_totals(job, got, complete=read.done)


async def _read_totals(job: _Job, got: _Reading, *, complete: bool) -> None:
    """The delivery total of each ratio window in which the failures (stored and just
    read) reach `needs.ratio_floors`: below that no rule can fire, whatever the total,
    and one request per account and cycle is saved. Every window's while a backlog is
    read (`complete` False: not every failure is known yet)."""
    if not job.needs.ratio_windows:
        return
    failures = _failures(job, got)
    for window in sorted(job.needs.ratio_windows):
        since = job.now - window
        failed = sum(1 for d in failures if d.started_at >= since)
        if complete and failed < job.needs.ratio_floors.get(window, 0):
            continue
        got.totals[window] = await job.client.count_deliveries(
            started_gte=since, deadline=job.deadline
        )


def _failures(job: _Job, got: _Reading) -> tuple[WebhookDelivery, ...]:
    """The failed deliveries of the longest window: stored, with this cycle's reads
    upserted (read from the state once per collect)."""
    if got.window is None:
        since = job.now - job.needs.window
        stored = {d.id: d for d in job.view.webhook_failures(job.account, since)}
        read = got.failed_deliveries
        got.window = _window(stored, read, since)
        # what the commit writes: the deliveries read that the state does not hold as
        # they are (a re-read overlap window in which nothing changed writes nothing)
        got.changed = tuple(d for d in read if stored.get(d.id) != d)
    return got.window


async def _read_invoices(job: _Job, got: _Reading) -> None:
    """Every invoice, kept as the source's resume text for the cycles until the next read."""
    got.invoices = tuple(await job.client.list_invoices(deadline=job.deadline))
    got.resumes[SourceName.INVOICES] = invoices.text(got.invoices)
    got.cursors[SourceName.INVOICES] = job.now


def _kept_invoices(job: _Job, got: _Reading) -> tuple[Invoice, ...] | None:
    """This cycle's read, else the last one kept (None when the rules need none)."""
    if SourceName.INVOICES not in job.needs.sources:
        return None
    return got.invoices if got.invoices is not None else invoices.kept(job.view, job.account)


async def _read_prefs(job: _Job, got: _Reading) -> None:
    """The auto-recharge prefs, flattened and kept as the resume text (`prefs.py`)."""
    got.settings = prefs.flattened(await job.client.get_auto_recharge_prefs(deadline=job.deadline))
    got.resumes[SourceName.SETTINGS] = settings_text(got.settings)
    got.cursors[SourceName.SETTINGS] = job.now


def _kept_settings(job: _Job, got: _Reading) -> dict[str, object] | None:
    """This cycle's read, else the last one kept (None when the rules need none)."""
    if SourceName.SETTINGS not in job.needs.sources:
        return None
    return got.settings if got.settings is not None else prefs.kept(job.view, job.account)


async def _read_charges(job: _Job, got: _Reading) -> None:
    """The charges summary per zone, kept as the resume text (`charges.py`)."""
    kept = charges.kept_charges(job.view, job.account)
    got.charges = await charges.read_charges(
        job.client, job.needs.charges, job.now, kept, job.deadline
    )
    got.resumes[SourceName.CHARGES] = charges_text(got.charges)
    got.cursors[SourceName.CHARGES] = job.now


async def _read_numbers(job: _Job, got: _Reading) -> None:
    """The charges breakdown per number, kept as the resume text (`charges.py`)."""
    got.numbers = await charges.read_numbers(job.client, job.needs.charges, job.now, job.deadline)
    got.resumes[SourceName.CHARGES_BREAKDOWN] = charges.numbers_text(got.numbers)
    got.cursors[SourceName.CHARGES_BREAKDOWN] = job.now


def _kept_charges(job: _Job, got: _Reading) -> dict[str, Charges] | None:
    """This cycle's read, else the last one kept, with the numbers (None: not needed)."""
    if SourceName.CHARGES not in job.needs.sources or not job.needs.charges:
        return None
    read = got.charges if got.charges is not None else charges.kept_charges(job.view, job.account)
    if read is None:
        return None
    numbers = got.numbers
    if numbers is None and SourceName.CHARGES_BREAKDOWN in job.needs.sources:
        numbers = charges.kept_numbers(job.view, job.account)
    return charges.with_numbers(read, numbers)


def _collected(job: _Job, got: _Reading) -> Collected:
    account, needs, now = job.account, job.needs, job.now
    failures: tuple[WebhookDelivery, ...] = ()
    if SourceName.WEBHOOKS in needs.sources:
        failures = _failures(job, got)
    changed = tuple(got.failed_deliveries) if got.changed is None else got.changed
    history = job.view.balance_samples(account, now - needs.history) if needs.history else []
    snapshot = AccountSnapshot(
        account=account,
        balance=got.balance,
        balance_history=tuple(history),
        new_audit_events=tuple(got.audit),
        webhook_failures=failures,
        delivery_totals=got.totals,
        invoices=_kept_invoices(job, got),
        settings=_kept_settings(job, got),
        charges=_kept_charges(job, got),
    )
    return Collected(
        snapshot,
        succeeded=frozenset(got.succeeded),
        failures=got.failures,
        balance_sample=got.balance,
        audit_seen=tuple(got.audit),
        webhook_failures=changed,
        cursors=got.cursors,
        resumes=got.resumes,
        behind=got.behind,
    )


def _window(
    stored: dict[str, WebhookDelivery], read: list[WebhookDelivery], since: datetime
) -> tuple[WebhookDelivery, ...]:
    """The stored failures of the window (by id, oldest first) with this cycle's reads
    upserted by id (as the commit will store them), oldest first."""
    if not read:
        return tuple(stored.values())
    by_id = {**stored}
    by_id.update((d.id, d) for d in read)
    return tuple(sorted((d for d in by_id.values() if d.started_at >= since), key=_delivery_order))


def _delivery_order(delivery: WebhookDelivery) -> tuple[datetime, str]:
    return delivery.started_at, delivery.id


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


def _behind(out: _Reading, account: str, source: SourceName, read: _Read) -> None:
    out.behind[source] = read.behind()
    log.info(
        "source.catching_up",
        account=account,
        source=str(source),
        page=read.page,
        total_pages=read.total_pages,
    )


def _ts(value: datetime) -> str:
    """A UTC instant as the resume text keeps it (ISO 8601 with microseconds)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)

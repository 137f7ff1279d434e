"""Collect: poll the sources one Vonage account needs into an `AccountSnapshot`.

- balance, every cycle: `value` is both `balance` and `available_credit` (no credit
  limit, nothing pending), the currency is the configured one, `autoReload` is kept.
- audit events (beta), every cycle: from the cursor minus the overlap (the daemon's very
  first start on the first read: older events are never alerted), `size=100`, page by
  page within the cycle's budget (an unfinished read goes on from a resume point with
  fixed bounds), deduplicated through the state. A 403/404 (the beta is not enabled for
  the account) disables the source for the life of this provider (until a restart or
  reload): one `source.disabled` warning, not a failure, so no `watcher-source-down`.
- slow sources, read when due (`slow_interval` since the last read, whose time is the
  source's cursor) and when never read: the API secrets (`credentials`: the ids seen
  are kept as the source's resume text; the first read only records them), the settings
  (only when a drift rule needs them; always the EMPTY form: `VonageClient.read_settings`;
  the last read is kept as the resume text, `watcher.providers.settings_text`, so drift
  is judged every cycle), and the subaccounts (with `subaccounts: true`; a 403, not
  provisioned, disables it).
- `AccountSnapshot.settings`: the settings as drift fields (`settings.mo_callback_url`,
  ...) and the balance's `autoReload` as `auto_reload`.

Nothing is written here: cursors, resume texts, seen audit events and the balance sample
come back in `Collected` and the cycle writes them in its one commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import structlog

from watcher.core.model import (
    AccountSnapshot,
    AuditEvent,
    Balance,
    CredentialChange,
    SourceName,
)
from watcher.providers.base import Collected, Needs, SourceFailure, StateView
from watcher.providers.http import Page
from watcher.providers.settings_text import parse_settings, settings_text
from watcher.providers.slow import due
from watcher.providers.vonage.capabilities import CAPABILITIES
from watcher.providers.vonage.client import VonageClient
from watcher.providers.vonage.errors import VonageError
from watcher.providers.vonage.wire import (
    VonageAuditEvent,
    VonageBalance,
    VonageSecret,
    VonageSettings,
    VonageSubaccounts,
)

log = structlog.get_logger(__name__)

PAGING_SHARE = 0.75
"""Share of the budget left when collecting begins in which new audit pages may start."""

DISABLING = {
    SourceName.AUDIT: frozenset({403, 404}),  # the Audit API beta is not enabled
    SourceName.SUBACCOUNTS: frozenset({403}),  # the feature is not provisioned
}
"""Per source, the statuses that mean "not available for this account": the source is
turned off for the life of the provider instead of failing every cycle."""


@dataclass(slots=True)
class Account:
    """One Vonage account's fixed facts and what this provider object learned (mutable:
    `disabled` sources, the last `subaccounts` read)."""

    name: str
    currency: str
    slow_interval: timedelta
    subaccounts_wanted: bool = False
    disabled: set[SourceName] = field(default_factory=set)
    subaccounts: VonageSubaccounts | None = None
    subaccounts_at: datetime | None = None  # when discovery last listed them


@dataclass(frozen=True, slots=True)
class _Job:
    """One collect's fixed inputs."""

    account: Account
    client: VonageClient
    view: StateView
    needs: Needs
    now: datetime
    first_start: datetime
    deadline: float | None
    stop: float | None

    @property
    def name(self) -> str:
        return self.account.name


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
    changes: list[CredentialChange] = field(default_factory=list)
    settings: dict[str, object] | None = None


Reader = Callable[[_Job, _Reading], Awaitable[None]]


def to_balance(read: VonageBalance, currency: str) -> Balance:
    """The core balance of a Vonage `get-balance` (exact Decimal, configured currency)."""
    value = read.value
    return Balance(value, value, Decimal(0), Decimal(0), currency, auto_reload=read.auto_reload)


async def collect(
    account: Account,
    client: VonageClient,
    view: StateView,
    needs: Needs,
    now: datetime,
    *,
    first_start: datetime,
    deadline: float | None = None,
) -> Collected:
    """Poll every needed (and due) source of one account concurrently; write nothing.

    In: the account, its client, the state to read cursors and resume texts from, what
    the rules need, the cycle's `now`, the daemon's very first start and the cycle's
    monotonic deadline. Out: the snapshot and what the commit writes. Never raises
    VonageError: a failed source is in `Collected.failures`.
    """
    job = _Job(account, client, view, needs, now, first_start, deadline, _paging_stop(deadline))
    got = _Reading()
    await asyncio.gather(*(_guarded(job, got, s, read) for s, read in _readers(job).items()))
    return _collected(job, got)


def _readers(job: _Job) -> dict[SourceName, Reader]:
    """The sources to read this cycle: needed (or configured), not disabled, and due."""
    wanted = {s: r for s, r in _READERS.items() if s in _sources(job.needs)}
    if job.account.subaccounts_wanted and not _listed_lately(job):
        wanted[SourceName.SUBACCOUNTS] = _read_subaccounts
    return {s: r for s, r in wanted.items() if s not in job.account.disabled and _due(job, s)}


def _listed_lately(job: _Job) -> bool:
    """Discovery listed the subaccounts less than `slow_interval` ago (not again)."""
    at = job.account.subaccounts_at
    return at is not None and job.now - at < job.account.slow_interval


def _due(job: _Job, source: SourceName) -> bool:
    """Every cycle for a fast source; a slow one when never read or `slow_interval` on."""
    if source is SourceName.SETTINGS and job.view.get_resume(job.name, str(source)) is None:
        return True  # the last read is not kept: drift needs it
    return source not in SLOW or due(job.view, job.name, source, job.now, job.account.slow_interval)


async def _guarded(job: _Job, got: _Reading, source: SourceName, read: Reader) -> None:
    try:
        await read(job, got)
    except VonageError as exc:
        if exc.status in DISABLING.get(source, ()):
            _disable(job.account, source, exc)
            return
        got.failures[source] = SourceFailure.of(exc)
        log.warning("source.failed", account=job.name, source=str(source), error=str(exc))
        return
    got.succeeded.add(source)


def _disable(account: Account, source: SourceName, exc: VonageError) -> None:
    """Turn `source` off for this provider's life: one warning, no failure recorded."""
    account.disabled.add(source)
    log.warning(
        "source.disabled",
        account=account.name,
        source=str(source),
        status=exc.status,
        error=str(exc),
        until="restart or reload",
    )


# --------------------------------------------------------------------------- balance


async def _read_balance(job: _Job, got: _Reading) -> None:
    read = await job.client.get_balance(deadline=job.deadline)
    got.balance = to_balance(read, job.account.currency)
    got.cursors[SourceName.BALANCE] = job.now


# --------------------------------------------------------------------------- audit


@dataclass(frozen=True, slots=True)
class Resume:
    """An unfinished audit read: its fixed bounds and the next page."""

    since: datetime
    until: datetime
    page: int

    def text(self) -> str:
        return json.dumps({"since": _ts(self.since), "until": _ts(self.until), "page": self.page})

    @classmethod
    def parse(cls, text: str | None) -> Resume | None:
        """The resume point stored as `text`; None for none or an unreadable one."""
        if text is None:
            return None
        try:
            data = json.loads(text)
            resume = cls(_dt(data["since"]), _dt(data["until"]), int(data["page"]))
        except (ValueError, KeyError, TypeError):
            log.warning("source.resume_unreadable", source="audit", resume=text[:100])
            return None
        return resume if resume.page >= 1 else None


async def _read_audit(job: _Job, got: _Reading) -> None:
    source = SourceName.AUDIT
    resume = Resume.parse(job.view.get_resume(job.name, str(source))) or _new_audit_read(job)
    ids: set[str] = set()
    since = job.first_start.replace(microsecond=0)  # Vonage times are whole seconds

    def take(page: Page[VonageAuditEvent]) -> None:
        fresh = [to_audit_event(e) for e in page.items if e.created_at >= since and e.id not in ids]
        unseen = job.view.unseen_audit_events(job.name, fresh)
        ids.update(e.id for e in unseen)
        got.audit.extend(unseen)

    pages = job.client.audit_event_pages(
        resume.since, date_to=resume.until, start_page=resume.page, deadline=job.deadline
    )
    last = await _read_pages(pages, job.stop, take)
    if last is None:
        got.cursors[source] = resume.until
        got.resumes[source] = None
        return
    got.resumes[source] = Resume(resume.since, resume.until, last.number + 1).text()
    got.behind[source] = _behind_text(last)
    log.info("source.catching_up", account=job.name, source=str(source), page=last.number)


def _new_audit_read(job: _Job) -> Resume:
    """From the cursor (the very first start when never read) minus the overlap, to now."""
    cursor = job.view.get_cursor(job.name, str(SourceName.AUDIT)) or job.first_start
    return Resume(cursor - job.needs.overlap, job.now, 1)


async def _read_pages(
    pages: AsyncGenerator[Page[VonageAuditEvent], None],
    stop: float | None,
    take: Callable[[Page[VonageAuditEvent]], None],
) -> Page[VonageAuditEvent] | None:
    """Give each page to `take` until the last (out: None), or until another page would
    end after `stop` (out: the last page read). The first page is always read."""
    async with contextlib.aclosing(pages) as stream:
        began = time.monotonic()
        async for page in stream:
            take(page)
            if page.last:
                return None
            ended = time.monotonic()
            if stop is not None and ended + (ended - began) > stop:
                return page
            began = ended
    return None


def _behind_text(page: Page[VonageAuditEvent]) -> str:
    of = f" of {page.total_pages}" if page.total_pages else ""
    return f"catching up (page {page.number}{of} read)"


def to_audit_event(event: VonageAuditEvent) -> AuditEvent:
    """The core audit event of a Vonage one (`created_at` already aware UTC)."""
    return AuditEvent(
        id=event.id,
        created_at=event.created_at,
        event_type=event.event_type,
        source=event.source,
        source_ip=event.source_ip,
        source_country=event.source_country,
        user_email=event.user_email,
        context=dict(event.context),
    )


# --------------------------------------------------------------------------- slow sources


async def _read_credentials(job: _Job, got: _Reading) -> None:
    """The secrets' ids against those of the last read (kept as the resume text)."""
    source = SourceName.CREDENTIALS
    secrets = await job.client.list_secrets(deadline=job.deadline)
    known = parse_ids(job.view.get_resume(job.name, str(source)))
    if known is not None:
        got.changes.extend(credential_changes(known, secrets))
    got.resumes[source] = ids_text(secrets)
    got.cursors[source] = job.now


def credential_changes(
    known: frozenset[str], secrets: list[VonageSecret]
) -> list[CredentialChange]:
    """Secrets that appeared since `known` (with their creation time), then those gone."""
    now = {s.id for s in secrets}
    added = [CredentialChange(s.id, "added", s.created_at) for s in secrets if s.id not in known]
    removed = [CredentialChange(i, "removed") for i in sorted(known - now)]
    return added + removed


def ids_text(secrets: list[VonageSecret]) -> str:
    return json.dumps({"ids": sorted(s.id for s in secrets)})


def parse_ids(text: str | None) -> frozenset[str] | None:
    """The ids of the last read; None when never read (or unreadable: then the read only
    records, as a first one does)."""
    if text is None:
        return None
    try:
        ids = json.loads(text)["ids"]
    except (ValueError, KeyError, TypeError):
        log.warning("source.resume_unreadable", source="credentials", resume=text[:100])
        return None
    return frozenset(str(i) for i in ids) if isinstance(ids, list) else None


async def _read_settings(job: _Job, got: _Reading) -> None:
    """The settings, read with the empty form, kept as the resume text for drift."""
    settings = await job.client.read_settings(deadline=job.deadline)
    log.debug("source.settings", account=job.name, settings=repr(settings))
    got.settings = settings_fields(settings)
    got.resumes[SourceName.SETTINGS] = settings_text(got.settings)
    got.cursors[SourceName.SETTINGS] = job.now


SETTINGS_TYPES = {k: t for k, t in CAPABILITIES.drift_fields.items() if k.startswith("settings.")}


def settings_fields(settings: VonageSettings) -> dict[str, object]:
    """The settings as drift fields: `settings.mo_callback_url`, ..."""
    return {name: getattr(settings, name.removeprefix("settings.")) for name in SETTINGS_TYPES}


def _settings(job: _Job, got: _Reading) -> dict[str, object] | None:
    """The drift fields known this cycle: the settings (this read, else the last one
    kept) when needed, and `auto_reload` when the balance was read."""
    out: dict[str, object] = {}
    if SourceName.SETTINGS in job.needs.sources:
        stored = job.view.get_resume(job.name, str(SourceName.SETTINGS))
        out.update(got.settings or parse_settings(stored, SETTINGS_TYPES) or {})
    if got.balance is not None and got.balance.auto_reload is not None:
        out["auto_reload"] = got.balance.auto_reload
    return out or None


async def _read_subaccounts(job: _Job, got: _Reading) -> None:
    """The subaccounts, kept on the account for account discovery (a later issue)."""
    found = await job.client.list_subaccounts(deadline=job.deadline)
    job.account.subaccounts = found
    log.debug("source.subaccounts", account=job.name, count=len(found.subaccounts))
    got.cursors[SourceName.SUBACCOUNTS] = job.now


_READERS: dict[SourceName, Reader] = {
    SourceName.BALANCE: _read_balance,
    SourceName.AUDIT: _read_audit,
    SourceName.CREDENTIALS: _read_credentials,
    SourceName.SETTINGS: _read_settings,
}


def _sources(needs: Needs) -> frozenset[SourceName]:
    """The sources to read: spend periods asking for charges are counted from the
    balance samples here (Vonage has no charges API), so the balance is read for them."""
    if SourceName.CHARGES in needs.sources:
        return needs.sources | {SourceName.BALANCE}
    return needs.sources


SLOW = frozenset({SourceName.CREDENTIALS, SourceName.SETTINGS, SourceName.SUBACCOUNTS})
"""Sources read every `slow_interval`, not every cycle (DESIGN §2.1)."""


# --------------------------------------------------------------------------- result


def _collected(job: _Job, got: _Reading) -> Collected:
    needs, now = job.needs, job.now
    history = job.view.balance_samples(job.name, now - needs.history) if needs.history else []
    snapshot = AccountSnapshot(
        account=job.name,
        balance=got.balance,
        balance_history=tuple(history),
        new_audit_events=tuple(got.audit),
        provider="vonage",
        credential_changes=tuple(got.changes),
        settings=_settings(job, got),
    )
    return Collected(
        snapshot,
        succeeded=frozenset(got.succeeded),
        failures=got.failures,
        balance_sample=got.balance,
        audit_seen=tuple(got.audit),
        cursors=got.cursors,
        resumes=got.resumes,
        behind=got.behind,
    )


def _paging_stop(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    began = time.monotonic()
    return began + PAGING_SHARE * max(0.0, deadline - began)


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)

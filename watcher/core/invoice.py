"""The `invoice` rule kind (Telnyx): one alert per invoice still unpaid `unpaid_for` after
its billing period ended. Pure: `now` is a parameter.

A period ends at the end of its `period_end` day in UTC (the API gives dates and both
days are part of the period): the invoice for 2026-10-01 – 2026-10-31 has been unpaid
for 7d at 2026-11-08 00:00 UTC. The API gives no amount, so messages name the invoice's
id, its period and how long it has been unpaid.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from watcher.core.durations import format_duration
from watcher.core.findings import Finding, RuleResult
from watcher.core.model import AccountSnapshot, AlertKey, Invoice, SourceName
from watcher.core.rulekinds import InvoiceRule


def period_ended(invoice: Invoice) -> datetime:
    """When the invoice's period ended: midnight UTC after its `period_end` day."""
    return datetime.combine(invoice.period_end + timedelta(days=1), time(0), tzinfo=UTC)


def unpaid_for(invoice: Invoice, now: datetime) -> timedelta:
    """How long the invoice has been unpaid since its period ended (0s before that)."""
    return max(now - period_ended(invoice), timedelta(0))


def overdue(invoice: Invoice, limit: timedelta, now: datetime) -> bool:
    """True for an unpaid invoice whose period ended longer ago than `limit`."""
    return not invoice.paid and now - period_ended(invoice) > limit


def period_text(invoice: Invoice) -> str:
    return f"{invoice.period_start:%Y-%m-%d} – {invoice.period_end:%Y-%m-%d}"


def judge_invoices(rule: InvoiceRule, snap: AccountSnapshot, now: datetime) -> RuleResult:
    """One finding per invoice of the last read, keyed by the invoice id (the group).

    In: the rule, the account's snapshot (`invoices`: the last read, also between reads),
    the cycle's `now`. Out: firing findings (the rule's severity) for overdue invoices,
    cleared ones for the rest (a paid invoice says so when its alert resolves); an
    invoice no longer listed has no finding, so its alert resolves too. Not judged when
    the invoices were never read or their read failed this cycle (alerts stay as they are).
    """
    if snap.invoices is None or SourceName.INVOICES in snap.errors:
        return RuleResult(rule.name, snap.account, judged=False, hold_for=rule.for_)
    findings = tuple(_finding(rule, snap.account, i, now) for i in _by_id(snap.invoices))
    return RuleResult(rule.name, snap.account, True, findings, hold_for=rule.for_)


def _by_id(invoices: tuple[Invoice, ...]) -> list[Invoice]:
    """Each id once (the first listed), ordered by id."""
    unique: dict[str, Invoice] = {}
    for invoice in invoices:
        unique.setdefault(invoice.id, invoice)
    return [unique[key] for key in sorted(unique)]


def _finding(rule: InvoiceRule, account: str, invoice: Invoice, now: datetime) -> Finding:
    fires = overdue(invoice, rule.unpaid_for, now)
    age = format_duration(unpaid_for(invoice, now))
    state = "paid" if invoice.paid else f"unpaid for {age}"
    return Finding(
        key=AlertKey(rule.name, account, invoice.id),
        severity=rule.level if fires else None,
        cleared=not fires,
        value=f"invoice {invoice.id} for {period_text(invoice)} {state}",
        threshold=f"alert after {format_duration(rule.unpaid_for)} unpaid",
        facts={"invoice_id": invoice.id, "period": period_text(invoice), "unpaid_for": age},
    )

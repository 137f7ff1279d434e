"""The invoices source (Telnyx): a slow source, read at most hourly, judged every cycle.

`GET /invoices` is read only when due (`watcher.providers.slow`): never read, or
`max(poll.slow_interval, 1h)` since the last read (the source's cursor in the state), or
nothing of the last read is kept. The invoices of the last read are kept in the state as
the source's resume text (compact JSON, about 80 bytes per invoice, written in the
cycle's one commit), so that between reads, and after a restart, the rules see the same
invoices and an unpaid one keeps firing. Nothing is written here.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import structlog

from watcher.core.model import Invoice, SourceName
from watcher.providers import slow
from watcher.providers.base import StateView

log = structlog.get_logger(__name__)

SOURCE = SourceName.INVOICES


def due(view: StateView, account: str, now: datetime, slow_interval: timedelta) -> bool:
    """True when the invoices of `account` are to be read this cycle."""
    return kept(view, account) is None or slow.due(view, account, SOURCE, now, slow_interval)


def kept(view: StateView, account: str) -> tuple[Invoice, ...] | None:
    """The invoices of the last read; None when never read (or unreadable)."""
    return parse(view.get_resume(account, str(SOURCE)))


def text(invoices: tuple[Invoice, ...]) -> str:
    """The resume text keeping `invoices`: `{"invoices": [[id, start, end, paid], ...]}`."""
    rows = [[i.id, i.period_start.isoformat(), i.period_end.isoformat(), i.paid] for i in invoices]
    return json.dumps({"invoices": rows}, separators=(",", ":"))


def parse(stored: str | None) -> tuple[Invoice, ...] | None:
    """The invoices kept as `stored` (see `text`); None for none or an unreadable text
    (then the next cycle reads them again)."""
    if stored is None:
        return None
    try:
        rows = json.loads(stored)["invoices"]
        return tuple(_invoice(row) for row in rows)
    except (ValueError, KeyError, TypeError, IndexError):
        log.warning("source.resume_unreadable", source=str(SOURCE), resume=stored[:100])
        return None


def _invoice(row: list[object]) -> Invoice:
    invoice_id, start, end, paid = row
    if not isinstance(paid, bool):
        raise TypeError("paid is not a boolean")
    return Invoice(
        str(invoice_id), date.fromisoformat(str(start)), date.fromisoformat(str(end)), paid
    )

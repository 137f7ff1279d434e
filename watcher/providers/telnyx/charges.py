"""Telnyx charges as slow sources for calendar spend rules (DESIGN §2.1, §4).

`charges` (`GET /charges_summary`) is read per time zone of the spend rules
(`Needs.charges`), when due: never read, `poll.slow_interval` since the last read, the
kept read of a zone missing or of another local day (the period rolled over at local
midnight), or asked for differently. One read of a zone costs one request per period its
rules use (`today`: today..tomorrow; `month`: the 1st..tomorrow; both one request on the
1st), and the total of the baseline days before today (spike rules) once a local day:
later reads of that day keep it. Dates are the rule's local dates; Telnyx counts each
date's charges by its own day boundaries.

`charges_breakdown` (`GET /charges_breakdown`) is read likewise, only for zones whose
rules set `numbers: true`: the month so far per phone number.

The last read of each is kept in the state as the source's resume text (compact JSON,
money as decimal strings), so the rules are judged on every cycle in between and after a
restart. Nothing is written here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal

import structlog

from watcher.core.charges_text import (
    amount_rows,
    dump_zones,
    load_zones,
    parse_charges,
    row_amounts,
)
from watcher.core.model import Amounts, Charges, ChargesQuery, SourceName
from watcher.core.spend_figures import local_day
from watcher.providers import slow
from watcher.providers.base import StateView
from watcher.providers.telnyx.charges_wire import ChargesTotal
from watcher.providers.telnyx.client import TelnyxClient

log = structlog.get_logger(__name__)

SOURCE = SourceName.CHARGES
BREAKDOWN = SourceName.CHARGES_BREAKDOWN
KEEP = 20
"""Products (numbers) kept per read: messages name the top three."""
Numbers = dict[str, tuple[date, Amounts]]  # zone -> (local day read, top numbers of its month)
DAY = timedelta(days=1)


# ---------------------------------------------------------------------------- summary


def due(
    view: StateView,
    account: str,
    now: datetime,
    slow_interval: timedelta,
    queries: Sequence[ChargesQuery],
) -> bool:
    """True when the charges of `account` are to be read this cycle."""
    kept = kept_charges(view, account)
    if kept is None or slow.due(view, account, SOURCE, now, slow_interval):
        return True
    return any(_stale(kept.get(q.timezone), q, now) for q in queries)


def _stale(read: Charges | None, query: ChargesQuery, now: datetime) -> bool:
    if read is None or read.day != local_day(now, query.timezone):
        return True
    missing = (query.day and read.today is None) or (query.month and read.month is None)
    return missing or any(read.before(days) is None for days in query.baselines)


async def read_charges(
    client: TelnyxClient,
    queries: Sequence[ChargesQuery],
    now: datetime,
    kept: Mapping[str, Charges] | None,
    deadline: float | None,
) -> dict[str, Charges]:
    """Each zone's charges as of `now`. Raises TelnyxError."""
    out: dict[str, Charges] = {}
    for query in queries:
        before = (kept or {}).get(query.timezone)
        out[query.timezone] = await _read_zone(client, query, now, before, deadline)
    return out


async def _read_zone(
    client: TelnyxClient,
    query: ChargesQuery,
    now: datetime,
    kept: Charges | None,
    deadline: float | None,
) -> Charges:
    today = local_day(now, query.timezone)
    tomorrow, first = today + DAY, today.replace(day=1)
    day: ChargesTotal | None = None
    if query.day or (query.month and first == today):
        day = await client.get_charges_summary(today, tomorrow, deadline=deadline)
    month = day if first == today else None
    if query.month and month is None:
        month = await client.get_charges_summary(first, tomorrow, deadline=deadline)
    shown = day or month
    assert shown is not None  # a query asks for a day or a month
    return Charges(
        timezone=query.timezone,
        day=today,
        currency=shown.currency,
        today=day.total if day is not None and query.day else None,
        month=month.total if month is not None and query.month else None,
        today_products=day.parts[:KEEP] if day is not None and query.day else (),
        month_products=month.parts[:KEEP] if month is not None and query.month else (),
        baselines=await _baselines(client, query, today, kept, deadline),
    )


async def _baselines(
    client: TelnyxClient,
    query: ChargesQuery,
    today: date,
    kept: Charges | None,
    deadline: float | None,
) -> tuple[tuple[int, Decimal], ...]:
    """The total of the N days before today for each baseline N: read once a local day."""
    out = []
    for days in query.baselines:
        total = kept.before(days) if kept is not None and kept.day == today else None
        if total is None:
            start = today - timedelta(days=days)
            total = (await client.get_charges_summary(start, today, deadline=deadline)).total
        out.append((days, total))
    return tuple(out)


def kept_charges(view: StateView, account: str) -> dict[str, Charges] | None:
    """The charges of the last read by zone; None when never read (or unreadable)."""
    stored = view.get_resume(account, str(SOURCE))
    if stored is None:
        return None
    try:
        return parse_charges(stored)
    except (ValueError, KeyError, TypeError, ArithmeticError):
        log.warning("source.resume_unreadable", source=str(SOURCE), resume=stored[:100])
        return None


# ---------------------------------------------------------------------------- breakdown


def breakdown_due(
    view: StateView,
    account: str,
    now: datetime,
    slow_interval: timedelta,
    queries: Sequence[ChargesQuery],
) -> bool:
    """True when the breakdown of `account` is to be read (only zones with `numbers`)."""
    kept = kept_numbers(view, account)
    if kept is None or slow.due(view, account, BREAKDOWN, now, slow_interval):
        return True
    return any(
        kept.get(q.timezone, (None, ()))[0] != local_day(now, q.timezone)
        for q in queries
        if q.numbers
    )


async def read_numbers(
    client: TelnyxClient, queries: Sequence[ChargesQuery], now: datetime, deadline: float | None
) -> Numbers:
    """The month so far per phone number, for each zone whose rules want numbers."""
    out: Numbers = {}
    for query in (q for q in queries if q.numbers):
        today = local_day(now, query.timezone)
        got = await client.get_charges_breakdown(
            today.replace(day=1), today + DAY, deadline=deadline
        )
        out[query.timezone] = (today, got.parts[:KEEP])
    return out


def kept_numbers(view: StateView, account: str) -> Numbers | None:
    """The numbers of the last breakdown read by zone; None when never read."""
    stored = view.get_resume(account, str(BREAKDOWN))
    if stored is None:
        return None
    try:
        rows = load_zones(stored)
        return {str(r["tz"]): (date.fromisoformat(r["day"]), row_amounts(r["n"])) for r in rows}
    except (ValueError, KeyError, TypeError, ArithmeticError):
        log.warning("source.resume_unreadable", source=str(BREAKDOWN), resume=stored[:100])
        return None


def numbers_text(numbers: Numbers) -> str:
    rows = [
        {"tz": tz, "day": d.isoformat(), "n": amount_rows(n)}
        for tz, (d, n) in sorted(numbers.items())
    ]
    return dump_zones(rows)


def with_numbers(charges: Mapping[str, Charges], numbers: Numbers | None) -> dict[str, Charges]:
    """Each zone's charges with the numbers of the same local day, if read."""
    out = dict(charges)
    for tz, (day, top) in (numbers or {}).items():
        if tz in out and out[tz].day == day:
            out[tz] = replace(out[tz], numbers=top)
    return out

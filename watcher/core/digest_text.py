"""The daily digest's text (DESIGN §12). Pure: `now` and the digest's time are parameters.

`messages(days, now, at)` → one `Message` per account, or, with more than
`MAX_PER_ACCOUNT_MESSAGES` accounts, one message listing them all. Titles:
`[INFO] daily digest — main (2026-12-01)` and `[INFO] daily digest — 12 accounts
(2026-12-01)`; the date is the digest's local day. An account with nothing to report
(no alert, top-up, hold, drift, credential change or undelivered notification) gets
exactly one line that still shows its balance and ends in "nothing happened". Times are
shown in the digest's zone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal

from watcher.core.digest import (
    DIGEST_RULE,
    MAX_PER_ACCOUNT_MESSAGES,
    RUNWAY_LOOKBACK,
    WINDOW,
    AccountDay,
    DigestTime,
    Happening,
    Sample,
    balance_at,
    spent,
)
from watcher.core.forecast import Burn, per_hour_text, runs_out_in, runs_out_text
from watcher.core.holds import Hold
from watcher.core.ledger_types import Entry, EntryState
from watcher.core.lifecycle import Reason
from watcher.core.model import Severity
from watcher.core.render import Message, count_of
from watcher.core.rules import money

MAX_LISTED = 10
"""Lines per section; more are summed up as `… and N more`."""


def messages(
    days: Sequence[AccountDay], now: datetime, at: DigestTime, *, day: date | None = None
) -> list[Message]:
    """The digest messages made at `now` for local `day` (default `at.day_of(now)`).

    In: one `AccountDay` per account (in the order to show), `now`, the digest's time
    (its zone shows the times), the day the titles name (a catch-up after midnight is
    still yesterday's digest). Out: the messages (none for no account).
    """
    day = day or at.day_of(now)
    if len(days) > MAX_PER_ACCOUNT_MESSAGES:
        return [_combined(days, now, at, day)]
    return [_single(one, now, at, day) for one in days]


def title(name: str, day: date) -> str:
    return f"[INFO] daily digest — {name} ({day.isoformat()})"


def _message(title_text: str, body: list[str], account: str) -> Message:
    return Message(title_text, "\n".join(body), Severity.INFO, DIGEST_RULE, account, Reason.EVENTS)


def _single(one: AccountDay, now: datetime, at: DigestTime, day: date) -> Message:
    lines = account_lines(one, now, at)
    body = lines if len(lines) == 1 else [_header(now, at), "", *lines]
    return _message(title(one.account, day), body, one.account)


def _combined(days: Sequence[AccountDay], now: datetime, at: DigestTime, day: date) -> Message:
    body = [_header(now, at)]
    for one in days:
        lines = account_lines(one, now, at)
        body += lines if len(lines) == 1 else ["", *lines, ""]
    quiet = sum(1 for one in days if not _eventful(one, now))
    body += ["", f"{count_of(len(days), 'account')}, {quiet} with nothing to report"]
    return _message(title(f"{len(days)} accounts", day), body, "*")


def _header(now: datetime, at: DigestTime) -> str:
    local = now.astimezone(at.zone)
    return f"the last 24 h to {local:%Y-%m-%d %H:%M} {at.zone_name}"


def account_lines(one: AccountDay, now: datetime, at: DigestTime) -> list[str]:
    """The digest's lines about one account: one line when nothing happened, else a
    heading (name, balance) and a section per kind of news."""
    if not _eventful(one, now):
        balance, spend = _balance_text(one, now, at), _spend_text(one, now)
        return [f"{one.account}: {balance}; {spend} — nothing happened"]
    lines = [f"{one.account}: {_balance_text(one, now, at)}", f"  {_spend_text(one, now)}"]
    runway = _runway_text(one, now)
    if runway:
        lines.append(f"  {runway}")
    for heading, items in _sections(one, now, at):
        if items:
            lines.append(f"  {heading}: {len(items)}")
            lines += [f"    {item}" for item in items[:MAX_LISTED]]
            if len(items) > MAX_LISTED:
                lines.append(f"    … and {len(items) - MAX_LISTED} more")
    if one.undelivered:
        lines.append(f"  undelivered notifications: {one.undelivered}")
    return lines


def _eventful(one: AccountDay, now: datetime) -> bool:
    news = one.happenings or one.drift or one.topups or _holds(one, now)
    return bool(news or one.undelivered)


def _holds(one: AccountDay, now: datetime) -> list[Hold]:
    """Holds in force at `now`, or set, fired or released in the window."""
    since = now - WINDOW
    return [
        h
        for h in one.holds
        if h.active(now, one.hold_after)
        or max(h.held_at, h.last_at, h.released_at or h.last_at) >= since
    ]


def _sections(one: AccountDay, now: datetime, at: DigestTime) -> list[tuple[str, list[str]]]:
    def clock(moment: datetime) -> str:
        return local_time(moment, now, at)

    alerts = [h for h in one.happenings if h.kind != "credentials"]
    return [
        (
            "alerts fired",
            [_fired(h, clock(h.at)) for h in alerts if h.reason is not Reason.RESOLVED],
        ),
        (
            "alerts resolved",
            [_resolved(h, clock(h.at)) for h in alerts if h.reason is Reason.RESOLVED],
        ),
        ("top-ups", [_topup(e, clock(e.created_at)) for e in one.topups]),
        ("holds", [_hold(one, h, now, clock) for h in _holds(one, now)]),
        ("drift", [f"{s.key.rule}: {s.value} ({s.threshold})" for s in one.drift]),
        (
            "credential changes",
            [_credentials(h, clock(h.at)) for h in one.happenings if h.kind == "credentials"],
        ),
    ]


def local_time(moment: datetime, now: datetime, at: DigestTime) -> str:
    """`moment` in the digest's zone: `14:05` today, `yesterday 23:30`, `tomorrow 06:00`,
    else `2026-11-28 09:00` (days are local)."""
    local = moment.astimezone(at.zone)
    offset = (local.date() - now.astimezone(at.zone).date()).days
    word = {0: "", -1: "yesterday ", 1: "tomorrow "}.get(offset)
    return f"{word}{local:%H:%M}" if word is not None else f"{local:%Y-%m-%d %H:%M}"


def _fired(h: Happening, at: str) -> str:
    group = f" [{h.key.group}]" if h.key.group else ""
    what = {
        Reason.ESCALATED: f"escalated to {h.severity.label}",
        Reason.EVENTS: f"({h.severity.label})",
    }.get(h.reason, f"fired ({h.severity.label})")
    value = f": {h.value}" if h.value else ""
    detail = f" ({h.detail})" if h.detail else ""
    return f"{at} {h.key.rule}{group} {what}{value}{detail}"


def _resolved(h: Happening, at: str) -> str:
    group = f" [{h.key.group}]" if h.key.group else ""
    detail = f" ({h.detail})" if h.detail else ""
    return f"{at} {h.key.rule}{group} resolved{detail}"


def _credentials(h: Happening, at: str) -> str:
    return f"{at} {h.key.rule}: {h.detail or h.value}"


def _topup(entry: Entry, at: str) -> str:
    """`03:01 100.00 USD succeeded (low-credit)`; a refusal names its kind (`refused:
    held`), a failure or an unknown outcome its error."""
    state = entry.state.value
    if entry.state is EntryState.REFUSED and entry.reason:
        state += f": {entry.reason.split(':', 1)[0]}"
    why = f": {entry.error}" if entry.error else ""
    return f"{at} {money(entry.amount, entry.currency)} {state} ({entry.rule}){why}"


def _hold(one: AccountDay, hold: Hold, now: datetime, clock: Callable[[datetime], str]) -> str:
    since = f"{hold.rule} since {clock(hold.held_at)}"
    if hold.released_at is not None:
        return f"{since}, released {clock(hold.released_at)} by {hold.released_by}"
    if hold.active(now, one.hold_after):
        until = hold.until(one.hold_after)
        return f"{since}, active" + (f" until {clock(until)}" if until is not None else "")
    return f"{since}, ended"


def _balance_text(one: AccountDay, now: datetime, at: DigestTime) -> str:
    current = balance_at(one.samples, now)
    if current is None:
        return "balance unknown (no sample in the last 24 h)"
    text = f"balance {money(current, one.currency)}"
    if len(one.samples) == 1:
        return text
    since = now - WINDOW
    before = balance_at(one.samples, since)
    first = one.samples[0][0]
    when = "24 h ago" if first <= since else f"at {local_time(first, now, at)}, the first sample:"
    change = current - (before or current)
    sign = "+" if change > 0 else ""
    return f"{text} ({when} {money(before or current, one.currency)}, {sign}{money(change)})"


def _spend_text(one: AccountDay, now: datetime) -> str:
    text = f"spend {money(spent(_since(one.samples, now - WINDOW)), one.currency)} in 24 h"
    if one.spend_today is None:
        return text
    top = ", ".join(f"{name} {money(amount)}" for name, amount in one.top_products[:3])
    charges = f"charges today{one.spend_since} {money(one.spend_today, one.currency)}"
    charges += f" (top: {top})" if top else ""
    return f"{text}; {charges}" if one.samples else charges  # no samples: no 24 h figure


def _since(
    samples: Sequence[Sample], since: datetime, *, available: bool = False
) -> list[tuple[datetime, Decimal]]:
    """(time, balance or available credit) of the samples from the one in force at
    `since` to the last."""
    points = [(s[0], s[2] if available else s[1]) for s in samples]
    return [p for p in points if p[0] <= since][-1:] + [p for p in points if p[0] > since]


def _runway_text(one: AccountDay, now: datetime) -> str:
    """Runway at the spend rate of the last `RUNWAY_LOOKBACK` (top-ups cut out)."""
    points = _since(one.samples, now - RUNWAY_LOOKBACK, available=True)
    if len(points) < 2 or points[-1][0] <= points[0][0]:
        return ""
    current = points[-1][1]
    if current <= 0:
        return "runway: no credit left"
    span = points[-1][0] - points[0][0]
    per_hour = spent(points) * 3600 / Decimal(span.total_seconds())
    eta = runs_out_in(current, Decimal(0), Burn(per_hour, len(points), span))
    if eta is None:
        return "runway: not spending"
    rate = f"{per_hour_text(Burn(per_hour, len(points), span))} {one.currency}".strip()
    left = runs_out_text(current, Decimal(0), eta)
    return f"runway: about {left} at {rate}/h (spend of the last 6 h)"

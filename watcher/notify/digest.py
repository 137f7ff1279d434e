"""The daily digest read from the state (DESIGN §12): what `digest` prints and the daemon
enqueues.

`gather(store, settings, kinds, now)` reads, per account, the balance samples of the last
24 hours, the alert history (`watcher.state.digests`), firing drift alerts, ledger
entries and holds, and the account's undelivered notifications, into the core's
`AccountDay`s; `build` turns them into messages (`watcher.core.digest_text`).

Accounts: every configured one, in config order, then any other account with balance
samples in the window (discovered managed accounts / subaccounts).

Spend: provider-neutral, from the samples with rises cut out; beside it, the provider's
own figure of the calendar day when a source kept one (Telnyx `charges_summary`, read
for a spend rule): `AccountDay.spend_today` and `top_products`, from the kept read of the
digest's time zone (else of the only zone read) if it is of that zone's current day.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from watcher.config.settings import Settings
from watcher.core.charges_text import parse_charges
from watcher.core.digest import RUNWAY_LOOKBACK, WINDOW, AccountDay, DigestTime, parse_at
from watcher.core.digest_text import messages
from watcher.core.model import AlertState, Phase, SourceName
from watcher.core.render import Message
from watcher.core.rules import Rule
from watcher.core.spend_figures import local_day
from watcher.notify.outbox import Outbox
from watcher.state.digests import DigestLog
from watcher.state.ledger import Ledger
from watcher.state.store import Store

SAMPLE_MARGIN = timedelta(hours=1)
"""Samples are read from this much before the window, for the balance "24 h ago"."""
DEFAULT_AT = "00:00 UTC"
"""The time `digest` uses for its day and zone when `notify.digest` is not configured."""


def kinds_of(rules: Sequence[Rule]) -> dict[str, str]:
    """Each rule's kind by name."""
    return {rule.name: str(rule.kind) for rule in rules}


def digest_time(settings: Settings) -> DigestTime:
    """`notify.digest.at` parsed (validated at load), or `DEFAULT_AT`."""
    digest = settings.notify.digest
    return parse_at(digest.at if digest is not None else DEFAULT_AT)


def account_names(store: Store, settings: Settings, since: datetime) -> list[str]:
    """Configured accounts in config order, then others with samples since `since`."""
    names = [account.name for account in settings.accounts]
    return names + [name for name in DigestLog(store).sampled(since) if name not in names]


def gather(
    store: Store,
    settings: Settings,
    kinds: Mapping[str, str],
    now: datetime,
    *,
    only: str | None = None,
) -> list[AccountDay]:
    """Every account's day (or only account `only`'s), read from `store` at `now`."""
    since = now - WINDOW
    names = account_names(store, settings, since)
    if only is not None:
        names = [name for name in names if name == only]
    ledger, history = Ledger(store), DigestLog(store)
    marks = (since, now - RUNWAY_LOOKBACK)
    firing = [s for s in store.load_alerts().values() if s.phase is Phase.FIRING]
    pending = Outbox(store).pending()
    configured = {account.name: account for account in settings.accounts}
    days = []
    for name in names:
        account = configured.get(name)
        currency, samples = history.key_samples(name, since - SAMPLE_MARGIN, now, marks)
        charges = _charges_today(store, name, digest_time(settings).zone_name, now)
        days.append(
            AccountDay(
                account=name,
                currency=currency or charges.pop("currency", "") or _currency(account),
                samples=tuple(samples),
                happenings=tuple(history.history(name, since, now)),
                drift=tuple(_drift(firing, kinds, name)),
                topups=tuple(ledger.entries(account=name, since=since)),
                holds=tuple(ledger.holds.all(account=name, since=since)),
                hold_after=account.topup.hold_after if account else timedelta(hours=24),
                undelivered=sum(1 for item in pending if item.message.account == name),
                **{k: v for k, v in charges.items() if k != "currency"},
            )
        )
    return days


def _charges_today(store: Store, account: str, zone: str, now: datetime) -> dict[str, Any]:
    """`spend_today`, `top_products`, `spend_since` and `currency` from the kept charges
    (or none)."""
    stored = store.get_resume(account, str(SourceName.CHARGES))
    try:
        kept = parse_charges(stored) if stored is not None else {}
    except (ValueError, KeyError, TypeError, ArithmeticError):
        return {}
    read = kept.get(zone) or (next(iter(kept.values())) if len(kept) == 1 else None)
    if read is None or read.today is None or read.day != local_day(now, read.timezone):
        return {}
    return {
        "spend_today": read.today,
        "top_products": read.today_products,
        "spend_since": f" (since 00:00 {read.timezone})",
        "currency": read.currency,
    }


def build(
    store: Store,
    settings: Settings,
    kinds: Mapping[str, str],
    now: datetime,
    *,
    day: date | None = None,
    only: str | None = None,
) -> list[Message]:
    """The digest messages at `now` (for local `day`, default today in the digest's zone)."""
    at = digest_time(settings)
    return messages(gather(store, settings, kinds, now, only=only), now, at, day=day)


def _drift(
    firing: Sequence[AlertState], kinds: Mapping[str, str], account: str
) -> list[AlertState]:
    return [s for s in firing if s.key.account == account and kinds.get(s.key.rule) == "drift"]


def _currency(account: object) -> str:
    currency = getattr(account, "currency", None)
    return currency if isinstance(currency, str) else ""

"""The top-up policy of DESIGN section 6, pure: when a top-up is due, and whether to pay.

- Triggers: `find_triggers` says which accounts a critical `topup: true` rule asks to
  pay for this cycle (`START`: it started firing at critical, `STAY`: it still is);
  `still_critical` judges the rule again on a freshly read balance.
- Decision: `usage` sums what the caps have used; `decide` applies the kill switch, a
  lost or fresh state, `min_interval` and the caps: pay, refuse (with a reason) or wait.
- `Payer`: what the executor needs of a provider's client.

The messages are in watcher/core/topup_text.py, the executor (the POST, the ledger
writes) in watcher/service/topup.py. Time is a parameter; plain values in, plain out.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from watcher.core.ledger_types import COUNTED, POSTED, Entry, EntryState, Guard, Pause
from watcher.core.lifecycle import Reason, Transition
from watcher.core.model import AccountSnapshot, AlertKey, AlertState, Balance, Phase, Severity
from watcher.core.payment import TopupResult
from watcher.core.rules import Finding, Rule, evaluate

TOPUP_KINDS = frozenset({"balance", "forecast"})
DAY = timedelta(hours=24)
MONTH = timedelta(days=30)

# ---------------------------------------------------------------------------- triggers


class TriggerKind(enum.StrEnum):
    """Why a rule asks for a top-up now."""

    START = "start"  # it started firing at critical (or escalated to critical) this cycle
    STAY = "stay"  # it is still firing at critical


@dataclass(frozen=True, slots=True)
class Trigger:
    """A `topup: true` rule firing at critical for one account.

    `episode` identifies the firing episode (the alert's `fired_at`), so that a refusal
    is notified once per episode.
    """

    account: str
    rule: Rule
    kind: TriggerKind
    episode: str
    snapshot: AccountSnapshot


def can_top_up(rule: Any) -> bool:
    """True for an enabled `balance` / `forecast` rule with `topup: true`."""
    return (
        getattr(rule, "topup", False) is True
        and getattr(rule, "kind", None) in TOPUP_KINDS
        and getattr(rule, "enabled", True) is True
    )


def find_triggers(
    rules: Iterable[Rule],
    transitions: Iterable[Transition],
    alerts: Mapping[AlertKey, AlertState],
    snapshots: Iterable[AccountSnapshot],
) -> list[Trigger]:
    """Which accounts a critical `topup: true` rule asks to top up this cycle. Pure.

    In: the rules, this cycle's transitions, the alert states after the lifecycle step,
    and the snapshots. Out: at most one trigger per account (a START wins over a STAY,
    then the first rule by name), sorted by account. An account whose balance was not
    read this cycle gets none.
    """
    started = {
        t.key
        for t in transitions
        if t.reason in (Reason.FIRING, Reason.ESCALATED) and t.severity is Severity.CRITICAL
    }
    snaps = {snap.account: snap for snap in snapshots}
    chosen: dict[str, Trigger] = {}
    for rule in sorted((r for r in rules if can_top_up(r)), key=lambda r: r.name):
        for key, state in sorted(alerts.items()):
            if key.rule != rule.name or not _critical(state):
                continue
            snap = snaps.get(key.account)
            if snap is None or snap.balance is None:
                continue
            kind = TriggerKind.START if key in started else TriggerKind.STAY
            current = chosen.get(key.account)
            if current is None or (kind is TriggerKind.START and current.kind is TriggerKind.STAY):
                episode = episode_of(state.fired_at)
                chosen[key.account] = Trigger(key.account, rule, kind, episode, snap)
    return [chosen[account] for account in sorted(chosen)]


def episode_of(fired_at: datetime | None) -> str:
    """A firing episode's id: its `fired_at` as the state stores times ("" when unset)."""
    if fired_at is None:
        return ""
    return fired_at.astimezone(UTC).isoformat(timespec="microseconds")


def _critical(state: AlertState) -> bool:
    return state.phase is Phase.FIRING and state.severity is Severity.CRITICAL


def still_critical(
    rule: Rule, snapshot: AccountSnapshot, fresh: Balance, now: datetime
) -> Finding | None:
    """The rule judged again on a freshly read balance: its finding when still critical.

    Pure. Out: the critical finding, or None when the condition no longer holds there.
    """
    snap = dataclasses.replace(snapshot, balance=fresh, errors={})
    for result in evaluate([rule], [snap], now):
        if result.rule != rule.name or not result.judged:
            continue
        for finding in result.findings:
            if finding.severity is Severity.CRITICAL:
                return finding
    return None


# ---------------------------------------------------------------------------- decision


class CapsConfig(Protocol):
    """What `Caps.of` reads: the caps fields of an `accounts[].topup` section."""

    @property
    def amount(self) -> Decimal: ...
    @property
    def max_per_day(self) -> Decimal: ...
    @property
    def max_per_month(self) -> Decimal | None: ...
    @property
    def min_interval(self) -> timedelta: ...


@dataclass(frozen=True, slots=True)
class Caps:
    """The limits of one account's top-ups (from `accounts[].topup`)."""

    amount: Decimal
    max_per_day: Decimal
    min_interval: timedelta
    max_per_month: Decimal | None = None

    @classmethod
    def of(cls, config: CapsConfig) -> Caps:
        """The caps of `config` (an `accounts[].topup` section, or anything alike)."""
        return cls(config.amount, config.max_per_day, config.min_interval, config.max_per_month)

    @property
    def lookback(self) -> timedelta:
        """How far back the ledger must be read to judge these caps."""
        return max(MONTH, self.min_interval)


@dataclass(frozen=True, slots=True)
class Usage:
    """What the caps have used: amounts in the last 24 h and 30 days, the last POST."""

    day: Decimal
    month: Decimal
    last_post: datetime | None


def usage(entries: Iterable[Entry], now: datetime, *, dry_run: bool = False) -> Usage:
    """Sum the entries that count toward the caps. Pure.

    In: ledger entries (at least the last 30 days), `now`; with `dry_run`, dry-run
    entries count too (a dry run simulates the real thing). Entries dated after `now`
    (a clock that went back) count as well. Out: `Usage`.
    """
    counted = COUNTED | {EntryState.DRY_RUN} if dry_run else COUNTED
    posted = POSTED | {EntryState.DRY_RUN} if dry_run else POSTED
    items = list(entries)
    day = sum(
        (e.amount for e in items if e.state in counted and e.created_at > now - DAY), Decimal(0)
    )
    month = sum(
        (e.amount for e in items if e.state in counted and e.created_at > now - MONTH), Decimal(0)
    )
    last = max((e.created_at for e in items if e.state in posted), default=None)
    return Usage(day=day, month=month, last_post=last)


class Refusal(enum.StrEnum):
    """Why a due top-up is not made."""

    PAUSED = "paused"
    HELD = "held"
    STATE_LOST = "state-lost"
    FRESH_STATE = "fresh-state"
    MIN_INTERVAL = "min_interval"
    MAX_PER_DAY = "max_per_day"
    MAX_PER_MONTH = "max_per_month"


@dataclass(frozen=True, slots=True)
class Pay:
    """Pay `amount` now (or, in a dry run, say that it would have been paid)."""

    amount: Decimal
    usage: Usage


@dataclass(frozen=True, slots=True)
class Refuse:
    """A top-up is due but not allowed."""

    why: Refusal
    usage: Usage
    next_allowed: datetime | None = None


@dataclass(frozen=True, slots=True)
class Wait:
    """Still critical, but the next top-up is not due before `until` (nothing to say)."""

    until: datetime


Decision = Pay | Refuse | Wait


def decide(
    kind: TriggerKind,
    caps: Caps,
    entries: Iterable[Entry],
    now: datetime,
    *,
    pause: Pause | None = None,
    dry_run: bool = False,
    guard: Guard | None = None,
) -> Decision:
    """Pay, refuse or wait. Pure; the single place that applies the caps.

    In: the trigger kind, the caps, the account's ledger entries (see `usage`), `now`,
    the kill switch (`pause`, or the one in `guard`), whether this is a dry run, and the
    `guard` of a lost or fresh state (which dry runs ignore: they move no money).
    Out, first that applies: `Refuse(PAUSED)`; `Refuse(HELD)` while the guard carries
    the account's binding fraud hold (dry runs too; `next_allowed`: when it ends by
    itself, None for a manual one); `Refuse(STATE_LOST)`; within
    `min_interval` of a fresh state's start (`FRESH_STATE`) or of the last POST
    (`MIN_INTERVAL`) a START is refused and a STAY is `Wait`; `Refuse(MAX_PER_DAY)` when
    the rolling 24 h sum plus `amount` exceeds `max_per_day`; the same for 30 days and
    `max_per_month`; else `Pay(amount)`.
    """
    used = usage(entries, now, dry_run=dry_run)
    guard = guard or Guard(pause)
    if pause is not None or guard.pause is not None:
        return Refuse(Refusal.PAUSED, used)
    if guard.hold is not None:
        return Refuse(Refusal.HELD, used, guard.hold.until(guard.hold_after))
    if not dry_run and guard.lost is not None:
        return Refuse(Refusal.STATE_LOST, used)
    waits = [(used.last_post, Refusal.MIN_INTERVAL)]
    if not dry_run:
        waits.insert(0, (guard.fresh_since, Refusal.FRESH_STATE))
    for since, why in waits:
        if since is not None and now - since < caps.min_interval:
            until = since + caps.min_interval
            return Refuse(why, used, until) if kind is TriggerKind.START else Wait(until)
    if used.day + caps.amount > caps.max_per_day:
        return Refuse(Refusal.MAX_PER_DAY, used)
    if caps.max_per_month is not None and used.month + caps.amount > caps.max_per_month:
        return Refuse(Refusal.MAX_PER_MONTH, used)
    return Pay(caps.amount, used)


def is_pay(decision: Decision) -> bool:
    return isinstance(decision, Pay)


def cap_fields(caps: Caps, used: Usage) -> dict[str, str]:
    """Log fields of a decision: the amount, and the caps with what was used before it."""
    fields = {
        "amount": str(caps.amount),
        "used_24h": f"{used.day:.2f}",
        "max_per_day": str(caps.max_per_day),
    }
    if caps.max_per_month is not None:
        fields.update(used_30d=f"{used.month:.2f}", max_per_month=str(caps.max_per_month))
    return fields


# ---------------------------------------------------------------------------- payer


class Payer(Protocol):
    """What the executor needs of a provider's client (a `TelnyxClient` is one)."""

    async def get_balance(self, *, deadline: float | None = None) -> Balance: ...

    async def create_topup(self, amount: Decimal, *, timeout: float) -> TopupResult: ...  # noqa: ASYNC109

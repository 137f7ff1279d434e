"""Top-ups under the safety protocol of DESIGN §6: never more than the caps, never twice.

Two halves:

- pure: `find_triggers` (which accounts a critical `topup: true` rule asks to pay for),
  `usage` / `decide` (caps, interval, kill switch → pay, refuse or wait, with a reason),
  and the message renderers (`render_entry`). Time is a parameter.
- I/O: `TopupActor`, the executor. For one trigger it (1) re-reads the balance and skips
  when the rule no longer holds at critical, (2) decides on fresh ledger data and
  (3) writes the `sending` entry in the same committed transaction, (4) POSTs once
  (`TelnyxClient.create_topup`, never retried) and (5) records the outcome. At start-up
  (`start`) every `sending` entry becomes `unknown` (6). Every outcome becomes a
  message (7); succeeded top-ups are verified against later balance samples.

Dry run: with `topup.enabled: false` (the default) or `once --dry-run`, a would-be
top-up is recorded as `dry_run` and notified; nothing is POSTed.

Ownership: only the process holding the state lock (watcher/state/lock.py) reconciles and
pays. An actor built with `owns_state=False` (a `once` while `run` holds the lock) never
touches the ledger: no reconcile, no verification, no POST, no entry, no message; a
would-be top-up is only logged (`topup.skipped`, why `not_owner`) and listed in
`not_owner_lines()`.

TEST-ONLY: when the environment variable `WATCHER_TEST_CRASH_AT` names a step of the
protocol (`before_ledger_write`, `after_ledger_write`, `after_response`,
`after_outcome_write`), the process exits at once (`os._exit`) when it reaches that step,
so that the crash tests can kill it exactly there. Never set it in production.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import structlog

from watcher.config.settings import AccountConfig, TopupConfig
from watcher.core.durations import format_duration
from watcher.core.lifecycle import Reason, Transition
from watcher.core.model import AccountSnapshot, AlertKey, AlertState, Balance, Phase, Severity
from watcher.core.render import Message, when
from watcher.core.rules import BalanceRule, Finding, ForecastRule, Rule, evaluate, money
from watcher.providers.telnyx.client import TelnyxError, TopupOutcome, TopupResult
from watcher.state.ledger import (
    COUNTED,
    FRESH_KEY,
    LOST_KEY,
    POSTED,
    Entry,
    EntryState,
    Guard,
    Ledger,
    NewEntry,
    Pause,
    VerifyState,
)
from watcher.state.store import Store, ts

log = structlog.get_logger(__name__)

CRASH_ENV = "WATCHER_TEST_CRASH_AT"
"""TEST-ONLY: a protocol step at which the process `os._exit`s (see the module docstring)."""

CRASH_EXIT = 70
CRASH_POINTS = frozenset(
    {"before_ledger_write", "after_ledger_write", "after_response", "after_outcome_write"}
)
TOPUP_KINDS = frozenset({"balance", "forecast"})
DAY = timedelta(hours=24)
MONTH = timedelta(days=30)
REFLECTED_SHARE = Decimal("0.5")
"""A top-up counts as reflected once the balance rose by at least this share of it."""

Outgoing = tuple[Message, tuple[str, ...]]


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
                episode = ts(state.fired_at) if state.fired_at is not None else ""
                chosen[key.account] = Trigger(key.account, rule, kind, episode, snap)
    return [chosen[account] for account in sorted(chosen)]


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


_TOPUP_NOT_ALLOWED = ".topup: Extra inputs are not permitted"


def check_rules(
    rules: Iterable[Rule], locations: Mapping[str, str], accounts: Sequence[AccountConfig]
) -> tuple[list[str], list[str]]:
    """`check` for top-ups: rules that can never pay, and accounts in dry-run mode. Pure.

    In: the loaded rules, their `file:line:col` by name, the configured accounts.
    Out: (errors, warnings), each `file:line:col: message`.
    """
    errors: list[str] = []
    warnings: list[str] = []
    for rule in rules:
        if not can_top_up(rule):
            continue
        where = locations.get(rule.name, rule.name)
        if isinstance(rule, BalanceRule) and rule.below is None:
            errors.append(f"{where}: topup: needs `below` (a top-up raises the balance)")
        elif isinstance(rule, BalanceRule) and Severity.CRITICAL not in rule.levels:
            errors.append(
                f"{where}: topup: needs a critical threshold (top-ups are made while the "
                "rule is critical)"
            )
        elif isinstance(rule, ForecastRule) and rule.level is not Severity.CRITICAL:
            errors.append(
                f"{where}: topup needs severity: critical: top-ups are made while the rule "
                "is critical"
            )
        for account in accounts:
            if rule.applies_to(account.name) and not account.topup.enabled:
                warnings.append(
                    f"{where}: rule {rule.name} has topup: true but account {account.name} has "
                    "topup.enabled: false: dry runs only, nothing is paid"
                )
    return errors, warnings


def clarify_rule_errors(errors: Iterable[str]) -> list[str]:
    """Rule-file errors with `topup` on a kind that cannot top up explained as such."""
    return [
        line.removesuffix(" Extra inputs are not permitted")
        + " only balance and forecast rules can top up"
        if line.endswith(_TOPUP_NOT_ALLOWED)
        else line
        for line in errors
    ]


# ---------------------------------------------------------------------------- decision


@dataclass(frozen=True, slots=True)
class Caps:
    """The limits of one account's top-ups (from `accounts[].topup`)."""

    amount: Decimal
    max_per_day: Decimal
    min_interval: timedelta
    max_per_month: Decimal | None = None

    @classmethod
    def of(cls, config: TopupConfig) -> Caps:
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
    Out, first that applies: `Refuse(PAUSED)`; `Refuse(STATE_LOST)`; within
    `min_interval` of a fresh state's start (`FRESH_STATE`) or of the last POST
    (`MIN_INTERVAL`) a START is refused and a STAY is `Wait`; `Refuse(MAX_PER_DAY)` when
    the rolling 24 h sum plus `amount` exceeds `max_per_day`; the same for 30 days and
    `max_per_month`; else `Pay(amount)`.
    """
    used = usage(entries, now, dry_run=dry_run)
    guard = guard or Guard(pause)
    if pause is not None or guard.pause is not None:
        return Refuse(Refusal.PAUSED, used)
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


# ---------------------------------------------------------------------------- messages


def caps_text(caps: Caps, used: Usage, currency: str) -> str:
    """`100.00 of 300.00 USD in the last 24 h; 100.00 of 1,000.00 USD in the last 30 days`."""
    text = f"{money(used.day)} of {money(caps.max_per_day, currency)} in the last 24 h"
    if caps.max_per_month is not None:
        text += (
            f"; {money(used.month)} of {money(caps.max_per_month, currency)} in the last 30 days"
        )
    return text


def refusal_text(
    refuse: Refuse,
    caps: Caps,
    currency: str,
    pause: Pause | None = None,
    guard: Guard | None = None,
) -> str:
    """The reason recorded and notified for a refusal, starting with its kind."""
    pause = pause or (guard.pause if guard else None)
    match refuse.why:
        case Refusal.STATE_LOST:
            found = f" ({guard.lost.found})" if guard and guard.lost else ""
            return (
                f"state-lost: the state database lost top-ups that the ledger journal "
                f"records{found}; check the provider, settle what is in doubt, then "
                "account-watcher topups resume"
            )
        case Refusal.FRESH_STATE:
            nxt = f" until {when(refuse.next_allowed)}" if refuse.next_allowed else ""
            return (
                f"fresh-state: the state was created fresh, so top-ups wait "
                f"{format_duration(caps.min_interval)}{nxt} (account-watcher topups resume "
                "lifts the wait)"
            )
        case Refusal.PAUSED:
            who = (
                f" by {pause.paused_by} at {when(pause.paused_at)}: {pause.reason}" if pause else ""
            )
            return f"paused: top-ups are paused{who} (account-watcher topups resume)"
        case Refusal.MIN_INTERVAL:
            last = refuse.usage.last_post
            after = f" at {when(last)}" if last else ""
            nxt = f"; next allowed at {when(refuse.next_allowed)}" if refuse.next_allowed else ""
            return (
                f"min_interval: the last top-up was sent{after}, less than "
                f"{format_duration(caps.min_interval)} ago{nxt}"
            )
        case Refusal.MAX_PER_DAY:
            return (
                f"max_per_day: {money(refuse.usage.day)} of {money(caps.max_per_day, currency)} "
                f"already used in the last 24 h; {money(caps.amount)} more would exceed it"
            )
        case Refusal.MAX_PER_MONTH:
            cap = caps.max_per_month if caps.max_per_month is not None else Decimal(0)
            return (
                f"max_per_month: {money(refuse.usage.month)} of {money(cap, currency)} already "
                f"used in the last 30 days; {money(caps.amount)} more would exceed it"
            )
    raise AssertionError(refuse.why)  # pragma: no cover


def _why_line(entry: Entry) -> str:
    return f"Why: {entry.reason}"


def render_entry(entry: Entry, caps: Caps | None, used: Usage) -> Message:
    """The notification for a ledger entry's outcome. Pure.

    In: the entry, the account's caps (None when the account is gone from the config),
    the caps used now. Out: a `Message` titled per DESIGN §5, e.g.
    `[INFO] top-up paid 100.00 USD — main`; the body gives the amount, the caps used,
    the transaction id and the API's error where there is one, and what to do.
    """
    amount = money(entry.amount, entry.currency)
    lines: list[str]
    if entry.state is EntryState.SUCCEEDED and entry.verify_state is VerifyState.MISSING:
        severity, title = Severity.CRITICAL, f"top-up not reflected in balance {amount}"
        lines = [
            f"Top-up #{entry.id} of {amount} was paid (transaction {entry.transaction_id}) at "
            f"{when(entry.finished_at or entry.created_at)}, but the balance did not rise by "
            f"about that amount since ({entry.error or 'no balance read since'}).",
            "Check the transaction in the Telnyx portal (Billing) before anything else.",
        ]
    elif entry.state is EntryState.SUCCEEDED:
        severity, title = Severity.INFO, f"top-up paid {amount}"
        lines = [f"Paid {amount} from the stored payment method.", _why_line(entry)]
        lines.append(f"Transaction id: {entry.transaction_id}")
    elif entry.state is EntryState.UNKNOWN:
        severity, title = Severity.CRITICAL, f"top-up outcome unknown {amount}"
        lines = [
            f"A top-up of {amount} was sent but its outcome is unknown: {entry.error}.",
            "It may or may not have been charged. It counts toward the caps and is never "
            "retried automatically.",
            _why_line(entry),
            "Check the transactions in the Telnyx portal (Billing), then record what happened: "
            f'account-watcher topups settle {entry.id} --as succeeded|failed --reason "..."',
        ]
    elif entry.state is EntryState.FAILED:
        severity, title = Severity.CRITICAL, f"top-up failed {amount}"
        lines = [
            f"The top-up of {amount} was refused by the API; no money was moved.",
            f"API error: {entry.error}",
            _why_line(entry),
            "Credit is still low: check the stored payment method in the Telnyx portal.",
        ]
    elif entry.state is EntryState.DRY_RUN:
        severity, title = Severity.INFO, f"top-up dry run: would have paid {amount}"
        lines = [
            f"Dry run: would have paid {amount} from the stored payment method; nothing was "
            "sent. Set accounts[].topup.enabled: true to pay for real.",
            _why_line(entry),
        ]
    elif entry.state is EntryState.REFUSED:
        kind = entry.reason.split(":", 1)[0]
        severity, title = Severity.WARNING, f"top-up refused ({kind}) {amount}"
        lines = [
            f"A top-up of {amount} is due (rule {entry.rule}) but was not made: {entry.reason}.",
            "This is said once per firing episode; the daemon tries again while the rule "
            "stays critical.",
        ]
    else:  # SENDING is never announced
        severity, title = Severity.CRITICAL, f"top-up in flight {amount}"
        lines = [f"A top-up of {amount} is being sent."]
    if caps is not None:
        lines.append(f"Caps used: {caps_text(caps, used, entry.currency)}.")
    lines.append(
        f"Ledger entry #{entry.id} ({when(entry.created_at)}); see `account-watcher topups`."
    )
    return Message(
        title=f"[{severity.name}] {title} — {entry.account}",
        body="\n".join(lines),
        severity=severity,
        rule=entry.rule,
        account=entry.account,
        reason=Reason.EVENTS,
        urgent=True,  # money: delivered even through a route's `mute`
    )


# ---------------------------------------------------------------------------- executor


class Payer(Protocol):
    """What the executor needs of a Telnyx client (a `TelnyxClient` is one)."""

    async def get_balance(self, *, deadline: float | None = None) -> Balance: ...

    async def create_topup(self, amount: Decimal, *, timeout: float) -> TopupResult: ...  # noqa: ASYNC109


@dataclass(frozen=True, slots=True)
class Skipped:
    """A top-up a process without the state lock left to the owner."""

    account: str
    rule: str
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class CycleView:
    """What one cycle hands to the top-up step."""

    at: datetime
    rules: Sequence[Rule]
    accounts: Sequence[AccountConfig]
    transitions: Sequence[Transition]
    alerts: Mapping[AlertKey, AlertState]
    snapshots: Sequence[AccountSnapshot]
    clients: Mapping[str, Payer]
    timeout: float


def _exit_at(point: str) -> None:
    if os.environ.get(CRASH_ENV) == point:
        log.warning("topup.test_crash", at=point)
        os._exit(CRASH_EXIT)


class TopupActor:
    """Runs the top-up protocol for the daemon (see the module docstring).

    In: the store, the clock (the daemon's), `dry_run` (never pay: `once --dry-run`),
    `owns_state` (this process holds the state lock; without it the actor only logs,
    see the module docstring) and `checkpoint(step)`, called at each step of the
    protocol (default: the test-only crash hook reading `WATCHER_TEST_CRASH_AT`).
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime],
        dry_run: bool = False,
        owns_state: bool = True,
        checkpoint: Callable[[str], None] = _exit_at,
    ) -> None:
        self.store = store
        self.ledger = Ledger(store)
        self.clock = clock
        self.dry_run = dry_run
        self.owns_state = owns_state
        self._checkpoint = checkpoint
        self._announced: list[int] = []
        self._noticed: list[str] = []
        self.recorded: list[Entry] = []  # entries written by the last `act`, for metrics
        self.skipped: list[Skipped] = []  # would-be top-ups of the last `act`, not owner

    def start(self) -> list[Entry]:
        """Start-up: the journal is compared with the database (`Ledger.recover`: a lost
        state refuses top-ups, a fresh one waits), then every `sending` entry becomes
        `unknown` (to be alerted). Out: those.

        Without the state lock nothing changes (the owner may be mid-POST): out [].
        """
        if not self.owns_state:
            log.info("topup.not_owner", why="another process holds the state lock")
            return []
        self.ledger.recover(self.clock())
        return self.ledger.reconcile(self.clock())

    async def act(self, view: CycleView) -> list[Outgoing]:
        """One cycle's top-up step: verify earlier top-ups, pay where due, and return the
        messages owed (outcomes, refusals, dry runs, unknowns, verification alerts).

        The announce marks are cleared by `commit()`, inside the daemon's commit
        transaction that enqueues these messages.
        """
        configs = {account.name: account.topup for account in view.accounts}
        self.recorded = []
        if not self.owns_state:
            self.skipped = self._skip_all(view, configs)
            return []
        self._verify(view, configs)
        for trigger in find_triggers(view.rules, view.transitions, view.alerts, view.snapshots):
            config = configs.get(trigger.account)
            client = view.clients.get(trigger.account)
            if config is None or client is None:
                continue
            entry = await self.attempt(trigger, config, client, http_timeout=view.timeout)
            if entry is not None:
                self.recorded.append(entry)
        return self.announcements(view.rules, configs)

    def _skip_all(self, view: CycleView, configs: Mapping[str, TopupConfig]) -> list[Skipped]:
        out = []
        for trigger in find_triggers(view.rules, view.transitions, view.alerts, view.snapshots):
            config = configs.get(trigger.account)
            if config is None:
                continue
            balance = trigger.snapshot.balance
            currency = balance.currency if balance is not None else ""
            out.append(Skipped(trigger.account, trigger.rule.name, config.amount, currency))
            log.warning(
                "topup.skipped",
                account=trigger.account,
                rule=trigger.rule.name,
                why="not_owner",
                amount=str(config.amount),
                max_per_day=str(config.max_per_day),
            )
        return out

    def not_owner_lines(self) -> list[str]:
        """Summary lines for `once` without the state lock ([] when this process owns it)."""
        if self.owns_state:
            return []
        lines = ["top-ups skipped: another account-watcher owns the state"]
        lines += [
            f"  {s.account}: rule {s.rule} is critical; the top-up of "
            f"{money(s.amount, s.currency)} is left to the owner"
            for s in self.skipped
        ]
        return lines

    def commit(self) -> None:
        """Clear the announce marks of the messages `act` returned (call in the commit
        transaction that enqueues them)."""
        if self._announced:
            self.ledger.mark_announced(self._announced)
            self._announced = []
        for key in self._noticed:
            self.ledger.mark_noticed(key, self.clock())
        self._noticed = []

    # -- one trigger -------------------------------------------------------------------

    async def attempt(
        self, trigger: Trigger, config: TopupConfig, payer: Payer, *, http_timeout: float
    ) -> Entry | None:
        """The protocol for one trigger. Out: the ledger entry written, if any.

        Raises StoreError when the ledger cannot be written (then nothing was sent).
        """
        caps = Caps.of(config)
        dry = self.dry_run or not config.enabled
        account = trigger.account
        now = self.clock()
        pre = decide(
            trigger.kind,
            caps,
            self.ledger.entries(account=account, since=now - caps.lookback),
            now,
            guard=self.ledger.guard(),
            dry_run=dry,
        )
        if not isinstance(pre, Pay):
            return self._not_paying(trigger, pre, caps, dry)
        fields = cap_fields(caps, pre.usage)
        fresh = await self._fresh_balance(account, payer, http_timeout, fields)  # 1
        if fresh is None:
            return None
        finding = still_critical(trigger.rule, trigger.snapshot, fresh, self.clock())
        if finding is None:
            log.info(
                "topup.skipped",
                account=account,
                rule=trigger.rule.name,
                why="condition_cleared",
                **fields,
            )
            return None
        new = NewEntry(
            account=account,
            amount=caps.amount,
            currency=fresh.currency,
            rule=trigger.rule.name,
            reason=f"{trigger.rule.name} is critical: {finding.value} ({finding.threshold})",
            episode=trigger.episode,
            balance_before=fresh.balance,
        )
        if dry:
            return self._dry_run(trigger, new, caps)
        return await self._pay(trigger, new, caps, payer, http_timeout)

    async def _fresh_balance(
        self, account: str, payer: Payer, http_timeout: float, fields: Mapping[str, str]
    ) -> Balance | None:
        try:
            return await payer.get_balance(deadline=_deadline(http_timeout))
        except TelnyxError as exc:
            log.warning(
                "topup.skipped",
                account=account,
                why="balance_unreadable",
                error=str(exc),
                **fields,
            )
            return None

    def _dry_run(self, trigger: Trigger, new: NewEntry, caps: Caps) -> Entry | None:
        now = self.clock()
        entries = self.ledger.entries(account=new.account, since=now - caps.lookback)
        decision = decide(trigger.kind, caps, entries, now, guard=self.ledger.guard(), dry_run=True)
        if not isinstance(decision, Pay):
            return self._not_paying(trigger, decision, caps, True)
        entry = self.ledger.add(new, EntryState.DRY_RUN, now)
        log.info(
            "topup.dry_run", account=new.account, entry=entry.id, **cap_fields(caps, decision.usage)
        )
        return entry

    async def _pay(
        self, trigger: Trigger, new: NewEntry, caps: Caps, payer: Payer, http_timeout: float
    ) -> Entry | None:
        now = self.clock()
        self._checkpoint("before_ledger_write")
        decision, entry = self.ledger.begin_if(  # 2 + 3: decide and write `sending`, one commit
            lambda entries, guard: decide(trigger.kind, caps, entries, now, guard=guard),
            is_pay,
            new,
            account=new.account,
            since=now - caps.lookback,
            now=now,
        )
        if entry is None:
            return self._not_paying(trigger, decision, caps, False)
        if not isinstance(decision, Pay):  # pragma: no cover - begin_if wrote it: is_pay held
            raise AssertionError(decision)
        self._checkpoint("after_ledger_write")
        fields = cap_fields(caps, decision.usage)
        log.info("topup.sending", account=new.account, entry=entry.id, **fields)
        try:
            result = await payer.create_topup(new.amount, timeout=http_timeout)  # 4: once
        except Exception as exc:  # a bug, not a network problem: the outcome is not known
            log.exception("topup.post_crashed", entry=entry.id, **fields)
            result = TopupResult(TopupOutcome.UNKNOWN, error=f"unexpected {type(exc).__name__}")
        self._checkpoint("after_response")
        finished = self._record(entry, result, fields)  # 5
        self._checkpoint("after_outcome_write")
        return finished

    def _record(self, entry: Entry, result: TopupResult, fields: Mapping[str, str]) -> Entry:
        state = EntryState(result.outcome.value)
        error = result.error or None
        if result.detail and error is not None and result.detail not in error:
            error = f"{error}: {result.detail}"
        finished = self.ledger.finish(
            entry.id, state, self.clock(), transaction_id=result.transaction_id, error=error
        )
        emit = log.info if state is EntryState.SUCCEEDED else log.warning
        emit(
            f"topup.{state.value}",
            account=entry.account,
            entry=entry.id,
            transaction_id=result.transaction_id,
            status=result.status,
            error=error,
            **fields,
        )
        return finished

    def _not_paying(
        self, trigger: Trigger, decision: Decision, caps: Caps, dry: bool
    ) -> Entry | None:
        if isinstance(decision, Wait | Pay):
            return None
        account, rule = trigger.account, trigger.rule.name
        fields = cap_fields(caps, decision.usage)
        if self.ledger.refusal_noted(account, rule, trigger.episode):
            log.debug(
                "topup.refused", account=account, why=decision.why.value, noted=True, **fields
            )
            return None
        currency = trigger.snapshot.balance.currency if trigger.snapshot.balance else ""
        text = refusal_text(decision, caps, currency, guard=self.ledger.guard())
        if dry:
            text += " (dry run)"
        new = NewEntry(
            account=account,
            amount=caps.amount,
            currency=currency,
            rule=rule,
            reason=text,
            episode=trigger.episode,
        )
        entry = self.ledger.add(new, EntryState.REFUSED, self.clock())
        log.warning(
            "topup.refused", account=account, why=decision.why.value, entry=entry.id, **fields
        )
        return entry

    # -- verification and messages ------------------------------------------------------

    def _verify(self, view: CycleView, configs: Mapping[str, TopupConfig]) -> None:
        snaps = {snap.account: snap for snap in view.snapshots}
        now = self.clock()
        for entry in self.ledger.awaiting_verification():
            before = entry.balance_before
            if before is None:
                continue
            seen = [
                b.balance
                for at, b in self.store.balance_samples(entry.account, entry.created_at)
                if at > entry.created_at
            ]
            snap = snaps.get(entry.account)
            if snap is not None and snap.balance is not None and view.at > entry.created_at:
                seen.append(snap.balance.balance)
            if any(value - before >= entry.amount * REFLECTED_SHARE for value in seen):
                self.ledger.set_verify(entry.id, VerifyState.OK)
                log.info(
                    "topup.verified",
                    entry=entry.id,
                    account=entry.account,
                    amount=str(entry.amount),
                )
                continue
            config = configs.get(entry.account)
            within = config.verify_within if config is not None else TopupConfig().verify_within
            if now >= (entry.finished_at or entry.created_at) + within:
                highest = max(seen, default=None)
                note = (
                    f"balance before {money(before, entry.currency)}, highest seen within "
                    f"{format_duration(within)}: "
                    + (money(highest, entry.currency) if highest is not None else "no reading")
                )
                self.ledger.set_verify(entry.id, VerifyState.MISSING, note=note)
                log.error(
                    "topup.not_reflected",
                    entry=entry.id,
                    account=entry.account,
                    amount=str(entry.amount),
                )

    def announcements(
        self, rules: Sequence[Rule], configs: Mapping[str, TopupConfig]
    ) -> list[Outgoing]:
        """Messages for every entry whose notification is owed, with its rule's routes."""
        routes = {rule.name: rule.routes for rule in rules}
        now = self.clock()
        out: list[Outgoing] = [(m, ()) for m in self._notices(configs)]
        self._announced = []
        for entry in self.ledger.to_announce():
            config = configs.get(entry.account)
            caps = Caps.of(config) if config is not None else None
            lookback = caps.lookback if caps is not None else MONTH
            entries = self.ledger.entries(account=entry.account, since=now - lookback)
            message = render_entry(entry, caps, usage(entries, now))
            out.append((message, routes.get(entry.rule, ())))
            self._announced.append(entry.id)
        return out

    def _notices(self, configs: Mapping[str, TopupConfig]) -> list[Message]:
        """The lost-state alert and the fresh-state warning, each once (to the default
        route); the fresh one only where some account pays for real."""
        self._noticed = []
        guard = self.ledger.guard()
        out = []
        if guard.lost is not None and self.ledger.notice_due(LOST_KEY):
            out.append(render_state_lost(guard.lost.found, str(self.store.path)))
            self._noticed.append(LOST_KEY)
        paying = any(config.enabled for config in configs.values())
        if guard.fresh_since is not None and paying and self.ledger.notice_due(FRESH_KEY):
            out.append(render_fresh_state(guard.fresh_since, str(self.store.path)))
            self._noticed.append(FRESH_KEY)
        return out


def render_state_lost(found: str, path: str) -> Message:
    """The critical alert of a lost state (DESIGN §6): what was found, how to recover."""
    body = [
        f"The state database {path} lost top-up entries: {found}.",
        "Top-ups are refused (reason state-lost) so that nothing is paid twice; alerts keep "
        "working.",
        "To recover: `account-watcher topups` lists the ledger with the restored entries; "
        "check the provider's portal for top-ups of the last 24 h; settle each entry in "
        'doubt with `account-watcher topups settle ID --as succeeded|failed --reason "..."`; '
        "then allow top-ups again with `account-watcher topups resume`.",
    ]
    return _state_message(Severity.CRITICAL, "state lost: top-ups refused", body)


def render_fresh_state(since: datetime, path: str) -> Message:
    """The warning of a state created fresh: check the provider, top-ups wait."""
    body = [
        f"state created fresh at {path} ({when(since)}); if this host had state before, "
        "check the provider for top-ups of the last 24 h.",
        "Top-ups wait one min_interval from then, since this state cannot know about "
        "earlier ones; `account-watcher topups resume` allows them now.",
    ]
    return _state_message(Severity.WARNING, f"state created fresh at {path}", body)


def _state_message(severity: Severity, title: str, body: list[str]) -> Message:
    return Message(
        title=f"[{severity.name}] {title}",
        body="\n".join(body),
        severity=severity,
        rule="watcher-state",
        account="",
        reason=Reason.EVENTS,
        urgent=True,
    )


def _deadline(timeout: float) -> float:
    return time.monotonic() + timeout

"""The top-up executor: the safety protocol of DESIGN §6 around the policy of the core.

The policy (triggers, caps, `decide`, the messages) is pure, in watcher/core/topup.py and
watcher/core/topup_text.py. `TopupActor` runs it: for one trigger it (1) re-reads the
balance and skips when the rule no longer holds at critical, (2) decides on fresh ledger
data and (3) writes the `sending` entry in the same committed transaction, (4) POSTs
once (`Payer.create_topup`, never retried) and (5) records the outcome. At start-up
(`start`) every `sending` entry becomes `unknown` (6). Every outcome becomes a message
(7); succeeded top-ups are verified against later balance samples.

Dry run: with `topup.enabled: false` (the default) or `once --dry-run`, a would-be
top-up is recorded as `dry_run` and notified; nothing is POSTed.

Ownership: only the process holding the state lock (watcher/state/lock.py) reconciles and
pays. An actor built with `owns_state=False` (a `once` while `run` holds the lock) never
touches the ledger's entries: no reconcile, no verification, no POST, no entry, no
message (it records fraud holds: they only stop payments); a
would-be top-up is only logged (`topup.skipped`, why `not_owner`) and listed in
`not_owner_lines()`.

TEST-ONLY: when the environment variable `WATCHER_TEST_CRASH_AT` names a step of the
protocol (`before_ledger_write`, `after_ledger_write`, `after_response`,
`after_outcome_write`), the process exits at once (`os._exit`) when it reaches that step,
so that the crash tests can kill it exactly there. Never set it in production.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import structlog

from watcher.config.settings import AccountConfig, TopupConfig, VonageTopupConfig
from watcher.core.durations import format_duration
from watcher.core.holds import find_firings
from watcher.core.ledger_types import Entry, EntryState, Guard, NewEntry, VerifyState
from watcher.core.lifecycle import Transition
from watcher.core.model import AccountSnapshot, AlertKey, AlertState, Balance
from watcher.core.payment import TopupOutcome, TopupResult
from watcher.core.render import Message
from watcher.core.rules import Rule, RuleResult, money
from watcher.core.topup import (
    MONTH,
    Caps,
    Decision,
    Pay,
    Payer,
    Trigger,
    Wait,
    cap_fields,
    decide,
    find_triggers,
    is_pay,
    still_critical,
    usage,
)
from watcher.core.topup_amount import amount_differs, render_amount_differs
from watcher.core.topup_text import (
    refusal_text,
    render_entry,
    render_fresh_state,
    render_state_lost,
)
from watcher.core.topup_unavailable import judge_unavailable, unavailable_reason
from watcher.providers.errors import ProviderError
from watcher.state.ledger import FRESH_KEY, LOST_KEY, Ledger
from watcher.state.store import Store

log = structlog.get_logger(__name__)

CRASH_ENV = "WATCHER_TEST_CRASH_AT"
"""TEST-ONLY: a protocol step at which the process `os._exit`s (see the module docstring)."""

CRASH_EXIT = 70
CRASH_POINTS = frozenset(
    {"before_ledger_write", "after_ledger_write", "after_response", "after_outcome_write"}
)
REFLECTED_SHARE = Decimal("0.5")
"""A top-up counts as reflected once the balance rose by at least this share of it."""

Outgoing = tuple[Message, tuple[str, ...]]


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
        self._differs: list[Message] = []  # amount mismatches found by the last verification
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
        self._hold(view)  # also without the state lock: a hold only stops payments
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

    def _hold(self, view: CycleView) -> None:
        """Record the firings of `holds_topups` rules (DESIGN §6.3) before any top-up of
        this cycle is decided, so that one held in the same cycle is refused."""
        for firing in find_firings(view.rules, view.transitions, view.alerts, self.clock()):
            self.ledger.holds.fired(firing)

    def _guard(self, account: str, config: TopupConfig) -> Guard:
        return self.ledger.guard(account=account, now=self.clock(), hold_after=config.hold_after)

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

    def unavailable(self, snapshots: Sequence[AccountSnapshot]) -> list[RuleResult]:
        """The built-in `watcher-topup-unavailable` for each account, from its ledger."""
        since = self.clock() - MONTH
        return [
            judge_unavailable(
                s, unavailable_reason(self.ledger.entries(account=s.account, since=since))
            )
            for s in snapshots
        ]

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
            guard=self._guard(account, config),
            dry_run=dry,
        )
        if not isinstance(pre, Pay):
            return self._not_paying(trigger, pre, config, dry)
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
            return self._dry_run(trigger, new, config)
        return await self._pay(trigger, new, config, payer, http_timeout)

    async def _fresh_balance(
        self, account: str, payer: Payer, http_timeout: float, fields: Mapping[str, str]
    ) -> Balance | None:
        try:
            return await payer.get_balance(deadline=_deadline(http_timeout))
        except ProviderError as exc:
            log.warning(
                "topup.skipped",
                account=account,
                why="balance_unreadable",
                error=str(exc),
                **fields,
            )
            return None

    def _dry_run(self, trigger: Trigger, new: NewEntry, config: TopupConfig) -> Entry | None:
        now, caps = self.clock(), Caps.of(config)
        entries = self.ledger.entries(account=new.account, since=now - caps.lookback)
        guard = self._guard(new.account, config)
        decision = decide(trigger.kind, caps, entries, now, guard=guard, dry_run=True)
        if not isinstance(decision, Pay):
            return self._not_paying(trigger, decision, config, True)
        entry = self.ledger.add(new, EntryState.DRY_RUN, now)
        log.info(
            "topup.dry_run", account=new.account, entry=entry.id, **cap_fields(caps, decision.usage)
        )
        return entry

    async def _pay(
        self,
        trigger: Trigger,
        new: NewEntry,
        config: TopupConfig,
        payer: Payer,
        http_timeout: float,
    ) -> Entry | None:
        now, caps = self.clock(), Caps.of(config)
        self._checkpoint("before_ledger_write")
        decision, entry = self.ledger.begin_if(  # 2 + 3: decide and write `sending`, one commit
            lambda entries, guard: decide(trigger.kind, caps, entries, now, guard=guard),
            is_pay,
            new,
            account=new.account,
            since=now - caps.lookback,
            now=now,
            hold_after=config.hold_after,  # the fraud hold is judged in the same transaction
        )
        if entry is None:
            return self._not_paying(trigger, decision, config, False)
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
        self, trigger: Trigger, decision: Decision, config: TopupConfig, dry: bool
    ) -> Entry | None:
        if isinstance(decision, Wait | Pay):
            return None
        account, rule, caps = trigger.account, trigger.rule.name, Caps.of(config)
        fields = cap_fields(caps, decision.usage)
        if self.ledger.refusal_noted(account, rule, trigger.episode):
            log.debug(
                "topup.refused", account=account, why=decision.why.value, noted=True, **fields
            )
            return None
        currency = trigger.snapshot.balance.currency if trigger.snapshot.balance else ""
        text = refusal_text(decision, caps, currency, guard=self._guard(account, config))
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
                self._check_amount(entry, max(seen) - before, configs.get(entry.account))
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

    def _check_amount(self, entry: Entry, rose: Decimal, config: TopupConfig | None) -> None:
        """Vonage adds an amount of its own choosing: a rise far from the configured one
        is alerted once, at verification (DESIGN §6.4)."""
        if not isinstance(config, VonageTopupConfig) or not amount_differs(entry.amount, rose):
            return
        log.warning("topup.amount_differs", entry=entry.id, account=entry.account, rose=str(rose))
        self._differs.append(render_amount_differs(entry, rose))

    def announcements(
        self, rules: Sequence[Rule], configs: Mapping[str, TopupConfig]
    ) -> list[Outgoing]:
        """Messages for every entry whose notification is owed, with its rule's routes."""
        routes = {rule.name: rule.routes for rule in rules}
        now = self.clock()
        out: list[Outgoing] = [(m, ()) for m in self._notices(configs)]
        out += [(m, routes.get(m.rule, ())) for m in self._differs]
        self._differs = []
        self._announced = []
        for entry in self.ledger.to_announce():
            config = configs.get(entry.account)
            caps = Caps.of(config) if config is not None else None
            lookback = caps.lookback if caps is not None else MONTH
            entries = self.ledger.entries(account=entry.account, since=now - lookback)
            provider = "vonage" if isinstance(config, VonageTopupConfig) else "telnyx"
            message = render_entry(entry, caps, usage(entries, now), provider=provider)
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
            out.append(render_state_lost(guard.lost.found, self.store.where))
            self._noticed.append(LOST_KEY)
        paying = any(config.enabled for config in configs.values())
        if guard.fresh_since is not None and paying and self.ledger.notice_due(FRESH_KEY):
            out.append(render_fresh_state(guard.fresh_since, self.store.where))
            self._noticed.append(FRESH_KEY)
        return out


def _deadline(timeout: float) -> float:
    return time.monotonic() + timeout

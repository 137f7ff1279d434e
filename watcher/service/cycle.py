"""The daemon's poll cycle (DESIGN §9): values passed from step to step.

`Daemon.cycle()` takes `now` once, collects every account through its `Provider`,
evaluates (pure), decides (pure, `watcher.core.decide`), acts (top-ups), commits in one
transaction, delivers the outbox and returns an immutable `CycleResult`. The fixed-rate
loop around it is `watcher.service.supervisor`; what it is built from, `wiring`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import structlog

from watcher.core.decide import Decision, Routed, decide, route
from watcher.core.lifecycle import Transition
from watcher.core.model import (
    AccountSnapshot,
    AlertKey,
    AlertState,
    Balance,
    SourceError,
    SourceName,
)
from watcher.core.render import Message
from watcher.core.rules import (
    Finding,
    RuleResult,
    evaluate,
    longest_lookback,
    longest_window,
    ratio_floors,
    ratio_windows,
    sources_needed,
)
from watcher.core.spend import charges_queries
from watcher.notify.delivery import Delivery
from watcher.notify.flush import Policy as FlushPolicy
from watcher.notify.flush import flush
from watcher.notify.outbox import Outbox
from watcher.providers import registry
from watcher.providers.base import Collected, Needs, Provider
from watcher.service.commit import write_collected
from watcher.service.digest import DigestJob
from watcher.service.discovery import Discovery
from watcher.service.topup import CycleView, TopupActor
from watcher.service.wiring import Runtime, Wiring, close_providers
from watcher.state.acks import Acks
from watcher.state.silences import Silences
from watcher.state.snapshot import CollectView
from watcher.state.store import Store

if TYPE_CHECKING:
    from watcher.core.payment import TopupResult
    from watcher.service.metrics import Metrics

log = structlog.get_logger(__name__)

PRUNE_EVERY = timedelta(hours=1)
ACCOUNTS_PER_REQUEST = 3
"""Accounts collected at the same time per request allowed in flight to a host
(`poll.concurrency`): each reads up to three sources at once, and a request waits for a
place under its host's bound, so the bound, not this, limits the requests."""
FAST_SOURCES = (SourceName.BALANCE, SourceName.AUDIT, SourceName.WEBHOOKS)
"""The sources whose cursors and resume points every cycle reads (`CollectView`)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class CycleResult:
    """What one cycle did, for the summary of `once`, the log, `STATUS=` and metrics.

    - `collected`: per account, what was read (webhook pages already written dropped).
    - `transitions`, `alerts` (every state after the cycle), `findings` (by key).
    - `messages`: every message of the cycle (top-up outcomes first), routed or not.
    - `deliveries`: the outbox flush's results; `backlog` targets waiting for a retry;
      `gave_up` targets dropped after `notify.give_up_after`.
    - `duration_s` its wall time, `cpu_s` the CPU time the process used meanwhile (all
      threads: the web server's requests too).
    """

    at: datetime
    duration_s: float = 0.0
    cpu_s: float = 0.0
    requests: int = 0
    collected: Sequence[Collected] = ()
    transitions: Sequence[Transition] = ()
    alerts: Mapping[AlertKey, AlertState] = field(default_factory=dict)
    findings: Mapping[AlertKey, Finding] = field(default_factory=dict)
    messages: Sequence[Message] = ()
    deliveries: Sequence[Delivery] = ()
    backlog: int = 0
    gave_up: int = 0

    @property
    def source_errors(self) -> list[tuple[str, SourceName, str]]:
        """(account, source, message) of every source that failed, sorted per account."""
        return [
            (c.account, source, failure.message)
            for c in self.collected
            for source, failure in sorted(c.failures.items())
        ]

    @property
    def firing(self) -> int:
        return sum(1 for s in self.alerts.values() if s.fired_at is not None)

    # -- plain facts for watcher.service.metrics (its `CycleFacts` protocol) ---------

    @property
    def source_states(self) -> list[tuple[str, str, bool]]:
        up = [(c.account, str(s), True) for c in self.collected for s in c.succeeded]
        return up + [(c.account, str(s), False) for c in self.collected for s in c.failures]

    @property
    def balances(self) -> dict[str, Balance]:
        return {c.account: c.snapshot.balance for c in self.collected if c.snapshot.balance}

    @property
    def alert_phases(self) -> list[tuple[str, str]]:
        return [(s.key.rule, s.phase.value) for s in self.alerts.values()]

    @property
    def delivery_results(self) -> list[tuple[str, bool]]:
        return [(d.route, d.ok) for d in self.deliveries]


@dataclass(frozen=True, slots=True)
class _Delivered:
    deliveries: tuple[Delivery, ...]
    backlog: int
    gave_up: int


class _Payer:
    """A provider as the top-up executor's `Payer` (its interface stays as it is)."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    async def get_balance(self, *, deadline: float | None = None) -> Balance:
        return await self.provider.read_balance(deadline=deadline)

    async def create_topup(self, amount: Decimal, *, timeout: float) -> TopupResult:  # noqa: ASYNC109
        return await self.provider.pay(amount, timeout=timeout)


def needs_of(runtime: Runtime) -> Needs:
    """What the loaded rules need polled."""
    rules = runtime.rules
    return Needs(
        sources_needed(rules),
        ratio_windows(rules),
        longest_window(rules),
        history=longest_lookback(rules),
        ratio_floors=ratio_floors(rules),
        charges=charges_queries(rules),
    )


class Daemon:
    """Runs cycles against the configured accounts.

    In: the wiring (runtime, notifier, one provider per account, decide policy; a reload
    replaces it whole, between cycles), an open store, a clock (the only place that reads
    the time), optional metrics, `dry_run` (never pay) and `owns_state` (this process
    holds the state lock; else top-ups are only logged, the ledger is not touched).
    """

    def __init__(
        self,
        wiring: Wiring,
        store: Store,
        *,
        clock: Callable[[], datetime] = utcnow,
        metrics: Metrics | None = None,
        dry_run: bool = False,
        owns_state: bool = True,
    ) -> None:
        self.wiring = wiring
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.first_start = store.first_start(clock())
        self.outbox = Outbox(store)
        if owns_state:  # the holder of the state: a dead process's claims need not expire
            self.outbox.release_dead_claims()
        self.silences = Silences(store)
        self.acks = Acks(store)
        self.digest = DigestJob(store, self.outbox)
        self.discovery = Discovery(store)  # managed accounts, subaccounts (DESIGN §10)
        self.topups = TopupActor(store, clock=clock, dry_run=dry_run, owns_state=owns_state)
        self.topups.start()  # DESIGN §6.6: every `sending` entry becomes `unknown` (owner only)
        self._last_prune: datetime | None = None
        self._flushed_since_start = False  # the first flush sends every pending target

    @property
    def runtime(self) -> Runtime:
        return self.wiring.runtime

    def take_lead(self) -> None:
        """Become the owner of a shared state (a new leader, DESIGN §10): as at the start
        of an owner, dead claims are freed and every `sending` entry becomes `unknown`
        before this instance pays or delivers anything."""
        self.topups.owns_state = True
        self.outbox.release_dead_claims()
        self.topups.start()
        self._flushed_since_start = False

    def stand_down(self) -> None:
        """No longer the owner: top-ups are only logged from now on."""
        self.topups.owns_state = False

    @property
    def providers(self) -> Mapping[str, Provider]:
        return self.wiring.providers

    async def cycle(self, *, flush_all: bool = False) -> CycleResult:
        """One cycle, in the order of DESIGN §9; out: what it did.

        1. take `now` once (and the wiring: a reload swaps it between cycles)
        2. collect every account's needed sources, concurrently and bounded (a failed
           source is a recorded failure)
        3. evaluate rules × snapshots (pure)
        4. decide (pure): new states, transitions, top-up intents, routed messages
        5. act: top-ups under the safety protocol; their messages routed
        6. commit, one transaction: what the sources read (cursors, resume points,
           samples, seen ids, failed deliveries, source health), alert states, every
           message into the outbox, handled silences, announced acks
        7. deliver: flush the outbox (everything with `flush_all` and in the first cycle)
        8. report: one `cycle.finished` log event and the metrics
        """
        wiring, now = self.wiring, self.clock()  # 1
        started, started_cpu = time.monotonic(), time.process_time()
        deadline = started + wiring.runtime.interval.total_seconds()
        wiring, gone = await self.discovery.extend(wiring, now, deadline)  # 1: + discovered
        requests_before = _requests(wiring) - self.discovery.requests
        collected = await self._collect(wiring, now, deadline)  # 2
        snapshots = [c.snapshot for c in collected]
        results = [
            *_evaluate(wiring.runtime, snapshots, now),
            *self.topups.unavailable(snapshots),
        ]  # 3
        decision = self._decide(wiring, results, snapshots, now)  # 4
        messages = [*await self._act(wiring, decision, snapshots, now), *decision.messages]  # 5
        messages += gone  # discovered accounts no longer listed, reported once
        _log_routing(decision, messages)
        self._commit(wiring, collected, decision, messages, now, time.monotonic() - started)  # 6
        delivered = await self._deliver(wiring, now, flush_all=flush_all)  # 7
        requests = _requests(wiring) - requests_before
        clocks = (started, started_cpu)
        result = _result(now, clocks, requests, collected, decision, messages, delivered)
        self._report(result)  # 8
        return result

    # -- 2 collect -------------------------------------------------------------------

    async def _collect(self, wiring: Wiring, now: datetime, deadline: float) -> list[Collected]:
        needs = needs_of(wiring.runtime)
        bound = asyncio.Semaphore(
            ACCOUNTS_PER_REQUEST * wiring.runtime.loaded.settings.poll.concurrency
        )

        webhooks = SourceName.WEBHOOKS in needs.sources
        view = CollectView(self.store, FAST_SOURCES, now - needs.window if webhooks else None)

        async def one(provider: Provider) -> Collected:
            async with bound:
                return await provider.collect(
                    needs, view, now, first_start=self.first_start, deadline=deadline
                )

        collected = await asyncio.gather(*(one(p) for p in wiring.providers.values()))
        failing_since = self.store.failing_since()
        return [_with_errors(self.discovery.annotate(c), failing_since, now) for c in collected]

    # -- 4 decide ------------------------------------------------------------------

    def _decide(
        self,
        wiring: Wiring,
        results: Sequence[RuleResult],
        snapshots: Sequence[AccountSnapshot],
        now: datetime,
    ) -> Decision:
        """The pure decide step on the stored alert states, silences and acks."""
        return decide(
            self.store.load_alerts(),
            results,
            snapshots,
            now,
            wiring.policy,
            active=self.silences.active(now),
            ended=self.silences.ended_unhandled(now),
            acks=self.acks.unexpired(now),
        )

    # -- 5 act -----------------------------------------------------------------------

    async def _act(
        self,
        wiring: Wiring,
        decision: Decision,
        snapshots: Sequence[AccountSnapshot],
        now: datetime,
    ) -> list[Routed]:
        """Top-ups under the safety protocol of DESIGN §6 (watcher/service/topup.py); their
        outcomes, refusals, dry runs and alerts come back as routed messages."""
        settings = wiring.runtime.loaded.settings
        view = CycleView(
            at=now,
            rules=wiring.runtime.rules,
            accounts=settings.accounts,
            transitions=decision.transitions,
            alerts=decision.states,
            snapshots=snapshots,
            clients={name: _Payer(p) for name, p in wiring.providers.items()},
            timeout=settings.poll.timeout.total_seconds(),
        )
        outgoing = await self.topups.act(view)
        if self.metrics is not None:
            for entry in self.topups.recorded:
                self.metrics.count_topup(entry.account, entry.state.value)
        return [route(message, routes, wiring.policy, now) for message, routes in outgoing]

    # -- 6 commit --------------------------------------------------------------------

    def _commit(
        self,
        wiring: Wiring,
        collected: Sequence[Collected],
        decision: Decision,
        messages: Sequence[Routed],
        now: datetime,
        duration_s: float,
    ) -> None:
        errors = sum(len(c.failures) for c in collected)
        with self.store.transaction():
            self.store.fenced()  # a deposed leader commits nothing it decided (DESIGN §10)
            write_collected(self.store, collected, now)
            self.store.save_alerts(decision.states)
            for routed in messages:
                targets = [t for r in routed.routes for t in wiring.notifier.targets(r)]
                self.outbox.enqueue(routed.message, targets, now)
            self.topups.commit()  # top-up messages are in the outbox now
            self.silences.mark_handled(decision.silences_ended)
            self.acks.mark_announced(decision.acks_announced)
            self.digest.commit(wiring, decision.transitions, now)  # history; the daily digest
            self.discovery.commit(now)  # the known set of discovered accounts
            self.store.record_cycle(now, duration_s=duration_s, errors=errors)
        if self._last_prune is None or now - self._last_prune >= PRUNE_EVERY:
            self._prune(now)

    def _prune(self, now: datetime) -> None:
        deleted = self.store.prune(now)
        deleted["outbox_messages"] = self.outbox.prune(now)
        deleted["silences"] = self.silences.prune(now)
        deleted["acks"] = self.acks.prune(now)
        deleted["digest"] = self.digest.prune(now)
        self._last_prune = now
        log.debug("store.pruned", **deleted)

    # -- 7 deliver -------------------------------------------------------------------

    async def _deliver(self, wiring: Wiring, now: datetime, *, flush_all: bool) -> _Delivered:
        notify = wiring.runtime.loaded.settings.notify
        policy = FlushPolicy(
            give_up_after=notify.give_up_after,
            failures_before_fallback=notify.failures_before_fallback,
            fallbacks={n: r.fallback for n, r in notify.routes.items() if r.fallback},
        )
        everything = flush_all or not self._flushed_since_start
        result = await flush(
            self.outbox, wiring.notifier, now, policy, everything=everything, clock=self.clock
        )
        self._flushed_since_start = True
        deliveries = [Delivery(i.route, i.url_masked, True) for i in result.delivered]
        deliveries += [delivery for _, delivery in result.failed]
        return _Delivered(tuple(deliveries), self.outbox.backlog(), len(result.expired))

    # -- 8 report --------------------------------------------------------------------

    def _report(self, result: CycleResult) -> None:
        log.info(
            "cycle.finished",
            duration_s=round(result.duration_s, 3),
            cpu_s=round(result.cpu_s, 4),
            requests=result.requests,
            source_errors=len(result.source_errors),
            transitions=len(result.transitions),
            firing=result.firing,
            delivered=sum(1 for d in result.deliveries if d.ok),
            failed=sum(1 for d in result.deliveries if not d.ok),
            backlog=result.backlog,
        )
        if self.metrics is not None:
            self.metrics.observe_cycle(result)

    async def aclose(self) -> None:
        await close_providers(self.providers)
        await self.discovery.aclose()


def _evaluate(
    runtime: Runtime, snapshots: Sequence[AccountSnapshot], now: datetime
) -> list[RuleResult]:
    after = runtime.loaded.settings.poll.source_down_after
    offers = registry.capabilities()  # a rule is judged only where the provider offers it
    return evaluate(runtime.rules, snapshots, now, source_down_after=after, capabilities=offers)


def _result(
    now: datetime,
    started: tuple[float, float],
    requests: int,
    collected: Sequence[Collected],
    decision: Decision,
    messages: Sequence[Routed],
    delivered: _Delivered,
) -> CycleResult:
    """The cycle's immutable result (failed deliveries already written are dropped);
    `started`: the monotonic and process clocks at its start."""
    return CycleResult(
        at=now,
        duration_s=time.monotonic() - started[0],
        cpu_s=time.process_time() - started[1],
        requests=requests,
        collected=tuple(replace(c, webhook_failures=()) for c in collected),
        transitions=decision.transitions,
        alerts=decision.states,
        findings=decision.findings,
        messages=tuple(m.message for m in messages),
        deliveries=delivered.deliveries,
        backlog=delivered.backlog,
        gave_up=delivered.gave_up,
    )


def _requests(wiring: Wiring) -> int:
    return sum(provider.requests_sent for provider in wiring.providers.values())


def _with_errors(
    collected: Collected, failing_since: Mapping[tuple[str, str], datetime], now: datetime
) -> Collected:
    """The snapshot's `errors` from the provider's failures and the stored health."""
    if not collected.failures:
        return collected
    errors = {
        source: SourceError(
            source,
            failure.message,
            auth=failure.auth,
            failing_since=failing_since.get((collected.account, str(source)), now),
        )
        for source, failure in collected.failures.items()
    }
    return replace(collected, snapshot=replace(collected.snapshot, errors=errors))


def _log_routing(decision: Decision, messages: Sequence[Routed]) -> None:
    """The decisions not to notify, as log events (silenced, muted, no route); acks
    announced."""
    for ack in decision.acks_announced:
        log.info("alert.acked", alert=str(ack.key), by=ack.by, until=ack.expires_at.isoformat())
    for held in decision.held:
        if held.silence is not None:
            log.info(
                "notify.silenced",
                alert=str(held.key),
                silence=held.silence,
                reason=held.reason.value,
            )
        else:
            log.info("notify.muted", alert=str(held.key), reason=held.reason.value)
    for routed in messages:
        message = routed.message
        if routed.muted:
            log.info("notify.muted", routes=list(routed.muted), title=message.title)
        if not routed.routes and not routed.muted:
            log.warning("notify.no_route", rule=message.rule, title=message.title)

"""The caps hold whatever happens: a property test of the decision and the ledger.

For any sequence of balances, rule firings, API outcomes, crashes at any step of the
protocol (then a restart), pauses and human settlements, hypothesis checks that
- the `sending` + `unknown` + `succeeded` amounts in any rolling 24 h (and 30 days) never
  exceed `max_per_day` (`max_per_month`),
- the money actually charged in any rolling 24 h never exceeds `max_per_day`,
- no two POSTs are closer than `min_interval`, and every POST has its ledger entry.
The executor is the real one (`TopupActor.attempt`) on a real store in a temporary
directory; the payer is a fake that scripts each POST's outcome; time is a parameter.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from conftest import established_state
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher.config.settings import TopupConfig
from watcher.core.model import AccountSnapshot, Balance
from watcher.core.payment import TopupOutcome, TopupResult
from watcher.core.rules import BalanceRule
from watcher.core.topup import Trigger, TriggerKind
from watcher.service.topup import CRASH_POINTS, TopupActor
from watcher.state.ledger import COUNTED, EntryState, Ledger
from watcher.state.store import StateTarget, Store, open_store

START = datetime(2026, 11, 1, tzinfo=UTC)
RULE = BalanceRule.model_validate(
    {"name": "low", "kind": "balance", "below": {"critical": "50"}, "topup": True}
)
OUTCOMES = ("ok", "refused", "unknown_charged", "unknown_not", "crash_charged", "crash_not")
TMP = Path("/dev/shm") if Path("/dev/shm").is_dir() else None  # cheap fsync


class Crash(BaseException):
    """The process dies here (like SIGKILL: nothing after it runs)."""


@dataclass
class World:
    """The fake Telnyx account: who was charged when, and what the next POST does."""

    now: datetime = START
    balance: Decimal = Decimal("40.00")
    outcome: str = "ok"
    posts: list[datetime] = field(default_factory=list)
    charges: list[tuple[datetime, Decimal]] = field(default_factory=list)
    charged_entry: dict[int, bool] = field(default_factory=dict)
    ledger: Ledger | None = None

    def clock(self) -> datetime:
        return self.now

    async def get_balance(self, *, deadline: float | None = None) -> Balance:
        return Balance(self.balance, self.balance, Decimal(0), Decimal(0), "USD")

    async def create_topup(self, amount: Decimal, *, timeout: float) -> TopupResult:
        assert self.ledger is not None
        in_flight = [e for e in self.ledger.entries() if e.state is EntryState.SENDING]
        assert in_flight, "a POST without a durable `sending` entry"
        self.posts.append(self.now)
        charged = self.outcome in ("ok", "unknown_charged", "crash_charged")
        self.charged_entry[in_flight[-1].id] = charged
        if charged:
            self.charges.append((self.now, amount))
            self.balance += amount
        if self.outcome.startswith("crash"):
            raise Crash
        if self.outcome == "ok":
            return TopupResult(TopupOutcome.SUCCEEDED, transaction_id="t", status=200)
        if self.outcome == "refused":
            return TopupResult(TopupOutcome.FAILED, status=422, error="HTTP 422")
        return TopupResult(TopupOutcome.UNKNOWN, error="timed out")


@dataclass(frozen=True)
class Step:
    minutes: int
    balance: Decimal
    kind: TriggerKind
    outcome: str
    crash_at: str | None
    settle: bool
    pause: bool


steps = st.builds(
    Step,
    minutes=st.integers(min_value=0, max_value=8 * 60),
    balance=st.sampled_from([Decimal("20.00"), Decimal("40.00"), Decimal("80.00")]),
    kind=st.sampled_from(list(TriggerKind)),
    outcome=st.sampled_from(OUTCOMES),
    crash_at=st.none() | st.sampled_from(sorted(CRASH_POINTS)),
    settle=st.booleans(),
    pause=st.integers(min_value=0, max_value=9).map(lambda n: n == 0),
)
configs = st.builds(
    TopupConfig,
    enabled=st.just(True),
    amount=st.sampled_from([Decimal("100.00"), Decimal("75.50")]),
    max_per_day=st.sampled_from([Decimal("100.00"), Decimal("250.00"), Decimal("300.00")]),
    max_per_month=st.sampled_from([None, Decimal("400.00"), Decimal("1000.00")]),
    min_interval=st.sampled_from([timedelta(minutes=m) for m in (1, 30, 60, 180)]),
)


def actor(store: Store, world: World, crash_at: list[str | None]) -> TopupActor:
    def checkpoint(point: str) -> None:
        if crash_at and crash_at[0] == point:
            raise Crash

    return TopupActor(store, clock=world.clock, checkpoint=checkpoint)


async def play(store: Store, config: TopupConfig, script: list[Step]) -> World:
    world = World(ledger=Ledger(store))
    ledger = world.ledger
    assert ledger is not None
    crash_at: list[str | None] = [None]
    executor = actor(store, world, crash_at)
    executor.start()
    for number, step in enumerate(script):
        world.now += timedelta(minutes=step.minutes)
        world.balance = min(world.balance, step.balance)  # money is spent
        world.outcome = step.outcome
        crash_at[0] = step.crash_at
        if step.pause:
            if ledger.paused():
                ledger.resume()
            else:
                ledger.pause(by="ops", reason="test", now=world.now)
        snapshot = AccountSnapshot("main", balance=await world.get_balance())
        trigger = Trigger("main", RULE, step.kind, f"episode-{number // 3}", snapshot)
        try:
            await executor.attempt(trigger, config, world, http_timeout=1.0)
        except Crash:
            executor = actor(store, world, crash_at)  # restart
            executor.start()
        if step.settle:
            for entry in ledger.entries():
                if entry.state is EntryState.UNKNOWN:
                    paid = world.charged_entry.get(entry.id, False)  # the portal tells the truth
                    state = EntryState.SUCCEEDED if paid else EntryState.FAILED
                    ledger.settle(entry.id, state, by="ops", reason="portal", now=world.now)
    return world


def window_sums(points: list[tuple[datetime, Decimal]], width: timedelta) -> Decimal:
    """The largest sum of amounts in any half-open window (t - width, t]."""
    return max(
        (sum((a for at, a in points if end - width < at <= end), Decimal(0)) for end, _ in points),
        default=Decimal(0),
    )


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs, script=st.lists(steps, min_size=1, max_size=30))
def test_caps_and_interval_hold_for_any_history(config: TopupConfig, script: list[Step]) -> None:
    with (
        tempfile.TemporaryDirectory(dir=TMP) as tmp,
        Store.open(established_state(Path(tmp) / "s.db")) as store,
    ):
        world = asyncio.run(play(store, config, script))
        entries = Ledger(store).entries()
    counted = [(e.created_at, e.amount) for e in entries if e.state in COUNTED]
    assert window_sums(counted, timedelta(hours=24)) <= config.max_per_day
    assert window_sums(world.charges, timedelta(hours=24)) <= config.max_per_day
    if config.max_per_month is not None:
        assert window_sums(counted, timedelta(days=30)) <= config.max_per_month
        assert window_sums(world.charges, timedelta(days=30)) <= config.max_per_month
    for earlier, later in zip(world.posts, world.posts[1:], strict=False):
        assert later - earlier >= config.min_interval
    posted = [e for e in entries if e.state is not EntryState.DRY_RUN and e.posted_at]
    assert len(world.posts) <= len(posted)
    assert sorted(world.posts) == world.posts
    assert not any(e.state is EntryState.SENDING for e in entries), "restarts reconcile"


def test_the_property_test_does_pay_and_refuse(state_target: StateTarget) -> None:
    """The generated histories reach the interesting states (guards the test itself)."""
    config = TopupConfig(enabled=True, amount=Decimal("100.00"), max_per_day=Decimal("200.00"))
    script = [
        Step(0, Decimal("40.00"), TriggerKind.START, "ok", None, False, False),
        Step(61, Decimal("40.00"), TriggerKind.STAY, "unknown_not", None, False, False),
        Step(61, Decimal("40.00"), TriggerKind.STAY, "ok", None, False, False),
        Step(0, Decimal("40.00"), TriggerKind.START, "ok", None, True, False),
        Step(61, Decimal("40.00"), TriggerKind.STAY, "crash_charged", None, False, False),
    ]
    with open_store(established_state(state_target)) as store:
        world = asyncio.run(play(store, config, script))
        states = [e.state for e in Ledger(store).entries()]
    assert states == [
        EntryState.SUCCEEDED,
        EntryState.FAILED,  # unknown, settled as failed by the human: frees the cap
        EntryState.REFUSED,  # max_per_day (said once for this episode)
        EntryState.REFUSED,  # max_per_day again, at a new episode's start
        EntryState.UNKNOWN,  # the process died during the POST; reconciled at restart
    ]
    assert len(world.posts) == 3

"""No payment while a hold is active: a property test of the fraud hold (DESIGN §6.3).

For any sequence of cycles — a `holds_topups` audit rule firing, a hold set by hand,
releases, critical credit (a top-up due), and a hold set by hand in the middle of a
top-up (while the executor re-reads the balance, between its first decision and the
transaction that writes `sending`) — hypothesis checks that no POST is ever made while
a hold is active. Which holds are active is judged by an oracle written here, apart
from watcher/core/holds.py. The executor is the real one (`TopupActor.act`, the daemon's
top-up step) on a real store in a temporary directory; time is a parameter.
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

from watcher.config.accounts import TelnyxAccountConfig, TopupConfig
from watcher.core.lifecycle import Reason, Transition
from watcher.core.model import AccountSnapshot, AlertKey, AlertState, AuditEvent, Balance, Phase
from watcher.core.model import Severity as Sev
from watcher.core.payment import TopupOutcome, TopupResult
from watcher.core.rules import AuditRule, BalanceRule, Finding
from watcher.service.topup import CycleView, TopupActor
from watcher.state.ledger import Ledger
from watcher.state.store import StateTarget, Store, open_store

START = datetime(2026, 11, 1, tzinfo=UTC)
HOLD_AFTER = timedelta(hours=2)
LOW = BalanceRule.model_validate(
    {"name": "low", "kind": "balance", "below": {"critical": "50"}, "topup": True}
)
AUDIT = AuditRule.model_validate({"name": "change", "kind": "audit", "holds_topups": True})
CONFIG = TopupConfig(
    enabled=True,
    amount=Decimal("10.00"),
    max_per_day=Decimal("100000.00"),
    min_interval=timedelta(minutes=30),
    hold_after=HOLD_AFTER,
)
ACCOUNT = TelnyxAccountConfig(name="main", topup=CONFIG)
TMP = Path("/dev/shm") if Path("/dev/shm").is_dir() else None  # cheap fsync


@dataclass
class Oracle:
    """Which holds are active, judged from the story alone: a rule's hold lasts
    `HOLD_AFTER` from its firing, one by hand until a release; a release lifts all."""

    live: list[tuple[str, datetime]] = field(default_factory=list)

    def active(self, now: datetime) -> bool:
        return any(kind == "manual" or now < at + HOLD_AFTER for kind, at in self.live)

    def release(self, now: datetime) -> None:
        self.live = []


@dataclass
class World:
    """The account (its balance, the POSTs it received) and the clock."""

    ledger: Ledger
    oracle: Oracle = field(default_factory=Oracle)
    now: datetime = START
    race: bool = False
    posts: list[tuple[datetime, bool]] = field(default_factory=list)  # (when, held then)

    def clock(self) -> datetime:
        return self.now

    async def get_balance(self, *, deadline: float | None = None) -> Balance:
        if self.race:  # `topups hold` lands while the executor re-reads the balance
            self.ledger.holds.hold("main", by="ops", reason="race", now=self.now)
            self.oracle.live.append(("manual", self.now))
        return Balance(Decimal("40.00"), Decimal("40.00"), Decimal(0), Decimal(0), "USD")

    async def create_topup(self, amount: Decimal, *, timeout: float) -> TopupResult:
        self.posts.append((self.now, self.oracle.active(self.now)))
        return TopupResult(TopupOutcome.SUCCEEDED, transaction_id="t", status=200)


@dataclass(frozen=True)
class Step:
    minutes: int
    fire: bool
    manual: bool
    release: bool
    critical: bool
    race: bool


steps = st.builds(
    Step,
    minutes=st.sampled_from([0, 1, 29, 31, 59, 61, 119, 120, 121, 240]),  # around the windows
    fire=st.integers(min_value=0, max_value=4).map(lambda n: n == 0),
    manual=st.integers(min_value=0, max_value=9).map(lambda n: n == 0),
    release=st.integers(min_value=0, max_value=4).map(lambda n: n == 0),
    critical=st.integers(min_value=0, max_value=3).map(lambda n: n > 0),
    race=st.integers(min_value=0, max_value=9).map(lambda n: n == 0),
)


def view(world: World, number: int, step: Step, since: datetime | None) -> CycleView:
    """One cycle as the daemon hands it over: the audit rule's events (when it fires)
    and the low-credit alert firing at critical since `since` (when critical)."""
    transitions = []
    alerts = {}
    if step.fire:
        event = AuditEvent(id=f"ev{number}", created_at=world.now, change_made_by="intruder")
        finding = Finding(AlertKey("change", "main", ""), Sev.CRITICAL, events=(event,))
        transitions.append(
            Transition(Reason.EVENTS, finding.key, Sev.CRITICAL, world.now, None, finding)
        )
    if since is not None:
        key = AlertKey("low", "main", "")
        alerts[key] = AlertState(key, Phase.FIRING, Sev.CRITICAL, since, since)
        if since == world.now:
            transitions.append(Transition(Reason.FIRING, key, Sev.CRITICAL, world.now, None))
    balance = Balance(Decimal("40.00"), Decimal("40.00"), Decimal(0), Decimal(0), "USD")
    return CycleView(
        at=world.now,
        rules=[LOW, AUDIT],
        accounts=[ACCOUNT],
        transitions=transitions,
        alerts=alerts,
        snapshots=[AccountSnapshot("main", balance=balance)],
        clients={"main": world},
        timeout=1.0,
    )


async def play(store: Store, script: list[Step]) -> World:
    world = World(Ledger(store))
    actor = TopupActor(store, clock=world.clock)
    actor.start()
    since: datetime | None = None
    for number, step in enumerate(script):
        world.now += timedelta(minutes=step.minutes)
        if step.release:
            world.ledger.holds.release(
                "main", by="ops", reason="checked", now=world.now, hold_after=HOLD_AFTER
            )
            world.oracle.release(world.now)
        if step.manual:
            world.ledger.holds.hold("main", by="ops", reason="by hand", now=world.now)
            world.oracle.live.append(("manual", world.now))
        if step.fire:
            world.oracle.live.append(("rule", world.now))
        since = (since or world.now) if step.critical else None
        world.race = step.race and step.critical
        await actor.act(view(world, number, step, since))
        actor.commit()
        world.race = False
    return world


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=st.lists(steps, min_size=1, max_size=30))
def test_no_post_while_a_hold_is_active(script: list[Step]) -> None:
    with (
        tempfile.TemporaryDirectory(dir=TMP) as tmp,
        Store.open(established_state(Path(tmp) / "s.db")) as store,
    ):
        world = asyncio.run(play(store, script))
    held = [at for at, active in world.posts if active]
    assert held == [], f"POSTs while a hold was active: {held}"


def test_the_story_does_pay_and_hold(state_target: StateTarget) -> None:
    """A hand-written story reaches both outcomes (guards the property test itself)."""
    script = [
        Step(0, fire=True, manual=False, release=False, critical=True, race=False),  # held
        Step(60, fire=False, manual=False, release=False, critical=True, race=False),  # held
        Step(61, fire=False, manual=False, release=False, critical=True, race=False),  # paid
        Step(31, fire=False, manual=False, release=False, critical=True, race=True),  # raced
        Step(31, fire=False, manual=False, release=True, critical=True, race=False),  # paid
    ]
    with open_store(established_state(state_target)) as store:
        world = asyncio.run(play(store, script))
    assert [at - START for at, _ in world.posts] == [
        timedelta(minutes=121),
        timedelta(minutes=183),
    ]

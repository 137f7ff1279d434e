"""A firing alert as a small incident (DESIGN §5): ack, escalation, and a resolve that
always arrives. Tables through the pure decide step; time is a parameter."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter

from watcher.core.decide import Decision, Policy, RouteSpec, decide
from watcher.core.incident import current_ack
from watcher.core.model import (
    AccountSnapshot,
    Ack,
    AlertKey,
    AlertState,
    Balance,
    Phase,
    Severity,
)
from watcher.core.rules import Rule, evaluate
from watcher.core.silences import Silence
from watcher.state.acks import Acks, alerts_now
from watcher.state.store import StateTarget, open_store

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # a Saturday
KEY = AlertKey("low", "main")
ROUTES = {
    "ops": RouteSpec(Severity.INFO),
    "billing": RouteSpec(Severity.INFO),
    "pager": RouteSpec(Severity.INFO),
    "quiet": RouteSpec(Severity.INFO, mute=("Sat 00:00-24:00 UTC",)),
}


def rule(**extra: Any) -> Rule:
    spec = {"name": "low", "kind": "balance", "below": {"warning": 100, "critical": 50}}
    adapter: TypeAdapter[Rule] = TypeAdapter(Rule)
    return adapter.validate_python({**spec, **extra})


def snapshot(value: str) -> AccountSnapshot:
    amount = Decimal(value)
    return AccountSnapshot("main", Balance(amount, amount, Decimal(0), Decimal(0), "USD"))


def silence(at: datetime, hours: int = 100) -> Silence:
    return Silence(1, "low", None, "maintenance", "ops", at, at + timedelta(hours=hours))


def cycle(
    balance: str,
    now: datetime,
    states: Mapping[AlertKey, AlertState],
    *,
    active: Sequence[Silence] = (),
    ended: Sequence[Silence] = (),
    acks: Sequence[Ack] = (),
    rules: Sequence[Rule] | None = None,
    **extra: Any,
) -> Decision:
    rules = rules if rules is not None else [rule(route="ops", **extra)]
    snaps = [snapshot(balance)]
    policy = Policy(rules=rules, repeat_interval=timedelta(hours=4), routes=ROUTES)
    results = evaluate(rules, snaps, now)
    return decide(states, results, snaps, now, policy, active=active, ended=ended, acks=acks)


def sent(decision: Decision) -> list[tuple[str, tuple[str, ...]]]:
    return [(r.message.reason.value, r.routes) for r in decision.messages]


def test_a_silence_added_after_firing_does_not_hold_the_resolve() -> None:
    fired = cycle("80", T0, {})
    assert sent(fired) == [("firing", ("ops",))]
    later = T0 + timedelta(hours=1)
    resolved = cycle("150", later, fired.states, active=[silence(T0 + timedelta(minutes=5))])
    assert sent(resolved) == [("resolved", ("ops",))]


# -- a story: one cycle every 10 minutes, acks and silences as data -----------------------

STEP = timedelta(minutes=10)


def ack(
    fired_at: datetime, at: datetime, *, hours: float = 24, severity: Severity = Severity.WARNING
) -> Ack:
    return Ack(1, KEY, fired_at, severity, "alice", "on it", at, at + timedelta(hours=hours))


def play(
    balance: Callable[[int], str],
    minutes: int,
    *,
    acks_at: Mapping[int, float] | None = None,
    silenced: tuple[int, int] | None = None,
    **extra: Any,
) -> list[tuple[int, str, tuple[str, ...]]]:
    """Cycles at minute 0, 10, … `minutes`; `balance(minute)`; `acks_at`: minute → hours
    the ack lasts (given for the episode firing then); `silenced`: (from, to) minutes.
    Out: (minute, reason, routes) of every message."""
    states: dict[AlertKey, AlertState] = {}
    acks: list[Ack] = []
    out = []
    for minute in range(0, minutes + 1, 10):
        now = T0 + timedelta(minutes=minute)
        if acks_at and minute in acks_at and KEY in states and states[KEY].fired_at:
            fired = states[KEY].fired_at
            assert fired is not None
            sev = states[KEY].notified_severity or states[KEY].severity
            acks.append(ack(fired, now, hours=acks_at[minute], severity=sev))
        active: list[Silence] = []
        ended: list[Silence] = []
        if silenced and silenced[0] <= minute:
            start, end = (T0 + timedelta(minutes=m) for m in silenced)
            one = Silence(1, "low", None, "m", "ops", start, end)
            active = [one] if one.active(now) else []
            ended = [one] if minute == silenced[1] else []
        decision = cycle(
            balance(minute), now, states, active=active, ended=ended, acks=acks, **extra
        )
        acks = [
            dataclasses.replace(a, announced=True) if a in decision.acks_announced else a
            for a in acks
        ]
        states = dict(decision.states)
        out += [(minute, r.message.reason.value, r.routes) for r in decision.messages]
    return out


def low(minute: int) -> str:
    return "80"


ESCALATE: dict[str, Any] = {"escalate": {"after": "30m", "route": "pager"}}


@pytest.mark.parametrize(
    ("case", "balance", "minutes", "kwargs", "expected"),
    [
        (
            "unacked: escalation once at `after`, then with every repeat",
            low,
            540,
            ESCALATE,
            [
                (0, "firing", ("ops",)),
                (30, "unacked", ("pager",)),
                (240, "repeat", ("ops", "pager")),
                (480, "repeat", ("ops", "pager")),
            ],
        ),
        (
            "an ack before `after`: one [ACK], no escalation, no repeats",
            low,
            540,
            {**ESCALATE, "acks_at": {20: 24}},
            [(0, "firing", ("ops",)), (20, "acked", ("ops",))],
        ),
        (
            "an ack after escalation: to every route told, then quiet",
            low,
            540,
            {**ESCALATE, "acks_at": {40: 24}},
            [
                (0, "firing", ("ops",)),
                (30, "unacked", ("pager",)),
                (40, "acked", ("ops", "pager")),
            ],
        ),
        (
            "an ack ends at expiry: repeats and escalation resume",
            low,
            300,
            {**ESCALATE, "acks_at": {20: 2}},
            [
                (0, "firing", ("ops",)),
                (20, "acked", ("ops",)),
                (140, "unacked", ("pager",)),  # the ack (2h) ended: escalation is due
                (240, "repeat", ("ops", "pager")),  # 4h after the firing message
            ],
        ),
        (
            "escalation to critical ends the ack: notified, then repeats again",
            lambda m: "80" if m < 60 else "40",
            320,
            {"acks_at": {20: 24}},
            [
                (0, "firing", ("ops",)),
                (20, "acked", ("ops",)),
                (60, "escalated", ("ops",)),
                (300, "repeat", ("ops",)),
            ],
        ),
        (
            "an ack ends at resolve; the next episode is not acked",
            lambda m: "150" if 60 <= m < 100 else "80",
            400,
            {"acks_at": {20: 24}},
            [
                (0, "firing", ("ops",)),
                (20, "acked", ("ops",)),
                (60, "resolved", ("ops",)),
                (100, "firing", ("ops",)),
                (340, "repeat", ("ops",)),
            ],
        ),
        (
            "a silence holds the escalation; its end brings it with the still-firing repeat",
            low,
            130,
            {**ESCALATE, "silenced": (20, 120)},
            [(0, "firing", ("ops",)), (120, "repeat", ("ops", "pager"))],
        ),
        (
            "the resolve reaches the escalation route too, through a silence",
            lambda m: "150" if m >= 60 else "80",
            60,
            {**ESCALATE, "silenced": (40, 600)},
            [
                (0, "firing", ("ops",)),
                (30, "unacked", ("pager",)),
                (60, "resolved", ("ops", "pager")),
            ],
        ),
        (
            "escalate after 0s: the firing message goes to the pager too",
            low,
            10,
            {"escalate": {"after": "0s", "route": "pager"}},
            [(0, "firing", ("ops", "pager"))],
        ),
    ],
)
def test_incident_story(
    case: str,
    balance: Callable[[int], str],
    minutes: int,
    kwargs: dict[str, Any],
    expected: list[tuple[int, str, tuple[str, ...]]],
) -> None:
    assert play(balance, minutes, **kwargs) == expected, case


# -- the resolve reaches every route told, whatever happened in between ---------------

LATER = T0 + timedelta(hours=1)
MUTE_FROM_1230 = "2026-11-28 12:30-2026-11-28 23:00 UTC"
MUTED_ROUTES = {**ROUTES, "night": RouteSpec(Severity.INFO, mute=(MUTE_FROM_1230,))}


def resolve_after(fired: Decision, **kwargs: Any) -> list[tuple[str, tuple[str, ...]]]:
    return sent(cycle("150", LATER, fired.states, **kwargs))


def test_resolve_reaches_the_told_routes_inside_a_rule_mute_window() -> None:
    fired = cycle("80", T0, {}, mute=[MUTE_FROM_1230])
    assert sent(fired) == [("firing", ("ops",))]
    assert resolve_after(fired, mute=[MUTE_FROM_1230]) == [("resolved", ("ops",))]


def test_resolve_reaches_a_told_route_whose_mute_began_since() -> None:
    def muted_cycle(balance: str, now: datetime, states: Mapping[AlertKey, AlertState]) -> Decision:
        rules = [rule(route=["ops", "night"])]
        policy = Policy(rules=rules, repeat_interval=timedelta(hours=4), routes=MUTED_ROUTES)
        snaps = [snapshot(balance)]
        return decide(states, evaluate(rules, snaps, now), snaps, now, policy)

    fired = muted_cycle("80", T0, {})
    assert sent(fired) == [("firing", ("ops", "night"))]
    assert sent(muted_cycle("150", LATER, fired.states)) == [("resolved", ("night", "ops"))]


def test_resolve_survives_a_restart(state_target: StateTarget) -> None:
    fired = cycle("80", T0, {}, **ESCALATE)
    escalated = cycle("80", T0 + timedelta(minutes=30), fired.states, **ESCALATE)
    with open_store(state_target) as store:
        store.save_alerts(escalated.states)
    with open_store(state_target) as store:
        loaded = store.load_alerts()
    assert loaded == escalated.states
    assert loaded[KEY].notified_routes == ("ops", "pager")
    assert resolve_after(escalated, **ESCALATE) == [("resolved", ("ops", "pager"))]
    assert sent(cycle("150", LATER, loaded, **ESCALATE)) == [("resolved", ("ops", "pager"))]


def test_resolve_follows_the_routes_told_not_a_reloaded_rule() -> None:
    fired = cycle("80", T0, {})
    reloaded = [rule(route="billing")]
    assert resolve_after(fired, rules=reloaded) == [("resolved", ("ops",))]


def test_no_resolve_for_an_episode_nobody_was_told_of() -> None:
    quiet = [silence(T0 - timedelta(minutes=1), hours=3)]
    fired = cycle("80", T0, {}, active=quiet)
    assert sent(fired) == []
    assert fired.states[KEY].notified_routes == ()
    assert resolve_after(fired) == []


def test_the_ack_message_reaches_told_routes_through_a_silence() -> None:
    fired = cycle("80", T0, {})
    acks = [ack(T0, T0 + timedelta(minutes=5))]
    acked = cycle("80", LATER, fired.states, acks=acks, active=[silence(T0)])
    assert sent(acked) == [("acked", ("ops",))]
    assert acked.acks_announced == tuple(acks)
    message = acked.messages[0].message
    assert message.title == "[ACK] low — main: alice: on it"
    assert acked.states[KEY].ack == acks[0]


def test_send_resolved_false_still_wins() -> None:
    fired = cycle("80", T0, {})
    rules = [rule(route="ops")]
    snaps = [snapshot("150")]
    policy = Policy(
        rules=rules, repeat_interval=timedelta(hours=4), routes=ROUTES, send_resolved=False
    )
    decision = decide(fired.states, evaluate(rules, snaps, LATER), snaps, LATER, policy)
    assert sent(decision) == []


def test_a_rule_removed_by_a_reload_resolves_to_the_routes_told() -> None:
    fired = cycle("80", T0, {})
    other = rule(name="other", below=10)
    gone = cycle("80", LATER, fired.states, rules=[other])
    assert sent(gone) == [("resolved", ("ops",))]
    assert "no longer evaluated" in gone.messages[0].message.body
    assert KEY not in gone.states


def test_the_state_read_names_who_acked_and_why() -> None:
    fired = cycle("80", T0, {})
    acked = cycle("80", LATER, fired.states, acks=[ack(T0, T0 + timedelta(minutes=5))])
    state = acked.states[KEY]
    assert (state.acked_by, state.ack_reason) == ("alice", "on it")
    assert (fired.states[KEY].acked_by, fired.states[KEY].ack_reason) == (None, None)


FIRING_STATE = AlertState(
    KEY, Phase.FIRING, Severity.WARNING, T0, T0, T0, Severity.WARNING, "80", "below 100", None, ()
)


@pytest.mark.parametrize(
    ("case", "given", "now", "in_force"),
    [
        ("this episode, unexpired", ack(T0, T0), LATER, True),
        ("another episode", ack(T0 - timedelta(days=1), T0), LATER, False),
        ("expired", ack(T0, T0, hours=0.5), LATER, False),
        ("expires exactly now", ack(T0, T0, hours=1), LATER, False),
        ("given at critical, now warning", ack(T0, T0, severity=Severity.CRITICAL), LATER, True),
    ],
)
def test_current_ack(case: str, given: Ack, now: datetime, in_force: bool) -> None:
    assert (current_ack(FIRING_STATE, [given], now) == given) is in_force, case


def test_an_ack_given_at_warning_ends_once_critical_was_announced() -> None:
    critical = dataclasses.replace(FIRING_STATE, notified_severity=Severity.CRITICAL)
    assert current_ack(critical, [ack(T0, T0)], LATER) is None


def test_acks_round_trip_and_alerts_now(state_target: StateTarget) -> None:
    with open_store(state_target) as store:
        store.save_alerts({KEY: FIRING_STATE})
        acks = Acks(store)
        given = acks.add(
            FIRING_STATE, by="bob", reason=" lunch ", now=T0, expires=timedelta(hours=1)
        )
        assert (given.by, given.reason, given.severity, given.announced) == (
            "bob",
            "lunch",
            Severity.WARNING,
            False,
        )
        assert alerts_now(store, T0 + timedelta(minutes=59))[KEY].ack == given
        assert alerts_now(store, T0 + timedelta(hours=1))[KEY].ack is None
        acks.mark_announced([given])
        assert acks.get(given.id).announced is True
        with pytest.raises(ValueError, match="needs a reason"):
            acks.add(FIRING_STATE, by="bob", reason=" ", now=T0, expires=timedelta(hours=1))

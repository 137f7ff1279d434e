"""The cycle's decide step as a table: alert states, findings, silences, mutes and routes
in; states, routed and held messages, top-up intents out. Pure: time is a parameter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter

from watcher.core.decide import Decision, Policy, RouteSpec, decide, route
from watcher.core.lifecycle import Reason
from watcher.core.model import AccountSnapshot, AlertKey, AlertState, Balance, Phase, Severity
from watcher.core.render import Message
from watcher.core.rules import Rule, evaluate
from watcher.core.silences import Silence

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # a Saturday, 12:00 UTC
KEY = AlertKey("low", "main")
ROUTES = {
    "ops": RouteSpec(Severity.INFO),
    "pager": RouteSpec(Severity.CRITICAL),
    "quiet": RouteSpec(Severity.INFO, mute=("Sat 00:00-24:00 UTC",)),
}


def rule(**extra: Any) -> Rule:
    spec = {"name": "low", "kind": "balance", "below": {"warning": 100, "critical": 50}}
    adapter: TypeAdapter[Rule] = TypeAdapter(Rule)
    return adapter.validate_python({**spec, **extra})


def snapshot(value: str) -> AccountSnapshot:
    amount = Decimal(value)
    return AccountSnapshot("main", Balance(amount, amount, Decimal(0), Decimal(0), "USD"))


def silence(sid: int, *, ends: timedelta, glob: str = "low") -> Silence:
    return Silence(sid, glob, None, "maintenance", "ops", T0 - timedelta(hours=1), T0 + ends)


def run(
    balance: str,
    *,
    states: Mapping[AlertKey, AlertState] | None = None,
    active: Sequence[Silence] = (),
    ended: Sequence[Silence] = (),
    send_resolved: bool = True,
    **rule_extra: Any,
) -> Decision:
    rules = [rule(**rule_extra)]
    snaps = [snapshot(balance)]
    policy = Policy(
        rules=rules,
        repeat_interval=timedelta(hours=4),
        send_resolved=send_resolved,
        routes=ROUTES,
        default_route="ops",
    )
    results = evaluate(rules, snaps, T0)
    return decide(states or {}, results, snaps, T0, policy, active=active, ended=ended)


def firing(severity: Severity = Severity.WARNING) -> dict[AlertKey, AlertState]:
    at = T0 - timedelta(hours=1)
    state = AlertState(KEY, Phase.FIRING, severity, at, at, at, severity, "80", "below 100")
    return {KEY: state}


def sent(decision: Decision) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    return [(r.message.reason.value, r.routes, r.muted) for r in decision.messages]


@pytest.mark.parametrize(
    ("case", "kwargs", "expected"),
    [
        ("warning to the default route", {"balance": "80"}, [("firing", ("ops",), ())]),
        ("the rule's route", {"balance": "80", "route": "ops"}, [("firing", ("ops",), ())]),
        (
            "below a route's min_severity",
            {"balance": "80", "route": ["ops", "pager"]},
            [("firing", ("ops",), ())],
        ),
        (
            "critical reaches the pager",
            {"balance": "40", "route": ["ops", "pager"]},
            [("firing", ("ops", "pager"), ())],
        ),
        (
            "a muted route is set aside",
            {"balance": "80", "route": ["ops", "quiet"]},
            [("firing", ("ops",), ("quiet",))],
        ),
        ("a rule's own mute holds it", {"balance": "80", "mute": ["Sat 00:00-24:00 UTC"]}, []),
        (
            "a silence holds it",
            {"balance": "80", "active": [silence(7, ends=timedelta(hours=1))]},
            [],
        ),
        ("resolved is sent", {"balance": "150", "states": firing()}, [("resolved", ("ops",), ())]),
        (
            "resolved is not sent when turned off",
            {"balance": "150", "states": firing(), "send_resolved": False},
            [],
        ),
        ("nothing new while firing", {"balance": "80", "states": firing()}, []),
        (
            "a silence that ended: still firing, once",
            {
                "balance": "80",
                "states": firing(),
                "ended": [silence(3, ends=-timedelta(minutes=1))],
            },
            [("repeat", ("ops",), ())],
        ),
    ],
)
def test_decide(case: str, kwargs: dict[str, Any], expected: list[object]) -> None:
    assert sent(run(**kwargs)) == expected, case


def test_held_transitions_say_why() -> None:
    silenced = run("80", active=[silence(7, ends=timedelta(hours=1))])
    muted = run("80", mute=["Sat 00:00-24:00 UTC"])
    assert [(h.key, h.reason, h.silence) for h in silenced.held] == [(KEY, Reason.FIRING, 7)]
    assert [(h.key, h.reason, h.silence) for h in muted.held] == [(KEY, Reason.FIRING, None)]
    assert KEY in silenced.states  # still evaluated and kept: shown in `status`


def test_a_still_firing_repeat_marks_the_state_notified() -> None:
    decision = run("80", states=firing(), ended=[silence(3, ends=-timedelta(minutes=1))])
    assert decision.states[KEY].last_notified_at == T0
    assert [s.id for s in decision.silences_ended] == [3]


@pytest.mark.parametrize(
    ("balance", "states", "topup", "triggers"),
    [
        ("40", None, True, ["start"]),  # fired at critical this cycle
        ("40", firing(Severity.CRITICAL), True, ["stay"]),  # still critical
        ("80", None, True, []),  # warning only
        ("40", None, False, []),  # the rule does not top up
    ],
)
def test_top_up_intents(
    balance: str, states: dict[AlertKey, AlertState] | None, topup: bool, triggers: list[str]
) -> None:
    decision = run(balance, states=states, topup=topup)
    assert [t.kind.value for t in decision.topups] == triggers


@pytest.mark.parametrize(
    ("severity", "urgent", "rule_routes", "routes", "muted"),
    [
        (Severity.WARNING, False, (), ("ops",), ()),
        (Severity.WARNING, False, ("quiet",), (), ("quiet",)),
        (Severity.WARNING, True, ("quiet",), ("quiet",), ()),  # money: never muted
        (Severity.WARNING, False, ("pager",), (), ()),  # below min_severity: no route
        (Severity.CRITICAL, False, ("pager", "unknown"), ("pager",), ()),
    ],
)
def test_route(
    severity: Severity,
    urgent: bool,
    rule_routes: tuple[str, ...],
    routes: tuple[str, ...],
    muted: tuple[str, ...],
) -> None:
    message = Message("t", "b", severity, "low", "main", Reason.EVENTS, urgent=urgent)
    policy = Policy(
        rules=[], repeat_interval=timedelta(hours=4), routes=ROUTES, default_route="ops"
    )
    routed = route(message, rule_routes, policy, T0)
    assert (routed.routes, routed.muted) == (routes, muted)

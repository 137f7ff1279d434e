"""Alert lifecycle as a table: a series of findings over time → reasons notified."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watcher.core.lifecycle import Reason, step
from watcher.core.model import AlertKey, AlertState, AuditEvent, Phase, Severity
from watcher.core.rules import Finding, RuleResult

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
KEY = AlertKey("low-credit", "main")
W, C = Severity.WARNING, Severity.CRITICAL
CLEAR = "clear"  # condition gone, past the resolve threshold
BAND = "band"  # condition gone, inside the hysteresis band
DOWN = "down"  # source failed: not judged


def result(obs: object, hold_for: timedelta) -> RuleResult:
    if obs == DOWN:
        return RuleResult(KEY.rule, KEY.account, judged=False, hold_for=hold_for)
    if obs == CLEAR:
        finding = Finding(KEY, None, cleared=True, value="150 USD")
    elif obs == BAND:
        finding = Finding(KEY, None, cleared=False, value="110 USD")
    else:
        assert isinstance(obs, Severity)
        finding = Finding(KEY, obs, value="40 USD", threshold="below 50 USD")
    return RuleResult(KEY.rule, KEY.account, True, (finding,), hold_for=hold_for)


def run(
    series: list[object],
    *,
    hold_for: timedelta = timedelta(0),
    every: timedelta = timedelta(minutes=1),
    repeat: timedelta = timedelta(hours=4),
) -> tuple[list[str], dict[AlertKey, AlertState]]:
    states: dict[AlertKey, AlertState] = {}
    reasons: list[str] = []
    for i, obs in enumerate(series):
        out = step(states, [result(obs, hold_for)], T0 + i * every, repeat_interval=repeat)
        reasons.append(",".join(t.reason.value for t in out.transitions) or "-")
        states = out.states
    return reasons, states


@pytest.mark.parametrize(
    ("series", "kwargs", "expected"),
    [
        # for: 0s fires in the same evaluation that first sees the condition
        ([W], {}, ["firing"]),
        # does not repeat on the next cycle, resolves when cleared
        ([W, W, CLEAR], {}, ["firing", "-", "resolved"]),
        # for: 5m — pending until the condition held 5 minutes
        ([W] * 7, {"hold_for": timedelta(minutes=5)}, ["-"] * 5 + ["firing", "-"]),
        # pending that clears never notifies, and the timer restarts
        ([W, W, CLEAR, W, W], {"hold_for": timedelta(minutes=2)}, ["-"] * 5),
        # hysteresis: inside the band a firing alert keeps firing
        ([W, BAND, BAND, CLEAR], {}, ["firing", "-", "-", "resolved"]),
        # hysteresis band resets a pending alert
        ([W, BAND, W, W], {"hold_for": timedelta(minutes=1)}, ["-", "-", "-", "firing"]),
        # escalation warning → critical notifies once
        ([W, C, C], {}, ["firing", "escalated", "-"]),
        # de-escalation is quiet, and so is the return to the severity already announced
        ([C, W, C], {}, ["firing", "-", "-"]),
        ([W, C, W, C], {}, ["firing", "escalated", "-", "-"]),
        # repeat_interval while firing
        ([W] * 5, {"repeat": timedelta(minutes=2)}, ["firing", "-", "repeat", "-", "repeat"]),
        # a failing source keeps the alert as it is (neither resolved nor repeated)
        ([W, DOWN, DOWN, W], {}, ["firing", "-", "-", "-"]),
        # pending survives a failing source
        ([W, DOWN, W], {"hold_for": timedelta(minutes=2)}, ["-", "-", "firing"]),
    ],
)
def test_lifecycle(series: list[object], kwargs: dict[str, timedelta], expected: list[str]) -> None:
    reasons, _ = run(series, **kwargs)
    assert reasons == expected


def test_states_persist_fields() -> None:
    _, states = run([W, C])
    state = states[KEY]
    assert state.phase is Phase.FIRING
    assert state.severity is C
    assert state.fired_at == T0
    assert state.last_notified_at == T0 + timedelta(minutes=1)
    assert state.notified_severity is C


def test_restart_neither_floods_nor_forgets() -> None:
    """The same states reloaded (as from the store) continue where they were."""
    _, states = run([W])
    reloaded = dict(states)  # what save_alerts/load_alerts round-trip gives
    again = step(
        reloaded,
        [result(W, timedelta(0))],
        T0 + timedelta(minutes=1),
        repeat_interval=timedelta(hours=4),
    )
    assert again.transitions == []
    cleared = step(
        again.states,
        [result(CLEAR, timedelta(0))],
        T0 + timedelta(hours=2),
        repeat_interval=timedelta(hours=4),
    )
    (resolved,) = cleared.transitions
    assert resolved.reason is Reason.RESOLVED
    assert resolved.fired_for == timedelta(hours=2)
    assert resolved.finding is not None and resolved.finding.value == "150 USD"


def test_resolve_after_deescalation_keeps_the_highest_notified_severity() -> None:
    """So a critical-only route that got the alert also gets its resolve."""
    states: dict[AlertKey, AlertState] = {}
    transitions = []
    for i, obs in enumerate([C, W, CLEAR]):
        out = step(
            states,
            [result(obs, timedelta(0))],
            T0 + i * timedelta(minutes=1),
            repeat_interval=timedelta(hours=4),
        )
        states, transitions = out.states, out.transitions
    (resolved,) = transitions
    assert resolved.reason is Reason.RESOLVED and resolved.severity is C


def test_missing_finding_resolves_grouped_alert() -> None:
    other = AlertKey("spike", "main", "https://a")
    firing = AlertState(
        other, Phase.FIRING, C, T0, fired_at=T0, last_notified_at=T0, notified_severity=C
    )
    out = step(
        {other: firing},
        [RuleResult("spike", "main", True, ())],
        T0 + timedelta(minutes=3),
        repeat_interval=timedelta(hours=4),
    )
    assert [t.reason for t in out.transitions] == [Reason.RESOLVED]
    assert out.states == {}


def test_alerts_of_removed_rules_are_dropped() -> None:
    _, states = run([W])
    out = step(states, [], T0 + timedelta(minutes=1), repeat_interval=timedelta(hours=4))
    assert out.states == {}
    # a firing one resolves (DESIGN §5: whoever was told hears the end, across reloads)
    assert [(t.reason, t.retired) for t in out.transitions] == [(Reason.RESOLVED, True)]


def test_audit_one_shot_each_cycle() -> None:
    events = (AuditEvent("e1", T0), AuditEvent("e2", T0))
    audit_key = AlertKey("audit", "main")
    res = RuleResult("audit", "main", True, (Finding(audit_key, C, events=events),), one_shot=True)
    out = step({}, [res], T0, repeat_interval=timedelta(hours=4))
    (transition,) = out.transitions
    assert transition.reason is Reason.EVENTS
    assert transition.finding is not None and len(transition.finding.events) == 2
    assert out.states == {}  # nothing to resolve later

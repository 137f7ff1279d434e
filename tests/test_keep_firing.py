"""`keep_firing_for` in the lifecycle, as a table: findings over time → reasons notified.

Prometheus semantics: once firing, a cleared condition keeps the alert firing for the
window and it resolves only if it stayed clear; a condition that returns inside the
window continues the same episode (no new firing notification). Time is a parameter.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watcher.core.lifecycle import step
from watcher.core.model import AlertKey, AlertState, Phase, Severity
from watcher.core.rules import Finding, RuleFile, RuleResult

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
KEY = AlertKey("low-credit", "main")
W, C = Severity.WARNING, Severity.CRITICAL
CLEAR, BAND, DOWN, GONE = "clear", "band", "down", "gone"
M = timedelta(minutes=1)


def result(obs: object, hold: timedelta, keep: timedelta) -> RuleResult:
    if obs == DOWN:
        return RuleResult(KEY.rule, KEY.account, False, hold_for=hold, keep_for=keep)
    if obs == GONE:  # no finding at all for the key (e.g. a group that disappeared)
        return RuleResult(KEY.rule, KEY.account, True, (), hold_for=hold, keep_for=keep)
    if obs == CLEAR:
        finding = Finding(KEY, None, cleared=True, value="150 USD")
    elif obs == BAND:
        finding = Finding(KEY, None, cleared=False, value="110 USD")
    else:
        assert isinstance(obs, Severity)
        finding = Finding(KEY, obs, value="40 USD", threshold="below 50 USD")
    return RuleResult(KEY.rule, KEY.account, True, (finding,), hold_for=hold, keep_for=keep)


def run(
    series: list[object],
    keep: timedelta,
    *,
    hold: timedelta = timedelta(0),
    repeat: timedelta = timedelta(hours=4),
) -> tuple[list[str], dict[AlertKey, AlertState]]:
    states: dict[AlertKey, AlertState] = {}
    reasons: list[str] = []
    for i, obs in enumerate(series):
        out = step(states, [result(obs, hold, keep)], T0 + i * M, repeat_interval=repeat)
        reasons.append(",".join(t.reason.value for t in out.transitions) or "-")
        states = out.states
    return reasons, states


@pytest.mark.parametrize(
    ("series", "keep", "kwargs", "expected"),
    [
        # 0s (the default): resolves in the evaluation that sees it clear
        ([W, CLEAR], timedelta(0), {}, ["firing", "resolved"]),
        # keeps firing quietly for the window, resolves when it stayed clear 3m
        ([W, CLEAR, CLEAR, CLEAR, CLEAR], 3 * M, {}, ["firing", "-", "-", "-", "resolved"]),
        # a return inside the window continues the episode: no second firing
        ([W, CLEAR, W, CLEAR, CLEAR, CLEAR], 2 * M, {}, ["firing", "-", "-", "-", "-", "resolved"]),
        # the return resets the window: it must stay clear 2m from the last clear
        (
            [W, CLEAR, CLEAR, C, CLEAR, CLEAR, CLEAR],
            2 * M,
            {},
            ["firing", "-", "-", "escalated", "-", "-", "resolved"],
        ),
        # a return at the same severity while kept is quiet
        ([W, CLEAR, W, W], 5 * M, {}, ["firing", "-", "-", "-"]),
        # the hysteresis band is not clear: it keeps firing and restarts the window
        (
            [W, CLEAR, BAND, CLEAR, CLEAR, CLEAR],
            2 * M,
            {},
            ["firing", "-", "-", "-", "-", "resolved"],
        ),
        # a missing finding counts as cleared, and is kept the same way
        ([W, GONE, GONE, GONE], 2 * M, {}, ["firing", "-", "-", "resolved"]),
        # a failing source neither starts nor ends the window
        ([W, CLEAR, DOWN, DOWN, CLEAR], 2 * M, {}, ["firing", "-", "-", "-", "resolved"]),
        # no repeat is sent while the cleared alert is only being kept
        ([W, CLEAR, CLEAR, CLEAR], 5 * M, {"repeat": M}, ["firing", "-", "-", "-"]),
        # a pending alert is not kept: it clears and never fires
        ([W, CLEAR, W, W], 5 * M, {"hold": 2 * M}, ["-", "-", "-", "-"]),
    ],
)
def test_keep_firing_for(
    series: list[object], keep: timedelta, kwargs: dict[str, timedelta], expected: list[str]
) -> None:
    reasons, _ = run(series, keep, **kwargs)
    assert reasons == expected


def test_kept_state_marks_when_it_cleared_and_the_resolve_counts_the_window() -> None:
    _, states = run([W, CLEAR, CLEAR], 5 * M)
    state = states[KEY]
    assert state.phase is Phase.FIRING
    assert state.clear_since == T0 + M
    assert state.value == "150 USD"
    out = step(
        states, [result(CLEAR, timedelta(0), 5 * M)], T0 + 6 * M, repeat_interval=timedelta(hours=4)
    )
    (resolved,) = out.transitions
    assert resolved.fired_for == 6 * M and out.states == {}


def test_return_clears_the_mark() -> None:
    _, states = run([W, CLEAR, W], 5 * M)
    assert states[KEY].clear_since is None


def test_restart_keeps_the_window() -> None:
    """The mark reloaded (as from the store) resolves on time, not a window later."""
    _, states = run([W, CLEAR], 3 * M)
    reloaded = dict(states)
    out = step(
        reloaded,
        [result(CLEAR, timedelta(0), 3 * M)],
        T0 + 4 * M,
        repeat_interval=timedelta(hours=4),
    )
    assert [t.reason.value for t in out.transitions] == ["resolved"]


@pytest.mark.parametrize("kind", ["balance", "forecast", "webhook_failures"])
def test_every_resolving_kind_takes_it(kind: str) -> None:
    extras: dict[str, dict[str, object]] = {
        "balance": {"below": 5},
        "forecast": {"runs_out_within": "1d"},
    }
    extra = extras.get(kind, {})
    parsed = RuleFile.model_validate(
        {"rules": [{"name": "r", "kind": kind, "keep_firing_for": "10m", **extra}]}
    )
    assert parsed.rules[0].keep_firing_for == 10 * M


@pytest.mark.parametrize("kind", ["audit", "credentials"])
def test_one_shot_kinds_refuse_it(kind: str) -> None:
    with pytest.raises(ValueError, match=f"`keep_firing_for` does not apply to {kind} rules"):
        RuleFile.model_validate({"rules": [{"name": "r", "kind": kind, "keep_firing_for": "10m"}]})
    RuleFile.model_validate({"rules": [{"name": "r", "kind": kind, "keep_firing_for": "0s"}]})


def test_evaluate_passes_the_rule_window_to_the_lifecycle() -> None:
    from decimal import Decimal

    from watcher.core.model import AccountSnapshot, Balance
    from watcher.core.rules import evaluate

    (rule,) = RuleFile.model_validate(
        {"rules": [{"name": "low", "kind": "balance", "below": 5, "keep_firing_for": "10m"}]}
    ).rules
    one, zero = Decimal(1), Decimal(0)
    money = Balance(one, one, zero, zero, currency="USD")
    snap = AccountSnapshot("main", balance=money)
    first, _ = evaluate([rule], [snap], T0)
    assert first.rule == "low" and first.keep_for == 10 * M

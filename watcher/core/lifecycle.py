"""Alert lifecycle: inactive → pending (`for`) → firing → resolved.

`step(states, results, now, repeat_interval=...)` is pure: it returns the new states and
the transitions to notify, each with a `Reason`. Nothing here sends or stores anything.

`keep_firing_for` (a rule's `RuleResult.keep_for`, Prometheus semantics): a firing alert
whose condition clears stays firing, quietly, and resolves only once it has stayed clear
that long (`AlertState.clear_since` marks when it cleared). A condition that returns
inside the window continues the same episode: no new firing notification, an escalation
above what was announced still notifies. A pending alert is not kept.

An acknowledged alert (`AlertState.ack`, attached by decide) does not repeat; a higher
severity still notifies and ends the ack.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from watcher.core.model import AlertKey, AlertState, Phase, Severity
from watcher.core.rules import Finding, RuleResult


class Reason(enum.StrEnum):
    """Why a transition is notified."""

    FIRING = "firing"
    ESCALATED = "escalated"
    REPEAT = "repeat"
    RESOLVED = "resolved"
    EVENTS = "events"
    ACKED = "acked"  # someone took it (`account-watcher ack`): told once
    UNACKED = "unacked"  # firing `escalate.after` without an ack: the escalation route


@dataclass(frozen=True, slots=True)
class Transition:
    """One thing to notify. `state` is the alert after the step (before, for RESOLVED)."""

    reason: Reason
    key: AlertKey
    severity: Severity
    at: datetime
    state: AlertState | None
    finding: Finding | None = None
    retired: bool = False  # RESOLVED because its rule is no longer evaluated (a reload)

    @property
    def fired_for(self) -> timedelta:
        """How long the alert has been firing (zero when it never fired)."""
        if self.state is None or self.state.fired_at is None:
            return timedelta(0)
        return self.at - self.state.fired_at


@dataclass(frozen=True, slots=True)
class StepResult:
    states: dict[AlertKey, AlertState]
    transitions: list[Transition]


def step(
    states: Mapping[AlertKey, AlertState],
    results: Sequence[RuleResult],
    now: datetime,
    *,
    repeat_interval: timedelta,
) -> StepResult:
    """Advance every alert by one evaluation.

    In: the persisted states, this cycle's rule results, `now`. Out: the new states
    and the transitions to notify. Alerts of rules no longer evaluated (removed,
    disabled or narrowed to other accounts by a reload) are dropped: a firing one with a
    `retired` RESOLVED, so that whoever was told hears the end. A result that was not
    judged (its source failed) keeps its alerts untouched.
    """
    new_states: dict[AlertKey, AlertState] = {}
    transitions = _retired(states, results, now)
    by_rule = _by_rule_account(states)
    for result in results:
        mine = by_rule.get((result.rule, result.account), {})
        if not result.judged:
            new_states.update(mine)
        elif result.one_shot:
            transitions.extend(_one_shot(result, now))
        else:
            kept, moved = _advance(result, mine, now, repeat_interval)
            new_states.update(kept)
            transitions.extend(moved)
    return StepResult(new_states, transitions)


def _by_rule_account(
    states: Mapping[AlertKey, AlertState],
) -> dict[tuple[str, str], dict[AlertKey, AlertState]]:
    """The states grouped by (rule, account), each group in the states' order: one pass,
    so a step stays linear in results + states."""
    groups: dict[tuple[str, str], dict[AlertKey, AlertState]] = {}
    for key, state in states.items():
        groups.setdefault((key.rule, key.account), {})[key] = state
    return groups


def _retired(
    states: Mapping[AlertKey, AlertState], results: Sequence[RuleResult], now: datetime
) -> list[Transition]:
    evaluated = {(r.rule, r.account) for r in results}
    return [
        Transition(Reason.RESOLVED, key, _announced(state), now, state, retired=True)
        for key, state in sorted(states.items())
        if state.phase is Phase.FIRING and (key.rule, key.account) not in evaluated
    ]


def _announced(state: AlertState) -> Severity:
    return max(state.severity, state.notified_severity or state.severity)


def _one_shot(result: RuleResult, now: datetime) -> list[Transition]:
    return [
        Transition(Reason.EVENTS, f.key, f.severity, now, None, f)
        for f in result.findings
        if f.severity is not None
    ]


def _advance(
    result: RuleResult,
    mine: Mapping[AlertKey, AlertState],
    now: datetime,
    repeat_interval: timedelta,
) -> tuple[dict[AlertKey, AlertState], list[Transition]]:
    kept: dict[AlertKey, AlertState] = {}
    moved: list[Transition] = []
    findings = {f.key: f for f in result.findings}
    for key in sorted(mine.keys() | findings.keys()):
        state, transition = advance_one(
            mine.get(key),
            findings.get(key),
            key,
            now,
            result.hold_for,
            repeat_interval,
            keep_for=result.keep_for,
        )
        if state is not None:
            kept[key] = state
        if transition is not None:
            moved.append(transition)
    return kept, moved


def advance_one(
    state: AlertState | None,
    finding: Finding | None,
    key: AlertKey,
    now: datetime,
    hold_for: timedelta,
    repeat_interval: timedelta,
    *,
    keep_for: timedelta = timedelta(0),
) -> tuple[AlertState | None, Transition | None]:
    """One alert key, one evaluation. A missing finding counts as cleared; a cleared
    firing alert resolves once it stayed clear `keep_for` (0s: at once)."""
    if finding is None or finding.severity is None:
        return _not_holding(state, finding, key, now, keep_for)
    severity = finding.severity
    if state is None:
        state = AlertState(key, Phase.PENDING, severity, active_since=now, notified_routes=())
    state = dataclasses.replace(
        state,
        severity=severity,
        value=finding.value,
        threshold=finding.threshold,
        clear_since=None,
    )
    if state.phase is Phase.PENDING:
        if now - state.active_since < hold_for:
            return state, None
        return _notified(state, now, fired_at=now), _t(Reason.FIRING, state, now, finding)
    return _firing(state, finding, now, repeat_interval)


def _firing(
    state: AlertState, finding: Finding, now: datetime, repeat_interval: timedelta
) -> tuple[AlertState, Transition | None]:
    notified = state.notified_severity or state.severity
    if state.severity > notified:  # a higher severity ends an ack
        state = dataclasses.replace(state, ack=None)
        return _notified(state, now), _t(Reason.ESCALATED, state, now, finding)
    if state.ack is not None:  # acknowledged: no repeats in this episode
        return state, None
    # De-escalation is quiet and keeps the mark: `notified_severity` is the highest
    # severity announced in this episode, so a dip and return does not notify again and
    # the resolve goes to every route that got the alert.
    last = state.last_notified_at or state.fired_at or now
    if now - last >= repeat_interval:
        return _notified(state, now), _t(Reason.REPEAT, state, now, finding)
    return state, None


def _not_holding(
    state: AlertState | None,
    finding: Finding | None,
    key: AlertKey,
    now: datetime,
    keep_for: timedelta,
) -> tuple[AlertState | None, Transition | None]:
    if state is None or state.phase is Phase.PENDING:
        return None, None
    value = state.value if finding is None else finding.value
    if finding is not None and not finding.cleared:
        # Inside the hysteresis band: still firing, nothing new to say; not clear yet.
        return dataclasses.replace(state, value=value, clear_since=None), None
    clear_since = state.clear_since or now
    if now - clear_since < keep_for:
        # keep_firing_for: still firing, quietly, until it stayed clear long enough.
        return dataclasses.replace(state, value=value, clear_since=clear_since), None
    return None, Transition(Reason.RESOLVED, key, _announced(state), now, state, finding)


def _notified(state: AlertState, now: datetime, *, fired_at: datetime | None = None) -> AlertState:
    return dataclasses.replace(
        state,
        phase=Phase.FIRING,
        fired_at=fired_at or state.fired_at,
        last_notified_at=now,
        notified_severity=max(state.severity, state.notified_severity or state.severity),
    )


def _t(reason: Reason, state: AlertState, now: datetime, finding: Finding) -> Transition:
    after = _notified(state, now, fired_at=state.fired_at or now)
    return Transition(reason, state.key, state.severity, now, after, finding)

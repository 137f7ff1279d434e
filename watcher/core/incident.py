"""A firing alert as a small incident (DESIGN §5): acks and escalation. Pure.

- An ack (`Ack`) holds for the firing episode it was given for (the alert's `fired_at`),
  until it expires, and only while the alert has not been announced at a higher
  severity than the one acknowledged (warning → critical ends it). A new episode has
  another `fired_at`, so it is never pre-acknowledged.
- Escalation: a firing alert whose rule has `escalate`, that is neither acknowledged nor
  silenced nor muted, `after` its start is sent to `escalate.route` once (`UNACKED`);
  from then on every notification of the episode goes there too.

decide (watcher/core/decide.py) calls these between the lifecycle step and routing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime

from watcher.core.lifecycle import Reason, Transition
from watcher.core.model import Ack, AlertKey, AlertState, Phase
from watcher.core.mute import is_muted
from watcher.core.rules import Finding, Rule
from watcher.core.silences import Silence, silenced_by

NOTIFIED = frozenset({Reason.FIRING, Reason.ESCALATED, Reason.REPEAT, Reason.UNACKED})
"""Reasons whose routes are recorded as told (`AlertState.notified_routes`)."""


def current_ack(state: AlertState, acks: Iterable[Ack], now: datetime) -> Ack | None:
    """The latest ack in force on `state` at `now`, or None."""
    if state.phase is not Phase.FIRING or state.fired_at is None:
        return None
    announced = state.notified_severity or state.severity
    holding = [
        a
        for a in acks
        if a.key == state.key
        and a.fired_at == state.fired_at
        and now < a.expires_at
        and announced <= a.severity
    ]
    return max(holding, key=lambda a: (a.at, a.id), default=None)


def with_acks(
    states: Mapping[AlertKey, AlertState], acks: Sequence[Ack], now: datetime
) -> dict[AlertKey, AlertState]:
    """`states` with `ack` set to the ack in force at `now` (None where none is): the
    state read for `status`, the status page and the lifecycle. Linear in states + acks."""
    by_key: dict[AlertKey, list[Ack]] = {}
    for ack in acks:
        by_key.setdefault(ack.key, []).append(ack)
    return {
        k: dataclasses.replace(s, ack=current_ack(s, by_key.get(k, ()), now))
        for k, s in states.items()
    }


def matching_firing(
    states: Iterable[AlertState], rule: str, account: str | None, group: str | None
) -> list[AlertState]:
    """The firing alerts of `rule` (on `account`, in `group`, when given), by key: what
    `account-watcher ack` acknowledges."""
    return sorted(
        (
            s
            for s in states
            if s.phase is Phase.FIRING
            and s.key.rule == rule
            and account in (None, s.key.account)
            and group in (None, s.key.group)
        ),
        key=lambda s: s.key,
    )


def announcements(
    states: Mapping[AlertKey, AlertState], acks: Sequence[Ack], now: datetime
) -> list[Transition]:
    """One `ACKED` transition for each ack not yet announced that is in force now."""
    out = []
    for ack in acks:
        state = states.get(ack.key)
        if ack.announced or state is None or state.ack != ack:
            continue
        out.append(Transition(Reason.ACKED, ack.key, state.severity, now, state))
    return out


def escalations(
    states: Mapping[AlertKey, AlertState],
    rules: Mapping[str, Rule],
    notified: Collection[AlertKey],
    findings: Mapping[AlertKey, Finding],
    active: Sequence[Silence],
    now: datetime,
) -> tuple[dict[AlertKey, AlertState], list[Transition]]:
    """Escalations due at `now`.

    In: the states after the lifecycle step (acks attached), the rules by name, the keys
    notified in this cycle already, the findings, the active silences.
    Out: the states with `escalated_at` set where escalation starts, and an `UNACKED`
    transition for each of those not notified in this cycle anyway (a notification of
    this cycle takes the escalation route along, see `escalation_route`).
    """
    new = dict(states)
    moved = []
    for key, state in sorted(states.items()):
        rule = rules.get(key.rule)
        if not _due(state, rule, active, now):
            continue
        new[key] = state = dataclasses.replace(state, escalated_at=now)
        if key not in notified:
            moved.append(
                Transition(Reason.UNACKED, key, state.severity, now, state, findings.get(key))
            )
    return new, moved


def _due(state: AlertState, rule: Rule | None, active: Sequence[Silence], now: datetime) -> bool:
    if rule is None or rule.escalate is None or state.escalated_at is not None:
        return False
    if state.phase is not Phase.FIRING or state.fired_at is None or state.ack is not None:
        return False
    if silenced_by(state.key, active, now) is not None or (rule.mute and is_muted(rule.mute, now)):
        return False
    return rule.escalate.due(now - state.fired_at)


def escalation_route(state: AlertState | None, rule: Rule | None) -> tuple[str, ...]:
    """The escalation route a notification of `state` goes to besides the rule's: the
    rule's `escalate.route` once the episode escalated, else none."""
    if state is None or state.escalated_at is None or rule is None or rule.escalate is None:
        return ()
    return (rule.escalate.route,)


def told(state: AlertState, routes: Iterable[str]) -> AlertState:
    """`state` with `routes` added to the routes told in this episode (a state that
    predates the record keeps None: its resolve is routed as any message)."""
    if state.notified_routes is None:
        return state
    return dataclasses.replace(
        state, notified_routes=tuple(sorted({*state.notified_routes, *routes}))
    )

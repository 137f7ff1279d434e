"""The cycle's decide step (DESIGN §9, step 4): pure, time is a parameter.

From the alert states, this cycle's rule results and the silences, `decide` returns the
new states, the transitions, the top-up intents, and every message with the routes it
goes to (or why it is held back: a silence, a rule's `mute`, a route's `mute`). Nothing
here writes or sends; the cycle's commit step stores what this returns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher.core.incident import (
    NOTIFIED,
    announcements,
    escalation_route,
    escalations,
    told,
    with_acks,
)
from watcher.core.lifecycle import Reason, Transition, step
from watcher.core.model import AccountSnapshot, Ack, AlertKey, AlertState, Severity
from watcher.core.mute import MuteSpec, is_muted
from watcher.core.render import Message, render
from watcher.core.rules import Finding, Rule, RuleResult
from watcher.core.silences import Silence, silenced_by, still_firing
from watcher.core.topup import Trigger, find_triggers


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """One configured route as decide sees it: its lowest severity and its `mute`."""

    min_severity: Severity = Severity.INFO
    mute: tuple[MuteSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class Policy:
    """What decide needs of the configuration.

    `repeat_interval` and `send_resolved` of `notify`; the routes by name and the
    default route (for a rule that names none).
    """

    rules: Sequence[Rule]
    repeat_interval: timedelta
    send_resolved: bool = True
    routes: Mapping[str, RouteSpec] = field(default_factory=dict)
    default_route: str | None = None


@dataclass(frozen=True, slots=True)
class Routed:
    """A message and where it goes: `routes` get it now; `muted` are routes it would go
    to whose `mute` holds now (an `urgent` message is never muted)."""

    message: Message
    routes: tuple[str, ...]
    muted: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Held:
    """A transition not notified: covered by silence `silence` (an id), else by its
    rule's `mute` (silence None)."""

    key: AlertKey
    reason: Reason
    silence: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """What decide returns.

    - `states`: every alert state after this cycle (to save), "still firing" repeats
      marked notified.
    - `transitions`: the lifecycle's transitions of this cycle.
    - `findings`: this cycle's findings of judged rules, by key.
    - `topups`: the top-up intents (at most one per account).
    - `messages`: the transitions' messages, routed; `held`: those not notified.
    - `silences_ended`: the ended silences acted on (to mark handled at the commit).
    - `acks_announced`: the acks whose `[ACK]` message is among `messages` (to mark
      announced at the commit).
    """

    states: Mapping[AlertKey, AlertState]
    transitions: tuple[Transition, ...]
    findings: Mapping[AlertKey, Finding]
    topups: tuple[Trigger, ...]
    messages: tuple[Routed, ...]
    held: tuple[Held, ...]
    silences_ended: tuple[Silence, ...]
    acks_announced: tuple[Ack, ...] = ()


def decide(
    states: Mapping[AlertKey, AlertState],
    results: Sequence[RuleResult],
    snapshots: Sequence[AccountSnapshot],
    now: datetime,
    policy: Policy,
    *,
    active: Sequence[Silence] = (),
    ended: Sequence[Silence] = (),
    acks: Sequence[Ack] = (),
) -> Decision:
    """One cycle's decisions. Pure.

    In: the stored alert states, this cycle's rule results and snapshots, `now`, the
    policy, the silences active at `now` and those that ended unhandled, the acks.
    Out: a `Decision`.

    1. attach the acks in force; the lifecycle step (an acked alert does not repeat)
    2. the acks again (a higher severity ended one); "still firing" repeats of ended
       silences (not for acked alerts)
    3. escalations due (watcher/core/incident.py), the `[ACK]` announcements
    4. route every transition; record the routes told on each alert's state
    """
    stepped = step(
        with_acks(states, acks, now), results, now, repeat_interval=policy.repeat_interval
    )  # 1
    findings = {f.key: f for r in results if r.judged for f in r.findings}
    new_states = with_acks(stepped.states, acks, now)  # 2
    notified = {t.key for t in stepped.transitions}
    repeats = [
        r
        for r in still_firing(new_states, findings, ended, active, now, notified=notified)
        if new_states[r.key].ack is None
    ]
    for repeat in repeats:
        if repeat.state is not None:
            new_states[repeat.key] = dataclasses.replace(
                new_states[repeat.key], last_notified_at=now
            )
    rules = {rule.name: rule for rule in policy.rules}
    new_states, unacked = escalations(  # 3
        new_states, rules, notified | {r.key for r in repeats}, findings, active, now
    )
    acked = announcements(new_states, acks, now)
    moved = [*stepped.transitions, *repeats, *unacked, *acked]
    messages, held = _notify(moved, new_states, now, policy, active)  # 4
    for transition, routed in messages:
        if transition.reason in NOTIFIED and transition.key in new_states:
            new_states[transition.key] = told(new_states[transition.key], routed.routes)
    triggers = find_triggers(policy.rules, stepped.transitions, new_states, snapshots)
    return Decision(
        states=new_states,
        transitions=tuple(stepped.transitions),
        findings=findings,
        topups=tuple(triggers),
        messages=tuple(routed for _, routed in messages),
        held=tuple(held),
        silences_ended=tuple(ended),
        acks_announced=tuple(t.state.ack for t in acked if t.state and t.state.ack),
    )


def _notify(
    transitions: Iterable[Transition],
    states: Mapping[AlertKey, AlertState],
    now: datetime,
    policy: Policy,
    active: Sequence[Silence],
) -> tuple[list[tuple[Transition, Routed]], list[Held]]:
    rules = {rule.name: rule for rule in policy.rules}
    routed: list[tuple[Transition, Routed]] = []
    held: list[Held] = []
    for transition in transitions:
        if transition.reason is Reason.RESOLVED and not policy.send_resolved:
            continue
        rule = rules.get(transition.key.rule)
        state = states.get(transition.key, transition.state)
        if transition.reason in _TO_THOSE_TOLD and state and state.notified_routes is not None:
            if state.notified_routes:  # nobody told of the episode: nothing to end
                routed.append((transition, _to_told(render(transition, rule), state, policy)))
            continue
        hold = _hold(transition, rule, active, now)
        if hold is not None:
            held.append(hold)
            continue
        names = _route_names(transition, state, rule, policy)
        routed.append((transition, route(render(transition, rule), names, policy, now)))
    return routed, held


_TO_THOSE_TOLD = frozenset({Reason.RESOLVED, Reason.ACKED})
"""Sent to every route told in the episode, silenced or muted or not (DESIGN §5)."""


def _to_told(message: Message, state: AlertState, policy: Policy) -> Routed:
    return Routed(message, tuple(r for r in state.notified_routes or () if r in policy.routes))


def _route_names(
    transition: Transition, state: AlertState | None, rule: Rule | None, policy: Policy
) -> tuple[str, ...]:
    """The rule's routes (else the default), plus the escalation route once escalated;
    an `UNACKED` message goes to the escalation route only."""
    escalation = escalation_route(state, rule)
    if transition.reason is Reason.UNACKED:
        return escalation
    if not escalation:
        return rule.routes if rule else ()
    base = (rule.routes if rule else ()) or (
        (policy.default_route,) if policy.default_route else ()
    )
    return tuple(dict.fromkeys((*base, *escalation)))


def _hold(
    transition: Transition, rule: Rule | None, active: Sequence[Silence], now: datetime
) -> Held | None:
    silence = silenced_by(transition.key, active, now)
    if silence is not None:
        return Held(transition.key, transition.reason, silence.id)
    if rule is not None and rule.mute and is_muted(rule.mute, now):
        return Held(transition.key, transition.reason)
    return None


def route(message: Message, rule_routes: Sequence[str], policy: Policy, now: datetime) -> Routed:
    """Where `message` goes: the rule's routes, else the default route; only routes whose
    `min_severity` it reaches; a route whose `mute` holds at `now` is set aside, unless
    the message is `urgent` (money). Pure."""
    names = list(rule_routes) or ([policy.default_route] if policy.default_route else [])
    routes = [
        n for n in names if n in policy.routes and message.severity >= policy.routes[n].min_severity
    ]
    muted = [] if message.urgent else [n for n in routes if _muted(policy.routes[n], now)]
    return Routed(message, tuple(n for n in routes if n not in muted), tuple(muted))


def _muted(spec: RouteSpec, now: datetime) -> bool:
    return bool(spec.mute) and is_muted(spec.mute, now)

"""The fraud hold on top-ups (DESIGN §6.3), pure: which firings hold, which hold binds.

- A rule with `holds_topups: true` that fires (`find_firings`) puts its account's
  top-ups on hold for `topup.hold_after` from its last firing. A one-shot rule (audit,
  credentials) fires at each cycle that brings it new events: each such cycle is its own
  firing (`episode`: the first new event's id; events are alerted once). A stateful rule
  fires every cycle it is firing (one episode: the alert's `fired_at`), so its hold
  lasts `hold_after` past the end.
- A hold set by hand (`topups hold`) lasts until released.
- `topups release` lifts every hold of the account; a later firing (a new episode)
  holds again, one of a released episode does not.
- `binding_hold` says which hold, if any, stops a top-up at `now`: the policy
  (watcher/core/topup.py `decide`) refuses with reason `held`.

Which kinds may take the key is the rule models' business: a kind derives from
`_HoldsRule` in watcher/core/rulekinds.py; `HOLD_KINDS` is read off them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from watcher.core.lifecycle import Reason, Transition
from watcher.core.model import AlertKey, AlertState, Phase
from watcher.core.render import audit_line, when
from watcher.core.rulefile import Rule
from watcher.core.rules import Finding

HOLD_KINDS: tuple[str, ...] = tuple(
    sorted(
        get_args(model.model_fields["kind"].annotation)[0]
        for model in get_args(get_args(Rule)[0])
        if "holds_topups" in model.model_fields
    )
)
"""The rule kinds that may set `holds_topups` (from the rule models)."""

MAX_CAUSE = 300


def holds_topups(rule: Any) -> bool:
    """True for an enabled rule with `holds_topups: true`."""
    return getattr(rule, "holds_topups", False) is True and getattr(rule, "enabled", True)


class HoldKind(enum.StrEnum):
    RULE = "rule"  # a `holds_topups` rule fired
    MANUAL = "manual"  # `account-watcher topups hold`


@dataclass(frozen=True, slots=True)
class Firing:
    """A `holds_topups` rule firing for an account at `at`; `cause` says what it saw."""

    account: str
    rule: str
    episode: str
    cause: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Hold:
    """One hold as the ledger keeps it: set by a rule's firings or by hand.

    `last_at` is the rule's last firing (for a manual hold: when it was set); a released
    hold never binds again.
    """

    id: int
    account: str
    kind: HoldKind
    rule: str
    episode: str
    cause: str
    held_at: datetime
    last_at: datetime
    held_by: str | None = None
    released_at: datetime | None = None
    released_by: str | None = None
    release_reason: str | None = None

    def until(self, hold_after: timedelta) -> datetime | None:
        """When it ends by itself (None: only a release ends it)."""
        return None if self.kind is HoldKind.MANUAL else self.last_at + hold_after

    def active(self, now: datetime, hold_after: timedelta) -> bool:
        """True while it stops top-ups: not released and (manual, or within the window)."""
        if self.released_at is not None:
            return False
        until = self.until(hold_after)
        return until is None or now < until


def active_holds(holds: Iterable[Hold], now: datetime, hold_after: timedelta) -> list[Hold]:
    """The holds in force at `now`, the binding one first (see `binding_hold`)."""
    live = [h for h in holds if h.active(now, hold_after)]
    return sorted(live, key=lambda h: (h.kind is not HoldKind.MANUAL, -h.last_at.timestamp()))


def binding_hold(holds: Iterable[Hold], now: datetime, hold_after: timedelta) -> Hold | None:
    """The hold that stops a top-up at `now`: a manual one, else the latest firing's."""
    live = active_holds(holds, now, hold_after)
    return live[0] if live else None


# ---------------------------------------------------------------------------- firings


def find_firings(
    rules: Iterable[Rule],
    transitions: Iterable[Transition],
    alerts: Mapping[AlertKey, AlertState],
    now: datetime,
) -> list[Firing]:
    """The firings of `holds_topups` rules this cycle. Pure.

    In: the rules, this cycle's transitions, the alert states after the lifecycle step.
    Out: one firing per one-shot transition with events (episode: `now`), and one per
    alert of a stateful rule firing now (episode: its `fired_at`), sorted.
    """
    holding = {rule.name for rule in rules if holds_topups(rule)}
    out = [
        Firing(t.key.account, t.key.rule, episode_of(t.finding, now), cause_of(t.finding), now)
        for t in transitions
        if t.reason is Reason.EVENTS and t.key.rule in holding and t.finding is not None
    ]
    out += [
        Firing(key.account, key.rule, _stamp(state.fired_at), _cut(state.value), now)
        for key, state in alerts.items()
        if key.rule in holding and state.phase is Phase.FIRING and state.fired_at is not None
    ]
    return sorted(out, key=lambda f: (f.account, f.rule, f.episode))


def episode_of(finding: Finding, now: datetime) -> str:
    """A one-shot firing's episode: its first event's (or secret change's) id — each is
    alerted once — and how many came with it; else the cycle's time."""
    if finding.events:
        return f"event {finding.events[0].id} +{len(finding.events) - 1}"
    if finding.credential_changes:
        first = finding.credential_changes[0]
        return f"secret {first.change} {first.id} +{len(finding.credential_changes) - 1}"
    return _stamp(now)


def cause_of(finding: Finding | None) -> str:
    """What a firing saw, in one line: the first audit event (who, what), or the API
    secret ids that changed, or the finding's value."""
    if finding is None:
        return ""
    if finding.events:
        more = len(finding.events) - 1
        text = audit_line(finding.events[0]).removeprefix("- ")
        return _cut(text + (f" (+{more} more events)" if more else ""))
    if finding.credential_changes:
        parts = [f"secret {c.id} {c.change}" for c in finding.credential_changes]
        return _cut("API " + ", ".join(parts))
    return _cut(f"{finding.value} ({finding.threshold})" if finding.threshold else finding.value)


def describe(hold: Hold, hold_after: timedelta) -> str:
    """`held by rule R since T until U: cause` / `held by hand by W since T: reason`."""
    if hold.kind is HoldKind.MANUAL:
        return (
            f"held by hand by {hold.held_by or '?'} since {when(hold.held_at)}, until "
            f"released: {hold.cause}"
        )
    until = hold.until(hold_after)
    end = f" until {when(until)}" if until is not None else ""
    return f"held by rule {hold.rule} since {when(hold.held_at)}{end}: {hold.cause}"


def _stamp(at: datetime | None) -> str:
    return "" if at is None else at.astimezone(UTC).isoformat(timespec="microseconds")


def _cut(text: str) -> str:
    return text if len(text) <= MAX_CAUSE else text[: MAX_CAUSE - 1] + "…"

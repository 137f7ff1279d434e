"""The fraud hold (DESIGN §6.3), pure: hold windows, releases, firings, the decision.

Time is a parameter: every case states the holds and `now`, and what binds then.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from watcher.core.drift import DriftRule
from watcher.core.holds import (
    HOLD_KINDS,
    Firing,
    Hold,
    HoldKind,
    binding_hold,
    cause_of,
    find_firings,
    holds_topups,
)
from watcher.core.ledger_types import Guard, Pause
from watcher.core.lifecycle import Reason, Transition
from watcher.core.model import (
    AlertKey,
    AlertState,
    AuditChange,
    AuditEvent,
    CredentialChange,
    Phase,
    Severity,
)
from watcher.core.rules import AuditRule, BalanceRule, CredentialsRule, Finding
from watcher.core.topup import Caps, Pay, Refusal, Refuse, TriggerKind, decide
from watcher.core.topup_text import refusal_text

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
H, M = timedelta(hours=1), timedelta(minutes=1)
DAY = 24 * H
CAPS = Caps(Decimal("100.00"), Decimal("300.00"), H)


def rule_hold(hid: int, last: timedelta, *, released: timedelta | None = None) -> Hold:
    return Hold(
        id=hid,
        account="main",
        kind=HoldKind.RULE,
        rule="config-change",
        episode=f"e{hid}",
        cause=f"cause {hid}",
        held_at=T0 + last,
        last_at=T0 + last,
        released_at=None if released is None else T0 + released,
    )


def manual_hold(hid: int, at: timedelta, *, released: timedelta | None = None) -> Hold:
    return Hold(
        id=hid,
        account="main",
        kind=HoldKind.MANUAL,
        rule="",
        episode=f"m{hid}",
        cause="checking a login from abroad",
        held_at=T0 + at,
        last_at=T0 + at,
        held_by="alice",
        released_at=None if released is None else T0 + released,
    )


# holds, hold_after, now (after T0), id of the binding hold (None: top-ups allowed)
WINDOWS = [
    ("no holds", [], DAY, H, None),
    ("just fired", [rule_hold(1, 0 * H)], DAY, 0 * H, 1),
    ("within the window", [rule_hold(1, 0 * H)], DAY, 23 * H + 59 * M, 1),
    ("the window ends exactly hold_after after the firing", [rule_hold(1, 0 * H)], DAY, DAY, None),
    ("after the window", [rule_hold(1, 0 * H)], DAY, 25 * H, None),
    ("a shorter hold_after", [rule_hold(1, 0 * H)], 2 * H, 3 * H, None),
    ("a later firing extends it", [rule_hold(1, 0 * H), rule_hold(2, 20 * H)], DAY, 30 * H, 2),
    ("the latest firing binds", [rule_hold(1, 0 * H), rule_hold(2, 2 * H)], DAY, 3 * H, 2),
    ("released", [rule_hold(1, 0 * H, released=H)], DAY, 2 * H, None),
    (
        "a firing after the release holds again",
        [rule_hold(1, 0 * H, released=H), rule_hold(2, 2 * H)],
        DAY,
        3 * H,
        2,
    ),
    ("a manual hold never ends by itself", [manual_hold(1, 0 * H)], DAY, 400 * DAY, 1),
    ("a manual hold ends with its release", [manual_hold(1, 0 * H, released=H)], DAY, 2 * H, None),
    ("a manual hold binds first", [rule_hold(1, 5 * H), manual_hold(2, 0 * H)], DAY, 6 * H, 2),
]


@pytest.mark.parametrize(
    ("holds", "hold_after", "now", "binds"),
    [case[1:] for case in WINDOWS],
    ids=[case[0] for case in WINDOWS],
)
def test_which_hold_binds(
    holds: list[Hold], hold_after: timedelta, now: timedelta, binds: int | None
) -> None:
    found = binding_hold(holds, T0 + now, hold_after)
    assert (found.id if found else None) == binds


def test_until_is_hold_after_from_the_last_firing_and_none_by_hand() -> None:
    assert rule_hold(1, 2 * H).until(DAY) == T0 + 26 * H
    assert manual_hold(1, 0 * H).until(DAY) is None


# ---------------------------------------------------------------------------- the decision


@pytest.mark.parametrize(
    ("guard", "dry_run", "why"),
    [
        (Guard(hold=rule_hold(1, 0 * H)), False, Refusal.HELD),
        (Guard(hold=rule_hold(1, 0 * H)), True, Refusal.HELD),  # a dry run shows it too
        (Guard(Pause(T0, "bob", "x"), hold=rule_hold(1, 0 * H)), False, Refusal.PAUSED),
        (Guard(), False, None),
    ],
    ids=["held", "held in a dry run", "the kill switch wins", "nothing stops it"],
)
def test_decide_refuses_a_held_account(guard: Guard, dry_run: bool, why: Refusal | None) -> None:
    decision = decide(TriggerKind.START, CAPS, [], T0 + H, guard=guard, dry_run=dry_run)
    if why is None:
        assert isinstance(decision, Pay)
    else:
        assert isinstance(decision, Refuse) and decision.why is why


def test_a_held_refusal_says_when_the_hold_ends_and_names_rule_and_cause() -> None:
    guard = Guard(hold=rule_hold(1, 0 * H), hold_after=DAY)
    decision = decide(TriggerKind.STAY, CAPS, [], T0 + H, guard=guard)
    assert isinstance(decision, Refuse) and decision.next_allowed == T0 + DAY
    text = refusal_text(decision, CAPS, "USD", guard=guard)
    assert text.startswith("held: ")
    assert "rule config-change" in text and "cause 1" in text
    assert "until 2026-11-24 12:00 UTC" in text
    assert "account-watcher topups release --account main" in text


def test_a_manual_hold_names_who_and_why() -> None:
    guard = Guard(hold=manual_hold(1, 0 * H))
    decision = decide(TriggerKind.START, CAPS, [], T0 + H, guard=guard)
    assert isinstance(decision, Refuse)
    text = refusal_text(decision, CAPS, "USD", guard=guard)
    assert "by hand by alice" in text and "until released" in text
    assert "checking a login from abroad" in text


# ---------------------------------------------------------------------------- firings

AUDIT = AuditRule.model_validate({"name": "config-change", "kind": "audit", "holds_topups": True})
AUDIT_QUIET = AuditRule.model_validate({"name": "other-audit", "kind": "audit"})
SECRETS = CredentialsRule.model_validate(
    {"name": "secrets", "kind": "credentials", "holds_topups": True}
)
EVENT = AuditEvent(
    id="ev1",
    created_at=T0,
    change_type="update",
    change_made_by="organization_member",
    user_id="u-7",
    resource_id="mp-1",
    changes=(AuditChange("webhook_url", "https://a", "https://evil"),),
)


def events_transition(rule: str, finding: Finding) -> Transition:
    return Transition(Reason.EVENTS, finding.key, Severity.CRITICAL, T0, None, finding)


def test_one_shot_firings_each_cycle_its_own_episode_with_the_event_as_cause() -> None:
    key = AlertKey("config-change", "main", "")
    finding = Finding(key, Severity.CRITICAL, value="1 event", events=(EVENT,))
    quiet = Finding(AlertKey("other-audit", "main", ""), Severity.WARNING, events=(EVENT,))
    transitions = [
        events_transition("config-change", finding),
        events_transition("other-audit", quiet),
    ]
    firings = find_firings([AUDIT, AUDIT_QUIET], transitions, {}, T0)
    assert len(firings) == 1
    firing = firings[0]
    assert (firing.account, firing.rule, firing.at) == ("main", "config-change", T0)
    assert firing.episode == "event ev1 +0"  # each event is alerted once: its own episode
    assert "organization_member (user u-7) update mp-1" in firing.cause
    assert "webhook_url" in firing.cause and "https://evil" in firing.cause
    other = Finding(key, Severity.CRITICAL, events=(replace(EVENT, id="ev2"), EVENT))
    later = find_firings([AUDIT], [events_transition("config-change", other)], {}, T0 + M)
    assert later[0].episode == "event ev2 +1" and later[0].at == T0 + M


def test_a_credentials_firing_names_the_secret_ids() -> None:
    key = AlertKey("secrets", "eu", "")
    changes = (CredentialChange("ad6dc56f", "added"), CredentialChange("0b1c", "removed"))
    finding = Finding(key, Severity.CRITICAL, credential_changes=changes)
    firing = find_firings([SECRETS], [events_transition("secrets", finding)], {}, T0)[0]
    assert firing.cause == "API secret ad6dc56f added, secret 0b1c removed"
    assert firing.episode == "secret added ad6dc56f +1"


def test_a_drift_rule_holds_every_cycle_it_is_firing_in_one_episode() -> None:
    drift = DriftRule.model_validate(
        {
            "name": "recharge-drift",
            "kind": "drift",
            "expect": {"auto_recharge.enabled": False},
            "holds_topups": True,
        }
    )
    key = AlertKey("recharge-drift", "main", "")
    value = "auto_recharge.enabled: expected false → true"
    firing = AlertState(key, Phase.FIRING, Severity.CRITICAL, T0, T0, value=value)
    pending = AlertState(key, Phase.PENDING, Severity.CRITICAL, T0)
    got = find_firings([drift], [], {key: firing}, T0 + H)
    assert got == [
        Firing("main", "recharge-drift", T0.isoformat(timespec="microseconds"), value, T0 + H)
    ]
    assert find_firings([drift], [], {key: pending}, T0 + H) == []
    quiet = drift.model_copy(update={"holds_topups": False})
    assert find_firings([quiet], [], {key: firing}, T0 + H) == []


def test_which_rules_and_kinds_hold() -> None:
    assert HOLD_KINDS == ("audit", "credentials", "drift", "spend")
    assert holds_topups(AUDIT) and not holds_topups(AUDIT_QUIET)
    disabled = AUDIT.model_copy(update={"enabled": False})
    assert not holds_topups(disabled)
    balance = BalanceRule.model_validate({"name": "b", "kind": "balance", "below": 5})
    assert not holds_topups(balance)


def test_cause_of_many_events_counts_the_rest() -> None:
    key = AlertKey("config-change", "main", "")
    finding = Finding(key, Severity.CRITICAL, events=(EVENT, EVENT, EVENT))
    assert cause_of(finding).endswith("(+2 more events)")

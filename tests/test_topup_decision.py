"""The pure half of top-ups (triggers, caps, messages) and the ledger's own rules."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from watcher.core.lifecycle import Reason, Transition
from watcher.core.model import AccountSnapshot, AlertKey, AlertState, Balance, Phase, Severity
from watcher.core.rules import AuditRule, BalanceRule
from watcher.core.topup import (
    Caps,
    Pay,
    Refusal,
    Refuse,
    TriggerKind,
    Wait,
    decide,
    find_triggers,
    usage,
)
from watcher.core.topup_text import render_entry
from watcher.state.ledger import (
    Entry,
    EntryState,
    Guard,
    Ledger,
    LedgerError,
    NewEntry,
    Pause,
    VerifyState,
)
from watcher.state.store import StateTarget, open_store

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CAPS = Caps(Decimal("100.00"), Decimal("300.00"), timedelta(hours=1), Decimal("500.00"))


def entry(state: EntryState, ago: timedelta, amount: str = "100.00", **kw: object) -> Entry:
    return Entry(
        id=1,
        account="main",
        amount=Decimal(amount),
        currency="USD",
        state=state,
        created_at=NOW - ago,
        rule="low",
        reason="low is critical: 40.00 USD (below 50.00 USD)",
        **kw,  # type: ignore[arg-type]
    )


H, M = timedelta(hours=1), timedelta(minutes=1)
S, U, F, D = EntryState.SUCCEEDED, EntryState.UNKNOWN, EntryState.FAILED, EntryState.DRY_RUN
START, STAY = TriggerKind.START, TriggerKind.STAY


def case(
    name: str,
    kind: TriggerKind,
    entries: list[Entry],
    expected: type | Refusal,
    *,
    pause: Pause | None = None,
    dry: bool = False,
) -> object:
    """A row of `test_decide`: not paused and not a dry run unless given."""
    return pytest.param(kind, entries, pause, dry, expected, id=name)


@pytest.mark.parametrize(
    ("kind", "entries", "pause", "dry", "expected"),
    [
        case("nothing-yet", START, [], Pay),
        case("paused", START, [], Refusal.PAUSED, pause=Pause(NOW, "ops", "x")),
        case("start-within-interval", START, [entry(S, 30 * M)], Refusal.MIN_INTERVAL),
        case("stay-within-interval-waits", STAY, [entry(S, 30 * M)], Wait),
        case("interval-counts-failed-posts", STAY, [entry(F, 30 * M)], Wait),
        case("interval-elapsed", STAY, [entry(S, H)], Pay),
        case(
            "unknown-counts-toward-the-cap",
            STAY,
            [entry(S, 3 * H), entry(U, 2 * H), entry(S, H)],
            Refusal.MAX_PER_DAY,
        ),
        case("failed-frees-the-cap", STAY, [entry(S, 3 * H), entry(F, 2 * H), entry(S, H)], Pay),
        case(
            "exactly-at-the-day-cap-is-allowed",
            STAY,
            [entry(S, 3 * H, "150.00"), entry(S, H, "50.00")],
            Pay,
        ),
        case(
            "older-than-24h-leaves-the-day-window",
            STAY,
            [entry(S, 24 * H), entry(S, 25 * H), entry(S, 26 * H)],
            Pay,
        ),
        case(
            "one-cent-over-the-day-cap-is-refused",
            STAY,
            [entry(S, 3 * H, "150.01"), entry(S, H, "50.00")],
            Refusal.MAX_PER_DAY,
        ),
        case("month-cap", STAY, [entry(S, 24 * H * d) for d in range(1, 6)], Refusal.MAX_PER_MONTH),
        case(  # 400.00 used in 30 days, none in the last 24 h: + 100.00 lands on 500.00
            "exactly-at-the-month-cap-is-allowed",
            STAY,
            [entry(S, 48 * H, "200.00"), entry(S, 72 * H, "200.00")],
            Pay,
        ),
        case(
            "one-cent-over-the-month-cap-is-refused",
            STAY,
            [entry(S, 48 * H, "200.01"), entry(S, 72 * H, "200.00")],
            Refusal.MAX_PER_MONTH,
        ),
        case("clock-went-back", START, [entry(S, -H)], Refusal.MIN_INTERVAL),
        case("dry-runs-do-not-block-real-payments", START, [entry(D, 10 * M)], Pay),
        case(
            "dry-runs-simulate-the-interval",
            START,
            [entry(D, 10 * M)],
            Refusal.MIN_INTERVAL,
            dry=True,
        ),
    ],
)
def test_decide(
    kind: TriggerKind,
    entries: list[Entry],
    pause: Pause | None,
    dry: bool,
    expected: type | Refusal,
) -> None:
    decision = decide(kind, CAPS, entries, NOW, pause=pause, dry_run=dry)
    if isinstance(expected, Refusal):
        assert isinstance(decision, Refuse)
        assert decision.why is expected
    else:
        assert type(decision) is expected


def test_usage_sums_the_windows() -> None:
    entries = [entry(S, H), entry(U, 2 * H, "50.00"), entry(F, H), entry(S, 48 * H)]
    assert usage(entries, NOW) == usage(reversed(entries), NOW)
    used = usage(entries, NOW)
    assert (used.day, used.month, used.last_post) == (
        Decimal("150.00"),
        Decimal("250.00"),
        NOW - H,
    )


def test_min_interval_refusal_says_when_the_next_is_allowed() -> None:
    decision = decide(TriggerKind.START, CAPS, [entry(S, timedelta(minutes=20))], NOW)
    assert isinstance(decision, Refuse)
    assert decision.next_allowed == NOW + timedelta(minutes=40)


# ---------------------------------------------------------------------------- triggers

LOW = BalanceRule.model_validate(
    {"name": "low", "kind": "balance", "below": {"warning": "100", "critical": "50"}, "topup": True}
)
PLAIN = BalanceRule.model_validate({"name": "plain", "kind": "balance", "below": "50"})
AUDIT = AuditRule.model_validate({"name": "audit", "kind": "audit"})
BAL = Balance(Decimal("40"), Decimal("40"), Decimal(0), Decimal(0), "USD")


def state(
    rule: str, severity: Severity = Severity.CRITICAL, phase: Phase = Phase.FIRING
) -> AlertState:
    return AlertState(AlertKey(rule, "main"), phase, severity, NOW - H, fired_at=NOW - H)


def fired(rule: str, reason: Reason = Reason.FIRING) -> Transition:
    return Transition(reason, AlertKey(rule, "main"), Severity.CRITICAL, NOW, state(rule))


@pytest.mark.parametrize(
    ("alerts", "transitions", "balance", "expected"),
    [
        pytest.param([state("low")], [fired("low")], BAL, TriggerKind.START, id="starts-firing"),
        pytest.param(
            [state("low")], [fired("low", Reason.ESCALATED)], BAL, TriggerKind.START, id="escalated"
        ),
        pytest.param([state("low")], [], BAL, TriggerKind.STAY, id="stays-critical"),
        pytest.param(
            [state("low")], [fired("low", Reason.REPEAT)], BAL, TriggerKind.STAY, id="repeat"
        ),
        pytest.param([state("low", Severity.WARNING)], [], BAL, None, id="warning-only"),
        pytest.param([state("low", phase=Phase.PENDING)], [], BAL, None, id="pending"),
        pytest.param([state("plain")], [fired("plain")], BAL, None, id="no-topup-key"),
        pytest.param([state("low")], [fired("low")], None, None, id="balance-not-read"),
    ],
)
def test_find_triggers(
    alerts: list[AlertState],
    transitions: list[Transition],
    balance: Balance | None,
    expected: TriggerKind | None,
) -> None:
    found = find_triggers(
        [LOW, PLAIN, AUDIT],
        transitions,
        {s.key: s for s in alerts},
        [AccountSnapshot("main", balance=balance)],
    )
    assert [t.kind for t in found] == ([] if expected is None else [expected])
    if found:
        assert (found[0].account, found[0].rule.name, found[0].episode) == (
            "main",
            "low",
            "2026-11-23T11:00:00.000000+00:00",
        )


def test_one_trigger_per_account_and_a_start_wins() -> None:
    other = LOW.model_copy(update={"name": "another"})
    found = find_triggers(
        [LOW, other],
        [fired("low")],
        {s.key: s for s in (state("low"), state("another"))},
        [AccountSnapshot("main", balance=BAL)],
    )
    assert [(t.rule.name, t.kind) for t in found] == [("low", TriggerKind.START)]


# ---------------------------------------------------------------------------- messages


@pytest.mark.parametrize(
    ("item", "title", "severity", "in_body"),
    [
        pytest.param(
            entry(S, H, transaction_id="txn-9"),
            "[INFO] top-up paid 100.00 USD — main",
            Severity.INFO,
            "Transaction id: txn-9",
            id="paid",
        ),
        pytest.param(
            entry(U, H, error="POST timed out after 10s"),
            "[CRITICAL] top-up outcome unknown 100.00 USD — main",
            Severity.CRITICAL,
            'account-watcher topups settle 1 --as succeeded|failed --reason "..."',
            id="unknown",
        ),
        pytest.param(
            entry(F, H, error="HTTP 403 (10010 Authorization failed): No payment method"),
            "[CRITICAL] top-up failed 100.00 USD — main",
            Severity.CRITICAL,
            "API error: HTTP 403 (10010 Authorization failed): No payment method",
            id="failed",
        ),
        pytest.param(
            entry(D, H),
            "[INFO] top-up dry run: would have paid 100.00 USD — main",
            Severity.INFO,
            "Dry run: would have paid 100.00 USD",
            id="dry-run",
        ),
        pytest.param(
            Entry(
                1,
                "main",
                Decimal("100.00"),
                "USD",
                EntryState.REFUSED,
                NOW,
                "low",
                "max_per_day: 300.00 of 300.00 USD already used in the last 24 h",
            ),
            "[WARNING] top-up refused (max_per_day) 100.00 USD — main",
            Severity.WARNING,
            "300.00 of 300.00 USD already used",
            id="refused",
        ),
        pytest.param(
            entry(S, H, transaction_id="txn-9", verify_state=VerifyState.MISSING),
            "[CRITICAL] top-up not reflected in balance 100.00 USD — main",
            Severity.CRITICAL,
            "(transaction txn-9)",
            id="not-reflected",
        ),
    ],
)
def test_render_entry(item: Entry, title: str, severity: Severity, in_body: str) -> None:
    used = usage([entry(S, H)], NOW)
    message = render_entry(item, CAPS, used)
    assert (message.title, message.severity, message.rule, message.account) == (
        title,
        severity,
        "low",
        "main",
    )
    assert in_body in message.body
    assert (
        "Caps used: 100.00 of 300.00 USD in the last 24 h; "
        "100.00 of 500.00 USD in the last 30 days." in message.body
    )


# ---------------------------------------------------------------------------- ledger


@pytest.fixture
def ledger(state_target: StateTarget) -> Iterator[Ledger]:
    with open_store(state_target) as store:
        yield Ledger(store)


NEW = NewEntry("main", Decimal("100.00"), "USD", "low", "why", "ep", Decimal("40.00"))


def test_sending_entry_is_committed_before_begin_if_returns(
    ledger: Ledger, state_target: StateTarget
) -> None:
    decision, written = ledger.begin_if(
        lambda entries, guard: decide(TriggerKind.START, CAPS, entries, NOW, guard=guard),
        lambda d: isinstance(d, Pay),
        NEW,
        account="main",
        since=NOW - timedelta(days=31),
        now=NOW,
    )
    assert isinstance(decision, Pay) and written is not None
    with open_store(state_target) as other:  # another connection sees it
        assert [e.state for e in Ledger(other).entries()] == [EntryState.SENDING]
    again, none = ledger.begin_if(
        lambda entries, guard: decide(TriggerKind.START, CAPS, entries, NOW, guard=guard),
        lambda d: isinstance(d, Pay),
        NEW,
        account="main",
        since=NOW - timedelta(days=31),
        now=NOW,
    )
    assert none is None
    assert isinstance(again, Refuse) and again.why is Refusal.MIN_INTERVAL


def test_reconcile_turns_sending_into_unknown_to_be_announced(ledger: Ledger) -> None:
    sending = ledger.add(NEW, EntryState.SENDING, NOW, announce=False)
    done = ledger.add(NEW, EntryState.SENDING, NOW, announce=False)
    ledger.finish(done.id, EntryState.SUCCEEDED, NOW, transaction_id="t")
    ledger.mark_announced([done.id])
    changed = ledger.reconcile(NOW + H)
    assert [(e.id, e.state, e.announce) for e in changed] == [(sending.id, U, True)]
    assert [e.id for e in ledger.to_announce()] == [sending.id]
    assert ledger.reconcile(NOW + 2 * H) == []


def test_a_settled_entry_cannot_be_finished_or_settled_again(ledger: Ledger) -> None:
    item = ledger.add(NEW, EntryState.SENDING, NOW, announce=False)
    ledger.finish(item.id, EntryState.UNKNOWN, NOW)
    settled = ledger.settle(item.id, EntryState.SUCCEEDED, by="ops", reason="portal", now=NOW)
    assert (settled.state, settled.settled_by, settled.announce) == (S, "ops", False)
    with pytest.raises(LedgerError, match="not in flight"):
        ledger.finish(item.id, EntryState.FAILED, NOW)
    with pytest.raises(LedgerError, match="only unknown entries are settled"):
        ledger.settle(item.id, EntryState.FAILED, by="ops", reason="again", now=NOW)
    with pytest.raises(LedgerError, match="give a reason"):
        ledger.settle(item.id, EntryState.FAILED, by="ops", reason=" ", now=NOW)


def test_pause_and_resume(ledger: Ledger) -> None:
    assert ledger.paused() is None
    ledger.pause(by="ops", reason="card", now=NOW)
    assert ledger.paused() == Pause(NOW, "ops", "card")
    assert ledger.resume().pause == Pause(NOW, "ops", "card")
    assert ledger.paused() is None and ledger.resume() == Guard()

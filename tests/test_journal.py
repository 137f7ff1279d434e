"""The ledger journal, the state database's identity and the guard of a lost or fresh
state: pure reading and deciding, with time as a parameter; real files in tmp_path."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from watcher.core.topup import Caps, Pay, Refusal, Refuse, TriggerKind, Wait, decide
from watcher.state import journal
from watcher.state.ledger import EntryState, Guard, Ledger, NewEntry, StateLost
from watcher.state.store import APPLICATION_ID, Store, StoreError

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
CAPS = Caps(Decimal("100.00"), Decimal("300.00"), H)
NEW = NewEntry("main", Decimal("100.00"), "USD", "low", "why", "ep", Decimal("40.00"))
LOST = StateLost(NOW, "1 top-up(s) missing")


@pytest.mark.parametrize(
    ("kind", "guard", "dry", "expected"),
    [
        pytest.param(TriggerKind.START, Guard(), False, Pay, id="nothing"),
        pytest.param(TriggerKind.START, Guard(lost=LOST), False, Refusal.STATE_LOST, id="lost"),
        pytest.param(TriggerKind.STAY, Guard(lost=LOST), False, Refusal.STATE_LOST, id="lost-stay"),
        pytest.param(TriggerKind.START, Guard(lost=LOST), True, Pay, id="lost-dry-run-pays"),
        pytest.param(
            TriggerKind.START,
            Guard(fresh_since=NOW - 59 * timedelta(minutes=1)),
            False,
            Refusal.FRESH_STATE,
            id="fresh-within-interval",
        ),
        pytest.param(
            TriggerKind.STAY,
            Guard(fresh_since=NOW - 30 * timedelta(minutes=1)),
            False,
            Wait,
            id="fresh-stay-waits",
        ),
        pytest.param(TriggerKind.START, Guard(fresh_since=NOW - H), False, Pay, id="fresh-over"),
        pytest.param(TriggerKind.START, Guard(fresh_since=NOW), True, Pay, id="fresh-dry-run"),
    ],
)
def test_decide_with_a_guard(
    kind: TriggerKind, guard: Guard, dry: bool, expected: type | Refusal
) -> None:
    decision = decide(kind, CAPS, [], NOW, guard=guard, dry_run=dry)
    if isinstance(expected, Refusal):
        assert isinstance(decision, Refuse) and decision.why is expected
    else:
        assert isinstance(decision, expected)


def test_fresh_refusal_says_when_top_ups_may_start() -> None:
    decision = decide(TriggerKind.START, CAPS, [], NOW, guard=Guard(fresh_since=NOW))
    assert isinstance(decision, Refuse) and decision.next_allowed == NOW + H


# ---------------------------------------------------------------------------- the journal


def test_journal_folds_lines_and_ignores_a_torn_last_write(tmp_path: Path) -> None:
    path = tmp_path / "state.db.ledger"
    journal.append(path, _sending(1))
    journal.append(path, {"op": "finish", "id": 1, "state": "unknown", "at": NOW.isoformat()})
    journal.append(path, _sending(2))
    with path.open("a") as file:
        file.write('{"op": "finish", "id": 2, "sta')  # a crash mid-write
    read = journal.read(path)
    assert {i: e.state for i, e in read.entries.items()} == {1: "unknown", 2: "sending"}
    assert read.damaged == []
    assert read.entries[1].amount == Decimal("100.00")
    assert path.stat().st_mode & 0o777 == 0o600


def test_journal_reports_damaged_lines(tmp_path: Path) -> None:
    path = tmp_path / "state.db.ledger"
    journal.append(path, _sending(1))
    with path.open("a") as file:
        file.write("garbage\n")
    journal.append(path, {"op": "nope", "id": 1, "state": "x"})
    assert journal.read(path).damaged == [2, 3]
    assert journal.read(tmp_path / "missing.ledger").entries == {}


def test_every_money_write_reaches_the_journal(tmp_path: Path) -> None:
    with Store.open(tmp_path / "state.db") as store:
        ledger = Ledger(store)
        _, entry = ledger.begin_if(
            lambda e, g: 1, lambda d: True, NEW, account="main", since=NOW - H, now=NOW
        )
        assert entry is not None
        assert journal.read(_path(ledger)).entries[entry.id].state == "sending"
        ledger.finish(entry.id, EntryState.UNKNOWN, NOW)
        ledger.settle(entry.id, EntryState.FAILED, by="ops", reason="portal", now=NOW)
        read = journal.read(_path(ledger)).entries[entry.id]
        assert (read.state, read.settled_by, read.settle_reason) == ("failed", "ops", "portal")
        ledger.add(NEW, EntryState.DRY_RUN, NOW)  # moves no money: not journaled
        assert list(journal.read(_path(ledger)).entries) == [entry.id]


def test_recover_restores_what_the_database_lost_and_refuses(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    with Store.open(state) as store:
        ledger = Ledger(store)
        assert ledger.recover(NOW).fresh_since == NOW  # new database, no journal
        ledger.resume()
        ledger.begin_if(lambda e, g: 1, lambda d: True, NEW, account="main", since=NOW - H, now=NOW)
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    with Store.open(state) as store:
        ledger = Ledger(store)
        guard = ledger.recover(NOW + H)
        assert guard.fresh_since is None and guard.lost is not None
        assert "#1; 1 in doubt" in guard.lost.found
        [restored] = ledger.entries()
        assert (restored.state, restored.announce, restored.amount) == (
            EntryState.UNKNOWN,
            True,
            Decimal("100.00"),
        )
        assert ledger.recover(NOW + 2 * H).lost == guard.lost, "found once, kept until resume"
        assert ledger.resume().lost == guard.lost
        assert ledger.guard() == Guard()


def test_recover_seeds_the_journal_from_a_state_older_than_it(tmp_path: Path) -> None:
    with Store.open(tmp_path / "state.db") as store:
        ledger = Ledger(store)
        ledger.add(NEW, EntryState.SUCCEEDED, NOW - H)
        ledger.recover(NOW)
        assert journal.read(_path(ledger)).entries[1].state == "succeeded"
        assert ledger.guard().lost is None


# ---------------------------------------------------------------------------- identity


def test_a_new_database_is_marked_as_ours(tmp_path: Path) -> None:
    with Store.open(tmp_path / "state.db") as store:
        assert store.created
        assert store.pragma("application_id") == APPLICATION_ID
    with Store.open(tmp_path / "state.db") as store:
        assert not store.created


def test_a_database_from_before_the_application_id_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Store.open(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA application_id = 0")
    with Store.open(path) as store:
        assert not store.created
        assert store.pragma("application_id") == APPLICATION_ID


@pytest.mark.parametrize("app_id", [0, 1234])
def test_a_foreign_database_is_refused_and_left_alone(tmp_path: Path, app_id: int) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA application_id = {app_id}")
        conn.execute("CREATE TABLE meta (key TEXT)")  # one of our names is not enough
    before = path.read_bytes()
    with pytest.raises(StoreError, match="is not an account-watcher state database"):
        Store.open(path)
    assert path.read_bytes() == before


def _sending(entry_id: int) -> dict[str, object]:
    return {
        "op": "sending",
        "id": entry_id,
        "account": "main",
        "amount": "100.00",
        "currency": "USD",
        "created_at": NOW.isoformat(),
        "rule": "low",
        "reason": "why",
        "episode": "ep",
        "balance_before": "40.00",
    }


def test_a_finding_accepted_by_resume_does_not_mark_the_state_lost_again(tmp_path: Path) -> None:
    with Store.open(tmp_path / "state.db") as store:
        ledger = Ledger(store)
        ledger.recover(NOW)
        ledger.resume()
        with _path(ledger).open("a") as file:
            file.write("garbage\n")  # stays in the append-only journal for good
        assert ledger.recover(NOW + H).lost is not None
        ledger.resume()  # a human looked at it
        assert ledger.recover(NOW + 2 * H).lost is None, "the same damage is not news"
        with _path(ledger).open("a") as file:
            file.write("more garbage\n")
        assert ledger.recover(NOW + 3 * H).lost is not None, "new damage is"


def _path(ledger: Ledger) -> Path:
    """The journal file of a SQLite state (a PostgreSQL state has none)."""
    assert ledger.journal is not None
    return ledger.journal

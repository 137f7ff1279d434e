"""The fraud holds in the state database (watcher/state/holds.py): firings, holds by hand,
releases, and what a lost state does to a hold (the journal keeps it: never silently
lifted). Real SQLite files in `tmp_path`; time is a parameter."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import established_state

from watcher.core.holds import Firing, HoldKind
from watcher.state.journal import journal_path
from watcher.state.ledger import Ledger
from watcher.state.store import StateTarget, Store, open_store

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
DAY = 24 * H


def firing(at: datetime, episode: str = "event ev1 +0") -> Firing:
    return Firing("main", "config-change", episode, "intruder update mp-1", at)


def test_a_firing_holds_a_later_one_of_its_episode_extends_and_a_release_lifts(
    state_target: StateTarget,
) -> None:
    with open_store(established_state(state_target)) as store:
        ledger = Ledger(store)
        first = ledger.holds.fired(firing(T0))
        assert first is not None and first.kind is HoldKind.RULE
        assert ledger.guard(account="main", now=T0 + 23 * H, hold_after=DAY).hold == first
        assert ledger.guard(account="other", now=T0, hold_after=DAY).hold is None
        assert ledger.guard().hold is None  # without an account: no hold judged
        again = ledger.holds.fired(firing(T0 + 10 * H))  # a stateful rule still firing
        assert again is not None and again.last_at == T0 + 10 * H
        assert ledger.holds.fired(firing(T0 + 5 * H)) is None  # older: nothing changes
        assert ledger.guard(account="main", now=T0 + 33 * H, hold_after=DAY).hold is not None

        released = ledger.holds.release(
            "main", by="alice", reason="our deploy", now=T0 + 12 * H, hold_after=DAY
        )
        assert [h.released_by for h in released] == ["alice"]
        assert ledger.guard(account="main", now=T0 + 12 * H, hold_after=DAY).hold is None
        assert ledger.holds.fired(firing(T0 + 13 * H)) is None  # a released episode stays so
        new = ledger.holds.fired(firing(T0 + 14 * H, episode="event ev2 +0"))
        assert new is not None and new.id != first.id  # a new firing holds again
        history = ledger.holds.all(account="main")
        assert [(h.id, h.release_reason) for h in history] == [
            (first.id, "our deploy"),
            (new.id, None),
        ]


def test_a_manual_hold_lasts_until_released(state_target: StateTarget) -> None:
    with open_store(established_state(state_target)) as store:
        ledger = Ledger(store)
        hold = ledger.holds.hold("main", by="bob", reason="checking", now=T0)
        later = T0 + 365 * DAY
        assert ledger.guard(account="main", now=later, hold_after=DAY).hold == hold
        assert ledger.holds.release("main", by="bob", reason="ok", now=later, hold_after=DAY)
        assert ledger.guard(account="main", now=later, hold_after=DAY).hold is None
        assert ledger.holds.release("main", by="bob", reason="x", now=later, hold_after=DAY) == []


def test_a_deleted_database_keeps_its_holds_and_refuses_top_ups(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store.open(established_state(path)) as store:
        ledger = Ledger(store)
        ledger.holds.fired(firing(T0))
        ledger.holds.hold("main", by="bob", reason="checking", now=T0)
    assert journal_path(path).exists()
    for leftover in path.parent.glob("s.db*"):
        if leftover != journal_path(path):
            leftover.unlink()
    with Store.open(path) as store:  # a new, empty database beside the old journal
        ledger = Ledger(store)
        guard = ledger.recover(T0 + H)
        assert guard.lost is not None
        assert "2 fraud hold(s) in the ledger journal" in guard.lost.found
        held = ledger.guard(account="main", now=T0 + H, hold_after=DAY).hold
        assert held is not None and held.kind is HoldKind.MANUAL and held.held_by == "bob"
        assert len(ledger.holds.all(account="main")) == 2
        ledger.resume()  # a human looked: the state is accepted, the holds stay
        assert ledger.guard().lost is None
        assert ledger.recover(T0 + 2 * H).lost is None  # not news at the next start
        assert ledger.guard(account="main", now=T0 + 2 * H, hold_after=DAY).hold is not None


def test_a_damaged_hold_line_in_the_journal_is_damage(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store.open(established_state(path)) as store:
        ledger = Ledger(store)
        ledger.holds.fired(firing(T0))
        with journal_path(path).open("a") as file:
            file.write('{"op": "hold", "id": 9}\n')
        guard = ledger.recover(T0)
        assert guard.lost is not None and "damaged lines" in guard.lost.found


def test_a_hold_restored_with_its_id_is_followed_by_new_ids(state_target: StateTarget) -> None:
    """Recovery writes rows with their ids given: ids made later must not collide
    (SQLite's AUTOINCREMENT follows by itself; PostgreSQL's identity is moved on)."""
    with open_store(established_state(state_target)) as store:
        ledger = Ledger(store)
        made = ledger.holds.hold("main", by="bob", reason="checking", now=T0)
        ledger.holds.restore(dataclasses.replace(made, id=made.id + 6, episode="restored"))
        after = ledger.holds.hold("other", by="bob", reason="checking", now=T0)
        assert after.id == made.id + 7

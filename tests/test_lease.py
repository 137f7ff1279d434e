"""The leader lease on a real PostgreSQL server (watcher/state/lease.py, DESIGN §10)."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from watcher.state.db import FencedOut
from watcher.state.lease import Lease, LeaseError, new_holder
from watcher.state.ledger import EntryState, Ledger, NewEntry
from watcher.state.store import Store, open_store

TTL = timedelta(seconds=30)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NEW = NewEntry(
    account="main",
    amount=Decimal("100.00"),
    currency="USD",
    rule="low-credit",
    reason="critical",
    episode="e1",
    balance_before=Decimal("20.00"),
)


@pytest.fixture
def pg_url(pg_url: str) -> str:
    """A fresh schema with the state's tables, `leader_lease` among them."""
    open_store(pg_url).close()
    return pg_url


def lease(url: str, holder: str | None = None) -> Lease:
    return Lease(url, holder or new_holder(), TTL, where="127.0.0.1/test")


def expire(url: str) -> None:
    """Move the lease's expiry into the past by the database clock (no sleeping)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE leader_lease SET expires_at = clock_timestamp() - interval '1 s'")


def test_the_first_takes_it_and_the_second_sees_who_holds_it(pg_url: str) -> None:
    first, second = lease(pg_url, "a"), lease(pg_url, "b")
    mine = first.acquire()
    theirs = second.acquire()
    assert (mine.ours, mine.epoch) == (True, 1)
    assert 25 < mine.expires_in <= 30
    assert (theirs.ours, theirs.holder, theirs.epoch) == (False, "a", 1)
    assert second.epoch == 0


def test_renewing_keeps_the_epoch_and_moves_the_expiry(pg_url: str) -> None:
    first = lease(pg_url, "a")
    first.acquire()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE leader_lease SET expires_at = clock_timestamp() + interval '2 s'")
    again = first.acquire()
    assert (again.ours, again.epoch) == (True, 1)
    assert again.expires_in > 25


def test_an_expired_lease_goes_to_the_next_under_a_new_epoch(pg_url: str) -> None:
    first, second = lease(pg_url, "a"), lease(pg_url, "b")
    first.acquire()
    expire(pg_url)
    taken = second.acquire()
    lost = first.acquire()
    assert (taken.ours, taken.epoch) == (True, 2)
    assert (lost.ours, lost.holder, lost.epoch) == (False, "b", 2)
    assert first.epoch == 0


def test_our_own_expired_lease_is_taken_again_not_extended(pg_url: str) -> None:
    first = lease(pg_url, "a")
    first.acquire()
    expire(pg_url)
    again = first.acquire()
    assert (again.ours, again.epoch) == (True, 2)


def test_release_hands_over_at_once(pg_url: str) -> None:
    first, second = lease(pg_url, "a"), lease(pg_url, "b")
    first.acquire()
    assert not second.acquire().ours
    first.release()
    assert second.acquire().ours
    assert not first.acquire().ours


def test_of_many_at_once_exactly_one_leads(pg_url: str) -> None:
    leases = [lease(pg_url, f"h{i}") for i in range(8)]
    leases[0].acquire()  # the table exists before the race
    leases[0].release()
    barrier = threading.Barrier(len(leases))
    views: list[bool] = []

    def race(one: Lease) -> None:
        barrier.wait()
        views.append(one.acquire().ours)

    threads = [threading.Thread(target=race, args=(one,)) for one in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(views) == [False] * 7 + [True]


def test_an_unreachable_server_is_one_sentence_without_the_password() -> None:
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://watcher:hunter2secret@127.0.0.1:{port}/postgres"
    with pytest.raises(LeaseError) as caught:
        Lease(url, "a", TTL, where="127.0.0.1/postgres").acquire()
    text = str(caught.value)
    assert text.startswith("the leader lease on 127.0.0.1/postgres failed: ")
    assert "hunter2secret" not in text
    assert "\n" not in text


# -- fencing: the store's writes with side effects check the lease in their transaction


def fenced_store(url: str, holder: str) -> tuple[Store, Lease]:
    store = open_store(url)
    mine = lease(url, holder)
    assert mine.acquire().ours
    store.fence = mine.fence
    return store, mine


def test_a_leaders_fenced_write_passes_and_a_deposed_ones_writes_nothing(pg_url: str) -> None:
    store, _mine = fenced_store(pg_url, "a")
    with store:
        ledger = Ledger(store)
        ledger.add(NEW, EntryState.REFUSED, NOW)  # while ours: written
        expire(pg_url)
        assert lease(pg_url, "b").acquire().ours  # taken over
        with pytest.raises(FencedOut, match=r"no longer holds the lease .*epoch 1"):
            ledger.add(NEW, EntryState.REFUSED, NOW)
        assert len(ledger.entries()) == 1


def test_a_takeover_waits_for_the_leaders_open_fenced_transaction(pg_url: str) -> None:
    store, _mine = fenced_store(pg_url, "a")
    with store:
        ledger = Ledger(store)
        expire_soon = "UPDATE leader_lease SET expires_at = clock_timestamp() + interval '1 s'"
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(expire_soon)
        with store.transaction():
            ledger.add(NEW, EntryState.REFUSED, NOW)  # fenced: the lease row is share-locked
            time.sleep(1.2)  # the lease expires while this transaction is open
            with pytest.raises(LeaseError, match="lock timeout"):  # it had to wait
                lease(pg_url, "b").acquire()
        assert lease(pg_url, "b").acquire().ours  # after the commit it goes through
        assert len(ledger.entries()) == 1

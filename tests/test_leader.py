"""Who acts (watcher/service/leader.py) on a real PostgreSQL state: election, standby,
deposition, a dropped lease connection, a clean stop."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from watcher.service.leader import Elected, Role
from watcher.state.lease import Lease, new_holder
from watcher.state.store import Store, open_store

TTL = timedelta(seconds=30)


@pytest.fixture
def store(pg_url: str) -> Iterator[Store]:
    with open_store(pg_url) as opened:
        yield opened


def elected(url: str, store: Store, holder: str | None = None) -> Elected:
    return Elected(Lease(url, holder or new_holder(), TTL, where=store.where), store)


def expire(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE leader_lease SET expires_at = clock_timestamp() - interval '1 s'")


def test_elected_then_leading_and_the_store_is_fenced(pg_url: str, store: Store) -> None:
    one = elected(pg_url, store, "a")
    assert store.fence is None
    first, second = one.check(TTL), one.check(TTL)
    assert (first.role, first.detail) == (Role.ELECTED, "leading (epoch 1)")
    assert second.role is Role.LEADING
    assert store.fence is not None


def test_a_standby_names_the_leader_and_takes_over_when_its_lease_expires(
    pg_url: str, store: Store
) -> None:
    leader, standby = elected(pg_url, store, "a"), elected(pg_url, store, "b")
    leader.check(TTL)
    waiting = standby.check(TTL)
    assert waiting.role is Role.STANDBY and not waiting.leads
    assert waiting.detail.startswith("standby: a leads (lease expires in ")
    expire(pg_url)
    assert standby.check(TTL).role is Role.ELECTED
    lost = leader.check(TTL)
    assert (lost.role, lost.detail) == (Role.DEPOSED, "standby: the lease was lost")
    assert leader.check(TTL).role is Role.STANDBY


def test_a_dropped_lease_connection_does_not_cost_the_lead(pg_url: str, store: Store) -> None:
    one = elected(pg_url, store, "a")
    one.check(TTL)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        dropped = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE '%leader_lease%' AND pid <> pg_backend_pid()"
        ).fetchall()
    assert dropped == [(True,)]
    again = one.check(TTL)
    assert (again.role, again.detail) == (Role.LEADING, "leading (epoch 1)")


def test_a_clean_stop_releases_the_lease(pg_url: str, store: Store) -> None:
    leader, standby = elected(pg_url, store, "a"), elected(pg_url, store, "b")
    leader.check(TTL)
    assert standby.check(TTL).role is Role.STANDBY
    leader.close()
    assert standby.check(TTL).role is Role.ELECTED

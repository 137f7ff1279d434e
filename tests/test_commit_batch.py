"""The cycle's commit of what every account's collect read (watcher/service/commit.py):
one batched statement per kind of row, whatever the number of accounts, the same stored
state as the single-row writes, and all or nothing. On real SQLite files and, where the
behaviour is the backends', on a real PostgreSQL schema too."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from watcher.core.model import AccountSnapshot, AuditEvent, Balance, SourceName, WebhookDelivery
from watcher.providers.base import Collected, SourceFailure
from watcher.service.commit import write_collected
from watcher.state.store import StateTarget, Store, StoreError, dt, open_store, ts

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=10)
BALANCE = Balance(Decimal("80.10"), Decimal("80.10"), Decimal(0), Decimal("-1.5"), "USD")
STEADY = (SourceName.BALANCE, SourceName.AUDIT, SourceName.WEBHOOKS)
TABLES = {
    "cursors": "account, source, value",
    "source_health": "account, source, last_attempt, last_ok, failing_since, last_error, auth",
    "balance_samples": "account, at, balance, available_credit, credit_limit, pending, currency",
    "webhook_failures": "account, id, started_at, status, event_type, url, http_status, error",
    "audit_seen": "account, id, created_at, seen_at",
}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def delivery(id_: str, minutes: float, http_status: Any = 503) -> WebhookDelivery:
    return WebhookDelivery(id_, at(minutes), "failed", "sent", "https://h/a", http_status, "")


def steady(account: str, number: int = 0) -> Collected:
    """A steady cycle of one account: what a balance + audit + webhook watch writes."""
    return Collected(
        snapshot=AccountSnapshot(account=account),
        succeeded=frozenset(STEADY[:2]),
        failures={SourceName.WEBHOOKS: SourceFailure("HTTP 503")},
        balance_sample=BALANCE,
        audit_seen=(AuditEvent(f"e-{account}-{number}", at(number)),),
        webhook_failures=(delivery(f"d-{account}-{number}", number),),
        cursors={source: NOW for source in STEADY},
        resumes={SourceName.AUDIT: None, SourceName.WEBHOOKS: None},
    )


def write_one_by_one(store: Store, collected: Sequence[Collected], now: datetime) -> None:
    """The commit's writes as they were before the batches: account by account, row by
    row through the single-row methods (the reference the batches must equal)."""
    with store.transaction():
        for one in collected:
            name = one.account
            if one.balance_sample is not None:
                store.add_balance_sample(name, now, one.balance_sample)
            store.upsert_webhook_failures(name, one.webhook_failures)
            store.mark_audit_seen(name, one.audit_seen, now)
            for source, value in one.cursors.items():
                store.set_cursor(name, str(source), value)
            for source, resume in one.resumes.items():
                store.set_resume(name, str(source), resume)
            for source in one.succeeded:
                store.record_source_result(name, str(source), now, None)
            for source, failure in one.failures.items():
                error, auth = failure.message, failure.auth
                store.record_source_result(name, str(source), now, error, auth=auth)


def dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: [
            tuple(row)
            for row in store.query(f"SELECT {columns} FROM {table} ORDER BY {columns}")  # noqa: S608
        ]
        for table, columns in TABLES.items()
    }


# -- one statement per kind, whatever the number of accounts ------------------------


class Counting:
    """A real sqlite3 connection, counting the statements the store hands it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.calls = 0

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        self.calls += 1
        return self.conn.execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> Any:
        self.calls += 1
        return self.conn.executemany(sql, parameters)

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[tuple[Store, Counting, list[str]]]:
    path = tmp_path / "state.db"
    Store.open(path).close()  # created and migrated as the daemon does
    raw = sqlite3.connect(path, isolation_level=None)
    traced: list[str] = []
    raw.set_trace_callback(traced.append)
    conn = Counting(raw)
    with Store(path, conn) as store:
        yield store, conn, traced


def statements_of_a_commit(
    store: Store, conn: Counting, traced: list[str], accounts: int, number: int
) -> tuple[int, list[str]]:
    collected = [steady(f"acct-{i:03d}", number) for i in range(accounts)]
    before, traced[:] = conn.calls, []
    with store.transaction():
        write_collected(store, collected, NOW + timedelta(minutes=number))
    return conn.calls - before, [s for s in traced if s.split()[0] in ("SAVEPOINT", "RELEASE")]


def test_a_commit_of_fifty_accounts_issues_as_many_statements_as_one_of_one(
    counted: tuple[Store, Counting, list[str]],
) -> None:
    store, conn, traced = counted
    one, one_savepoints = statements_of_a_commit(store, conn, traced, 1, 1)
    fifty, fifty_savepoints = statements_of_a_commit(store, conn, traced, 50, 2)
    assert fifty == one
    # BEGIN, COMMIT; one statement per kind of row (7: source results are successes and
    # failures); SAVEPOINT and RELEASE around the whole and around those two
    assert one == 2 + 7 + 4
    assert fifty_savepoints == one_savepoints
    assert len(store.query("SELECT * FROM balance_samples")) == 51


def test_a_write_inside_an_open_transaction_takes_no_savepoint(
    counted: tuple[Store, Counting, list[str]],
) -> None:
    """A single statement is atomic by itself: inside the caller's transaction it runs as
    it is (a failure rolls the caller's transaction back); an explicit nested
    `transaction()` keeps its savepoint."""
    store, _, traced = counted
    with store.transaction():
        traced[:] = []
        store.set_cursor("a", "audit", NOW)
        store.record_source_result("a", "audit", NOW, "HTTP 503")
        store.executemany("DELETE FROM cursors WHERE account = ?", [("b",), ("c",)])
        store.set_meta("k", "v")
        assert not [s for s in traced if s.startswith("SAVEPOINT")]
        with store.transaction():
            store.set_cursor("a", "balance", NOW)
        assert [s for s in traced if s.startswith("SAVEPOINT")] == ["SAVEPOINT sp1"]
    traced[:] = []
    store.set_cursor("a", "webhooks", NOW)  # outside any: its own transaction
    assert traced[0] == "BEGIN IMMEDIATE" and traced[-1] == "COMMIT"
    assert store.get_cursor("a", "balance") == NOW


# -- the same stored state as the single-row writes, on both backends ---------------


@pytest.fixture(params=["sqlite", "postgresql"])
def two_targets(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[StateTarget, ...]:
    if request.param == "sqlite":
        return tmp_path / "one.db", tmp_path / "batch.db"
    server = request.getfixturevalue("pg_server")
    return str(server.fresh_url()), str(server.fresh_url())


def earlier(store: Store) -> None:
    """What an earlier cycle left: a failing source, a resume point, a stored failure,
    a seen audit id, a cursor."""
    store.record_source_result("a", "audit", at(0), "timeout")
    store.record_source_result("a", "balance", at(0), None)
    store.set_cursor("a", "audit", at(0))
    store.set_resume("a", "webhooks", '{"page": 3}')
    store.upsert_webhook_failures("a", [delivery("d1", 0, http_status=503)])
    store.mark_audit_seen("a", [AuditEvent("e1", at(0))], at(0))


CYCLE = [
    Collected(  # a source failing again, one recovering, a resume done, another not yet
        snapshot=AccountSnapshot(account="a"),
        succeeded=frozenset({SourceName.BALANCE, SourceName.WEBHOOKS}),
        failures={SourceName.AUDIT: SourceFailure("HTTP 503")},
        balance_sample=BALANCE,
        audit_seen=(AuditEvent("e1", at(0)), AuditEvent("e2", at(9))),
        webhook_failures=(delivery("d1", 0, http_status=None), delivery("d2", 8)),
        cursors={SourceName.BALANCE: NOW, SourceName.WEBHOOKS: NOW},
        resumes={SourceName.WEBHOOKS: None, SourceName.AUDIT: '{"page": 2}'},
    ),
    Collected(  # a first failure, rejected credentials
        snapshot=AccountSnapshot(account="b"),
        succeeded=frozenset({SourceName.AUDIT}),
        failures={SourceName.BALANCE: SourceFailure("HTTP 401", auth=True)},
        cursors={SourceName.AUDIT: NOW},
    ),
    Collected(snapshot=AccountSnapshot(account="c")),  # read nothing
    steady("d"),
]


def test_the_batches_store_what_the_single_row_writes_store(
    two_targets: tuple[StateTarget, StateTarget],
) -> None:
    with open_store(two_targets[0]) as one, open_store(two_targets[1]) as batch:
        for store in (one, batch):
            earlier(store)
        write_one_by_one(one, CYCLE, NOW)
        with batch.transaction():
            write_collected(batch, CYCLE, NOW)
        assert dump(batch) == dump(one)
        health = {(h.account, h.source): h for h in batch.source_health()}
    assert health["a", "audit"].failing_since == at(0)  # kept from the earlier failure
    assert health["a", "audit"].last_error == "HTTP 503"
    assert health["a", "balance"].last_ok == NOW
    assert health["b", "balance"].failing_since == NOW
    assert health["b", "balance"].auth
    assert health["d", "webhooks"].failing_since == NOW
    with open_store(two_targets[1]) as batch:
        assert batch.get_resume("a", "webhooks") is None  # a resume None deletes it
        assert batch.get_resume("a", "audit") == '{"page": 2}'
        assert batch.get_cursor("a", "audit") == at(0)
        assert [d.http_status for d in batch.webhook_failures("a", at(-1))] == [None, 503]
        seen = batch.query("SELECT id, seen_at FROM audit_seen WHERE account = 'a' ORDER BY id")
        assert [(id_, dt(when)) for id_, when in seen] == [("e1", at(0)), ("e2", NOW)]


def test_the_single_row_webhook_upsert_still_counts_the_new_ids(state_target: StateTarget) -> None:
    with open_store(state_target) as store:
        assert store.upsert_webhook_failures("a", [delivery("d1", 0), delivery("d1", 0)]) == 1
        assert store.upsert_webhook_failures("a", [delivery("d1", 1), delivery("d2", 1)]) == 1
        assert store.upsert_webhook_failures("a", []) == 0
        assert [d.started_at for d in store.webhook_failures("a", at(-1))] == [at(1), at(1)]


# -- all or nothing ---------------------------------------------------------------


def test_a_failing_statement_inside_the_commit_rolls_back_the_whole_commit(
    state_target: StateTarget,
) -> None:
    """The second row of the failed deliveries' batch cannot be stored (an INTEGER
    column given text, refused by both engines): nothing of the commit stays, not the
    samples written before it nor the first row of its own batch."""
    broken = Collected(
        snapshot=AccountSnapshot(account="b"),
        webhook_failures=(delivery("bad", 5, http_status="not a number"),),
        cursors={SourceName.AUDIT: NOW},
    )
    with open_store(state_target) as store:
        store.set_cursor("a", "audit", at(0))
        before = dump(store)
        with pytest.raises(StoreError, match="failed"), store.transaction():
            store.record_cycle(NOW, duration_s=1.0, errors=0)
            write_collected(store, [steady("a", 3), broken, steady("c", 3)], NOW)
        assert dump(store) == before
        assert store.last_cycle() is None
        with store.transaction():  # usable again afterwards
            write_collected(store, [steady("a", 3)], NOW)
    with open_store(state_target) as store:
        assert store.get_cursor("a", "audit") == NOW
        assert len(store.balance_samples("a", T0)) == 1


# -- the stored timestamps (ts/dt are on every row: cheap, and exactly as before) ---

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2026, 12, 1, 10, 0, tzinfo=UTC), "2026-12-01T10:00:00.000000+00:00"),
        (datetime(2026, 12, 1, 10, 0, 0, 5, tzinfo=UTC), "2026-12-01T10:00:00.000005+00:00"),
        (
            datetime(2026, 12, 1, 11, 0, tzinfo=timezone(timedelta(hours=1))),
            "2026-12-01T10:00:00.000000+00:00",
        ),
        # the hour that repeats when Berlin leaves summer time: fold tells the two apart
        (datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN), "2026-10-25T00:30:00.000000+00:00"),
        (datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN), "2026-10-25T01:30:00.000000+00:00"),
        (datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN), "2026-10-25T00:30:00.000000+00:00"),
    ],
)
def test_a_timestamp_is_stored_as_utc_text_with_microseconds(value: datetime, text: str) -> None:
    assert ts(value) == text
    assert ts(value) == text  # the same again (the UTC ones are remembered)
    assert dt(text) == value.astimezone(UTC)
    assert dt(text).tzinfo is UTC


def test_a_naive_timestamp_is_refused_even_at_an_instant_stored_before() -> None:
    ts(T0)
    with pytest.raises(ValueError, match="naive datetime"):
        ts(T0.replace(tzinfo=None))


def test_a_stored_timestamp_of_another_offset_comes_back_in_utc() -> None:
    assert dt("2026-12-01T11:00:00.000000+01:00") == T0
    assert dt("2026-12-01T11:00:00.000000+01:00").tzinfo is UTC


def test_failing_since_is_the_health_of_the_failing_sources_only(state_target: StateTarget) -> None:
    with open_store(state_target) as store:
        assert store.failing_since() == {}
        earlier(store)
        with store.transaction():
            write_collected(store, CYCLE, NOW)
        expected = {
            (h.account, h.source): h.failing_since
            for h in store.source_health()
            if h.failing_since is not None
        }
        assert store.failing_since() == expected
        assert expected == {
            ("a", "audit"): at(0),
            ("b", "balance"): NOW,
            ("d", "webhooks"): NOW,
        }

"""The state store: persistence, dedupe, windows, pruning, failures.

Every behaviour runs on both backends (`state_target`: a SQLite file, a PostgreSQL
schema); what only a SQLite file has (pragmas, WAL, its header, corruption, its
directory) is tested on SQLite, with the PostgreSQL counterparts at the end.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for

from watcher.core.model import (
    AlertKey,
    AlertState,
    AuditEvent,
    Balance,
    Phase,
    Severity,
    SourceName,
    WebhookDelivery,
)
from watcher.state.store import (
    SCHEMA_VERSION,
    CycleInfo,
    SourceHealth,
    StateTarget,
    Store,
    StoreError,
    open_store,
)

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def event(id_: str, minutes: float = 0) -> AuditEvent:
    return AuditEvent(id=id_, created_at=at(minutes), change_type="update")


def delivery(id_: str, minutes: float = 0, **kw: object) -> WebhookDelivery:
    fields: dict[str, object] = {
        "status": "failed",
        "event_type": "message.sent",
        "url": "https://hooks.example.com/a",
        "http_status": 503,
        "error": "",
    }
    fields.update(kw)
    return WebhookDelivery(id=id_, started_at=at(minutes), **fields)  # type: ignore[arg-type]


BALANCE = Balance(
    balance=Decimal("300.10"),
    available_credit=Decimal("0.000000001"),
    credit_limit=Decimal("1E+3"),
    pending=Decimal("-12.50"),
    currency="USD",
)

ALERTS = {
    state.key: state
    for state in [
        AlertState(
            key=AlertKey("low-credit", "main"),
            phase=Phase.FIRING,
            severity=Severity.CRITICAL,
            active_since=at(0),
            fired_at=at(5),
            last_notified_at=at(5),
            notified_severity=Severity.WARNING,
            value="42.00 USD",
            threshold="50 USD",
            clear_since=at(7),
        ),
        AlertState(
            key=AlertKey("webhook-failure-spike", "main", "https://hooks.example.com/a"),
            phase=Phase.PENDING,
            severity=Severity.WARNING,
            active_since=at(3),
        ),
    ]
}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "state.db"


@pytest.fixture
def store(state_target: StateTarget) -> Iterator[Store]:
    with open_store(state_target) as opened:
        yield opened


@pytest.fixture
def sqlite_store(db: Path) -> Iterator[Store]:
    with Store.open(db) as opened:
        yield opened


# -- opening ---------------------------------------------------------------------


def test_open_creates_private_parent_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.db"
    with Store.open(path) as store:
        assert store.path == path
    assert path.is_file()
    assert path.parent.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("pragma", "expected"),
    [
        ("journal_mode", "wal"),
        ("synchronous", 2),  # FULL
        ("foreign_keys", 1),
        ("busy_timeout", 5000),
        ("user_version", SCHEMA_VERSION),
    ],
)
def test_connection_pragmas(sqlite_store: Store, pragma: str, expected: object) -> None:
    assert sqlite_store.pragma(pragma) == expected


def test_wal_mode_is_persistent_in_the_file(sqlite_store: Store, db: Path) -> None:
    other = sqlite3.connect(db)
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        other.close()


def test_pragma_name_is_validated(store: Store) -> None:
    with pytest.raises(ValueError, match="not a pragma name"):
        store.pragma("user_version; DROP TABLE alerts")


@pytest.mark.parametrize(
    "garbage",
    [b"garbage", os.urandom(4096), b"SQLite format 2\x00" + b"\x00" * 200],
    ids=["short", "random-page", "wrong-magic"],
)
def test_garbage_file_is_a_store_error(db: Path, garbage: bytes) -> None:
    db.parent.mkdir()
    db.write_bytes(garbage)
    with pytest.raises(StoreError) as info:
        Store.open(db)
    assert str(info.value) == (
        f"state database {db} is unusable: it is not a SQLite database; move it away or "
        "point state.path at another file"
    )
    assert not isinstance(info.value, sqlite3.Error)


def test_corrupt_page_is_a_store_error(db: Path) -> None:
    with Store.open(db) as store:
        for i in range(300):
            store.mark_audit_seen("main", [event(f"event-{i:04d}-" + "x" * 200)], at(0))
        store.pragma("wal_checkpoint")
    data = bytearray(db.read_bytes())
    assert len(data) > 4 * 4096
    data[3 * 4096 : 4 * 4096] = b"\xff" * 4096
    db.write_bytes(bytes(data))
    corrupt = r"is unusable: (it is corrupt \(|database disk image is malformed)"
    with pytest.raises(StoreError, match=corrupt):
        Store.open(db)


def test_directory_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    path = blocker / "sub" / "state.db"
    with pytest.raises(StoreError) as info:
        Store.open(path)
    message = str(info.value)
    assert message.startswith(f"state database {path} is unusable: cannot create directory")
    assert "Not a directory" in message


def test_newer_schema_is_refused(db: Path) -> None:
    Store.open(db).close()
    raw = sqlite3.connect(db)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StoreError, match="newer account-watcher"):
        Store.open(db)


def test_reopen_does_not_migrate_again(state_target: StateTarget) -> None:
    with open_store(state_target) as store:
        assert store.created
        store.set_cursor("main", "audit", at(1))
    with open_store(state_target) as store:
        assert not store.created
        assert store.get_cursor("main", "audit") == at(1)


def test_use_after_close_is_a_store_error(state_target: StateTarget) -> None:
    store = open_store(state_target)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get_cursor("main", "audit")


def test_naive_datetime_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        store.set_cursor("main", "audit", datetime(2026, 11, 2, 10, 0))


# -- persistence across reopen ---------------------------------------------------


def test_reopen_persists_everything(state_target: StateTarget) -> None:
    with open_store(state_target) as store:
        first = store.first_start(at(0))
        store.set_cursor("main", SourceName.AUDIT, at(7))
        store.set_cursor("main", "webhooks", at(8))
        store.save_alerts(ALERTS)
        store.add_balance_sample("main", at(1), BALANCE)
        store.mark_audit_seen("main", [event("e1")], at(1))
        store.upsert_webhook_failures("main", [delivery("d1", 2, http_status=None)])
        store.record_source_result("main", "balance", at(3), "HTTP 503", auth=False)
        store.record_cycle(at(3), duration_s=1.25, errors=1)

    with open_store(state_target) as store:
        assert first == at(0)
        assert store.first_start(at(60)) == at(0)
        assert store.get_cursor("main", "audit") == at(7)
        assert store.get_cursor("main", SourceName.WEBHOOKS) == at(8)
        assert store.get_cursor("main", "balance") is None
        assert store.load_alerts() == ALERTS
        samples = store.balance_samples("main", at(0))
        assert samples == [(at(1), BALANCE)]
        assert str(samples[0][1].credit_limit) == "1E+3"  # exponent kept, not just value
        assert str(samples[0][1].balance) == "300.10"
        assert store.unseen_audit_events("main", [event("e1"), event("e2")]) == [event("e2")]
        assert store.webhook_failures("main", at(0)) == [delivery("d1", 2, http_status=None)]
        assert store.source_health() == [
            SourceHealth("main", "balance", at(3), None, at(3), "HTTP 503", False)
        ]
        assert store.last_cycle() == CycleInfo(at=at(3), duration_s=1.25, errors=1)


def test_datetimes_come_back_as_aware_utc(store: Store) -> None:
    berlin = timezone(timedelta(hours=1))
    store.set_cursor("main", "audit", datetime(2026, 11, 2, 11, 0, 0, 123456, tzinfo=berlin))
    value = store.get_cursor("main", "audit")
    assert value == datetime(2026, 11, 2, 10, 0, 0, 123456, tzinfo=UTC)
    assert value is not None and value.tzinfo is UTC


def test_first_start_records_only_the_first_call(store: Store) -> None:
    assert store.first_start(at(0)) == at(0)
    assert store.first_start(at(10)) == at(0)


def test_latest_balances_are_the_newest_sample_of_each_account(store: Store) -> None:
    low = Balance(Decimal("5.00"), Decimal("5.00"), Decimal(0), Decimal(0), "EUR")
    store.add_balance_sample("main", at(2), BALANCE)
    store.add_balance_sample("main", at(1), low)  # older, written later
    store.add_balance_sample("eu", at(0), low)
    store.add_balance_sample("eu", at(3), BALANCE)
    assert store.latest_balances() == {"eu": (at(3), BALANCE), "main": (at(2), BALANCE)}
    assert list(store.latest_balances()) == ["eu", "main"]


def test_last_cycle_keeps_only_the_latest(store: Store) -> None:
    assert store.last_cycle() is None
    store.record_cycle(at(0), duration_s=0.5, errors=0)
    store.record_cycle(at(1), duration_s=2.0, errors=3)
    assert store.last_cycle() == CycleInfo(at=at(1), duration_s=2.0, errors=3)


# -- audit dedupe ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("seen", "batch", "expected"),
    [
        ([], [], []),
        ([], ["a", "b", "c"], ["a", "b", "c"]),
        (["b"], ["a", "b", "c"], ["a", "c"]),
        (["a", "b", "c"], ["c", "b", "a"], []),
        ([], ["a", "b", "a", "c", "b"], ["a", "b", "c"]),
        (["c"], ["c", "d", "d", "e"], ["d", "e"]),
    ],
    ids=["empty", "all-new", "one-seen", "all-seen", "dupes-in-batch", "both"],
)
def test_unseen_audit_events(
    store: Store, seen: list[str], batch: list[str], expected: list[str]
) -> None:
    store.mark_audit_seen("main", [event(i) for i in seen], at(0))
    unseen = store.unseen_audit_events("main", [event(i, n) for n, i in enumerate(batch)])
    assert [e.id for e in unseen] == expected


def test_first_of_duplicate_ids_is_kept(store: Store) -> None:
    first, second = event("a", 1), event("a", 2)
    assert store.unseen_audit_events("main", [first, second]) == [first]


def test_seen_ids_are_per_account(store: Store) -> None:
    store.mark_audit_seen("main", [event("a")], at(0))
    assert store.unseen_audit_events("other", [event("a")]) == [event("a")]
    assert store.unseen_audit_events("main", [event("a")]) == []


def test_mark_seen_twice_and_with_duplicates_is_harmless(store: Store) -> None:
    store.mark_audit_seen("main", [event("a"), event("a")], at(0))
    store.mark_audit_seen("main", [event("a")], at(1))
    assert store.unseen_audit_events("main", [event("a"), event("b")]) == [event("b")]


def test_an_id_found_seen_is_remembered_until_a_read_no_longer_has_it(store: Store) -> None:
    """A mark is never taken back, so the state is not asked again about an id it said
    was seen (the steady state re-reads the same window every cycle): shown here by
    taking the marks away behind its back. An id a read no longer has is forgotten."""

    def unseen(*ids: str) -> list[str]:
        return [e.id for e in store.unseen_audit_events("main", [event(i) for i in ids])]

    store.mark_audit_seen("main", [event("a"), event("b")], at(0))
    assert unseen("a", "b", "c") == ["c"]
    store.execute("DELETE FROM audit_seen")
    assert unseen("a", "b", "c") == ["c"]  # a and b from memory, c asked again
    assert unseen("b", "c") == ["c"]
    assert unseen("a", "b") == ["a"]  # a was forgotten by the read without it
    assert store.unseen_audit_events("other", [event("b")]) == [event("b")]


def test_an_id_seen_inside_an_open_transaction_is_not_remembered(store: Store) -> None:
    """Inside a transaction the marks read may yet be rolled back."""
    with pytest.raises(RuntimeError), store.transaction():
        store.mark_audit_seen("main", [event("a")], at(0))
        assert store.unseen_audit_events("main", [event("a")]) == []
        raise RuntimeError("rolled back")
    assert store.unseen_audit_events("main", [event("a")]) == [event("a")]


def test_unseen_handles_a_large_batch(store: Store) -> None:
    events = [event(f"e{i}") for i in range(40_000)]
    store.mark_audit_seen("main", events[::2], at(0))
    unseen = store.unseen_audit_events("main", events)
    assert unseen == events[1::2]


# -- webhook failures ------------------------------------------------------------


def test_upsert_webhook_failures_is_idempotent(store: Store) -> None:
    batch = [delivery("d1", 1), delivery("d2", 2)]
    assert store.upsert_webhook_failures("main", batch) == 2
    assert store.upsert_webhook_failures("main", batch) == 0
    assert store.webhook_failures("main", at(0)) == batch


def test_upsert_updates_a_known_delivery(store: Store) -> None:
    store.upsert_webhook_failures("main", [delivery("d1", 1, http_status=503)])
    changed = delivery("d1", 1, http_status=None, error="connection refused")
    assert store.upsert_webhook_failures("main", [changed, delivery("d2", 2)]) == 1
    assert store.webhook_failures("main", at(0)) == [changed, delivery("d2", 2)]


def test_upsert_counts_a_duplicate_in_one_batch_once(store: Store) -> None:
    assert store.upsert_webhook_failures("main", [delivery("d1"), delivery("d1")]) == 1
    assert len(store.webhook_failures("main", at(0))) == 1


def test_webhook_failures_are_per_account(store: Store) -> None:
    store.upsert_webhook_failures("main", [delivery("d1", 1)])
    assert store.upsert_webhook_failures("other", [delivery("d1", 1)]) == 1
    assert store.webhook_failures("other", at(0)) == [delivery("d1", 1)]
    assert store.webhook_failures("third", at(0)) == []


# -- since filters ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "expected_minutes"),
    [
        (at(-1), [0, 10, 20]),
        (at(0), [0, 10, 20]),  # inclusive
        (at(0) + timedelta(microseconds=1), [10, 20]),
        (at(15), [20]),
        (at(20), [20]),
        (at(21), []),
    ],
)
def test_since_filters(store: Store, since: datetime, expected_minutes: list[int]) -> None:
    for minutes in (20, 0, 10):  # inserted out of order: results come oldest first
        store.add_balance_sample("main", at(minutes), BALANCE)
        store.upsert_webhook_failures("main", [delivery(f"d{minutes}", minutes)])
    store.add_balance_sample("other", at(30), BALANCE)
    store.upsert_webhook_failures("other", [delivery("x", 30)])

    assert [s[0] for s in store.balance_samples("main", since)] == [at(m) for m in expected_minutes]
    assert [d.started_at for d in store.webhook_failures("main", since)] == [
        at(m) for m in expected_minutes
    ]


def test_since_compares_instants_across_offsets(store: Store) -> None:
    store.add_balance_sample("main", at(0), BALANCE)
    plus_two = timezone(timedelta(hours=2))
    assert store.balance_samples("main", T0.astimezone(plus_two)) == [(at(0), BALANCE)]
    later = (T0 + timedelta(seconds=1)).astimezone(plus_two)
    assert store.balance_samples("main", later) == []


# -- alerts ----------------------------------------------------------------------


def test_save_alerts_replaces_the_whole_set(state_target: StateTarget) -> None:
    _low, spike = ALERTS
    with open_store(state_target) as store:
        store.save_alerts(ALERTS)
        store.save_alerts({spike: ALERTS[spike]})
    with open_store(state_target) as store:
        assert store.load_alerts() == {spike: ALERTS[spike]}
        store.save_alerts({})
        assert store.load_alerts() == {}


def test_alert_columns_are_readable(store: Store, state_target: StateTarget) -> None:
    store.save_alerts(ALERTS)
    with open_store(state_target) as raw:  # a second connection: what is committed
        rows = raw.query(
            "SELECT phase, severity, notified_severity, fired_at FROM alerts "
            "WHERE rule = 'low-credit'"
        )
    assert tuple(rows[0]) == ("firing", "CRITICAL", "WARNING", "2026-11-02T10:05:00.000000+00:00")


def test_unknown_severity_in_the_file_is_a_store_error(
    store: Store, state_target: StateTarget
) -> None:
    store.save_alerts(ALERTS)
    with open_store(state_target) as raw:
        raw.execute("UPDATE alerts SET severity = 'PANIC' WHERE rule = 'low-credit'")
    with pytest.raises(StoreError, match="unreadable alert state for low-credit/main"):
        store.load_alerts()


# -- source health ---------------------------------------------------------------


def test_source_health_transitions(store: Store) -> None:
    store.record_source_result("main", "audit", at(0), None)
    store.record_source_result("main", "audit", at(1), "timeout")
    store.record_source_result("main", "audit", at(2), "HTTP 401", auth=True)
    assert store.source_health() == [
        SourceHealth("main", "audit", at(2), at(0), at(1), "HTTP 401", True)
    ]
    store.record_source_result("main", "audit", at(3), None)
    assert store.source_health() == [SourceHealth("main", "audit", at(3), at(3), None, None, False)]


def test_source_health_lists_every_source_sorted(store: Store) -> None:
    store.record_source_result("main", SourceName.WEBHOOKS, at(0), None)
    store.record_source_result("main", SourceName.BALANCE, at(0), "boom")
    store.record_source_result("a-account", "audit", at(0), None)
    store.record_source_result("Zed", "audit", at(0), None)  # byte order, on both engines
    assert [(h.account, h.source) for h in store.source_health()] == [
        ("Zed", "audit"),
        ("a-account", "audit"),
        ("main", "balance"),
        ("main", "webhooks"),
    ]


# -- pruning ---------------------------------------------------------------------


def test_prune_deletes_only_old_rows(store: Store) -> None:
    now = T0 + timedelta(days=10)
    for days in (1, 7, 9):  # samples kept 8 days: the 1-day-old one (now - 9d) goes
        store.add_balance_sample("main", now - timedelta(days=days), BALANCE)
    old_seen = [AuditEvent("old", now - timedelta(days=4))]
    store.mark_audit_seen("main", old_seen, now - timedelta(days=4))
    # created long ago but seen recently: a re-read may still return it, keep it
    store.mark_audit_seen("main", [AuditEvent("late", now - timedelta(days=5))], now)
    store.mark_audit_seen("main", [AuditEvent("new", now - timedelta(hours=1))], now)
    store.upsert_webhook_failures(
        "main",
        [
            WebhookDelivery("w-old", now - timedelta(days=3), "failed"),
            WebhookDelivery("w-new", now - timedelta(days=1), "failed"),
        ],
    )

    assert store.prune(now) == {"balance_samples": 1, "audit_seen": 1, "webhook_failures": 1}

    assert [s[0] for s in store.balance_samples("main", T0)] == [
        now - timedelta(days=7),
        now - timedelta(days=1),
    ]
    remaining = store.unseen_audit_events(
        "main", [AuditEvent(i, T0) for i in ("old", "late", "new")]
    )
    assert [e.id for e in remaining] == ["old"]
    assert [d.id for d in store.webhook_failures("main", T0)] == ["w-new"]
    assert store.prune(now) == {"balance_samples": 0, "audit_seen": 0, "webhook_failures": 0}


def test_prune_retention_is_configurable(store: Store) -> None:
    store.add_balance_sample("main", at(0), BALANCE)
    store.add_balance_sample("main", at(30), BALANCE)
    deleted = store.prune(at(60), keep_samples=timedelta(minutes=45))
    assert deleted["balance_samples"] == 1
    assert [s[0] for s in store.balance_samples("main", T0)] == [at(30)]


# -- transactions ----------------------------------------------------------------


def test_failed_transaction_rolls_back(state_target: StateTarget) -> None:
    with open_store(state_target) as store:
        store.set_cursor("main", "audit", at(0))
        with pytest.raises(RuntimeError, match="boom"), store.transaction():
            store.set_cursor("main", "audit", at(5))
            store.save_alerts(ALERTS)
            store.add_balance_sample("main", at(5), BALANCE)
            raise RuntimeError("boom")
        assert store.get_cursor("main", "audit") == at(0)
    with open_store(state_target) as store:
        assert store.get_cursor("main", "audit") == at(0)
        assert store.load_alerts() == {}
        assert store.balance_samples("main", T0) == []


def test_transaction_commits_all_at_once(store: Store, state_target: StateTarget) -> None:
    with open_store(state_target) as reader:
        with store.transaction():
            store.set_cursor("main", "audit", at(1))
            store.save_alerts(ALERTS)
            assert reader.query("SELECT COUNT(*) FROM cursors")[0][0] == 0
        assert reader.query("SELECT COUNT(*) FROM cursors")[0][0] == 1
        assert reader.query("SELECT COUNT(*) FROM alerts")[0][0] == 2


def test_nested_failure_caught_inside_undoes_only_the_nested_part(store: Store) -> None:
    with store.transaction():
        store.set_cursor("main", "audit", at(1))
        with pytest.raises(RuntimeError), store.transaction():
            store.set_cursor("main", "webhooks", at(2))
            raise RuntimeError("inner")
        store.set_cursor("main", "balance", at(3))
    assert store.get_cursor("main", "audit") == at(1)
    assert store.get_cursor("main", "webhooks") is None
    assert store.get_cursor("main", "balance") == at(3)


def test_a_failed_statement_in_a_nested_transaction_leaves_the_outer_one_usable(
    store: Store,
) -> None:
    """What the digest relies on inside the cycle's transaction: on PostgreSQL a failed
    statement aborts the whole transaction unless it ran inside a savepoint."""
    with store.transaction():
        store.set_cursor("main", "audit", at(1))
        with pytest.raises(StoreError), store.transaction():
            store.query("SELECT nothing FROM no_such_table")
        store.set_cursor("main", "webhooks", at(2))
    assert store.get_cursor("main", "audit") == at(1)
    assert store.get_cursor("main", "webhooks") == at(2)


def test_store_is_usable_after_a_rollback(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        raise RuntimeError("boom")
    with store.transaction():
        store.set_cursor("main", "audit", at(1))
    assert store.get_cursor("main", "audit") == at(1)


# -- PostgreSQL counterparts of the SQLite file checks -----------------------------


def _pg_raw(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True)


def test_pg_newer_schema_is_refused(pg_url: str) -> None:
    open_store(pg_url).close()
    with _pg_raw(pg_url) as raw:
        raw.execute(f"UPDATE schema_version SET version = {SCHEMA_VERSION + 1}")  # noqa: S608
    with pytest.raises(StoreError) as info:
        open_store(pg_url)
    message = str(info.value)
    assert f"has schema version {SCHEMA_VERSION + 1}, written by a newer" in message
    assert message.startswith("state database postgresql://watcher@127.0.0.1:")


def test_pg_schema_of_another_application_is_refused_untouched(pg_url: str) -> None:
    with _pg_raw(pg_url) as raw:
        raw.execute("CREATE TABLE invoices (id int)")
    with pytest.raises(StoreError, match="is not an account-watcher state database"):
        open_store(pg_url)
    with _pg_raw(pg_url) as raw:
        tables = raw.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
    assert tables == [("invoices",)]


def test_pg_unreachable_server_is_one_sentence_without_the_password() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://watcher:s3cr3t-pw@127.0.0.1:{port}/state?connect_timeout=2"
    with pytest.raises(StoreError) as info:
        open_store(url)
    message = str(info.value)
    assert message.startswith(f"state database postgresql://watcher@127.0.0.1:{port}/state ")
    assert "s3cr3t-pw" not in message and url not in message
    assert "\n" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no URL in a chain


def test_pg_two_first_opens_at_once_migrate_once(pg_url: str) -> None:
    with ThreadPoolExecutor(2) as pool:
        stores = list(pool.map(lambda _: open_store(pg_url), range(2)))
    try:
        assert sorted(s.created for s in stores) == [False, True]
        stores[0].set_cursor("main", "audit", at(1))
        assert stores[1].get_cursor("main", "audit") == at(1)
    finally:
        for opened in stores:
            opened.close()


def test_pg_writers_take_turns(pg_url: str) -> None:
    """A read-then-write transaction is atomic across connections, as BEGIN IMMEDIATE
    makes it on SQLite: the second writer waits for the first one's commit."""
    done: list[str] = []

    def bump(store: Store) -> None:
        with store.transaction():
            value = int(store.meta("n") or "0")
            done.append("read")
            store.set_meta("n", str(value + 1))

    with (
        open_store(pg_url) as first,
        open_store(pg_url) as second,
        _pg_raw(pg_url) as watcher,
        ThreadPoolExecutor(1) as pool,
    ):
        first.set_meta("n", "0")
        with first.transaction():
            first.set_meta("n", str(int(first.meta("n") or "0") + 1))
            waiting = pool.submit(bump, second)
            wait_for(
                lambda: (
                    watcher.execute(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    ).fetchone()[0]
                    == 1
                )
            )
            assert done == []  # blocked on the lock, has not read yet
        waiting.result(timeout=10)
        assert first.meta("n") == "2"


def test_pg_a_connection_the_server_broke_is_replaced(pg_url: str) -> None:
    with open_store(pg_url) as store, _pg_raw(pg_url) as admin:
        store.set_cursor("main", "audit", at(1))
        pid = store.query("SELECT pg_backend_pid()")[0][0]
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StoreError, match="failed: "):
            store.get_cursor("main", "audit")  # this statement meets the break
        assert store.get_cursor("main", "audit") == at(1)  # the next one reconnects
        store.set_cursor("main", "audit", at(2))
        assert store.get_cursor("main", "audit") == at(2)

"""The digest's tables (watcher/state/digests.py, migration step 7) on a real SQLite file."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from watcher.core.digest import Happening
from watcher.core.lifecycle import Reason
from watcher.core.model import AlertKey, Severity
from watcher.state.digests import DayState, DigestLog
from watcher.state.store import StateTarget, open_store

NOW = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


def test_a_day_is_recorded_once_and_the_first_record_stands(state_target: StateTarget) -> None:
    with open_store(state_target) as store:
        log = DigestLog(store)
        assert log.last_day() is None
        log.record(date(2026, 11, 30), DayState.SKIPPED, route="ops", now=NOW)
        log.record(date(2026, 12, 1), DayState.SENT, route="ops", now=NOW, messages=2)
        log.record(date(2026, 12, 1), DayState.SKIPPED, route="billing", now=NOW)
        assert log.last_day() == date(2026, 12, 1)
        assert [(d, r, s, n) for d, r, s, _, n in log.days()] == [
            (date(2026, 11, 30), "ops", DayState.SKIPPED, 0),
            (date(2026, 12, 1), "ops", DayState.SENT, 2),
        ]


def test_history_round_trip_window_and_prune(state_target: StateTarget) -> None:
    def entry(hours_ago: float, account: str = "main") -> Happening:
        return Happening(
            NOW - timedelta(hours=hours_ago),
            AlertKey("low-credit", account, "g"),
            Reason.RESOLVED,
            Severity.CRITICAL,
            "balance",
            "45.00 USD",
            "fired 2h",
        )

    with open_store(state_target) as store:
        log = DigestLog(store)
        log.add_history([entry(200), entry(30), entry(2), entry(1, "eu")])
        assert log.history("main", NOW - timedelta(hours=24), NOW) == [entry(2)]
        log.record(date(2025, 1, 1), DayState.SENT, route="ops", now=NOW)
        assert log.prune(NOW) == 1  # the 200 h old entry; the only (latest) day stays
        assert log.last_day() == date(2025, 1, 1)
        assert len(log.history("main", NOW - timedelta(days=30), NOW)) == 2


def test_key_samples_give_the_same_spend_and_marks_as_every_sample(
    state_target: StateTarget,
) -> None:
    from decimal import Decimal

    from watcher.core.digest import balance_at, spent
    from watcher.core.model import Balance

    def bal(value: str, available: str | None = None) -> Balance:
        return Balance(Decimal(value), Decimal(available or value), Decimal(0), Decimal(0), "EUR")

    values = ["100", "100", "99.5", "90.5", "90.5", "190.5", "180", "170", "171", "160.25"]
    mark = NOW + timedelta(minutes=7, seconds=30)
    with open_store(state_target) as store:
        for minutes, value in enumerate(values):
            store.add_balance_sample("eu", NOW + timedelta(minutes=minutes), bal(value))
        store.add_balance_sample("eu", NOW + timedelta(minutes=20), bal("160.25", "170"))
        store.add_balance_sample("main", NOW, bal("7"))
        log = DigestLog(store)
        currency, keys = log.key_samples("eu", NOW, NOW + timedelta(hours=1), [mark])
        single = log.key_samples("main", NOW, NOW + timedelta(hours=1))
        every = store.balance_samples("eu", NOW)
        assert log.key_samples("nobody", NOW, NOW) == ("", [])
    assert currency == "EUR"
    assert [int((at - NOW).total_seconds() // 60) for at, _, _ in keys] == [0, 4, 5, 7, 8, 9, 20]
    full = [(at, b.balance) for at, b in every]
    assert spent([(at, b) for at, b, _ in keys]) == spent(full) == Decimal("40.75")
    assert balance_at(keys, mark) == Decimal("170")
    assert [a for _, _, a in keys][-2:] == [Decimal("160.25"), Decimal("170")]
    assert single == ("EUR", [(NOW, Decimal("7"), Decimal("7"))])

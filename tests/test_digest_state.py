"""The digest's tables (watcher/state/digests.py, migration step 7) on a real SQLite file."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from watcher.core.digest import Happening
from watcher.core.lifecycle import Reason
from watcher.core.model import AlertKey, Severity
from watcher.state.digests import DayState, DigestLog
from watcher.state.store import Store

NOW = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


def test_a_day_is_recorded_once_and_the_first_record_stands(tmp_path: Path) -> None:
    with Store.open(tmp_path / "state.db") as store:
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


def test_history_round_trip_window_and_prune(tmp_path: Path) -> None:
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

    with Store.open(tmp_path / "state.db") as store:
        log = DigestLog(store)
        log.add_history([entry(200), entry(30), entry(2), entry(1, "eu")])
        assert log.history("main", NOW - timedelta(hours=24), NOW) == [entry(2)]
        log.record(date(2025, 1, 1), DayState.SENT, route="ops", now=NOW)
        assert log.prune(NOW) == 1  # the 200 h old entry; the only (latest) day stays
        assert log.last_day() == date(2025, 1, 1)
        assert len(log.history("main", NOW - timedelta(days=30), NOW)) == 2

"""The known set of discovered accounts (watcher/state/discovered.py) on both backends
(`state_target`: a SQLite file, a PostgreSQL schema)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from watcher.state.discovered import Discovered, Listed
from watcher.state.store import open_store

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=10)


def test_listed_gone_and_back(state_target: Path | str) -> None:
    with open_store(state_target) as store:
        table = Discovered(store)
        table.listed("main", [Listed("main/a"), Listed("main/b", shared=True)], T0)
        table.listed("eu", [Listed("eu/x", suspended=True)], T0)
        table.gone(["main/b"], LATER)
        table.gone(["main/b"], LATER + timedelta(minutes=10))  # already gone: kept
    with open_store(state_target) as store:  # survives a reopen
        table = Discovered(store)
        assert {n: k.gone_at for n, k in table.known("main").items()} == {
            "main/a": None,
            "main/b": LATER,
        }
        rows = table.rows()
        assert [(r.name, r.parent, r.shared, r.suspended) for r in rows] == [
            ("eu/x", "eu", False, True),
            ("main/a", "main", False, False),
            ("main/b", "main", True, False),
        ]
        table.listed("main", [Listed("main/b", shared=True)], LATER)  # back again
        back = {r.name: r for r in table.rows()}["main/b"]
        assert (back.gone_at, back.first_seen, back.last_seen) == (None, T0, LATER)
        assert table.last_seen("main/a") == T0
        assert table.last_seen("main/zzz") is None

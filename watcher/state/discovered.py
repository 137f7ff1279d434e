"""The known set of discovered accounts (DESIGN §10): the `discovered_accounts` table.

One row per child ever listed by a parent (`managed_accounts: true`, `subaccounts:
true`): its name, its parent, whether it shares the parent's balance, whether it is
suspended, when it was first and last listed, and since when it is gone (NULL while
listed). A child that goes away is marked gone once, so it is reported once, also
across restarts. No secret of a child is ever written here.

Portable SQL only (`?` placeholders, `ON CONFLICT ... DO UPDATE`), through the store's
`query` / `execute` / `executemany`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from watcher.core.discovery import Known
from watcher.state.store import Store, dt, ts


@dataclass(frozen=True, slots=True)
class Listed:
    """One child as a listing showed it (what the known set keeps of it)."""

    name: str
    shared: bool = False
    suspended: bool = False


@dataclass(frozen=True, slots=True)
class KnownRow:
    """A row of the known set, for `accounts` and `status`."""

    name: str
    parent: str
    shared: bool
    suspended: bool
    first_seen: datetime
    last_seen: datetime
    gone_at: datetime | None


_SELECT_ALL = (
    "SELECT name, parent, shared, suspended, first_seen, last_seen, gone_at "
    "FROM discovered_accounts ORDER BY name"
)


def _row(row: Sequence[Any]) -> KnownRow:
    gone = None if row[6] is None else dt(row[6])
    return KnownRow(row[0], row[1], bool(row[2]), bool(row[3]), dt(row[4]), dt(row[5]), gone)


class Discovered:
    """The `discovered_accounts` table of the state database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def known(self, parent: str) -> dict[str, Known]:
        """The known set of `parent`, by name (gone ones included)."""
        rows = self.store.query(
            "SELECT name, parent, gone_at FROM discovered_accounts WHERE parent = ?", (parent,)
        )
        return {r[0]: Known(r[0], r[1], None if r[2] is None else dt(r[2])) for r in rows}

    def rows(self) -> list[KnownRow]:
        """Every row, by name."""
        return [_row(r) for r in self.store.query(_SELECT_ALL)]

    def last_seen(self, name: str) -> datetime | None:
        """When `name` was last listed, None when it never was."""
        rows = self.store.query("SELECT last_seen FROM discovered_accounts WHERE name = ?", (name,))
        return dt(rows[0][0]) if rows else None

    def listed(self, parent: str, children: Iterable[Listed], now: datetime) -> None:
        """Record a successful listing of `parent`: every child listed now (no longer
        gone, if it was)."""
        rows = [
            (c.name, parent, int(c.shared), int(c.suspended), ts(now), ts(now)) for c in children
        ]
        with self.store.transaction():
            self.store.executemany(
                "INSERT INTO discovered_accounts "
                "(name, parent, shared, suspended, first_seen, last_seen, gone_at) "
                "VALUES (?, ?, ?, ?, ?, ?, NULL) ON CONFLICT (name) DO UPDATE SET "
                "parent = excluded.parent, shared = excluded.shared, "
                "suspended = excluded.suspended, last_seen = excluded.last_seen, gone_at = NULL",
                rows,
            )

    def gone(self, names: Iterable[str], now: datetime) -> None:
        """Mark children as gone at `now` (those already gone keep their time)."""
        with self.store.transaction():
            self.store.executemany(
                "UPDATE discovered_accounts SET gone_at = ? WHERE name = ? AND gone_at IS NULL",
                [(ts(now), name) for name in names],
            )

"""Silences, the repository: the `silences` table of the state database.

Matching (`Silence`, `silenced_by`, `still_firing`, `unmatched_warning`) is pure and
lives in watcher/core/silences.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from watcher.core.silences import Silence as Silence
from watcher.core.silences import silenced_by as silenced_by
from watcher.core.silences import still_firing as still_firing
from watcher.core.silences import unmatched_warning as unmatched_warning
from watcher.state.store import Store, dt, ts

_COLUMNS = "id, rule_glob, account, reason, created_by, created_at, expires_at"


def _silence(row: Sequence[Any]) -> Silence:
    return Silence(row[0], row[1], row[2], row[3], row[4], dt(row[5]), dt(row[6]))


class Silences:
    """The silences table of the state database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(
        self,
        rule_glob: str,
        *,
        account: str | None,
        duration: timedelta,
        reason: str,
        created_by: str,
        now: datetime,
    ) -> Silence:
        """Create a silence. Raises ValueError for an empty reason or a duration <= 0."""
        if not reason.strip():
            raise ValueError("a silence needs a reason")
        if duration <= timedelta(0):
            raise ValueError("a silence needs a duration longer than 0s")
        with self.store.transaction():
            new_id = self.store.insert(
                "INSERT INTO silences (rule_glob, account, reason, created_by, created_at, "
                "expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                (rule_glob, account, reason.strip(), created_by, ts(now), ts(now + duration)),
            )
        return self.get(new_id)

    def get(self, silence_id: int) -> Silence:
        """Raises KeyError for an unknown id."""
        rows = self.store.query(f"SELECT {_COLUMNS} FROM silences WHERE id = ?", (silence_id,))  # noqa: S608
        if not rows:
            raise KeyError(silence_id)
        return _silence(rows[0])

    def all(self) -> list[Silence]:
        rows = self.store.query(f"SELECT {_COLUMNS} FROM silences ORDER BY id")  # noqa: S608
        return [_silence(row) for row in rows]

    def active(self, now: datetime) -> list[Silence]:
        return [s for s in self.all() if s.active(now)]

    def expire(self, silence_id: int, now: datetime) -> Silence:
        """End a silence now (an already ended one keeps its end). Raises KeyError."""
        silence = self.get(silence_id)
        if silence.active(now):
            self.store.execute(
                "UPDATE silences SET expires_at = ? WHERE id = ?", (ts(now), silence_id)
            )
        return self.get(silence_id)

    def ended_unhandled(self, now: datetime) -> list[Silence]:
        """Silences that ended and whose end the daemon has not acted on yet."""
        rows = self.store.query(
            f"SELECT {_COLUMNS} FROM silences WHERE ended_handled = 0 AND expires_at <= ? "  # noqa: S608
            "ORDER BY id",
            (ts(now),),
        )
        return [_silence(row) for row in rows]

    def mark_handled(self, silences: Iterable[Silence]) -> None:
        self.store.executemany(
            "UPDATE silences SET ended_handled = 1 WHERE id = ?", [(s.id,) for s in silences]
        )

    def prune(self, now: datetime, keep: timedelta = timedelta(days=30)) -> int:
        return self.store.execute(
            "DELETE FROM silences WHERE ended_handled = 1 AND expires_at < ?", (ts(now - keep),)
        )

"""Acks, the repository: the `acks` table of the state database (DESIGN §5).

`account-watcher ack` adds rows while the daemon runs; the daemon reads them every cycle
(watcher/core/incident.py decides which one is in force) and marks one `announced` in
the commit that queues its `[ACK]` message. An ack is never edited: it ends by itself
(resolve, expiry, a higher severity), and a new ack of the same episode supersedes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from watcher.core.incident import with_acks
from watcher.core.model import Ack, AlertKey, AlertState, Severity
from watcher.state.store import Store, dt, ts

_COLUMNS = (
    "id, rule, account, alert_group, fired_at, severity, acked_by, reason, acked_at, "
    "expires_at, announced"
)


def _ack(row: Sequence[Any]) -> Ack:
    return Ack(
        id=row[0],
        key=AlertKey(row[1], row[2], row[3]),
        fired_at=dt(row[4]),
        severity=Severity[row[5]],
        by=row[6],
        reason=row[7],
        at=dt(row[8]),
        expires_at=dt(row[9]),
        announced=bool(row[10]),
    )


class Acks:
    """The acks table of the state database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(
        self, state: AlertState, *, by: str, reason: str, now: datetime, expires: timedelta
    ) -> Ack:
        """Acknowledge the firing episode of `state` at `now` for `expires`.

        Raises ValueError for an empty reason or an alert that is not firing.
        """
        if not reason.strip():
            raise ValueError("an ack needs a reason")
        if state.fired_at is None:
            raise ValueError(f"{state.key} is not firing")
        severity = state.notified_severity or state.severity
        key = state.key
        with self.store.transaction():
            new_id = self.store.insert(
                "INSERT INTO acks (rule, account, alert_group, fired_at, severity, acked_by, "
                "reason, acked_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    *(key.rule, key.account, key.group),
                    *(ts(state.fired_at), severity.name, by, reason.strip()),
                    *(ts(now), ts(now + expires)),
                ),
            )
        return self.get(new_id)

    def get(self, ack_id: int) -> Ack:
        """Raises KeyError for an unknown id."""
        rows = self.store.query(f"SELECT {_COLUMNS} FROM acks WHERE id = ?", (ack_id,))  # noqa: S608
        if not rows:
            raise KeyError(ack_id)
        return _ack(rows[0])

    def unexpired(self, now: datetime) -> list[Ack]:
        """Every ack that has not expired at `now`, oldest first (what decide needs)."""
        rows = self.store.query(
            f"SELECT {_COLUMNS} FROM acks WHERE expires_at > ? ORDER BY id",  # noqa: S608
            (ts(now),),
        )
        return [_ack(row) for row in rows]

    def mark_announced(self, acks: Iterable[Ack]) -> None:
        self.store.executemany(
            "UPDATE acks SET announced = 1 WHERE id = ?", [(a.id,) for a in acks]
        )

    def prune(self, now: datetime, keep: timedelta = timedelta(days=30)) -> int:
        return self.store.execute("DELETE FROM acks WHERE expires_at < ?", (ts(now - keep),))


def alerts_now(store: Store, now: datetime) -> dict[AlertKey, AlertState]:
    """Every alert state, each with the ack in force at `now` attached (`AlertState.ack`,
    None where none is): the read for `status`, `status --json` and the status page.
    `escalated_at` and `notified_routes` are on the state already."""
    return with_acks(store.load_alerts(), Acks(store).unexpired(now), now)

"""The daily digest's tables (migration step 7, DESIGN §12).

- `digests`: one row per local day whose digest is done — `sent` (its messages went into
  the outbox in the same transaction) or `skipped` (the daemon was down too long). The
  day is the date in the zone of `notify.digest.at`; a day is done once, whatever the
  route, so a restart never sends it again.
- `alert_history`: what the cycles' transitions were (fired, escalated, resolved,
  one-shot events; `watcher.core.digest.happenings`), written in the cycle's commit, kept
  `KEEP_HISTORY`, read by the digest for its last 24 hours.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from watcher.core.digest import Happening, Sample
from watcher.core.lifecycle import Reason
from watcher.core.model import AlertKey, Severity
from watcher.state.store import Store, dt, ts

KEEP_HISTORY = timedelta(days=8)

KEEP_DAYS = timedelta(days=400)


class DayState(enum.StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"


class DigestLog:
    """The digest tables of `store`; every write joins the caller's transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def last_day(self) -> date | None:
        """The latest local day whose digest is recorded (sent or skipped), or None."""
        rows = self.store.query("SELECT max(day) FROM digests")
        return None if rows[0][0] is None else date.fromisoformat(rows[0][0])

    def record(
        self, day: date, state: DayState, *, route: str, now: datetime, messages: int = 0
    ) -> None:
        """Mark `day` done (a second record of a day is ignored: the first one stands)."""
        self.store.execute(
            "INSERT INTO digests (day, route, state, recorded_at, messages) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (day.isoformat(), route, state.value, ts(now), messages),
        )

    def days(self) -> list[tuple[date, str, DayState, datetime, int]]:
        """Every recorded day, oldest first: (day, route, state, recorded_at, messages)."""
        rows = self.store.query(
            "SELECT day, route, state, recorded_at, messages FROM digests ORDER BY day"
        )
        return [(date.fromisoformat(d), r, DayState(s), dt(at), n) for d, r, s, at, n in rows]

    def add_history(self, entries: Sequence[Happening]) -> None:
        """Append transitions to the alert history."""
        self.store.executemany(
            "INSERT INTO alert_history (at, rule, account, alert_group, reason, severity, "
            "kind, value, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    ts(h.at),
                    h.key.rule,
                    h.key.account,
                    h.key.group,
                    h.reason.value,
                    h.severity.name,
                    h.kind,
                    h.value,
                    h.detail,
                )
                for h in entries
            ],
        )

    def history(self, account: str, since: datetime, until: datetime) -> list[Happening]:
        """The alert history of `account` from `since` to `until` (inclusive), oldest first."""
        rows = self.store.query(
            "SELECT at, rule, account, alert_group, reason, severity, kind, value, detail "
            "FROM alert_history WHERE account = ? AND at >= ? AND at <= ? ORDER BY at, id",
            (account, ts(since), ts(until)),
        )
        return [
            Happening(
                at=dt(at),
                key=AlertKey(rule, acc, group),
                reason=Reason(reason),
                severity=Severity[severity],
                kind=kind,
                value=value,
                detail=detail,
            )
            for at, rule, acc, group, reason, severity, kind, value, detail in rows
        ]

    def sampled(self, since: datetime) -> list[str]:
        """Accounts with balance samples at or after `since`, by name."""
        rows = self.store.query(
            "SELECT DISTINCT account FROM balance_samples WHERE at >= ? ORDER BY account",
            (ts(since),),
        )
        return [str(name) for (name,) in rows]

    def key_samples(
        self, account: str, since: datetime, until: datetime, marks: Sequence[datetime] = ()
    ) -> tuple[str, list[Sample]]:
        """`account`'s balance samples from `since` to `until`, oldest first, as
        (currency, samples), keeping only those the digest's sums need: the first and
        the last, both ends of every rise (of the balance or the available credit), and
        the one in force at each of `marks`. Between two kept samples the values never
        rise, so what was spent between them is their difference: the spend and the
        balances at the marks are the same as from every sample, in far fewer objects.
        (Rises are found on floats, exact for the 8-decimal amounts providers send.)
        """
        rows = self.store.query(
            "SELECT at, balance, available_credit, currency FROM balance_samples "
            "WHERE account = ? AND at >= ? AND at <= ? ORDER BY at",
            (account, ts(since), ts(until)),
        )
        if not rows:
            return "", []
        keep = _keys(rows, [ts(mark) for mark in marks])
        samples = [(dt(rows[i][0]), Decimal(rows[i][1]), Decimal(rows[i][2])) for i in keep]
        return str(rows[-1][3]), samples

    def prune(self, now: datetime) -> int:
        """Forget history older than `KEEP_HISTORY` and days older than `KEEP_DAYS`
        (the latest day always stays). Out: rows deleted."""
        deleted = self.store.execute(
            "DELETE FROM alert_history WHERE at < ?", (ts(now - KEEP_HISTORY),)
        )
        cutoff = (now - KEEP_DAYS).date().isoformat()
        return deleted + self.store.execute(
            "DELETE FROM digests WHERE day < ? AND day < (SELECT max(day) FROM digests)",
            (cutoff,),
        )


def _keys(rows: Sequence[Sequence[Any]], marks: Sequence[str]) -> list[int]:
    """Indexes of the rows `key_samples` keeps (rows: at text, balance, available)."""
    values = [(float(row[1]), float(row[2])) for row in rows]
    last = len(rows) - 1
    keep = {0, last}
    for i in range(1, len(rows)):
        before, now = values[i - 1], values[i]
        if now[0] > before[0] or now[1] > before[1]:
            keep.update((i - 1, i))
        for mark in marks:
            if rows[i - 1][0] <= mark < rows[i][0]:
                keep.add(i - 1)
    return sorted(keep)

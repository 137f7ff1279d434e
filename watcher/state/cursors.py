"""Where reading goes on: the first start, per-source cursors and audit ids already seen.

Mixed into `Store` (watcher/state/store.py); every write runs in `transaction()`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from watcher.core.model import AuditEvent
from watcher.state.db import Database, dt, ts

ID_BATCH = 500  # ids per `IN (...)` list: well below either engine's parameter limit

_SET = (
    "INSERT INTO cursors (account, source, value) VALUES (?, ?, ?) "
    "ON CONFLICT (account, source) DO UPDATE SET value = excluded.value"
)
_DELETE = "DELETE FROM cursors WHERE account = ? AND source = ?"


class CursorTables(Database):
    """The `meta.first_start`, `cursors` and `audit_seen` tables."""

    def first_start(self, now: datetime) -> datetime:
        """The daemon's very first start: records `now` on the first call ever.

        Out: the recorded first start (the same value on every later call and reopen).
        """
        with self.transaction():
            self._run(
                "INSERT INTO meta (key, value) VALUES ('first_start', ?) ON CONFLICT DO NOTHING",
                (ts(now),),
            )
            value: str = self._query("SELECT value FROM meta WHERE key = 'first_start'")[0][0]
        return dt(value)

    def get_cursor(self, account: str, source: str) -> datetime | None:
        """The cursor of `source` for `account`, or None when never set."""
        rows = self._query(
            "SELECT value FROM cursors WHERE account = ? AND source = ?", (account, str(source))
        )
        return dt(rows[0][0]) if rows else None

    def cursor_rows(self, names: Iterable[str]) -> dict[tuple[str, str], str]:
        """Every account's stored value of each row name in `names` (a source's cursor, or
        `resume_key(source)`), by (account, name): one query for a whole cycle."""
        wanted = sorted(set(names))
        marks = ", ".join("?" * len(wanted))
        rows = self._query(
            f"SELECT account, source, value FROM cursors WHERE source IN ({marks})",  # noqa: S608
            wanted,
        )
        return {(account, name): value for account, name, value in rows}

    def set_cursor(self, account: str, source: str, value: datetime) -> None:
        """Store the cursor of `source` for `account` (replacing the previous one)."""
        self.set_cursor_many([(account, source, value)])

    def set_cursor_many(self, rows: Iterable[tuple[str, str, datetime]]) -> None:
        """`set_cursor` for each (account, source, value), as one batched statement."""
        self.executemany(
            _SET, [(account, str(source), ts(value)) for account, source, value in rows]
        )

    def get_resume(self, account: str, source: str) -> str | None:
        """Where an unfinished read of `source` goes on (text the source wrote), or None.

        Kept in the cursors table under `<source>#resume`.
        """
        rows = self._query(
            "SELECT value FROM cursors WHERE account = ? AND source = ?",
            (account, resume_key(source)),
        )
        return str(rows[0][0]) if rows else None

    def set_resume(self, account: str, source: str, value: str | None) -> None:
        """Store where the unfinished read of `source` goes on; None: the read is done."""
        self.set_resume_many([(account, source, value)])

    def set_resume_many(self, rows: Iterable[tuple[str, str, str | None]]) -> None:
        """`set_resume` for each (account, source, value), one (account, source) once:
        the reads done deleted in one batched statement, the others stored in another."""
        done: list[tuple[str, str]] = []
        going: list[tuple[str, str, str]] = []
        for account, source, value in rows:
            if value is None:
                done.append((account, resume_key(source)))
            else:
                going.append((account, resume_key(source), value))
        self.execute_batches((_DELETE, done), (_SET, going))

    # -- audit ids -----------------------------------------------------------------

    def unseen_audit_events(self, account: str, events: Sequence[AuditEvent]) -> list[AuditEvent]:
        """The events whose id was never marked seen for `account`.

        Out: input order kept; an id repeated within `events` appears once (first one).
        An id found seen is remembered (until a read of the account no longer has it):
        a mark is never taken back, and a cycle re-reads the same overlap window, so in
        the steady state nothing is asked of the database.
        """
        if not events:
            return []
        known = self._seen_ids.get(account, set())
        ids = [event.id for event in events]
        skip = {i for i in ids if i in known}
        skip |= stored_ids(self, "audit_seen", account, [i for i in ids if i not in skip])
        if not self._depth:  # only what is committed: a transaction may yet roll back
            self._seen_ids[account] = set(skip)
        unseen: list[AuditEvent] = []
        for event in events:
            if event.id not in skip:
                skip.add(event.id)
                unseen.append(event)
        return unseen

    def mark_audit_seen(self, account: str, events: Sequence[AuditEvent], now: datetime) -> None:
        """Record the events' ids as seen at `now`; ids already recorded keep their time."""
        self.mark_audit_seen_many([(account, event) for event in events], now)

    def mark_audit_seen_many(self, rows: Iterable[tuple[str, AuditEvent]], now: datetime) -> None:
        """`mark_audit_seen` for each (account, event), as one batched statement."""
        seen = ts(now)
        self.executemany(
            "INSERT INTO audit_seen (account, id, created_at, seen_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(account, event.id, ts(event.created_at), seen) for account, event in rows],
        )


def stored_ids(db: Database, table: str, account: str, ids: Sequence[str]) -> set[str]:
    """Which of `ids` the `(account, id)`-keyed `table` holds for `account`."""
    wanted = list(dict.fromkeys(ids))
    found: set[str] = set()
    for start in range(0, len(wanted), ID_BATCH):
        batch = wanted[start : start + ID_BATCH]
        marks = ", ".join("?" * len(batch))
        rows = db.query(
            f"SELECT id FROM {table} WHERE account = ? AND id IN ({marks})",  # noqa: S608
            (account, *batch),
        )
        found.update(row[0] for row in rows)
    return found


def resume_key(source: str) -> str:
    """The `cursors` row of `source`'s resume point."""
    return f"{source}#resume"

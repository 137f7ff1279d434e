"""The fraud holds of the top-up ledger (DESIGN §6.3), in the state database.

Table `topup_holds` (its own migration): one row per hold — a `holds_topups` rule's firing
episode (`kind = 'rule'`, `last_at` its latest firing) or a hold set by hand
(`kind = 'manual'`, `held_by`). A release stamps `released_at/by/release_reason` on
every hold of the account in force; rows are never deleted, so the table is the holds'
history (who, when, why). Which hold binds at a time is the core's
(`watcher.core.holds.binding_hold`); `Ledger.guard(account=…)` reads it inside the
transaction that writes a `sending` entry.

Each write is also appended to the ledger journal (`hold`, `release` lines; see
watcher/state/journal.py), so that a state database that lost a hold cannot silently
lift it: the recovery restores it and refuses top-ups (`state-lost`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog

from watcher.core.holds import Firing, Hold, HoldKind, active_holds
from watcher.state.store import Store, dt, ts

log = structlog.get_logger(__name__)

_SELECT = (
    "SELECT id, account, kind, rule, episode, cause, held_at, last_at, held_by, "
    "released_at, released_by, release_reason FROM topup_holds "
)


def _opt(text: str | None) -> datetime | None:
    return None if text is None else dt(text)


def hold_of(row: Sequence[Any]) -> Hold:
    return Hold(
        id=row[0],
        account=row[1],
        kind=HoldKind(row[2]),
        rule=row[3],
        episode=row[4],
        cause=row[5],
        held_at=dt(row[6]),
        last_at=dt(row[7]),
        held_by=row[8],
        released_at=_opt(row[9]),
        released_by=row[10],
        release_reason=row[11],
    )


def record(hold: Hold) -> dict[str, Any]:
    """The journal line of a hold as now stored (the last line of an id wins)."""
    return {
        "op": "hold",
        "id": hold.id,
        "account": hold.account,
        "kind": hold.kind.value,
        "rule": hold.rule,
        "episode": hold.episode,
        "cause": hold.cause,
        "held_at": hold.held_at.isoformat(),
        "last_at": hold.last_at.isoformat(),
        "held_by": hold.held_by,
        "released_at": None if hold.released_at is None else hold.released_at.isoformat(),
        "released_by": hold.released_by,
        "release_reason": hold.release_reason,
    }


class Holds:
    """The holds in `store`; `journal(record)` appends a line to the ledger journal."""

    def __init__(self, store: Store, journal: Callable[[dict[str, Any]], None]) -> None:
        self.store = store
        self._journal = journal

    def all(self, *, account: str | None = None, since: datetime | None = None) -> list[Hold]:
        """Holds (of `account`; in force or touched at/after `since`), oldest first."""
        sql, params = _SELECT + "WHERE 1 = 1", []
        if account is not None:
            sql += " AND account = ?"
            params.append(account)
        if since is not None:
            sql += " AND (released_at IS NULL OR last_at >= ? OR released_at >= ?)"
            params += [ts(since), ts(since)]
        return [hold_of(row) for row in self.store.query(sql + " ORDER BY held_at, id", params)]

    def unreleased(self, account: str) -> list[Hold]:
        rows = self.store.query(
            _SELECT + "WHERE account = ? AND released_at IS NULL ORDER BY held_at, id", (account,)
        )
        return [hold_of(row) for row in rows]

    def fired(self, firing: Firing) -> Hold | None:
        """Record a `holds_topups` rule's firing: a new hold, or a later `last_at` for
        its episode's. A released episode stays released. Out: the hold written (None
        when nothing changed)."""
        with self.store.transaction():
            rows = self.store.query(
                _SELECT + "WHERE account = ? AND rule = ? AND episode = ?",
                (firing.account, firing.rule, firing.episode),
            )
            if rows:
                old = hold_of(rows[0])
                if old.released_at is not None or old.last_at >= firing.at:
                    return None
                self.store.execute(
                    "UPDATE topup_holds SET last_at = ? WHERE id = ?", (ts(firing.at), old.id)
                )
                hold_id = old.id
            else:
                hold_id = self._insert(HoldKind.RULE, firing, None)
            hold = self._must_get(hold_id)
            self._journal(record(hold))
        emit = log.debug if rows else log.warning  # a stateful rule extends it every cycle
        emit("topup.held", account=hold.account, rule=hold.rule, hold=hold.id)
        return hold

    def hold(self, account: str, *, by: str, reason: str, now: datetime) -> Hold:
        """A hold set by hand (until released)."""
        firing = Firing(account, "", f"manual {uuid.uuid4().hex}", reason, now)  # each its own
        with self.store.transaction():
            hold = self._must_get(self._insert(HoldKind.MANUAL, firing, by))
            self._journal(record(hold))
        log.warning("topup.held", account=account, by=by, hold=hold.id)
        return hold

    def release(
        self, account: str, *, by: str, reason: str, now: datetime, hold_after: timedelta
    ) -> list[Hold]:
        """Lift every hold of `account` in force at `now`. Out: the holds released."""
        with self.store.transaction():
            live = active_holds(self.unreleased(account), now, hold_after)
            for hold in live:
                self.store.execute(
                    "UPDATE topup_holds SET released_at = ?, released_by = ?, "
                    "release_reason = ? WHERE id = ?",
                    (ts(now), by, reason, hold.id),
                )
                self._journal(record(self._must_get(hold.id)))
        if live:
            log.warning("topup.released", account=account, by=by, holds=len(live))
        return [self._must_get(h.id) for h in live]

    def restore(self, hold: Hold) -> None:
        """Write a hold from the journal back (recovery), keeping its id (replacing a
        row with that id or with its account, rule and episode)."""
        with self.store.transaction():
            self.store.execute(
                "DELETE FROM topup_holds WHERE id = ? OR (account = ? AND rule = ? "
                "AND episode = ?)",
                (hold.id, hold.account, hold.rule, hold.episode),
            )
            self._write_back(hold)
            self.store.sync_ids("topup_holds")

    def _write_back(self, hold: Hold) -> None:
        self.store.execute(
            "INSERT INTO topup_holds (id, account, kind, rule, episode, cause, "
            "held_at, last_at, held_by, released_at, released_by, release_reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                hold.id,
                hold.account,
                hold.kind.value,
                hold.rule,
                hold.episode,
                hold.cause,
                ts(hold.held_at),
                ts(hold.last_at),
                hold.held_by,
                None if hold.released_at is None else ts(hold.released_at),
                hold.released_by,
                hold.release_reason,
            ),
        )

    def _insert(self, kind: HoldKind, firing: Firing, by: str | None) -> int:
        return self.store.insert(
            "INSERT INTO topup_holds (account, kind, rule, episode, cause, held_at, last_at, "
            "held_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                firing.account,
                kind.value,
                firing.rule,
                firing.episode,
                firing.cause,
                ts(firing.at),
                ts(firing.at),
                by,
            ),
        )

    def _must_get(self, hold_id: int) -> Hold:
        return hold_of(self.store.query(_SELECT + "WHERE id = ?", (hold_id,))[0])


def from_record(data: dict[str, Any]) -> Hold:
    """A hold from its journal line (see `record`). Raises KeyError / ValueError."""
    return Hold(
        id=int(data["id"]),
        account=str(data["account"]),
        kind=HoldKind(data["kind"]),
        rule=str(data["rule"]),
        episode=str(data["episode"]),
        cause=str(data["cause"]),
        held_at=datetime.fromisoformat(data["held_at"]),
        last_at=datetime.fromisoformat(data["last_at"]),
        held_by=data.get("held_by"),
        released_at=_opt_iso(data.get("released_at")),
        released_by=data.get("released_by"),
        release_reason=data.get("release_reason"),
    )


def _opt_iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)

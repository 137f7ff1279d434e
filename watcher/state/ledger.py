"""The top-up ledger: every top-up attempt, dry run and refusal, in the state database.

An edge module over the `Store` seam (`query` / `execute` / `transaction`); its tables
are the last migration of `store.MIGRATIONS` (`topups`, `topup_pause`).

States of an entry (DESIGN §6):
- `sending`: written durably, in its own committed transaction, BEFORE the POST. An
  entry still `sending` at start-up belongs to a process that died mid-payment: it
  becomes `unknown`.
- `unknown`: the POST may or may not have charged the card (timeout, lost connection,
  crash). Counts toward the caps until a human settles it; never retried.
- `succeeded` (with the transaction id) / `failed` (with the API's error).
- `dry_run` / `refused`: nothing was sent; kept for the record and the notification.

`sending`, `unknown` and `succeeded` count toward the caps (`COUNTED`); those plus
`failed` are real POSTs, which `min_interval` is measured from (`POSTED`).

`announce` marks an entry whose notification has not been handed to the outbox yet: the
executor renders every such entry each cycle and clears the mark in the cycle's commit
transaction, so an outcome is notified even when the process died right after it.

Durability beyond the database (see watcher/state/journal.py): every money write (`sending`,
its outcome, a settlement) is also appended to the ledger journal beside the state, and
the database's write-ahead log is checkpointed after it, so that a copy of the main
database file alone holds the entry before any POST. `recover` compares the journal with
the database at start-up: entries the database lost are restored from the journal and
top-ups are refused (`state-lost`) until a human has looked (`topups resume`); a state
created fresh, with no journal, makes real top-ups wait one `min_interval`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import structlog

from watcher.core.holds import binding_hold
from watcher.core.ledger_types import COUNTED as COUNTED
from watcher.core.ledger_types import POSTED as POSTED
from watcher.core.ledger_types import Entry as Entry
from watcher.core.ledger_types import EntryState as EntryState
from watcher.core.ledger_types import Guard as Guard
from watcher.core.ledger_types import NewEntry as NewEntry
from watcher.core.ledger_types import Pause as Pause
from watcher.core.ledger_types import StateLost as StateLost
from watcher.core.ledger_types import VerifyState as VerifyState
from watcher.state import journal, ledger_recovery
from watcher.state.holds import Holds
from watcher.state.journal import Journal, JournalError
from watcher.state.ledger_recovery import ACCEPTED_KEY, NOTICE_KEYS
from watcher.state.ledger_recovery import FRESH_KEY as FRESH_KEY
from watcher.state.ledger_recovery import LOST_KEY as LOST_KEY
from watcher.state.store import Store, StoreError, dt, ts

log = structlog.get_logger(__name__)

T = TypeVar("T")


class LedgerError(Exception):
    """A ledger operation that cannot be done (unknown id, wrong state); one sentence."""


_SELECT = (
    "SELECT id, account, amount, currency, state, created_at, rule, reason, posted_at, "
    "finished_at, transaction_id, error, episode, balance_before, verify_state, announce, "
    "settled_by, settled_at, settle_reason FROM topups "
)


def _opt_dt(text: str | None) -> datetime | None:
    return None if text is None else dt(text)


def _opt_dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _entry(row: Sequence[Any]) -> Entry:
    return Entry(
        id=row[0],
        account=row[1],
        amount=Decimal(row[2]),
        currency=row[3],
        state=EntryState(row[4]),
        created_at=dt(row[5]),
        rule=row[6],
        reason=row[7],
        posted_at=_opt_dt(row[8]),
        finished_at=_opt_dt(row[9]),
        transaction_id=row[10],
        error=row[11],
        episode=row[12],
        balance_before=_opt_dec(row[13]),
        verify_state=None if row[14] is None else VerifyState(row[14]),
        announce=bool(row[15]),
        settled_by=row[16],
        settled_at=_opt_dt(row[17]),
        settle_reason=row[18],
    )


class Ledger:
    """The top-up ledger in `store`. Every write is its own committed transaction unless
    the caller holds one open (then it joins it)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # The journal guards a SQLite file that may be lost or restored from a copy; a
        # PostgreSQL state is kept (and replicated) by its server and shared by
        # instances on several hosts, so it has no journal file.
        self.journal = None if store.path is None else journal.journal_path(store.path)
        self.holds = Holds(store, self.append_journal)

    # -- reading ---------------------------------------------------------------------

    def get(self, entry_id: int) -> Entry | None:
        """The entry with `entry_id`, or None."""
        rows = self.store.query(_SELECT + "WHERE id = ?", (entry_id,))
        return _entry(rows[0]) if rows else None

    def entries(self, *, account: str | None = None, since: datetime | None = None) -> list[Entry]:
        """Entries (of `account`, created at/after `since`, when given), oldest first."""
        sql = _SELECT + "WHERE 1 = 1"
        params: list[Any] = []
        if account is not None:
            sql += " AND account = ?"
            params.append(account)
        if since is not None:
            sql += " AND created_at >= ?"
            params.append(ts(since))
        rows = self.store.query(sql + " ORDER BY created_at, id", params)
        return [_entry(row) for row in rows]

    def to_announce(self) -> list[Entry]:
        """Entries whose notification is still owed, oldest first."""
        rows = self.store.query(_SELECT + "WHERE announce = 1 ORDER BY created_at, id")
        return [_entry(row) for row in rows]

    def awaiting_verification(self) -> list[Entry]:
        """Succeeded entries whose effect on the balance is not confirmed yet."""
        rows = self.store.query(
            _SELECT + "WHERE state = 'succeeded' AND verify_state = 'pending' "
            "ORDER BY created_at, id"
        )
        return [_entry(row) for row in rows]

    def refusal_noted(self, account: str, rule: str, episode: str) -> bool:
        """True when a refusal was already recorded for this firing episode of `rule`."""
        rows = self.store.query(
            "SELECT 1 FROM topups WHERE state = 'refused' AND account = ? AND rule = ? "
            "AND episode = ? LIMIT 1",
            (account, rule, episode),
        )
        return bool(rows)

    def paused(self) -> Pause | None:
        """The kill switch, when set."""
        rows = self.store.query("SELECT paused_at, paused_by, reason FROM topup_pause")
        if not rows:
            return None
        at, by, reason = rows[0]
        return Pause(paused_at=dt(at), paused_by=by, reason=reason)

    # -- writing ---------------------------------------------------------------------

    def add(
        self, new: NewEntry, state: EntryState, now: datetime, *, announce: bool = True
    ) -> Entry:
        """Record an entry in `state` created at `now` (dry runs, refusals). Out: the entry."""
        cursor_id = self._insert(new, state, now, announce=announce)
        return self._must_get(cursor_id)

    def begin_if(
        self,
        decide: Callable[[list[Entry], Guard], T],
        pay: Callable[[T], bool],
        new: NewEntry,
        *,
        account: str,
        since: datetime,
        now: datetime,
        hold_after: timedelta | None = None,
    ) -> tuple[T, Entry | None]:
        """Decide on fresh ledger data and, when `pay(decision)`, write a `sending` entry.

        The read, the decision and the insert are one `BEGIN IMMEDIATE` transaction, so
        two processes sharing the database cannot both pass the cap checks. The entry is
        appended to the journal before that transaction commits (durably:
        synchronous=FULL), and the WAL is checkpointed after it, so the main database
        file alone holds it; call it outside any transaction.
        In: `decide(entries of account since `since`, guard)` (with `hold_after`, the
        guard carries the account's binding fraud hold at `now`), the predicate, the entry.
        Out: the decision and the committed `sending` entry (None when not paying).
        Raises StoreError when the entry cannot be made durable: then it is recorded as
        `failed` (when it could be written at all) and nothing may be sent.
        """
        with self.store.transaction():
            entries = self.entries(account=account, since=since)
            guard = self.guard(account=account, now=now, hold_after=hold_after)
            decision = decide(entries, guard)
            if not pay(decision):
                return decision, None
            entry_id = self._insert(new, EntryState.SENDING, now, announce=False, posted=now)
            self.append_journal(journal.sending_record(self._must_get(entry_id)))
        try:
            self.store.checkpoint()
        except StoreError as exc:
            self.finish(entry_id, EntryState.FAILED, now, error=f"not sent: {exc}")
            raise
        return decision, self._must_get(entry_id)

    def finish(
        self,
        entry_id: int,
        state: EntryState,
        now: datetime,
        *,
        transaction_id: str | None = None,
        error: str | None = None,
    ) -> Entry:
        """Record the outcome of the POST of a `sending` (or reconciled `unknown`) entry.

        A succeeded entry starts balance verification when it knows the balance before.
        The entry is marked to be announced. Raises LedgerError when it was settled or
        is not in flight.
        """
        verify = VerifyState.PENDING.value if state is EntryState.SUCCEEDED else None
        finish = {"op": "finish", "id": entry_id, "state": state.value, "at": now.isoformat()}
        self.append_journal(finish | {"transaction_id": transaction_id, "error": error})
        changed = self.store.execute(
            "UPDATE topups SET state = ?, finished_at = ?, transaction_id = ?, error = ?, "
            "verify_state = CASE WHEN balance_before IS NULL THEN NULL ELSE ? END, "
            "announce = 1 WHERE id = ? AND state IN ('sending', 'unknown') "
            "AND settled_by IS NULL",
            (state.value, ts(now), transaction_id, error, verify, entry_id),
        )
        if not changed:
            raise LedgerError(f"top-up #{entry_id} is not in flight; its outcome was not recorded")
        self._checkpoint()
        return self._must_get(entry_id)

    def reconcile(self, now: datetime) -> list[Entry]:
        """At start-up: every `sending` entry becomes `unknown` and is to be announced.

        Out: the entries changed.
        """
        with self.store.transaction():
            self.store.fenced()  # a new leader's, before it pays (DESIGN §10)
            rows = self.store.query("SELECT id FROM topups WHERE state = 'sending'")
            ids = [row[0] for row in rows]
            for entry_id in ids:
                self.store.execute(
                    "UPDATE topups SET state = 'unknown', finished_at = ?, announce = 1, "
                    "error = COALESCE(error, ?) WHERE id = ?",
                    (ts(now), "the process stopped before the outcome was recorded", entry_id),
                )
        changed = [self._must_get(entry_id) for entry_id in ids]
        for entry in changed:
            log.warning(
                "topup.reconciled_unknown",
                entry=entry.id,
                account=entry.account,
                amount=str(entry.amount),
            )
        return changed

    def mark_announced(self, entry_ids: Sequence[int]) -> None:
        """Clear the announce mark (inside the transaction that enqueues the messages)."""
        self.store.executemany(
            "UPDATE topups SET announce = 0 WHERE id = ?", [(i,) for i in entry_ids]
        )

    def set_verify(self, entry_id: int, state: VerifyState, *, note: str | None = None) -> None:
        """Record the verification result; `MISSING` (with `note`: what the balance did,
        kept in `error`) is to be announced."""
        missing = state is VerifyState.MISSING
        self.store.execute(
            "UPDATE topups SET verify_state = ?, error = COALESCE(?, error), "
            "announce = CASE WHEN ? = 1 THEN 1 ELSE announce END WHERE id = ?",
            (state.value, note, int(missing), entry_id),
        )

    def settle(
        self, entry_id: int, state: EntryState, *, by: str, reason: str, now: datetime
    ) -> Entry:
        """A human's verdict on an `unknown` entry: `succeeded` or `failed` (frees the cap).

        Raises LedgerError for an unknown id, an entry that is not `unknown`, a state
        other than succeeded/failed, or an empty reason.
        """
        if state not in (EntryState.SUCCEEDED, EntryState.FAILED):
            raise LedgerError("an entry can only be settled as succeeded or failed")
        if not reason.strip():
            raise LedgerError("give a reason (what you checked) with --reason")
        with self.store.transaction():
            entry = self.get(entry_id)
            if entry is None:
                raise LedgerError(f"there is no top-up #{entry_id}")
            if entry.state is not EntryState.UNKNOWN:
                raise LedgerError(
                    f"top-up #{entry_id} is {entry.state.value}; only unknown entries are settled"
                )
            self.append_journal(
                {
                    "op": "settle",
                    "id": entry_id,
                    "state": state.value,
                    "by": by,
                    "at": now.isoformat(),
                    "reason": reason.strip(),
                }
            )
            self.store.execute(
                "UPDATE topups SET state = ?, settled_by = ?, settled_at = ?, "
                "settle_reason = ?, verify_state = NULL, announce = 0 WHERE id = ?",
                (state.value, by, ts(now), reason.strip(), entry_id),
            )
        self._checkpoint()
        settled = self._must_get(entry_id)
        log.info("topup.settled", entry=entry_id, state=state.value, by=by)
        return settled

    def pause(self, *, by: str, reason: str, now: datetime) -> Pause:
        """Set the kill switch (replacing an earlier pause). Raises LedgerError for no reason."""
        if not reason.strip():
            raise LedgerError("give a reason with --reason")
        self.store.execute(
            "INSERT INTO topup_pause (id, paused_at, paused_by, reason) VALUES (1, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET paused_at = excluded.paused_at, "
            "paused_by = excluded.paused_by, reason = excluded.reason",
            (ts(now), by, reason.strip()),
        )
        log.warning("topup.paused", by=by)
        return Pause(paused_at=now, paused_by=by, reason=reason.strip())

    def resume(self) -> Guard:
        """Clear the kill switch, a lost state's refusal and a fresh state's wait.

        Out: the guard that was lifted (all None: nothing stopped top-ups).
        """
        with self.store.transaction():
            before = self.guard()
            self.store.execute("DELETE FROM topup_pause")
            lost = self.store.meta(LOST_KEY)
            if lost is not None:  # what a human has seen is not news at the next start
                parts = self.accepted() | set(json.loads(lost).get("parts", []))
                self.store.set_meta(ACCEPTED_KEY, json.dumps(sorted(parts)))
            for key in (LOST_KEY, FRESH_KEY):
                self.store.set_meta(key, None)
        if before != Guard():
            log.warning(
                "topup.resumed",
                paused_by=before.pause.paused_by if before.pause else None,
                state_lost=before.lost is not None,
                fresh_wait=before.fresh_since is not None,
            )
        return before

    # -- the journal and a lost state ----------------------------------------------------

    def guard(
        self,
        *,
        account: str | None = None,
        now: datetime | None = None,
        hold_after: timedelta | None = None,
    ) -> Guard:
        """The kill switch, a lost state and a fresh state's wait, as stored now; given
        all of `account`, `now` and `hold_after`, also that account's binding hold."""
        lost_text, fresh = self.store.meta(LOST_KEY), self.store.meta(FRESH_KEY)
        lost = None
        if lost_text is not None:
            data = json.loads(lost_text)
            lost = StateLost(at=dt(data["at"]), found=str(data["found"]))
        guard = Guard(self.paused(), lost, None if fresh is None else dt(fresh))
        if account is None or now is None or hold_after is None:
            return guard
        hold = binding_hold(self.holds.unreleased(account), now, hold_after)
        return dataclasses.replace(guard, hold=hold, hold_after=hold_after)

    def recover(self, now: datetime, *, seed: bool = True) -> Guard:
        """Compare the journal with the database (at start-up, and in `topups`); see
        `watcher.state.ledger_recovery.recover`. Out: the guard now in force."""
        return ledger_recovery.recover(self, now, seed=seed)

    def notice_due(self, key: str) -> bool:
        """True when the lost-state (`LOST_KEY`) or fresh-state notice is still owed."""
        return self.store.meta(key) is not None and self.store.meta(NOTICE_KEYS[key]) is None

    def mark_noticed(self, key: str, now: datetime) -> None:
        """Record that the notice of `key` was handed to the outbox."""
        self.store.set_meta(NOTICE_KEYS[key], ts(now))

    def accepted(self) -> set[str]:
        """Findings a human has already resumed from (damage stays in the journal)."""
        return set(json.loads(self.store.meta(ACCEPTED_KEY) or "[]"))

    def read_journal(self) -> Journal:
        if self.journal is None:
            return Journal()
        try:
            return journal.read(self.journal)
        except JournalError as exc:
            raise StoreError(str(exc)) from exc

    def append_journal(self, record: dict[str, Any]) -> None:
        if self.journal is None:
            return
        try:
            journal.append(self.journal, record)
        except JournalError as exc:
            raise StoreError(str(exc)) from exc

    def _checkpoint(self) -> None:
        try:
            self.store.checkpoint()
        except StoreError as exc:
            log.warning("ledger.checkpoint_failed", error=str(exc))

    # -- helpers ---------------------------------------------------------------------

    def _insert(
        self,
        new: NewEntry,
        state: EntryState,
        now: datetime,
        *,
        announce: bool,
        posted: datetime | None = None,
    ) -> int:
        with self.store.transaction():
            self.store.fenced()  # a decision to pay or refuse: the leader's alone
            return self.store.insert(
                "INSERT INTO topups (account, amount, currency, state, created_at, posted_at, "
                "rule, reason, episode, balance_before, announce) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    new.account,
                    str(new.amount),
                    new.currency,
                    state.value,
                    ts(now),
                    None if posted is None else ts(posted),
                    new.rule,
                    new.reason,
                    new.episode,
                    None if new.balance_before is None else str(new.balance_before),
                    int(announce),
                ),
            )

    def _must_get(self, entry_id: int) -> Entry:
        entry = self.get(entry_id)
        if entry is None:  # pragma: no cover - written a moment ago
            raise LedgerError(f"top-up #{entry_id} vanished")
        return entry

"""The ledger's recovery at start-up: the journal compared with the state database.

Entries the database lost are restored from the journal and the state is marked lost
(top-ups refused until `topups resume`); a state created fresh starts the fresh-state
wait; money entries the journal lacks are appended to it. Called as `Ledger.recover`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import structlog

from watcher.core.holds import Hold
from watcher.core.ledger_types import POSTED, Entry, EntryState, Guard
from watcher.state import journal
from watcher.state.holds import Holds, from_record
from watcher.state.journal import Journal, JournalEntry
from watcher.state.store import Store, ts

log = structlog.get_logger(__name__)

LOST_KEY, FRESH_KEY, ACCEPTED_KEY = "state_lost", "fresh_since", "state_lost_accepted"
NOTICE_KEYS = {LOST_KEY: "state_lost_notified", FRESH_KEY: "fresh_notified"}
"""Meta keys: a lost state, a fresh state's wait, the findings a human resumed from, and
whether each notice was handed to the outbox."""


class Ledger(Protocol):
    """What the recovery needs of `watcher.state.ledger.Ledger` (no import: no cycle)."""

    store: Store
    journal: Path | None
    holds: Holds

    def entries(self) -> list[Entry]: ...
    def accepted(self) -> set[str]: ...
    def read_journal(self) -> Journal: ...
    def append_journal(self, record: dict[str, Any]) -> None: ...
    def guard(self) -> Guard: ...


def recover(ledger: Ledger, now: datetime, *, seed: bool = True) -> Guard:
    """Compare the journal with the database (at start-up, and in `topups`).

    - Journal entries the database lacks are restored (a `sending` one as `unknown`,
      to be announced) and the state is marked lost: top-ups are refused until
      `resume`. Damaged journal lines or entries that differ mark it lost too,
      unless a human already resumed from that very finding.
    - A database created by this open or an earlier one that nobody recovered yet,
      with no journal entries, starts the fresh-state wait (from `now`).
    - With `seed`, money entries of the database that the journal lacks (a state
      from before the journal) are appended to it.
    Out: the guard now in force. Raises StoreError when the journal is unreadable.
    """
    read = ledger.read_journal()
    rows = {e.id: e for e in ledger.entries()}
    missing = [j for j in read.entries.values() if j.id not in rows]
    differ = [j.id for j in read.entries.values() if j.id in rows and not _same(j, rows[j.id])]
    holds = _missing_holds(ledger, read)
    with ledger.store.transaction():
        found_all = _found(ledger.journal, read, missing, differ) + _found_holds(ledger, holds)
        parts = [p for p in found_all if p not in ledger.accepted()]
        found = "; ".join(parts)
        for item in missing:
            _restore(ledger, item, now)
        if missing:
            ledger.store.sync_ids("topups")
        for hold in holds:
            ledger.holds.restore(hold)
            log.warning("topup.hold_restored_from_journal", hold=hold.id, account=hold.account)
        created = ledger.store.meta("created_new") == "1"
        ledger.store.set_meta("created_new", None)
        if found and ledger.store.meta(LOST_KEY) is None:
            lost = {"at": ts(now), "found": found, "parts": parts}
            ledger.store.set_meta(LOST_KEY, json.dumps(lost))
            ledger.store.set_meta(NOTICE_KEYS[LOST_KEY], None)
            log.critical("state.lost", path=ledger.store.where, found=found)
        elif created and not read.entries:
            ledger.store.set_meta(FRESH_KEY, ts(now))
            log.warning("state.created_fresh", path=ledger.store.where)
    if seed:
        _seed(ledger, read, rows)
    return ledger.guard()


def _missing_holds(ledger: Ledger, read: Journal) -> list[Hold]:
    """Fraud holds of the journal that the database lacks (a lost hold is not lifted)."""
    stored = {hold.id for hold in ledger.holds.all()}
    return [from_record(data) for hid, data in sorted(read.holds.items()) if hid not in stored]


def _found_holds(ledger: Ledger, holds: Sequence[Hold]) -> list[str]:
    if not holds:
        return []
    ids = ", ".join(f"#{hold.id}" for hold in holds)
    return [
        f"{len(holds)} fraud hold(s) in the ledger journal {ledger.journal} were missing from "
        f"the state database ({ids}) and were restored from the journal"
    ]


def _restore(ledger: Ledger, item: JournalEntry, now: datetime) -> None:
    in_doubt = item.state in (EntryState.SENDING, EntryState.UNKNOWN)
    state = EntryState.UNKNOWN if in_doubt else EntryState(item.state)
    error = item.error
    if item.state == EntryState.SENDING:
        error = "restored from the ledger journal: the outcome was never recorded"
    ledger.store.execute(
        "INSERT INTO topups (id, account, amount, currency, state, created_at, posted_at, "
        "finished_at, transaction_id, error, rule, reason, episode, balance_before, "
        "announce, settled_by, settled_at, settle_reason) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            item.id,
            item.account,
            str(item.amount),
            item.currency,
            state.value,
            ts(item.created_at),
            ts(item.created_at),
            ts(item.finished_at or now),
            item.transaction_id,
            error,
            item.rule,
            item.reason,
            item.episode,
            None if item.balance_before is None else str(item.balance_before),
            int(in_doubt),
            item.settled_by,
            None if item.settled_at is None else ts(item.settled_at),
            item.settle_reason,
        ),
    )
    log.warning("topup.restored_from_journal", entry=item.id, state=state.value)


def _seed(ledger: Ledger, read: Journal, rows: dict[int, Entry]) -> None:
    for entry in rows.values():
        if entry.id in read.entries or entry.state not in POSTED:
            continue
        ledger.append_journal(journal.sending_record(entry))
        if entry.state is not EntryState.SENDING:
            at = entry.finished_at or entry.created_at
            ledger.append_journal(
                {
                    "op": "finish",
                    "id": entry.id,
                    "state": entry.state.value,
                    "at": at.isoformat(),
                    "transaction_id": entry.transaction_id,
                    "error": entry.error,
                }
            )


def _same(item: JournalEntry, entry: Entry) -> bool:
    return (item.account, item.amount, item.created_at) == (
        entry.account,
        entry.amount,
        entry.created_at,
    )


def _found(
    path: Any, read: Journal, missing: Sequence[JournalEntry], differ: list[int]
) -> list[str]:
    """What a comparison of journal and database found, in words ([] when they agree)."""
    parts = []
    if missing:
        ids = ", ".join(f"#{item.id}" for item in missing)
        doubt = sum(1 for item in missing if item.state in ("sending", "unknown"))
        parts.append(
            f"{len(missing)} top-up(s) in the ledger journal {path} were missing from the "
            f"state database ({ids}; {doubt} in doubt) and were restored from the journal"
        )
    if differ:
        ids = ", ".join(f"#{i}" for i in differ)
        parts.append(f"top-up(s) {ids} differ between the journal {path} and the database")
    if read.damaged:
        lines = ", ".join(str(n) for n in read.damaged[:5])
        parts.append(f"the ledger journal {path} has damaged lines ({lines})")
    return parts

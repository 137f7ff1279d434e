"""The ledger journal: an append-only, fsync'd copy of every money entry, beside the state.

The state database can be lost under the daemon: emptied (`truncate`), its `-wal` file
deleted or damaged after a crash, replaced by another file, or removed with its
directory. The journal (`<state>.ledger`, one JSON object per line) is the independent
record that lets the next start notice that top-ups were made that the database no
longer knows about, instead of paying again (see `watcher.state.ledger.Ledger.recover`).

What is written, each line fsync'd before the call returns:
- `{"op": "sending", "id": …, "account": …, "amount": "100.00", …}` inside the
  transaction that writes the `sending` entry, before it commits and before the POST;
- `{"op": "finish", "id": …, "state": "succeeded" | "failed" | "unknown", …}` before the
  outcome is written to the database;
- `{"op": "settle", "id": …, "state": …, "by": …, "reason": …}` when a human settles one;
- `{"op": "hold", "id": …, "account": …, …}`: a fraud hold as written (set, extended by a
  later firing, released), in the transaction that writes it (watcher/state/holds.py).

Reading folds the lines into one `JournalEntry` per id (the last word wins). A last line
without its newline is a write torn by a crash and is ignored (its entry never reached
the database either: the journal line is written first); any other line that does not
parse is damage, reported in `Journal.damaged`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

SUFFIX = ".ledger"
FILE_MODE = 0o600


class JournalError(Exception):
    """The journal cannot be written (so no money may move); one sentence."""


@dataclass(slots=True)
class JournalEntry:
    """What the journal knows of one ledger entry (the latest state wins)."""

    id: int
    account: str
    amount: Decimal
    currency: str
    created_at: datetime
    rule: str
    reason: str
    episode: str | None
    balance_before: Decimal | None
    state: str = "sending"
    finished_at: datetime | None = None
    transaction_id: str | None = None
    error: str | None = None
    settled_by: str | None = None
    settled_at: datetime | None = None
    settle_reason: str | None = None


@dataclass(slots=True)
class Journal:
    """The journal as read: its entries by id, its holds by id (the last line of each),
    and the numbers of damaged lines."""

    entries: dict[int, JournalEntry] = field(default_factory=dict)
    holds: dict[int, dict[str, Any]] = field(default_factory=dict)
    damaged: list[int] = field(default_factory=list)


def journal_path(state_path: Path) -> Path:
    """The journal that belongs to the state database at `state_path`."""
    return state_path.with_name(state_path.name + SUFFIX)


def append(path: Path, record: dict[str, Any]) -> None:
    """Append one record as a JSON line and fsync it (and the directory, when new).

    Raises JournalError when the file cannot be opened, written or synced.
    """
    line = json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n"
    new = not path.exists()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            _sync_dir(path.parent)
    except OSError as exc:
        raise JournalError(
            f"cannot write the ledger journal {path}: {exc.strerror or exc}"
        ) from exc


def read(path: Path) -> Journal:
    """The journal at `path` (empty when the file does not exist).

    Raises JournalError when it exists but cannot be read.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Journal()
    except OSError as exc:
        raise JournalError(f"cannot read the ledger journal {path}: {exc.strerror or exc}") from exc
    journal = Journal()
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline; else a torn last write
    del torn
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            _fold(journal, json.loads(raw))
        except (ValueError, KeyError, TypeError):
            journal.damaged.append(number)
    return journal


def sending_record(entry: Any) -> dict[str, Any]:
    """The `sending` line of a ledger entry (a `watcher.state.ledger.Entry`)."""
    return {
        "op": "sending",
        "id": entry.id,
        "account": entry.account,
        "amount": str(entry.amount),
        "currency": entry.currency,
        "created_at": entry.created_at.isoformat(),
        "rule": entry.rule,
        "reason": entry.reason,
        "episode": entry.episode,
        "balance_before": None if entry.balance_before is None else str(entry.balance_before),
    }


def _fold(journal: Journal, record: dict[str, Any]) -> None:
    op, entry_id = record["op"], int(record["id"])
    if op == "hold":
        for key in ("account", "kind", "rule", "episode", "cause", "held_at", "last_at"):
            str(record[key])  # a line without them is damage (KeyError)
        datetime.fromisoformat(record["held_at"])
        datetime.fromisoformat(record["last_at"])
        journal.holds[entry_id] = record
        return
    if op == "sending":
        journal.entries[entry_id] = JournalEntry(
            id=entry_id,
            account=str(record["account"]),
            amount=Decimal(str(record["amount"])),
            currency=str(record["currency"]),
            created_at=datetime.fromisoformat(record["created_at"]),
            rule=str(record["rule"]),
            reason=str(record["reason"]),
            episode=record.get("episode"),
            balance_before=_decimal(record.get("balance_before")),
        )
        return
    if op not in ("finish", "settle"):
        raise ValueError(op)
    entry = journal.entries.get(entry_id)
    if entry is None:  # the outcome of an entry made before the journal: nothing to restore
        return
    entry.state = str(record["state"])
    if op == "finish":
        entry.finished_at = datetime.fromisoformat(record["at"])
        entry.transaction_id = record.get("transaction_id")
        entry.error = record.get("error")
    else:
        entry.settled_by = str(record["by"])
        entry.settled_at = datetime.fromisoformat(record["at"])
        entry.settle_reason = str(record["reason"])


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

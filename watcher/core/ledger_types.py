"""The ledger's value types: what the top-up policy reads and the ledger stores (pure).

An entry's states (DESIGN section 6): `sending` (written before the POST), `unknown`
(the POST may have charged the card), `succeeded` / `failed`, and `dry_run` / `refused`
(nothing was sent). `sending`, `unknown` and `succeeded` count toward the caps
(`COUNTED`); those plus `failed` are real POSTs, which `min_interval` is measured from
(`POSTED`). watcher/state/ledger.py keeps them in the state database.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from watcher.core.holds import Hold


class EntryState(enum.StrEnum):
    """Where one ledger entry stands."""

    SENDING = "sending"
    UNKNOWN = "unknown"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DRY_RUN = "dry_run"
    REFUSED = "refused"


COUNTED = frozenset({EntryState.SENDING, EntryState.UNKNOWN, EntryState.SUCCEEDED})
"""States whose amounts count toward `max_per_day` / `max_per_month`."""

POSTED = COUNTED | {EntryState.FAILED}
"""States of entries whose POST was (or may have been) sent: `min_interval` counts from them."""


class VerifyState(enum.StrEnum):
    """Whether a succeeded top-up showed up in the balance (`None`: not checked)."""

    PENDING = "pending"
    OK = "ok"
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class Entry:
    """One row of the ledger. Money is Decimal, times are aware UTC datetimes."""

    id: int
    account: str
    amount: Decimal
    currency: str
    state: EntryState
    created_at: datetime
    rule: str
    reason: str
    posted_at: datetime | None = None
    finished_at: datetime | None = None
    transaction_id: str | None = None
    error: str | None = None
    episode: str | None = None
    balance_before: Decimal | None = None
    verify_state: VerifyState | None = None
    announce: bool = False
    settled_by: str | None = None
    settled_at: datetime | None = None
    settle_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    """The kill switch: while set, no top-up (not even a dry run) is made."""

    paused_at: datetime
    paused_by: str
    reason: str


@dataclass(frozen=True, slots=True)
class StateLost:
    """The database lost ledger entries that the journal has: top-ups are refused."""

    at: datetime
    found: str


@dataclass(frozen=True, slots=True)
class Guard:
    """What stops every real top-up, beside the caps: the kill switch, a lost state, and
    the wait after a state created fresh (`fresh_since`); for one account, its binding
    fraud hold (`hold`, with the account's `hold_after`; it stops dry runs too)."""

    pause: Pause | None = None
    lost: StateLost | None = None
    fresh_since: datetime | None = None
    hold: Hold | None = None
    hold_after: timedelta = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class NewEntry:
    """What `Ledger.add` / `Ledger.begin_if` write (the id and state come from the ledger)."""

    account: str
    amount: Decimal
    currency: str
    rule: str
    reason: str
    episode: str | None = None
    balance_before: Decimal | None = None

"""The leader lease of instances that share one PostgreSQL state (DESIGN §10).

One row of `leader_lease` (a migration step): `holder`, `epoch` and `expires_at`, every
time taken from the database's clock (`clock_timestamp()`), never from an instance's.
The lease lives on a connection of its own, in autocommit: an advisory lock would
vanish with a recycled connection (PITFALLS), a row does not.

- `acquire()` takes the row when it is free or has expired (the epoch goes up by one),
  renews it when it is ours and still valid, and otherwise says who holds it. A lease of
  ours that expired is taken again under a new epoch, never silently extended: whatever
  the old epoch started is then the new leader's to reconcile.
- `release()` ends our lease at once, so a clean stop hands over without waiting.
- `fence(db)` is what each write with side effects runs first (`Database.fenced`: a new
  ledger entry, the reconcile of `sending` entries, an outbox claim, the cycle's commit
  of alert states, notified marks, messages and the digest's day), on the store's own
  connection and inside that transaction: it passes only while holder and epoch are
  ours and the lease has not expired, and it share-locks the row, so a takeover waits
  until that transaction has ended. A paused leader that wakes up after a takeover fails
  there (`FencedOut`) and writes none of those. What already happened (a POST's outcome,
  a send's result) is still recorded: it is true whoever writes it, and it keeps the new
  leader from paying or sending again.

A transaction the paused leader left open would hold that lock (and the store's write
lock) for good; the store's connections therefore end a session idle in a transaction
for `IDLE_IN_TRANSACTION_S` (`SESSION_SETTINGS`), which rolls it back.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from watcher.state.db import FencedOut, StoreError

if TYPE_CHECKING:
    from watcher.state.db import Database

NAME = "leader"
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 5000
LOCK_TIMEOUT_MS = 2000
IDLE_IN_TRANSACTION_S = 10

# Take the row when it is free or expired; renew it when it is ours under the same epoch
# and still valid. Out: a row only when the lease is now ours.
ACQUIRE = """INSERT INTO leader_lease AS l (name, holder, epoch, expires_at)
VALUES (%(name)s, %(holder)s, 1, clock_timestamp() + %(ttl)s)
ON CONFLICT (name) DO UPDATE SET
    holder = excluded.holder,
    epoch = CASE WHEN l.holder = excluded.holder AND l.epoch = %(epoch)s
                  AND l.expires_at > clock_timestamp()
            THEN l.epoch ELSE l.epoch + 1 END,
    expires_at = excluded.expires_at
WHERE l.expires_at <= clock_timestamp()
   OR (l.holder = excluded.holder AND l.epoch = %(epoch)s)
RETURNING epoch, extract(epoch FROM expires_at - clock_timestamp())"""

WHO = """SELECT holder, epoch, extract(epoch FROM expires_at - clock_timestamp())
FROM leader_lease WHERE name = %(name)s"""

RELEASE = """UPDATE leader_lease SET expires_at = clock_timestamp()
WHERE name = %(name)s AND holder = %(holder)s AND epoch = %(epoch)s"""

# `?` placeholders: run through the store's own seam (`Database.query`), in its transaction.
FENCE = (
    "SELECT epoch FROM leader_lease WHERE name = ? AND holder = ? AND epoch = ? "
    "AND expires_at > clock_timestamp() FOR SHARE"
)


class LeaseError(StoreError):
    """The lease could not be read or written (the database is unreachable, a timeout)."""


@dataclass(frozen=True)
class LeaseView:
    """What `acquire()` found: whether the lease is ours, its epoch and holder, and the
    seconds left until it expires (by the database's clock)."""

    ours: bool
    holder: str | None
    epoch: int
    expires_in: float


def new_holder() -> str:
    """A holder name unique to this process: `host:pid:random`."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


SESSION_SETTINGS = (f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_S * 1000}",)
"""What every state connection of a daemon runs after connecting (see the module text)."""


class Lease:
    """Our side of the lease row, on a dedicated autocommit connection.

    In: the PostgreSQL URL (resolved, never logged), a holder name, the TTL (three poll
    intervals, DESIGN §10). The connection is opened at the first call and again after a
    failure; every failure is `LeaseError` naming the host, never the URL.
    """

    def __init__(self, url: str, holder: str, ttl: timedelta, *, where: str) -> None:
        self._url = url
        self.holder = holder
        self.ttl = ttl
        self.where = where  # host/database, for messages
        self.epoch = 0  # the epoch we hold (0: none yet)
        self._conn: Any = None

    def acquire(self) -> LeaseView:
        """Renew ours or take a free/expired lease; else report the holder.

        Raises LeaseError.
        """
        params = {"name": NAME, "holder": self.holder, "ttl": self.ttl, "epoch": self.epoch}
        row = self._run(ACQUIRE, params)
        if row is not None:
            self.epoch = int(row[0])
            return LeaseView(True, self.holder, self.epoch, float(row[1]))
        self.epoch = 0
        other = self._run(WHO, {"name": NAME})
        if other is None:  # deleted under us: the next call takes it
            return LeaseView(False, None, 0, 0.0)
        return LeaseView(False, str(other[0]), int(other[1]), max(float(other[2]), 0.0))

    def release(self) -> None:
        """End our lease now (a clean stop). Raises LeaseError."""
        if self.epoch:
            self._run(RELEASE, {"name": NAME, "holder": self.holder, "epoch": self.epoch})
            self.epoch = 0

    def fence(self, db: Database) -> None:
        """The fencing check, inside `db`'s open write transaction. Raises FencedOut."""
        if not self.epoch or not db.query(FENCE, (NAME, self.holder, self.epoch)):
            raise FencedOut(
                f"this instance ({self.holder}) no longer holds the lease on {self.where} "
                f"(epoch {self.epoch}): nothing was written"
            )

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):  # closing a broken connection
                conn.close()

    # -- the connection ----------------------------------------------------------------

    def _connect(self) -> Any:
        import psycopg

        # SET, not libpq `options`: those would replace the URL's own (e.g. a search_path)
        conn = psycopg.connect(self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        conn.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS}")
        return conn

    def _run(self, sql: str, params: dict[str, Any]) -> Any:
        import psycopg

        try:
            if self._conn is None:
                self._conn = self._connect()
            cursor = self._conn.execute(sql, params)
            return cursor.fetchone() if cursor.description is not None else None
        except psycopg.Error as exc:
            self.close()
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise LeaseError(f"the leader lease on {self.where} failed: {reason}") from exc

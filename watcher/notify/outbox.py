"""The durable outbox: every notification is stored before it is sent.

Each (message, route, URL) is a target tracked on its own, so a retry never re-sends to
a URL that already got the message. Failed targets are retried with exponential backoff
at the end of later cycles; targets older than `notify.give_up_after` are dropped with an
error log. When every URL of a route keeps failing, the route's `fallback` gets the
message, and an alert says the route is failing.

Each URL's result is written as soon as that URL has answered, not at the end of the
round, so a crash while another URL is slow never re-sends to the URLs that already got
the message.

A target is claimed before it is sent: its owner (this process) and the claim time are
committed first, and every other process (a `once` while `run` delivers) skips the
target while the claim holds, `claim_ttl` (the send timeout plus `CLAIM_MARGIN`). The
result clears the claim; the claim of an owner that died expires, and the target is
sent again then.

Delivery is at least once: a crash between a successful send and its record (or a send
that outlives its claim) sends that URL the message again after the restart.
"""

from __future__ import annotations

import enum
import os
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from watcher.core.lifecycle import Reason
from watcher.core.model import Severity
from watcher.core.render import Message
from watcher.notify.delivery import Target
from watcher.state.store import Store, dt, ts

log = structlog.get_logger(__name__)

BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_MAX = timedelta(minutes=30)
KEEP_FINISHED = timedelta(days=7)
CLAIM_MARGIN = timedelta(seconds=10)


class TargetState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    EXPIRED = "expired"  # gave up after notify.give_up_after


def backoff(attempts: int) -> timedelta:
    """Wait before the next try after `attempts` failed ones: 30s, 1m, 2m, ... 30m."""
    wait: timedelta = BACKOFF_FIRST * 2 ** max(attempts - 1, 0)
    return min(wait, BACKOFF_MAX)


def claim_ttl(send_timeout: float) -> timedelta:
    """How long a claim on a target holds: the send timeout (seconds) plus CLAIM_MARGIN.

    A send ends within its timeout (apprise's call deadline); the margin covers writing
    the result (the store waits up to 5 s for a busy database) and a busy event loop. A
    claim older than this belongs to an owner that died or hangs: the target is taken
    over and sent again (at least once, never lost).
    """
    return timedelta(seconds=send_timeout) + CLAIM_MARGIN


def owner_id() -> str:
    """This process's name on its claims: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (signal 0; a process of another user
    counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead_here(owner: str, host: str, alive: Callable[[int], bool]) -> bool:
    name, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if name != host or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    return pid != os.getpid() and not alive(pid)


@dataclass(frozen=True, slots=True)
class Item:
    """One message for one URL that is not delivered yet."""

    message_id: int
    created_at: datetime
    message: Message
    route: str
    url_id: str
    url_masked: str
    attempts: int
    last_error: str = ""


_ITEM_COLUMNS = (
    "m.id, m.created_at, m.title, m.body, m.severity, m.rule, m.account, m.reason, "
    "t.route, t.url_id, t.url_masked, t.attempts, t.last_error"
)


def _item(row: Sequence[Any]) -> Item:
    message = Message(
        title=row[2],
        body=row[3],
        severity=Severity[row[4]],
        rule=row[5],
        account=row[6],
        reason=Reason(row[7]),
    )
    return Item(row[0], dt(row[1]), message, row[8], row[9], row[10], row[11], row[12] or "")


_KEY = "message_id = ? AND route = ? AND url_id = ?"
_MINE_OR_FREE = "(claimed_by IS NULL OR claimed_by = ?)"


class Outbox:
    """The outbox tables of the state database (see the module docstring).

    `owner` names this process on its claims (default: `owner_id()`).
    """

    def __init__(self, store: Store, *, owner: str | None = None) -> None:
        self.store = store
        self.owner = owner or owner_id()

    def enqueue(self, message: Message, targets: Sequence[Target], now: datetime) -> int | None:
        """Store a message with one row per target (in the caller's transaction, if any).

        Out: the message id, or None when there is no target.
        """
        if not targets:
            return None
        with self.store.transaction():
            message_id = self.store.insert(
                "INSERT INTO outbox_messages (created_at, title, body, severity, rule, account, "
                "reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    ts(now),
                    message.title,
                    message.body,
                    message.severity.name,
                    message.rule,
                    message.account,
                    message.reason.value,
                ),
            )
            self.add_targets(message_id, targets, now)
        return message_id

    def add_targets(self, message_id: int, targets: Sequence[Target], now: datetime) -> None:
        """Add URLs to a stored message (a URL it already has is left as it is)."""
        self.store.executemany(
            "INSERT INTO outbox_targets (message_id, route, url_id, url_masked, state, "
            "next_attempt_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [
                (message_id, t.route, t.url_id, t.masked, TargetState.PENDING, ts(now))
                for t in targets
            ],
        )

    def pending(self, now: datetime | None = None) -> list[Item]:
        """Undelivered targets, oldest first; only those due at `now` when given."""
        sql = (
            f"SELECT {_ITEM_COLUMNS} FROM outbox_targets t "  # noqa: S608 - fixed columns
            "JOIN outbox_messages m ON m.id = t.message_id WHERE t.state = ?"
        )
        params: list[Any] = [TargetState.PENDING.value]
        if now is not None:
            sql += " AND t.next_attempt_at <= ?"
            params.append(ts(now))
        return [_item(row) for row in self.store.query(sql + " ORDER BY m.id, t.route", params)]

    def backlog(self) -> int:
        rows = self.store.query(
            "SELECT count(*) FROM outbox_targets WHERE state = ?", (TargetState.PENDING.value,)
        )
        return int(rows[0][0])

    def claim(self, item: Item, now: datetime, ttl: timedelta) -> bool:
        """Claim a target for sending, committed before this returns (call it outside a
        transaction).

        In: the target as read, the claim time, how long a claim holds (`claim_ttl`).
        Out: True when this owner may send it now. False when it is no longer pending,
        was tried by anyone since it was read (its `attempts` moved), or is claimed by
        another owner at a time after `now - ttl` (that claim still holds).
        """
        with self.store.transaction():
            self.store.fenced()  # a deposed leader sends nothing more
            changed = self.store.execute(
                "UPDATE outbox_targets SET claimed_by = ?, claimed_at = ? "
                "WHERE message_id = ? AND route = ? AND url_id = ? AND state = ? AND attempts = ? "
                "AND (claimed_by IS NULL OR claimed_by = ? OR claimed_at <= ?)",
                (
                    self.owner,
                    ts(now),
                    item.message_id,
                    item.route,
                    item.url_id,
                    TargetState.PENDING.value,
                    item.attempts,
                    self.owner,
                    ts(now - ttl),
                ),
            )
        return changed == 1

    def release_dead_claims(self, alive: Callable[[int], bool] | None = None) -> int:
        """Free the claims of owners on this host whose process is gone (killed while
        sending), so their targets need not wait for the claim to expire.

        In: `alive(pid)`, default a signal-0 probe. A claim of another host, of a live
        process, or in an unknown form is left alone (it expires as before). Out: how
        many claims were freed. Only the holder of the state should call it, at start-up.
        """
        alive = alive or pid_alive
        host = socket.gethostname()
        rows = self.store.query(
            "SELECT DISTINCT claimed_by FROM outbox_targets WHERE claimed_by IS NOT NULL"
        )
        dead = [owner for (owner,) in rows if _dead_here(str(owner), host, alive)]
        freed = 0
        for owner in dead:
            freed += self.store.execute(
                "UPDATE outbox_targets SET claimed_by = NULL, claimed_at = NULL "
                "WHERE claimed_by = ?",
                (owner,),
            )
        return freed

    def mark_delivered(self, item: Item, now: datetime) -> None:
        """Record a delivery (whoever holds the claim: the URL has the message)."""
        self._update(
            item,
            "state = ?, delivered_at = ?, attempts = attempts + 1, "
            "claimed_by = NULL, claimed_at = NULL",
            (TargetState.DELIVERED.value, ts(now)),
        )

    def mark_failed(self, item: Item, now: datetime, error: str) -> None:
        """Record a failed send and release the claim; a no-op when the target is no
        longer pending or another owner has taken it over meanwhile."""
        retry_at = now + backoff(item.attempts + 1)
        self._update(
            item,
            "attempts = attempts + 1, last_error = ?, next_attempt_at = ?, "
            "claimed_by = NULL, claimed_at = NULL",
            (error, ts(retry_at)),
            f" AND state = ? AND {_MINE_OR_FREE}",
            (TargetState.PENDING.value, self.owner),
        )

    def mark_expired(self, item: Item) -> None:
        self._update(item, "state = ?", (TargetState.EXPIRED.value,))

    def _update(
        self,
        item: Item,
        assignments: str,
        params: tuple[Any, ...],
        condition: str = "",
        condition_params: tuple[Any, ...] = (),
    ) -> None:
        self.store.execute(
            f"UPDATE outbox_targets SET {assignments} "  # noqa: S608 - fixed column names
            f"WHERE {_KEY}{condition}",
            (*params, item.message_id, item.route, item.url_id, *condition_params),
        )

    def route_exhausted(self, message_id: int, route: str, failures: int) -> bool:
        """True when no URL of `route` got the message and each failed `failures` times."""
        rows = self.store.query(
            "SELECT count(*), sum(CASE WHEN state = ? THEN 1 ELSE 0 END), min(attempts) "
            "FROM outbox_targets "
            "WHERE message_id = ? AND route = ?",
            (TargetState.DELIVERED.value, message_id, route),
        )
        total, delivered, least = rows[0]
        return bool(total) and not delivered and int(least or 0) >= failures

    def add_fallback(self, message_id: int, targets: Sequence[Target], now: datetime) -> bool:
        """Add the fallback route's targets to a message (once). Out: True if added now."""
        if not targets:
            return False
        route = targets[0].route
        exists = self.store.query(
            "SELECT 1 FROM outbox_targets WHERE message_id = ? AND route = ? LIMIT 1",
            (message_id, route),
        )
        if exists:
            return False
        self.add_targets(message_id, targets, now)
        return True

    def route_health(self, route: str) -> tuple[int, bool]:
        rows = self.store.query(
            "SELECT consecutive_failures, alerted FROM route_health WHERE route = ?", (route,)
        )
        return (int(rows[0][0]), bool(rows[0][1])) if rows else (0, False)

    def set_route_health(self, route: str, failures: int, alerted: bool) -> None:
        self.store.execute(
            "INSERT INTO route_health (route, consecutive_failures, alerted) VALUES (?, ?, ?) "
            "ON CONFLICT (route) DO UPDATE SET "
            "consecutive_failures = excluded.consecutive_failures, alerted = excluded.alerted",
            (route, failures, int(alerted)),
        )

    def prune(self, now: datetime, keep: timedelta = KEEP_FINISHED) -> int:
        """Delete messages older than `keep` that have no pending target left."""
        return self.store.execute(
            "DELETE FROM outbox_messages WHERE created_at < ? AND NOT EXISTS (SELECT 1 FROM "
            "outbox_targets t WHERE t.message_id = outbox_messages.id AND t.state = ?)",
            (ts(now - keep), TargetState.PENDING.value),
        )

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

import asyncio
import enum
import os
import secrets
import socket
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from watcher.core.lifecycle import Reason
from watcher.core.model import Severity
from watcher.core.render import Message
from watcher.notify.delivery import Delivery, Notifier, Target
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


@dataclass(frozen=True, slots=True)
class FlushResult:
    delivered: list[Item]
    failed: list[tuple[Item, Delivery]]
    expired: list[Item]
    claimed_elsewhere: list[Item] = field(default_factory=list)  # left to another process


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
            self.store.execute(
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
            message_id = int(self.store.query("SELECT last_insert_rowid()")[0][0])
            self.add_targets(message_id, targets, now)
        return message_id

    def add_targets(self, message_id: int, targets: Sequence[Target], now: datetime) -> None:
        """Add URLs to a stored message (a URL it already has is left as it is)."""
        self.store.executemany(
            "INSERT OR IGNORE INTO outbox_targets (message_id, route, url_id, url_masked, state, "
            "next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)",
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
            "SELECT count(*), sum(state = ?), min(attempts) FROM outbox_targets "
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


@dataclass(frozen=True, slots=True)
class Policy:
    """What the flush needs from the config."""

    give_up_after: timedelta
    failures_before_fallback: int
    fallbacks: Mapping[str, str]  # route -> fallback route


async def flush(
    outbox: Outbox,
    notifier: Notifier,
    now: datetime,
    policy: Policy,
    *,
    everything: bool = False,
    clock: Callable[[], datetime] | None = None,
) -> FlushResult:
    """Send every due target (all pending ones with `everything`), record each result.

    Each target is claimed (at `clock()`, default `now`) and committed before it is sent,
    and its result is committed as soon as its URL has answered: call this outside a
    transaction. A URL whose next message is claimed by another process is left to that
    process for this round (its later messages too, so the order is kept).
    Then: drop targets older than `give_up_after`, hand messages of exhausted routes to
    their fallback route, and alert (through the fallback) on a route that keeps failing.
    Never raises for a delivery failure.
    """
    out = FlushResult([], [], _expire(outbox, now, policy.give_up_after))
    _retarget(outbox, notifier, now)
    items = outbox.pending(None if everything else now)
    send = _Round(outbox, notifier, now, policy, clock or (lambda: now), out)
    await send.round(items)
    # Targets added by this round (fallback routes, route-failing alerts) go out now too.
    tried = {(i.message_id, i.route, i.url_id) for i in items}
    added = [i for i in outbox.pending(now) if (i.message_id, i.route, i.url_id) not in tried]
    await send.round(added)
    return out


def _retarget(outbox: Outbox, notifier: Notifier, now: datetime) -> None:
    """Pending targets whose URL left the config (a rotated token, a reload) move to the
    route's current URLs; those of a route that no longer exists are dropped."""
    for item in outbox.pending():
        if notifier.knows(item.route, item.url_id):
            continue
        outbox.mark_expired(item)
        current = notifier.targets(item.route)
        if current:
            outbox.add_targets(item.message_id, current, now)
            log.info("notify.retargeted", route=item.route, title=item.message.title)
        else:
            log.error("notify.route_removed", route=item.route, title=item.message.title)


@dataclass(frozen=True, slots=True)
class _Round:
    """What one flush needs to send a list of targets and record each result."""

    outbox: Outbox
    notifier: Notifier
    now: datetime
    policy: Policy
    clock: Callable[[], datetime]
    out: FlushResult

    async def round(self, items: list[Item]) -> None:
        """Each URL gets its messages one after another, oldest first; URLs in parallel.

        Each result is written when it is known; route health once the round is over.
        """
        queues: dict[tuple[str, str], list[Item]] = defaultdict(list)
        for item in items:
            queues[(item.route, item.url_id)].append(item)
        results: dict[tuple[int, str, str], bool] = {}
        await asyncio.gather(*(self._drain(queue, results) for queue in queues.values()))
        outcomes: dict[str, list[bool]] = defaultdict(list)
        for item in items:
            ok = results.get((item.message_id, item.route, item.url_id))
            if ok is not None:
                outcomes[item.route].append(ok)
        with self.outbox.store.transaction():
            for route, oks in outcomes.items():
                _route_health(self.outbox, self.notifier, route, oks, self.now, self.policy)

    async def _drain(self, queue: list[Item], results: dict[tuple[int, str, str], bool]) -> None:
        ttl = claim_ttl(self.notifier.timeout)
        for index, item in enumerate(queue):
            if not self.outbox.claim(item, self.clock(), ttl):
                log.info(
                    "notify.claimed_elsewhere",
                    route=item.route,
                    url=item.url_masked,
                    title=item.message.title,
                    left=len(queue) - index,
                )
                self.out.claimed_elsewhere.extend(queue[index:])
                return
            delivery = await self.notifier.deliver(item.message, item.route, item.url_id)
            self._record(item, delivery)
            results[(item.message_id, item.route, item.url_id)] = delivery.ok

    def _record(self, item: Item, delivery: Delivery) -> None:
        """One URL's result, committed at once (with the fallback it may trigger)."""
        with self.outbox.store.transaction():
            if delivery.ok:
                self.outbox.mark_delivered(item, self.now)
            else:
                self.outbox.mark_failed(item, self.now, delivery.error)
                _fall_back(self.outbox, self.notifier, item, self.now, self.policy)
        if delivery.ok:
            self.out.delivered.append(item)
        else:
            self.out.failed.append((item, delivery))


def _expire(outbox: Outbox, now: datetime, give_up_after: timedelta) -> list[Item]:
    stale = [item for item in outbox.pending() if now - item.created_at > give_up_after]
    for item in stale:
        outbox.mark_expired(item)
        log.error(
            "notify.gave_up",
            route=item.route,
            url=item.url_masked,
            title=item.message.title,
            attempts=item.attempts,
            last_error=item.last_error,
        )
    return stale


def _fall_back(
    outbox: Outbox, notifier: Notifier, item: Item, now: datetime, policy: Policy
) -> None:
    fallback = policy.fallbacks.get(item.route)
    if fallback is None:
        return
    if not outbox.route_exhausted(item.message_id, item.route, policy.failures_before_fallback):
        return
    if outbox.add_fallback(item.message_id, notifier.targets(fallback), now):
        log.warning(
            "notify.fallback", route=item.route, fallback=fallback, title=item.message.title
        )


def _route_health(
    outbox: Outbox, notifier: Notifier, route: str, oks: list[bool], now: datetime, policy: Policy
) -> None:
    failures, alerted = outbox.route_health(route)
    for ok in oks:
        failures = 0 if ok else failures + 1
    fallback = policy.fallbacks.get(route)
    if failures >= policy.failures_before_fallback and not alerted:
        log.error("notify.route_failing", route=route, consecutive_failures=failures)
        if fallback is not None:
            outbox.enqueue(
                route_message(route, failures, failing=True), notifier.targets(fallback), now
            )
        alerted = True
    elif failures == 0 and alerted:
        log.info("notify.route_recovered", route=route)
        if fallback is not None:
            outbox.enqueue(route_message(route, 0, failing=False), notifier.targets(fallback), now)
        alerted = False
    outbox.set_route_health(route, failures, alerted)


NOTIFIER_RULE = "watcher-notify-failing"


def route_message(route: str, failures: int, *, failing: bool) -> Message:
    """The alert about a notification route, sent through its fallback."""
    if failing:
        return Message(
            title=f"[CRITICAL] notification route {route} failing — {failures} attempts in a row",
            body=(
                f"account-watcher cannot deliver notifications through route {route!r}: "
                f"{failures} attempts in a row failed. Its messages are retried and, once "
                "every URL of the route has failed repeatedly, sent through this route "
                "instead. Check the route's URLs with `account-watcher notify-test --route "
                f"{route}` and `account-watcher status`."
            ),
            severity=Severity.CRITICAL,
            rule=NOTIFIER_RULE,
            account="-",
            reason=Reason.FIRING,
        )
    return Message(
        title=f"[RESOLVED] notification route {route} — delivering again",
        body=f"Route {route!r} delivered a notification again.",
        severity=Severity.CRITICAL,
        rule=NOTIFIER_RULE,
        account="-",
        reason=Reason.RESOLVED,
    )

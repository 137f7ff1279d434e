"""Flushing the outbox: each due target claimed, sent and its result recorded as soon as
that URL answers; targets past `notify.give_up_after` dropped; a route whose URLs keep
failing falls back (`notify.routes.*.fallback`) and is alerted on.

The tables and claims are `watcher.notify.outbox`; this module is the round that works on
them (see that module's docstring for the delivery guarantees).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from watcher.core.lifecycle import Reason
from watcher.core.model import Severity
from watcher.core.render import Message
from watcher.notify.delivery import Delivery, Notifier
from watcher.notify.outbox import Item, Outbox, claim_ttl

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class FlushResult:
    delivered: list[Item]
    failed: list[tuple[Item, Delivery]]
    expired: list[Item]
    claimed_elsewhere: list[Item] = field(default_factory=list)  # left to another process


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

"""The daily digest in the daemon (DESIGN §12): the cycle's commit step calls
`DigestJob.commit` inside its transaction.

Each cycle it appends the cycle's transitions to the alert history. When the digest is
due (`watcher.core.digest.due`: the first cycle at or after `notify.digest.at` each local
day, or at start-up if that was less than 12 h ago) its messages go into the outbox for
every URL of `notify.digest.route` and the day is recorded as sent, in the same
transaction: once per day, also across restarts and with a `once` beside a `run`
(`BEGIN IMMEDIATE` lets one of them decide). A digest 12 h late or more is recorded as
skipped and logged.

The digest is informational, so:
- the route's `min_severity` does not apply (the route is named for the digest);
- silences do not apply (they match alert rules);
- a `mute` window of the route delays it until the window ends (it is sent then if that
  is still less than 12 h after `at`, else skipped); nothing is dropped unseen.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import structlog

from watcher.core.digest import Due, Verdict, due, happenings, parse_at
from watcher.core.lifecycle import Transition
from watcher.core.mute import is_muted
from watcher.notify.digest import build, kinds_of
from watcher.notify.outbox import Outbox
from watcher.service.wiring import Wiring
from watcher.state.digests import DayState, DigestLog
from watcher.state.store import Store

log = structlog.get_logger(__name__)


class DigestJob:
    """The digest's part of the cycle: history and the daily send, on `store`."""

    def __init__(self, store: Store, outbox: Outbox) -> None:
        self.store = store
        self.outbox = outbox
        self.log = DigestLog(store)
        self._muted_logged: date | None = None  # the day whose mute delay was logged

    def commit(self, wiring: Wiring, transitions: Sequence[Transition], now: datetime) -> None:
        """Inside the cycle's transaction: record the history, send the digest if due."""
        kinds = kinds_of(wiring.runtime.rules)
        self.log.add_history(happenings(transitions, kinds))
        digest = wiring.runtime.loaded.settings.notify.digest
        if digest is None:
            return
        verdict = due(parse_at(digest.at), now, self.log.last_day())
        if verdict.verdict is Verdict.SKIP:
            self._skip(verdict, digest.route, now)
        elif verdict.verdict is Verdict.SEND:
            self._send(wiring, verdict, digest.route, now)

    def _skip(self, verdict: Due, route: str, now: datetime) -> None:
        self.log.record(verdict.day, DayState.SKIPPED, route=route, now=now)
        log.warning(
            "digest.skipped",
            day=verdict.day.isoformat(),
            scheduled=verdict.scheduled.isoformat(),
            late_s=int(verdict.late.total_seconds()),
            reason="more than 12h late (the daemon was not running at notify.digest.at)",
        )

    def _send(self, wiring: Wiring, verdict: Due, route: str, now: datetime) -> None:
        spec = wiring.runtime.loaded.settings.notify.routes.get(route)
        if spec is not None and spec.mute and is_muted(spec.mute, now):
            if self._muted_logged != verdict.day:
                log.info("digest.muted", day=verdict.day.isoformat(), route=route)
                self._muted_logged = verdict.day
            return
        settings = wiring.runtime.loaded.settings
        try:
            with self.store.transaction():  # a savepoint: on PostgreSQL a failed read
                messages = build(  # would otherwise abort the cycle's transaction
                    self.store, settings, kinds_of(wiring.runtime.rules), now, day=verdict.day
                )
        except Exception as exc:  # a digest must never stop the cycle's commit
            log.error(
                "digest.failed", day=verdict.day.isoformat(), error=f"{type(exc).__name__}: {exc}"
            )
            return
        targets = wiring.notifier.targets(route)
        for message in messages:
            self.outbox.enqueue(message, targets, now)
        self.log.record(verdict.day, DayState.SENT, route=route, now=now, messages=len(messages))
        log.info(
            "digest.enqueued",
            day=verdict.day.isoformat(),
            route=route,
            messages=len(messages),
            urls=len(targets),
            late_s=int(verdict.late.total_seconds()),
        )

    def prune(self, now: datetime) -> int:
        return self.log.prune(now)

"""The daemon's loop as a systemd service (DESIGN §8).

- `READY=1` before the first cycle (config and state are loaded by then).
- Cycles start at a fixed rate. Each runs as a task; while it is younger than its budget
  (one `poll.interval`) the loop sends `WATCHDOG=1` every `watchdog` seconds, and also
  while waiting between cycles. A cycle that overran its budget gets no pings, so a hung
  cycle lets systemd's watchdog fire; pings resume once it finishes.
- A cycle that raises is logged (`cycle.crashed`) and the loop goes on. After
  `MAX_CRASHED_CYCLES` crashes in a row the pings stop too (so `Restart=on-failure` acts
  on a daemon that only fails) and `STATUS=` names the exception type, never its text;
  the next successful cycle resumes them.
- `STATUS=` one line after each cycle.
- SIGHUP (the `reload` event): between cycles `RELOADING=1` + `MONOTONIC_USEC`, then the
  loader (config, rules, secrets); on success the daemon's wiring (runtime, notifier,
  providers) is swapped in one assignment, keeping the store and so the alert states of
  rules that still exist; on failure every `file:line:col` error is logged and the
  running set is kept. `READY=1` either way.
- SIGTERM/SIGINT (the `stop` event): `STOPPING=1` at once, the cycle in flight finishes.
- Leadership (DESIGN §10, watcher/service/leader.py): before each cycle the lease is
  renewed or, on standby, tried `STANDBY_CHECKS` times per interval. Only the leader
  runs cycles; a standby keeps READY=1 and the watchdog pings, with `STATUS=standby: …`.
  A newly elected leader takes over the state before its first cycle, at once; a cycle
  fenced out (`FencedOut`) deposes it, and is not counted as a crash.

Signal handlers only set the events; everything else happens here, in the loop.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from watcher.config.secrets import SecretError
from watcher.config.yamlfile import ConfigError
from watcher.notify.delivery import NotifyError
from watcher.service import logs
from watcher.service.leader import LEASE_INTERVALS, Leadership, Role, Sole, Standing
from watcher.service.sdnotify import ServiceNotifier
from watcher.service.wiring import Runtime, Wiring, build_wiring, close_providers, register_secrets
from watcher.state.db import FencedOut

if TYPE_CHECKING:
    from watcher.service.cycle import CycleResult, Daemon

log = structlog.get_logger(__name__)

MAX_JITTER_S = 1.0
MAX_STATUS_ERROR = 200  # characters of the first reload error shown in STATUS=
MAX_CRASHED_CYCLES = 3  # crashed cycles in a row after which WATCHDOG=1 pings stop
STANDBY_CHECKS = 4  # lease checks per interval on standby


class Supervisor:
    """Runs `daemon`'s cycles until `stop` is set, speaking the systemd protocol.

    In: the daemon, the stop event, optionally the reload event and the loader it calls,
    the notify sender (default: none, every message a no-op) and the WATCHDOG=1 period in
    seconds (None: no pings).
    """

    def __init__(
        self,
        daemon: Daemon,
        stop: asyncio.Event,
        *,
        reload: asyncio.Event | None = None,
        loader: Callable[[], Runtime] | None = None,
        service: ServiceNotifier | None = None,
        watchdog: float | None = None,
        leadership: Leadership | None = None,
    ) -> None:
        self.daemon = daemon
        self.leadership: Leadership = leadership or Sole()
        self.stop = stop
        self.reload = reload or asyncio.Event()
        self.loader = loader
        self.service = service or ServiceNotifier({})
        self.watchdog = watchdog
        self.status_line = "started, first cycle running"
        self.note = ""  # e.g. a failed reload, kept in STATUS= until the next good one
        self._stopping_sent = False
        self._last_ping = -math.inf
        self.crashed_in_a_row = 0  # cycles that raised since the last one that finished
        self._replaced: Wiring | None = None  # swapped out by a reload, closed after it

    @property
    def budget(self) -> float:
        return self.daemon.runtime.interval.total_seconds()

    async def run(self) -> None:
        """The loop. Returns after `stop` is set and the cycle in flight has finished."""
        self.service.ready(status=self._status())
        log.info("daemon.ready", watchdog_period_s=self.watchdog)
        next_start = time.monotonic()
        while not self.stop.is_set():
            standing = self._lead()
            if standing.leads:
                if standing.role is Role.ELECTED:
                    next_start = time.monotonic()
                await self._supervised_cycle()
                if self.stop.is_set():
                    break
                next_start = _next_start(next_start, self.budget)
                jitter = random.uniform(0, min(MAX_JITTER_S, self.budget * 0.02))  # noqa: S311
                until = next_start + jitter
            else:
                until = time.monotonic() + self.budget / STANDBY_CHECKS
            while await self._wait(until):
                await self._reload()
        self._note_stopping()
        self.leadership.close()

    # ------------------------------------------------------------------ leadership

    def _lead(self) -> Standing:
        """Renew or seek the lease; take the state over when newly elected."""
        ttl = self.daemon.runtime.interval * LEASE_INTERVALS
        standing = self.leadership.check(ttl)
        if standing.role is Role.ELECTED:
            try:
                self.daemon.take_lead()
            except Exception as exc:  # fenced at once, or the database went away
                log.error("leader.takeover_failed", exc_info=exc)
                standing = self.leadership.deposed(type(exc).__name__)
        if standing.leads:
            self._set_standby(None)
        else:
            self._not_leading(standing)
            self.service.status(self._status())
        return standing

    def _not_leading(self, standing: Standing) -> None:
        """A deposed leader stops acting; a standby's STATUS= line and /healthz say so."""
        if standing.role is Role.DEPOSED:
            self.daemon.stand_down()
        self.status_line = standing.detail
        self._set_standby(standing.detail)

    def _set_standby(self, detail: str | None) -> None:
        if self.daemon.metrics is not None:
            self.daemon.metrics.standby = detail

    # ------------------------------------------------------------------ one cycle

    async def _supervised_cycle(self) -> None:
        """Run one cycle as a task; ping the watchdog only while it is within budget."""
        budget = self.budget
        started = time.monotonic()
        task = asyncio.create_task(self.daemon.cycle())
        overran = False
        try:
            while not task.done():
                age = time.monotonic() - started
                if not overran and age >= budget:
                    overran = True
                    self._overran(age, budget)
                if not overran:
                    self._ping()
                timeout = None if overran else budget - age
                if timeout is not None and self.watchdog is not None:
                    timeout = min(timeout, self.watchdog)
                waiters = [] if self._stopping_sent else [self.stop]
                await _wait_any(task, waiters, timeout)
                if self.stop.is_set():
                    self._note_stopping()
        finally:
            if not task.done():  # only when run() itself is cancelled
                task.cancel()
        self._finished(task)

    def _overran(self, age: float, budget: float) -> None:
        log.warning("cycle.overran", age_s=round(age, 3), budget_s=budget)
        self.service.status(f"cycle over its {budget:g}s budget: watchdog pings stopped")

    def _finished(self, task: asyncio.Task[CycleResult]) -> None:
        try:
            report = task.result()
        except FencedOut as exc:  # another instance leads now: this one must not act
            self._not_leading(self.leadership.deposed(str(exc)))
        except Exception as exc:  # a bug in one cycle must not end the daemon
            self._crashed(exc)
        else:
            self.crashed_in_a_row = 0
            self.status_line = status_line(report)
        self.service.status(self._status())
        self._ping()

    def _crashed(self, exc: Exception) -> None:
        self.crashed_in_a_row += 1
        count, kind = self.crashed_in_a_row, type(exc).__name__
        failing = count >= MAX_CRASHED_CYCLES
        log.error("cycle.crashed", crashed_in_a_row=count, pings_stopped=failing, exc_info=exc)
        if failing:
            self.status_line = f"cycles failing: {count} in a row: {kind}"
        else:
            self.status_line = f"last cycle crashed: {kind}"

    # ------------------------------------------------------------------ between cycles

    async def _wait(self, until: float) -> bool:
        """Wait until `until` (monotonic) or `stop`, pinging the watchdog.

        Out: True when a reload was requested (the caller reloads and waits again).
        """
        while not self.stop.is_set():
            if self.reload.is_set():
                self.reload.clear()
                return True
            left = until - time.monotonic()
            if left <= 0:
                return False
            if self.watchdog is not None:
                self._ping()
                left = min(left, self.watchdog)
            await _wait_any(None, [self.stop, self.reload], left)
        return False

    def _ping(self) -> None:
        """WATCHDOG=1, unless one went out within a quarter period (callers ping eagerly)
        or the last `MAX_CRASHED_CYCLES` cycles all crashed."""
        if self.watchdog is None or self.crashed_in_a_row >= MAX_CRASHED_CYCLES:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog / 4:
            self._last_ping = now
            self.service.watchdog()

    def _note_stopping(self) -> None:
        if not self._stopping_sent:
            self._stopping_sent = True
            self.service.stopping()
            log.info("daemon.stopping")

    # ------------------------------------------------------------------ reload

    async def _reload(self) -> None:
        """RELOADING=1, load, swap or keep, READY=1."""
        self.service.reloading()
        log.info("config.reload_started")
        if self.loader is None:
            log.warning("config.reload_unsupported")
        else:
            errors = self._try_reload(self.loader)
            if errors:
                log.error("config.reload_failed", errors=errors)
                count = f"{len(errors)} error{'s' if len(errors) != 1 else ''}"
                self.note = (
                    f"reload failed: {count}, keeping previous config; "
                    f"first: {_shorten(errors[0], MAX_STATUS_ERROR)}"
                )
            else:
                self.note = ""
                await self._close_replaced()
        self.service.ready(status=self._status())

    def _try_reload(self, loader: Callable[[], Runtime]) -> list[str]:
        """Load and swap; out: the errors (empty on success). The old wiring is parked."""
        try:
            runtime = loader()
            register_secrets(runtime.secrets)
            metrics = self.daemon.metrics
            wiring = build_wiring(
                runtime, on_request=None if metrics is None else metrics.count_request
            )
        except ConfigError as exc:
            return list(exc.errors) or [str(exc)]
        except (SecretError, NotifyError) as exc:
            return [str(exc)]
        except Exception as exc:  # a bug while loading must not end the daemon
            log.error("config.reload_crashed", exc_info=exc)
            return [f"unexpected error: {type(exc).__name__}"]
        old, self.daemon.wiring = self.daemon.wiring, wiring
        self._replaced = old
        self._apply(old.runtime, runtime)
        return []

    def _apply(self, old: Runtime, new: Runtime) -> None:
        """Side effects of a new runtime: log settings, metrics interval, restart hints."""
        before, after = old.loaded.settings, new.loaded.settings
        if before.log != after.log:
            logs.configure_logging(level=after.log.level, fmt=after.log.format)
        if self.daemon.metrics is not None:
            self.daemon.metrics.interval = new.interval.total_seconds()
        restart = [
            name
            for name, a, b in (
                ("state", before.state, after.state),
                ("metrics", before.metrics, after.metrics),
                ("web", before.web, after.web),
            )
            if a != b
        ]
        if restart:
            log.warning("config.reload_needs_restart", sections=restart)
        log.info(
            "config.reloaded",
            rules=len(new.rules),
            accounts=len(after.accounts),
            interval_s=new.interval.total_seconds(),
        )

    async def _close_replaced(self) -> None:
        old, self._replaced = self._replaced, None
        if old is None:
            return
        await close_providers(old.providers)

    def _status(self) -> str:
        return f"{self.status_line}; {self.note}" if self.note else self.status_line


def status_line(report: CycleResult) -> str:
    """The one-line `STATUS=` summary of a cycle."""
    firing = report.firing
    errors = len(report.source_errors)
    return (
        f"{firing} firing, {errors} source error{'s' if errors != 1 else ''}, "
        f"last cycle {report.duration_s:.2f}s, {report.requests} request"
        f"{'s' if report.requests != 1 else ''}"
    )


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _next_start(previous: float, interval: float) -> float:
    """Fixed rate: the next slot after `previous`; missed slots are skipped."""
    next_start = previous + interval
    now = time.monotonic()
    if next_start < now:
        next_start = now + interval - (now - next_start) % interval
    return next_start


async def _wait_any(
    task: asyncio.Task[CycleResult] | None, events: list[asyncio.Event], seconds: float | None
) -> None:
    """Return when `task` is done, any of `events` is set, or `seconds` passed (None: no limit)."""
    waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(e.wait()) for e in events]
    watched = [*waiters] if task is None else [*waiters, task]
    try:
        await asyncio.wait(watched, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()

"""The daemon: one poll–evaluate–act cycle, and the fixed-rate loop around it."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from watcher import logs
from watcher.lifecycle import Reason, Transition, step
from watcher.model import AlertKey, AlertState, Severity, SourceName
from watcher.notify import Delivery, Notifier, Route
from watcher.render import Message, render
from watcher.ruleload import LoadedRules, load_rules
from watcher.rules import Rule, evaluate, longest_window, ratio_windows, sources_needed
from watcher.settings import LoadedSettings, ResolvedSecrets, load_settings, resolve_secrets
from watcher.sources import Collected, Needs, collect
from watcher.store import Store
from watcher.telnyx import TelnyxClient
from watcher.yamlfile import ConfigError

log = structlog.get_logger(__name__)

PRUNE_EVERY = timedelta(hours=1)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Runtime:
    """A loaded, validated configuration: settings, rules and resolved secrets."""

    loaded: LoadedSettings
    rules: list[Rule]
    secrets: ResolvedSecrets

    @property
    def interval(self) -> timedelta:
        return self.loaded.settings.poll.interval


def load_runtime(
    path: Path, environ: Mapping[str, str], *, allow_fast_poll: bool = False
) -> Runtime:
    """Load config, rules and secrets.

    Raises ConfigError (all problems, `file:line:col: message`) or SecretError.
    """
    loaded = load_settings(path, environ=environ, allow_fast_poll=allow_fast_poll)
    found: LoadedRules = load_rules(loaded.settings.rules, loaded.config_dir)
    if found.errors:
        raise ConfigError(found.errors)
    for warning in found.warnings:
        log.warning("config.warning", message=warning)
    secrets = resolve_secrets(loaded.settings, environ=environ, config_dir=loaded.config_dir)
    return Runtime(loaded, found.rules, secrets)


def register_secrets(secrets: ResolvedSecrets) -> None:
    """Make every resolved secret known to the log scrubber."""
    for key in secrets.api_keys.values():
        logs.register_secret(key.get_secret_value())
    for urls in secrets.route_urls.values():
        for url in urls:
            logs.register_url_secrets(url.get_secret_value())


def build_notifier(runtime: Runtime) -> Notifier:
    notify = runtime.loaded.settings.notify
    routes = {
        name: Route(tuple(runtime.secrets.route_urls[name]), Severity.parse(route.min_severity))
        for name, route in notify.routes.items()
    }
    timeout = runtime.loaded.settings.poll.timeout.total_seconds()
    return Notifier(routes, default_route=notify.default_route, timeout=timeout)


def build_clients(runtime: Runtime) -> dict[str, TelnyxClient]:
    timeout = runtime.loaded.settings.poll.timeout.total_seconds()
    return {
        account.name: TelnyxClient(
            base_url=account.base_url,
            api_key=runtime.secrets.api_keys[account.name],
            timeout=timeout,
        )
        for account in runtime.loaded.settings.accounts
    }


@dataclass(slots=True)
class CycleReport:
    """What one cycle did, for the summary of `once`, the log and `status`."""

    at: datetime
    duration_s: float = 0.0
    requests: int = 0
    collected: list[Collected] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    outgoing: list[tuple[Message, tuple[str, ...]]] = field(default_factory=list)  # + rule routes
    messages: list[Message] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    alerts: dict[AlertKey, AlertState] = field(default_factory=dict)

    @property
    def source_errors(self) -> list[tuple[str, SourceName, str]]:
        return [
            (c.snapshot.account, source, str(err))
            for c in self.collected
            for source, err in sorted(c.errors.items())
        ]


class Daemon:
    """Runs cycles against the configured accounts.

    In: a runtime, an open store, a notifier, one Telnyx client per account, and a clock
    (the only place that reads the time).
    """

    def __init__(
        self,
        runtime: Runtime,
        store: Store,
        *,
        notifier: Notifier,
        clients: Mapping[str, TelnyxClient],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.notifier = notifier
        self.clients = dict(clients)
        self.clock = clock
        self.first_start = store.first_start(clock())
        self._last_prune: datetime | None = None

    @property
    def rules_by_name(self) -> dict[str, Rule]:
        return {rule.name: rule for rule in self.runtime.rules}

    def needs(self) -> Needs:
        rules = self.runtime.rules
        return Needs(sources_needed(rules), ratio_windows(rules), longest_window(rules))

    async def cycle(self) -> CycleReport:
        """One cycle, in the order of DESIGN §9.

        1. take `now` once
        2. collect every account's needed sources concurrently (failures recorded)
        3. evaluate rules × snapshots (pure)
        4. lifecycle step (pure) → new states and transitions
        5. act: render transitions and send them
        6. commit: cursors of sources that succeeded, source health, alert states
        7. report: one `cycle.finished` log event
        """
        now = self.clock()  # 1
        started = time.monotonic()
        deadline = started + self.runtime.interval.total_seconds()
        report = CycleReport(at=now)
        requests_before = self._requests()
        report.collected = await self._collect(now, deadline)  # 2
        results = evaluate(self.runtime.rules, [c.snapshot for c in report.collected], now)  # 3
        states = self.store.load_alerts()
        stepped = step(  # 4
            states,
            results,
            now,
            repeat_interval=self.runtime.loaded.settings.notify.repeat_interval,
        )
        report.transitions = stepped.transitions
        report.alerts = stepped.states
        await self._act(report)  # 5
        self._commit(report, now, time.monotonic() - started)  # 6
        report.requests = self._requests() - requests_before
        report.duration_s = time.monotonic() - started
        self._log(report)  # 7
        return report

    def _requests(self) -> int:
        return sum(client.requests_sent for client in self.clients.values())

    async def _collect(self, now: datetime, deadline: float) -> list[Collected]:
        needs = self.needs()
        jobs = [
            collect(
                name,
                client,
                self.store,
                needs,
                now,
                first_start=self.first_start,
                deadline=deadline,
            )
            for name, client in self.clients.items()
        ]
        return list(await asyncio.gather(*jobs))

    async def _act(self, report: CycleReport) -> None:
        """5a. top-ups (their outcomes become messages); 5b. render transitions;
        5c. deliver every message of the cycle."""
        await self._act_topups(report)
        self._render_transitions(report)
        await self._deliver(report)

    async def _act_topups(self, report: CycleReport) -> None:
        """Top-ups under the safety protocol of DESIGN §6 (not implemented yet)."""

    def _render_transitions(self, report: CycleReport) -> None:
        rules = self.rules_by_name
        send_resolved = self.runtime.loaded.settings.notify.send_resolved
        for transition in report.transitions:
            if transition.reason is Reason.RESOLVED and not send_resolved:
                continue
            rule = rules.get(transition.key.rule)
            report.outgoing.append((render(transition, rule), rule.routes if rule else ()))

    async def _deliver(self, report: CycleReport) -> None:
        jobs = []
        for message, rule_routes in report.outgoing:
            report.messages.append(message)
            routes = self.notifier.routes_for(rule_routes, message.severity)
            if not routes:
                log.warning("notify.no_route", rule=message.rule, title=message.title)
            jobs.append(self.notifier.send(message, routes))
        for deliveries in await asyncio.gather(*jobs):
            report.deliveries.extend(deliveries)

    def _commit(self, report: CycleReport, now: datetime, duration_s: float) -> None:
        with self.store.transaction():
            for collected in report.collected:
                collected.commit(self.store, now)
            self.store.save_alerts(report.alerts)
            self.store.record_cycle(now, duration_s=duration_s, errors=len(report.source_errors))
        if self._last_prune is None or now - self._last_prune >= PRUNE_EVERY:
            deleted = self.store.prune(now)
            self._last_prune = now
            log.debug("store.pruned", **deleted)

    def _log(self, report: CycleReport) -> None:
        log.info(
            "cycle.finished",
            duration_s=round(report.duration_s, 3),
            requests=report.requests,
            source_errors=len(report.source_errors),
            transitions=len(report.transitions),
            firing=sum(1 for s in report.alerts.values() if s.fired_at is not None),
            delivered=sum(1 for d in report.deliveries if d.ok),
            failed=sum(1 for d in report.deliveries if not d.ok),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Cycles at a fixed rate until `stop` is set; the cycle in flight finishes."""
        interval = self.runtime.interval.total_seconds()
        next_start = time.monotonic()
        while not stop.is_set():
            try:
                await self.cycle()
            except Exception:  # a bug in one cycle must not end the daemon
                log.exception("cycle.crashed")
            next_start += interval
            now = time.monotonic()
            if next_start < now:  # overran: skip the missed slots, keep the rate
                next_start = now + interval - (now - next_start) % interval
            jitter = random.uniform(0, min(1.0, interval * 0.02))  # noqa: S311
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=next_start - now + jitter)

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()


def summarize(report: CycleReport) -> list[str]:
    """Human summary of a cycle for `once` (stdout)."""
    lines = [
        f"cycle at {report.at:%Y-%m-%d %H:%M:%S} UTC: {report.requests} API requests "
        f"in {report.duration_s:.2f}s"
    ]
    for collected in report.collected:
        snap = collected.snapshot
        parts = [f"{s}: ok" for s in sorted(collected.succeeded)]
        parts += [f"{s}: FAILED ({err})" for s, err in sorted(collected.errors.items())]
        lines.append(f"  account {snap.account}: " + ("; ".join(parts) or "nothing polled"))
        if snap.balance is not None:
            b = snap.balance
            lines.append(
                f"    balance {b.balance} {b.currency}, available credit {b.available_credit} "
                f"{b.currency}"
            )
        if snap.new_audit_events:
            lines.append(f"    {len(snap.new_audit_events)} new audit events")
        if snap.webhook_failures:
            lines.append(
                f"    {len(snap.webhook_failures)} failed webhook deliveries in the window"
            )
    lines += alert_lines(report.alerts.values())
    delivered = sum(1 for d in report.deliveries if d.ok)
    failed = [d for d in report.deliveries if not d.ok]
    lines.append(
        f"notifications: {len(report.messages)} messages, {delivered} deliveries ok, "
        f"{len(failed)} failed"
    )
    lines += [f"  failed: {d.route} {d.url} ({d.error})" for d in failed]
    return lines


def alert_lines(states: Iterable[AlertState]) -> list[str]:
    """One line per alert, for `once` and `status`."""
    items = sorted(states, key=lambda s: s.key)
    if not items:
        return ["alerts: none"]
    lines = ["alerts:"]
    for state in items:
        lines.append(
            f"  {state.phase.value.upper():8} {state.severity.label:8} {state.key}: "
            f"{state.value} ({state.threshold})"
        )
    return lines

"""The daemon: one poll–evaluate–act cycle, and the fixed-rate loop around it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from watcher.config.rulecheck import validate
from watcher.config.ruleload import LoadedRules, load_rules
from watcher.config.settings import (
    LoadedSettings,
    ResolvedSecrets,
    TelnyxAccountConfig,
    load_settings,
    resolve_secrets,
)
from watcher.config.yamlfile import ConfigError
from watcher.core.lifecycle import Reason, Transition, step
from watcher.core.model import AlertKey, AlertState, Severity, SourceName
from watcher.core.mute import MuteSpec, is_muted
from watcher.core.render import Message, count_of, render
from watcher.core.rules import (
    Finding,
    Rule,
    evaluate,
    longest_lookback,
    longest_window,
    ratio_windows,
    sources_needed,
)
from watcher.notify.delivery import Delivery, Notifier, Route
from watcher.notify.outbox import Outbox, Policy, flush
from watcher.providers.registry import capabilities
from watcher.providers.telnyx.client import TelnyxClient, keepalive_expiry
from watcher.providers.telnyx.sources import Collected, Needs, collect
from watcher.service import logs
from watcher.service.topup import CycleView, TopupActor
from watcher.state.silences import Silence, Silences, silenced_by, still_firing
from watcher.state.store import Store

if TYPE_CHECKING:
    from watcher.service.metrics import Metrics
    from watcher.service.sdnotify import ServiceNotifier

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
    errors, warnings = validate(loaded, found, datetime.now(UTC), capabilities())
    if errors:
        raise ConfigError(errors)
    for warning in warnings:
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


def build_clients(
    runtime: Runtime, *, on_request: Callable[[str, int | None], None] | None = None
) -> dict[str, TelnyxClient]:
    timeout = runtime.loaded.settings.poll.timeout.total_seconds()
    return {
        account.name: TelnyxClient(
            base_url=account.base_url,
            api_key=runtime.secrets.api_keys[account.name],
            timeout=timeout,
            on_request=on_request,
            keepalive=keepalive_expiry(runtime.interval),
        )
        for account in runtime.loaded.settings.accounts
        if isinstance(account, TelnyxAccountConfig)  # Vonage: wired by the provider registry
    }


@dataclass(frozen=True, slots=True)
class Wiring:
    """What a reload swaps in one assignment: a runtime and the notifier and clients
    built from it."""

    runtime: Runtime
    notifier: Notifier
    clients: dict[str, TelnyxClient]


def build_wiring(
    runtime: Runtime, *, on_request: Callable[[str, int | None], None] | None = None
) -> Wiring:
    """Notifier and clients for `runtime`. Raises NotifyError for an unusable URL."""
    notifier = build_notifier(runtime)
    return Wiring(runtime, notifier, build_clients(runtime, on_request=on_request))


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
    backlog: int = 0  # undelivered outbox targets after the flush
    gave_up: int = 0  # outbox targets dropped after notify.give_up_after in this cycle
    silences_ended: list[Silence] = field(default_factory=list)
    findings: dict[AlertKey, Finding] = field(default_factory=dict)  # this cycle's, by key
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
        metrics: Metrics | None = None,
        dry_run: bool = False,
        owns_state: bool = True,
    ) -> None:
        self.wiring = Wiring(runtime, notifier, dict(clients))  # a reload replaces it whole
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.first_start = store.first_start(clock())
        self.outbox = Outbox(store)
        self.silences = Silences(store)
        # dry_run: never pay; owns_state: this process holds the state lock (statelock.py),
        # else top-ups are only logged and nothing of the ledger is touched
        self.topups = TopupActor(store, clock=clock, dry_run=dry_run, owns_state=owns_state)
        self.topups.start()  # DESIGN §6.6: every `sending` entry becomes `unknown` (owner only)
        self._last_prune: datetime | None = None
        self._flushed_since_start = False  # the first flush sends every pending target

    @property
    def runtime(self) -> Runtime:
        return self.wiring.runtime

    @property
    def notifier(self) -> Notifier:
        return self.wiring.notifier

    @property
    def clients(self) -> dict[str, TelnyxClient]:
        return self.wiring.clients

    @property
    def rules_by_name(self) -> dict[str, Rule]:
        return {rule.name: rule for rule in self.runtime.rules}

    def needs(self) -> Needs:
        rules = self.runtime.rules
        return Needs(
            sources_needed(rules),
            ratio_windows(rules),
            longest_window(rules),
            history=longest_lookback(rules),
        )

    async def cycle(self, *, flush_all: bool = False) -> CycleReport:
        """One cycle, in the order of DESIGN §9.

        1. take `now` once
        2. collect every account's needed sources concurrently (failures recorded)
        3. evaluate rules × snapshots (pure)
        4. lifecycle step (pure) → new states and transitions
        5. act: top-ups, then render transitions into messages (silences applied)
        6. commit, one transaction: cursors of sources that succeeded, source health,
           alert states, and every message into the outbox
        7. deliver: flush the outbox (due retries too; everything with `flush_all` and in
           the first cycle after start-up)
        8. report: one `cycle.finished` log event
        """
        now = self.clock()  # 1
        started = time.monotonic()
        deadline = started + self.runtime.interval.total_seconds()
        report = CycleReport(at=now)
        requests_before = self._requests()
        report.collected = await self._collect(now, deadline)  # 2
        results = evaluate(  # 3
            self.runtime.rules,
            [c.snapshot for c in report.collected],
            now,
            source_down_after=self.runtime.loaded.settings.poll.source_down_after,
        )
        states = self.store.load_alerts()
        stepped = step(  # 4
            states,
            results,
            now,
            repeat_interval=self.runtime.loaded.settings.notify.repeat_interval,
        )
        report.transitions = stepped.transitions
        report.alerts = stepped.states
        report.findings = {f.key: f for r in results if r.judged for f in r.findings}
        await self._act(report, now)  # 5
        self._commit(report, now, time.monotonic() - started)  # 6
        await self._deliver(report, now, flush_all=flush_all)  # 7
        report.requests = self._requests() - requests_before
        report.duration_s = time.monotonic() - started
        self._log(report)  # 8
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

    async def _act(self, report: CycleReport, now: datetime) -> None:
        """5a. top-ups (their outcomes become messages); 5b. render transitions."""
        await self._act_topups(report)
        self._render_transitions(report, now)

    async def _act_topups(self, report: CycleReport) -> None:
        """Top-ups under the safety protocol of DESIGN §6 (watcher/service/topup.py); their
        outcomes, refusals, dry runs and alerts become messages."""
        settings = self.runtime.loaded.settings
        view = CycleView(
            at=report.at,
            rules=self.runtime.rules,
            accounts=settings.accounts,
            transitions=report.transitions,
            alerts=report.alerts,
            snapshots=[c.snapshot for c in report.collected],
            clients=self.clients,
            timeout=settings.poll.timeout.total_seconds(),
        )
        report.outgoing.extend(await self.topups.act(view))
        if self.metrics is not None:
            for entry in self.topups.recorded:
                self.metrics.count_topup(entry.account, entry.state.value)

    def _render_transitions(self, report: CycleReport, now: datetime) -> None:
        rules = self.rules_by_name
        send_resolved = self.runtime.loaded.settings.notify.send_resolved
        active = self.silences.active(now)
        for transition in report.transitions + self._silences_ended(report, now, active):
            if transition.reason is Reason.RESOLVED and not send_resolved:
                continue
            silence = silenced_by(transition.key, active, now)
            if silence is not None:
                log.info(
                    "notify.silenced",
                    alert=str(transition.key),
                    silence=silence.id,
                    reason=transition.reason.value,
                )
                continue
            rule = rules.get(transition.key.rule)
            if rule is not None and rule.mute and is_muted(rule.mute, now):
                log.info("notify.muted", alert=str(transition.key), reason=transition.reason.value)
                continue
            report.outgoing.append((render(transition, rule), rule.routes if rule else ()))

    def _silences_ended(
        self, report: CycleReport, now: datetime, active: list[Silence]
    ) -> list[Transition]:
        """A firing alert whose silence ended is notified once more ("still firing")."""
        report.silences_ended = self.silences.ended_unhandled(now)
        notified = {t.key for t in report.transitions}
        out = still_firing(
            report.alerts, report.findings, report.silences_ended, active, now, notified=notified
        )
        for transition in out:
            if transition.state is not None:
                report.alerts[transition.key] = transition.state
        return out

    def _enqueue(self, report: CycleReport, now: datetime) -> None:
        for message, rule_routes in report.outgoing:
            report.messages.append(message)
            routes = self.notifier.routes_for(rule_routes, message.severity)
            muted = (
                [] if message.urgent else [r for r in routes if is_muted(self._route_mutes(r), now)]
            )
            if muted:
                log.info("notify.muted", routes=muted, title=message.title)
            targets = [t for r in routes if r not in muted for t in self.notifier.targets(r)]
            if not targets and not muted:
                log.warning("notify.no_route", rule=message.rule, title=message.title)
            self.outbox.enqueue(message, targets, now)

    def _route_mutes(self, route: str) -> list[MuteSpec]:
        config = self.runtime.loaded.settings.notify.routes.get(route)
        return config.mute if config is not None else []

    async def _deliver(self, report: CycleReport, now: datetime, *, flush_all: bool) -> None:
        notify = self.runtime.loaded.settings.notify
        policy = Policy(
            give_up_after=notify.give_up_after,
            failures_before_fallback=notify.failures_before_fallback,
            fallbacks={n: r.fallback for n, r in notify.routes.items() if r.fallback},
        )
        everything = flush_all or not self._flushed_since_start
        result = await flush(
            self.outbox, self.notifier, now, policy, everything=everything, clock=self.clock
        )
        self._flushed_since_start = True
        report.deliveries = [
            Delivery(item.route, item.url_masked, True) for item in result.delivered
        ] + [delivery for _, delivery in result.failed]
        report.backlog = self.outbox.backlog()
        report.gave_up = len(result.expired)

    def _commit(self, report: CycleReport, now: datetime, duration_s: float) -> None:
        with self.store.transaction():
            for collected in report.collected:
                collected.commit(self.store, now)
            self.store.save_alerts(report.alerts)
            self._enqueue(report, now)
            self.topups.commit()  # top-up messages are in the outbox now
            self.silences.mark_handled(report.silences_ended)
            self.store.record_cycle(now, duration_s=duration_s, errors=len(report.source_errors))
        if self._last_prune is None or now - self._last_prune >= PRUNE_EVERY:
            deleted = self.store.prune(now)
            deleted["outbox_messages"] = self.outbox.prune(now)
            deleted["silences"] = self.silences.prune(now)
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
            backlog=report.backlog,
        )
        if self.metrics is not None:
            self.metrics.observe_cycle(report)

    async def run(
        self,
        stop: asyncio.Event,
        *,
        reload: asyncio.Event | None = None,
        loader: Callable[[], Runtime] | None = None,
        service: ServiceNotifier | None = None,
        watchdog: float | None = None,
    ) -> None:
        """Cycles at a fixed rate until `stop` is set; the cycle in flight finishes.

        The loop, the systemd protocol (READY/STATUS/WATCHDOG/RELOADING/STOPPING) and the
        SIGHUP reload (`reload` set → `loader()` between cycles) live in
        `watcher.service.supervisor`; `watchdog` is the WATCHDOG=1 period in seconds (None: off).
        """
        from watcher.service.supervisor import Supervisor

        await Supervisor(
            self, stop, reload=reload, loader=loader, service=service, watchdog=watchdog
        ).run()

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()


def summarize(report: CycleReport) -> list[str]:
    """Human summary of a cycle for `once` (stdout)."""
    lines = [
        f"cycle at {report.at:%Y-%m-%d %H:%M:%S} UTC: {count_of(report.requests, 'API request')} "
        f"in {report.duration_s:.2f}s"
    ]
    for collected in report.collected:
        snap = collected.snapshot
        parts = [f"{s}: {collected.behind.get(s, 'ok')}" for s in sorted(collected.succeeded)]
        parts += [f"{s}: FAILED ({err})" for s, err in sorted(collected.errors.items())]
        lines.append(f"  account {snap.account}: " + ("; ".join(parts) or "nothing polled"))
        if snap.balance is not None:
            b = snap.balance
            lines.append(
                f"    balance {b.balance} {b.currency}, available credit {b.available_credit} "
                f"{b.currency}"
            )
        if snap.new_audit_events:
            lines.append(f"    {count_of(len(snap.new_audit_events), 'new audit event')}")
        if snap.webhook_failures:
            failures = count_of(
                len(snap.webhook_failures), "failed webhook delivery", "failed webhook deliveries"
            )
            lines.append(f"    {failures} in the window")
    lines += alert_lines(report.alerts.values())
    delivered = sum(1 for d in report.deliveries if d.ok)
    failed = [d for d in report.deliveries if not d.ok]
    lines.append(
        f"notifications: {count_of(len(report.messages), 'new message')}, "
        f"{count_of(delivered, 'delivery', 'deliveries')} ok, "
        f"{len(failed)} failed, {report.backlog} waiting for retry"
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

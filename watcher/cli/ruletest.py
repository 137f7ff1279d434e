"""Rule unit tests: `account-watcher test FILE...`, in the spirit of `promtool test rules`.

A test file names rule files (relative to itself), an evaluation interval and test
cases. Each case scripts what the sources would have seen (balance series, audit
events, webhook deliveries, invoices, provider settings, Telnyx charges) and states
what must be true at given times (alerts pending / firing / resolved, notification
titles, muted titles, top-up intents). The real `evaluate`, `lifecycle.step` and
`render` run against a simulated clock with in-memory snapshots: no network, no store,
no sleeping. Top-ups are the daemon's too: the core's `find_triggers` and `decide` run
on a dry-run ledger in memory, with the caps of the case's `topup:` (as
`accounts[].topup`; its defaults when left out).

```yaml
rule_files: [../balance.yaml]
evaluation_interval: 1m
tests:
  - name: low credit fires after 5 minutes
    balance:
      available_credit: "150 120 90 90 90 90 90 90 40 40 130"
    expect:
      - at: 2m
        alerts: [{rule: low-credit, state: pending, severity: warning}]
      - at: 7m
        alerts: [{rule: low-credit, state: firing, severity: warning}]
        notifications: ["[WARNING] low-credit firing — main"]
```

Series are space-separated values, one per evaluation (`_` or `x`: the balance
request failed; `_xN`: N failed ones; `A+BxN` / `A-BxN`: N+1 values from A in steps of
B, as in promtool). After the last value the series holds it. A series has at most
`MAX_POINTS` (100,000) values, counted before anything is expanded, and runs are kept
as runs, computed at each index; a case runs at most as many evaluations. The file's
models and the series parser are in watcher/cli/ruletest_input.py.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from watcher.cli.ruletest_input import (
    MAX_POINTS,
    AlertExpect,
    Expectation,
    TestCase,
    TestFile,
    TopupExpect,
)
from watcher.cli.ruletest_sources import charges_at, invoices_at, settings_at, settings_problems
from watcher.config.ruleload import load_rules
from watcher.config.yamlfile import ConfigError, format_validation_errors, load_yaml
from watcher.core.capabilities import Capabilities
from watcher.core.durations import format_duration
from watcher.core.holds import Hold, HoldKind, binding_hold, find_firings
from watcher.core.ledger_types import Entry, EntryState, Guard
from watcher.core.lifecycle import Reason, Transition, step
from watcher.core.model import (
    AccountSnapshot,
    AlertKey,
    AlertState,
    AuditChange,
    AuditEvent,
    Balance,
    ChargesQuery,
    SourceError,
    SourceName,
    WebhookDelivery,
)
from watcher.core.mute import is_muted
from watcher.core.render import render
from watcher.core.rules import Rule, evaluate, longest_lookback, longest_window, ratio_windows
from watcher.core.spend import charges_queries
from watcher.core.topup import (
    Caps,
    Pay,
    Refusal,
    Refuse,
    Trigger,
    Wait,
    decide,
    find_triggers,
    still_critical,
)
from watcher.providers.registry import capabilities

# ---------------------------------------------------------------------------- simulation


@dataclass(frozen=True, slots=True)
class Observed:
    """What one evaluation produced, as comparable lines."""

    alerts: list[str]
    notifications: list[str]
    muted: list[str]
    topups: list[str]


@dataclass(slots=True)
class DryRunLedger:
    """The daemon's top-up step for one case, on a dry-run ledger in memory.

    The core's `find_triggers` says which rule asks to top up, `decide` (a dry run: its
    own entries count toward the caps and `min_interval`) pays, refuses or waits, as in
    watcher/service/topup.py: a payment is re-checked with `still_critical`, a refusal
    counts once per firing episode (the daemon notifies it once).
    """

    caps: Caps
    hold_after: timedelta = timedelta(hours=24)
    entries: list[Entry] = field(default_factory=list)
    refused: set[tuple[str, str, str]] = field(default_factory=set)
    holds: list[Hold] = field(default_factory=list)

    def due(
        self,
        rules: Sequence[Rule],
        transitions: Sequence[Transition],
        alerts: Mapping[AlertKey, AlertState],
        snapshot: AccountSnapshot,
        now: datetime,
    ) -> list[str]:
        """The top-ups due at `now` (paid or refused), as `rule/account` lines; one the
        fraud hold refuses (a `holds_topups` rule fired within `hold_after`) ends in
        ` (held)`."""
        for firing in find_firings(rules, transitions, alerts, now):
            hold = Hold(
                len(self.holds) + 1, firing.account, HoldKind.RULE, firing.rule, "", "", now, now
            )
            self.holds.append(hold)
        due = []
        for trigger in find_triggers(rules, transitions, alerts, [snapshot]):
            held = binding_hold(self.holds, now, self.hold_after)
            guard = Guard(hold=held, hold_after=self.hold_after)
            decision = decide(trigger.kind, self.caps, self.entries, now, dry_run=True, guard=guard)
            if isinstance(decision, Wait):
                continue
            made = self._pay(trigger, now) if isinstance(decision, Pay) else self._refuse(trigger)
            if made:
                line = str(AlertKey(trigger.rule.name, trigger.account, ""))
                held_now = isinstance(decision, Refuse) and decision.why is Refusal.HELD
                due.append(line + (" (held)" if held_now else ""))
        return due

    def _pay(self, trigger: Trigger, now: datetime) -> bool:
        balance = trigger.snapshot.balance
        if balance is None or still_critical(trigger.rule, trigger.snapshot, balance, now) is None:
            return False
        number = len(self.entries) + 1
        entry = Entry(
            number,
            trigger.account,
            self.caps.amount,
            balance.currency,
            EntryState.DRY_RUN,
            now,
            trigger.rule.name,
            "simulated",
        )
        self.entries.append(entry)
        return True

    def _refuse(self, trigger: Trigger) -> bool:
        episode = (trigger.account, trigger.rule.name, trigger.episode)
        if episode in self.refused:
            return False
        self.refused.add(episode)
        return True


@dataclass(slots=True)
class Simulation:
    """Runs one test case: snapshots built in memory, the real rule and alert code."""

    case: TestCase
    rules: list[Rule]
    interval: timedelta
    states: dict[AlertKey, AlertState] = field(default_factory=dict)
    history: deque[tuple[datetime, Balance]] = field(default_factory=deque)
    failing_since: datetime | None = None
    ledger: DryRunLedger = field(init=False)
    offers: Mapping[str, Capabilities] = field(default_factory=capabilities)

    def __post_init__(self) -> None:
        self.ledger = DryRunLedger(Caps.of(self.case.topup), self.case.topup.hold_after)

    @property
    def drift_types(self) -> Mapping[str, type]:
        return self.offers[self.case.provider].drift_fields

    @property
    def queries(self) -> tuple[ChargesQuery, ...]:
        return charges_queries(self.rules)

    def time(self, index: int) -> datetime:
        return self.case.start + self.interval * index

    def run(self, last: int) -> Iterator[tuple[int, Observed]]:
        """Evaluate at 0, 1, ..., `last` intervals; yield what each evaluation produced."""
        rules_by_name = {rule.name: rule for rule in self.rules}
        for index in range(last + 1):
            now = self.time(index)
            snap = self.snapshot(index, now)
            results = evaluate(self.rules, [snap], now, capabilities=self.offers)
            stepped = step(self.states, results, now, repeat_interval=self.case.repeat_interval)
            self.states = stepped.states
            due = self.ledger.due(self.rules, stepped.transitions, self.states, snap, now)
            yield index, self.observe(stepped.transitions, rules_by_name, due)
            if snap.balance is not None and longest_lookback(self.rules):
                self.history.append((now, snap.balance))

    def snapshot(self, index: int, now: datetime) -> AccountSnapshot:
        balance = self.case.balance.at(index) if self.case.balance is not None else None
        errors: dict[SourceName, SourceError] = {}
        if self.case.balance is not None and balance is None:
            self.failing_since = self.failing_since or now
            errors[SourceName.BALANCE] = SourceError(
                SourceName.BALANCE,
                "simulated failure (`_` in the series)",
                failing_since=self.failing_since,
            )
        else:
            self.failing_since = None
        lookback = longest_lookback(self.rules)
        while self.history and self.history[0][0] < now - lookback:
            self.history.popleft()  # only the samples a forecast can still look at
        previous = self.time(index - 1) if index else None
        return AccountSnapshot(
            account=self.case.account,
            balance=balance,
            balance_history=tuple(self.history),
            new_audit_events=tuple(self.audit_events(previous, now)),
            webhook_failures=tuple(self.failures(now)),
            delivery_totals={w: self.total(now, w) for w in ratio_windows(self.rules)},
            errors=errors,
            provider=self.case.provider,
            invoices=invoices_at(self.case.invoices, self.case.start, now),
            settings=settings_at(self.case.settings, self.case.start, now, self.drift_types),
            charges=charges_at(self.case.charges, self.case.start, now, self.queries),
        )

    def audit_events(self, previous: datetime | None, now: datetime) -> Iterator[AuditEvent]:
        for number, event in enumerate(self.case.audit_events, start=1):
            created = self.case.start + event.at
            if created <= now and (previous is None or created > previous):
                yield AuditEvent(
                    id=event.id or f"event-{number}",
                    created_at=created,
                    change_type=event.change_type,
                    change_made_by=event.change_made_by,
                    resource_id=event.resource_id,
                    alternate_resource_id=event.alternate_resource_id,
                    user_id=event.user_id,
                    record_type=event.record_type,
                    changes=tuple(AuditChange(c.field, c.old, c.new) for c in event.changes),
                )

    def deliveries(self) -> Iterator[WebhookDelivery]:
        for number, item in enumerate(self.case.webhook_deliveries, start=1):
            for copy in range(item.count):
                yield WebhookDelivery(
                    id=f"delivery-{number}-{copy + 1}",
                    started_at=self.case.start + item.at,
                    status=item.status,
                    event_type=item.event_type,
                    url=item.url,
                    http_status=item.http_status,
                    error=item.error,
                )

    def failures(self, now: datetime) -> Iterator[WebhookDelivery]:
        oldest = now - longest_window(self.rules)
        for delivery in self.deliveries():
            if delivery.status == "failed" and oldest <= delivery.started_at <= now:
                yield delivery

    def total(self, now: datetime, window: timedelta) -> int:
        return sum(1 for d in self.deliveries() if now - window <= d.started_at <= now)

    def observe(
        self, transitions: Sequence[Transition], rules: dict[str, Rule], topups: list[str]
    ) -> Observed:
        alerts = [f"{s.phase.value} {s.severity.label} {s.key}" for s in self.states.values()] + [
            f"resolved {t.severity.label} {t.key}" for t in transitions if _resolved(t)
        ]
        sent: list[str] = []
        muted: list[str] = []
        for transition in transitions:
            if _resolved(transition) and not self.case.send_resolved:
                continue
            rule = rules.get(transition.key.rule)
            title = render(transition, rule).title
            quiet = rule is not None and bool(rule.mute) and is_muted(rule.mute, transition.at)
            (muted if quiet else sent).append(title)
        return Observed(sorted(alerts), sorted(sent), sorted(muted), sorted(topups))


def _resolved(transition: Transition) -> bool:
    return transition.reason is Reason.RESOLVED


# ---------------------------------------------------------------------------- comparing


def _key(rule: str, account: str, group: str) -> str:
    return str(AlertKey(rule, account, group))


def expected_alerts(expect: Iterable[AlertExpect], account: str, got: Sequence[str]) -> list[str]:
    """Expected alert lines; an alert given without severity takes the one seen."""
    lines = []
    for alert in expect:
        key = _key(alert.rule, alert.account or account, alert.group)
        if alert.severity is not None:
            lines.append(f"{alert.state} {alert.severity} {key}")
            continue
        seen = [g for g in got if _split(g)[0] == alert.state and _split(g)[2] == key]
        lines.append(seen[0] if seen else f"{alert.state} (any severity) {key}")
    return sorted(lines)


def _split(line: str) -> list[str]:
    return line.split(" ", 2)


def diff_lines(expected: Sequence[str], got: Sequence[str]) -> list[str] | None:
    """None when equal as multisets; else every line marked `  ` both, `- ` expected
    only, `+ ` got only."""
    want, have = Counter(expected), Counter(got)
    if want == have:
        return None
    out: list[tuple[str, str]] = []
    for line in sorted(want | have):
        both = min(want[line], have[line])
        out += [(line, "  ")] * both
        out += [(line, "- ")] * (want[line] - both)
        out += [(line, "+ ")] * (have[line] - both)
    return [f"{mark}{line}" for line, mark in out] or ["(none)"]


def _topup_line(item: TopupExpect | str, account: str) -> str:
    if isinstance(item, str):
        name, held = item.removesuffix(" (held)"), item.endswith(" (held)")
        return (name if "/" in name else _key(name, account, "")) + (" (held)" if held else "")
    return _key(item.rule, item.account or account, "") + (" (held)" if item.held else "")


def compare(expect: Expectation, seen: Observed, account: str) -> list[str]:
    """Out: the failure report lines for one expectation (empty when it holds)."""
    checks: list[tuple[str, list[str], list[str]]] = []
    if expect.alerts is not None:
        checks.append(("alerts", expected_alerts(expect.alerts, account, seen.alerts), seen.alerts))
    if expect.notifications is not None:
        checks.append(("notifications", sorted(expect.notifications), seen.notifications))
    if expect.muted is not None:
        checks.append(("muted notifications", sorted(expect.muted), seen.muted))
    if expect.topups is not None:
        topups = sorted(_topup_line(t, account) for t in expect.topups)
        checks.append(("top-ups", topups, seen.topups))
    report: list[str] = []
    for name, wanted, got in checks:
        lines = diff_lines(wanted, got)
        if lines is not None:
            report += [f"  {name} (- expected, + got):", *(f"    {line}" for line in lines)]
    return report


# ---------------------------------------------------------------------------- running


@dataclass(slots=True)
class FileResult:
    """The outcome of one test file: passed and failed case names, and report lines."""

    path: Path
    passed: int = 0
    failed: int = 0
    lines: list[str] = field(default_factory=list)


def run_case(case: TestCase, rules: list[Rule], interval: timedelta) -> list[str]:
    """Run one case. Out: failure report lines (empty when every expectation holds)."""
    due: dict[int, list[Expectation]] = {}
    problems: list[str] = []
    for expect in case.expect:
        steps, rest = divmod(expect.at, interval)
        if rest:
            problems.append(
                f"  expect at {format_duration(expect.at)}: not a multiple of the "
                f"interval {format_duration(interval)}"
            )
        elif steps > MAX_POINTS:
            problems.append(
                f"  expect at {format_duration(expect.at)}: more than {MAX_POINTS:,} evaluations"
            )
        else:
            due.setdefault(steps, []).append(expect)
    simulation = Simulation(case, rules, interval)
    problems += [f"  {line}" for line in settings_problems(case.settings, simulation.drift_types)]
    if problems or not due:
        return problems
    report: list[str] = []
    for index, seen in simulation.run(max(due)):
        for expect in due.get(index, []):
            lines = compare(expect, seen, case.account)
            if lines:
                at = simulation.time(index)
                report.append(f"  at {format_duration(expect.at)} ({at:%Y-%m-%d %H:%M} UTC):")
                report += [f"  {line}" for line in lines]
    return report


def run_file(path: Path) -> FileResult:
    """Load one test file and its rule files and run every case."""
    result = FileResult(path)
    try:
        spec = _load_spec(path)
    except ConfigError as exc:
        result.failed = 1
        result.lines = [f"FAIL {path}: the test file is not valid", *exc.errors]
        return result
    found = load_rules(spec.rule_files, path.parent)
    if found.errors or found.warnings:
        result.failed = 1
        problems = found.errors + found.warnings
        result.lines = [f"FAIL {path}: the rule files are not valid", *problems]
        return result
    for case in spec.tests:
        lines = run_case(case, found.rules, case.interval or spec.evaluation_interval)
        if lines:
            result.failed += 1
            result.lines += [f"FAIL {path}: {case.name}", *lines]
        else:
            result.passed += 1
    return result


def _load_spec(path: Path) -> TestFile:
    doc = load_yaml(path)
    if doc.data is None:
        raise ConfigError(f"{path}: the file is empty; it needs rule_files and tests")
    try:
        return TestFile.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(format_validation_errors(path, doc, exc)) from None


def cmd_test(paths: Sequence[Path], out: TextIO) -> int:
    """`account-watcher test FILE...`: run every file; failures with a diff on `out`.

    Out: 0 when every case passes, 1 otherwise.
    """
    passed = failed = 0
    for path in paths:
        result = run_file(path)
        passed += result.passed
        failed += result.failed
        if result.lines:
            print("\n".join(result.lines), file=out)
        else:
            print(f"ok   {path}: {result.passed} test(s)", file=out)
    verdict = "FAILED" if failed else "SUCCESS"
    print(f"{verdict}: {passed} passed, {failed} failed", file=out)
    return 1 if failed else 0

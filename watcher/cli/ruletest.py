"""Rule unit tests: `account-watcher test FILE...`, in the spirit of `promtool test rules`.

A test file names rule files (relative to itself), an evaluation interval and test
cases. Each case scripts what the sources would have seen (balance series, audit
events, webhook deliveries) and states what must be true at given times (alerts
pending / firing / resolved, notification titles, muted titles, top-up intents). The
real `evaluate`, `lifecycle.step` and `render` run against a simulated clock with
in-memory snapshots: no network, no store, no sleeping.

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
as runs, computed at each index; a case runs at most as many evaluations.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal, TextIO

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    model_validator,
)

from watcher.config.ruleload import load_rules
from watcher.config.yamlfile import ConfigError, format_validation_errors, load_yaml
from watcher.core.durations import Duration, format_duration
from watcher.core.lifecycle import Reason, Transition, step
from watcher.core.model import (
    AccountSnapshot,
    AlertKey,
    AlertState,
    AuditChange,
    AuditEvent,
    Balance,
    Severity,
    SourceError,
    SourceName,
    WebhookDelivery,
)
from watcher.core.mute import is_muted
from watcher.core.render import render
from watcher.core.rules import (
    BalanceRule,
    ForecastRule,
    Rule,
    evaluate,
    longest_lookback,
    longest_window,
    ratio_windows,
)

DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, 00:00 UTC
_MISSING = {"_", "x"}
_EXPAND = re.compile(r"(?P<a>-?\d+(?:\.\d+)?)(?P<op>[+-])(?P<b>\d+(?:\.\d+)?)x(?P<n>\d+)")
_MISSING_RUN = re.compile(r"[_x]x(?P<n>\d+)")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


# ---------------------------------------------------------------------------- series


MAX_POINTS = 100_000
"""The most values one series may hold, and the most evaluations one test case may run."""


@dataclass(frozen=True, slots=True)
class _Run:
    """`count` values from `first` in steps of `step`; `first` None: failed requests."""

    first: Decimal | None
    step: Decimal
    count: int

    def at(self, offset: int) -> Decimal | None:
        return None if self.first is None else self.first + self.step * offset


@dataclass(frozen=True, slots=True)
class SeriesValues:
    """A parsed series, kept as runs and computed on demand: `100-1x99999` is one run,
    not 100,000 numbers in memory. Index past the end: the last value holds."""

    runs: tuple[_Run, ...]
    starts: tuple[int, ...]  # the index of each run's first value

    def __len__(self) -> int:
        return self.starts[-1] + self.runs[-1].count

    def __iter__(self) -> Iterator[Decimal | None]:
        for run in self.runs:
            yield from (run.at(offset) for offset in range(run.count))

    def at(self, index: int) -> Decimal | None:
        index = min(index, len(self) - 1)
        number = bisect_right(self.starts, index) - 1
        return self.runs[number].at(index - self.starts[number])


def parse_series(text: str | int | float | Sequence[Any]) -> SeriesValues:
    """Parse a series: `"120 100 _ 80"`, `"100-10x4"`, `"_x3"`, a number or a list.

    In: the text (or a number, or a list of numbers / `_`). Out: one value per
    evaluation, None where the balance request failed, computed on demand.
    Raises: `ValueError` naming the token that is not understood, or saying that the
    series has more than `MAX_POINTS` values (checked before anything is expanded).
    """
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a series of values")
    if isinstance(text, int | float):
        return _from_runs([_Run(Decimal(str(text)), Decimal(0), 1)])
    if not isinstance(text, str) and len(text) > MAX_POINTS:
        raise _too_long(len(text))
    tokens = text.split() if isinstance(text, str) else [str(v) for v in text]
    runs = [_token(token) for token in tokens]
    if not runs:
        raise ValueError("the series is empty")
    total = sum(run.count for run in runs)
    if total > MAX_POINTS:
        raise _too_long(total)
    return _from_runs(runs)


def _from_runs(runs: list[_Run]) -> SeriesValues:
    starts = [0]
    for run in runs[:-1]:
        starts.append(starts[-1] + run.count)
    return SeriesValues(tuple(runs), tuple(starts))


def _too_long(count: int | None) -> ValueError:
    size = f"{count:,} values" if count is not None else "more values than that"
    return ValueError(f"the series has {size}; at most {MAX_POINTS:,} are allowed")


def _count(digits: str, extra: int) -> int:
    """The number of values of `xN`; a number too long to matter is refused unread."""
    if len(digits) > 15:
        raise _too_long(None)
    return int(digits) + extra


def _token(token: str) -> _Run:
    if token in _MISSING:
        return _Run(None, Decimal(0), 1)
    if (run := _MISSING_RUN.fullmatch(token)) is not None:
        return _Run(None, Decimal(0), _count(run["n"], 0))
    if (expand := _EXPAND.fullmatch(token)) is not None:
        start, delta = Decimal(expand["a"]), Decimal(expand["b"])
        sign = 1 if expand["op"] == "+" else -1
        return _Run(start, sign * delta, _count(expand["n"], 1))
    if _NUMBER.fullmatch(token):
        try:
            return _Run(Decimal(token), Decimal(0), 1)
        except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
            pass
    raise ValueError(
        f"{token!r} is not a value; use numbers, `_` for a failed request, `_xN`, "
        "or `A+BxN` / `A-BxN`"
    )


def _series(value: Any) -> Any:
    if value is None or isinstance(value, SeriesValues):
        return value
    return parse_series(value)


Series = Annotated[SeriesValues, PlainValidator(_series)]


# ---------------------------------------------------------------------------- test file


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BalanceInput(_Strict):
    """Balance fields over time; a missing value (`_`) means the request failed."""

    available_credit: Series | None = None
    balance: Series | None = None
    credit_limit: Series | None = None
    pending: Series | None = None
    currency: str = "USD"

    @model_validator(mode="after")
    def _has_money(self) -> BalanceInput:
        if self.available_credit is None and self.balance is None:
            raise ValueError("give `available_credit` or `balance` (or both)")
        return self

    def at(self, index: int) -> Balance | None:
        """The balance of evaluation `index` (series hold their last value); None: failed."""
        limit = _value(self.credit_limit, index, Decimal(0))
        pending = _value(self.pending, index, Decimal(0))
        balance = _value(self.balance, index, None)
        available = _value(self.available_credit, index, None)
        if self.balance is None and available is not None and limit is not None:
            balance = available - limit
        if self.available_credit is None and balance is not None and limit is not None:
            available = balance + limit
        if balance is None or available is None or limit is None or pending is None:
            return None
        return Balance(balance, available, limit, pending, self.currency)


def _value(series: SeriesValues | None, index: int, default: Any) -> Any:
    return default if series is None else series.at(index)


class ChangeInput(_Strict):
    field: str
    old: Any = None
    new: Any = None


class AuditInput(_Strict):
    """One audit event, created `at` after the start."""

    at: Duration
    id: str | None = None
    change_type: str = "update"
    change_made_by: str = "account_owner"
    resource_id: str | None = None
    alternate_resource_id: str | None = None
    user_id: str | None = None
    record_type: str | None = None
    changes: list[ChangeInput] = Field(default_factory=list)


class DeliveryInput(_Strict):
    """`count` webhook deliveries started `at` after the start."""

    at: Duration
    status: str = "failed"
    event_type: str = ""
    url: str = "https://example.com/webhooks"
    http_status: int | None = None
    error: str = ""
    count: Annotated[int, Field(ge=1, le=10_000)] = 1


class AlertExpect(_Strict):
    """An alert that must be pending or firing (or resolve) at that time."""

    rule: str
    state: Literal["pending", "firing", "resolved"]
    severity: Literal["info", "warning", "critical"] | None = None
    account: str | None = None
    group: str = ""


class TopupExpect(_Strict):
    rule: str
    account: str | None = None


class Expectation(_Strict):
    """What must hold right after the evaluation at `at`; a key left out is not checked.

    `alerts` is the complete list of pending and firing alerts, plus those resolving at
    that evaluation; `notifications`, `muted` and `topups` are the complete lists for
    that evaluation.
    """

    at: Duration
    alerts: list[AlertExpect] | None = None
    notifications: list[str] | None = None
    muted: list[str] | None = None
    topups: list[TopupExpect | str] | None = None


class TestCase(_Strict):
    """One scripted story and what must be true along the way."""

    name: str
    account: Annotated[str, Field(pattern=r"^[a-z0-9_-]+$")] = "main"
    interval: Duration | None = None
    start: AwareDatetime = DEFAULT_START
    repeat_interval: Duration = timedelta(hours=4)
    send_resolved: bool = True
    balance: BalanceInput | None = None
    audit_events: list[AuditInput] = Field(default_factory=list, max_length=MAX_POINTS)
    webhook_deliveries: list[DeliveryInput] = Field(default_factory=list)
    expect: list[Expectation] = Field(min_length=1)

    @model_validator(mode="after")
    def _bounded_deliveries(self) -> TestCase:
        total = sum(item.count for item in self.webhook_deliveries)
        if total > MAX_POINTS:
            raise ValueError(
                f"{total:,} webhook deliveries in all; at most {MAX_POINTS:,} are allowed"
            )
        return self


class TestFile(_Strict):
    """The top level of a rule test file."""

    rule_files: list[str] = Field(min_length=1)
    evaluation_interval: Duration = timedelta(minutes=1)
    tests: list[TestCase] = Field(min_length=1)

    @model_validator(mode="after")
    def _positive_intervals(self) -> TestFile:
        intervals = [self.evaluation_interval, *(t.interval for t in self.tests if t.interval)]
        if any(i <= timedelta(0) for i in intervals):
            raise ValueError("intervals must be longer than 0s")
        return self


# ---------------------------------------------------------------------------- simulation


@dataclass(frozen=True, slots=True)
class Observed:
    """What one evaluation produced, as comparable lines."""

    alerts: list[str]
    notifications: list[str]
    muted: list[str]
    topups: list[str]


@dataclass(slots=True)
class Simulation:
    """Runs one test case: snapshots built in memory, the real rule and alert code."""

    case: TestCase
    rules: list[Rule]
    interval: timedelta
    states: dict[AlertKey, AlertState] = field(default_factory=dict)
    history: deque[tuple[datetime, Balance]] = field(default_factory=deque)
    failing_since: datetime | None = None

    def time(self, index: int) -> datetime:
        return self.case.start + self.interval * index

    def run(self, last: int) -> Iterator[tuple[int, Observed]]:
        """Evaluate at 0, 1, ..., `last` intervals; yield what each evaluation produced."""
        rules_by_name = {rule.name: rule for rule in self.rules}
        for index in range(last + 1):
            now = self.time(index)
            snap = self.snapshot(index, now)
            results = evaluate(self.rules, [snap], now)
            stepped = step(self.states, results, now, repeat_interval=self.case.repeat_interval)
            self.states = stepped.states
            yield index, self.observe(stepped.transitions, rules_by_name)
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

    def observe(self, transitions: Sequence[Transition], rules: dict[str, Rule]) -> Observed:
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
        topups = [str(t.key) for t in transitions if _tops_up(t, rules.get(t.key.rule))]
        return Observed(sorted(alerts), sorted(sent), sorted(muted), sorted(topups))


def _resolved(transition: Transition) -> bool:
    return transition.reason is Reason.RESOLVED


def _tops_up(transition: Transition, rule: Rule | None) -> bool:
    """A top-up would be attempted: a `topup: true` rule starts firing at critical."""
    return (
        isinstance(rule, BalanceRule | ForecastRule)
        and rule.topup
        and transition.reason in (Reason.FIRING, Reason.ESCALATED)
        and transition.severity is Severity.CRITICAL
    )


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
        return item if "/" in item else _key(item, account, "")
    return _key(item.rule, item.account or account, "")


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
    if problems or not due:
        return problems
    simulation = Simulation(case, rules, interval)
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

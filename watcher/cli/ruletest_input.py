"""What a rule test file says (`account-watcher test`): its pydantic models and series.

A test file names rule files, an evaluation interval and test cases; each case scripts
the sources (balance series, audit events, webhook deliveries; invoices and provider
settings, Telnyx charges, see watcher/cli/ruletest_sources.py), optionally the caps of
the account's top-ups (`topup:`, as `accounts[].topup`), and what must hold at given
times. Series are space-separated values, one per evaluation (see watcher/cli/ruletest.py);
they are kept as runs and computed on demand.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainValidator, model_validator

from watcher.cli.ruletest_sources import ChargesInput, InvoiceInput, SettingsInput
from watcher.config.settings import TopupConfig
from watcher.core.durations import Duration
from watcher.core.model import Balance

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
    """A top-up due at that time; `held: true`: refused by the fraud hold (DESIGN §6.3)."""

    rule: str
    account: str | None = None
    held: bool = False


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
    provider: Literal["telnyx", "vonage"] = "telnyx"
    invoices: list[InvoiceInput] = Field(default_factory=list, max_length=10_000)
    settings: list[SettingsInput] = Field(default_factory=list, max_length=MAX_POINTS)
    charges: list[ChargesInput] = Field(default_factory=list, max_length=MAX_POINTS)
    topup: TopupConfig = Field(default_factory=TopupConfig)
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

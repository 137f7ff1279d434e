"""The `forecast` rule kind: burn-rate fit on synthetic series, and the rule around it."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from watcher.core.forecast import fit_burn, per_hour_text, runs_out_in, segments
from watcher.core.model import AccountSnapshot, Balance, Severity, SourceName
from watcher.core.rules import (
    ForecastRule,
    Rule,
    RuleResult,
    evaluate,
    longest_lookback,
    sources_needed,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RULE: TypeAdapter[Rule] = TypeAdapter(Rule)


def series(values: Sequence[float | str], step: timedelta = timedelta(hours=1)) -> list[Any]:
    """`(time, Decimal)` samples ending at NOW, `step` apart, oldest first."""
    start = NOW - step * (len(values) - 1)
    return [(start + step * i, Decimal(str(v))) for i, v in enumerate(values)]


def balance(value: Decimal | str, currency: str = "USD") -> Balance:
    amount = Decimal(value)
    return Balance(amount, amount, Decimal(0), Decimal(0), currency)


def snapshot(
    values: Sequence[float | str], step: timedelta = timedelta(hours=1)
) -> AccountSnapshot:
    points = series(values, step)
    history = tuple((at, balance(v)) for at, v in points[:-1])
    return AccountSnapshot("main", balance=balance(points[-1][1]), balance_history=history)


def forecast_rule(**extra: Any) -> ForecastRule:
    data = {"name": "credit-runway", "kind": "forecast", "runs_out_within": "24h", **extra}
    rule = RULE.validate_python(data)
    assert isinstance(rule, ForecastRule)
    return rule


def judge(rule: ForecastRule, snap: AccountSnapshot) -> RuleResult:
    [result, _source_down] = evaluate([rule], [snap], NOW)
    return result


# ---------------------------------------------------------------------------- the fit


@pytest.mark.parametrize(
    ("name", "values", "per_hour"),
    [
        ("steady burn", [160, 148, 136, 124, 112, 100], "12.00"),
        ("flat", [100, 100, 100, 100, 100], "0.00"),
        ("top-up jump is not negative burn", [160, 150, 140, 240, 230, 220], "10.00"),
        ("two top-ups", [100, 90, 190, 180, 280, 270, 260], "10.00"),
        ("a rise inside flat", [100, 100, 130, 130, 130], "0.00"),
    ],
)
def test_burn_rate_of_synthetic_series(name: str, values: list[float], per_hour: str) -> None:
    burn = fit_burn(series(values))
    assert burn is not None, name
    assert per_hour_text(burn) == per_hour, name
    assert burn.samples == len(values)


def test_noisy_burn_is_close_to_the_trend() -> None:
    rng = random.Random(7)
    spend = [12.0 + rng.uniform(-6, 6) for _ in range(36)]  # irregular spend, 10-min samples
    values = [1000 - sum(spend[:i]) for i in range(37)]
    burn = fit_burn(series([round(v, 2) for v in values], timedelta(minutes=10)))
    assert burn is not None
    assert Decimal(60) < burn.per_hour < Decimal(84)  # 12 per 10 min = 72/h, +-~15%


def test_segments_cut_at_rises_and_keep_later_duplicate() -> None:
    points = series([100, 90, 150, 140, 140])
    points.append((points[-1][0], Decimal(130)))  # same instant: the later value wins
    runs = [[value for _, value in run] for run in segments(points)]
    assert runs == [[100, 90], [150, 140, 130]]


def test_only_rises_everywhere_gives_no_fit() -> None:
    assert fit_burn(series([10, 20, 30])) is None


def test_fit_needs_two_distinct_times() -> None:
    assert fit_burn(series([100])) is None
    assert fit_burn([(NOW, Decimal(1)), (NOW, Decimal(2))]) is None


@pytest.mark.parametrize(
    ("current", "floor", "per_hour_values", "expected"),
    [
        ("100", "0", [120, 110, 100], timedelta(hours=10)),
        ("100", "50", [120, 110, 100], timedelta(hours=5)),
        ("0", "0", [20, 10, 0], timedelta(0)),
        ("-5", "0", [15, 5, -5], timedelta(0)),
        ("100", "0", [100, 100, 100], None),
    ],
)
def test_runs_out_in(
    current: str, floor: str, per_hour_values: list[int], expected: timedelta | None
) -> None:
    burn = fit_burn(series(per_hour_values))
    assert burn is not None
    assert runs_out_in(Decimal(current), Decimal(floor), burn) == expected


def test_runs_out_in_beyond_the_horizon_is_never() -> None:
    burn = fit_burn(series(["1000000000.00", "999999999.99"]))
    assert burn is not None
    assert runs_out_in(Decimal("999999999.99"), Decimal(0), burn) is None


# ---------------------------------------------------------------------------- the rule


def test_steady_burn_fires_with_rate_and_time_in_the_message() -> None:
    # 12.40 USD/h, 86.80 USD left: runs out in 7 h.
    values = [f"{86.80 + 12.40 * (6 - i):.2f}" for i in range(7)]
    result = judge(forecast_rule(), snapshot(values))
    [finding] = result.findings
    assert result.judged
    assert finding.severity is Severity.WARNING
    assert finding.value == "credit 86.80 USD runs out in about 7h at 12.40 USD/h"
    assert finding.threshold == "alert under 1d"
    assert finding.facts["burn_rate"] == "12.40"
    assert finding.facts["runs_out_in"] == "7h"
    assert finding.facts["runs_out_at"] == "2026-11-23 19:00 UTC"
    assert finding.facts["samples"] == "7"


def test_slow_burn_does_not_fire_and_counts_as_cleared() -> None:
    result = judge(forecast_rule(), snapshot([1000, 999, 998, 997, 996, 995, 994]))
    [finding] = result.findings
    assert finding.severity is None and finding.cleared
    assert finding.value == "credit 994.00 USD runs out in about 41d 10h at 1.00 USD/h"


def test_flat_balance_is_not_running_out() -> None:
    result = judge(forecast_rule(), snapshot([50] * 7))
    [finding] = result.findings
    assert finding.severity is None
    assert finding.value == "credit 50.00 USD is not running out (0.00 USD/h)"
    assert finding.facts["runs_out_in"] == "never"


def test_top_up_jump_keeps_the_burn_and_uses_the_new_level() -> None:
    # Burning 10/h with a top-up of 100 three hours ago: 220 left at 10/h is 22 h.
    result = judge(forecast_rule(), snapshot([190, 180, 170, 160, 250, 240, 230, 220]))
    [finding] = result.findings
    assert finding.facts["burn_rate"] == "10.00"
    assert finding.facts["samples"] == "7"  # the 8th sample is older than the 6h lookback
    assert finding.severity is Severity.WARNING
    assert finding.value == "credit 220.00 USD runs out in about 22h at 10.00 USD/h"


def test_floor_changes_the_message_and_the_projection() -> None:
    rule = forecast_rule(floor="20.00", runs_out_within="6h", severity="critical")
    result = judge(rule, snapshot([120, 110, 100, 90, 80, 70, 60]))
    [finding] = result.findings
    assert finding.severity is Severity.CRITICAL
    assert finding.value == "credit 60.00 USD reaches 20.00 USD in about 4h at 10.00 USD/h"


def test_at_the_floor_fires() -> None:
    result = judge(forecast_rule(), snapshot([50, 40, 30, 20, 10, 0]))
    [finding] = result.findings
    assert finding.severity is Severity.WARNING
    assert finding.value == "credit 0.00 USD has reached the floor (10.00 USD/h)"


@pytest.mark.parametrize(
    ("case", "values", "step", "extra"),
    [
        ("too few samples", [100, 50, 10], timedelta(hours=1), {}),
        (
            "samples cover too little of the lookback",
            [100, 90, 80, 70, 60],
            timedelta(minutes=5),
            {},
        ),
        ("min_samples raised", [100, 90, 80, 70, 60, 50], timedelta(hours=1), {"min_samples": 10}),
    ],
)
def test_not_enough_data_is_not_judged(
    case: str, values: list[int], step: timedelta, extra: dict[str, Any]
) -> None:
    result = judge(forecast_rule(**extra), snapshot(values, step))
    assert not result.judged, case
    assert result.findings == ()


def test_samples_older_than_lookback_are_ignored() -> None:
    # Six hourly samples burning 1/h, then an 18 h old steep fall that must not count.
    values = [500, 100, 99, 98, 97, 96, 95]
    points = series(values)
    points[0] = (NOW - timedelta(hours=18), Decimal(500))
    history = tuple((at, balance(v)) for at, v in points[:-1])
    snap = AccountSnapshot("main", balance=balance("95"), balance_history=history)
    [finding] = judge(forecast_rule(), snap).findings
    assert finding.facts["burn_rate"] == "1.00"
    assert finding.facts["samples"] == "6"


def test_failed_balance_source_is_not_judged() -> None:
    snap = AccountSnapshot("main", balance=None)
    assert not judge(forecast_rule(), snap).judged


def test_balance_field_is_used() -> None:
    values = [100, 90, 80, 70, 60, 50]
    points = series(values)
    history = tuple(
        (at, Balance(v, Decimal(1000), Decimal(900), Decimal(0), "EUR")) for at, v in points[:-1]
    )
    snap = AccountSnapshot(
        "main",
        balance=Balance(Decimal(50), Decimal(1000), Decimal(900), Decimal(0), "EUR"),
        balance_history=history,
    )
    [finding] = judge(forecast_rule(field="balance"), snap).findings
    assert finding.value == "balance 50.00 EUR runs out in about 5h at 10.00 EUR/h"


def test_forecast_needs_balance_and_its_lookback() -> None:
    rules = [
        forecast_rule(name="a", lookback="6h"),
        forecast_rule(name="b", lookback="2d"),
        forecast_rule(name="c", lookback="7d", enabled=False),
    ]
    assert sources_needed(rules) == {SourceName.BALANCE}
    assert longest_lookback(rules) == timedelta(days=2)
    assert longest_lookback([]) == timedelta(0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"runs_out_within": "0s"}, "`runs_out_within` must be longer than 0s"),
        ({"lookback": "8d"}, "`lookback` must be longer than 0s and at most 7d"),
        ({"field": "pending"}, "Input should be 'available_credit' or 'balance'"),
        ({"min_samples": 1}, "greater than or equal to 2"),
        ({"min_span": 0}, "greater than 0"),
        ({"floor": "NaN"}, "finite number"),
        ({"topup": "yes please"}, "valid boolean"),
    ],
)
def test_invalid_forecast_rules(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        forecast_rule(**extra)


def test_topup_is_accepted_on_forecast_rules() -> None:
    assert forecast_rule(topup=True, severity="critical").topup


@pytest.mark.parametrize(
    ("values", "floor", "text", "runs_out_in"),
    [
        # 100,000 USD/h with 300 USD left: 11 s away, not reached
        (
            [600300, 500300, 400300, 300300, 200300, 100300, 300],
            "0",
            "credit 300.00 USD runs out within a minute at 100000.00 USD/h",
            "under 1m",
        ),
        (
            [600300, 500300, 400300, 300300, 200300, 100300, 300],
            "250.00",
            "credit 300.00 USD reaches 250.00 USD within a minute at 100000.00 USD/h",
            "under 1m",
        ),
        (
            [600300, 500300, 400300, 300300, 200300, 100300, 300],
            "300.00",
            "credit 300.00 USD has reached the floor 300.00 USD (100000.00 USD/h)",
            "0s",
        ),
        # 1 USD/h with 1,000 USD: never "within a minute"
        ([1006, 1005, 1004, 1003, 1002, 1001, 1000], "999.99", None, "1m"),
    ],
)
def test_has_reached_only_at_or_below_the_floor(
    values: list[float], floor: str, text: str | None, runs_out_in: str
) -> None:
    rule = forecast_rule(floor=floor)
    [finding] = judge(rule, snapshot(values)).findings
    assert finding.severity is Severity.WARNING
    if text is not None:
        assert finding.value == text
    assert finding.facts["runs_out_in"] == runs_out_in

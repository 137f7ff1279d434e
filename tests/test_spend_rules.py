"""The `spend` rule kind: periods in time zones, windows and spike baselines from balance
samples (top-ups cut out) and from Telnyx charges. Table-driven, time as a parameter."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from watcher.core import spend_figures as figures
from watcher.core.lifecycle import Reason, step
from watcher.core.model import (
    AccountSnapshot,
    Balance,
    Charges,
    ChargesQuery,
    Severity,
    SourceError,
    SourceName,
)
from watcher.core.render import render
from watcher.core.rules import RuleFile, SpendRule, evaluate, longest_lookback, sources_needed
from watcher.core.spend import charges_queries, judge_spend
from watcher.providers.telnyx.capabilities import CAPABILITIES as TELNYX
from watcher.providers.vonage.capabilities import CAPABILITIES as VONAGE

H = timedelta(hours=1)
REPEAT = timedelta(hours=4)
D = Decimal


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def rule(**extra: object) -> SpendRule:
    data = {"name": "spend", "kind": "spend", **extra}
    parsed = RuleFile.model_validate({"rules": [data]}).rules[0]
    assert isinstance(parsed, SpendRule)
    return parsed


def balance(value: str | Decimal, currency: str = "USD") -> Balance:
    v = D(value)
    return Balance(v, v, D(0), D(0), currency)


def samples(start: datetime, step_: timedelta, *values: str) -> list[tuple[datetime, Decimal]]:
    return [(start + step_ * i, D(v)) for i, v in enumerate(values)]


def snap_of(points: list[tuple[datetime, Decimal]], provider: str = "vonage") -> AccountSnapshot:
    """The last point is the balance now; the rest are stored samples."""
    history = tuple((at, balance(v)) for at, v in points[:-1])
    return AccountSnapshot(
        "main", balance=balance(points[-1][1]), balance_history=history, provider=provider
    )


# ---------------------------------------------------------------------------- figures


@pytest.mark.parametrize(
    ("values", "start", "end", "expected"),
    [
        pytest.param(["100", "90", "80"], 0, 2, "20", id="steady-fall"),
        pytest.param(["100", "90", "150", "140"], 0, 3, "20", id="top-up-cut-out"),
        pytest.param(["100", "200", "300"], 0, 2, "0", id="only-rises-are-no-spend"),
        pytest.param(["100", "90", "80"], 0.5, 2, "15", id="edge-inside-an-interval"),
        pytest.param(["100", "90", "80"], 0.5, 1.5, "10", id="both-edges-inside"),
        pytest.param(["100", "90", "80"], 2, 3, "0", id="after-the-samples"),
    ],
)
def test_spent_from_samples(values: list[str], start: float, end: float, expected: str) -> None:
    t0 = utc(2026, 11, 10)
    points = samples(t0, H, *values)
    assert figures.spent(points, t0 + H * start, t0 + H * end) == D(expected)


@pytest.mark.parametrize(
    ("period", "now", "tz", "expected"),
    [
        pytest.param("day", utc(2026, 11, 10, 3), "UTC", utc(2026, 11, 10), id="utc-day"),
        pytest.param(
            "day",
            utc(2026, 11, 10, 3),
            "America/New_York",
            utc(2026, 11, 9, 5),
            id="ny-before-midnight",
        ),
        pytest.param(
            "day",
            utc(2026, 11, 10, 5),
            "America/New_York",
            utc(2026, 11, 10, 5),
            id="ny-at-midnight",
        ),
        pytest.param(
            "day",
            utc(2026, 11, 9, 15, 30),
            "Asia/Tokyo",
            utc(2026, 11, 9, 15),
            id="tokyo-after-midnight",
        ),
        pytest.param(
            "month",
            utc(2026, 11, 30, 16),
            "Asia/Tokyo",
            utc(2026, 11, 30, 15),
            id="tokyo-month-end",
        ),
        pytest.param(
            "month",
            utc(2026, 12, 1, 3),
            "America/New_York",
            utc(2026, 11, 1, 4),
            id="ny-still-november",
        ),
        pytest.param("month", utc(2026, 12, 1, 3), "UTC", utc(2026, 12, 1), id="utc-december"),
    ],
)
def test_calendar_periods_begin_at_local_midnight(
    period: str, now: datetime, tz: str, expected: datetime
) -> None:
    assert figures.period_start(period, now, tz) == expected


def test_a_day_of_a_clock_change_is_25_hours() -> None:
    # 2026-11-01: New York leaves daylight saving time
    (yesterday, before) = figures.previous_days(utc(2026, 11, 2, 12), "America/New_York", 2)
    assert yesterday == (utc(2026, 11, 1, 4), utc(2026, 11, 2, 5))
    assert yesterday[1] - yesterday[0] == timedelta(hours=25)
    assert before[1] - before[0] == timedelta(hours=24)


# ---------------------------------------------------------------------------- samples


@pytest.mark.parametrize(
    ("extra", "now", "values", "expected"),
    [
        pytest.param(
            {"window": "2h", "above": 15},
            utc(2026, 11, 10, 4),
            ["100", "90", "80", "70", "60"],  # 00:00 .. 04:00
            ("spent in the last 2h 20.00 USD", Severity.WARNING),
            id="window-above",
        ),
        pytest.param(
            {"window": "2h", "above": 15},
            utc(2026, 11, 10, 4),
            ["100", "90", "80", "170", "160"],  # a top-up of 100 at 03:00
            ("spent in the last 2h 10.00 USD", None),
            id="window-top-up-is-not-negative-spend",
        ),
        pytest.param(
            {"period": "day", "timezone": "America/New_York", "above": 25},
            utc(2026, 11, 10, 7),  # 02:00 in New York; midnight there was 05:00 UTC
            ["100", "90", "80", "70", "60", "50", "40", "30"],  # 00:00 .. 07:00 UTC
            ("spent today (America/New_York) 20.00 USD", None),
            id="ny-day-begins-at-local-midnight",
        ),
        pytest.param(
            {"period": "day", "timezone": "Asia/Tokyo", "above": {"warning": 5, "critical": 25}},
            utc(2026, 11, 9, 17),  # 02:00 in Tokyo; midnight there was 15:00 UTC
            ["100", "90", "80", "70", "60"],  # 13:00 .. 17:00 UTC
            ("spent today (Asia/Tokyo) 20.00 USD", Severity.WARNING),
            id="tokyo-day-levels",
        ),
    ],
)
def test_spend_from_samples(
    extra: dict[str, object],
    now: datetime,
    values: list[str],
    expected: tuple[str, Severity | None],
) -> None:
    points = samples(now - H * (len(values) - 1), H, *values)
    result = judge_spend(rule(**extra), snap_of(points), now, charges=False)
    assert result.judged
    (finding,) = result.findings
    assert (finding.value, finding.severity) == expected


SPIKE = {"factor": 3, "baseline": "3h", "min_amount": 20}


@pytest.mark.parametrize(
    ("spike", "values", "fires", "baseline"),
    [
        pytest.param(SPIKE, ["100", "90", "80", "70", "30"], True, "10.00", id="spike"),
        pytest.param(SPIKE, ["100", "90", "80", "70", "45"], False, "10.00", id="under-factor"),
        pytest.param(
            {**SPIKE, "min_amount": 50},
            ["100", "90", "80", "70", "30"],
            False,
            "10.00",
            id="min-amount",
        ),
        pytest.param(
            SPIKE, ["100", "90", "190", "180", "140"], True, "6.67", id="top-up-in-baseline"
        ),
        pytest.param(SPIKE, ["100", "100", "100", "100", "79"], True, "0.00", id="zero-baseline"),
    ],
)
def test_spike_against_equal_windows(
    spike: dict[str, object], values: list[str], fires: bool, baseline: str
) -> None:
    now = utc(2026, 11, 10, 4)
    points = samples(utc(2026, 11, 10), H, *values)
    result = judge_spend(rule(window="1h", spike=spike), snap_of(points), now, charges=False)
    (finding,) = result.findings
    assert (finding.severity is not None, finding.facts["baseline"]) == (fires, baseline)
    assert "the mean of 3 previous 1h windows" in finding.threshold


def test_a_spike_is_not_judged_before_the_samples_cover_a_baseline_window() -> None:
    now = utc(2026, 11, 10, 4)
    points = samples(utc(2026, 11, 10, 2, 30), timedelta(minutes=30), "100", "90", "50", "40")
    assert not judge_spend(rule(window="1h", spike=SPIKE), snap_of(points), now).judged
    covered = samples(utc(2026, 11, 10, 2), timedelta(minutes=30), "100", "95", "90", "50", "40")
    assert judge_spend(rule(window="1h", spike=SPIKE), snap_of(covered), now).judged


def test_a_day_spike_from_samples_compares_whole_local_days() -> None:
    now = utc(2026, 11, 12, 15)  # 10:00 in New York
    t0 = utc(2026, 11, 10, 5)  # midnight in New York, two days back
    points = [(t0 + H * i, D(1000) - D(i)) for i in range(48)]  # 24 a day
    points += [(now - H, points[-1][1]), (now, points[-1][1] - D(100))]
    spike = {"factor": 3, "baseline": "2d", "min_amount": 20}
    result = judge_spend(
        rule(period="day", timezone="America/New_York", spike=spike), snap_of(points), now
    )
    (finding,) = result.findings
    assert finding.severity is Severity.WARNING
    assert finding.facts["baseline"] == "23.50"  # 23 + 24: the first hour's fall is day 1's
    assert "the mean of 2 previous days" in finding.threshold


# ---------------------------------------------------------------------------- charges

DAY_READ = Charges(
    timezone="America/New_York",
    day=date(2026, 11, 9),
    currency="USD",
    today=D("312.40"),
    month=D("1500.00"),
    today_products=(
        ("Messaging", D("200.00")),
        ("Voice", D("80.40")),
        ("Local DIDs", D("20")),
        ("Fax", D("12")),
    ),
    month_products=(("Messaging", D("900.00")),),
    baselines=((7, D("420.00")),),
)


TODAY_TOP = (
    "spent today (America/New_York) 312.40 USD "
    "(top: Messaging 200.00, Voice 80.40, Local DIDs 20.00)"
)


def telnyx_snap(errors: dict[SourceName, SourceError] | None = None) -> AccountSnapshot:
    charges = {DAY_READ.timezone: DAY_READ}
    return AccountSnapshot("main", provider="telnyx", charges=charges, errors=errors or {})


@pytest.mark.parametrize(
    ("extra", "now", "expected"),
    [
        pytest.param(
            {"period": "day", "above": 300},
            utc(2026, 11, 10, 4, 59),  # still the 9th in New York
            TODAY_TOP,
            id="day-above-top-three",
        ),
        pytest.param(
            {"period": "month", "above": 1000},
            utc(2026, 11, 9, 12),
            "spent this month (America/New_York) 1,500.00 USD (top: Messaging 900.00)",
            id="month",
        ),
        pytest.param(
            {"period": "day", "spike": {"factor": 3, "baseline": "7d", "min_amount": 20}},
            utc(2026, 11, 9, 12),
            TODAY_TOP,
            id="day-spike",
        ),
    ],
)
def test_spend_from_telnyx_charges(extra: dict[str, object], now: datetime, expected: str) -> None:
    result = judge_spend(
        rule(timezone="America/New_York", **extra), telnyx_snap(), now, charges=True
    )
    (finding,) = result.findings
    assert finding.value == expected
    assert finding.severity is Severity.WARNING


def test_the_spike_threshold_names_the_baseline_mean() -> None:
    spike = {"factor": 3, "baseline": "7d", "min_amount": 20}
    r = rule(timezone="America/New_York", period="day", spike=spike)
    (finding,) = judge_spend(r, telnyx_snap(), utc(2026, 11, 9, 12), charges=True).findings
    assert (
        finding.threshold
        == "more than 3× the mean of 7 previous days (60.00 USD), at least 20.00 USD"
    )


@pytest.mark.parametrize(
    ("extra", "snap", "now"),
    [
        pytest.param({}, None, utc(2026, 11, 10, 5), id="read-of-yesterday-after-local-midnight"),
        pytest.param({"timezone": "UTC"}, None, utc(2026, 11, 9, 12), id="no-read-for-the-zone"),
        pytest.param(
            {"spike": {"factor": 3, "baseline": "3d"}, "above": None},
            None,
            utc(2026, 11, 9, 12),
            id="baseline-of-other-length",
        ),
        pytest.param(
            {},
            {SourceName.CHARGES: SourceError(SourceName.CHARGES, "503")},
            utc(2026, 11, 9, 12),
            id="read-failed",
        ),
    ],
)
def test_charges_not_judged(
    extra: dict[str, object], snap: dict[SourceName, SourceError] | None, now: datetime
) -> None:
    data: dict[str, object] = {
        "period": "day",
        "timezone": "America/New_York",
        "above": 300,
        **extra,
    }
    data = {k: v for k, v in data.items() if v is not None}
    assert not judge_spend(rule(**data), telnyx_snap(snap), now, charges=True).judged


def test_charges_queries_one_per_zone() -> None:
    rules = [
        rule(name="a", period="day", timezone="Asia/Tokyo", spike={"factor": 2, "baseline": "7d"}),
        rule(name="b", period="month", timezone="Asia/Tokyo", above=100, numbers=True),
        rule(name="c", period="day", above=10),
        rule(name="d", window="1h", above=10),
    ]
    assert charges_queries(rules) == (
        ChargesQuery("Asia/Tokyo", day=True, month=True, baselines=(7,), numbers=True),
        ChargesQuery("UTC", day=True),
    )
    assert sources_needed(rules) == {
        SourceName.BALANCE,
        SourceName.CHARGES,
        SourceName.CHARGES_BREAKDOWN,
    }
    assert sources_needed(rules[:1]) == {SourceName.CHARGES}  # vonage reads its balance
    assert longest_lookback(rules) == timedelta(days=8)  # 26h + 7d, capped at the 8d kept


def test_evaluate_uses_charges_on_telnyx_and_samples_on_vonage() -> None:
    now = utc(2026, 11, 9, 12)
    r = rule(period="day", timezone="America/New_York", above=10)
    points = samples(now - H * 2, H, "100", "95", "80")
    vonage = snap_of(points)
    telnyx = telnyx_snap()
    got = evaluate([r], [telnyx, vonage], now, capabilities={"telnyx": TELNYX, "vonage": VONAGE})
    values = [f.value for res in got if res.rule == "spend" for f in res.findings]
    assert values[0].startswith("spent today (America/New_York) 312.40 USD")
    assert values[1] == "spent today (America/New_York) 20.00 USD"
    month = rule(period="month", above=10)
    got = evaluate([month], [vonage], now, capabilities={"vonage": VONAGE})
    assert [res.rule for res in got] == ["watcher-source-down"]  # vonage has no month


def test_a_spend_spike_fires_once_and_resolves_at_the_new_day() -> None:
    r = rule(period="day", timezone="America/New_York", above=300)
    fired = step(
        {},
        [judge_spend(r, telnyx_snap(), utc(2026, 11, 9, 12), charges=True)],
        utc(2026, 11, 9, 12),
        repeat_interval=REPEAT,
    )
    assert [t.reason for t in fired.transitions] == [Reason.FIRING]
    message = render(fired.transitions[0], r)
    assert "Spent today (America/New_York) 312.40 USD" in message.title + message.body
    again = step(
        fired.states,
        [judge_spend(r, telnyx_snap(), utc(2026, 11, 9, 13), charges=True)],
        utc(2026, 11, 9, 13),
        repeat_interval=REPEAT,
    )
    assert again.transitions == []
    quiet = Charges("America/New_York", date(2026, 11, 10), "USD", D("3"), D("1503"))
    snap = AccountSnapshot("main", provider="telnyx", charges={quiet.timezone: quiet})
    now = utc(2026, 11, 10, 6)
    resolved = step(
        again.states, [judge_spend(r, snap, now, charges=True)], now, repeat_interval=REPEAT
    )
    assert [t.reason for t in resolved.transitions] == [Reason.RESOLVED]


# ---------------------------------------------------------------------------- the model


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param(
            {"above": 5}, "give exactly one of `period` (day or month) or `window`", id="no-span"
        ),
        pytest.param(
            {"period": "day", "window": "1h", "above": 5},
            "exactly one of `period`",
            id="both-spans",
        ),
        pytest.param(
            {"period": "day"}, "give exactly one of `above` or `spike`", id="no-threshold"
        ),
        pytest.param(
            {"period": "day", "above": 5, "spike": {"factor": 2, "baseline": "7d"}},
            "exactly one of `above`",
            id="both",
        ),
        pytest.param(
            {"period": "day", "above": 5, "timezone": "Mars/Olympus"},
            "unknown time zone 'Mars/Olympus'",
            id="zone",
        ),
        pytest.param(
            {"window": "1h", "above": 5, "timezone": "UTC"},
            "`timezone` goes with a calendar `period`",
            id="zone-window",
        ),
        pytest.param(
            {"window": "7d", "spike": {"factor": 2, "baseline": "1d"}}, "at most 7d", id="too-long"
        ),
        pytest.param(
            {"window": "2h", "spike": {"factor": 2, "baseline": "1h"}},
            "at least one `window`",
            id="short-baseline",
        ),
        pytest.param(
            {"period": "day", "spike": {"factor": 2, "baseline": "36h"}},
            "whole days",
            id="day-baseline",
        ),
        pytest.param(
            {"period": "day", "spike": {"factor": 2, "baseline": "31d"}},
            "whole days, 1d to 30d",
            id="long",
        ),
        pytest.param(
            {"period": "month", "spike": {"factor": 2, "baseline": "60d"}},
            "not supported",
            id="month-spike",
        ),
        pytest.param(
            {"period": "day", "spike": {"factor": 1, "baseline": "7d"}},
            "greater than 1",
            id="factor",
        ),
        pytest.param(
            {"period": "day", "above": {"warning": 300, "critical": 200}},
            "can never fire",
            id="levels",
        ),
        pytest.param(
            {"window": "1h", "above": 5, "numbers": True}, "`numbers` goes with", id="numbers"
        ),
    ],
)
def test_invalid_spend_rules(extra: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rule(**extra)


def test_numbers_true_names_the_months_top_numbers() -> None:
    read = Charges(
        "UTC",
        date(2026, 11, 9),
        "USD",
        None,
        D("900"),
        month_products=(("Messaging", D("900")),),
        numbers=(("+15550000002", D("500")), ("+15550000001", D("400"))),
    )
    snap = AccountSnapshot("main", provider="telnyx", charges={"UTC": read})
    r = rule(period="month", above=100, numbers=True)
    (finding,) = judge_spend(r, snap, utc(2026, 11, 9, 12), charges=True).findings
    assert finding.value == (
        "spent this month (UTC) 900.00 USD (top: Messaging 900.00; "
        "numbers this month: +15550000002 500.00, +15550000001 400.00)"
    )
    assert finding.facts["numbers"] == "+15550000002 500.00, +15550000001 400.00"
    quiet = rule(period="month", above=100)
    (finding,) = judge_spend(quiet, snap, utc(2026, 11, 9, 12), charges=True).findings
    assert "numbers" not in finding.value

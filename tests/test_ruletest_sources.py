"""`account-watcher test` scripts the slow sources: invoices and provider settings, as
a read at each evaluation would have seen them (watcher/cli/ruletest_sources.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from test_ruletest import run

from watcher.cli.ruletest_sources import (
    InvoiceInput,
    SettingsInput,
    invoices_at,
    settings_at,
    settings_problems,
)
from watcher.core.model import Invoice
from watcher.providers.telnyx.capabilities import CAPABILITIES as TELNYX
from watcher.providers.vonage.capabilities import CAPABILITIES as VONAGE

START = datetime(2026, 2, 1, tzinfo=UTC)
D = timedelta(days=1)
JAN = InvoiceInput(
    id="inv-jan",
    period_start=date(2026, 1, 1),
    period_end=date(2026, 1, 31),
    listed_after=D,
    paid_after=3 * D,
)


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (timedelta(0), ()),  # not listed yet
        (D, (Invoice("inv-jan", date(2026, 1, 1), date(2026, 1, 31), paid=False),)),
        (
            3 * D - timedelta(seconds=1),
            (Invoice("inv-jan", JAN.period_start, JAN.period_end, False),),
        ),
        (3 * D, (Invoice("inv-jan", JAN.period_start, JAN.period_end, paid=True),)),
    ],
)
def test_invoices_are_listed_and_paid_at_their_offsets(
    after: timedelta, expected: tuple[Invoice, ...]
) -> None:
    assert invoices_at([JAN], START, START + after) == expected


def test_no_scripted_invoices_is_no_read() -> None:
    assert invoices_at([], START, START) is None


STEPS = [
    SettingsInput(at=timedelta(hours=2), values={"auto_recharge.enabled": True}),
    SettingsInput(
        at=timedelta(0),
        values={"auto_recharge.enabled": False, "auto_recharge.threshold_amount": "20"},
    ),
]


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (
            timedelta(hours=1),
            {"auto_recharge.enabled": False, "auto_recharge.threshold_amount": Decimal("20")},
        ),
        (
            timedelta(hours=2),
            {"auto_recharge.enabled": True, "auto_recharge.threshold_amount": Decimal("20")},
        ),
    ],
)
def test_settings_merge_in_time_order_as_the_providers_types(
    after: timedelta, expected: dict[str, object]
) -> None:
    got = settings_at(STEPS, START, START + after, TELNYX.drift_fields)
    assert got == expected
    assert got is not None and type(got["auto_recharge.threshold_amount"]) is Decimal


def test_settings_before_the_first_entry_are_not_read() -> None:
    late = [SettingsInput(at=timedelta(hours=1), values={"auto_reload": True})]
    assert settings_at(late, START, START, VONAGE.drift_fields) is None


@pytest.mark.parametrize(
    ("values", "types", "problems"),
    [
        ({"auto_recharge.enabled": True}, TELNYX.drift_fields, []),
        (
            {"auto_reload": True},
            TELNYX.drift_fields,
            ["settings: auto_reload is not a setting of this provider ("],
        ),
        (
            {"auto_recharge.enabled": "yes"},
            TELNYX.drift_fields,
            ["settings: auto_recharge.enabled must be true or false, not the string 'yes'"],
        ),
        (
            {"settings.max_calls_per_second": 2.5},
            VONAGE.drift_fields,
            ["settings: settings.max_calls_per_second must be a whole number, not the number 2.5"],
        ),
    ],
)
def test_settings_problems(
    values: dict[str, object], types: dict[str, type], problems: list[str]
) -> None:
    got = settings_problems([SettingsInput.model_validate({"at": "0s", "values": values})], types)
    assert [line[: len(want)] for line, want in zip(got, problems, strict=True)] == problems


DRIFT = """\
    rules:
      - name: reload-off
        kind: drift
        expect: {auto_reload: true}
"""


def test_a_vonage_case_judges_vonage_settings_and_reports_foreign_fields(tmp_path: Path) -> None:
    spec = """\
        rule_files: [rules.yaml]
        evaluation_interval: 1h
        tests:
          - name: vonage switches auto-reload off
            provider: vonage
            settings:
              - {at: 0s, values: {auto_reload: true}}
              - {at: 2h, values: {auto_reload: false}}
            expect:
              - {at: 1h, alerts: []}
              - at: 2h
                alerts: [{rule: reload-off, state: firing, severity: warning}]
                notifications: ["[WARNING] reload-off firing — main"]
    """
    code, out = run(tmp_path, spec, DRIFT)
    assert code == 0, out
    code, out = run(tmp_path, spec.replace("provider: vonage", "provider: telnyx"), DRIFT)
    assert code == 1
    assert "settings: auto_reload is not a setting of this provider" in out

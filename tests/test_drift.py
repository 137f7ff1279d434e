"""Drift as tables: expected values by field type, the comparison (Decimal money), the
finding and its message, what `check` says at file:line:col, and the kept settings text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import cli_env, run_cli

from watcher.core.decide import Policy, decide
from watcher.core.drift import as_expected, differences, drift_sources, judge_drift
from watcher.core.model import AccountSnapshot, SourceName
from watcher.core.rules import DriftRule, RuleFile, evaluate
from watcher.providers.registry import capabilities
from watcher.providers.settings_text import parse_settings, settings_text
from watcher.providers.telnyx.capabilities import CAPABILITIES as TELNYX
from watcher.providers.vonage.capabilities import CAPABILITIES as VONAGE

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PREFS: dict[str, object] = {
    "auto_recharge.enabled": True,
    "auto_recharge.threshold_amount": Decimal("20.00"),
    "auto_recharge.recharge_amount": Decimal("100.00"),
    "auto_recharge.preference": "credit_paypal",
}


def rule(expect: dict[str, object], **extra: object) -> DriftRule:
    parsed = RuleFile.model_validate(
        {"rules": [{"name": "drift", "kind": "drift", "expect": expect, **extra}]}
    )
    found = parsed.rules[0]
    assert isinstance(found, DriftRule)
    return found


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        (True, bool, True),
        (None, bool, None),
        ("20.00", Decimal, Decimal("20.00")),
        (20, Decimal, Decimal(20)),
        (20.5, Decimal, Decimal("20.5")),
        (30, int, 30),
        ("https://x", str, "https://x"),
    ],
)
def test_values_are_read_as_their_field_type(value: object, kind: type, expected: object) -> None:
    got = as_expected(value, kind)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    ("value", "kind", "message"),
    [
        ("yes", bool, "must be true or false, not the string 'yes'"),
        (1, bool, "must be true or false, not the number 1"),
        (True, Decimal, 'must be an amount of money (e.g. "20.00"), not the boolean true'),
        ("lots", Decimal, "not the string 'lots'"),
        ("NaN", Decimal, "not the string 'NaN'"),
        (True, int, "must be a whole number, not the boolean true"),
        (5.5, int, "must be a whole number, not the number 5.5"),
        ("30", int, "not the string '30'"),
        (30, str, "must be a string, not the number 30"),
    ],
)
def test_wrong_types_are_refused(value: object, kind: type, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        as_expected(value, kind)


@pytest.mark.parametrize(
    ("expect", "differs"),
    [
        ({"auto_recharge.enabled": True}, []),
        ({"auto_recharge.enabled": False}, [("auto_recharge.enabled", False, True)]),
        # money compares as Decimal: "20" is 20.00; 20.001 is not
        ({"auto_recharge.threshold_amount": "20"}, []),
        ({"auto_recharge.threshold_amount": 20}, []),
        (
            {"auto_recharge.threshold_amount": "20.001"},
            [("auto_recharge.threshold_amount", Decimal("20.001"), Decimal("20.00"))],
        ),
        (
            {"auto_recharge.preference": "ach"},
            [("auto_recharge.preference", "ach", "credit_paypal")],
        ),
        # null expects the setting unset
        (
            {"auto_recharge.preference": None},
            [("auto_recharge.preference", None, "credit_paypal")],
        ),
        # order of the rule; only what differs
        (
            {"auto_recharge.recharge_amount": "50", "auto_recharge.enabled": False},
            [
                ("auto_recharge.recharge_amount", Decimal(50), Decimal("100.00")),
                ("auto_recharge.enabled", False, True),
            ],
        ),
    ],
)
def test_differences(expect: dict[str, object], differs: list[tuple[str, object, object]]) -> None:
    assert differences(expect, PREFS, TELNYX.drift_fields) == differs


def test_a_number_is_not_true() -> None:
    """`1 == True` in Python; a bool field expecting true is not met by the number 1."""
    assert differences({"x": True}, {"x": 1}, {"x": bool}) == [("x", True, 1)]


def test_the_finding_lists_each_field_expected_and_actual_and_resolves_when_all_match() -> None:
    drift = rule({"auto_recharge.enabled": True, "auto_recharge.threshold_amount": "50.00"})
    snap = AccountSnapshot("main", settings={**PREFS, "auto_recharge.enabled": False})
    result = judge_drift(drift, snap, TELNYX.drift_fields)
    (finding,) = result.findings
    assert result.judged and finding.severity is not None
    assert finding.value == (
        "auto_recharge.enabled: expected true → false; "
        "auto_recharge.threshold_amount: expected 50.00 → 20.00"
    )
    assert finding.facts == {
        "fields": "auto_recharge.enabled, auto_recharge.threshold_amount",
        "count": "2",
    }
    fixed = AccountSnapshot(
        "main", settings={**PREFS, "auto_recharge.threshold_amount": Decimal(50)}
    )
    (ok,) = judge_drift(drift, fixed, TELNYX.drift_fields).findings
    assert ok.severity is None and ok.cleared
    assert ok.value == "as expected: auto_recharge.enabled true, auto_recharge.threshold_amount 50"


def test_not_judged_while_a_needed_field_is_missing() -> None:
    drift = rule({"settings.mo_callback_url": "https://x", "auto_reload": True})
    no_balance = AccountSnapshot(
        "eu", provider="vonage", settings={"settings.mo_callback_url": "https://x"}
    )
    assert not judge_drift(drift, no_balance, VONAGE.drift_fields).judged
    assert not judge_drift(drift, AccountSnapshot("eu"), VONAGE.drift_fields).judged


def test_an_account_is_judged_on_the_fields_its_provider_has() -> None:
    both = rule({"auto_recharge.enabled": True, "auto_reload": True})
    telnyx = AccountSnapshot("main", settings=PREFS)
    vonage = AccountSnapshot("eu", provider="vonage", settings={"auto_reload": False})
    results = evaluate([both], [telnyx, vonage], T0, capabilities=capabilities())
    drift = {r.account: r for r in results if r.rule == "drift"}
    assert drift["main"].judged and drift["main"].findings[0].severity is None
    assert drift["eu"].findings[0].value == "auto_reload: expected true → false"


@pytest.mark.parametrize(
    ("expect", "sources"),
    [
        ({"auto_reload": True}, {SourceName.BALANCE}),
        ({"settings.mo_callback_url": "x"}, {SourceName.SETTINGS}),
        ({"auto_recharge.enabled": True}, {SourceName.SETTINGS}),
        (
            {"auto_reload": True, "settings.max_calls_per_second": 30},
            {SourceName.BALANCE, SourceName.SETTINGS},
        ),
    ],
)
def test_what_a_drift_rule_needs_read(expect: dict[str, object], sources: set[SourceName]) -> None:
    assert drift_sources(rule(expect)) == sources


def test_drift_through_decide_fires_once_keeps_firing_for_and_resolves() -> None:
    drift = rule({"auto_recharge.enabled": True}, keep_firing_for="2m")
    policy = Policy(rules=[drift], repeat_interval=timedelta(hours=4))
    off = AccountSnapshot("main", settings={**PREFS, "auto_recharge.enabled": False})
    on = AccountSnapshot("main", settings=PREFS)
    states: dict = {}  # type: ignore[type-arg]
    reasons = []
    for minute, snap in enumerate([off, off, on, off, on, on, on]):
        now = T0 + timedelta(minutes=minute)
        results = evaluate([drift], [snap], now, capabilities=capabilities())
        decision = decide(states, results, [snap], now, policy)
        states = dict(decision.states)
        reasons.append(",".join(t.reason.value for t in decision.transitions) or "-")
    assert reasons == ["firing", "-", "-", "-", "-", "-", "resolved"]


@pytest.mark.parametrize(
    "types",
    [TELNYX.drift_fields, {k: t for k, t in VONAGE.drift_fields.items() if k != "auto_reload"}],
)
def test_the_kept_settings_text_round_trips_with_types(types: dict[str, type]) -> None:
    values = {
        name: {bool: True, Decimal: Decimal("20.10"), int: 30, str: "s"}[kind]
        for name, kind in types.items()
    }
    values[next(iter(types))] = None  # unset survives too
    again = parse_settings(settings_text(values), types)
    assert again == values
    assert again is not None and all(type(again[k]) is type(v) for k, v in values.items())


@pytest.mark.parametrize(
    "text", ["not json", '{"settings": {}}', '{"settings": {"auto_recharge.enabled": "yes"}}']
)
def test_an_unreadable_kept_text_is_none(text: str) -> None:
    assert parse_settings(text, TELNYX.drift_fields) is None


CONFIG = """\
accounts:
  - name: main
  - name: eu
    provider: vonage
    api_key: abcd1234
    api_secret: env:VONAGE_API_SECRET
rules: [r.yaml]
notify:
  routes:
    ops: {urls: ["json://127.0.0.1:9/hook"]}
"""
BAD = """\
rules:
  - name: recharge
    kind: drift
    accounts: [main]
    expect:
      auto_recharge.enabled: "yes"
      auto_recharge.threshold_amount: true
      auto_reload: true
  - name: reload
    kind: drift
    expect:
      settings.max_calls_per_second: 30.5
      settings.bogus: 1
"""


def test_check_refuses_unknown_fields_per_provider_and_wrong_types_at_their_place(
    tmp_path: Path,
) -> None:
    (tmp_path / "r.yaml").write_text(BAD)
    (tmp_path / "c.yaml").write_text(CONFIG)
    result = run_cli(
        "--config", str(tmp_path / "c.yaml"), "check", env=cli_env(VONAGE_API_SECRET="s" * 20)
    )
    assert result.returncode == 1
    r = tmp_path / "r.yaml"
    lines = result.stderr.strip().splitlines()
    telnyx = "telnyx accounts (main) (they have: auto_recharge.enabled, auto_recharge.preference, "
    telnyx += "auto_recharge.recharge_amount, auto_recharge.threshold_amount)"
    assert lines[:4] == [
        f"{r}:6:30: rules[0].expect.auto_recharge.enabled: "
        "must be true or false, not the string 'yes'",
        f"{r}:7:39: rules[0].expect.auto_recharge.threshold_amount: "
        'must be an amount of money (e.g. "20.00"), not the boolean true',
        f"{r}:8:20: rules[0].expect.auto_reload: auto_reload is not a drift field of {telnyx}",
        f"{r}:12:38: rules[1].expect.settings.max_calls_per_second: "
        "must be a whole number, not the number 30.5",
    ]
    assert lines[4].startswith(
        f"{r}:13:23: rules[1].expect.settings.bogus: settings.bogus is not a drift field of "
        "telnyx accounts (main) and vonage accounts (eu) (they have: auto_recharge.enabled, "
    )
    assert len(lines) == 5

"""Rule authoring: summary placeholders, `check` warnings, mute and forecast end to end."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import Receiver, run_cli, write_config
from pydantic import TypeAdapter, ValidationError

from watcher.config.rulecheck import rule_warnings
from watcher.config.ruleload import load_rules
from watcher.config.settings import load_settings
from watcher.config.yamlfile import ConfigError
from watcher.core.lifecycle import Reason, Transition
from watcher.core.model import (
    AccountSnapshot,
    AlertKey,
    AlertState,
    AuditEvent,
    Balance,
    Phase,
    WebhookDelivery,
)
from watcher.core.render import render
from watcher.core.rules import (
    AuditRule,
    BalanceRule,
    ForecastRule,
    Rule,
    WebhookFailuresRule,
    evaluate,
)
from watcher.providers.telnyx.sim import SimServer
from watcher.state.store import Store

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RULE: TypeAdapter[Rule] = TypeAdapter(Rule)
KINDS: dict[str, type[Any]] = {
    "balance": BalanceRule,
    "forecast": ForecastRule,
    "audit": AuditRule,
    "webhook_failures": WebhookFailuresRule,
}
BASE: dict[str, dict[str, Any]] = {
    "balance": {"below": 100},
    "forecast": {"runs_out_within": "1d"},
    "audit": {},
    "webhook_failures": {"at_least": 1, "ratio": 0.1, "group_by": "url"},
}


def money(value: str) -> Balance:
    return Balance(Decimal(value), Decimal(value), Decimal(0), Decimal(0), "USD")


SNAPSHOT = AccountSnapshot(
    "main",
    balance=money("50"),
    balance_history=tuple(
        (NOW - timedelta(hours=h), money(str(50 + 10 * h))) for h in range(6, 0, -1)
    ),
    new_audit_events=(AuditEvent("e1", NOW, "update", "account_owner"),),
    webhook_failures=(WebhookDelivery("d1", NOW, "failed", "message.sent", "https://a/"),),
    delivery_totals={timedelta(minutes=15): 4},
)


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_documented_placeholder_is_filled(kind: str) -> None:
    summary = " ".join(f"{name}={{{name}}}" for name in KINDS[kind].placeholders)
    rule = RULE.validate_python({"name": "r", "kind": kind, "summary": summary, **BASE[kind]})
    [result, _] = evaluate([rule], [SNAPSHOT], NOW)
    [finding] = result.findings
    assert finding.severity is not None
    state = AlertState(finding.key, Phase.FIRING, finding.severity, NOW, fired_at=NOW)
    transition = Transition(Reason.FIRING, finding.key, finding.severity, NOW, state, finding)
    headline = render(transition, rule).body.splitlines()[0]
    assert re.findall(r"\{[a-z_]+\}", headline) == []
    # The facts of every finding are documented placeholders, no more.
    assert set(finding.facts) <= set(KINDS[kind].placeholders)


@pytest.mark.parametrize(
    ("kind", "summary", "ok"),
    [
        ("balance", "{account} {value} {currency} {clear_at} {field}", True),
        ("balance", "{burn_rate}", False),
        ("forecast", "{runs_out_in} at {burn_rate} {currency}/h, {samples} samples", True),
        ("forecast", "{clear_at}", False),
        ("audit", "{count} changes on {account}", True),
        ("audit", "{user_id}", False),
        ("webhook_failures", "{count} of {total} ({ratio}) in {window} for {group}", True),
        ("webhook_failures", "{value.__class__}", True),  # not a placeholder: left as text
        ("webhook_failures", "{Count}", True),  # not a placeholder name: left as text
        ("webhook_failures", "{url}", False),
    ],
)
def test_summary_placeholders_are_validated_per_kind(kind: str, summary: str, ok: bool) -> None:
    data = {"name": "r", "kind": kind, "summary": summary, **BASE[kind]}
    if ok:
        RULE.validate_python(data)
        return
    with pytest.raises(ValidationError, match=f"unknown placeholder .*; {kind} rules know"):
        RULE.validate_python(data)


# ---------------------------------------------------------------------------- check warnings


def warnings_for(tmp_path: Path, rules: str, interval: timedelta) -> list[str]:
    (tmp_path / "rules.yaml").write_text(rules)
    found = load_rules(["rules.yaml"], tmp_path)
    assert found.errors == []
    lines = rule_warnings(found, interval, NOW)
    return [line.replace(str(tmp_path), "TMP") for line in lines]


@pytest.mark.parametrize(
    ("rule", "interval", "expected"),
    [
        ("{name: a, kind: balance, below: 1, for: 5m}", timedelta(minutes=1), []),
        ("{name: a, kind: balance, below: 1, for: 5m}", timedelta(minutes=2), ["for"]),
        ("{name: a, kind: balance, below: 1, for: 30s}", timedelta(minutes=1), ["for"]),
        ("{name: a, kind: webhook_failures, window: 15m}", timedelta(minutes=5), []),
        ("{name: a, kind: webhook_failures, window: 15m}", timedelta(minutes=10), ["window"]),
        ("{name: a, kind: forecast, runs_out_within: 1d}", timedelta(hours=1), []),
        ("{name: a, kind: forecast, runs_out_within: 1d}", timedelta(hours=2), ["lookback"]),
        (
            "{name: a, kind: forecast, runs_out_within: 1h, lookback: 10m}",
            timedelta(minutes=1),
            [],
        ),
        (
            "{name: a, kind: forecast, runs_out_within: 1h}",
            timedelta(hours=2),
            ["lookback", "runs_out_within"],
        ),
        ("{name: a, kind: audit, mute: ['2026-11-01 00:00-2026-11-02 00:00 UTC']}", None, ["mute"]),
        ("{name: a, kind: audit, mute: ['2026-11-23 00:00-2026-11-24 00:00 UTC']}", None, []),
    ],
)
def test_interval_and_mute_warnings(
    tmp_path: Path, rule: str, interval: timedelta | None, expected: list[str]
) -> None:
    lines = warnings_for(tmp_path, f"rules:\n  - {rule}\n", interval or timedelta(minutes=1))
    keys = [re.sub(r"\[\d+\]", "", line.split(": ")[1].split(".", 1)[1]) for line in lines]
    assert keys == expected
    assert all(line.startswith("TMP/rules.yaml:2:") for line in lines)


def test_warning_points_at_the_key(tmp_path: Path) -> None:
    rules = "rules:\n  - name: a\n    kind: balance\n    below: 1\n    for: 90s\n"
    assert warnings_for(tmp_path, rules, timedelta(minutes=1)) == [
        "TMP/rules.yaml:5:10: rules[0].for: 1m30s is not a multiple of poll.interval (1m): "
        "the condition is seen once per poll, so it takes effect as 2m"
    ]


# ---------------------------------------------------------------------------- mute


def test_route_mute_is_validated_in_the_config(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "rules: []\nnotify:\n  routes:\n    ops:\n      urls: [json://127.0.0.1:9/]\n"
        "      mute: ['Sat 00:00-06:00 Europe/Berlin', 'Sat 00:00-06:00']\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert caught.value.errors == [
        f"{config}:6:47: notify.routes.ops.mute[1]: 'Sat 00:00-06:00': add a time zone at the "
        "end (e.g. UTC or Europe/Berlin)"
    ]
    config.write_text(
        "rules: []\nnotify:\n  routes:\n    ops:\n      urls: [json://127.0.0.1:9/]\n"
        "      mute: ['Sat 00:00-06:00 Europe/Berlin']\n"
    )
    route = load_settings(config, environ={}).settings.notify.routes["ops"]
    assert route.mute == ["Sat 00:00-06:00 Europe/Berlin"]


def test_muted_rule_is_evaluated_but_not_sent(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    rules = """\
rules:
  - name: low-credit
    kind: balance
    below: 100
    mute: ["00:00-24:00 UTC"]
"""
    config = write_config(tmp_path, sim.base_url, [receiver.url], rules)
    sim.account.set_balance("45.00")
    result = run_cli("--config", str(config), "once")
    assert result.returncode == 0, result.stderr
    assert "FIRING" in result.stdout and "low-credit/main" in result.stdout
    assert receiver.messages == []
    assert "notify.muted" in result.stderr


# ---------------------------------------------------------------------------- forecast


def test_forecast_end_to_end_reads_the_stored_history(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    rules = """\
rules:
  - name: credit-runway
    kind: forecast
    runs_out_within: 1d
    summary: "{account}: credit runs out in about {runs_out_in} at {burn_rate} {currency}/h"
"""
    config = write_config(tmp_path, sim.base_url, [receiver.url], rules)
    now = datetime.now(UTC)
    with Store.open(tmp_path / "state.db") as store:
        for hours in range(6, 0, -1):  # 20 USD/h for the last six hours
            store.add_balance_sample(
                "main", now - timedelta(hours=hours), money(str(200 + 20 * hours))
            )
    sim.account.set_balance("200.00")
    result = run_cli("--config", str(config), "once")
    assert result.returncode == 0, result.stderr
    assert receiver.titles == ["[WARNING] credit-runway firing — main"]
    headline = str(receiver.messages[0]["message"]).splitlines()[0]
    assert re.fullmatch(r"main: credit runs out in about (9h 5\dm|10h) at 20\.\d\d USD/h", headline)
    assert str(AlertKey("credit-runway", "main")) in result.stdout

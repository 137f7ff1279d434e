"""Drift end to end: the real CLI (real processes) against the Telnyx and Vonage
simulators on 127.0.0.1, alerts through real apprise into a local HTTP receiver."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import Receiver, cli_env, run_cli, write_config
from vonage_support import (
    BALANCE,
    SETTINGS,
    once,
    requests,
    vonage_account,
    vonage_fixture,  # noqa: F401 (the fixture `vonage`)
    write_vonage_config,
)

from watcher.providers.telnyx.sim import SimServer
from watcher.providers.vonage.sim import VonageSimServer

PREFS = "/payment/auto_recharge_prefs"
TELNYX_DRIFT = """\
rules:
  - name: auto-recharge-drift
    kind: drift
    severity: critical
    expect:
      auto_recharge.enabled: true
      auto_recharge.threshold_amount: "50"
"""
VONAGE_DRIFT = """\
rules:
  - name: settings-drift
    kind: drift
    expect:
      auto_reload: true
      settings.mo_callback_url: https://hooks.example.com/mo
"""
FAST_SLOW = "  slow_interval: 0.1s\n"


def telnyx_once(config: Path) -> subprocess.CompletedProcess[str]:
    result = run_cli("--config", str(config), "once", env=cli_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


def telnyx_config(tmp_path: Path, sim: SimServer, receiver: Receiver, slow: str = "") -> Path:
    config = write_config(tmp_path, sim.url, [receiver.url], TELNYX_DRIFT)
    text = config.read_text().replace("  timeout: 3s\n", "  timeout: 3s\n" + slow)
    config.write_text(text)
    return config


def test_auto_recharge_switched_off_alerts_once_with_expected_and_actual_then_resolves(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    sim.account.set_auto_recharge(enabled=True, threshold_amount="50.00")
    config = telnyx_config(tmp_path, sim, receiver, FAST_SLOW)
    telnyx_once(config)
    assert receiver.messages == []  # 50.00 is "50": money compares as Decimal
    sim.account.set_auto_recharge(enabled=False, threshold_amount="50.00")
    telnyx_once(config)
    telnyx_once(config)  # still drifted: nothing new
    assert receiver.titles == ["[CRITICAL] auto-recharge-drift firing — main"]
    body = str(receiver.messages[0]["message"])
    assert "auto_recharge.enabled: expected true → false" in body
    assert "threshold_amount" not in body.split("\n")[0]  # only what differs is listed
    sim.account.set_auto_recharge(enabled=True, threshold_amount="50.00")
    telnyx_once(config)
    assert len(receiver.titles) == 2
    assert receiver.titles[1].startswith("[RESOLVED] auto-recharge-drift — main")
    assert "now as expected: auto_recharge.enabled true" in str(receiver.messages[1]["message"])
    assert sim.account.request_count(PREFS) == 4


def test_the_prefs_are_a_slow_source_and_the_last_read_is_judged_every_cycle(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    """Default slow_interval (10m): one read; the alert stays firing from the kept read
    (across processes), and no `watcher-source-down` or not-judged gap appears."""
    sim.account.set_auto_recharge(enabled=False)
    config = telnyx_config(tmp_path, sim, receiver)
    telnyx_once(config)
    sim.account.set_auto_recharge(enabled=True, threshold_amount="50.00")
    status = telnyx_once(config)
    assert sim.account.request_count(PREFS) == 1
    assert receiver.titles == ["[CRITICAL] auto-recharge-drift firing — main"]
    assert "auto-recharge-drift" in status.stdout


def test_vonage_callback_url_and_auto_reload_drift_alert_and_resolve(
    tmp_path: Path, vonage: VonageSimServer, receiver: Receiver
) -> None:
    vonage.account.set_settings(mo_callback_url="https://hooks.example.com/mo")
    poll = "{interval: 10s, timeout: 3s, slow_interval: 0.1s}"
    config = write_vonage_config(
        tmp_path, vonage_account(vonage), [receiver.url], VONAGE_DRIFT, poll=poll
    )
    once(config)
    assert receiver.messages == []
    vonage.account.set_settings(mo_callback_url="https://evil.example.net/mo")
    vonage.account.set_auto_reload(False)
    once(config)
    assert receiver.titles == ["[WARNING] settings-drift firing — eu"]
    body = str(receiver.messages[0]["message"])
    assert "auto_reload: expected true → false" in body
    assert (
        "settings.mo_callback_url: expected https://hooks.example.com/mo → "
        "https://evil.example.net/mo" in body
    )
    vonage.account.set_settings(mo_callback_url="https://hooks.example.com/mo")
    vonage.account.set_auto_reload(True)
    once(config)
    assert receiver.titles[1].startswith("[RESOLVED] settings-drift — eu")
    assert requests(vonage, SETTINGS) == 3 and requests(vonage, BALANCE) == 3
    sent = [r for r in vonage.account.requests if r.path == SETTINGS]
    assert {(r.method, r.body, tuple(r.query)) for r in sent} == {("POST", b"", ())}
    assert vonage.account.settings_changes == []


def test_an_auto_reload_only_rule_never_posts_settings(
    tmp_path: Path, vonage: VonageSimServer, receiver: Receiver
) -> None:
    rules = "rules:\n  - {name: reload, kind: drift, expect: {auto_reload: true}}\n"
    config = write_vonage_config(tmp_path, vonage_account(vonage), [receiver.url], rules)
    vonage.account.set_auto_reload(False)
    once(config)
    assert receiver.titles == ["[WARNING] reload firing — eu"]
    assert requests(vonage, SETTINGS) == 0

"""`accounts` and `status --json` through the real CLI, checked against the real state
after a cycle against a simulated Telnyx and a simulated Vonage account."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import API_KEY, run_cli
from vonage_support import SECRET, env, once, vonage_account, vonage_fixture, write_vonage_config

from watcher.providers.telnyx.sim import SimServer
from watcher.state.store import Store

__all__ = ["vonage_fixture"]
LOW = "rules:\n  - {name: low-credit, kind: balance, below: {warning: 100}}\n"


def _config(tmp_path: Path, sim: SimServer, vonage: Any) -> Path:
    telnyx = f"  - name: main\n    api_key: env:TELNYX_API_KEY\n    base_url: {sim.base_url}\n"
    accounts = telnyx + vonage_account(vonage)
    return write_vonage_config(tmp_path, accounts, ["json://127.0.0.1:9/"], LOW)


def cli(config: Path, *args: str) -> str:
    result = run_cli("--config", str(config), *args, env=env())
    assert result.returncode == 0, result.stderr
    assert API_KEY not in result.stdout and SECRET not in result.stdout
    return result.stdout


def test_accounts_json_matches_the_state(tmp_path: Path, sim: SimServer, vonage: Any) -> None:
    config = _config(tmp_path, sim, vonage)
    before = json.loads(cli(config, "accounts", "--json"))  # no state yet: config only
    assert [(a["name"], a["provider"], a["balance"]) for a in before] == [
        ("main", "telnyx", None),
        ("eu", "vonage", None),
    ]
    once(config)
    listed = json.loads(cli(config, "accounts", "--json"))
    with Store.open(tmp_path / "state" / "state.db") as store:
        latest = store.latest_balances()
        health = store.source_health()
    assert [a["name"] for a in listed] == ["main", "eu"]
    for account in listed:
        at, balance = latest[account["name"]]
        polls = [h.last_attempt for h in health if h.account == account["name"]]
        assert account["configured"] is True
        assert account["currency"] == balance.currency
        assert account["balance"]["available_credit"] == str(balance.available_credit)
        assert account["balance"]["at"] == at.isoformat().replace("+00:00", "Z")
        assert account["last_poll"] == max(polls).isoformat().replace("+00:00", "Z")
        assert account["failing"] == []
    assert listed[0]["currency"] == "USD" and listed[1]["currency"] == "GBP"

    text = cli(config, "accounts")
    assert f"  main (telnyx): {latest['main'][1].available_credit} USD available" in text
    assert f"  eu (vonage): {latest['eu'][1].available_credit} GBP available" in text


def test_status_json_has_a_stable_shape(tmp_path: Path, sim: SimServer, vonage: Any) -> None:
    config = _config(tmp_path, sim, vonage)
    once(config)  # Vonage's 40.12 is below 100: low-credit fires for eu
    document = json.loads(cli(config, "status", "--json"))
    assert set(document) == {
        "version",
        "state",
        "now",
        "last_cycle",
        "accounts",
        "sources",
        "alerts",
        "silences",
        "undelivered",
    }
    assert document["version"] == 1
    assert [a["name"] for a in document["accounts"]] == ["main", "eu"]
    (alert,) = document["alerts"]
    assert (alert["rule"], alert["account"], alert["phase"], alert["severity"]) == (
        "low-credit",
        "eu",
        "firing",
        "warning",
    )
    assert alert["ack"] is None and alert["escalated_at"] is None
    assert alert["notified_routes"] == ["ops"]
    assert document["undelivered"] == 1  # json://127.0.0.1:9 refuses: waiting for a retry
    text = cli(config, "status")
    assert "accounts:\n  main (telnyx): " in text

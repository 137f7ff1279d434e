"""`check` judges rules against the providers of their accounts (DESIGN section 4), through
the real CLI: a kind, an audit field or a balance field that none of a rule's accounts'
providers offers is an error at its place; a mixed Telnyx + Vonage config is fine."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import cli_env, run_cli

from watcher.core.capabilities import Capabilities
from watcher.providers.registry import capabilities

ACCOUNTS = """\
accounts:
  - name: main
    api_key: env:TELNYX_API_KEY
  - name: eu
    provider: vonage
    api_key: abcd1234
    api_secret: env:VONAGE_API_SECRET
rules: [rules/*.yaml]
notify:
  routes:
    ops: {urls: ["json://127.0.0.1:9/hook"]}
"""
ENV = cli_env(VONAGE_API_SECRET="VonageSecret0123456789")


def write(tmp_path: Path, rules: str, config: str = ACCOUNTS) -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "r.yaml").write_text("rules:\n" + rules)
    path = tmp_path / "config.yaml"
    path.write_text(config)
    return path


def test_the_registry_finds_both_providers() -> None:
    found = capabilities()
    assert set(found) >= {"telnyx", "vonage"}
    assert found["vonage"] == Capabilities(
        kinds=frozenset({"balance", "forecast", "audit", "credentials", "drift", "spend"}),
        audit_fields=frozenset(
            {"event_type", "source", "source_ip", "source_country", "user_email"}
        ),
        balance_fields=frozenset({"balance", "available_credit"}),
        drift_fields=found["vonage"].drift_fields,  # tests/test_drift.py
        spend_periods=frozenset({"day"}),  # tests/test_spend_check.py
    )
    assert found["telnyx"].offers("webhook_failures")
    assert not found["telnyx"].offers("credentials")


RULES_DIR = "rules/r.yaml"


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        pytest.param(
            "  - {name: hooks, kind: webhook_failures, accounts: [eu]}\n",
            "2:25: rules[0].kind: webhook_failures rules do not apply to vonage accounts (eu): "
            "no provider of the rule's accounts offers them",
            id="webhooks-on-vonage",
        ),
        pytest.param(
            "  - {name: creds, kind: credentials, accounts: [main]}\n",
            "2:25: rules[0].kind: credentials rules do not apply to telnyx accounts (main): "
            "no provider of the rule's accounts offers them",
            id="credentials-on-telnyx",
        ),
        pytest.param(
            "  - name: cfg\n    kind: audit\n    accounts: [eu]\n"
            "    match: {change_made_by: account_owner}\n",
            "5:29: rules[0].match.change_made_by: change_made_by is not an audit field of vonage "
            "accounts (eu) (they have: event_type, source, source_country, source_ip, user_email)",
            id="telnyx-audit-field-on-vonage",
        ),
        pytest.param(
            "  - name: cfg\n    kind: audit\n    accounts: [main]\n"
            "    ignore:\n      - {user_id: u1}\n      - {source: CD}\n",
            "7:18: rules[0].ignore[1].source: source is not an audit field of telnyx accounts "
            "(main) (they have: alternate_resource_id, change_made_by, change_type, field, "
            "resource_id, user_id)",
            id="vonage-audit-field-on-telnyx",
        ),
        pytest.param(
            "  - {name: low, kind: balance, field: credit_limit, below: 5, accounts: [eu]}\n",
            "2:39: rules[0].field: credit_limit is not a balance field of vonage accounts (eu) "
            "(they have: available_credit, balance)",
            id="credit-limit-on-vonage",
        ),
    ],
)
def test_check_rejects_what_no_provider_offers(tmp_path: Path, rules: str, expected: str) -> None:
    path = write(tmp_path, rules)
    result = run_cli("--config", str(path), "check", env=ENV)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if not line.startswith("warning:")]
    assert errors == [f"{tmp_path / RULES_DIR}:{expected}"]


def test_once_refuses_the_same_config_at_load(tmp_path: Path) -> None:
    path = write(tmp_path, "  - {name: hooks, kind: webhook_failures, accounts: [eu]}\n")
    result = run_cli("--config", str(path), "once", env=ENV)
    assert result.returncode == 2, result.stderr  # an invalid config for once: usage error
    assert f"{tmp_path / RULES_DIR}:2:25: rules[0].kind: webhook_failures rules" in result.stderr


MIXED_RULES = """\
  - {name: low, kind: balance, below: 10}
  - {name: runway, kind: forecast, runs_out_within: 1d}
  - name: cfg
    kind: audit
    match: {change_made_by: account_owner, event_type: "AUTORELOAD_*"}
  - {name: hooks, kind: webhook_failures}
  - {name: creds, kind: credentials, severity: critical}
  - {name: limit, kind: balance, field: credit_limit, below: 1}
"""


def test_a_mixed_config_with_rules_on_both_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, MIXED_RULES)
    result = run_cli("--config", str(path), "check", env=ENV)
    assert result.returncode == 0, result.stderr
    assert "2 account(s), 1 rule file(s), 6 rule(s)" in result.stdout


def test_an_unset_vonage_secret_is_a_warning_for_check(tmp_path: Path) -> None:
    config = ACCOUNTS.replace(
        "api_key: abcd1234",
        "api_key: abcd1234\n    topup:\n"
        '      {enabled: true, trx: credential:vonage_trx, amount: "50.00"}',
    )
    path = write(tmp_path, "  - {name: low, kind: balance, below: 10}\n", config)
    env = {k: v for k, v in ENV.items() if k not in {"VONAGE_API_SECRET", "CREDENTIALS_DIRECTORY"}}
    result = run_cli("--config", str(path), "check", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "warning: account eu: secret env:VONAGE_API_SECRET: environment variable "
        "VONAGE_API_SECRET is not set",
        "warning: account eu: secret credential:vonage_trx: $CREDENTIALS_DIRECTORY is not set "
        "(credential: references work under systemd LoadCredential=)",
    ]

"""`check` and spend rules, through the real CLI: `period` xor `window`, `above` xor
`spike`, an IANA `timezone`, each error at `file:line:col`; a calendar period a provider
does not offer (Vonage has no `month`: its spend comes from balance samples, kept 8 days)
and a day spike's baseline beyond those samples are refused at their key."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import cli_env, run_cli

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


def check(tmp_path: Path, rules: str) -> tuple[int, list[str]]:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "r.yaml").write_text("rules:\n" + rules)
    config = tmp_path / "config.yaml"
    config.write_text(ACCOUNTS)
    result = run_cli("--config", str(config), "check", env=ENV)
    assert "Traceback" not in result.stderr
    return result.returncode, [line for line in result.stderr.splitlines() if "r.yaml" in line]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        pytest.param(
            "    above: 10\n",
            ":2:5: rules[0]: give exactly one of `period` (day or month) or `window`",
            id="no-span",
        ),
        pytest.param(
            "    period: day\n    window: 1h\n    above: 10\n",
            ":2:5: rules[0]: give exactly one of `period` (day or month) or `window`",
            id="both-spans",
        ),
        pytest.param(
            "    window: 1h\n",
            ":2:5: rules[0]: give exactly one of `above` or `spike`",
            id="no-threshold",
        ),
        pytest.param(
            "    period: day\n    timezone: Europe/Atlantis\n    above: 10\n",
            ":5:15: rules[0].timezone: unknown time zone 'Europe/Atlantis': give an IANA name "
            "such as UTC or Europe/Berlin",
            id="timezone",
        ),
        pytest.param(
            "    period: month\n    accounts: [eu]\n    above: 10\n",
            ":4:13: rules[0].period: period month is not offered by vonage accounts (eu) "
            "(they have: day)",
            id="vonage-month",
        ),
        pytest.param(
            "    period: day\n    spike: {factor: 2, baseline: 14d}\n",
            ":5:34: rules[0].spike.baseline: vonage accounts (eu) count spend from balance "
            "samples, kept 8 days: a day spike's baseline may be at most 6d there",
            id="vonage-baseline",
        ),
        pytest.param(
            "    period: day\n    accounts: [eu]\n    above: 10\n    numbers: true\n",
            ":7:14: rules[0].numbers: numbers come from Telnyx charges: vonage accounts (eu) "
            "have none",
            id="vonage-numbers",
        ),
    ],
)
def test_spend_rules_refused_at_their_place(tmp_path: Path, rule: str, expected: str) -> None:
    code, errors = check(tmp_path, "  - name: spend\n    kind: spend\n" + rule)
    assert code == 1
    assert [e.split("r.yaml", 1)[1] for e in errors] == [expected]


def test_valid_spend_rules_pass(tmp_path: Path) -> None:
    rules = """\
  - name: day
    kind: spend
    period: day
    timezone: America/New_York
    spike: {factor: 3, baseline: 3d, min_amount: 20}
    holds_topups: true
  - name: month
    kind: spend
    period: month
    accounts: [main]
    above: {warning: 500, critical: 1000}
    numbers: true
  - name: hour
    kind: spend
    window: 1h
    above: 50
"""
    code, errors = check(tmp_path, rules)
    assert (code, errors) == (0, [])

"""`check` and the fraud hold's keys: `holds_topups` only on the kinds that can hold
(audit, credentials, drift, spend), refused elsewhere at its place; `topup.hold_after` a
duration > 0."""

from __future__ import annotations

from pathlib import Path

from conftest import run_cli
from topup_support import write_topup_config

HOOK = "json://127.0.0.1:9/hook"
RULES = """\
rules:
  - name: low
    kind: balance
    below: 10
    holds_topups: true
  - name: runway
    kind: forecast
    runs_out_within: 1d
    holds_topups: true
  - name: hooks
    kind: webhook_failures
    holds_topups: true
  - name: change
    kind: audit
    holds_topups: true
  - name: secrets
    kind: credentials
    holds_topups: false
"""


def test_holds_topups_is_refused_with_its_place_on_kinds_that_cannot_hold(
    tmp_path: Path,
) -> None:
    config = write_topup_config(tmp_path, "{enabled: false}", rules=RULES, notify_url=HOOK)
    result = run_cli("--config", str(config), "check")
    rules = tmp_path / "rules" / "rules.yaml"
    why = "only audit, credentials, drift and spend rules can hold top-ups (DESIGN §6.3)"
    errors = [line for line in result.stderr.splitlines() if "holds_topups" in line]
    assert result.returncode == 1
    assert errors == [
        f"{rules}:5:5: rules[0].holds_topups: {why}",
        f"{rules}:9:5: rules[1].holds_topups: {why}",
        f"{rules}:12:5: rules[2].holds_topups: {why}",
    ]
    assert "Traceback" not in result.stderr


def test_hold_after_must_be_a_positive_duration(tmp_path: Path) -> None:
    config = write_topup_config(tmp_path, "{hold_after: 0s}", notify_url=HOOK)
    result = run_cli("--config", str(config), "check")
    assert result.returncode == 1
    assert f"{config}:4:25: accounts[0].topup.hold_after: must be longer than 0s" in (
        result.stderr.splitlines()
    ), result.stderr
    config = write_topup_config(tmp_path, "{hold_after: 2h}", notify_url=HOOK)
    result = run_cli("--config", str(config), "check")
    assert result.returncode == 0, result.stderr

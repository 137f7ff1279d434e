"""`ack`, escalation and `accounts` through the real CLI, against the loopback simulator
and a local HTTP receiver (DESIGN §5, §7)."""

from __future__ import annotations

from pathlib import Path

from conftest import run_cli, write_config

LOW = """\
rules:
  - name: low-credit
    kind: balance
    below: {warning: 100, critical: 50}
"""
ESCALATING = LOW + "    escalate: {after: 0s, route: pager}\n"


def test_check_names_an_unknown_escalation_route_at_its_place(tmp_path: Path) -> None:
    rules = LOW + "    escalate: {after: 30m, route: nope}\n"
    config = write_config(tmp_path, "http://127.0.0.1:9/v2", ["json://127.0.0.1:9/"], rules)
    result = run_cli("--config", str(config), "check")
    assert result.returncode == 1
    rule_file = tmp_path / "rules" / "rules.yaml"
    assert (
        f"{rule_file}:5:35: rules[0].escalate.route: route 'nope' is not defined in "
        "notify.routes (routes: ops)"
    ) in result.stderr.splitlines()

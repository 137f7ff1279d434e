"""A spend spike with `holds_topups` holds the account's top-ups (DESIGN §6.3), through
the real CLI against the Telnyx simulator: while the spike fires, critical credit's
top-up is refused as held (zero POSTs, one `held` notification naming the spend rule);
`topups release` lets exactly one POST through at the next cycle once it has ended; and
`account-watcher test` predicts the hold from scripted charges."""

from __future__ import annotations

import io
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import API_KEY, Receiver, run_cli
from topup_support import PAID, low_credit_rules, posts, topup_caps, write_topup_config

from watcher.cli.ruletest import cmd_test
from watcher.providers.telnyx.sim import SimServer

HELD = "[WARNING] top-up refused (held) 100.00 USD — main"
SPIKE = """\
  - name: spend-spike
    kind: spend
    period: day
    spike: {factor: 3, baseline: 7d, min_amount: 20}
    severity: critical
    holds_topups: true
"""


def cli(config: Path, *args: str) -> str:
    result = run_cli("--config", str(config), *args)
    assert result.returncode == 0, result.stderr
    assert API_KEY not in result.stdout + result.stderr
    return result.stdout


def test_a_spend_spike_holds_the_top_up(tmp_path: Path, sim: SimServer, receiver: Receiver) -> None:
    today = datetime.now(UTC).date()
    for back in range(1, 8):
        sim.account.charges.add(today - timedelta(days=back), "Voice", "10.00")
    config = write_topup_config(
        tmp_path,
        topup_caps("300.00"),
        sim=sim,
        notify_url=receiver.url,
        rules=low_credit_rules() + SPIKE,
        poll="{interval: 10s, timeout: 3s, slow_interval: 0.1s}",
    )
    cli(config, "once")
    assert receiver.messages == []

    sim.account.charges.add(today, "Messaging", "400.00")  # a stolen key burning credit
    sim.account.set_balance("40.00")  # critical credit: a top-up is due, but held
    cli(config, "once")
    cli(config, "once")
    assert posts(sim) == 0
    assert "[CRITICAL] spend-spike firing — main" in receiver.titles
    held = [m for m in receiver.messages if m.get("title") == HELD]
    assert len(held) == 1
    assert "rule spend-spike" in str(held[0]["message"])
    assert PAID not in receiver.titles

    sim.account.charges.add(today, "Messaging", "-400.00")  # the spike is over (refunded)
    cli(config, "once")  # resolved; the hold stands until hold_after or a release
    assert posts(sim) == 0
    out = cli(config, "topups", "release", "--account", "main", "--reason", "key rotated")
    assert "main: released 1 hold(s)" in out
    cli(config, "once")
    assert posts(sim) == 1


def test_the_rule_test_predicts_the_spend_hold(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(low_credit_rules() + SPIKE)
    spec = textwrap.dedent("""\
        rule_files: [rules.yaml]
        evaluation_interval: 10m
        tests:
          - name: a spend spike holds the top-up
            balance: {available_credit: "500 500 40 40 40 40 40 40 40 40"}
            topup: {hold_after: 1h, min_interval: 10m, max_per_day: "1000.00"}
            charges:
              - {at: 0m, today: 5, month: 100, daily: 10}
              - {at: 10m, today: 405, month: 500, daily: 10}
            expect:
              - {at: 10m, alerts: [{rule: spend-spike, state: firing}]}
              - {at: 20m, topups: [{rule: low-credit, held: true}]}
        """)
    (tmp_path / "test.yaml").write_text(spec)
    out = io.StringIO()
    code = cmd_test([tmp_path / "test.yaml"], out)
    assert (code, out.getvalue().splitlines()[-1]) == (0, "SUCCESS: 1 passed, 0 failed")

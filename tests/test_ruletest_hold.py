"""`account-watcher test` predicts the fraud hold (DESIGN §6.3): an audit event matched by
a `holds_topups` rule before critical credit makes the top-up `held` (expected as
`{rule: low-credit, held: true}` or `low-credit (held)`), until `hold_after` is over."""

from __future__ import annotations

import io
import textwrap
from datetime import timedelta
from pathlib import Path

from test_topup_daemon import START, Clock, running
from topup_support import low_credit_rules, write_topup_config

from watcher.cli.ruletest import cmd_test
from watcher.providers.telnyx.sim import SimServer
from watcher.state.ledger import EntryState, Ledger

AUDIT_RULE = """\
  - name: unexpected-config-change
    kind: audit
    match: {change_made_by: organization_member}
    severity: critical
    holds_topups: true
"""


def run(tmp_path: Path, expect: str, *, rules: str = AUDIT_RULE) -> tuple[int, str]:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "rules.yaml").write_text(low_credit_rules() + rules)
    spec = textwrap.dedent("""\
        rule_files: [rules/rules.yaml]
        evaluation_interval: 10m
        tests:
          - name: a config change holds the top-up
            start: {start}
            balance: {available_credit: "500 500 40 40 40 40 40 40 40 40"}
            topup: {hold_after: 1h, min_interval: 10m, max_per_day: "1000.00"}
            audit_events:
              - {at: 5m, change_made_by: organization_member, user_id: u-7}
            expect:
        """).replace("{start}", START.isoformat())
    path = tmp_path / "test.yaml"
    path.write_text(spec + textwrap.indent(textwrap.dedent(expect), "      "))
    out = io.StringIO()
    return cmd_test([path], out), out.getvalue()


# the event is seen at 10m (held until 1h10m); critical from 20m: held once, then the
# hold ends at 70m and the next evaluation pays
HELD = """\
- {at: 10m, topups: []}
- {at: 20m, topups: [{rule: low-credit, held: true}]}
- {at: 30m, topups: []}
- {at: 60m, topups: []}
- {at: 70m, topups: [low-credit]}
"""


def test_a_held_top_up_is_predicted_until_hold_after_is_over(tmp_path: Path) -> None:
    code, out = run(tmp_path, HELD)
    assert (code, out.splitlines()[-1]) == (0, "SUCCESS: 1 passed, 0 failed"), out


def test_the_string_form_and_a_wrong_expectation(tmp_path: Path) -> None:
    code, out = run(tmp_path, "- {at: 20m, topups: ['low-credit (held)']}\n")
    assert code == 0, out
    code, out = run(tmp_path, "- {at: 20m, topups: [low-credit]}\n")
    assert code == 1
    assert "      - low-credit/main\n" in out and "      + low-credit/main (held)\n" in out


def test_without_holds_topups_the_top_up_is_paid(tmp_path: Path) -> None:
    rules = AUDIT_RULE.replace("    holds_topups: true\n", "")
    code, out = run(tmp_path, "- {at: 20m, topups: [low-credit]}\n", rules=rules)
    assert code == 0, out


async def test_the_daemon_holds_where_the_rule_test_says(tmp_path: Path, sim: SimServer) -> None:
    """The daemon's cycle over the same story (dry run) refuses as held at 20m and pays
    at 70m, as HELD expects."""
    config = write_topup_config(
        tmp_path,
        '{enabled: false, hold_after: 1h, min_interval: 10m, max_per_day: "1000.00"}',
        sim=sim,
        poll="{interval: 10s, timeout: 2s}",
        notify_url="json://127.0.0.1:9/unused",
        rules=low_credit_rules() + AUDIT_RULE,
    )
    sim.account.add_audit_event(
        created_at=START + timedelta(minutes=5), change_made_by="organization_member"
    )
    clock = Clock()
    sim.account.clock = clock  # the event is listed once the daemon's clock reaches it
    async with running(config, clock) as daemon:
        for value in ["500", "500", "40", "40", "40", "40", "40", "40"]:
            sim.account.set_balance(value)
            await daemon.cycle()
            clock.advance(minutes=10)
        entries = Ledger(daemon.store).entries()
    made = [((e.created_at - START) // timedelta(minutes=1), e.state) for e in entries]
    assert made == [(20, EntryState.REFUSED), (70, EntryState.DRY_RUN)]
    assert entries[0].reason.startswith("held: ")

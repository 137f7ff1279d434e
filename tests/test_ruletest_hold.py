"""`account-watcher test` predicts the fraud hold (DESIGN §6.3): an audit event matched by
a `holds_topups` rule before critical credit makes the top-up `held` (expected as
`{rule: low-credit, held: true}` or `low-credit (held)`), until `hold_after` is over."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

from topup_support import low_credit_rules

from watcher.cli.ruletest import cmd_test

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
            balance: {available_credit: "500 500 40 40 40 40 40 40 40 40"}
            topup: {hold_after: 1h, min_interval: 10m, max_per_day: "1000.00"}
            audit_events:
              - {at: 5m, change_made_by: organization_member, user_id: u-7}
            expect:
        """)
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

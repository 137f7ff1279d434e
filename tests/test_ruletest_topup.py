"""`account-watcher test` and the daemon agree on when a top-up is due: both run the
core's `find_triggers` and `decide` (a warning firing pays nothing, an escalation to
critical pays, a rule still critical pays again after `min_interval`, a new firing
within it is refused once)."""

from __future__ import annotations

import io
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from test_topup_daemon import START, Clock, running
from topup_support import low_credit_rules, write_topup_config

from watcher.cli.ruletest import cmd_test
from watcher.providers.telnyx.sim import SimServer
from watcher.state.ledger import EntryState, Ledger

STEP = timedelta(minutes=10)
# One value every 10 minutes: warning (80), critical for 70 minutes (40), cleared (120),
# critical again (30).
SERIES = ["80", "40", "40", "40", "40", "40", "40", "40", "120", "30", "30"]
DRY, REFUSED = EntryState.DRY_RUN, EntryState.REFUSED
CASES = [
    pytest.param(
        'amount: "100.00", max_per_day: "300.00", min_interval: 1h',
        # escalated to critical at 10m; still critical an hour later (70m); the new
        # firing at 90m comes within the hour: refused; at 100m it waits
        [(10, DRY), (70, DRY), (90, REFUSED)],
        id="min_interval",
    ),
    pytest.param(
        'amount: "100.00", max_per_day: "200.00", min_interval: 20m',
        # every 20 minutes while critical; the third would pass max_per_day: refused,
        # once in that firing episode (not again at 70m), once more in the next (90m)
        [(10, DRY), (30, DRY), (50, REFUSED), (90, REFUSED)],
        id="max_per_day",
    ),
]


async def daemon_topups(tmp_path: Path, sim: SimServer, caps: str) -> list[tuple[int, EntryState]]:
    """Run the real daemon cycle over `SERIES` (dry run, `caps`); out: the minute and
    state of every top-up entry it wrote."""
    config = write_topup_config(
        tmp_path,
        f"{{enabled: false, {caps}}}",
        sim=sim,
        poll="{interval: 10s, timeout: 2s}",
        notify_url="json://127.0.0.1:9/unused",
        rules=low_credit_rules(),
    )
    clock = Clock()
    async with running(config, clock) as daemon:
        for value in SERIES:
            sim.account.set_balance(value)
            await daemon.cycle()
            clock.advance(seconds=STEP.total_seconds())
        entries = Ledger(daemon.store).entries()
    return [((e.created_at - START) // timedelta(minutes=1), e.state) for e in entries]


def ruletest(tmp_path: Path, due: list[int], caps: str) -> tuple[int, str]:
    """Run `account-watcher test` over `SERIES` with the daemon's rule file and `caps` as
    the case's `topup:`, expecting a top-up of `low-credit` exactly at the minutes `due`;
    out: (exit code, output)."""
    expect = "\n".join(
        f"      - {{at: {i * 10}m, topups: [{'low-credit' if i * 10 in due else ''}]}}"
        for i in range(len(SERIES))
    )
    spec = textwrap.dedent(f"""\
        rule_files: [rules/rules.yaml]
        evaluation_interval: 10m
        tests:
          - name: agrees with the daemon
            start: {START.isoformat()}
            balance: {{available_credit: "{" ".join(SERIES)}"}}
            topup: {{{caps}}}
            expect:
        """)
    path = tmp_path / "test.yaml"
    path.write_text(spec + expect + "\n")
    out = io.StringIO()
    code = cmd_test([path], out)
    return code, out.getvalue()


@pytest.mark.parametrize(("caps", "expected"), CASES)
async def test_ruletest_lists_the_topups_the_daemon_makes(
    tmp_path: Path, sim: SimServer, caps: str, expected: list[tuple[int, EntryState]]
) -> None:
    made = await daemon_topups(tmp_path, sim, caps)
    assert made == expected
    code, out = ruletest(tmp_path, [minute for minute, _ in made], caps)
    assert (code, out.splitlines()[-1]) == (0, "SUCCESS: 1 passed, 0 failed"), out


def test_without_a_topup_section_the_default_caps_apply(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.yaml").write_text(low_credit_rules())
    defaults = 'amount: "100.00", max_per_day: "300.00", min_interval: 1h'
    code, out = ruletest(tmp_path, [10, 70, 90], defaults)
    assert code == 0, out
    spec = (tmp_path / "test.yaml").read_text()
    (tmp_path / "test.yaml").write_text(spec.replace(f"    topup: {{{defaults}}}\n", ""))
    out_io = io.StringIO()
    assert cmd_test([tmp_path / "test.yaml"], out_io) == 0, out_io.getvalue()

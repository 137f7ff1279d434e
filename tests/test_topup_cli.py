"""`topups` (list, settle, pause, resume), the top-up lines of `status`, and the top-up
checks of `check`: the CLI in-process (`watcher.cli.main.main`), the state in `tmp_path`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import Receiver, run_cli, write_config
from topup_support import RULES, TOPUP, write_topup_config

from watcher.cli.main import main
from watcher.providers.telnyx.sim import SimServer
from watcher.service import logs
from watcher.state.ledger import EntryState, Ledger, NewEntry
from watcher.state.store import Store

NOW = datetime.now(UTC)
ENABLED = '{enabled: true, amount: "100.00"}'
HOOK = "json://127.0.0.1:9/hook"  # `check` passes only with a route to notify


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what the test's own set-up printed
    try:
        with pytest.raises(SystemExit) as exited:
            main(list(args))
    finally:
        logs.reset_logging()  # `topups` configures logging (to stderr) for the process
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def seed(tmp_path: Path) -> dict[str, int]:
    """A paid, an unknown, a failed (old) and a dry-run entry; returns their ids."""
    with Store.open(tmp_path / "state.db") as store:
        ledger = Ledger(store)
        new = NewEntry("main", Decimal("100.00"), "USD", "low-credit", "low-credit is critical")
        paid = ledger.add(new, EntryState.SENDING, NOW - timedelta(hours=3))
        ledger.finish(paid.id, EntryState.SUCCEEDED, NOW, transaction_id="txn-1")
        unknown = ledger.add(new, EntryState.SENDING, NOW - timedelta(hours=1))
        ledger.finish(unknown.id, EntryState.UNKNOWN, NOW, error="POST timed out after 10s")
        old = ledger.add(new, EntryState.FAILED, NOW - timedelta(days=10))
        dry = ledger.add(new, EntryState.DRY_RUN, NOW - timedelta(minutes=5))
    return {"paid": paid.id, "unknown": unknown.id, "old": old.id, "dry": dry.id}


def test_topups_lists_the_ledger_and_the_caps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_topup_config(tmp_path, ENABLED)
    ids = seed(tmp_path)
    code, out, _ = cli(capsys, "--config", str(config), "topups")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("top-ups since ") and lines[0].endswith(": 3")
    assert f"#{ids['paid']} " in lines[1] and "100.00 USD succeeded" in lines[1]
    assert "transaction txn-1" in lines[1]
    assert "unknown" in lines[2] and "error: POST timed out after 10s" in lines[2]
    assert f"account-watcher topups settle {ids['unknown']} --as succeeded|failed" in lines[2]
    assert "dry_run" in lines[3]
    assert (
        "  main: paying; used 200.00 of 300.00 USD in the last 24 h; 1 unknown to settle" in lines
    )
    assert lines[-1] == "top-ups: not paused"
    code, out, _ = cli(capsys, "--config", str(config), "topups", "--since", "30d")
    assert out.splitlines()[0].endswith(": 4")
    code, out, err = cli(capsys, "--config", str(config), "topups", "--account", "other")
    assert (code, out) == (2, "")  # an unknown account is a usage error
    assert "no account 'other' in the config (accounts: main)" in err


def test_settle_records_who_when_why_and_a_failure_frees_the_cap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_topup_config(tmp_path, ENABLED)
    ids = seed(tmp_path)
    monkeypatch.setenv("SUDO_USER", "alice")
    code, out, err = cli(
        capsys,
        "--config",
        str(config),
        "topups",
        "settle",
        str(ids["unknown"]),
        "--as",
        "failed",
        "--reason",
        "portal shows no charge",
    )
    assert (code, err) == (0, "")
    assert f"top-up #{ids['unknown']} settled as failed:" in out
    with Store.open(tmp_path / "state.db") as store:
        entry = Ledger(store).get(ids["unknown"])
    assert entry is not None
    assert (entry.state, entry.settled_by, entry.settle_reason) == (
        EntryState.FAILED,
        "alice",
        "portal shows no charge",
    )
    assert entry.settled_at is not None
    assert abs(entry.settled_at - datetime.now(UTC)) < timedelta(minutes=1)
    _, out, _ = cli(capsys, "--config", str(config), "status")
    assert "main: paying; used 100.00 of 300.00 USD in the last 24 h" in out


@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("paid", "is succeeded; only unknown entries are settled"),
        ("missing", "there is no top-up #999"),
    ],
)
def test_settle_refuses_anything_but_an_unknown_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], which: str, message: str
) -> None:
    config = write_topup_config(tmp_path, ENABLED)
    ids = {**seed(tmp_path), "missing": 999}
    code, _, err = cli(
        capsys,
        "--config",
        str(config),
        "topups",
        "settle",
        str(ids[which]),
        "--as",
        "succeeded",
        "--reason",
        "checked",
    )
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_pause_and_resume_show_in_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_topup_config(tmp_path, ENABLED)
    seed(tmp_path)
    monkeypatch.delenv("SUDO_USER", raising=False)
    monkeypatch.setenv("USER", "bob")
    code, out, _ = cli(capsys, "--config", str(config), "topups", "pause", "--reason", "new card")
    assert code == 0
    assert "top-ups: PAUSED by bob since" in out and out.rstrip().endswith("next cycle")
    _, status, _ = cli(capsys, "--config", str(config), "status")
    assert "top-ups:" in status.splitlines()
    assert any(
        "PAUSED by bob" in line and line.endswith(": new card") for line in status.splitlines()
    )
    assert "100.00 USD succeeded" in status  # recent top-ups
    code, out, _ = cli(capsys, "--config", str(config), "topups", "resume")
    assert (code, out) == (0, "top-ups resumed\n")
    _, status, _ = cli(capsys, "--config", str(config), "status")
    assert "  top-ups: not paused" in status.splitlines()


def test_topups_without_state_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_topup_config(tmp_path, ENABLED, established=False)
    code, out, _ = cli(capsys, "--config", str(config), "topups")
    assert code == 0
    assert out.startswith("no state yet at ")


AUDIT_WITH_TOPUP = """\
rules:
  - name: change
    kind: audit
    topup: true
"""
BALANCE_WITHOUT_CRITICAL_BELOW = """\
rules:
  - name: high
    kind: balance
    above: {critical: 1000}
    topup: true
  - name: warn-only
    kind: balance
    below: 10
    topup: true
"""


def test_check_rejects_bad_amounts_caps_and_rules_that_cannot_top_up(tmp_path: Path) -> None:
    config = write_topup_config(
        tmp_path,
        '{amount: 100, max_per_day: "50.00", max_per_month: "100.5"}',
        rules=AUDIT_WITH_TOPUP,
    )
    result = run_cli("--config", str(config), "check")
    assert result.returncode == 1
    errors = result.stderr.splitlines()
    assert any(
        line.startswith(
            f"{config}:4:21: accounts[0].topup.amount: must be written with exactly two"
        )
        for line in errors
    ), errors
    assert any(
        line.startswith(f"{config}:4:63: accounts[0].topup.max_per_month: must be written")
        for line in errors
    ), errors
    assert "Traceback" not in result.stderr

    config = write_topup_config(
        tmp_path, '{amount: "100.00", max_per_day: "50.00"}', rules=AUDIT_WITH_TOPUP
    )
    result = run_cli("--config", str(config), "check")
    errors = result.stderr.splitlines()
    assert (
        f"{config}:4:44: accounts[0].topup.max_per_day: max_per_day (50.00) must be at least "
        "the top-up amount (100.00)" in errors
    )

    config = write_topup_config(tmp_path, ENABLED, rules=BALANCE_WITHOUT_CRITICAL_BELOW)
    (tmp_path / "rules" / "audit.yaml").write_text(AUDIT_WITH_TOPUP)
    result = run_cli("--config", str(config), "check")
    rules, audit = tmp_path / "rules" / "rules.yaml", tmp_path / "rules" / "audit.yaml"
    errors = result.stderr.splitlines()
    assert result.returncode == 1
    assert f"{audit}:4:5: rules[0].topup: only balance and forecast rules can top up" in errors
    assert f"{rules}:2:5: topup: needs `below` (a top-up raises the balance)" in errors
    assert (
        f"{rules}:6:5: topup: needs a critical threshold (top-ups are made while the rule is "
        "critical)" in errors
    )


def test_check_warns_that_a_disabled_account_only_dry_runs(tmp_path: Path) -> None:
    config = write_topup_config(tmp_path, "{enabled: false}", notify_url=HOOK)
    result = run_cli("--config", str(config), "check")
    assert result.returncode == 0, result.stderr
    rules = tmp_path / "rules" / "rules.yaml"
    assert (
        f"warning: {rules}:2:5: rule low-credit has topup: true but account main has "
        "topup.enabled: false: dry runs only, nothing is paid"
    ) in result.stderr.splitlines()


def test_once_dry_run_never_pays_even_when_enabled(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    poll = "{interval: 10s, timeout: 3s}"
    config = write_topup_config(tmp_path, ENABLED, sim=sim, poll=poll, notify_url=receiver.url)
    sim.account.set_balance("40.00")
    result = run_cli("--config", str(config), "once", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "dry run: no money was moved" in result.stdout
    assert sim.account.request_count(TOPUP) == 0
    assert "[INFO] top-up dry run: would have paid 100.00 USD — main" in receiver.titles


FORECAST_TOPUP = """\
rules:
  - name: runway
    kind: forecast
    runs_out_within: 24h
    topup: true
"""


@pytest.mark.parametrize(
    ("severity", "rejected"),
    [("", True), ("    severity: warning\n", True), ("    severity: critical\n", False)],
    ids=["default-warning", "warning", "critical"],
)
def test_check_rejects_topup_on_a_forecast_rule_that_is_not_critical(
    tmp_path: Path, severity: str, rejected: bool
) -> None:
    config = write_topup_config(tmp_path, ENABLED, rules=FORECAST_TOPUP + severity, notify_url=HOOK)
    result = run_cli("--config", str(config), "check")
    rules = tmp_path / "rules" / "rules.yaml"
    error = (
        f"{rules}:2:5: topup needs severity: critical: top-ups are made while the rule is critical"
    )
    assert (error in result.stderr.splitlines()) is rejected, result.stderr
    assert result.returncode == (1 if rejected else 0), result.stderr


def test_a_route_muted_all_week_still_delivers_topup_messages(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    muted = '      mute: ["Mon-Sun 00:00-24:00 UTC"]\n'
    config = write_config(tmp_path, sim.base_url, [receiver.url], RULES, extra=muted)
    sim.account.set_balance("40.00")  # low-credit critical: a dry-run top-up (enabled: false)
    result = run_cli("--config", str(config), "once")
    assert result.returncode == 0, result.stderr
    assert "low-credit" in result.stdout  # the alert fired, its message is muted
    assert receiver.titles == ["[INFO] top-up dry run: would have paid 100.00 USD — main"]

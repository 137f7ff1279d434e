"""The fraud hold (DESIGN §6.3) through the real CLI against the Telnyx simulator: an
unexpected audit event with `holds_topups` holds the top-up that critical credit asks
for (zero POSTs, one `held` notification naming the rule and the event); `topups
release` lets exactly one POST through at the next cycle; `topups hold` by hand holds;
`status` and `topups` show the holds and their history."""

from __future__ import annotations

from pathlib import Path

from conftest import API_KEY, Receiver, run_cli
from topup_support import PAID, low_credit_rules, posts, topup_caps, write_topup_config
from vonage_support import (
    TOPUP_CAPS,
    env,
    low_credit_topup_rules,
    vonage_account,
    vonage_fixture,  # noqa: F401 (the fixture `vonage`)
    write_vonage_config,
)
from vonage_support import once as vonage_once

from watcher.providers.telnyx.sim import SimServer
from watcher.providers.vonage.sim import VonageSimServer
from watcher.state.lock import Lock, acquire

HELD = "[WARNING] top-up refused (held) 100.00 USD — main"
AUDIT_RULE = """\
  - name: unexpected-config-change
    kind: audit
    match: {change_made_by: organization_member}
    severity: critical
    holds_topups: true
"""
RULES = low_credit_rules() + AUDIT_RULE
INTRUDER = "0c3b9e6e-4a8b-4f0e-9d2a-5c8f1e7d3a21"


def cli(config: Path, *args: str) -> str:
    result = run_cli("--config", str(config), *args)
    assert result.returncode == 0, result.stderr
    assert API_KEY not in result.stdout + result.stderr
    return result.stdout


def setup(tmp_path: Path, sim: SimServer, receiver: Receiver) -> Path:
    config = write_topup_config(
        tmp_path, topup_caps("300.00"), sim=sim, notify_url=receiver.url, rules=RULES
    )
    cli(config, "once")  # the first start: the account's history is not alerted
    assert receiver.messages == []
    return config


def held_messages(receiver: Receiver) -> list[dict[str, object]]:
    return [m for m in receiver.messages if m.get("title") == HELD]


def test_an_audit_hold_refuses_the_top_up_until_released(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = setup(tmp_path, sim, receiver)
    sim.account.add_audit_event(
        change_made_by="organization_member",
        user_id=INTRUDER,
        changes=[{"field": "webhook_url", "from": "https://a.example", "to": "https://evil"}],
    )
    cli(config, "once")
    assert receiver.titles == ["[CRITICAL] unexpected-config-change: 1 audit event — main"]
    status = cli(config, "status")
    assert "main: ON HOLD" in status and "rule unexpected-config-change" in status

    sim.account.set_balance("40.00")  # critical credit: a top-up is due, but held
    cli(config, "once")
    cli(config, "once")  # still critical: refused again, not notified again
    assert posts(sim) == 0
    held = held_messages(receiver)
    assert len(held) == 1
    body = str(held[0]["message"])
    assert "rule unexpected-config-change" in body
    assert f"organization_member (user {INTRUDER}) update" in body and "https://evil" in body
    assert "account-watcher topups release --account main" in body
    assert PAID not in receiver.titles

    out = cli(config, "topups", "release", "--account", "main", "--reason", "was our deploy")
    assert "main: released 1 hold(s)" in out
    assert posts(sim) == 0  # a release takes effect at the next cycle
    cli(config, "once")
    assert posts(sim) == 1
    assert receiver.titles.count(PAID) == 1
    cli(config, "once")  # min_interval: no second POST
    assert posts(sim) == 1
    history = cli(config, "topups")
    assert "held by rule unexpected-config-change" in history
    assert "released by " in history and ": was our deploy" in history
    assert "ON HOLD" not in cli(config, "status")


def test_a_hold_by_hand_holds_until_released_and_names_who(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = setup(tmp_path, sim, receiver)
    env_user = {"SUDO_USER": "alice"}
    result = run_cli(
        "--config",
        str(config),
        "topups",
        "hold",
        "--account",
        "main",
        "--reason",
        "a login from abroad",
        env={**_env(), **env_user},
    )
    assert result.returncode == 0, result.stderr
    assert "held by hand by alice" in result.stdout and "until released" in result.stdout
    sim.account.set_balance("40.00")
    cli(config, "once")
    assert posts(sim) == 0
    held = held_messages(receiver)
    assert len(held) == 1 and "by hand by alice" in str(held[0]["message"])
    assert "a login from abroad" in str(held[0]["message"])
    cli(config, "topups", "release", "--account", "main", "--reason", "it was Bob")
    cli(config, "once")
    assert posts(sim) == 1


def test_hold_and_release_of_an_unknown_account_are_usage_errors(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = setup(tmp_path, sim, receiver)
    for action in ("hold", "release"):
        result = run_cli(
            "--config", str(config), "topups", action, "--account", "nope", "--reason", "x"
        )
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            "account-watcher: no account 'nope' in the config (accounts: main)"
        ]
    out = cli(config, "topups", "release", "--account", "main", "--reason", "nothing held")
    assert out.strip() == "main: top-ups were not on hold"


def test_a_vonage_secret_change_holds_the_top_up_until_released(
    tmp_path: Path, vonage: VonageSimServer, receiver: Receiver
) -> None:
    rules = low_credit_topup_rules() + (
        "  - name: credential-change\n"
        "    kind: credentials\n"
        "    severity: critical\n"
        "    holds_topups: true\n"
    )
    account = vonage_account(vonage, currency="EUR", extra=TOPUP_CAPS)
    poll = "{interval: 10s, timeout: 3s, slow_interval: 0.1s}"
    config = write_vonage_config(
        tmp_path, account, [receiver.url], rules, poll=poll, established=True
    )
    vonage.account.set_balance("500.00")
    vonage_once(config)  # the first poll only records the secrets there are
    added = vonage.account.add_secret(value="Second-Secret-77")
    vonage_once(config)
    vonage.account.set_balance("40.00")
    vonage_once(config)
    vonage_once(config)
    assert vonage.account.topup_attempts == []
    title = "[WARNING] top-up refused (held) 50.00 EUR — eu"
    held = [m for m in receiver.messages if m.get("title") == title]
    assert len(held) == 1
    body = str(held[0]["message"])
    assert "rule credential-change" in body and f"API secret {added.id} added" in body
    assert "Second-Secret-77" not in body
    result = run_cli(
        "--config",
        str(config),
        "topups",
        "release",
        "--account",
        "eu",
        "--reason",
        "ours",
        env=env(),
    )
    assert result.returncode == 0, result.stderr
    vonage_once(config)
    assert len(vonage.account.topup_attempts) == 1


def _env() -> dict[str, str]:
    from conftest import cli_env

    return cli_env()


def test_a_once_without_the_state_lock_still_records_the_hold(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    """The audit event a `once` next to `run` reads is seen (and so never read again) by
    both: the hold must not be lost with it. A hold only stops payments, so any process
    may record one, as `topups hold` does."""
    config = setup(tmp_path, sim, receiver)
    sim.account.add_audit_event(change_made_by="organization_member", user_id=INTRUDER)
    with held_lock(tmp_path / "state.db"):
        cli(config, "once")  # the audit event is seen here, by a process without the lock
    sim.account.set_balance("40.00")
    cli(config, "once")  # now the owner: the top-up is due, and held
    assert posts(sim) == 0
    assert len(held_messages(receiver)) == 1


def held_lock(state: Path) -> Lock:
    lock = acquire(state)
    assert lock is not None
    return lock

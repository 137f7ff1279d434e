"""Silences and notify-test through the real CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import Receiver, run_cli, write_config

from watcher.providers.telnyx.sim import SimServer

LOW = "rules:\n  - {name: low-credit, kind: balance, below: 50, severity: critical}\n"


def cli(config: Path, *args: str, code: int = 0) -> str:
    result = run_cli("--config", str(config), *args)
    assert result.returncode == code, result.stderr
    return result.stdout + result.stderr


def test_add_list_expire(tmp_path: Path, sim: SimServer, receiver: Receiver) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], LOW)
    out = cli(config, "silence", "add", "low-*", "--duration", "2h", "--reason", "card replaced")
    assert "silence #1 added:" in out
    assert "#1 low-*: active, 2h left" in out and "card replaced" in out
    out = cli(
        config,
        "silence",
        "add",
        "x",
        "--account",
        "main",
        "--duration",
        "30m",
        "--reason",
        "maintenance",
    )
    assert "#2 x (account main): active, 30m left" in out
    listed = cli(config, "silence", "list")
    assert "silences: 2" in listed
    out = cli(config, "silence", "expire", "1")
    assert "#1 low-*: ended" in out
    assert "active silences: 1" in cli(config, "status")


def test_bad_silence_input_exits_2(tmp_path: Path, sim: SimServer, receiver: Receiver) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], LOW)
    out = cli(config, "silence", "add", "x", "--duration", "soon", "--reason", "r", code=2)
    assert "'soon' is not a duration" in out
    out = cli(config, "silence", "add", "x", "--duration", "1h", "--reason", " ", code=2)
    assert "a silence needs a reason" in out
    cli(config, "silence", "add", "x", "--duration", "1h", code=2)  # --reason is required
    assert "no silence with id 7" in cli(config, "silence", "expire", "7", code=2)


def test_silenced_alert_is_evaluated_not_sent_and_notified_when_silence_ends(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], LOW)
    cli(config, "silence", "add", "low-*", "--duration", "1h", "--reason", "topping up now")
    sim.account.set_balance("10.00")
    cli(config, "once")
    assert receiver.messages == []
    status = cli(config, "status")
    assert "FIRING" in status and "low-credit/main" in status
    assert "low-credit/main: by silence #1" in status

    cli(config, "silence", "expire", "1")
    cli(config, "once")
    assert len(receiver.messages) == 1
    assert receiver.titles[0].startswith("[CRITICAL] low-credit still firing (")
    cli(config, "once")
    assert len(receiver.messages) == 1  # once, not every cycle


def test_silence_for_other_account_does_not_apply(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], LOW)
    text = config.read_text()
    other = f"  - name: other\n    api_key: env:TELNYX_API_KEY\n    base_url: {sim.base_url}\n"
    config.write_text(text.replace("poll:\n", other + "poll:\n", 1))
    cli(config, "silence", "add", "*", "--account", "other", "--duration", "1h", "--reason", "r")
    sim.account.set_balance("10.00")
    cli(config, "once")
    assert receiver.titles == ["[CRITICAL] low-credit firing — main"]


def test_notify_test_reports_each_url(
    tmp_path: Path, sim: SimServer, receiver: Receiver, receiver2: Receiver
) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], LOW)
    out = cli(config, "notify-test")
    assert f"ops: json://127.0.0.1:{receiver.port}/…: delivered" in out and ": delivered" in out
    assert "1 delivered, 0 failed" in out
    assert receiver.titles[0].startswith("[TEST] account-watcher notify-test — ")

    config = write_config(tmp_path, sim.base_url, [receiver.url, receiver2.url], LOW)
    receiver2.status = 500
    out = cli(config, "notify-test", "--route", "ops", code=1)
    assert "1 delivered, 1 failed" in out
    assert f"json://127.0.0.1:{receiver2.port}/…: FAILED: " in out
    assert "no-such" in cli(config, "notify-test", "--route", "no-such", code=2)


def test_muted_route_gets_nothing_other_route_still_does(
    tmp_path: Path, sim: SimServer, receiver: Receiver, receiver2: Receiver
) -> None:
    config = write_config(
        tmp_path,
        sim.base_url,
        [receiver.url],
        "rules:\n  - {name: low-credit, kind: balance, below: 50, route: [ops, pager]}\n",
        extra=f"""      mute: ["Mon-Sun 00:00-24:00 UTC"]
    pager:
      urls: ["{receiver2.url}"]
  default_route: ops
""",
    )
    sim.account.set_balance("10.00")
    cli(config, "once")
    assert receiver.messages == []
    assert receiver2.titles == ["[WARNING] low-credit firing — main"]


SUMMARY = (
    "rules:\n  - {name: low-credit, kind: balance, below: 50, severity: critical,\n"
    '     summary: "{account}: credit {value} {currency} below {threshold}"}\n'
)


def test_still_firing_after_a_silence_reads_like_a_repeat(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    """The message at the end of a silence has this cycle's values, filled as a repeat."""
    config = write_config(tmp_path, sim.base_url, [receiver.url], SUMMARY)
    cli(config, "silence", "add", "low-*", "--duration", "1h", "--reason", "topping up now")
    sim.account.set_balance("10.00")
    cli(config, "once")
    sim.account.set_balance("8.00")
    cli(config, "silence", "expire", "1")
    cli(config, "once")
    assert len(receiver.messages) == 1
    body = str(receiver.messages[0]["message"]).splitlines()
    assert body[0] == "main: credit 8.00 USD below 50.00"
    assert body[1] == "Value: 8.00 USD; threshold: below 50.00 USD."
    assert body[2].startswith("Firing since ") and body[2].endswith("; account main.")


def silence_add(config: Path, glob: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "--config", str(config), "silence", "add", glob, "--duration", "1h", "--reason", "r", *args
    )


def test_silence_of_nothing_warns_and_unknown_account_is_refused(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], LOW)
    result = silence_add(config, "no-such-*")
    assert result.returncode == 0, result.stderr
    assert "silence #1 added:" in result.stdout
    assert result.stderr == (
        "account-watcher: warning: 'no-such-*' matches no rule of the loaded config "
        "(low-credit, watcher-notify-failing, watcher-source-down, watcher-topup-unavailable); "
        "the silence is kept for rules added later\n"
    )
    for builtin in ("watcher-notify-failing", "watcher-topup-unavailable"):
        result = silence_add(config, builtin)
        assert (result.returncode, result.stderr) == (0, ""), builtin
    result = silence_add(config, "low-*")
    assert (result.returncode, result.stderr) == (0, "")
    result = silence_add(config, "watcher-*", "--account", "main")
    assert (result.returncode, result.stderr) == (0, "")

    result = silence_add(config, "*", "--account", "ghost")
    assert result.returncode == 2
    assert result.stderr == "account-watcher: no account 'ghost' in the config (accounts: main)\n"
    assert "silences: 5" in cli(config, "silence", "list")


def test_topups_of_an_unknown_account_is_refused(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], LOW)
    cli(config, "once")
    result = run_cli("--config", str(config), "topups", "--account", "ghost")
    assert result.returncode == 2
    assert result.stderr == ("account-watcher: no account 'ghost' in the config (accounts: main)\n")
    assert result.stdout == ""
    assert "top-ups since" in cli(config, "topups", "--account", "main")

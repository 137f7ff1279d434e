"""`ack`, escalation and `accounts` through the real CLI, against the loopback simulator
and a local HTTP receiver (DESIGN §5, §7)."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import API_KEY, Receiver, cli_env, run_cli, write_config

from watcher.config.rulecheck import rule_warnings
from watcher.config.ruleload import load_rules
from watcher.providers.telnyx.sim import SimServer

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


def _env() -> dict[str, str]:
    env = cli_env(USER="alice")
    env.pop("SUDO_USER", None)
    return env


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_cli("--config", str(config), *args, env=_env())
    assert API_KEY not in result.stdout + result.stderr
    return result


def once(config: Path) -> None:
    result = cli(config, "once")
    assert result.returncode == 0, result.stderr


def test_ack_sends_one_ack_and_stops_the_repeats(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    extra = "  repeat_interval: 1s\n"  # (almost) every cycle repeats
    config = write_config(tmp_path, sim.base_url, [receiver.url], LOW, extra=extra)
    sim.account.set_balance("80.00")
    once(config)
    time.sleep(1)
    once(config)
    assert receiver.titles[0] == "[WARNING] low-credit firing — main"
    assert receiver.titles[1].startswith("[WARNING] low-credit still firing (")

    acked = cli(config, "ack", "low-credit", "--reason", "topping up by hand")
    assert acked.returncode == 0, acked.stderr
    assert "acked low-credit/main as alice until " in acked.stdout

    once(config)
    time.sleep(1)
    once(config)  # a repeat would be due: the ack stops it
    assert receiver.titles[2:] == ["[ACK] low-credit — main: alice: topping up by hand"]

    status = cli(config, "status")
    assert "ACKED by alice at " in status.stdout and ": topping up by hand" in status.stdout
    document = json.loads(cli(config, "status", "--json").stdout)
    (alert,) = document["alerts"]
    assert alert["ack"]["by"] == "alice" and alert["ack"]["reason"] == "topping up by hand"
    assert alert["notified_routes"] == ["ops"] and alert["phase"] == "firing"


def test_ack_of_no_firing_alert_exits_1_with_one_sentence(tmp_path: Path, sim: SimServer) -> None:
    config = write_config(tmp_path, sim.base_url, ["json://127.0.0.1:9/"], LOW)
    once(config)  # 500.00: nothing fires
    result = cli(config, "ack", "low-credit", "--account", "main", "--reason", "x")
    assert result.returncode == 1
    assert result.stderr == (
        "account-watcher: no firing alert of rule low-credit on account main "
        "(see account-watcher status)\n"
    )
    assert cli(config, "ack", "low-credit").returncode == 2  # --reason is required


def test_resolve_reaches_the_escalation_route_after_a_silence_and_restarts(
    tmp_path: Path, sim: SimServer, receiver: Receiver, receiver2: Receiver
) -> None:
    extra = f"""\
    pager:
      urls: ["{receiver2.url}"]
  default_route: ops
"""
    rules = ESCALATING + "    route: ops\n"
    config = write_config(tmp_path, sim.base_url, [receiver.url], rules, extra=extra)
    sim.account.set_balance("80.00")
    once(config)
    assert receiver.titles == receiver2.titles == ["[WARNING] low-credit firing — main"]
    silenced = cli(config, "silence", "add", "low-*", "--duration", "2h", "--reason", "work")
    assert silenced.returncode == 0, silenced.stderr
    sim.account.set_balance("500.00")
    once(config)
    assert receiver.titles[1].startswith("[RESOLVED] low-credit — main (fired ")
    assert receiver2.titles[1:] == receiver.titles[1:]


def test_resolve_follows_the_routes_told_across_a_changed_config(
    tmp_path: Path, sim: SimServer, receiver: Receiver, receiver2: Receiver
) -> None:
    extra = f'    billing:\n      urls: ["{receiver2.url}"]\n  default_route: ops\n'
    config = write_config(
        tmp_path, sim.base_url, [receiver.url], LOW + "    route: ops\n", extra=extra
    )
    sim.account.set_balance("80.00")
    once(config)
    assert receiver.titles == ["[WARNING] low-credit firing — main"]
    # the rule now goes to billing: a new process with a changed config (as a reload)
    (tmp_path / "rules" / "rules.yaml").write_text(LOW + "    route: billing\n")
    sim.account.set_balance("500.00")
    once(config)
    assert receiver.titles[1].startswith("[RESOLVED] low-credit — main (fired ")
    assert receiver2.titles == []  # billing never saw the alert


def test_an_alert_of_a_removed_rule_resolves(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], LOW)
    sim.account.set_balance("80.00")
    once(config)
    (tmp_path / "rules" / "rules.yaml").write_text("rules: []\n")
    once(config)
    assert receiver.titles[1].startswith("[RESOLVED] low-credit — main (fired ")
    assert "no longer evaluated" in str(receiver.messages[1]["message"])


def test_escalation_once_then_an_ack_reaches_both_routes(
    tmp_path: Path, sim: SimServer, receiver: Receiver, receiver2: Receiver
) -> None:
    extra = f'    pager:\n      urls: ["{receiver2.url}"]\n  default_route: ops\n'
    rules = LOW + "    route: ops\n    escalate: {after: 1s, route: pager}\n"
    config = write_config(tmp_path, sim.base_url, [receiver.url], rules, extra=extra)
    sim.account.set_balance("80.00")
    once(config)
    assert (receiver.titles, receiver2.titles) == (["[WARNING] low-credit firing — main"], [])
    time.sleep(1)
    once(config)
    once(config)  # escalated once only
    assert receiver.titles == ["[WARNING] low-credit firing — main"]
    (escalated,) = receiver2.titles
    assert escalated.startswith("[WARNING] low-credit firing ")
    assert escalated.endswith(", not acknowledged — main")
    assert "account-watcher ack low-credit --account main" in str(receiver2.messages[0]["message"])
    assert "ESCALATED at " in cli(config, "status").stdout

    assert cli(config, "ack", "low-credit", "--reason", "mine").returncode == 0
    once(config)
    ack = "[ACK] low-credit — main: alice: mine"
    assert (receiver.titles[1:], receiver2.titles[1:]) == ([ack], [ack])


def test_check_warns_that_one_shot_rules_do_not_escalate(tmp_path: Path) -> None:
    rules = (
        "rules:\n  - name: a\n    kind: audit\n    escalate: {after: 30m, route: ops}\n"
        "  - name: b\n    kind: balance\n    below: 1\n    escalate: {after: 30m, route: ops}\n"
    )
    (tmp_path / "rules.yaml").write_text(rules)
    found = load_rules(["rules.yaml"], tmp_path)
    assert rule_warnings(found, timedelta(minutes=1), datetime.now(UTC)) == [
        f"{tmp_path}/rules.yaml:4:15: rules[0].escalate: audit rules alert once per event "
        "and have no firing episode to escalate; escalate has no effect here"
    ]

"""The durable outbox, end to end through real apprise into local receivers."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import REPO, Mailbox, Receiver, cli_env, run_cli, wait_for, write_config
from pydantic import SecretStr
from structlog.testing import capture_logs

from watcher.core.lifecycle import Reason
from watcher.core.model import Severity
from watcher.core.render import Message
from watcher.notify.delivery import Notifier, Route
from watcher.notify.flush import Policy, flush
from watcher.notify.outbox import Outbox, backoff
from watcher.providers.telnyx.sim import SimServer
from watcher.state.store import StateTarget, open_store

LOW = "rules:\n  - {name: low-credit, kind: balance, below: 50, severity: critical}\n"
FIRING = "[CRITICAL] low-credit firing — main"


def once(config: Path) -> str:
    result = run_cli("--config", str(config), "once")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_channel_down_then_up_delivers_exactly_once(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], LOW)
    sim.account.set_balance("10.00")
    receiver.status = 500
    out = once(config)
    assert "1 waiting for retry" in out
    once(config)
    assert receiver.hits == 2 and receiver.messages == []
    status = run_cli("--config", str(config), "status").stdout
    assert "undelivered notifications: 1" in status
    assert FIRING in status

    receiver.status = 200
    once(config)
    assert receiver.titles == [FIRING]
    once(config)
    assert receiver.titles == [FIRING]  # not twice
    assert "undelivered notifications: 0" in run_cli("--config", str(config), "status").stdout


def test_healthy_url_gets_exactly_one_while_the_other_fails(
    tmp_path: Path, sim: SimServer, receiver: Receiver, receiver2: Receiver
) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url, receiver2.url], LOW)
    sim.account.set_balance("10.00")
    receiver2.status = 503
    once(config)
    once(config)
    assert receiver.titles == [FIRING]
    assert receiver2.hits == 2 and receiver2.messages == []
    receiver2.status = 200
    once(config)
    assert receiver.titles == [FIRING]  # the retry did not go to the healthy URL again
    assert receiver2.titles == [FIRING]


def test_mail_server_down_then_up_gets_it_once_http_gets_it_once(
    tmp_path: Path, sim: SimServer, receiver: Receiver, mailbox: Mailbox
) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url, mailbox.url], LOW)
    sim.account.set_balance("10.00")
    mailbox.down()
    once(config)
    assert receiver.titles == [FIRING]
    mailbox.up()
    once(config)
    once(config)
    assert mailbox.subjects == [FIRING]
    assert receiver.titles == [FIRING]


def test_killed_daemon_delivers_pending_after_restart_not_twice(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], LOW)
    sim.account.set_balance("10.00")
    receiver.status = 500
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", str(config), "run"],
        env=cli_env(),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: receiver.hits >= 1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    receiver.status = 200
    restarted = subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", str(config), "run"],
        env=cli_env(),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: len(receiver.messages) >= 1)  # sent right after start-up
        restarted.send_signal(signal.SIGTERM)
        _, err = restarted.communicate(timeout=20)
    finally:
        restarted.kill()
    assert restarted.returncode == 0, err
    assert receiver.titles == [FIRING]
    once(config)
    assert receiver.titles == [FIRING]  # not twice


def test_min_severity_routes_only_what_is_severe_enough(
    tmp_path: Path, sim: SimServer, receiver: Receiver, receiver2: Receiver
) -> None:
    rules = (
        "rules:\n  - {name: low-credit, kind: balance, below: {warning: 100, critical: 50}, "
        "route: [ops, pager]}\n"
    )
    config = write_config(
        tmp_path,
        sim.base_url,
        [receiver.url],
        rules,
        extra=f"""    pager:
      urls: ["{receiver2.url}"]
      min_severity: critical
  default_route: ops
""",
    )
    sim.account.set_balance("80.00")
    once(config)
    assert receiver.titles == ["[WARNING] low-credit firing — main"]
    assert receiver2.messages == []
    sim.account.set_balance("40.00")
    once(config)
    assert receiver2.titles == ["[CRITICAL] low-credit escalated to critical — main"]
    sim.account.set_balance("80.00")
    once(config)  # back to warning: quiet
    sim.account.set_balance("500.00")
    once(config)
    # the resolve reaches the critical-only route that got the alert
    assert receiver2.titles[-1].startswith("[RESOLVED] low-credit — main")
    assert receiver.titles[-1].startswith("[RESOLVED] low-credit — main")


def test_fallback_route_gets_messages_and_an_alert_when_a_route_keeps_failing(
    tmp_path: Path, sim: SimServer, receiver: Receiver, receiver2: Receiver
) -> None:
    config = write_config(
        tmp_path,
        sim.base_url,
        [receiver.url],
        LOW,
        extra=f"""      fallback: backup
    backup:
      urls: ["{receiver2.url}"]
  default_route: ops
  failures_before_fallback: 2
""",
    )
    sim.account.set_balance("10.00")
    receiver.status = 500
    once(config)
    assert receiver2.messages == []
    once(config)  # second failure in a row: the fallback takes over
    assert sorted(receiver2.titles) == sorted(
        [FIRING, "[CRITICAL] notification route ops failing — 2 attempts in a row"]
    )
    receiver.status = 200
    once(config)
    assert receiver.titles == [FIRING]
    assert receiver2.titles[-1] == "[RESOLVED] notification route ops — delivering again"


def test_check_refuses_an_unknown_fallback(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        "http://127.0.0.1:9/v2",
        ["json://127.0.0.1:9/"],
        LOW,
        extra="      fallback: nope\n",
    )
    result = run_cli("--config", str(config), "check")
    assert result.returncode == 1
    assert "notify.routes.ops.fallback: 'nope' is not a route" in result.stderr


@pytest.mark.parametrize(
    ("attempts", "wait"),
    [(0, 30), (1, 30), (2, 60), (3, 120), (6, 960), (7, 1800), (20, 1800)],
)
def test_backoff(attempts: int, wait: int) -> None:
    assert backoff(attempts) == timedelta(seconds=wait)


async def test_gives_up_after_the_limit_with_an_error_log(state_target: StateTarget) -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    dead = SecretStr("json://127.0.0.1:1/nothing-listens-here")
    notifier = Notifier({"ops": Route((dead,))}, default_route="ops", timeout=2)
    policy = Policy(give_up_after=timedelta(hours=24), failures_before_fallback=3, fallbacks={})
    message = Message(
        "[CRITICAL] x firing — main", "body", Severity.CRITICAL, "x", "main", Reason.FIRING
    )
    with open_store(state_target) as store:
        outbox = Outbox(store)
        outbox.enqueue(message, notifier.targets("ops"), now)
        first = await flush(outbox, notifier, now, policy)
        assert len(first.failed) == 1 and outbox.backlog() == 1
        not_due = await flush(outbox, notifier, now + timedelta(seconds=10), policy)
        assert not_due.failed == []  # backing off: not retried before its time
        with capture_logs() as logs:
            late = await flush(outbox, notifier, now + timedelta(hours=25), policy)
        assert [i.message.title for i in late.expired] == [message.title]
        assert outbox.backlog() == 0
        gave_up = [e for e in logs if e["event"] == "notify.gave_up"]
        assert gave_up and gave_up[0]["log_level"] == "error"
        assert gave_up[0]["route"] == "ops" and gave_up[0]["attempts"] == 1


def test_pending_message_follows_a_rotated_url(
    tmp_path: Path, sim: SimServer, receiver: Receiver, receiver2: Receiver
) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], LOW)
    sim.account.set_balance("10.00")
    receiver.status = 500
    once(config)
    write_config(tmp_path, sim.base_url, [receiver2.url], LOW)  # the token was rotated
    once(config)
    assert receiver2.titles == [FIRING]
    assert "undelivered notifications: 0" in run_cli("--config", str(config), "status").stdout


def test_check_refuses_a_url_apprise_cannot_use(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9/v2", ["foo://user:hunter2@host/x"], LOW)
    result = run_cli("--config", str(config), "check")
    assert result.returncode == 1
    assert (
        f"{config}:14:14: notify.routes.ops.urls[0]: apprise does not understand foo://host/…"
        in (result.stderr)
    )
    assert "hunter2" not in result.stderr


def test_notify_test_needs_no_api_key(tmp_path: Path, sim: SimServer, receiver: Receiver) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], LOW)
    env = cli_env()
    env.pop("TELNYX_API_KEY")
    result = run_cli("--config", str(config), "notify-test", env=env)
    assert result.returncode == 0, result.stderr
    assert len(receiver.messages) == 1

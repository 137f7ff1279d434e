"""End to end: the real CLI against the loopback simulator, alerts through real apprise
into a local HTTP receiver (`json://`) and a local SMTP server (aiosmtpd)."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import API_KEY, REPO, Mailbox, Receiver, cli_env, run_cli, wait_for, write_config

from watcher.providers.telnyx.sim import SimServer

LOW_CREDIT = """\
rules:
  - name: low-credit
    kind: balance
    below: {warning: 100, critical: 50}
    clear_above: 120
"""

AUDIT = """\
rules:
  - name: unexpected-config-change
    kind: audit
    severity: critical
    match:
      change_made_by: [account_owner, organization_member]
    ignore:
      - user_id: 6a09cdc3-8948-47f0-aa62-74ac943d6c58
"""

WEBHOOKS = """\
rules:
  - name: webhook-failure-spike
    kind: webhook_failures
    window: 15m
    at_least: 10
    severity: critical
"""


def once(config: Path) -> subprocess.CompletedProcess[str]:
    result = run_cli("--config", str(config), "once")
    assert result.returncode == 0, result.stderr
    assert API_KEY not in result.stdout + result.stderr
    return result


def test_low_credit_fires_once_does_not_repeat_then_resolves(
    tmp_path: Path, sim: SimServer, receiver: Receiver, mailbox: Mailbox
) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url, mailbox.url], LOW_CREDIT)
    sim.account.set_balance("45.00")

    first = once(config)
    assert receiver.titles == ["[CRITICAL] low-credit firing — main"]
    assert mailbox.subjects == ["[CRITICAL] low-credit firing — main"]
    body = str(receiver.messages[0]["message"])
    assert "available_credit is 45.00 USD, below 50.00 USD." in body
    assert "FIRING" in first.stdout and "low-credit/main" in first.stdout

    once(config)  # still low: no repeat within repeat_interval
    assert len(receiver.messages) == 1 and len(mailbox.messages) == 1

    sim.account.set_balance("110.00")  # inside the hysteresis band: still firing
    once(config)
    assert len(receiver.messages) == 1

    sim.account.set_balance("130.00")
    once(config)
    assert receiver.titles[1].startswith("[RESOLVED] low-credit — main (fired ")
    assert "now 130.00 USD" in str(receiver.messages[1]["message"])
    assert mailbox.subjects[1].startswith("[RESOLVED] low-credit — main")

    status = run_cli("--config", str(config), "status")
    assert status.returncode == 0
    assert "main/balance: last ok" in status.stdout
    assert "alerts: none" in status.stdout


def test_send_resolved_false_sends_no_resolved_message_on_any_route(
    tmp_path: Path, sim: SimServer, receiver: Receiver, receiver2: Receiver
) -> None:
    rules = LOW_CREDIT.rstrip("\n") + "\n    route: [ops, billing]\n"
    extra = f"""\
    billing:
      urls: ["{receiver2.url}"]
  default_route: ops
  send_resolved: false
"""
    config = write_config(tmp_path, sim.base_url, [receiver.url], rules, extra=extra)
    sim.account.set_balance("45.00")
    once(config)
    assert receiver.titles == receiver2.titles == ["[CRITICAL] low-credit firing — main"]

    sim.account.set_balance("130.00")
    resolved = once(config)
    assert "alerts: none" in resolved.stdout  # it did resolve
    once(config)  # nothing left behind in the outbox either
    assert receiver.titles == receiver2.titles == ["[CRITICAL] low-credit firing — main"]


def test_unexpected_audit_event_alerts_once_ignored_never(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], AUDIT)
    old = sim.account.add_audit_event(created_at=datetime.now(UTC) - timedelta(hours=1))
    once(config)  # first start: history is not alerted
    assert receiver.messages == []

    sim.account.add_audit_event(
        change_made_by="organization_member",
        user_id="0c3b9e6e-4a8b-4f0e-9d2a-5c8f1e7d3a21",
        changes=[{"field": "webhook_url", "from": "https://a.example", "to": "https://b.example"}],
    )
    sim.account.add_audit_event(user_id="6a09cdc3-8948-47f0-aa62-74ac943d6c58")
    once(config)
    assert receiver.titles == ["[CRITICAL] unexpected-config-change: 1 audit event — main"]
    body = str(receiver.messages[0]["message"])
    assert "organization_member (user 0c3b9e6e-4a8b-4f0e-9d2a-5c8f1e7d3a21)" in body
    assert "webhook_url: https://a.example → https://b.example" in body
    assert old["id"] not in body

    once(config)  # the overlap re-reads the same events: deduplicated
    assert len(receiver.messages) == 1


def test_audit_event_before_first_start_never_alerts_even_inside_the_overlap(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], AUDIT)
    # 5 minutes before the very first start: inside the 10-minute overlap that is read
    early = sim.account.add_audit_event(
        created_at=datetime.now(UTC) - timedelta(minutes=5), user_id="u-before"
    )
    first = once(config)
    assert receiver.messages == []
    assert "new audit events" not in first.stdout
    once(config)  # the overlap reads it again: still older than the first start
    assert receiver.messages == []

    sim.account.add_audit_event(user_id="u-after")  # the same rule does match later events
    once(config)
    assert receiver.titles == ["[CRITICAL] unexpected-config-change: 1 audit event — main"]
    body = str(receiver.messages[0]["message"])
    assert "u-after" in body and "u-before" not in body and early["id"] not in body


def test_late_audit_event_within_overlap_is_caught(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], AUDIT)
    once(config)
    now = datetime.now(UTC)
    # created now, but the API lists it only later (eventual consistency)
    sim.account.add_audit_event(
        created_at=now,
        visible_at=now + timedelta(minutes=5),
        user_id="11111111-2222-3333-4444-555555555555",
    )
    once(config)
    assert receiver.messages == []
    # five minutes later on the API's clock: the event appears, still within the overlap
    sim.account.clock = lambda: datetime.now(UTC) + timedelta(minutes=5)
    once(config)
    assert len(receiver.messages) == 1
    once(config)
    assert len(receiver.messages) == 1


def test_webhook_failures_twelve_alert_three_do_not(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], WEBHOOKS)
    now = datetime.now(UTC)
    for i in range(3):
        sim.account.add_webhook_delivery(started_at=now - timedelta(minutes=i), http_status=502)
    once(config)
    assert receiver.messages == []

    for _ in range(9):
        sim.account.add_webhook_delivery(
            started_at=datetime.now(UTC), url="https://hooks.example.com/b", http_status=503
        )
    once(config)
    assert receiver.titles == ["[CRITICAL] webhook-failure-spike firing — main"]
    body = str(receiver.messages[0]["message"])
    assert "12 failed in 15m" in body
    assert "https://hooks.example.com/b: 9 failed (9× 503)" in body
    assert "https://hooks.example.com/telnyx: 3 failed (3× 502)" in body


def test_thousand_audit_events_across_pages_are_all_seen(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], AUDIT)
    once(config)
    for _ in range(1000):
        sim.account.add_audit_event(change_made_by="organization_member", user_id="u-1")
    before = sim.account.request_count("/audit_events")
    once(config)
    assert sim.account.request_count("/audit_events") - before == 4  # 250 a page
    assert receiver.titles == ["[CRITICAL] unexpected-config-change: 1000 audit events — main"]
    assert "… and 980 more: 980× organization_member update" in str(receiver.messages[0]["message"])


def test_steady_state_costs_one_request_per_source(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    rules = LOW_CREDIT + AUDIT.removeprefix("rules:\n") + WEBHOOKS.removeprefix("rules:\n")
    config = write_config(tmp_path, sim.base_url, [receiver.url], rules)
    once(config)
    before = sim.account.request_count()
    result = once(config)
    assert sim.account.request_count() - before == 3
    assert "3 API requests" in result.stdout


def test_only_needed_sources_are_polled(tmp_path: Path, sim: SimServer, receiver: Receiver) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], LOW_CREDIT)
    once(config)
    assert sim.account.request_count("/balance") == 1
    assert sim.account.request_count() == 1


def test_run_fires_then_exits_zero_on_sigterm(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], LOW_CREDIT)
    sim.account.set_balance("10.00")
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", str(config), "run"],
        env=cli_env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: len(receiver.messages) == 1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert receiver.titles == ["[CRITICAL] low-credit firing — main"]
    assert '"event": "daemon.stopped"' in err or "daemon.stopped" in err
    assert API_KEY not in out + err

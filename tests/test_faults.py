"""Fault paths against the simulator through the real CLI: no crash, the other sources
still evaluated, the key never printed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import API_KEY, Receiver, run_cli, write_config

from watcher.providers.telnyx.sim import Fault, SimServer

RULES = """\
rules:
  - name: low-credit
    kind: balance
    below: 50
    severity: critical
  - name: webhook-failure-spike
    kind: webhook_failures
    window: 15m
    at_least: 2
"""


def setup(tmp_path: Path, sim: SimServer, receiver: Receiver) -> Path:
    sim.account.set_balance("10.00")
    for _ in range(2):
        sim.account.add_webhook_delivery(started_at=datetime.now(UTC))
    return write_config(tmp_path, sim.base_url, [receiver.url], RULES, timeout="1s")


def once(config: Path) -> tuple[str, str]:
    result = run_cli("--config", str(config), "--debug", "once")
    assert result.returncode == 0, result.stderr
    assert API_KEY not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout, result.stderr


def test_429_with_retry_after_is_retried(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = setup(tmp_path, sim, receiver)
    # 2 s is longer than any backoff of the first retry without Retry-After (0.5-1 s)
    sim.account.inject_fault("/balance", Fault.status(429, headers={"Retry-After": "2"}))
    out, _ = once(config)
    first, second = [r.received_at for r in sim.account.requests if r.path == "/balance"]
    gap = (second - first).total_seconds()
    assert 1.95 <= gap < 5.0, gap  # waited as told, measured at the server
    assert "[CRITICAL] low-credit firing — main" in receiver.titles
    assert "balance: ok" in out


@pytest.mark.parametrize(
    ("fault", "times", "expect"),
    [
        (Fault.status(500), 2, "balance: ok"),  # retried until it works
        (Fault.status(503), -1, "balance: FAILED"),  # keeps failing: source failed
        (Fault.delay(2.5), -1, "balance: FAILED"),  # every attempt times out (timeout 1s)
        (Fault.malformed(), -1, "balance: FAILED"),
        (Fault.disconnect(), -1, "balance: FAILED"),
    ],
)
def test_balance_fault_does_not_stop_other_sources(
    tmp_path: Path, sim: SimServer, receiver: Receiver, fault: Fault, times: int, expect: str
) -> None:
    config = setup(tmp_path, sim, receiver)
    sim.account.inject_fault("/balance", fault, times=times)
    out, _ = once(config)
    assert expect in out
    # the webhook source was evaluated regardless
    assert "[WARNING] webhook-failure-spike firing — main" in receiver.titles
    assert "webhooks: ok" in out


def test_rejected_key_is_reported_and_alerted(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = setup(tmp_path, sim, receiver)
    sim.account.revoke_key()
    out, _ = once(config)
    assert sim.account.request_count("/balance") == 1  # a 401 is not retried
    assert "balance: FAILED" in out and "401" in out
    down = [m for m in receiver.messages if "watcher-source-down" in str(m["title"])]
    assert [m["title"] for m in down] == ["[CRITICAL] watcher-source-down firing — main [api-key]"]
    body = str(down[0]["message"])
    assert "The API rejected the key" in body
    assert "balance, webhooks" in body


ALL_SOURCES = (
    RULES
    + """\
  - name: config-change
    kind: audit
"""
)
API_PATHS = ("/balance", "/audit_events", "/webhook_deliveries")


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_is_one_alert_per_account_and_one_resolve(
    tmp_path: Path, sim: SimServer, receiver: Receiver, status: int
) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], ALL_SOURCES, timeout="1s")
    once(config)
    assert receiver.messages == []

    for path in API_PATHS:  # the key is rejected: every source of the account fails
        sim.account.inject_fault(path, Fault.status(status), times=-1)
    out, _ = once(config)
    assert all(f"{s}: FAILED" in out for s in ("audit", "balance", "webhooks")), out
    assert receiver.titles == ["[CRITICAL] watcher-source-down firing — main [api-key]"]
    body = str(receiver.messages[0]["message"])
    assert "The API rejected the key" in body
    assert "sources affected: audit, balance, webhooks" in body
    once(config)  # still rejected: no repeat within repeat_interval
    assert len(receiver.messages) == 1

    sim.account.clear_faults()  # the key works again
    once(config)
    once(config)
    firing = [t for t in receiver.titles if "firing" in t]
    resolved = [t for t in receiver.titles if t.startswith("[RESOLVED]")]
    assert len(firing) == 1, receiver.titles
    assert len(resolved) == 1, receiver.titles
    assert resolved[0].startswith("[RESOLVED] watcher-source-down — main [api-key]")
    assert len(receiver.messages) == 2


def test_notification_channel_down_does_not_break_the_cycle(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = setup(tmp_path, sim, receiver)
    receiver.status = 500
    out, err = once(config)
    assert "balance: ok" in out
    assert "failed: ops json://" in out
    assert "notify.failed" in err

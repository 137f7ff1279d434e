"""Metrics and /healthz: scraped over HTTP from the running daemon, and unit-level."""

from __future__ import annotations

import dataclasses
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import API_KEY, REPO, Receiver, cli_env, wait_for, write_config

from watcher.core.model import (
    AccountSnapshot,
    AlertKey,
    AlertState,
    Balance,
    Phase,
    Severity,
    SourceName,
)
from watcher.notify.delivery import Delivery
from watcher.providers.base import Collected, SourceFailure
from watcher.providers.telnyx.sim import Fault, SimServer, free_port
from watcher.service.cycle import CycleResult
from watcher.service.metrics import Metrics, MetricsServer, resident_bytes

LOW_CREDIT = """\
rules:
  - name: low-credit
    kind: balance
    below: {warning: 100}
"""


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in the exposition text, or None when absent."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if found == labels:
            return float(match.group(3))
    return None


def _count(text: str, name: str) -> float:
    return _sample(text, name, result="ok") or 0


def test_metrics_scraped_and_healthz_flips_when_the_api_goes_down(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    port = free_port()
    config = write_config(
        tmp_path,
        sim.base_url,
        [receiver.url],
        LOW_CREDIT,
        interval="0.5s",
        timeout="0.5s",
        extra=f"metrics:\n  listen: 127.0.0.1:{port}\n",
    )
    sim.account.set_balance("80.00")
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", str(config), "run"],
        env=cli_env(WATCHER_ALLOW_FAST_POLL="1"),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: receiver.titles == ["[WARNING] low-credit firing — main"])
        wait_for(lambda: _count(_get(f"{base}/metrics")[1], "account_watcher_cycles_total") >= 2)
        status, text = _get(f"{base}/metrics")
        assert status == 200
        labels = {"account": "main", "currency": "USD"}
        assert _sample(text, "account_watcher_balance", field="available_credit", **labels) == 80
        assert _sample(text, "account_watcher_balance", field="balance", **labels) == 80
        assert _sample(text, "account_watcher_alerts", rule="low-credit", state="firing") == 1
        assert (
            _sample(text, "account_watcher_api_requests_total", endpoint="/balance", status="200")
            or 0
        ) >= 2
        assert _sample(text, "account_watcher_notifications_total", route="ops", result="ok") == 1
        assert (_sample(text, "account_watcher_poll_duration_seconds_count") or 0) >= 2
        assert _sample(text, "account_watcher_source_up", account="main", source="balance") == 1
        assert _sample(text, "account_watcher_outbox_pending") == 0
        assert "# TYPE account_watcher_topups_total counter" in text
        assert (_sample(text, "process_resident_memory_bytes") or 0) > 10_000_000
        assert API_KEY not in text
        assert _get(f"{base}/healthz")[0] == 200
        assert _get(f"{base}/nothing")[0] == 404

        sim.account.inject_fault("/balance", Fault.disconnect(), times=-1)  # the API is down
        down = time.monotonic()
        wait_for(lambda: _get(f"{base}/healthz")[0] == 503, timeout=15)
        # the last good cycle was at most one interval before `down`; limit: 3 intervals
        assert time.monotonic() - down >= 0.9
        status, body = _get(f"{base}/healthz")
        assert status == 503 and "last successful cycle" in body
        text = _get(f"{base}/metrics")[1]
        assert _sample(text, "account_watcher_source_up", account="main", source="balance") == 0
        assert (
            _sample(text, "account_watcher_api_requests_total", endpoint="/balance", status="error")
            or 0
        ) >= 1
        assert (_sample(text, "account_watcher_cycles_total", result="source_errors") or 0) >= 1
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert API_KEY not in err


def test_metrics_port_in_use_is_a_clear_error(tmp_path: Path, sim: SimServer) -> None:
    port = free_port()
    config = write_config(
        tmp_path,
        sim.base_url,
        ["json://127.0.0.1:9/x"],
        LOW_CREDIT,
        extra=f"metrics:\n  listen: 127.0.0.1:{port}\n",
    )
    blocker = MetricsServer(Metrics(interval=10), ("127.0.0.1", port))
    blocker.start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "watcher", "--config", str(config), "run"],
            env=cli_env(),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        blocker.stop()
    assert result.returncode == 3
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr


# ---------------------------------------------------------------------------- unit level


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _report(*, errors: bool = False, firing: int = 1) -> CycleResult:
    balance = Balance(Decimal("42.50"), Decimal("40.00"), Decimal("0"), Decimal("2.5"), "EUR")
    snapshot = AccountSnapshot("main", balance=balance)
    if errors:
        collected = Collected(snapshot, failures={SourceName.BALANCE: SourceFailure("down")})
    else:
        collected = Collected(snapshot, succeeded=frozenset({SourceName.BALANCE}))
    alerts = {
        AlertKey("low", "main", str(i)): AlertState(
            AlertKey("low", "main", str(i)), Phase.FIRING, Severity.WARNING, datetime.now(UTC)
        )
        for i in range(firing)
    }
    report = CycleResult(
        at=datetime.now(UTC),
        duration_s=0.2,
        collected=[collected],
        alerts=alerts,
        deliveries=[Delivery("ops", "json://***", True), Delivery("ops", "json://***", False)],
    )
    return report


@pytest.mark.parametrize(
    ("steps", "healthy"),
    [
        ([], True),  # just started
        ([("wait", 31)], False),  # never succeeded within 3 × 10 s
        ([("ok", 0), ("wait", 29)], True),
        ([("ok", 0), ("wait", 31)], False),
        ([("ok", 0), ("wait", 20), ("fail", 0), ("wait", 11)], False),  # errors don't count
        ([("ok", 0), ("wait", 31), ("ok", 0)], True),
    ],
)
def test_health_window(steps: list[tuple[str, float]], healthy: bool) -> None:
    clock = Clock()
    metrics = Metrics(interval=10, clock=clock)
    for action, seconds in steps:
        if action == "wait":
            clock.now += seconds
        else:
            metrics.observe_cycle(_report(errors=action == "fail"))
    assert metrics.health()[0] is healthy


def test_observe_cycle_sets_gauges_and_drops_stale_alert_series() -> None:
    metrics = Metrics(interval=10)
    metrics.observe_cycle(_report(firing=2))
    metrics.count_request("/balance", 200)
    metrics.count_request("/balance", None)
    metrics.count_topup("main", "paid")
    metrics.set_outbox_pending(4)
    text = metrics.render().decode()
    assert _sample(text, "account_watcher_alerts", rule="low", state="firing") == 2
    money = {"account": "main", "currency": "EUR"}
    assert _sample(text, "account_watcher_balance", field="pending", **money) == 2.5
    assert _sample(text, "account_watcher_notifications_total", route="ops", result="ok") == 1
    assert _sample(text, "account_watcher_notifications_total", route="ops", result="failed") == 1
    assert _sample(text, "account_watcher_api_requests_total", endpoint="/balance", status="error")
    assert _sample(text, "account_watcher_topups_total", account="main", result="paid") == 1
    assert _sample(text, "account_watcher_outbox_pending") == 4

    metrics.observe_cycle(_report(firing=0))
    text = metrics.render().decode()
    assert _sample(text, "account_watcher_alerts", rule="low", state="firing") is None


def test_a_balance_in_another_currency_replaces_its_series_and_may_come_back() -> None:
    """The series of the old currency go; when the currency comes back, so do they, with
    the new values (a child kept after its series was removed would be set unseen)."""
    metrics = Metrics(interval=10)
    base = _report()
    first = base.collected[0].snapshot.balance
    assert first is not None
    for currency, pending in (("EUR", "2.5"), ("USD", "3.5"), ("EUR", "4.5")):
        balance = dataclasses.replace(first, currency=currency, pending=Decimal(pending))
        snapshot = dataclasses.replace(base.collected[0].snapshot, balance=balance)
        collected = dataclasses.replace(base.collected[0], snapshot=snapshot)
        metrics.observe_cycle(dataclasses.replace(base, collected=[collected]))
        text = metrics.render().decode()
        for shown in ("EUR", "USD"):
            value = _sample(
                text, "account_watcher_balance", account="main", field="pending", currency=shown
            )
            assert value == (float(pending) if shown == currency else None), (currency, shown)


def test_notifications_given_up_counts_the_reports_gave_up() -> None:
    metrics = Metrics(interval=10)
    name = "account_watcher_notifications_given_up_total"
    assert _sample(metrics.render().decode(), name) == 0  # exposed before anything is dropped
    for gave_up in (2, 0, 3):
        report = dataclasses.replace(_report(), gave_up=gave_up)
        metrics.observe_cycle(report)
    assert _sample(metrics.render().decode(), name) == 5


def _vm_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_rss_read_without_proc_stat() -> None:
    # a peak well above the current RSS: the current value is what must be read
    ballast = b"x" * (256 * 1024 * 1024)
    del ballast
    expected = _vm_rss()
    assert abs(resident_bytes() - expected) <= 0.2 * expected
    rendered = _sample(Metrics(interval=10).render().decode(), "process_resident_memory_bytes")
    assert rendered is not None
    assert abs(rendered - expected) <= 0.2 * expected

"""End to end: the `spend` rule through the real CLI (`once`, real processes) against the
simulators on 127.0.0.1, alerts through real apprise into a local receiver.

Telnyx: a day spike from the charges summary (a slow source) alerts once, names the top
products and the baseline, and resolves when the day's charges fall back (a refund).
Vonage: the day's spend from balance samples, a top-up between them not counted.
The dates scripted are today's in UTC, as the daemon sees them.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import API_KEY, Receiver, run_cli, write_config
from vonage_support import once as vonage_once
from vonage_support import (
    vonage_account,
    vonage_fixture,  # noqa: F401 (the fixture `vonage`)
    write_vonage_config,
)

from watcher.providers.telnyx.sim import SimServer
from watcher.providers.vonage.sim import VonageSimServer

SUMMARY = "/charges_summary"
SPIKE = """\
rules:
  - name: spend-spike
    kind: spend
    period: day
    spike: {factor: 3, baseline: 7d, min_amount: 20}
    severity: critical
"""


def once(config: Path) -> subprocess.CompletedProcess[str]:
    result = run_cli("--config", str(config), "once")
    assert result.returncode == 0, result.stderr
    assert API_KEY not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


def config_with(tmp_path: Path, sim: SimServer, receiver: Receiver, slow: str) -> Path:
    config = write_config(tmp_path, sim.base_url, [receiver.url], SPIKE)
    text = config.read_text().replace(
        "  timeout: 3s\n", f"  timeout: 3s\n  slow_interval: {slow}\n"
    )
    config.write_text(text)
    return config


def script_week(sim: SimServer) -> None:
    today = datetime.now(UTC).date()
    for back in range(1, 8):
        sim.account.charges.add(today - timedelta(days=back), "Voice", "10.00")
    sim.account.charges.add(today, "Voice", "5.00")


def test_a_spend_spike_alerts_once_and_resolves(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    script_week(sim)
    config = config_with(tmp_path, sim, receiver, "0.1s")
    first = once(config)
    assert receiver.messages == []
    assert "charges: ok" in first.stdout
    assert sim.account.request_count(SUMMARY) == 2  # today, and the 7 days before it

    today = datetime.now(UTC).date()
    sim.account.charges.add(today, "Messaging", "120.00")
    sim.account.charges.add(today, "Numbers", "2.00")
    once(config)
    assert receiver.titles == ["[CRITICAL] spend-spike firing — main"]
    body = str(receiver.messages[0]["message"])
    assert body.startswith(
        "Spent today (UTC) 127.00 USD (top: Messaging 120.00, Voice 5.00, Numbers 2.00), "
        "more than 3× the mean of 7 previous days (10.00 USD), at least 20.00 USD."
    )
    assert sim.account.request_count(SUMMARY) == 3  # the baseline is read once a day

    once(config)  # still spiking: no repeat
    assert len(receiver.messages) == 1

    sim.account.charges.add(today, "Messaging", "-120.00")  # refunded
    once(config)
    assert len(receiver.titles) == 2
    assert receiver.titles[1].startswith("[RESOLVED] spend-spike — main (fired ")
    status = run_cli("--config", str(config), "status")
    assert status.returncode == 0, status.stderr
    assert "alerts: none" in status.stdout


def test_charges_are_read_at_the_slow_cadence(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    script_week(sim)
    config = config_with(tmp_path, sim, receiver, "10m")
    for _ in range(3):
        once(config)
    assert sim.account.request_count(SUMMARY) == 2  # the first cycle only
    assert sim.account.request_count("/charges_breakdown") == 0  # no rule wants numbers
    assert sim.account.request_count("/balance") == 0  # a Telnyx period needs no balance


def test_vonage_day_spend_from_samples_cuts_out_a_top_up(
    tmp_path: Path, vonage: VonageSimServer, receiver: Receiver
) -> None:
    rules = """\
rules:
  - name: spend-today
    kind: spend
    period: day
    above: 30
"""
    config = write_vonage_config(tmp_path, vonage_account(vonage), [receiver.url], rules)
    vonage.account.set_balance("100.00")
    vonage_once(config)
    vonage.account.set_balance("80.00")  # 20 spent
    vonage_once(config)
    vonage.account.set_balance("180.00")  # a top-up of 100: not negative spend
    vonage_once(config)
    assert receiver.messages == []
    vonage.account.set_balance("165.00")  # 15 more: 35 today
    vonage_once(config)
    assert receiver.titles == ["[WARNING] spend-today firing — eu"]
    body = str(receiver.messages[0]["message"])
    assert body.startswith("Spent today (UTC) 35.00 GBP, above 30.00 GBP.")


def test_the_digest_names_telnyx_charges_of_the_day_beside_the_24h_spend(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    """A spend rule reads charges_summary; the digest shows its figure and top products
    (DESIGN §12: spend of the day, top products on Telnyx)."""
    script_week(sim)
    today = datetime.now(UTC).date()
    sim.account.charges.add(today, "Messaging", "3.25")
    config = config_with(tmp_path, sim, receiver, "10m")
    once(config)
    preview = run_cli("--config", str(config), "digest", "--preview")
    assert preview.returncode == 0, preview.stderr
    line = "charges today (since 00:00 UTC) 8.25 USD (top: Voice 5.00, Messaging 3.25)"
    assert line in preview.stdout, preview.stdout
    # no balance rule, so no samples: no made-up "spend 0.00 in 24 h" beside it
    assert "in 24 h" not in preview.stdout
